//! The Solo5 application manifest and ABI notes of a unikernel ELF, read in
//! Rust (what `solo5-elftool query-manifest` / `query-abi` print).
//!
//! # Format (Solo5 v0.6 – v0.9, manifest ABI version 1)
//!
//! Both are ELF notes named `"Solo5"` (`n_namesz` = 6, name padded to 8
//! bytes), each at the start of its own `PT_NOTE` program header (the tender
//! looks them up through program headers, not sections):
//!
//! * manifest, section `.note.solo5.manifest`, `n_type` = `0x3154464d`
//!   ("MFT1"). The descriptor starts with 4 bytes of padding (so that the
//!   8-byte-aligned `struct mft` sits at offset 24 of the note), then
//!   `struct mft { u32 version; u32 entries; struct mft_entry e[entries]; }`
//!   with each `struct mft_entry` 104 bytes on a 64-bit target:
//!   `char name[68]` (NUL-terminated, alphanumeric) @0, `u32 type` @68,
//!   a 16-byte union of device properties @72, an 8-byte host fd/pointer
//!   @88, `bool attached` @96, padding to 104. `n_descsz` is therefore
//!   `12 + 104 * entries`. Entry 0 is always the reserved entry (type
//!   `1 << 30`, empty name); types 1 = `BLOCK_BASIC`, 2 = `NET_BASIC`;
//!   `version` must be 1, `entries` 1..=64, `attached` false.
//! * ABI, section `.note.solo5.abi`, `n_type` = `0x31494241` ("ABI1"),
//!   descriptor `{ u32 target; u32 version; u32 reserved[2]; }` with target
//!   1 = hvt, 2 = spt, 3 = virtio, 4 = muen, 5 = genode, 6 = xen.
//!
//! The parser is as strict as the tender's own `mft_validate`, so that an
//! image the tender would refuse fails at `create` with a message naming
//! the kernel and the problem. Files are read with positioned reads: a
//! kernel is never loaded whole.

use std::fmt;
use std::os::unix::fs::FileExt;

const NOTE_NAME: &[u8] = b"Solo5\0";
const MFT1_TYPE: u32 = 0x3154_464d;
const ABI1_TYPE: u32 = 0x3149_4241;
const PT_NOTE: u32 = 4;
const ET_EXEC: u16 = 2;
const EHDR_SIZE: usize = 64;
const PHDR_SIZE: usize = 56;
/// `sizeof(struct mft_entry)` on 64-bit targets.
pub const ENTRY_SIZE: usize = 104;
/// Name field size, terminator included.
pub const NAME_SIZE: usize = 68;
pub const MAX_ENTRIES: u32 = 64;
const RESERVED_FIRST: u32 = 1 << 30;
/// Padding between the note header (20 bytes) and `struct mft`.
const MFT_PAD: usize = 4;

/// Kind of a device the unikernel declares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceKind {
    Block,
    Net,
}

impl DeviceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceKind::Block => "block",
            DeviceKind::Net => "network",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    pub name: String,
    pub kind: DeviceKind,
}

/// Solo5 target the unikernel was built for (its bindings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Hvt,
    Spt,
    Virtio,
    Muen,
    Genode,
    Xen,
    Unknown(u32),
}

impl Target {
    fn from_u32(v: u32) -> Target {
        match v {
            1 => Target::Hvt,
            2 => Target::Spt,
            3 => Target::Virtio,
            4 => Target::Muen,
            5 => Target::Genode,
            6 => Target::Xen,
            n => Target::Unknown(n),
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Hvt => f.write_str("hvt"),
            Target::Spt => f.write_str("spt"),
            Target::Virtio => f.write_str("virtio"),
            Target::Muen => f.write_str("muen"),
            Target::Genode => f.write_str("genode"),
            Target::Xen => f.write_str("xen"),
            Target::Unknown(n) => write!(f, "unknown target {n}"),
        }
    }
}

/// What a Solo5 unikernel declares about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// Declared devices, in manifest order (the reserved entry left out).
    pub devices: Vec<Device>,
    /// `(target, ABI version)` from the ABI note, when there is one.
    pub abi: Option<(Target, u32)>,
}

impl Manifest {
    pub fn of_kind(&self, kind: DeviceKind) -> impl Iterator<Item = &Device> {
        self.devices.iter().filter(move |d| d.kind == kind)
    }
}

/// Random access to the bytes of an ELF file.
trait Source {
    /// Reads exactly `len` bytes at `off`; `Err` names what was short.
    fn read_at(&self, off: u64, len: usize) -> Result<Vec<u8>, String>;
}

impl Source for [u8] {
    fn read_at(&self, off: u64, len: usize) -> Result<Vec<u8>, String> {
        let start = usize::try_from(off).map_err(|_| "offset out of range".to_string())?;
        start
            .checked_add(len)
            .and_then(|end| self.get(start..end))
            .map(<[u8]>::to_vec)
            .ok_or_else(|| format!("file ends before byte {}", off + len as u64))
    }
}

impl Source for std::fs::File {
    fn read_at(&self, off: u64, len: usize) -> Result<Vec<u8>, String> {
        let mut buf = vec![0u8; len];
        self.read_exact_at(&mut buf, off).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                format!("file ends before byte {}", off + len as u64)
            } else {
                e.to_string()
            }
        })?;
        Ok(buf)
    }
}

fn u16_at(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}
fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}
fn u64_at(b: &[u8], o: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[o..o + 8]);
    u64::from_le_bytes(a)
}

/// Host architecture's ELF machine number.
fn host_machine() -> (u16, &'static str) {
    if cfg!(target_arch = "aarch64") {
        (183, "aarch64")
    } else {
        (62, "x86_64")
    }
}

/// A file read through a buffer of its first [`HEAD`] bytes: the ELF
/// header, program headers and notes of a Solo5 unikernel lie there (the
/// manifest note at 16 KiB in Solo5 0.9's test kernels), so one read
/// replaces the nine small `pread`s parsing takes. Anything beyond it is
/// read from the file.
struct Headed<'a> {
    file: &'a std::fs::File,
    head: Vec<u8>,
}

const HEAD: usize = 64 << 10;

impl<'a> Headed<'a> {
    fn new(file: &'a std::fs::File) -> Headed<'a> {
        use std::os::unix::fs::FileExt;
        let mut head = vec![0u8; HEAD];
        // A short read (or none) only means more reads from the file.
        let n = FileExt::read_at(file, &mut head, 0).unwrap_or(0);
        head.truncate(n);
        Headed { file, head }
    }
}

impl Source for Headed<'_> {
    fn read_at(&self, off: u64, len: usize) -> Result<Vec<u8>, String> {
        Source::read_at(&self.head[..], off, len).or_else(|_| Source::read_at(self.file, off, len))
    }
}

/// Reads the manifest of the open unikernel file `f` (the one resolved in
/// the rootfs, which the tender is given).
pub fn read(f: &std::fs::File) -> Result<Manifest, String> {
    parse_source(&Headed::new(f))
}

/// Parses a manifest from an ELF file held in memory.
pub fn parse(bytes: &[u8]) -> Result<Manifest, String> {
    parse_source(bytes)
}

struct Note {
    ty: u32,
    /// File offset of the descriptor.
    desc_off: u64,
    desc_size: u32,
}

fn parse_source<S: Source + ?Sized>(src: &S) -> Result<Manifest, String> {
    let not_elf = |why: &str| format!("not a Solo5 unikernel: {why}");
    let eh = src
        .read_at(0, EHDR_SIZE)
        .map_err(|e| not_elf(&format!("too short for an ELF header ({e})")))?;
    if &eh[0..4] != b"\x7fELF" {
        return Err(not_elf("no ELF magic"));
    }
    if eh[4] != 2 {
        return Err(not_elf("not a 64-bit ELF file"));
    }
    if eh[5] != 1 {
        return Err(not_elf("not a little-endian ELF file"));
    }
    if u32_at(&eh, 20) != 1 {
        return Err(not_elf("unknown ELF version"));
    }
    if u16_at(&eh, 16) != ET_EXEC {
        return Err(not_elf("not an ELF executable (e_type is not ET_EXEC)"));
    }
    let (machine, arch) = host_machine();
    let m = u16_at(&eh, 18);
    if m != machine {
        return Err(format!(
            "built for ELF machine {m}, but this host is {arch} (machine {machine})"
        ));
    }
    if usize::from(u16_at(&eh, 52)) != EHDR_SIZE || usize::from(u16_at(&eh, 54)) != PHDR_SIZE {
        return Err(not_elf("unexpected ELF header or program header size"));
    }
    let phoff = u64_at(&eh, 32);
    let phnum = usize::from(u16_at(&eh, 56));
    if phnum == 0 {
        return Err(not_elf("no program headers"));
    }
    let ph = src
        .read_at(phoff, phnum * PHDR_SIZE)
        .map_err(|e| not_elf(&format!("program headers: {e}")))?;
    let mut notes = Vec::new();
    for i in 0..phnum {
        let p = &ph[i * PHDR_SIZE..(i + 1) * PHDR_SIZE];
        if u32_at(p, 0) != PT_NOTE {
            continue;
        }
        let (off, filesz) = (u64_at(p, 8), u64_at(p, 32));
        walk_notes(src, off, filesz, &mut notes)?;
    }
    let find = |ty| {
        let mut it = notes.iter().filter(move |n: &&Note| n.ty == ty);
        match (it.next(), it.next()) {
            (Some(n), None) => Ok(Some(n)),
            (None, _) => Ok(None),
            (Some(_), Some(_)) => Err(format!(
                "it has more than one Solo5 {} note",
                if ty == MFT1_TYPE { "manifest" } else { "ABI" }
            )),
        }
    };
    let abi = match find(ABI1_TYPE)? {
        Some(n) => {
            if n.desc_size != 16 {
                return Err(format!(
                    "Solo5 ABI note has {} descriptor bytes, expected 16",
                    n.desc_size
                ));
            }
            let d = src
                .read_at(n.desc_off, 16)
                .map_err(|e| format!("Solo5 ABI note: {e}"))?;
            Some((Target::from_u32(u32_at(&d, 0)), u32_at(&d, 4)))
        }
        None => None,
    };
    let Some(n) = find(MFT1_TYPE)? else {
        return Err(
            "it has no Solo5 manifest note (.note.solo5.manifest): is it built for Solo5?".into(),
        );
    };
    let devices = parse_mft(src, n)?;
    Ok(Manifest { devices, abi })
}

/// Collects the Solo5-owned notes of one PT_NOTE segment.
fn walk_notes<S: Source + ?Sized>(
    src: &S,
    off: u64,
    filesz: u64,
    out: &mut Vec<Note>,
) -> Result<(), String> {
    let mut pos = 0u64;
    while pos + 12 <= filesz {
        let h = src
            .read_at(off + pos, 12)
            .map_err(|e| format!("ELF note header: {e}"))?;
        let (namesz, descsz, ty) = (u32_at(&h, 0), u32_at(&h, 4), u32_at(&h, 8));
        let name_pad = u64::from(namesz).div_ceil(4) * 4;
        let desc_off = pos + 12 + name_pad;
        let end = desc_off + u64::from(descsz).div_ceil(4) * 4;
        if desc_off + u64::from(descsz) > filesz {
            // Only an error for our own notes; others are not our concern.
            if usize::try_from(namesz).ok() == Some(NOTE_NAME.len())
                && src.read_at(off + pos + 12, NOTE_NAME.len()).ok().as_deref() == Some(NOTE_NAME)
            {
                return Err(format!(
                    "Solo5 note of type {ty:#x} is truncated (descriptor of {descsz} bytes runs past its segment)"
                ));
            }
            break;
        }
        if usize::try_from(namesz).ok() == Some(NOTE_NAME.len()) {
            let name = src
                .read_at(off + pos + 12, NOTE_NAME.len())
                .map_err(|e| format!("ELF note name: {e}"))?;
            if name == NOTE_NAME {
                out.push(Note {
                    ty,
                    desc_off: off + desc_off,
                    desc_size: descsz,
                });
            }
        }
        pos = end;
    }
    Ok(())
}

fn parse_mft<S: Source + ?Sized>(src: &S, n: &Note) -> Result<Vec<Device>, String> {
    let bad = |why: String| format!("Solo5 manifest is invalid: {why}");
    let descsz = n.desc_size as usize;
    if descsz < MFT_PAD + 8 {
        return Err(bad(format!("descriptor of {descsz} bytes is too short")));
    }
    let size = descsz - MFT_PAD;
    let max = 8 + MAX_ENTRIES as usize * ENTRY_SIZE;
    if size > max {
        return Err(bad(format!(
            "{size} bytes, more than the {max} that {MAX_ENTRIES} entries take"
        )));
    }
    let m = src
        .read_at(n.desc_off + MFT_PAD as u64, size)
        .map_err(|e| bad(e.to_string()))?;
    let version = u32_at(&m, 0);
    if version != 1 {
        return Err(bad(format!(
            "manifest version {version}, urunc reads version 1 (Solo5 v0.6 to v0.9)"
        )));
    }
    let entries = u32_at(&m, 4);
    if entries == 0 || entries > MAX_ENTRIES {
        return Err(bad(format!(
            "{entries} entries (must be 1 to {MAX_ENTRIES})"
        )));
    }
    let want = 8 + entries as usize * ENTRY_SIZE;
    if size != want {
        return Err(bad(format!(
            "{size} bytes for {entries} entries, expected {want} (entries of {ENTRY_SIZE} bytes)"
        )));
    }
    let mut devices = Vec::new();
    for i in 0..entries as usize {
        let e = &m[8 + i * ENTRY_SIZE..8 + (i + 1) * ENTRY_SIZE];
        let raw = &e[..NAME_SIZE];
        if raw[NAME_SIZE - 1] != 0 {
            return Err(bad(format!("entry {i}: name is not NUL-terminated")));
        }
        let name_len = raw.iter().position(|&b| b == 0).unwrap_or(NAME_SIZE);
        let name = &raw[..name_len];
        let ty = u32_at(e, NAME_SIZE);
        if e[96] != 0 {
            return Err(bad(format!("entry {i}: marked as attached")));
        }
        if i == 0 {
            if ty != RESERVED_FIRST || !name.is_empty() {
                return Err(bad("entry 0 is not the reserved first entry".into()));
            }
            continue;
        }
        if name.is_empty() || !name.iter().all(u8::is_ascii_alphanumeric) {
            return Err(bad(format!(
                "entry {i}: device name {:?} is not alphanumeric",
                String::from_utf8_lossy(name)
            )));
        }
        let name = String::from_utf8_lossy(name).into_owned();
        let kind = match ty {
            1 => DeviceKind::Block,
            2 => DeviceKind::Net,
            t => {
                return Err(bad(format!(
                    "device {name:?} has unknown type {t} (known: 1 BLOCK_BASIC, 2 NET_BASIC)"
                )))
            }
        };
        if devices.iter().any(|d: &Device| d.name == name) {
            return Err(bad(format!("device name {name:?} is declared twice")));
        }
        devices.push(Device { name, kind });
    }
    Ok(devices)
}

/// Minimal ELF64 executables carrying Solo5 notes, for tests.
#[cfg(test)]
pub(crate) mod fixture {
    use super::*;

    /// Bytes of a `struct mft` with the reserved entry plus `devices`
    /// (type 1 block, 2 net).
    pub fn mft(devices: &[(&str, u32)]) -> Vec<u8> {
        let n = devices.len() + 1;
        let mut m = Vec::new();
        m.extend(1u32.to_le_bytes());
        m.extend((n as u32).to_le_bytes());
        let mut entry = |name: &str, ty: u32| {
            let mut e = vec![0u8; ENTRY_SIZE];
            e[..name.len()].copy_from_slice(name.as_bytes());
            e[NAME_SIZE..NAME_SIZE + 4].copy_from_slice(&ty.to_le_bytes());
            m.extend(e);
        };
        entry("", RESERVED_FIRST);
        for (name, ty) in devices {
            entry(name, *ty);
        }
        m
    }

    /// A Solo5 note: header, name, descriptor (padded to 4 bytes).
    pub fn note(ty: u32, desc: &[u8]) -> Vec<u8> {
        let mut n = Vec::new();
        n.extend(6u32.to_le_bytes());
        n.extend((desc.len() as u32).to_le_bytes());
        n.extend(ty.to_le_bytes());
        n.extend(b"Solo5\0\0\0");
        n.extend(desc);
        while n.len() % 4 != 0 {
            n.push(0);
        }
        n
    }

    pub fn mft_note(mft: &[u8]) -> Vec<u8> {
        let mut d = vec![0u8; MFT_PAD];
        d.extend(mft);
        note(MFT1_TYPE, &d)
    }

    pub fn abi_note(target: u32) -> Vec<u8> {
        let mut d = Vec::new();
        for v in [target, 2, 0, 0] {
            d.extend(v.to_le_bytes());
        }
        note(ABI1_TYPE, &d)
    }

    /// An ELF64 executable for the host machine with one PT_NOTE program
    /// header per element of `notes`, plus a PT_LOAD.
    pub fn elf(notes: &[Vec<u8>]) -> Vec<u8> {
        let phnum = notes.len() + 1;
        let data_start = EHDR_SIZE + phnum * PHDR_SIZE;
        let mut f = vec![0u8; EHDR_SIZE];
        f[0..4].copy_from_slice(b"\x7fELF");
        f[4] = 2;
        f[5] = 1;
        f[6] = 1;
        f[16..18].copy_from_slice(&ET_EXEC.to_le_bytes());
        f[18..20].copy_from_slice(&host_machine().0.to_le_bytes());
        f[20..24].copy_from_slice(&1u32.to_le_bytes());
        f[24..32].copy_from_slice(&0x100000u64.to_le_bytes());
        f[32..40].copy_from_slice(&(EHDR_SIZE as u64).to_le_bytes());
        f[52..54].copy_from_slice(&(EHDR_SIZE as u16).to_le_bytes());
        f[54..56].copy_from_slice(&(PHDR_SIZE as u16).to_le_bytes());
        f[56..58].copy_from_slice(&(phnum as u16).to_le_bytes());
        let mut body: Vec<u8> = Vec::new();
        let mut phdrs = Vec::new();
        let mut ph = |ty: u32, off: usize, size: usize| {
            let mut p = vec![0u8; PHDR_SIZE];
            p[0..4].copy_from_slice(&ty.to_le_bytes());
            p[8..16].copy_from_slice(&(off as u64).to_le_bytes());
            p[32..40].copy_from_slice(&(size as u64).to_le_bytes());
            p[40..48].copy_from_slice(&(size as u64).to_le_bytes());
            p[48..56].copy_from_slice(&4u64.to_le_bytes());
            phdrs.extend(p);
        };
        ph(1, 0, data_start);
        for n in notes {
            ph(PT_NOTE, data_start + body.len(), n.len());
            body.extend(n);
        }
        f.extend(phdrs);
        f.extend(body);
        f
    }

    /// A unikernel declaring `devices`, built for `target` (1 hvt, 2 spt).
    pub fn unikernel(devices: &[(&str, u32)], target: u32) -> Vec<u8> {
        elf(&[abi_note(target), mft_note(&mft(devices))])
    }
}

#[cfg(test)]
mod tests {
    use super::fixture::*;
    use super::*;

    fn dev(name: &str, kind: DeviceKind) -> Device {
        Device {
            name: name.into(),
            kind,
        }
    }

    #[test]
    fn one_net() {
        let m = parse(&unikernel(&[("service", 2)], 1)).unwrap();
        assert_eq!(m.devices, [dev("service", DeviceKind::Net)]);
        assert_eq!(m.abi, Some((Target::Hvt, 2)));
    }

    #[test]
    fn one_block() {
        let m = parse(&unikernel(&[("storage", 1)], 2)).unwrap();
        assert_eq!(m.devices, [dev("storage", DeviceKind::Block)]);
        assert_eq!(m.abi, Some((Target::Spt, 2)));
    }

    #[test]
    fn several_devices_in_order() {
        let m = parse(&unikernel(&[("tap", 2), ("rootfs", 1), ("data2", 1)], 1)).unwrap();
        assert_eq!(
            m.devices,
            [
                dev("tap", DeviceKind::Net),
                dev("rootfs", DeviceKind::Block),
                dev("data2", DeviceKind::Block)
            ]
        );
        assert_eq!(m.of_kind(DeviceKind::Block).count(), 2);
    }

    #[test]
    fn no_devices() {
        let m = parse(&unikernel(&[], 1)).unwrap();
        assert!(m.devices.is_empty());
    }

    #[test]
    fn sixty_three_devices_is_the_limit() {
        let names: Vec<String> = (0..63).map(|i| format!("d{i}")).collect();
        let devs: Vec<(&str, u32)> = names.iter().map(|n| (n.as_str(), 1)).collect();
        assert_eq!(parse(&unikernel(&devs, 1)).unwrap().devices.len(), 63);
        let names: Vec<String> = (0..64).map(|i| format!("d{i}")).collect();
        let devs: Vec<(&str, u32)> = names.iter().map(|n| (n.as_str(), 1)).collect();
        let e = parse(&unikernel(&devs, 1)).unwrap_err();
        assert!(e.contains("more than"), "{e}");
    }

    #[test]
    fn manifest_without_abi_note_and_among_other_notes() {
        // A GNU build-id note first in the same segment, then ours.
        let mut gnu = Vec::new();
        gnu.extend(4u32.to_le_bytes());
        gnu.extend(8u32.to_le_bytes());
        gnu.extend(3u32.to_le_bytes());
        gnu.extend(b"GNU\0");
        gnu.extend([7u8; 8]);
        let mut seg = gnu;
        seg.extend(mft_note(&mft(&[("service", 2)])));
        let m = parse(&elf(&[seg])).unwrap();
        assert_eq!(m.devices, [dev("service", DeviceKind::Net)]);
        assert_eq!(m.abi, None);
    }

    fn err_of(bytes: &[u8]) -> String {
        parse(bytes).unwrap_err()
    }

    #[test]
    fn corrupt_notes_are_clear_errors() {
        // Wrong version.
        let mut m = mft(&[("service", 2)]);
        m[0] = 2;
        assert!(err_of(&elf(&[mft_note(&m)])).contains("manifest version 2"));
        // Entry count disagrees with the size.
        let mut m = mft(&[("service", 2)]);
        m[4] = 3;
        let e = err_of(&elf(&[mft_note(&m)]));
        assert!(e.contains("for 3 entries"), "{e}");
        // Unknown device type.
        let e = err_of(&elf(&[mft_note(&mft(&[("x", 7)]))]));
        assert!(e.contains("unknown type 7"), "{e}");
        // Non-alphanumeric name.
        let e = err_of(&elf(&[mft_note(&mft(&[("a-b", 1)]))]));
        assert!(e.contains("\"a-b\" is not alphanumeric"), "{e}");
        // Name without terminator.
        let mut m = mft(&[("x", 1)]);
        m[8 + ENTRY_SIZE + NAME_SIZE - 1] = b'z';
        assert!(err_of(&elf(&[mft_note(&m)])).contains("not NUL-terminated"));
        // Missing reserved entry.
        let mut m = mft(&[("x", 1)]);
        m[8 + NAME_SIZE..8 + NAME_SIZE + 4].copy_from_slice(&1u32.to_le_bytes());
        assert!(err_of(&elf(&[mft_note(&m)])).contains("reserved first entry"));
        // Attached flag set.
        let mut m = mft(&[("x", 1)]);
        m[8 + ENTRY_SIZE + 96] = 1;
        assert!(err_of(&elf(&[mft_note(&m)])).contains("attached"));
        // Duplicate names.
        let e = err_of(&elf(&[mft_note(&mft(&[("x", 1), ("x", 2)]))]));
        assert!(e.contains("declared twice"), "{e}");
        // Descriptor running past its segment.
        let mut f = unikernel(&[("x", 1)], 1);
        f.truncate(f.len() - 10);
        let e = err_of(&f);
        assert!(e.contains("truncated") || e.contains("file ends"), "{e}");
    }

    #[test]
    fn not_solo5_kernels() {
        assert!(err_of(b"hello").contains("too short"));
        assert!(err_of(&[0u8; 64]).contains("no ELF magic"));
        let e = err_of(&elf(&[]));
        assert!(e.contains("no Solo5 manifest note"), "{e}");
        let mut f = unikernel(&[], 1);
        f[4] = 1;
        assert!(err_of(&f).contains("not a 64-bit"));
        let mut f = unikernel(&[], 1);
        f[18] = 0x28;
        f[19] = 0;
        assert!(err_of(&f).contains("built for ELF machine 40"));
        let mut f = unikernel(&[], 1);
        f[16] = 3;
        assert!(err_of(&f).contains("ET_EXEC"));
    }

    #[test]
    fn reads_files() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("k");
        std::fs::write(&p, unikernel(&[("storage", 1)], 2)).unwrap();
        assert_eq!(
            read(&std::fs::File::open(&p).unwrap()).unwrap().devices,
            [dev("storage", DeviceKind::Block)]
        );
    }

    #[test]
    fn reads_beyond_the_buffered_head_from_the_file() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("k");
        std::fs::write(&p, unikernel(&[("net0", 1), ("disk", 2)], 2)).unwrap();
        let f = std::fs::File::open(&p).unwrap();
        let mut h = Headed::new(&f);
        let whole = parse_source(&h).unwrap();
        // Only the ELF header buffered: the rest comes from the file.
        h.head.truncate(EHDR_SIZE);
        assert_eq!(parse_source(&h).unwrap().devices, whole.devices);
        h.head.clear();
        assert_eq!(parse_source(&h).unwrap().devices, whole.devices);
    }
}
