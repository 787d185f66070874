//! Resources and confinement of the monitor: cgroup placement and limits,
//! guest memory and vCPUs from the spec, QEMU's seccomp sandbox, the
//! sandbox root, timestamps.

mod support;
use serde_json::json;
use std::time::Duration;
use support::*;

fn cmdline(pid: i32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .unwrap()
        .split(|b| *b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect()
}

#[test]
fn cgroup_memory_vcpus_and_seccomp_from_the_spec() {
    if !need_qemu("cgroup_memory_vcpus_and_seccomp_from_the_spec") {
        return;
    }
    subreaper();
    let env = Env::new(TINY_CONFIG);
    let mut b = tiny_bundle(&["app", "hang"]);
    let cg = format!("urunc-test/{}", std::process::id());
    b.memory_mib(300);
    b.spec["linux"]["resources"]["cpu"] = json!({"quota": 150000, "period": 100000});
    b.spec["linux"]["cgroupsPath"] = json!(format!("/{cg}"));
    let pid = env.create(&b.write(), "res1", &["--debug"]);
    // How create placed it: born in the cgroup (v2, clone3), or on v1 it
    // joined each hierarchy itself (cgroups::join_self), and so is in
    // every accounting one.
    let log = std::fs::read_to_string(&env.log).unwrap_or_default();
    let how = format!("cgroup: process {pid} ");
    let placed = log
        .split(&how)
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .unwrap_or("(no debug line)");
    let v2 = std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    assert_eq!(placed, if v2 { "born" } else { "joins" }, "{log}");
    if !v2 {
        let mine = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
        for c in ["memory", "cpu", "pids"] {
            assert!(
                mine.lines().any(|l| {
                    let mut f = l.splitn(3, ':').skip(1);
                    let (ctl, path) = (f.next().unwrap_or(""), f.next().unwrap_or(""));
                    ctl.split(',').any(|x| x == c) && path == format!("/{cg}")
                }),
                "not in its {c} cgroup: {mine}"
            );
        }
    }
    env.ok(&["start", "res1"]);
    assert!(env.wait_out("res1", "URUNC-TESTKERNEL hang", Duration::from_secs(60)));
    let argv = cmdline(pid);
    let after = |flag: &str| {
        argv.iter()
            .position(|a| a == flag)
            .map(|i| argv[i + 1].clone())
    };
    assert_eq!(after("-m").as_deref(), Some("300M"), "{argv:?}");
    assert_eq!(
        after("-smp").as_deref(),
        Some("2"),
        "quota/period 1.5 rounds up: {argv:?}"
    );
    assert!(after("-sandbox").unwrap().starts_with("on,"), "{argv:?}");
    // The monitor is in the container's cgroup, whose limit is the guest's
    // memory plus QEMU's overhead reserve.
    let (procs, limit_file) = if v2 {
        (
            format!("/sys/fs/cgroup/{cg}/cgroup.procs"),
            format!("/sys/fs/cgroup/{cg}/memory.max"),
        )
    } else {
        (
            format!("/sys/fs/cgroup/memory/{cg}/cgroup.procs"),
            format!("/sys/fs/cgroup/memory/{cg}/memory.limit_in_bytes"),
        )
    };
    let procs = std::fs::read_to_string(procs).unwrap();
    assert!(
        procs.lines().any(|l| l.trim() == pid.to_string()),
        "{procs}"
    );
    let limit: u64 = std::fs::read_to_string(limit_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(limit, (300 + 64) << 20);
    // The monitor's root is the sandbox: the container rootfs under /rootfs,
    // no host /etc, /home or /root.
    let root = format!("/proc/{pid}/root");
    assert!(std::path::Path::new(&format!("{root}/rootfs/unikernel/kernel")).exists());
    for host_only in ["etc/passwd", "home", "root", "var"] {
        assert!(
            !std::path::Path::new(&format!("{root}/{host_only}")).exists(),
            "{host_only} visible to the monitor"
        );
    }
    // events --stats reads the same cgroup.
    let o = env.ok(&["events", "--stats", "res1"]);
    let ev: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        (ev["type"].as_str(), ev["id"].as_str()),
        (Some("stats"), Some("res1"))
    );
    assert!(
        ev["data"]["memory"]["usage"]["usage"].as_u64().unwrap() > 0,
        "{ev}"
    );
    assert_eq!(
        ev["data"]["memory"]["usage"]["limit"].as_u64(),
        Some((300 + 64) << 20)
    );
    assert!(ev["data"]["pids"]["current"].as_u64().unwrap() >= 1, "{ev}");
    env.ok(&["delete", "--force", "res1"]);
    assert!(wait_exit(pid, Duration::from_secs(30)).is_some());
    let dir = if v2 {
        format!("/sys/fs/cgroup/{cg}")
    } else {
        format!("/sys/fs/cgroup/memory/{cg}")
    };
    assert!(
        !std::path::Path::new(&dir).exists(),
        "cgroup {dir} left behind"
    );
    // Nothing was written into the bundle's rootfs.
    let mut entries: Vec<_> = std::fs::read_dir(b.rootfs())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    entries.sort();
    assert_eq!(entries, ["unikernel"]);
    // The parent urunc had to create for this path is removed too.
    let parent = std::path::Path::new(&dir).parent().unwrap().to_path_buf();
    assert!(
        !parent.exists(),
        "cgroup parent {} left behind",
        parent.display()
    );
}

#[test]
fn no_seccomp_section_means_no_sandbox_flag() {
    if !need_qemu("no_seccomp_section_means_no_sandbox_flag") {
        return;
    }
    subreaper();
    let env = Env::new(TINY_CONFIG);
    let mut b = tiny_bundle(&["app", "hang"]);
    b.spec["linux"].as_object_mut().unwrap().remove("seccomp");
    let pid = env.create(&b.write(), "noseccomp", &[]);
    env.ok(&["start", "noseccomp"]);
    assert!(!cmdline(pid).contains(&"-sandbox".to_string()));
    env.ok(&["delete", "--force", "noseccomp"]);
    assert!(wait_exit(pid, Duration::from_secs(30)).is_some());
}

#[test]
fn timestamps_cover_every_step() {
    if !need_qemu("timestamps_cover_every_step") {
        return;
    }
    subreaper();
    let env = Env::new("");
    let ts = env.dir.path().join("ts.log");
    std::fs::write(
        &env.config,
        format!(
            "[timestamps]\nenabled = true\ndestination = \"{}\"\n{TINY_CONFIG}",
            ts.display()
        ),
    )
    .unwrap();
    let b = tiny_bundle(&["x"]);
    let pid = env.create(&b.write(), "ts1", &[]);
    env.ok(&["start", "ts1"]);
    assert_eq!(wait_exit(pid, Duration::from_secs(60)), Some(0));
    env.ok(&["delete", "ts1"]);
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&ts)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let ids: Vec<&str> = lines
        .iter()
        .map(|l| l["timestampID"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            "TS00", "TS01", "TS02", "TS03", "TS10", "TS11", "TS12", "TS13", "TS14", "TS15", "TS16",
            "TS20", "TS21"
        ],
        "{lines:?}"
    );
    assert!(lines.iter().all(|l| l["containerID"] == "ts1"));
    let t: Vec<u64> = lines.iter().map(|l| l["time"].as_u64().unwrap()).collect();
    assert!(
        t.windows(2).all(|w| w[0] <= w[1]),
        "timestamps not monotonic: {t:?}"
    );
}

#[test]
fn monitor_runs_as_process_user_with_its_own_device_nodes() {
    if !need_qemu("monitor_runs_as_process_user_with_its_own_device_nodes") {
        return;
    }
    if !std::path::Path::new("/dev/kvm").exists() {
        println!("SKIP: monitor_runs_as_process_user_with_its_own_device_nodes: no /dev/kvm");
        return;
    }
    subreaper();
    // KVM only: the monitor must open /dev/kvm as uid 4242.
    let env = Env::new("[monitors.qemu]\naccel = \"kvm\"\nmachine = \"microvm\"\n");
    let mut b = tiny_bundle(&["app", "hang"]);
    b.spec["process"]["user"] = json!({"uid": 4242, "gid": 4242, "additionalGids": [4243]});
    let host_kvm = std::fs::metadata("/dev/kvm").unwrap();
    let pid = env.create(&b.write(), "user1", &[]);
    env.ok(&["start", "user1"]);
    assert!(
        env.wait_out("user1", "URUNC-TESTKERNEL hang", Duration::from_secs(60)),
        "{}\n{}",
        env.out("user1"),
        env.err("user1")
    );
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |n: &str| {
        status
            .lines()
            .find(|l| l.starts_with(n))
            .unwrap()
            .split_whitespace()
            .skip(1)
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(field("Uid:"), "4242 4242 4242 4242");
    assert_eq!(field("Gid:"), "4242 4242 4242 4242");
    assert_eq!(field("Groups:"), "4243");
    use std::os::unix::fs::MetadataExt;
    let kvm = std::fs::metadata(format!("/proc/{pid}/root/dev/kvm")).unwrap();
    assert_eq!((kvm.uid(), kvm.rdev()), (4242, host_kvm.rdev()));
    // The host's node is untouched.
    let after = std::fs::metadata("/dev/kvm").unwrap();
    assert_eq!(
        (after.uid(), after.gid(), after.mode()),
        (host_kvm.uid(), host_kvm.gid(), host_kvm.mode())
    );
    env.ok(&["delete", "--force", "user1"]);
    assert!(wait_exit(pid, Duration::from_secs(30)).is_some());
}

#[test]
fn cgroup_namespace_is_rooted_at_the_container_cgroup() {
    let t = "cgroup_namespace_is_rooted_at_the_container_cgroup";
    if !need_qemu(t) || !need_bin(t, "nsenter") {
        return;
    }
    subreaper();
    let env = Env::new(TINY_CONFIG);
    let mut b = tiny_bundle(&["app", "hang"]);
    b.spec["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "cgroup"}));
    b.spec["linux"]["cgroupsPath"] = json!(format!("/urunc-cgns/{}", std::process::id()));
    let pid = env.create(&b.write(), "cgns", &[]);
    let _guard = DeleteOnDrop(&env, "cgns");
    env.ok(&["start", "cgns"]);
    assert!(env.wait_out("cgns", "URUNC-TESTKERNEL hang", Duration::from_secs(60)));
    // Seen from inside its cgroup namespace, the monitor is at its root.
    let o = std::process::Command::new("nsenter")
        .arg(format!("--cgroup=/proc/{pid}/ns/cgroup"))
        .args(["cat", &format!("/proc/{pid}/cgroup")])
        .output()
        .unwrap();
    let view = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(o.status.success(), "{}", text(&o));
    let memory = view
        .lines()
        .find(|l| {
            l.split(':')
                .nth(1)
                .is_some_and(|c| c.split(',').any(|c| c == "memory") || c.is_empty())
        })
        .unwrap_or_else(|| panic!("no memory line: {view}"));
    assert!(
        memory.ends_with(":/"),
        "the cgroup namespace is not rooted at the container's cgroup: {view}"
    );
    env.ok(&["delete", "--force", "cgns"]);
    assert!(wait_exit(pid, Duration::from_secs(30)).is_some());
}
