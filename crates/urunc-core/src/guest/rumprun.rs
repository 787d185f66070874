//! Rumprun: one JSON object as the command line.
//! `{"cmdline":..,"net":{..},"blk":{..}}` (`net` only with a network, `blk`
//! only with a disk). The netmask is forced to `1` (so that the gateway is
//! always on-link) unless the gateway is inside the real prefix.
//!
//! How Rumprun reads it (nabla-containers/rumprun branch `solo5`,
//! `lib/librumprun_base/config.c` `rumprun_config`): the text from the
//! first `{` is parsed with jsmn; every top-level key must match one of
//! `cmdline`, `rc_TESTING`, `env`, `hostname`, `blk`, `net`, `cwd` (a key is
//! compared with `strncmp` over the key's own length, so a prefix of a name
//! matches it) or Rumprun stops with "no match for key"; all values we use
//! are strings (another type is an error). `net` (`handle_net`, only one
//! allowed): `if`, `type` (`inet`), `method` (`static`: `addr` and `mask`,
//! the mask a decimal prefix length read with `atoi`), optional `gw`, and
//! `cloner` (any string: `ifcreate` the interface first, which Solo5's
//! `ukvmif0` needs); an unknown key is an error. `blk` (`handle_blk`):
//! `source` (`etfs` registers `/dev/<path>` for the Solo5 block device),
//! `path`, `fstype` (`blk`: `mount_blk` tries LFS, CD9660 read-only, FFS,
//! EXT2FS, in that order) and `mountpoint`. `cmdline` is split into argv by
//! `rumprun_parseargs` (`lib/librumprun_base/parseargs.c`): words at space,
//! tab and newline; `'` and `"` quote, a backslash makes the next character
//! literal (see [`rump_quote`] for how arguments are written).

use super::{Guest, GuestArgs, GuestNeeds};
use serde_json::{json, Map, Value};

pub struct Rumprun;

impl Guest for Rumprun {
    fn name(&self) -> &'static str {
        "rumprun"
    }

    fn needs(&self) -> GuestNeeds {
        GuestNeeds {
            ext2_block_rootfs: true,
            ..GuestNeeds::default()
        }
    }

    fn words(&self, a: &GuestArgs) -> Result<Vec<String>, String> {
        let mut o = Map::new();
        let argv = a
            .app
            .iter()
            .enumerate()
            .map(|(i, w)| rump_quote(i, w))
            .collect::<Result<Vec<_>, _>>()?;
        o.insert("cmdline".into(), Value::String(argv.join(" ")));
        if let Some(n) = a.net {
            // Without a gateway there is nothing to keep on-link.
            let mask = match n.gateway {
                Some(g) if !same_subnet(n.ip, g, n.prefix) => "1".to_string(),
                _ => n.prefix.to_string(),
            };
            let mut net = json!({
                "if": "ukvmif0", "cloner": "True", "type": "inet", "method": "static",
                "addr": n.ip.to_string(), "mask": mask,
            });
            if let Some(g) = n.gateway {
                net["gw"] = Value::String(g.to_string());
            }
            o.insert("net".into(), net);
        }
        if let Some(b) = a.block {
            if let Some(m) = &b.mount_point {
                // handle_blk uses the JSON string's text as it is (jsmn
                // decodes no escape): what serde_json escapes would reach
                // Rumprun as the escape sequence.
                if let Some(c) = m
                    .chars()
                    .find(|c| matches!(c, '"' | '\\') || c.is_control())
                {
                    return Err(format!(
                        "blkMntPoint {m:?} holds {c:?}, which Rumprun's configuration cannot carry (lib/librumprun_base/config.c handle_blk reads the JSON string undecoded)"
                    ));
                }
            }
            o.insert(
                "blk".into(),
                json!({
                    "source": "etfs", "path": "/dev/ld0a", "fstype": "blk",
                    "mountpoint": b.mount_point.clone().unwrap_or_else(|| "/data".into()),
                }),
            );
        }
        Ok(vec![Value::Object(o).to_string()])
    }
}

/// One argument as `rumprun_parseargs` must see it, written into the JSON
/// string. jsmn (`lib/libbmk_core/jsmn.c`) hands the string over with its
/// escapes undecoded, so serde_json's `\"` and `\\` reach parseargs as
/// a backslash-escaped `"` and `\`, which it reads as those characters.
/// Whitespace is quoted with `'`; `''` is an empty argument. A `'` cannot
/// be carried (parseargs takes every `'` as a quote and JSON has no escape
/// that jsmn passes for it), nor a control character (its JSON escape
/// reaches parseargs as `\n`, read as `n`).
fn rump_quote(i: usize, w: &str) -> Result<String, String> {
    if let Some(c) = w.chars().find(|c| *c == '\'' || c.is_control()) {
        return Err(format!(
            "process.args[{i}] {w:?} holds {c:?}, which Rumprun's command line cannot carry (rumprun_parseargs in lib/librumprun_base/parseargs.c reads the JSON string undecoded)"
        ));
    }
    Ok(if w.is_empty() {
        "''".into()
    } else if w.contains(' ') {
        format!("'{w}'")
    } else {
        w.to_string()
    })
}

fn same_subnet(a: std::net::Ipv4Addr, b: std::net::Ipv4Addr, prefix: u8) -> bool {
    let m = u32::from(super::prefix_to_mask(prefix));
    u32::from(a) & m == u32::from(b) & m
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::guest::{GuestBlock, GuestNet};

    #[test]
    fn json_cmdline() {
        let app = vec!["/hello".to_string(), "x".into()];
        let net = GuestNet {
            ip: "10.0.0.2".parse().unwrap(),
            prefix: 24,
            gateway: Some("10.0.0.1".parse().unwrap()),
            dns: None,
        };
        let b = GuestBlock {
            mount_point: Some("/mnt".into()),
            readonly: false,
        };
        let a = GuestArgs {
            app: &app,
            env: &[],
            net: Some(&net),
            initrd: false,
            block: Some(&b),
            shares: &[],
            version: None,
            monitor: "hvt",
        };
        let w = Rumprun.words(&a).unwrap();
        assert_eq!(w.len(), 1);
        let v: Value = serde_json::from_str(&w[0]).unwrap();
        assert_eq!(v["cmdline"], "/hello x");
        let odd = vec![
            "/hello".to_string(),
            "two words".into(),
            "".into(),
            r#"a"b\c"#.into(),
        ];
        let w = Rumprun.words(&GuestArgs { app: &odd, ..a }).unwrap();
        // As JSON text: serde's escapes are parseargs' escapes.
        assert!(
            w[0].contains(r#""cmdline":"/hello 'two words' '' a\"b\\c""#),
            "{}",
            w[0]
        );
        let bad = vec!["/hello".to_string(), "it's".into()];
        let e = Rumprun.words(&GuestArgs { app: &bad, ..a }).unwrap_err();
        assert!(e.contains("process.args[1]"), "{e}");
        assert_eq!(v["net"]["addr"], "10.0.0.2");
        assert_eq!(v["net"]["mask"], "24");
        assert_eq!(v["net"]["if"], "ukvmif0");
        assert_eq!(v["blk"]["mountpoint"], "/mnt");
        let off = GuestNet {
            gateway: Some("192.168.1.1".parse().unwrap()),
            ..net
        };
        let v: Value = serde_json::from_str(
            &Rumprun
                .words(&GuestArgs {
                    net: Some(&off),
                    block: None,
                    ..a
                })
                .unwrap()[0],
        )
        .unwrap();
        assert_eq!(v["net"]["mask"], "1");
        assert!(v.get("blk").is_none());
        let none = GuestNet {
            gateway: None,
            ..net
        };
        let v: Value = serde_json::from_str(
            &Rumprun
                .words(&GuestArgs {
                    net: Some(&none),
                    block: None,
                    ..a
                })
                .unwrap()[0],
        )
        .unwrap();
        assert_eq!(v["net"]["mask"], "24");
        assert!(v["net"].get("gw").is_none());
        assert!(Rumprun.needs().ext2_block_rootfs);
    }

    // Found by fuzz/fuzz_targets/rumprun_cmdline (round trip through
    // tests/fixtures/rumpparse): the mount point reached Rumprun as its
    // JSON escape (`(\u0000`).
    #[test]
    fn mount_point_that_json_escapes_is_refused() {
        let app = vec!["/hello".to_string()];
        for m in ["(\0", "/a\"b", "/a\\b", "/a\nb"] {
            let b = GuestBlock {
                mount_point: Some(m.into()),
                readonly: false,
            };
            let a = GuestArgs {
                app: &app,
                env: &[],
                net: None,
                initrd: false,
                block: Some(&b),
                shares: &[],
                version: None,
                monitor: "hvt",
            };
            let e = Rumprun.words(&a).unwrap_err();
            assert!(e.contains("blkMntPoint"), "{m:?}: {e}");
        }
    }
}
