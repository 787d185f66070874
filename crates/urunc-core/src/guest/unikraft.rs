//! Unikraft. From 0.16.1 on: `<app> [env.vars=[ K=V ... ]]
//! [netdev.ip=<ip>/<prefix>:<gw>:<dns>] [vfs.fstab=[ "initrd0:/:extract:::" ]]
//! -- <args>`; before that, the `netdev.ipv4_*` parameters and
//! `vfs.rootfs=initrd`.
//!
//! Shared directories (9p only): the container rootfs is the root,
//! `"fs0:/:9pfs:::"` in `vfs.fstab` instead of the initrd entry
//! (`vfs.rootdev=fs0 vfs.rootfs=9pfs` before 0.16.1); each volume adds
//! `"fsN:<mount point>:9pfs:::"` (0.16.1 and later only).
//!
//! # How Unikraft reads its command line (unikraft RELEASE-0.17.0)
//!
//! - `lib/ukargparse/argparse.c` (`uk_argnparse`) splits the line into
//!   words at space, `\t`, `\n`, `\r`, `\v`; `'` and `"` quote (and are
//!   removed), a backslash outside single quotes escapes the next character
//!   (`\"` inside double quotes is `"`, `\\` is `\`). A quoted empty
//!   string (`''`) makes **no** word at all, so an empty argument cannot be
//!   passed (refused here). At most `CONFIG_LIBUKBOOT_MAXNBARGS` (default
//!   60, `lib/ukboot/Config.uk`) words are kept, the rest dropped.
//! - `plat/kvm/x86/setup.c` hands the whole line to `ukplat_entry_argp`
//!   (`lib/ukboot/boot.c`) with no separate program name, so argv[0] is the
//!   first word. x86 images boot by multiboot on QEMU and by the Linux
//!   64-bit boot protocol (`plat/kvm/x86/lxboot.c`) on Firecracker
//!   (`plat/kvm/Config.uk`); QEMU's multiboot loader writes `<kernel path>
//!   <-append>`, so there argv[0] is the kernel's path and our first word
//!   is read as a parameter word; on Firecracker argv[0] is our first
//!   word, the program name. Unikraft 0.17 has no boot protocol for Cloud
//!   Hypervisor (PVH); an image that boots there gets our line as it is,
//!   argv[0] being our first word too.
//! - `lib/ukboot/boot.c` (`ukplat_entry`) runs `uk_libparam_parse` over
//!   argv[1..] first as a scan: it returns the index `rc` of the first `--`
//!   word, or the word count when there is none. **Only if `0 < rc <
//!   count`** are the words before `--` applied as library parameters and
//!   removed from argv (argv becomes argv[0] followed by the words after
//!   `--`). So without `--` nothing is applied and every word is an
//!   application argument; with `--` right after argv[0] nothing is applied
//!   either and `--` stays in argv. A trailing `--` is fine.
//! - `lib/uklibparam/parser.c`: before `--`, a word `<lib>.<param>=<value>`
//!   sets a registered parameter (exact names); an unknown one is warned
//!   about and ignored, a word without `.` is ignored silently, the word
//!   `help` prints the usage and halts. A value that starts with `[` opens
//!   a list: every following word is one more array value until a word
//!   that ends with `]` (that `]` is removed), so a list value cannot end
//!   with `]` (then the entries are passed as separate `<lib>.<param>=V`
//!   words, which also append to an array). Values beyond an array's size
//!   are dropped.
//! - Parameters used here: `env.vars` (`lib/posix-environ/environ.c`, an
//!   array of `CONFIG_LIBPOSIX_ENVIRON_LIBPARAM_MAXCOUNT` entries, default
//!   8, and only with `CONFIG_LIBPOSIX_ENVIRON_LIBPARAM`);
//!   `netdev.ip` (`lib/uknetdev/netdev.c`, one entry per NIC:
//!   `cidr[:gw[:dns0[:dns1[:hostname[:domain]]]]]`, split at `:` by
//!   `uk_nextarg`, empty fields unset; the CIDR is read by lib-lwip's
//!   `init.c`); `vfs.fstab` (`lib/vfscore/automount.c`, up to 16 entries
//!   `dev:path:fs[:flags[:opts[:ukopts]]]`, the path absolute);
//!   `virtio_mmio.device` (`drivers/virtio/mmio/virtio_mmio_cmdl.c`,
//!   `<size>@<base>:<irq>[:<id>]`, the devices Firecracker adds). Before
//!   0.16.1 `lib/uknetdev/netdev.c` had `netdev.ipv4_addr`,
//!   `netdev.ipv4_gw_addr`, `netdev.ipv4_subnet_mask` (0.16.0), and
//!   `lib/vfscore/rootfs.c` `vfs.rootfs`/`vfs.rootdev` (up to 0.13).
//!   The older parser (`lib/uklibparam/param.c`, up to 0.12) also splits
//!   at the first `--` (and applies nothing without one). Note: urunc's
//!   older form writes `vfs.rootfs=initrd` for every version before
//!   0.16.1, but 0.14 to 0.16.0 register `vfs.fstab` and no `vfs.rootfs`,
//!   so there that word is an unknown parameter (left as it was).
//!
//! # What urunc writes
//!
//! `<program> <parameters> -- <arguments>`, always with `--`, and at least
//! one word between the program and `--` (the word `urunc` when there is
//! no parameter: it has no `.`, so uklibparam skips it), so `0 < rc`
//! holds whether argv[0] is the kernel path (QEMU) or the program
//! (Firecracker, Cloud Hypervisor), and no argument is ever read as a
//! parameter. A word with whitespace, quotes or backslashes is put in
//! single quotes, or, when it holds a `'`, in double quotes with `\\` and
//! `"` escaped; a `vfs.fstab` entry is in double quotes, its backslashes
//! doubled. Under QEMU the program word is read as a parameter, so a
//! program name `<lib>.<name>=<value>` (which would set that parameter,
//! or open a list with `[`) is refused, as are `help` and `--`. The
//! round-trip fuzz targets (`fuzz/fuzz_targets/unikraft_*.rs`) check that
//! every line rendered here reads back as meant (or is refused).
//!
//! # Firecracker
//!
//! Firecracker v1.7.0 reads `boot_args` with linux-loader 0.10's
//! `Cmdline::try_from` (`src/cmdline/mod.rs`): it splits at the first
//! ` -- ` that has an even number of `"` before it, trims both parts, and
//! then `insert_str`s its own words (`virtio_mmio.device=<size>@<addr>:<irq>`
//! per device, `drivers/virtio/mmio` in the guest; `root=/dev/vda rw` for a
//! root drive, `src/vmm/src/builder.rs`) at the end of the first part. The
//! result is `<first part> <its words> -- <second part>`, but an **empty**
//! second part is dropped together with its ` -- `. So on Firecracker:
//! with no application argument urunc writes `-- ''` (`''` is a word to
//! linux-loader and no word to Unikraft); when the words before `--` hold
//! an odd number of `"` it adds the word `\"` (a lone `"` to Unikraft,
//! skipped for having no `.`) so that our ` -- ` is the one linux-loader
//! splits at; a word before `--` that contains ` -- ` is refused.

use super::{Guest, GuestArgs, GuestNeeds};
use crate::shares::ShareFs;

pub struct Unikraft;

/// A parameter word with no `.`: uklibparam skips it (`parser.c`: "separator
/// '.' not found"), so it keeps `--` from being the first word after argv[0].
const FILLER: &str = "urunc";

/// True when `version` is older than 0.16.1. Unknown or absent versions are
/// taken as current.
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

/// One word as `lib/ukargparse` reads it back: as is when it has nothing
/// special; in single quotes (inside which only `'` is special) when it
/// has no `'`; else in double quotes with `\\` and `"` escaped. `None` for
/// the empty string, which ukargparse cannot produce.
fn uk_quote(w: &str) -> Option<String> {
    if w.is_empty() {
        return None;
    }
    if !w
        .chars()
        .any(|c| c.is_whitespace() || matches!(c, '\'' | '"' | '\\'))
    {
        return Some(w.to_string());
    }
    if !w.contains('\'') {
        return Some(format!("'{w}'"));
    }
    let mut q = String::with_capacity(w.len() + 2);
    q.push('"');
    for c in w.chars() {
        if matches!(c, '"' | '\\') {
            q.push('\\');
        }
        q.push(c);
    }
    q.push('"');
    Some(q)
}

/// `env.vars`: a list, or one `env.vars=` word per entry when an entry ends
/// with `]` (which would end the list). In that form an entry that starts
/// with `[` would open a list itself, so it is written `env.vars=[<entry>]`
/// (`parser.c`: the rest of the opening word is the first list value, and
/// its final `]` closes the list). An entry `--` in the list is quoted,
/// `'--'`: as a word of its own, ` -- `, Firecracker would split the line
/// there (uklibparam itself takes `--` inside a list as a value).
fn env_words(env: &[String], w: &mut Vec<String>) -> Result<(), String> {
    let list = !env.iter().any(|e| e.ends_with(']'));
    if list {
        w.push("env.vars=[".into());
    }
    for e in env {
        if list && e == "--" {
            w.push("'--'".into());
            continue;
        }
        let word = if list {
            e.clone()
        } else if e.starts_with('[') {
            format!("env.vars=[{e}]")
        } else {
            format!("env.vars={e}")
        };
        w.push(
            uk_quote(&word)
                .ok_or_else(|| "an empty process.env entry cannot be passed".to_string())?,
        );
    }
    if list {
        w.push("]".into());
    }
    Ok(())
}

/// Whether uklibparam (`parser.c` `parse_arg`) reads `w` as an assignment,
/// `<lib>.<name>=<value>`: a `.`, then a `=` after it. Such a word sets
/// the parameter if the image registers it, and a value that starts with
/// `[` opens a list whatever the name. (Without `=`, a word with a `.`
/// only sets a boolean parameter of that name, to true; a program name
/// such as `python3.11` names none.)
fn sets_a_parameter(w: &str) -> bool {
    w.split_once('.')
        .is_some_and(|(_, rest)| rest.contains('='))
}

impl Guest for Unikraft {
    fn name(&self) -> &'static str {
        "unikraft"
    }

    fn needs(&self) -> GuestNeeds {
        GuestNeeds {
            shared_dirs: true,
            ..GuestNeeds::default()
        }
    }

    fn words(&self, a: &GuestArgs) -> Result<Vec<String>, String> {
        let legacy = is_legacy(a.version);
        let firecracker = a.monitor == "firecracker";
        let program = a.app.first().map(String::as_str).unwrap_or("unikernel");
        // Under QEMU (multiboot) the program word is argv[1], read as a
        // parameter.
        if a.monitor == "qemu"
            && (program == "help" || program == "--" || sets_a_parameter(program))
        {
            return Err(format!(
                "process.args[0] {program:?} cannot be the program name on QEMU: there it is read as a Unikraft library parameter (lib/uklibparam/parser.c), where `help` prints the usage and halts, `--` ends the parameters and `<lib>.<name>=<value>` sets one (or opens a list, with `[`, that takes the parameters after it)"
            ));
        }
        let mut w = vec![uk_quote(program).ok_or_else(|| "process.args[0] is empty".to_string())?];
        if !legacy && !a.env.is_empty() {
            env_words(a.env, &mut w)?;
        }
        if let Some(n) = a.net {
            let gw = n.gateway.map(|g| g.to_string()).unwrap_or_default();
            if legacy {
                w.push(format!("netdev.ipv4_addr={}", n.ip));
                w.push(format!("netdev.ipv4_gw_addr={gw}"));
                w.push(format!("netdev.ipv4_subnet_mask={}", n.netmask()));
            } else {
                let dns = n.dns.map(|d| d.to_string()).unwrap_or_default();
                w.push(format!("netdev.ip={}/{}:{gw}:{dns}", n.ip, n.prefix));
            }
        }
        let mut fstab = Vec::new();
        let root_share = a.shares.iter().find(|s| s.mount_point == "/");
        for s in a.shares {
            if s.fs != ShareFs::NineP {
                return Err(format!(
                    "it mounts shared directories over 9p only, not {} (set shared_fs = \"9p\" for the monitor in the config file)",
                    s.fs.name()
                ));
            }
            if s.mount_point == "/" {
                continue;
            }
            if legacy {
                return Err(format!(
                    "volume {}: Unikraft before 0.16.1 (unikernelVersion {}) takes no vfs.fstab to mount it",
                    s.mount_point,
                    a.version.unwrap_or_default()
                ));
            }
            if s.mount_point
                .chars()
                .any(|c| c == ':' || c == '"' || c == ']' || c.is_whitespace())
            {
                return Err(format!(
                    "volume {:?}: a vfs.fstab mount point cannot contain ':', '\"', ']' or spaces",
                    s.mount_point
                ));
            }
            // In double quotes ukargparse reads `\\` as `\` (and keeps
            // other backslashes): every backslash is doubled.
            fstab.push(format!(
                "\"{}:{}:9pfs:::\"",
                s.tag,
                s.mount_point.replace('\\', "\\\\")
            ));
        }
        if let Some(r) = root_share {
            if legacy {
                w.push(format!("vfs.rootdev={}", r.tag));
                w.push("vfs.rootfs=9pfs".into());
            } else {
                fstab.insert(0, format!("\"{}:/:9pfs:::\"", r.tag));
            }
        } else if a.initrd {
            if legacy {
                w.push("vfs.rootfs=initrd".into());
            } else {
                fstab.insert(0, "\"initrd0:/:extract:::\"".into());
            }
        }
        if !fstab.is_empty() {
            w.push("vfs.fstab=[".into());
            w.extend(fstab);
            w.push("]".into());
        }
        if w.len() == 1 {
            w.push(FILLER.into());
        }
        if firecracker {
            if let Some(bad) = w.iter().find(|x| x.contains(" -- ")) {
                return Err(format!(
                    "{bad:?} contains \" -- \", where Firecracker would split the command line (linux-loader 0.10 Cmdline::try_from)"
                ));
            }
            if !w
                .iter()
                .map(|x| x.matches('"').count())
                .sum::<usize>()
                .is_multiple_of(2)
            {
                w.push("\\\"".into());
            }
        }
        w.push("--".into());
        for (i, arg) in a.app.iter().enumerate().skip(1) {
            w.push(uk_quote(arg).ok_or_else(|| {
                format!("process.args[{i}] is empty, and Unikraft's command-line parser (lib/ukargparse) cannot pass an empty argument")
            })?);
        }
        if firecracker && a.app.len() <= 1 {
            w.push("''".into());
        }
        Ok(w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guest::{GuestNet, GuestShare};

    fn args<'a>(
        app: &'a [String],
        env: &'a [String],
        net: Option<&'a GuestNet>,
        initrd: bool,
        v: Option<&'a str>,
    ) -> GuestArgs<'a> {
        GuestArgs {
            app,
            env,
            net,
            initrd,
            block: None,
            shares: &[],
            version: v,
            monitor: "qemu",
        }
    }

    #[test]
    fn versions() {
        assert!(is_legacy(Some("0.15.0")));
        assert!(is_legacy(Some("v0.16.0")));
        assert!(!is_legacy(Some("0.16.1")));
        assert!(!is_legacy(Some("0.17")));
        assert!(!is_legacy(Some("1.0.0")));
        assert!(!is_legacy(None));
        assert!(!is_legacy(Some("latest")));
    }

    #[test]
    fn current_format() {
        let app = vec![
            "nginx".to_string(),
            "-c".into(),
            "/nginx/conf/nginx.conf".into(),
        ];
        let env = vec!["A=1".to_string(), "B=2".into()];
        let net = GuestNet {
            ip: "10.4.0.2".parse().unwrap(),
            prefix: 16,
            gateway: Some("10.4.0.1".parse().unwrap()),
            dns: Some("1.1.1.1".parse().unwrap()),
        };
        let w = Unikraft
            .words(&args(&app, &env, Some(&net), true, Some("0.17.0")))
            .unwrap();
        assert_eq!(
            w.join(" "),
            "nginx env.vars=[ A=1 B=2 ] netdev.ip=10.4.0.2/16:10.4.0.1:1.1.1.1 vfs.fstab=[ \"initrd0:/:extract:::\" ] -- -c /nginx/conf/nginx.conf"
        );
        let w = Unikraft
            .words(&args(&app[..1], &[], None, false, None))
            .unwrap();
        assert_eq!(w.join(" "), "nginx urunc --");
    }

    #[test]
    fn quoting_follows_ukargparse() {
        assert_eq!(uk_quote("plain").unwrap(), "plain");
        assert_eq!(uk_quote("two words").unwrap(), "'two words'");
        assert_eq!(uk_quote("it's").unwrap(), r#""it's""#);
        assert_eq!(uk_quote(r#"say "hi""#).unwrap(), r#"'say "hi"'"#);
        assert_eq!(uk_quote(r#"it's "x" \"#).unwrap(), r#""it's \"x\" \\""#);
        assert_eq!(uk_quote(r"a\b").unwrap(), r"'a\b'");
        assert!(uk_quote("").is_none());
        let app = vec!["app".to_string(), "".into()];
        let e = Unikraft
            .words(&args(&app, &[], None, false, None))
            .unwrap_err();
        assert!(e.contains("process.args[1] is empty"), "{e}");
    }

    #[test]
    fn env_entry_ending_in_bracket_is_passed_word_by_word() {
        let app = vec!["app".to_string()];
        let env = vec!["A=[x]".to_string(), "B=2".into()];
        let w = Unikraft
            .words(&args(&app, &env, None, false, None))
            .unwrap();
        assert_eq!(w.join(" "), "app env.vars=A=[x] env.vars=B=2 --");
    }

    // Each of these reached Unikraft changed. The backslashes were found
    // by fuzz/fuzz_targets/unikraft_cmdline (a round trip through
    // tests/fixtures/ukparse), the others while writing that round trip
    // from Unikraft's parser.c and linux-loader; the fuzz targets check all.

    #[test]
    fn env_entry_opening_a_list_is_wrapped_in_one() {
        // `env.vars=[x` opened a list that took netdev.ip and vfs.fstab.
        let app = vec!["app".to_string()];
        let env = vec!["A=]".to_string(), "[x".into(), "[y]".into()];
        let w = Unikraft
            .words(&args(&app, &env, None, false, None))
            .unwrap();
        assert_eq!(
            w.join(" "),
            "app env.vars=A=] env.vars=[[x] env.vars=[[y]] --"
        );
    }

    #[test]
    fn env_entry_dashes_are_quoted_in_the_list() {
        // ` -- ` in the line: Firecracker (linux-loader) split it there.
        let app = vec!["app".to_string()];
        let env = vec!["--".to_string()];
        let mut a = args(&app, &env, None, false, None);
        a.monitor = "firecracker";
        assert_eq!(
            Unikraft.words(&a).unwrap().join(" "),
            "app env.vars=[ '--' ] -- ''"
        );
    }

    #[test]
    fn volume_backslashes_are_doubled_in_double_quotes() {
        // ukargparse reads `\\` in double quotes as one backslash, and a
        // final `\` would escape the closing quote.
        let app = vec!["app".to_string()];
        let shares = vec![GuestShare {
            tag: "fs1".into(),
            mount_point: r"/a\\b\".into(),
            readonly: false,
            fs: ShareFs::NineP,
        }];
        let a = GuestArgs {
            shares: &shares,
            ..args(&app, &[], None, false, None)
        };
        assert_eq!(
            Unikraft.words(&a).unwrap().join(" "),
            r#"app vfs.fstab=[ "fs1:/a\\\\b\\:9pfs:::" ] --"#
        );
    }

    #[test]
    fn qemu_program_that_sets_a_parameter_is_refused() {
        // Under QEMU argv[1] is read as a parameter: `x.y=[` swallowed the
        // parameters after it, `env.vars=A` added an entry.
        for p in ["x.y=[", "env.vars=A", "a.b=c"] {
            let app = vec![p.to_string()];
            let e = Unikraft
                .words(&args(&app, &["B=1".into()], None, true, None))
                .unwrap_err();
            assert!(e.contains("QEMU"), "{p}: {e}");
            let mut a = args(&app, &[], None, true, None);
            a.monitor = "firecracker";
            assert!(Unikraft.words(&a).is_ok(), "{p} is argv[0] on Firecracker");
        }
        let app = vec!["python3.11".to_string()];
        assert!(Unikraft.words(&args(&app, &[], None, true, None)).is_ok());
    }

    #[test]
    fn firecracker_keeps_its_separator() {
        let app = vec!["app".to_string()];
        let env = vec!["J={\"a\":1}x\"".to_string()];
        let mut a = args(&app, &env, None, false, None);
        a.monitor = "firecracker";
        let w = Unikraft.words(&a).unwrap();
        assert_eq!(w.join(" "), r#"app env.vars=[ 'J={"a":1}x"' ] \" -- ''"#);
        let env = vec!["A=x -- y".to_string()];
        let a = GuestArgs { env: &env, ..a };
        assert!(Unikraft.words(&a).unwrap_err().contains("Firecracker"));
    }

    #[test]
    fn legacy_format() {
        let app = vec!["hello".to_string()];
        let net = GuestNet {
            ip: "10.4.0.2".parse().unwrap(),
            prefix: 24,
            gateway: Some("10.4.0.1".parse().unwrap()),
            dns: None,
        };
        let w = Unikraft
            .words(&args(
                &app,
                &["X=1".to_string()],
                Some(&net),
                true,
                Some("0.15.0"),
            ))
            .unwrap();
        assert_eq!(
            w.join(" "),
            "hello netdev.ipv4_addr=10.4.0.2 netdev.ipv4_gw_addr=10.4.0.1 netdev.ipv4_subnet_mask=255.255.255.0 vfs.rootfs=initrd --"
        );
    }
}
