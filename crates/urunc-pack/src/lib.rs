//! `urunc-pack`: builds an OCI image for urunc offline, from local files, and
//! writes it as an OCI image layout in a tar archive ("oci-archive").
//!
//! Archive layout (entries in this order):
//!
//! ```text
//! blobs/  blobs/sha256/  blobs/sha256/<config> <layer> <manifest> (sorted by digest)
//! index.json   oci-layout
//! ```
//!
//! * one layer, `application/vnd.oci.image.layer.v1.tar+gzip`: the rootfs
//!   (`/unikernel/<kernel basename>`, optional `/unikernel/<initrd basename>`,
//!   `/unikernel/<block basename>`, the contents of `--files`, and
//!   `/urunc.json` holding the metadata with base64 values);
//! * the config (`created` 1970-01-01T00:00:00Z, `config.Labels` = metadata
//!   with plain values plus `--annotation`s, `rootfs.diff_ids`);
//! * the manifest, annotated like the labels;
//! * `index.json` with one descriptor, annotated with
//!   `io.containerd.image.name` = the full normalised reference (read by
//!   `ctr image import` and by `podman load`) and
//!   `org.opencontainers.image.ref.name` = its tag (so that
//!   `skopeo copy oci-archive:OUT.tar:TAG` selects it, like BuildKit's
//!   OCI exporter does).
//!
//! The same inputs give a byte-identical archive: every JSON map is sorted,
//! timestamps are fixed, tar headers carry no times or owners, and the gzip
//! header carries no time or file name.

mod layer;
mod reference;

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use serde::Serialize;
use sha2::{Digest, Sha256};

pub use layer::{Content, Node, Rootfs};
pub use reference::{sanitize_component, ImageRef};

/// Prefix of every urunc metadata key.
pub const KEY_PREFIX: &str = urunc_core::metadata::PREFIX;
/// Annotation containerd (and podman) use for the image name.
pub const ANNOTATION_CONTAINERD_NAME: &str = "io.containerd.image.name";
/// OCI annotation for the reference name inside an image layout.
pub const ANNOTATION_REF_NAME: &str = "org.opencontainers.image.ref.name";

pub const MEDIA_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const MEDIA_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const MEDIA_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const MEDIA_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// Fixed creation time, for reproducible images.
pub const CREATED: &str = "1970-01-01T00:00:00Z";

/// Frameworks and the monitors each can run on: urunc's own table, so that
/// the packer refuses exactly what the runtime would.
pub const COMPATIBILITY: &[(&str, &[&str])] = urunc_core::compat::TABLE;

/// Every monitor name accepted by `--hypervisor`.
pub const MONITORS: &[&str] = urunc_core::monitor::KNOWN;

/// Everything that can go wrong; the text names the input and the problem.
#[derive(Debug, thiserror::Error)]
pub enum PackError {
    /// A bad command-line input: `<flag>: <problem>`.
    #[error("{flag}: {problem}")]
    Flag { flag: String, problem: String },
    /// Writing the output failed.
    #[error("writing the archive: {0}")]
    Write(String),
}

impl PackError {
    pub fn flag(flag: &str, problem: impl Into<String>) -> Self {
        PackError::Flag {
            flag: flag.to_string(),
            problem: problem.into(),
        }
    }

    fn io(flag: &str, path: &Path, e: io::Error) -> Self {
        Self::flag(flag, format!("{}: {}", path.display(), io_text(&e)))
    }
}

fn io_text(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::NotFound => "no such file or directory".into(),
        io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

/// Inputs of one packing run (the CLI flags).
#[derive(Debug, Clone, Default)]
pub struct PackOptions {
    pub kernel: PathBuf,
    pub unikernel_type: String,
    pub hypervisor: String,
    pub cmdline: Option<String>,
    pub initrd: Option<PathBuf>,
    pub block: Option<PathBuf>,
    pub blk_mnt_point: Option<String>,
    pub unikernel_version: Option<String>,
    pub use_dm_block: bool,
    pub mount_rootfs: bool,
    pub files: Option<PathBuf>,
    /// `K=V` strings from `--annotation`.
    pub annotations: Vec<String>,
    /// `--port` values (`8080`, `53/udp`, or comma lists of them).
    pub ports: Vec<String>,
    /// `--ref`; `None` picks `localhost/<kernel basename, sanitised>:latest`.
    pub reference: Option<String>,
    /// Image architecture (`--arch`), `amd64` when `None`.
    pub architecture: Option<String>,
    pub output: PathBuf,
}

/// What a successful run produced.
#[derive(Debug, Clone)]
pub struct PackOutput {
    pub manifest_digest: String,
    pub manifest_size: u64,
    pub config_digest: String,
    pub layer_digest: String,
    pub diff_id: String,
    pub image_name: String,
    /// Metadata with plain values (as in the annotations).
    pub metadata: BTreeMap<String, String>,
}

/// A checked plan: the metadata, the rootfs and the naming.
#[derive(Debug)]
pub struct Plan {
    pub metadata: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    pub rootfs: Rootfs,
    pub image: ImageRef,
    pub architecture: String,
    /// `8080/tcp`…: the image config's ExposedPorts, and
    /// `com.urunc.network.ports` in /urunc.json (what urunc's shared
    /// network mode forwards; ExposedPorts never reach the runtime).
    pub ports: Vec<String>,
}

fn check_file(flag: &'static str, p: &Path) -> Result<(), PackError> {
    let meta = fs::metadata(p).map_err(|e| PackError::io(flag, p, e))?;
    if !meta.is_file() {
        return Err(PackError::flag(
            flag,
            format!("{}: not a regular file", p.display()),
        ));
    }
    fs::File::open(p).map_err(|e| PackError::io(flag, p, e))?;
    Ok(())
}

fn non_empty(flag: &'static str, v: &Option<String>) -> Result<(), PackError> {
    if let Some(s) = v {
        if s.is_empty() {
            return Err(PackError::flag(flag, "empty value"));
        }
    }
    Ok(())
}

/// Checks the inputs and builds the plan. Reads no file contents.
pub fn plan(o: &PackOptions) -> Result<Plan, PackError> {
    let Some((_, monitors)) = COMPATIBILITY.iter().find(|(f, _)| *f == o.unikernel_type) else {
        let known: Vec<&str> = COMPATIBILITY.iter().map(|(f, _)| *f).collect();
        return Err(PackError::flag(
            "--unikernel-type",
            format!(
                "unknown framework {:?} (known: {})",
                o.unikernel_type,
                known.join(", ")
            ),
        ));
    };
    if !MONITORS.contains(&o.hypervisor.as_str()) {
        return Err(PackError::flag(
            "--hypervisor",
            format!(
                "unknown monitor {:?} (known: {})",
                o.hypervisor,
                MONITORS.join(", ")
            ),
        ));
    }
    if !monitors.contains(&o.hypervisor.as_str()) {
        return Err(PackError::flag(
            "--hypervisor",
            format!(
                "{} cannot run on {} ({} runs on: {})",
                o.unikernel_type,
                o.hypervisor,
                o.unikernel_type,
                monitors.join(", ")
            ),
        ));
    }
    non_empty("--cmdline", &o.cmdline)?;
    non_empty("--blk-mnt-point", &o.blk_mnt_point)?;
    non_empty("--unikernel-version", &o.unikernel_version)?;

    let arch = o.architecture.clone().unwrap_or_else(|| "amd64".into());
    if arch.is_empty()
        || !arch
            .bytes()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
    {
        return Err(PackError::flag(
            "--arch",
            format!("{arch:?}: expected an OCI architecture name such as amd64 or arm64"),
        ));
    }

    if o.output.as_os_str().is_empty() {
        return Err(PackError::flag("--output", "empty path"));
    }
    if o.output.is_dir() {
        return Err(PackError::flag(
            "--output",
            format!("{}: is a directory", o.output.display()),
        ));
    }

    let mut rootfs = Rootfs::new();
    let mut metadata = BTreeMap::new();
    let mut put = |k: &str, v: String| {
        metadata.insert(format!("{KEY_PREFIX}{k}"), v);
    };
    put("unikernelType", o.unikernel_type.clone());
    put("hypervisor", o.hypervisor.clone());

    let mut add_host_file = |flag: &'static str, p: &Path| -> Result<String, PackError> {
        check_file(flag, p)?;
        let name = layer::basename(p, flag)?;
        let meta = fs::metadata(p).map_err(|e| PackError::io(flag, p, e))?;
        let rel = format!("unikernel/{name}");
        let content = Content::HostFile {
            path: p.to_path_buf(),
            flag,
        };
        let mode = layer::file_mode(&meta);
        rootfs.insert(&rel, Node::File { content, mode }, flag)?;
        Ok(format!("/{rel}"))
    };
    let binary = add_host_file("--kernel", &o.kernel)?;
    put("binary", binary);
    if let Some(p) = &o.initrd {
        put("initrd", add_host_file("--initrd", p)?);
    }
    if let Some(p) = &o.block {
        put("block", add_host_file("--block", p)?);
    }
    if let Some(v) = &o.cmdline {
        put("cmdline", v.clone());
    }
    if let Some(v) = &o.blk_mnt_point {
        put("blkMntPoint", v.clone());
    }
    if let Some(v) = &o.unikernel_version {
        put("unikernelVersion", v.clone());
    }
    if o.use_dm_block {
        put("useDMBlock", "true".into());
    }
    if o.mount_rootfs {
        put("mountRootfs", "true".into());
    }

    if let Some(dir) = &o.files {
        let meta = fs::metadata(dir).map_err(|e| PackError::io("--files", dir, e))?;
        if !meta.is_dir() {
            return Err(PackError::flag(
                "--files",
                format!("{}: not a directory", dir.display()),
            ));
        }
        rootfs.add_tree(dir, "--files")?;
    }

    let mut annotations = metadata.clone();
    for a in &o.annotations {
        let Some((k, v)) = a.split_once('=') else {
            return Err(PackError::flag(
                "--annotation",
                format!("{a:?}: expected KEY=VALUE"),
            ));
        };
        if k.is_empty() || k.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(PackError::flag(
                "--annotation",
                format!("{a:?}: the key must be non-empty and without spaces"),
            ));
        }
        if metadata.contains_key(k) {
            return Err(PackError::flag(
                "--annotation",
                format!(
                    "{k}: set by the packer from its own flag, do not give it as an annotation"
                ),
            ));
        }
        if annotations.insert(k.to_string(), v.to_string()).is_some() {
            return Err(PackError::flag(
                "--annotation",
                format!("{k}: given more than once"),
            ));
        }
    }

    let mut ports: Vec<urunc_core::network::mode::Port> = Vec::new();
    for v in &o.ports {
        for p in
            urunc_core::network::mode::parse_ports(v).map_err(|e| PackError::flag("--port", e))?
        {
            if ports.contains(&p) {
                return Err(PackError::flag("--port", format!("{p}: given twice")));
            }
            ports.push(p);
        }
    }
    let ports: Vec<String> = ports.iter().map(|p| p.to_string()).collect();
    let ports_key = urunc_core::network::mode::KEY_PORTS.to_string();
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut urunc_json: BTreeMap<&String, String> =
        metadata.iter().map(|(k, v)| (k, b64.encode(v))).collect();
    let joined = ports.join(",");
    if !ports.is_empty() {
        urunc_json.insert(&ports_key, b64.encode(&joined));
    }
    let bytes = serde_json::to_vec(&urunc_json).expect("a string map serialises");
    rootfs
        .insert(
            "urunc.json",
            Node::File {
                content: Content::Bytes(bytes),
                mode: 0o644,
            },
            "the packer's /urunc.json",
        )
        .map_err(|_| {
            PackError::flag(
                "--files",
                "contains urunc.json, which the packer writes from the metadata flags",
            )
        })?;

    let image = match &o.reference {
        Some(r) => ImageRef::parse(r).map_err(|e| PackError::flag("--ref", e))?,
        None => {
            let name = layer::basename(&o.kernel, "--kernel")?;
            ImageRef {
                domain: "localhost".into(),
                path: sanitize_component(&name),
                tag: "latest".into(),
            }
        }
    };

    Ok(Plan {
        metadata,
        annotations,
        rootfs,
        image,
        architecture: arch,
        ports,
    })
}

// ---- OCI JSON documents (field order fixed, maps sorted) ----

#[derive(Serialize)]
struct Descriptor<'a> {
    #[serde(rename = "mediaType")]
    media_type: &'a str,
    digest: String,
    size: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    annotations: Option<BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    platform: Option<Platform<'a>>,
}

#[derive(Serialize)]
struct Platform<'a> {
    architecture: &'a str,
    os: &'a str,
}

#[derive(Serialize)]
struct ImageConfig<'a> {
    created: &'a str,
    architecture: &'a str,
    os: &'a str,
    config: ContainerConfig<'a>,
    rootfs: RootfsDoc,
    history: Vec<History<'a>>,
}

#[derive(Serialize)]
struct ContainerConfig<'a> {
    /// OCI image spec `config.ExposedPorts`: `"8080/tcp": {}`.
    #[serde(rename = "ExposedPorts", skip_serializing_if = "BTreeMap::is_empty")]
    exposed_ports: BTreeMap<&'a str, serde_json::Map<String, serde_json::Value>>,
    #[serde(rename = "Labels")]
    labels: &'a BTreeMap<String, String>,
}

#[derive(Serialize)]
struct RootfsDoc {
    #[serde(rename = "type")]
    kind: &'static str,
    diff_ids: Vec<String>,
}

#[derive(Serialize)]
struct History<'a> {
    created: &'a str,
    created_by: &'a str,
}

#[derive(Serialize)]
struct Manifest<'a> {
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
    #[serde(rename = "mediaType")]
    media_type: &'a str,
    config: Descriptor<'a>,
    layers: Vec<Descriptor<'a>>,
    annotations: &'a BTreeMap<String, String>,
}

#[derive(Serialize)]
struct Index<'a> {
    #[serde(rename = "schemaVersion")]
    schema_version: u32,
    #[serde(rename = "mediaType")]
    media_type: &'a str,
    manifests: Vec<Descriptor<'a>>,
}

/// `sha256:<hex>` of `data`.
pub fn sha256_digest(data: &[u8]) -> String {
    format!("sha256:{}", hex(&Sha256::digest(data)))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A writer that hashes and counts what passes through it.
struct Hashing<W> {
    inner: W,
    hash: Sha256,
    size: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl<W> Hashing<W> {
    fn new(inner: W) -> Self {
        Hashing {
            inner,
            hash: Sha256::new(),
            size: 0,
        }
    }
    fn finish(self) -> (W, String, u64) {
        let d = format!("sha256:{}", hex(&self.hash.finalize()));
        (self.inner, d, self.size)
    }
}

fn werr(what: &str) -> impl Fn(io::Error) -> PackError + '_ {
    move |e| PackError::Write(format!("{what}: {e}"))
}

/// Validates, builds and writes the archive. The output appears only when
/// complete (a temporary file next to it is renamed at the end).
pub fn pack(o: &PackOptions) -> Result<PackOutput, PackError> {
    let plan = plan(o)?;
    let out_dir = match o.output.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let tmp = |what: &str| {
        tempfile::Builder::new()
            .prefix(&format!(".urunc-pack-{what}-"))
            .tempfile_in(&out_dir)
            .map_err(|e| PackError::io("--output", &out_dir, e))
    };

    // The layer: tar -> diff_id hash -> gzip -> blob hash -> temp file.
    let layer_file = tmp("layer")?;
    let blob_writer = Hashing::new(BufWriter::new(
        layer_file
            .as_file()
            .try_clone()
            .map_err(|e| PackError::io("--output", layer_file.path(), e))?,
    ));
    let gz = flate2::GzBuilder::new()
        .mtime(0)
        .operating_system(255)
        .write(blob_writer, flate2::Compression::default());
    let tar_writer = plan.rootfs.write_tar(Hashing::new(gz))?;
    let (gz, diff_id, _) = tar_writer.finish();
    let blob_writer = gz.finish().map_err(werr("compressing the layer"))?;
    let (mut buf, layer_digest, layer_size) = blob_writer.finish();
    buf.flush().map_err(werr("writing the layer"))?;
    drop(buf);

    let labels = &plan.annotations;
    let config = ImageConfig {
        created: CREATED,
        architecture: &plan.architecture,
        os: "linux",
        config: ContainerConfig {
            exposed_ports: plan
                .ports
                .iter()
                .map(|p| (p.as_str(), serde_json::Map::new()))
                .collect(),
            labels,
        },
        rootfs: RootfsDoc {
            kind: "layers",
            diff_ids: vec![diff_id.clone()],
        },
        history: vec![History {
            created: CREATED,
            created_by: "urunc-pack",
        }],
    };
    let config_bytes = serde_json::to_vec(&config).expect("config serialises");
    let config_digest = sha256_digest(&config_bytes);

    let manifest = Manifest {
        schema_version: 2,
        media_type: MEDIA_MANIFEST,
        config: Descriptor {
            media_type: MEDIA_CONFIG,
            digest: config_digest.clone(),
            size: config_bytes.len() as u64,
            annotations: None,
            platform: None,
        },
        layers: vec![Descriptor {
            media_type: MEDIA_LAYER_GZIP,
            digest: layer_digest.clone(),
            size: layer_size,
            annotations: None,
            platform: None,
        }],
        annotations: labels,
    };
    let manifest_bytes = serde_json::to_vec(&manifest).expect("manifest serialises");
    let manifest_digest = sha256_digest(&manifest_bytes);

    let image_name = plan.image.to_string();
    let index = Index {
        schema_version: 2,
        media_type: MEDIA_INDEX,
        manifests: vec![Descriptor {
            media_type: MEDIA_MANIFEST,
            digest: manifest_digest.clone(),
            size: manifest_bytes.len() as u64,
            annotations: Some(BTreeMap::from([
                (ANNOTATION_CONTAINERD_NAME.to_string(), image_name.clone()),
                (ANNOTATION_REF_NAME.to_string(), plan.image.tag.clone()),
            ])),
            platform: Some(Platform {
                architecture: &plan.architecture,
                os: "linux",
            }),
        }],
    };
    let index_bytes = serde_json::to_vec(&index).expect("index serialises");
    let layout_bytes = br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec();

    // The archive.
    let out_tmp = tmp("out")?;
    let mut ar = tar::Builder::new(BufWriter::new(out_tmp.as_file()));
    let dir = |ar: &mut tar::Builder<_>, p: &str| -> Result<(), PackError> {
        let mut h = header(tar::EntryType::Directory, 0o755, 0);
        ar.append_data(&mut h, p, io::empty())
            .map_err(werr("archive directory"))
    };
    fn header(t: tar::EntryType, mode: u32, size: u64) -> tar::Header {
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(t);
        h.set_mode(mode);
        h.set_size(size);
        h.set_mtime(0);
        h.set_uid(0);
        h.set_gid(0);
        h
    }
    dir(&mut ar, "blobs/")?;
    dir(&mut ar, "blobs/sha256/")?;
    let blob_path = |d: &str| format!("blobs/sha256/{}", d.trim_start_matches("sha256:"));
    let mut blobs: Vec<(&String, Option<&[u8]>)> = vec![
        (&config_digest, Some(&config_bytes)),
        (&manifest_digest, Some(&manifest_bytes)),
        (&layer_digest, None),
    ];
    blobs.sort_by(|a, b| a.0.cmp(b.0));
    for (digest, bytes) in blobs {
        match bytes {
            Some(b) => {
                let mut h = header(tar::EntryType::Regular, 0o644, b.len() as u64);
                ar.append_data(&mut h, blob_path(digest), b)
                    .map_err(werr("archive blob"))?;
            }
            None => {
                let mut f = layer_file.reopen().map_err(werr("reopening the layer"))?;
                f.seek(SeekFrom::Start(0))
                    .map_err(werr("reading the layer"))?;
                let mut h = header(tar::EntryType::Regular, 0o644, layer_size);
                ar.append_data(&mut h, blob_path(digest), f.take(layer_size))
                    .map_err(werr("archive layer blob"))?;
            }
        }
    }
    for (name, bytes) in [("index.json", &index_bytes), ("oci-layout", &layout_bytes)] {
        let mut h = header(tar::EntryType::Regular, 0o644, bytes.len() as u64);
        ar.append_data(&mut h, name, &bytes[..])
            .map_err(werr(name))?;
    }
    let mut w = ar.into_inner().map_err(werr("finishing the archive"))?;
    w.flush().map_err(werr("flushing the archive"))?;
    drop(w);
    out_tmp
        .as_file()
        .sync_all()
        .map_err(werr("syncing the archive"))?;
    drop(layer_file);
    let perm = fs::Permissions::from_mode(0o644);
    out_tmp
        .as_file()
        .set_permissions(perm)
        .map_err(werr("setting the archive's mode"))?;
    out_tmp
        .persist(&o.output)
        .map_err(|e| PackError::io("--output", &o.output, e.error))?;

    Ok(PackOutput {
        manifest_digest,
        manifest_size: manifest_bytes.len() as u64,
        config_digest,
        layer_digest,
        diff_id,
        image_name,
        metadata: plan.metadata,
    })
}
