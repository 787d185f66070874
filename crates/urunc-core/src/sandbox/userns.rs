//! Rootless operation (`--rootless`, or any unprivileged caller): `create`
//! itself enters a new user namespace in which the caller's uid and gid
//! are the container's root (one mapping each, which an unprivileged
//! process may write for itself once `setgroups` is denied,
//! user_namespaces(7)). Every other namespace of the container, the
//! sandbox root and the monitor then belong to that user namespace:
//! device nodes are bound from the host (mknod is not allowed there, see
//! `root::make_device`), cgroups are left alone (the caller cannot write
//! them), and the network is what the container's network namespace has.
//! Ranges of ids (`/etc/subuid`) would need the setuid `newuidmap`; they
//! are refused.

use crate::error::{Context, Error, Result};
use oci_spec::runtime::{LinuxNamespaceType, Spec};

/// The container-side uid and gid the caller becomes: `linux.uidMappings`
/// / `gidMappings` may map the caller's own id (size 1) to one id; none
/// means 0.
pub fn mapping(spec: &Spec) -> Result<(u32, u32)> {
    let linux = spec.linux().as_ref();
    if let Some(ns) = linux
        .and_then(|l| l.namespaces().as_ref())
        .and_then(|n| n.iter().find(|n| n.typ() == LinuxNamespaceType::User))
    {
        if let Some(p) = ns.path() {
            return Err(Error::msg(format!(
                "linux.namespaces: joining the user namespace {} is not supported for rootless unikernel containers (urunc creates one)",
                p.display()
            )));
        }
    }
    let pick = |what: &str, maps: Option<&Vec<oci_spec::runtime::LinuxIdMapping>>, own: u32| {
        match maps.map(Vec::as_slice).unwrap_or(&[]) {
            [] => Ok(0),
            [m] if m.size() == 1 && m.host_id() == own => Ok(m.container_id()),
            _ => Err(Error::msg(format!(
                "linux.{what}: rootless urunc maps only the caller's own id ({own}) to one container id; ranges (subordinate ids) are not supported"
            ))),
        }
    };
    let uid = pick(
        "uidMappings",
        linux.and_then(|l| l.uid_mappings().as_ref()),
        nix::unistd::geteuid().as_raw(),
    )?;
    let gid = pick(
        "gidMappings",
        linux.and_then(|l| l.gid_mappings().as_ref()),
        nix::unistd::getegid().as_raw(),
    )?;
    Ok((uid, gid))
}

/// Moves the calling (single-threaded) process into a new user namespace
/// where the caller's ids are `(uid, gid)`.
pub fn enter(uid: u32, gid: u32) -> Result<()> {
    let (own_uid, own_gid) = (nix::unistd::geteuid(), nix::unistd::getegid());
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWUSER)
        .ctx(|| "rootless: creating a user namespace".to_string())?;
    let write = |file: &str, text: String| {
        std::fs::write(format!("/proc/self/{file}"), &text)
            .ctx(|| format!("rootless: writing {text:?} to /proc/self/{file}"))
    };
    write("setgroups", "deny".into())?;
    write("uid_map", format!("{uid} {own_uid} 1\n"))?;
    write("gid_map", format!("{gid} {own_gid} 1\n"))
}
