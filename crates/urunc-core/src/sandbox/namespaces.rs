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
    pub new_pid: bool,
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

/// Joins and creates namespaces for the calling process. A new PID
/// namespace applies to children only: the caller forks after this.
pub fn enter(nss: &[LinuxNamespace]) -> Result<Entered> {
    let mut joins = vec![];
    let mut new = CloneFlags::empty();
    let mut entered = Entered::default();
    for ns in nss {
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
                entered.new_pid |= f == CloneFlags::CLONE_NEWPID;
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
