//! Entering the namespaces the spec asks for: join those with a path,
//! create those without.

use crate::error::{Context, Error, Result};
use nix::sched::CloneFlags;
use oci_spec::runtime::{LinuxNamespace, LinuxNamespaceType};
use std::fs::File;

fn flag(t: LinuxNamespaceType) -> Result<CloneFlags> {
    Ok(match t {
        LinuxNamespaceType::Pid => CloneFlags::CLONE_NEWPID,
        LinuxNamespaceType::Network => CloneFlags::CLONE_NEWNET,
        LinuxNamespaceType::Mount => CloneFlags::CLONE_NEWNS,
        LinuxNamespaceType::Ipc => CloneFlags::CLONE_NEWIPC,
        LinuxNamespaceType::Uts => CloneFlags::CLONE_NEWUTS,
        LinuxNamespaceType::Cgroup => CloneFlags::CLONE_NEWCGROUP,
        other => {
            return Err(Error::msg(format!(
                "linux.namespaces: {other:?} namespaces are not supported for unikernel containers"
            )))
        }
    })
}

/// What the namespaces step did, for later steps.
#[derive(Debug, Default, Clone)]
pub struct Entered {
    pub new_mount: bool,
    pub new_uts: bool,
}

/// Restores the caller's PID namespace for its future children when
/// dropped.
pub struct PidForChildren(Option<File>);

impl Drop for PidForChildren {
    fn drop(&mut self) {
        if let Some(own) = &self.0 {
            let _ = nix::sched::setns(own, CloneFlags::CLONE_NEWPID);
        }
    }
}

/// Sets the PID namespace the caller's next child is born in (join by
/// path, or a new one) without moving the caller itself; the returned guard
/// puts it back (so that hooks the caller runs later stay in its own).
pub fn pid_for_children(nss: &[LinuxNamespace]) -> Result<PidForChildren> {
    let Some(ns) = nss.iter().find(|n| n.typ() == LinuxNamespaceType::Pid) else {
        return Ok(PidForChildren(None));
    };
    let own = File::open("/proc/self/ns/pid").ctx(|| "opening /proc/self/ns/pid".to_string())?;
    match ns.path() {
        Some(p) => {
            let f = File::open(p).ctx(|| format!("opening Pid namespace {}", p.display()))?;
            nix::sched::setns(&f, CloneFlags::CLONE_NEWPID)
                .ctx(|| format!("joining namespace {}", p.display()))?;
        }
        None => nix::sched::unshare(CloneFlags::CLONE_NEWPID)
            .ctx(|| "creating a PID namespace".to_string())?,
    }
    Ok(PidForChildren(Some(own)))
}

/// Validates the spec's namespaces without entering any (used by `create`
/// before anything exists).
pub fn check(nss: &[LinuxNamespace]) -> Result<()> {
    for ns in nss {
        flag(ns.typ())?;
        if let Some(p) = ns.path() {
            if !p.exists() {
                return Err(Error::msg(format!(
                    "linux.namespaces: {:?} namespace path {} does not exist",
                    ns.typ(),
                    p.display()
                )));
            }
        }
    }
    Ok(())
}

/// Joins and creates the namespaces other than the PID one (see
/// [`pid_for_children`]) and the cgroup one (see [`enter_cgroup`]) for the
/// calling process.
pub fn enter(nss: &[LinuxNamespace]) -> Result<Entered> {
    let mut joins = vec![];
    let mut new = CloneFlags::empty();
    let mut entered = Entered::default();
    for ns in nss.iter().filter(|n| {
        !matches!(
            n.typ(),
            LinuxNamespaceType::Pid | LinuxNamespaceType::Cgroup
        )
    }) {
        let f = flag(ns.typ())?;
        match ns.path() {
            Some(p) => {
                let file = File::open(p)
                    .ctx(|| format!("opening {:?} namespace {}", ns.typ(), p.display()))?;
                joins.push((file, f, p.clone()));
            }
            None => {
                new |= f;
                entered.new_mount |= f == CloneFlags::CLONE_NEWNS;
                entered.new_uts |= f == CloneFlags::CLONE_NEWUTS;
            }
        }
    }
    for (file, f, p) in &joins {
        nix::sched::setns(file, *f).ctx(|| format!("joining namespace {}", p.display()))?;
    }
    if !new.is_empty() {
        nix::sched::unshare(new).ctx(|| format!("creating namespaces {new:?}"))?;
    }
    Ok(entered)
}

/// Joins or creates the cgroup namespace, once the process is in its
/// cgroup: a new namespace is rooted at the cgroup the process is in.
pub fn enter_cgroup(nss: &[LinuxNamespace]) -> Result<()> {
    let Some(ns) = nss.iter().find(|n| n.typ() == LinuxNamespaceType::Cgroup) else {
        return Ok(());
    };
    match ns.path() {
        Some(p) => {
            let f = File::open(p).ctx(|| format!("opening Cgroup namespace {}", p.display()))?;
            nix::sched::setns(&f, CloneFlags::CLONE_NEWCGROUP)
                .ctx(|| format!("joining namespace {}", p.display()))
        }
        None => nix::sched::unshare(CloneFlags::CLONE_NEWCGROUP)
            .ctx(|| "creating a cgroup namespace".to_string()),
    }
}
