//! Creating the container's tap through /dev/net/tun: a persistent,
//! single-queue tap with a virtio-net header, owned by the container's
//! user so that a non-root monitor may attach to it.

use std::fs::OpenOptions;
use std::io;
use std::os::fd::AsRawFd;

/// `struct ifreq` as TUNSETIFF reads it: the name, then the flags (the
/// rest of the union is padding).
#[repr(C)]
struct IfReq {
    name: [u8; libc::IFNAMSIZ],
    flags: libc::c_short,
    _pad: [u8; 22],
}

/// The tap's TUNSETIFF flags.
pub const TAP_FLAGS: libc::c_int = libc::IFF_TAP | libc::IFF_NO_PI | libc::IFF_VNET_HDR;

/// The request for `name`; the name must fit (at most 15 bytes, no NUL).
fn ifreq(name: &str) -> io::Result<IfReq> {
    let b = name.as_bytes();
    if b.is_empty() || b.len() >= libc::IFNAMSIZ || b.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{name:?} is not a valid interface name (1 to 15 bytes)"),
        ));
    }
    let mut r = IfReq {
        name: [0; libc::IFNAMSIZ],
        flags: TAP_FLAGS as libc::c_short,
        _pad: [0; 22],
    };
    r.name[..b.len()].copy_from_slice(b);
    Ok(r)
}

/// Which ioctl failed, for the error message.
pub struct TapError {
    pub step: &'static str,
    pub err: io::Error,
}

fn ioctl_int(
    fd: i32,
    req: libc::Ioctl,
    v: libc::c_ulong,
    step: &'static str,
) -> Result<(), TapError> {
    // SAFETY: the TUNSET* ioctls that take an integer argument by value.
    if unsafe { libc::ioctl(fd, req, v) } < 0 {
        return Err(TapError {
            step,
            err: io::Error::last_os_error(),
        });
    }
    Ok(())
}

/// Creates the persistent tap `name` owned by uid/gid and closes our
/// descriptor: the device stays until it is deleted.
pub fn create(name: &str, uid: u32, gid: u32) -> Result<(), TapError> {
    let open = |step| move |err| TapError { step, err };
    let req = ifreq(name).map_err(open("checking the name"))?;
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/net/tun")
        .map_err(open("opening /dev/net/tun"))?;
    let fd = f.as_raw_fd();
    // SAFETY: TUNSETIFF reads a `struct ifreq`, which `req` is laid out as
    // (and it outlives the call).
    if unsafe { libc::ioctl(fd, libc::TUNSETIFF, &req as *const IfReq) } < 0 {
        return Err(TapError {
            step: "TUNSETIFF",
            err: io::Error::last_os_error(),
        });
    }
    ioctl_int(fd, libc::TUNSETOWNER, uid.into(), "TUNSETOWNER")?;
    ioctl_int(fd, libc::TUNSETGROUP, gid.into(), "TUNSETGROUP")?;
    ioctl_int(fd, libc::TUNSETPERSIST, 1, "TUNSETPERSIST")?;
    drop(f);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ifreq_has_the_kernel_layout() {
        assert_eq!(std::mem::size_of::<IfReq>(), 40);
        let r = ifreq("urunc0123abcd").unwrap();
        assert_eq!(&r.name[..14], b"urunc0123abcd\0");
        assert_eq!(r.flags as libc::c_int, 0x0002 | 0x1000 | 0x4000);
    }

    #[test]
    fn bad_names_are_refused() {
        assert!(ifreq("").is_err());
        assert!(ifreq("a-name-that-is-too-long").is_err());
        assert!(ifreq("a\0b").is_err());
        assert!(ifreq("fifteen-bytes15").is_ok());
    }
}
