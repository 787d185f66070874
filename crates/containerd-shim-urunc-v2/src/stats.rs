//! `Stats`: cgroup metrics of a container (memory, CPU, PIDs), read from
//! the cgroup of its init process (for a unikernel: the monitor), in the
//! form containerd expects for cgroup v1 or v2.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
};

use containerd_shim::protos::{
    cgroups::metrics as v1,
    cgroups_v2::metrics as v2,
    protobuf::{well_known_types::any::Any, Message, MessageField},
};

const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// `key value` lines (memory.stat, cpu.stat, cpuacct.stat) as a map.
pub fn parse_kv(text: &str) -> HashMap<String, u64> {
    text.lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let k = it.next()?;
            let v = it.next()?.parse().ok()?;
            Some((k.to_string(), v))
        })
        .collect()
}

/// A single-number cgroup file; `max` (no limit) and absent files are 0.
fn read_u64(path: &Path) -> u64 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

fn read_kv(path: &Path) -> HashMap<String, u64> {
    std::fs::read_to_string(path)
        .map(|s| parse_kv(&s))
        .unwrap_or_default()
}

/// Parse `/proc/PID/cgroup`: controller → path (v2's unified entry is "").
pub fn parse_proc_cgroup(text: &str) -> HashMap<String, String> {
    let mut m = HashMap::new();
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(ctrls), Some(path)) = (parts.next(), parts.next(), parts.next()) else {
            continue;
        };
        if ctrls.is_empty() {
            m.insert(String::new(), path.to_string());
        }
        for c in ctrls.split(',').filter(|c| !c.is_empty()) {
            m.insert(c.to_string(), path.to_string());
        }
    }
    m
}

/// Metrics of the cgroup `pid` is in, as an `Any` for `StatsResponse`.
pub fn collect(pid: i32) -> Result<Any, String> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .map_err(|e| format!("read /proc/{pid}/cgroup: {e}"))?;
    let cg = parse_proc_cgroup(&text);
    let root = Path::new(CGROUP_ROOT);
    if root.join("cgroup.controllers").exists() {
        let path = cg
            .get("")
            .ok_or_else(|| format!("process {pid} has no cgroup v2 entry"))?;
        let dir = root.join(path.trim_start_matches('/'));
        let m = collect_v2(&dir);
        Ok(Any {
            type_url: "io.containerd.cgroups.v2.Metrics".to_string(),
            value: m
                .write_to_bytes()
                .map_err(|e| format!("encode metrics: {e}"))?,
            ..Default::default()
        })
    } else {
        let dir = |ctrl: &str| -> Option<PathBuf> {
            let p = cg.get(ctrl)?;
            Some(root.join(ctrl).join(p.trim_start_matches('/')))
        };
        let m = collect_v1(dir("memory"), dir("cpuacct"), dir("cpu"), dir("pids"));
        Ok(Any {
            type_url: "io.containerd.cgroups.v1.Metrics".to_string(),
            value: m
                .write_to_bytes()
                .map_err(|e| format!("encode metrics: {e}"))?,
            ..Default::default()
        })
    }
}

fn collect_v1(
    memory: Option<PathBuf>,
    cpuacct: Option<PathBuf>,
    cpu: Option<PathBuf>,
    pids: Option<PathBuf>,
) -> v1::Metrics {
    let mut m = v1::Metrics::new();
    if let Some(d) = memory {
        let s = read_kv(&d.join("memory.stat"));
        let g = |k: &str| s.get(k).copied().unwrap_or(0);
        m.memory = MessageField::some(v1::MemoryStat {
            cache: g("cache"),
            rss: g("rss"),
            rss_huge: g("rss_huge"),
            mapped_file: g("mapped_file"),
            dirty: g("dirty"),
            writeback: g("writeback"),
            pg_pg_in: g("pgpgin"),
            pg_pg_out: g("pgpgout"),
            pg_fault: g("pgfault"),
            pg_maj_fault: g("pgmajfault"),
            inactive_anon: g("inactive_anon"),
            active_anon: g("active_anon"),
            inactive_file: g("inactive_file"),
            active_file: g("active_file"),
            unevictable: g("unevictable"),
            hierarchical_memory_limit: g("hierarchical_memory_limit"),
            hierarchical_swap_limit: g("hierarchical_memsw_limit"),
            total_cache: g("total_cache"),
            total_rss: g("total_rss"),
            total_rss_huge: g("total_rss_huge"),
            total_mapped_file: g("total_mapped_file"),
            total_dirty: g("total_dirty"),
            total_writeback: g("total_writeback"),
            total_pg_pg_in: g("total_pgpgin"),
            total_pg_pg_out: g("total_pgpgout"),
            total_pg_fault: g("total_pgfault"),
            total_pg_maj_fault: g("total_pgmajfault"),
            total_inactive_anon: g("total_inactive_anon"),
            total_active_anon: g("total_active_anon"),
            total_inactive_file: g("total_inactive_file"),
            total_active_file: g("total_active_file"),
            total_unevictable: g("total_unevictable"),
            usage: MessageField::some(v1::MemoryEntry {
                usage: read_u64(&d.join("memory.usage_in_bytes")),
                limit: read_u64(&d.join("memory.limit_in_bytes")),
                max: read_u64(&d.join("memory.max_usage_in_bytes")),
                failcnt: read_u64(&d.join("memory.failcnt")),
                ..Default::default()
            }),
            ..Default::default()
        });
    }
    let mut cpu_stat = v1::CPUStat::new();
    if let Some(d) = cpuacct {
        // cpuacct.stat is in USER_HZ ticks (100 per second on Linux).
        let s = read_kv(&d.join("cpuacct.stat"));
        let ns = |k: &str| s.get(k).copied().unwrap_or(0).saturating_mul(10_000_000);
        cpu_stat.usage = MessageField::some(v1::CPUUsage {
            total: read_u64(&d.join("cpuacct.usage")),
            user: ns("user"),
            kernel: ns("system"),
            ..Default::default()
        });
    }
    if let Some(d) = cpu {
        let s = read_kv(&d.join("cpu.stat"));
        let g = |k: &str| s.get(k).copied().unwrap_or(0);
        cpu_stat.throttling = MessageField::some(v1::Throttle {
            periods: g("nr_periods"),
            throttled_periods: g("nr_throttled"),
            throttled_time: g("throttled_time"),
            ..Default::default()
        });
    }
    m.cpu = MessageField::some(cpu_stat);
    if let Some(d) = pids {
        m.pids = MessageField::some(v1::PidsStat {
            current: read_u64(&d.join("pids.current")),
            limit: read_u64(&d.join("pids.max")),
            ..Default::default()
        });
    }
    m
}

fn collect_v2(dir: &Path) -> v2::Metrics {
    let mut m = v2::Metrics::new();
    let s = read_kv(&dir.join("memory.stat"));
    let g = |k: &str| s.get(k).copied().unwrap_or(0);
    m.memory = MessageField::some(v2::MemoryStat {
        anon: g("anon"),
        file: g("file"),
        kernel_stack: g("kernel_stack"),
        slab: g("slab"),
        sock: g("sock"),
        shmem: g("shmem"),
        file_mapped: g("file_mapped"),
        file_dirty: g("file_dirty"),
        file_writeback: g("file_writeback"),
        anon_thp: g("anon_thp"),
        inactive_anon: g("inactive_anon"),
        active_anon: g("active_anon"),
        inactive_file: g("inactive_file"),
        active_file: g("active_file"),
        unevictable: g("unevictable"),
        slab_reclaimable: g("slab_reclaimable"),
        slab_unreclaimable: g("slab_unreclaimable"),
        pgfault: g("pgfault"),
        pgmajfault: g("pgmajfault"),
        usage: read_u64(&dir.join("memory.current")),
        usage_limit: read_u64(&dir.join("memory.max")),
        swap_usage: read_u64(&dir.join("memory.swap.current")),
        swap_limit: read_u64(&dir.join("memory.swap.max")),
        max_usage: read_u64(&dir.join("memory.peak")),
        ..Default::default()
    });
    let c = read_kv(&dir.join("cpu.stat"));
    let g = |k: &str| c.get(k).copied().unwrap_or(0);
    m.cpu = MessageField::some(v2::CPUStat {
        usage_usec: g("usage_usec"),
        user_usec: g("user_usec"),
        system_usec: g("system_usec"),
        nr_periods: g("nr_periods"),
        nr_throttled: g("nr_throttled"),
        throttled_usec: g("throttled_usec"),
        ..Default::default()
    });
    m.pids = MessageField::some(v2::PidsStat {
        current: read_u64(&dir.join("pids.current")),
        limit: read_u64(&dir.join("pids.max")),
        ..Default::default()
    });
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_cgroup_v1_and_v2() {
        let v1 = "12:pids:/default/c1\n4:cpu,cpuacct:/default/c1\n3:memory:/default/c1\n1:name=systemd:/default/c1\n";
        let m = parse_proc_cgroup(v1);
        assert_eq!(m["cpuacct"], "/default/c1");
        assert_eq!(m["cpu"], "/default/c1");
        assert_eq!(m["memory"], "/default/c1");
        assert!(!m.contains_key(""));
        let m = parse_proc_cgroup("0::/system.slice/x.scope\n");
        assert_eq!(m[""], "/system.slice/x.scope");
        assert!(parse_proc_cgroup("garbage\n").is_empty());
    }

    #[test]
    fn kv_parsing_skips_bad_lines() {
        let m = parse_kv("cache 4096\nrss 8192\nbroken\nnot a-number\n");
        assert_eq!(m.len(), 2);
        assert_eq!(m["rss"], 8192);
    }

    #[test]
    fn v1_metrics_from_files() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("memory.stat"), "cache 10\nrss 20\ntotal_rss 30\n").unwrap();
        std::fs::write(d.join("memory.usage_in_bytes"), "1000\n").unwrap();
        std::fs::write(d.join("memory.limit_in_bytes"), "2000\n").unwrap();
        std::fs::write(d.join("cpuacct.usage"), "123456\n").unwrap();
        std::fs::write(d.join("cpuacct.stat"), "user 2\nsystem 3\n").unwrap();
        std::fs::write(d.join("pids.current"), "4\n").unwrap();
        std::fs::write(d.join("pids.max"), "max\n").unwrap();
        let p = Some(d.to_path_buf());
        let m = collect_v1(p.clone(), p.clone(), p.clone(), p);
        assert_eq!(m.memory.rss, 20);
        assert_eq!(m.memory.total_rss, 30);
        assert_eq!(m.memory.usage.usage, 1000);
        assert_eq!(m.memory.usage.limit, 2000);
        assert_eq!(m.cpu.usage.total, 123456);
        assert_eq!(m.cpu.usage.user, 20_000_000);
        assert_eq!(m.cpu.usage.kernel, 30_000_000);
        assert_eq!(m.pids.current, 4);
        assert_eq!(m.pids.limit, 0);
    }

    #[test]
    fn v2_metrics_from_files() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("memory.stat"), "anon 5\nfile 6\n").unwrap();
        std::fs::write(d.join("memory.current"), "700\n").unwrap();
        std::fs::write(d.join("memory.max"), "max\n").unwrap();
        std::fs::write(
            d.join("cpu.stat"),
            "usage_usec 9\nuser_usec 4\nsystem_usec 5\n",
        )
        .unwrap();
        std::fs::write(d.join("pids.current"), "2\n").unwrap();
        let m = collect_v2(d);
        assert_eq!((m.memory.anon, m.memory.file, m.memory.usage), (5, 6, 700));
        assert_eq!(m.memory.usage_limit, 0);
        assert_eq!(
            (m.cpu.usage_usec, m.cpu.user_usec, m.cpu.system_usec),
            (9, 4, 5)
        );
        assert_eq!(m.pids.current, 2);
    }

    #[test]
    fn collect_for_missing_process_names_it() {
        let e = collect(i32::MAX).unwrap_err();
        assert!(e.contains(&i32::MAX.to_string()), "{e}");
    }
}
