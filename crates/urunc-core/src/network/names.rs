//! The names of our taps: one per container, derived from its ID, so that
//! delete finds the tap without state and other code can tell our taps
//! from the container's own interfaces (and from anyone else's taps).

/// Tap name for a container: unique per container, at most 15 bytes.
pub fn tap_name(container_id: &str) -> String {
    // FNV-1a, so that the name is stable for an ID (delete can find it).
    let mut h: u32 = 0x811c9dc5;
    for b in container_id.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x01000193);
    }
    format!("urunc{h:08x}")
}

/// A tap of ours: `urunc` + 8 lowercase hex digits, what [`tap_name`]
/// makes. Such a device is never the container's interface.
pub fn is_urunc_tap(name: &str) -> bool {
    name.len() == 13
        && name.starts_with("urunc")
        && name[5..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tap_names_fit_and_differ() {
        let a = tap_name("a");
        assert!(a.len() <= 15);
        assert_ne!(a, tap_name("b"));
        assert_eq!(a, tap_name("a"));
        assert!(is_urunc_tap(&a));
        assert!(is_urunc_tap(&tap_name(&"x".repeat(300))));
    }

    #[test]
    fn only_our_naming_counts_as_our_tap() {
        assert!(is_urunc_tap("urunc0123abcd"));
        for other in [
            "mytap0",
            "tap0",
            "urunc",
            "urunc0123abc",
            "urunc0123abcde",
            "urunc0123ABCD",
            "uruncg123abcd",
            "xrunc0123abcd",
        ] {
            assert!(!is_urunc_tap(other), "{other}");
        }
    }
}
