//! Unikraft command lines as a Unikraft kernel reads them: urunc starts the
//! project's test kernel as a Unikraft image on QEMU, and the kernel's
//! reader (`tests/fixtures/ukparse/ukparse.c`, Unikraft 0.17's rules)
//! prints the parameters it applied, argv and the environment. Cloud
//! Hypervisor and Firecracker get the same checks in clh.rs and
//! firecracker.rs.

mod support;
use support::*;

/// Where the sandbox attaches the kernel (QEMU passes the path as argv[0]).
const KPATH: &str = "/run/urunc/boot/kernel";

fn run_tiny(id: &str, args: &[&str], env_vars: &[&str]) -> String {
    let env = Env::new(TINY_CONFIG);
    let mut b = tiny_bundle(args);
    b.env(env_vars);
    let bundle = b.write();
    let o = env.urunc(&["run", "--bundle", &bundle, id]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    println!("{}", marker_lines(&out, "URUNC-").join("\n"));
    out
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

#[test]
fn no_application_argument_still_applies_the_parameters() {
    let t = "no_application_argument_still_applies_the_parameters";
    if !need_qemu(t) {
        return;
    }
    // `nerdctl run IMAGE unikernel`: only the program name.
    let out = run_tiny("uk-noargs", &["unikernel"], &["GREETING=hi there", "B=2"]);
    assert_eq!(
        marker_lines(&out, "URUNC-UK libparam:"),
        ["URUNC-UK libparam: applied 5 words before --"],
        "{out}"
    );
    assert_eq!(
        unikraft_understood(&out),
        (strings(&[KPATH]), strings(&["GREETING=hi there", "B=2"]))
    );
}

#[test]
fn one_application_argument() {
    if !need_qemu("one_application_argument") {
        return;
    }
    let out = run_tiny("uk-onearg", &["httpreply", "extra-arg"], &["A=1"]);
    assert_eq!(
        unikraft_understood(&out),
        (strings(&[KPATH, "extra-arg"]), strings(&["A=1"]))
    );
}

#[test]
fn many_arguments_with_spaces_and_quotes() {
    if !need_qemu("many_arguments_with_spaces_and_quotes") {
        return;
    }
    let args = [
        "app",
        "two words",
        "it's",
        r#"say "hi""#,
        r"back\slash",
        "--",
        "env.vars=[",
    ];
    let out = run_tiny(
        "uk-many",
        &args,
        &["MSG=it's \"quoted\"", "END=x]", "PATH=/bin"],
    );
    let mut argv = vec![KPATH];
    argv.extend(&args[1..]);
    assert_eq!(
        unikraft_understood(&out),
        (
            strings(&argv),
            strings(&["MSG=it's \"quoted\"", "END=x]", "PATH=/bin"])
        )
    );
}

#[test]
fn no_parameter_and_no_argument() {
    if !need_qemu("no_parameter_and_no_argument") {
        return;
    }
    let out = run_tiny("uk-bare", &["app"], &[]);
    assert_eq!(unikraft_understood(&out), (strings(&[KPATH]), vec![]));
    assert!(marker_lines(&out, "URUNC-UK unknown").is_empty(), "{out}");
}

#[test]
fn pod_address_reaches_lwip_with_no_argument() {
    let t = "pod_address_reaches_lwip_with_no_argument";
    if !need_qemu(t) || !need_root(t) || !need_bin(t, "ip") {
        return;
    }
    let name = format!("urunc-uk{}", std::process::id() % 100000);
    let ns = PodNetNs::new(&name, "10.77.0", "02:42:0a:4d:00:02");
    // -M pc: microvm has no PCI bus for virtio-net-pci.
    let env = Env::new("[monitors.qemu]\naccel = \"kvm-tcg\"\n");
    let mut b = tiny_bundle(&["unikernel"]);
    b.env(&["PATH=/bin", "TERM=xterm"]);
    let nss = serde_json::json!([{"type": "pid"}, {"type": "mount"}, {"type": "ipc"}, {"type": "uts"}, {"type": "network", "path": ns.path()}]);
    b.spec["linux"]["namespaces"] = nss;
    let bundle = b.write();
    let o = env.urunc(&["run", "--bundle", &bundle, "uk-net"]);
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    println!("{}", marker_lines(&out, "URUNC-").join("\n"));
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
    let net = marker_lines(&out, "URUNC-UK net0:");
    assert_eq!(net.len(), 1, "{out}");
    assert!(
        net[0].starts_with("URUNC-UK net0: ip=10.77.0.2/24 gw=10.77.0.1 dns0="),
        "{out}"
    );
    assert_eq!(
        unikraft_understood(&out),
        (strings(&[KPATH]), strings(&["PATH=/bin", "TERM=xterm"]))
    );
}
