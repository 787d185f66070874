//! Image reference parsing and normalisation.
//!
//! The packer names the image with a fully qualified reference
//! (`domain/path:tag`), normalised the way Docker, containerd and nerdctl do:
//! a name without a domain gets `docker.io/`, a single-component name on
//! `docker.io` gets `library/`, and a missing tag becomes `latest`.

use std::fmt;

/// A fully qualified `domain/path:tag` image reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// Registry host, with an optional port (`docker.io`, `localhost:5000`).
    pub domain: String,
    /// Repository path (`library/nginx`, `urunc/hello`).
    pub path: String,
    /// Tag (`latest`).
    pub tag: String,
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}:{}", self.domain, self.path, self.tag)
    }
}

impl ImageRef {
    /// Parses `[DOMAIN/]PATH[:TAG]` and normalises it. The error text says
    /// what is wrong (without the flag name; the caller adds it).
    pub fn parse(input: &str) -> Result<ImageRef, String> {
        if input.is_empty() {
            return Err("empty image reference".into());
        }
        if input.contains('@') {
            return Err(format!(
                "{input:?}: digest references are not supported, give NAME[:TAG]"
            ));
        }
        if let Some(c) = input.chars().find(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!("{input:?}: contains the character {c:?}"));
        }
        // The tag is after the last ':' that follows the last '/'.
        let last_slash = input.rfind('/').map(|i| i + 1).unwrap_or(0);
        let (name, tag) = match input[last_slash..].rfind(':') {
            Some(i) => {
                let at = last_slash + i;
                (&input[..at], Some(&input[at + 1..]))
            }
            None => (input, None),
        };
        let tag = tag.unwrap_or("latest");
        if !valid_tag(tag) {
            return Err(format!(
                "{input:?}: invalid tag {tag:?} (1 to 128 characters of [A-Za-z0-9_.-], not starting with '.' or '-')"
            ));
        }
        let (domain, path) = match name.split_once('/') {
            Some((first, rest))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first.to_string(), rest.to_string())
            }
            _ => ("docker.io".to_string(), name.to_string()),
        };
        if !valid_domain(&domain) {
            return Err(format!("{input:?}: invalid registry host {domain:?}"));
        }
        let path = if domain == "docker.io" && !path.contains('/') {
            format!("library/{path}")
        } else {
            path
        };
        for component in path.split('/') {
            if !valid_component(component) {
                return Err(format!(
                    "{input:?}: invalid name component {component:?} (lower-case letters and digits, separated by '.', '_', '__' or dashes)"
                ));
            }
        }
        let r = ImageRef {
            domain,
            path,
            tag: tag.to_string(),
        };
        if r.to_string().len() > 255 {
            return Err(format!("{input:?}: longer than 255 characters"));
        }
        Ok(r)
    }
}

fn valid_tag(tag: &str) -> bool {
    let b = tag.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

fn valid_domain(domain: &str) -> bool {
    let (host, port) = match domain.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (domain, None),
    };
    if let Some(p) = port {
        if p.is_empty() || !p.bytes().all(|c| c.is_ascii_digit()) {
            return false;
        }
    }
    !host.is_empty()
        && host.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || c == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`
fn valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    if b.is_empty() || !is_alnum(b[0]) || !is_alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if is_alnum(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && !is_alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

fn is_alnum(c: u8) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

/// Turns a file name into a valid single name component: lower case,
/// runs of other characters become one '-', leading/trailing ones dropped.
pub fn sanitize_component(name: &str) -> String {
    let mut out = String::new();
    let mut pending_dash = false;
    for ch in name.chars() {
        let ch = ch.to_ascii_lowercase();
        if ch.is_ascii_lowercase() || ch.is_ascii_digit() {
            if pending_dash && !out.is_empty() {
                out.push('-');
            }
            pending_dash = false;
            out.push(ch);
        } else {
            pending_dash = true;
        }
    }
    out.truncate(128);
    while out.ends_with('-') {
        out.pop();
    }
    if out.is_empty() {
        "unikernel".to_string()
    } else {
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(s: &str) -> String {
        ImageRef::parse(s).unwrap().to_string()
    }

    #[test]
    fn normalises_like_docker() {
        assert_eq!(norm("nginx"), "docker.io/library/nginx:latest");
        assert_eq!(norm("nginx:1.2"), "docker.io/library/nginx:1.2");
        assert_eq!(norm("me/app:v1"), "docker.io/me/app:v1");
        assert_eq!(norm("localhost/hello"), "localhost/hello:latest");
        assert_eq!(
            norm("harbor.nbfc.io/nubificus/urunc/nginx-qemu:test"),
            "harbor.nbfc.io/nubificus/urunc/nginx-qemu:test"
        );
        assert_eq!(norm("localhost:5000/a/b:c"), "localhost:5000/a/b:c");
        assert_eq!(norm("localhost:5000/a"), "localhost:5000/a:latest");
        assert_eq!(
            norm("a__b/c.d-e---f:x_Y.z-1"),
            "docker.io/a__b/c.d-e---f:x_Y.z-1"
        );
    }

    #[test]
    fn rejects_bad_references() {
        for (bad, needle) in [
            ("", "empty"),
            ("Nginx", "invalid name component"),
            ("nginx:", "invalid tag"),
            ("nginx:-x", "invalid tag"),
            ("a//b", "invalid name component"),
            ("a/b_/c", "invalid name component"),
            ("a/b___c", "invalid name component"),
            ("nginx@sha256:abcd", "digest"),
            ("my app", "character"),
            ("bad_host.x:port/a", "invalid registry host"),
        ] {
            let e = ImageRef::parse(bad).unwrap_err();
            assert!(e.contains(needle), "{bad:?}: {e}");
        }
    }

    #[test]
    fn sanitizes_file_names() {
        assert_eq!(
            sanitize_component("Nginx_QEMU-x86_64.elf"),
            "nginx-qemu-x86-64-elf"
        );
        assert_eq!(sanitize_component("__"), "unikernel");
        assert_eq!(sanitize_component("hello.hvt"), "hello-hvt");
        assert!(valid_component(&sanitize_component("..A..b..")));
    }
}
