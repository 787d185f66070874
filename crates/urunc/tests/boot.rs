//! Real boots through `urunc run` and `create`/`start` on real QEMU.

mod support;
use std::time::Duration;
use support::*;

#[test]
fn tiny_kernel_prints_unikraft_cmdline_via_run() {
    if !need_qemu("tiny_kernel_prints_unikraft_cmdline_via_run") {
        return;
    }
    let env = Env::new(TINY_CONFIG);
    let mut b = tiny_bundle(&["hello", "world"]);
    b.env(&["A=1", "B=two"]);
    let bundle = b.write();
    let o = env.urunc(&["run", "--bundle", &bundle, "tiny-run"]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    assert_eq!(
        marker_lines(&out, "URUNC-TESTKERNEL cmdline:"),
        ["URUNC-TESTKERNEL cmdline: /run/urunc/boot/kernel hello env.vars=[ A=1 B=two ] -- world"],
        "{}",
        text(&o)
    );
    assert!(
        !env.state_dir("tiny-run").exists(),
        "run must delete the container"
    );
}

#[test]
fn mewz_exit_status_is_the_monitors() {
    if !need_qemu("mewz_exit_status_is_the_monitors") {
        return;
    }
    subreaper();
    let env = Env::new(TINY_CONFIG);
    let fx = fixtures();
    let mut b = Bundle::new();
    // The test kernel reads exit=N from its command line; mewz renders only
    // network words, so pass it through the config's extra guest args.
    b.add_file(&fx.join("testkernel.elf"), "/unikernel/kernel")
        .unikernel("mewz", "qemu", "/unikernel/kernel")
        .memory_mib(512);
    let bundle = b.write();
    std::fs::write(
        &env.config,
        format!("{TINY_CONFIG}extra_guest_args = [\"exit=3\"]\n"),
    )
    .unwrap();
    let pid = env.create(&bundle, "mewz1", &[]);
    assert_eq!(env.status("mewz1"), "created");
    env.ok(&["start", "mewz1"]);
    // isa-debug-exit: status (3 << 1) | 1.
    assert_eq!(wait_exit(pid, Duration::from_secs(60)), Some(7));
    assert_eq!(env.status("mewz1"), "stopped");
    assert!(
        env.out("mewz1").contains("URUNC-TESTKERNEL exit: 3"),
        "{}",
        env.out("mewz1")
    );
    env.ok(&["delete", "mewz1"]);
    assert!(!env.state_dir("mewz1").exists());
}
