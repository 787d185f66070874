//! Shared by the Unikraft round-trip targets (unikraft_cmdline,
//! unikraft_firecracker): the input, what urunc renders from it, and what
//! a Unikraft 0.17 kernel reads back from a command line, by the hosted
//! build of the test kernels' reader, tests/fixtures/ukparse/ukparse.c
//! (linked by fuzz/build.rs).

use libfuzzer_sys::arbitrary::{self, Arbitrary};
use std::ffi::{c_char, c_int, CStr, CString};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use urunc_core::guest::{self, GuestArgs, GuestNet, GuestShare};
use urunc_core::shares::ShareFs;

extern "C" {
    fn ukparse_hosted_parse(cmdline: *const c_char) -> c_int;
    fn ukparse_hosted_report(len: *mut usize) -> *const c_char;
    fn ukparse_hosted_nwords() -> c_int;
    fn ukparse_hosted_argv(i: c_int) -> *const c_char;
    fn ukparse_hosted_param(lib: *const c_char, name: *const c_char, j: c_int) -> *const c_char;
    fn ukparse_hosted_help() -> c_int;
}

/// Where QEMU's multiboot loader puts the kernel's path: `<path> <-append>`.
pub const KERNEL: &str = "/unikernel/kernel";

/// Array sizes of a default Unikraft 0.17 build (ukparse.c cites each):
/// an image built with other values reads other limits, which urunc cannot
/// see; inputs beyond them are not checked.
const ENV_MAX: usize = 8;
const FSTAB_MAX: usize = 16;
const MAXNBARGS: i32 = 60;
/// ukparse.c's line buffer (LINE_MAX).
const LINE_MAX: usize = 4000;

#[derive(Arbitrary, Debug)]
pub struct Net {
    ip: [u8; 4],
    prefix: u8,
    gateway: Option<[u8; 4]>,
    dns: Option<[u8; 4]>,
}

#[derive(Arbitrary, Debug)]
pub struct Input {
    pub app: Vec<String>,
    pub env: Vec<String>,
    pub net: Option<Net>,
    pub initrd: bool,
    pub root_share: bool,
    /// Volume mount points (made absolute and clean, as shares.rs does),
    /// and whether it is virtio-fs rather than 9p.
    pub volumes: Vec<(String, bool)>,
    /// 0..=4: a version from the list below, else `version`.
    pub version_pick: u8,
    pub version: Option<String>,
    /// The other monitor: Cloud Hypervisor instead of QEMU
    /// (unikraft_cmdline); devices Firecracker adds (unikraft_firecracker).
    pub pick: u8,
}

/// What the guest must end up with.
#[derive(Debug, PartialEq, Eq)]
pub struct Understood {
    pub argv: Vec<String>,
    pub env: Vec<String>,
    pub params: Vec<(&'static str, &'static str, Vec<String>)>,
    pub help: bool,
}

/// The parameters compared: all that ukparse.c registers.
const PARAMS: &[(&str, &str)] = &[
    ("netdev", "ip"),
    ("vfs", "fstab"),
    ("virtio_mmio", "device"),
    ("netdev", "ipv4_addr"),
    ("netdev", "ipv4_gw_addr"),
    ("netdev", "ipv4_subnet_mask"),
    ("netdev", "ipv4_dns0_addr"),
    ("vfs", "rootfs"),
    ("vfs", "rootdev"),
];

pub struct Rendered {
    pub words: Result<Vec<String>, String>,
    pub expected: Understood,
    /// One of the reasons guest/unikraft.rs documents for refusing holds
    /// (a refusal without one is a bug too).
    pub may_refuse: bool,
}

impl Input {
    /// Renders the guest words for `monitor` (urunc-core's
    /// guest/unikraft.rs) and says what Unikraft should read: the program
    /// and `process.args[1..]` as argv (under QEMU argv[0] is the kernel's
    /// path), `process.env` as env.vars, the network, the root and the
    /// volumes, and `devices` (the virtio_mmio.device values Firecracker
    /// adds). `None`: an input beyond what is checked (see the limits
    /// above; a NUL byte cannot reach a monitor: execve and the config
    /// file's CString refuse it).
    pub fn render(&self, monitor: &str, devices: &[String]) -> Option<Rendered> {
        let mut all = self.app.iter().chain(&self.env);
        if all.any(|s| s.contains('\0'))
            || self.version.as_deref().is_some_and(|v| v.contains('\0'))
            || self.volumes.iter().any(|(m, _)| m.contains('\0'))
        {
            return None;
        }
        if self.env.len() > ENV_MAX || self.volumes.len() + 1 > FSTAB_MAX {
            return None;
        }
        let version = match self.version_pick % 8 {
            0 => Some("0.15.0"),
            1 => Some("0.16.0"),
            2 => Some("0.16.1"),
            3 => Some("0.17.0"),
            4 => None,
            _ => self.version.as_deref(),
        };
        let net = self.net.as_ref().map(|n| GuestNet {
            ip: Ipv4Addr::from(n.ip),
            prefix: n.prefix % 33,
            gateway: n.gateway.map(Ipv4Addr::from),
            dns: n.dns.map(Ipv4Addr::from),
        });
        let mut shares = Vec::new();
        if self.root_share {
            shares.push(GuestShare {
                tag: "fs0".into(),
                mount_point: "/".into(),
                readonly: false,
                fs: ShareFs::NineP,
            });
        }
        for (m, virtiofs) in &self.volumes {
            // shares.rs: the destination with its components collected,
            // absolute, never "/" for a volume.
            let clean: PathBuf = PathBuf::from(format!("/{m}")).components().collect();
            let mount_point = clean.display().to_string();
            if mount_point == "/" {
                continue;
            }
            shares.push(GuestShare {
                tag: format!("fs{}", shares.len() + usize::from(!self.root_share)),
                mount_point,
                readonly: false,
                fs: if *virtiofs {
                    ShareFs::VirtioFs
                } else {
                    ShareFs::NineP
                },
            });
        }
        let args = GuestArgs {
            app: &self.app,
            env: &self.env,
            net: net.as_ref(),
            initrd: self.initrd,
            block: None,
            shares: &shares,
            version,
            monitor,
        };
        let words = guest::lookup("unikraft")
            .expect("unikraft is registered")
            .words(&args);
        let legacy = is_legacy(version);
        let b = |s: &str| s.to_string();
        let program = self.app.first().map(String::as_str).unwrap_or("unikernel");
        let assignment = program
            .split_once('.')
            .is_some_and(|(_, rest)| rest.contains('='));
        let may_refuse = self.app.iter().any(String::is_empty)
            || self.env.iter().any(String::is_empty)
            || (monitor == "qemu" && (program == "help" || program == "--" || assignment))
            || (monitor == "firecracker"
                && std::iter::once(program)
                    .chain(self.env.iter().map(String::as_str))
                    .any(|w| w.contains(" -- ")))
            || shares.iter().any(|s| {
                s.mount_point != "/"
                    && (legacy
                        || s.fs != ShareFs::NineP
                        || s.mount_point
                            .chars()
                            .any(|c| c == ':' || c == '"' || c == ']' || c.is_whitespace()))
            });
        let mut argv = vec![b(if monitor == "qemu" { KERNEL } else { program })];
        argv.extend(self.app.iter().skip(1).map(|a| b(a)));
        let mut params: Vec<(&'static str, &'static str, Vec<String>)> =
            PARAMS.iter().map(|(l, n)| (*l, *n, Vec::new())).collect();
        let mut set = |lib: &str, name: &str, v: String| {
            let p = params
                .iter_mut()
                .find(|(l, n, _)| *l == lib && *n == name)
                .expect("a compared parameter");
            p.2.push(v);
        };
        if let Some(n) = &net {
            let gw = n.gateway.map(|g| g.to_string()).unwrap_or_default();
            if legacy {
                set("netdev", "ipv4_addr", n.ip.to_string());
                set("netdev", "ipv4_gw_addr", gw);
                set("netdev", "ipv4_subnet_mask", n.netmask().to_string());
            } else {
                let dns = n.dns.map(|d| d.to_string()).unwrap_or_default();
                set("netdev", "ip", format!("{}/{}:{gw}:{dns}", n.ip, n.prefix));
            }
        }
        if self.root_share {
            if legacy {
                set("vfs", "rootdev", "fs0".into());
                set("vfs", "rootfs", "9pfs".into());
            } else {
                set("vfs", "fstab", "fs0:/:9pfs:::".into());
            }
        } else if self.initrd {
            if legacy {
                set("vfs", "rootfs", "initrd".into());
            } else {
                set("vfs", "fstab", "initrd0:/:extract:::".into());
            }
        }
        for s in shares.iter().filter(|s| s.mount_point != "/") {
            set(
                "vfs",
                "fstab",
                format!("{}:{}:9pfs:::", s.tag, s.mount_point),
            );
        }
        for d in devices {
            set("virtio_mmio", "device", d.clone());
        }
        let env = if legacy {
            Vec::new()
        } else {
            self.env.iter().map(|e| b(e)).collect()
        };
        Some(Rendered {
            may_refuse,
            words,
            expected: Understood {
                argv,
                env,
                params,
                help: false,
            },
        })
    }
}

/// guest/unikraft.rs's rule, restated: older than 0.16.1; unknown or
/// absent versions are current.
fn is_legacy(version: Option<&str>) -> bool {
    let Some(v) = version else { return false };
    let nums: Vec<u64> = v
        .trim()
        .trim_start_matches(['v', 'V'])
        .split(['.', '-', '+'])
        .take(3)
        .map_while(|p| p.parse().ok())
        .collect();
    if nums.is_empty() {
        return false;
    }
    let get = |i: usize| nums.get(i).copied().unwrap_or(0);
    (get(0), get(1), get(2)) < (0, 16, 1)
}

/// What ukparse.c read from `cmdline`, and its COM1 output; `None` for a
/// line beyond the limits checked (its length, or MAXNBARGS words, where
/// ukargparse keeps the rest of the line as the last word).
pub fn unikraft_reads(cmdline: &str) -> Option<(Understood, String)> {
    if cmdline.len() >= LINE_MAX {
        return None;
    }
    let c = CString::new(cmdline).ok()?;
    let bytes = |p: *const c_char| {
        // SAFETY: ukparse.c returns NUL-terminated strings in its static
        // buffers, valid until the report splits some of them.
        let b = unsafe { CStr::from_ptr(p) }.to_bytes().to_vec();
        String::from_utf8(b).unwrap_or_else(|e| format!("(not UTF-8) {:?}", e.into_bytes()))
    };
    // SAFETY: a NUL-terminated line; ukparse.c keeps no pointer to it (it
    // copies the words into its own buffer). The fuzz target is one thread.
    let argc = unsafe { ukparse_hosted_parse(c.as_ptr()) };
    // SAFETY: no arguments; reads a static.
    if unsafe { ukparse_hosted_nwords() } >= MAXNBARGS {
        return None;
    }
    let argv = (0..argc)
        .map(|i| {
            // SAFETY: i < argc, a pointer into ukparse.c's word buffer.
            bytes(unsafe { ukparse_hosted_argv(i) })
        })
        .collect();
    let values = |lib: &str, name: &str| {
        let (l, n) = (CString::new(lib).unwrap(), CString::new(name).unwrap());
        (0..)
            .map_while(|j| {
                // SAFETY: NUL-terminated names; NULL past the last value.
                let p = unsafe { ukparse_hosted_param(l.as_ptr(), n.as_ptr(), j) };
                (!p.is_null()).then(|| bytes(p))
            })
            .collect::<Vec<_>>()
    };
    let env = values("env", "vars");
    let params = PARAMS.iter().map(|(l, n)| (*l, *n, values(l, n))).collect();
    // SAFETY: no arguments; reads a static.
    let help = unsafe { ukparse_hosted_help() } != 0;
    let mut len = 0usize;
    // SAFETY: prints into ukparse.c's buffer, returns it and its length,
    // valid until the next parse.
    let out = unsafe { ukparse_hosted_report(&mut len) };
    // SAFETY: len bytes at out, written by ukparse.c.
    let text = String::from_utf8_lossy(unsafe { std::slice::from_raw_parts(out.cast(), len) })
        .into_owned();
    Some((
        Understood {
            argv,
            env,
            params,
            help,
        },
        text,
    ))
}
