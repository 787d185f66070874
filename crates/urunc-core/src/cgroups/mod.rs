//! Cgroup placement of the container (monitor) process: cgroup v1
//! (one directory per mounted controller) and v2 (unified). The memory
//! limit written is the spec's plus the monitor's overhead reserve, so that
//! guest RAM fits and the monitor is not OOM-killed.

use crate::error::{Context, Result};
use std::path::{Path, PathBuf};

mod running;
pub use running::{freeze, is_frozen, pids, stats};

const ROOT: &str = "/sys/fs/cgroup";

#[derive(Debug, Default, Clone)]
pub struct Limits {
    pub memory_bytes: Option<u64>,
    pub cpu_quota: Option<i64>,
    pub cpu_period: Option<u64>,
    pub cpu_shares: Option<u64>,
    pub pids: Option<i64>,
}

fn is_v2() -> bool {
    Path::new(ROOT).join("cgroup.controllers").exists()
}

/// Turns `linux.cgroupsPath` into a relative path. systemd form
/// `slice:prefix:name` becomes `<slice path>/prefix-name.scope`, an empty
/// slice meaning `system.slice` (runc's default parent).
pub fn relative_path(cgroups_path: &str, systemd: bool) -> PathBuf {
    if systemd {
        let parts: Vec<&str> = cgroups_path.split(':').collect();
        if parts.len() == 3 {
            let slice = if parts[0].is_empty() {
                "system.slice"
            } else {
                parts[0]
            };
            return slice_path(slice).join(format!("{}-{}.scope", parts[1], parts[2]));
        }
    }
    PathBuf::from(cgroups_path.trim_start_matches('/'))
}

/// Where systemd puts a slice: each `-` in the name is a level of the tree,
/// `a-b-c.slice` is `a.slice/a-b.slice/a-b-c.slice`, and `-.slice` is the
/// root (systemd.slice(5)). A name without the `.slice` suffix is taken as
/// a plain path.
fn slice_path(slice: &str) -> PathBuf {
    if slice == "-.slice" {
        return PathBuf::new();
    }
    let Some(stem) = slice.strip_suffix(".slice") else {
        return PathBuf::from(slice.trim_start_matches('/'));
    };
    let mut path = PathBuf::new();
    let mut prefix = String::new();
    for part in stem.split('-') {
        if !prefix.is_empty() {
            prefix.push('-');
        }
        prefix.push_str(part);
        path.push(format!("{prefix}.slice"));
    }
    path
}

/// cgroup v2 `cpu.weight` (1..=10000, the kernel's cgroup-v2.rst) for v1
/// `cpu.shares` (2..=262144), by the linear map runc and crun use:
/// `1 + (shares - 2) * 9999 / 262142`.
fn shares_to_weight(shares: u64) -> u64 {
    1 + (shares.clamp(2, 262_144) - 2) * 9999 / 262_142
}

fn write(dir: &Path, file: &str, value: &str) -> Result<()> {
    std::fs::write(dir.join(file), value)
        .ctx(|| format!("cgroup: writing {value} to {}", dir.join(file).display()))
}

/// Where the container went: its cgroup directories (one per v1
/// controller, or the v2 one) and the parents urunc had to create for them,
/// deepest first. Both are removed at delete (parents only when empty).
#[derive(Debug, Default)]
pub struct Placement {
    pub dirs: Vec<PathBuf>,
    pub created_parents: Vec<PathBuf>,
    /// cgroup v1: the directories the process is still to join itself
    /// ([`join_self`]).
    pub to_join: Vec<Join>,
}

/// A cgroup v1 directory a process joins itself, and whether it must: the
/// accounting controllers must take it, a named hierarchy (name=systemd)
/// may refuse.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Join {
    pub dir: PathBuf,
    pub required: bool,
}

/// Moves the calling thread, the only one of its process, into each of
/// `joins`. On cgroup v1 a process joins its hierarchies itself instead of
/// being moved by PID: moving a whole thread group (`cgroup.procs`, or any
/// PID) has the kernel take its global threadgroup lock for writing, which
/// waits for an RCU grace period first unless `favordynmods` is on; a
/// thread moving only itself (`0` into `tasks`) skips that lock
/// (kernel/cgroup/cgroup.c, `cgroup_procs_write_start`). For a
/// single-threaded process, as the waiting process is, that moves the
/// process. Measured on this Linux 6.18 host, first write after a quiet
/// moment, 24 rounds each: 0.4–0.9 ms against 5–13.5 ms; the nine writes
/// after it cost 40–300 µs either way. (Writing the host's hierarchies
/// from inside a user namespace of its own would fail; unikernel
/// containers get none, `sandbox::namespaces` refuses it.)
pub fn join_self(joins: &[Join]) -> Result<()> {
    for j in joins {
        let tasks = j.dir.join("tasks");
        if let Err(e) = std::fs::write(&tasks, "0") {
            if j.required {
                return Err(crate::Error::sys(
                    format!("cgroup: joining {}", tasks.display()),
                    e,
                ));
            }
        }
    }
    Ok(())
}

/// `create_dir_all`, returning the missing ancestors of `dir` it created,
/// deepest first.
fn create_tracked(dir: &Path, parents: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut missing = vec![];
    let mut p = dir.parent();
    while let Some(d) = p {
        if d.exists() {
            break;
        }
        missing.push(d.to_path_buf());
        p = d.parent();
    }
    std::fs::create_dir_all(dir)?;
    parents.extend(missing);
    Ok(())
}

/// The cgroup v1 hierarchies mounted under the root, sorted.
fn v1_hierarchies() -> Vec<PathBuf> {
    let Ok(rd) = std::fs::read_dir(ROOT) else {
        return vec![];
    };
    let mut v: Vec<PathBuf> = rd
        .flatten()
        .filter(|e| e.file_type().map(|t| t.is_dir()).unwrap_or(false))
        .map(|e| e.path())
        .collect();
    v.sort();
    v
}

/// What [`place`] would create for `rel`, without creating it: the
/// directories and their missing ancestors (deepest first). `create`
/// records this before placing, so that a `create` killed half-way leaves
/// no cgroup that `delete` does not know of.
pub fn planned(rel: &Path) -> Placement {
    let dirs: Vec<PathBuf> = if is_v2() {
        vec![Path::new(ROOT).join(rel)]
    } else {
        v1_hierarchies().iter().map(|c| c.join(rel)).collect()
    };
    let mut created_parents = vec![];
    for d in &dirs {
        let mut p = d.parent();
        while let Some(a) = p.filter(|a| !a.exists()) {
            created_parents.push(a.to_path_buf());
            p = a.parent();
        }
    }
    Placement {
        dirs,
        created_parents,
        ..Default::default()
    }
}

/// A container's cgroup between [`prepare`] (before its process is forked)
/// and [`place`] (after).
pub enum Pending {
    /// cgroup v2: made, its controllers enabled and its limits written, the
    /// directory open for `clone3(CLONE_INTO_CGROUP)` (sandbox/fork.rs) so
    /// that the process is born in it instead of moved.
    Made {
        placed: Placement,
        dir: std::fs::File,
    },
    /// cgroup v1, whose hierarchies a process can only be moved into: all
    /// is done by [`place`], after the fork, while the child enters its
    /// namespaces (making ten hierarchies' directories costs ~0.3 ms).
    Later { rel: PathBuf, limits: Limits },
}

impl Pending {
    /// The directory to fork into, if any.
    pub fn dir(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        use std::os::fd::AsFd;
        match self {
            Pending::Made { dir, .. } => Some(dir.as_fd()),
            Pending::Later { .. } => None,
        }
    }

    /// Removes what [`prepare`] made (the fork failed).
    pub fn discard(self) {
        if let Pending::Made { placed, .. } = self {
            unmake(&placed);
        }
    }
}

/// The first half of placement (see [`Pending`]). On failure, removes what
/// it created.
pub fn prepare(rel: &Path, limits: &Limits) -> Result<Pending> {
    if !is_v2() {
        return Ok(Pending::Later {
            rel: rel.to_path_buf(),
            limits: limits.clone(),
        });
    }
    let mut placed = Placement::default();
    let made = make_v2(rel, limits, &mut placed).and_then(|dir| {
        std::fs::File::open(&dir).ctx(|| format!("cgroup: opening {}", dir.display()))
    });
    match made {
        Ok(dir) => Ok(Pending::Made { placed, dir }),
        Err(e) => {
            unmake(&placed);
            Err(e)
        }
    }
}

/// Removes a placement's directories, then the parents it created.
fn unmake(placed: &Placement) {
    remove(&placed.dirs);
    remove_parents(&placed.created_parents);
}

fn make_v2(rel: &Path, limits: &Limits, placed: &mut Placement) -> Result<PathBuf> {
    let (dirs, parents) = (&mut placed.dirs, &mut placed.created_parents);
    let dir = Path::new(ROOT).join(rel);
    create_tracked(&dir, parents).ctx(|| format!("cgroup: creating {}", dir.display()))?;
    dirs.push(dir.clone());
    enable_controllers(&dir, limits)?;
    if let Some(m) = limits.memory_bytes {
        write(&dir, "memory.max", &m.to_string())?;
    }
    let quota = limits.cpu_quota.filter(|q| *q > 0);
    if quota.is_some() || limits.cpu_period.is_some() {
        let q = quota.map_or("max".to_string(), |q| q.to_string());
        write(
            &dir,
            "cpu.max",
            &format!("{q} {}", limits.cpu_period.unwrap_or(100_000)),
        )?;
    }
    if let Some(s) = limits.cpu_shares.filter(|s| *s > 0) {
        write(&dir, "cpu.weight", &shares_to_weight(s).to_string())?;
    }
    if let Some(p) = limits.pids.filter(|p| *p > 0) {
        write(&dir, "pids.max", &p.to_string())?;
    }
    Ok(dir)
}

/// The second half of placement: `pid` in the cgroup(s), unless it was
/// born in it (`born`, sandbox/fork.rs); on cgroup v1 the hierarchies'
/// directories made and limited first, for the process to join itself
/// ([`Placement::to_join`], [`join_self`]). On failure, removes what
/// placement created.
pub fn place(pending: Pending, pid: i32, born: bool) -> Result<Placement> {
    let (placed, moved, how) = match pending {
        Pending::Made { placed, .. } if born => (placed, Ok(()), "born in"),
        Pending::Made { placed, .. } => {
            let moved = match placed.dirs.first() {
                Some(dir) => write(dir, "cgroup.procs", &pid.to_string()),
                None => Ok(()),
            };
            (placed, moved, "moved into")
        }
        Pending::Later { rel, limits } => {
            let mut placed = Placement::default();
            let moved = make_v1(&rel, &limits, &mut placed);
            (placed, moved, "joins itself")
        }
    };
    match moved {
        Ok(()) => {
            crate::log::debug(&format!("cgroup: process {pid} {how} {:?}", placed.dirs));
            Ok(placed)
        }
        Err(e) => {
            unmake(&placed);
            Err(e)
        }
    }
}

fn make_v1(rel: &Path, limits: &Limits, placed: &mut Placement) -> Result<()> {
    let (dirs, parents) = (&mut placed.dirs, &mut placed.created_parents);
    for c in v1_hierarchies() {
        let name = c
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("")
            .to_string();
        let dir = c.join(rel);
        if create_tracked(&dir, parents).is_err() {
            continue;
        }
        dirs.push(dir.clone());
        match name.as_str() {
            "memory" => {
                if let Some(m) = limits.memory_bytes {
                    write(&dir, "memory.limit_in_bytes", &m.to_string())?;
                }
            }
            "cpu" | "cpu,cpuacct" => {
                if let Some(p) = limits.cpu_period {
                    write(&dir, "cpu.cfs_period_us", &p.to_string())?;
                }
                if let Some(q) = limits.cpu_quota {
                    write(&dir, "cpu.cfs_quota_us", &q.to_string())?;
                }
                if let Some(s) = limits.cpu_shares {
                    write(&dir, "cpu.shares", &s.to_string())?;
                }
            }
            "pids" => {
                if let Some(p) = limits.pids.filter(|p| *p > 0) {
                    write(&dir, "pids.max", &p.to_string())?;
                }
            }
            "cpuset" => {
                // A new cpuset cgroup starts empty; inherit the parent's.
                for f in ["cpuset.cpus", "cpuset.mems"] {
                    inherit_cpuset(&dir, f);
                }
            }
            _ => {}
        }
        // Named hierarchies (name=systemd) may refuse; the accounting
        // controllers above must not.
        let required = ["memory", "cpu", "pids"].contains(&name.as_str());
        placed.to_join.push(Join { dir, required });
    }
    Ok(())
}

/// cgroup v2: a controller's files (`memory.max`, `cpu.max`, ...) exist in
/// a cgroup only when every ancestor lists the controller in its
/// `cgroup.subtree_control` (the kernel's cgroup-v2.rst, "Enabling and
/// Disabling"); a fresh hierarchy, or parents urunc just created, enable
/// none. Enables memory, cpu and pids from the root down to `dir`'s parent
/// where the parent offers them. A controller a limit needs must succeed;
/// the others (for stats only) are best effort.
fn enable_controllers(dir: &Path, limits: &Limits) -> Result<()> {
    let needed = |c: &str| match c {
        "memory" => limits.memory_bytes.is_some(),
        "cpu" => {
            limits.cpu_quota.is_some_and(|q| q > 0)
                || limits.cpu_period.is_some()
                || limits.cpu_shares.is_some_and(|s| s > 0)
        }
        "pids" => limits.pids.is_some_and(|p| p > 0),
        _ => false,
    };
    let rel = dir.strip_prefix(ROOT).unwrap_or(dir);
    let mut level = PathBuf::from(ROOT);
    for part in rel.components() {
        let read = |f: &str| std::fs::read_to_string(level.join(f)).unwrap_or_default();
        let (offered, enabled) = (read("cgroup.controllers"), read("cgroup.subtree_control"));
        for c in ["memory", "cpu", "pids"] {
            if enabled.split_whitespace().any(|e| e == c) {
                continue;
            }
            if !offered.split_whitespace().any(|o| o == c) {
                if needed(c) {
                    return Err(crate::Error::msg(format!(
                        "cgroup: controller {c} is not available in {} (cgroup.controllers: {})",
                        level.display(),
                        offered.trim()
                    )));
                }
                continue;
            }
            let r = write(&level, "cgroup.subtree_control", &format!("+{c}"));
            if needed(c) {
                r?;
            }
        }
        level.push(part);
    }
    Ok(())
}

fn inherit_cpuset(dir: &Path, file: &str) {
    let mine = dir.join(file);
    if std::fs::read_to_string(&mine)
        .map(|s| !s.trim().is_empty())
        .unwrap_or(true)
    {
        return;
    }
    let mut p = dir.parent();
    while let Some(d) = p {
        if let Ok(v) = std::fs::read_to_string(d.join(file)) {
            if !v.trim().is_empty() {
                let _ = std::fs::write(&mine, v.trim());
                return;
            }
        }
        p = d.parent();
    }
}

/// Removes the parents urunc created, where now empty (other containers of
/// the same namespace or pod may still use them).
pub fn remove_parents(parents: &[PathBuf]) {
    for d in parents {
        let _ = std::fs::remove_dir(d);
    }
}

/// Cgroup parents urunc created, kept under `--root` because they are
/// shared: a parent made by one container's `create` may outlive that
/// container (its siblings still use it) and be empty only once a container
/// that did not make it is deleted. Every `delete` removes those that are
/// empty by then. Guarded by a `flock` on `--root` itself.
const SHARED_PARENTS: &str = ".cgroup-parents.json";

fn with_shared_parents(root: &Path, f: impl FnOnce(&mut Vec<PathBuf>)) {
    let Ok(dir) = std::fs::File::open(root) else {
        return;
    };
    // SAFETY: flock on a descriptor we own; released when it is closed.
    if unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&dir), libc::LOCK_EX) } != 0 {
        return;
    }
    let file = root.join(SHARED_PARENTS);
    let mut list: Vec<PathBuf> = std::fs::read(&file)
        .ok()
        .and_then(|d| serde_json::from_slice(&d).ok())
        .unwrap_or_default();
    let before = list.clone();
    f(&mut list);
    if list == before {
        return;
    }
    if list.is_empty() {
        let _ = std::fs::remove_file(&file);
    } else if let Ok(data) = serde_json::to_vec(&list) {
        let tmp = root.join(format!("{SHARED_PARENTS}.tmp"));
        if std::fs::write(&tmp, data).is_ok() {
            let _ = std::fs::rename(&tmp, &file);
        }
    }
}

/// Records parents a `create` made (see [`SHARED_PARENTS`]).
pub fn share_parents(root: &Path, created: &[PathBuf]) {
    if created.is_empty() {
        return;
    }
    with_shared_parents(root, |list| {
        for p in created {
            if !list.contains(p) {
                list.push(p.clone());
            }
        }
        list.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    });
}

/// Removes the shared parents that are empty now (deepest first).
pub fn remove_shared_parents(root: &Path) {
    if !root.join(SHARED_PARENTS).exists() {
        return;
    }
    with_shared_parents(root, |list| {
        list.retain(|d| match std::fs::remove_dir(d) {
            Ok(()) => false,
            Err(e) => e.kind() != std::io::ErrorKind::NotFound,
        });
    });
}

/// Removes the cgroup directories (empty once the monitor is gone).
pub fn remove(dirs: &[PathBuf]) {
    for d in dirs {
        for _ in 0..50 {
            match std::fs::remove_dir(d) {
                Ok(()) => break,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(2)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(
            relative_path("/default/abc", false),
            PathBuf::from("default/abc")
        );
        assert_eq!(
            relative_path("system.slice:docker:abc", true),
            PathBuf::from("system.slice/docker-abc.scope")
        );
        assert_eq!(
            relative_path("kubepods-besteffort-pod12.slice:cri-containerd:abc", true),
            PathBuf::from(
                "kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod12.slice/cri-containerd-abc.scope"
            )
        );
        assert_eq!(
            relative_path("-.slice:urunc:abc", true),
            PathBuf::from("urunc-abc.scope")
        );
        assert_eq!(
            relative_path(":urunc:abc", true),
            PathBuf::from("system.slice/urunc-abc.scope")
        );
    }

    #[test]
    fn weights() {
        // the ends of the two ranges map onto each other; the v1 default
        // 1024 lands near the v2 default 100
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(262_144), 10_000);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(512), 20);
        assert_eq!(shares_to_weight(1), 1);
        assert_eq!(shares_to_weight(1 << 20), 10_000);
    }
}
