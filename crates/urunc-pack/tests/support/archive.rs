//! Reading back what `urunc-pack` wrote, and running it.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;
use sha2::{Digest, Sha256};

/// One tar entry.
#[derive(Debug, Clone)]
pub struct Entry {
    pub name: String,
    pub kind: tar::EntryType,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: u64,
    pub link: Option<String>,
    pub data: Vec<u8>,
}

/// Reads every entry of a tar stream, in order.
pub fn read_tar<R: Read>(r: R) -> Vec<Entry> {
    let mut ar = tar::Archive::new(r);
    let mut out = Vec::new();
    for e in ar.entries().expect("tar entries") {
        let mut e = e.expect("tar entry");
        let h = e.header().clone();
        let name = e.path().expect("entry path").display().to_string();
        let link = e
            .link_name()
            .expect("link name")
            .map(|l| l.display().to_string());
        let mut data = Vec::new();
        e.read_to_end(&mut data).expect("entry data");
        // Directories keep their trailing slash in the raw name.
        let raw = String::from_utf8_lossy(&e.path_bytes()).to_string();
        let name = if h.entry_type().is_dir() && !name.ends_with('/') && raw.ends_with('/') {
            format!("{name}/")
        } else {
            name
        };
        out.push(Entry {
            name,
            kind: h.entry_type(),
            mode: h.mode().expect("mode"),
            uid: h.uid().expect("uid"),
            gid: h.gid().expect("gid"),
            mtime: h.mtime().expect("mtime"),
            link,
            data,
        });
    }
    out
}

pub fn sha256(data: &[u8]) -> String {
    let d = Sha256::digest(data);
    format!(
        "sha256:{}",
        d.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

/// The archive, parsed down to the rootfs.
pub struct Image {
    pub entries: Vec<Entry>,
    pub files: BTreeMap<String, Vec<u8>>,
    pub index: Value,
    pub manifest_digest: String,
    pub manifest_raw: Vec<u8>,
    pub manifest: Value,
    pub config: Value,
    pub layer_gz: Vec<u8>,
    pub layer_tar: Vec<u8>,
    pub layer: Vec<Entry>,
}

impl Image {
    pub fn read(path: &Path) -> Image {
        let f = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let entries = read_tar(f);
        let files: BTreeMap<String, Vec<u8>> = entries
            .iter()
            .filter(|e| e.kind.is_file())
            .map(|e| (e.name.clone(), e.data.clone()))
            .collect();
        let blob = |digest: &str| -> Vec<u8> {
            let name = format!("blobs/sha256/{}", digest.trim_start_matches("sha256:"));
            files
                .get(&name)
                .unwrap_or_else(|| panic!("missing blob {name}"))
                .clone()
        };
        let index: Value = serde_json::from_slice(&files["index.json"]).expect("index.json");
        let mdesc = &index["manifests"][0];
        let manifest_digest = mdesc["digest"].as_str().expect("digest").to_string();
        let manifest_raw = blob(&manifest_digest);
        let manifest: Value = serde_json::from_slice(&manifest_raw).expect("manifest");
        let config: Value =
            serde_json::from_slice(&blob(manifest["config"]["digest"].as_str().unwrap()))
                .expect("config");
        let layer_gz = blob(manifest["layers"][0]["digest"].as_str().unwrap());
        let mut layer_tar = Vec::new();
        flate2::read::GzDecoder::new(&layer_gz[..])
            .read_to_end(&mut layer_tar)
            .expect("gunzip layer");
        let layer = read_tar(&layer_tar[..]);
        Image {
            entries,
            files,
            index,
            manifest_digest,
            manifest_raw,
            manifest,
            config,
            layer_gz,
            layer_tar,
            layer,
        }
    }

    /// A layer entry by name.
    pub fn layer_entry(&self, name: &str) -> &Entry {
        self.layer
            .iter()
            .find(|e| e.name == name)
            .unwrap_or_else(|| panic!("layer has no {name}; has {:?}", self.layer_names()))
    }

    pub fn layer_names(&self) -> Vec<String> {
        self.layer.iter().map(|e| e.name.clone()).collect()
    }

    /// `/urunc.json` parsed.
    pub fn urunc_json(&self) -> BTreeMap<String, String> {
        serde_json::from_slice(&self.layer_entry("urunc.json").data).expect("urunc.json")
    }
}

/// Runs the packer binary with `args`.
pub fn run_pack(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_urunc-pack"))
        .args(args)
        .output()
        .expect("running urunc-pack")
}

/// Runs the packer and asserts success; returns stdout (the digest) trimmed.
pub fn pack_ok(args: &[&str]) -> String {
    let out = run_pack(args);
    assert!(
        out.status.success(),
        "urunc-pack {args:?} failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}
