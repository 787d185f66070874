//! What a kernel file is, as far as the monitors that load kernels
//! themselves (Firecracker, Cloud Hypervisor) care: a Linux bzImage, or an
//! ELF file with its class, byte order, machine, entry point and whether it
//! carries a PVH entry note. Each monitor then states its own policy.

use std::os::unix::fs::FileExt;

pub const EM_X86_64: u16 = 62;
/// Lowest entry point both loaders accept (1 MiB, `HIGH_RAM_START`).
pub const MIN_ENTRY: u64 = 0x10_0000;

const PT_NOTE: u32 = 4;
const PHDR_SIZE: usize = 56;
const XEN_ELFNOTE_PHYS32_ENTRY: u32 = 18;
/// Enough for the ELF header and the bzImage setup header magic.
const HEAD: usize = 0x206;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KernelImage {
    /// A compressed Linux boot image ("HdrS" setup header at 0x202).
    BzImage,
    Elf(ElfFacts),
    /// Neither.
    Other,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElfFacts {
    pub class64: bool,
    pub little_endian: bool,
    pub machine: u16,
    pub entry: u64,
    /// XEN_ELFNOTE_PHYS32_ENTRY in a PT_NOTE segment (only looked for in
    /// 64-bit little-endian files).
    pub pvh: bool,
}

/// Reads just enough of the open file `f` to tell what it is (at offsets:
/// the file's position is left alone). Errors say what is wrong with the
/// file (to follow "kernel <path> ").
pub fn identify(f: &std::fs::File) -> Result<KernelImage, String> {
    identify_from(f)
}

/// Where [`identify`] reads from: the open file, or bytes in memory (the
/// fuzz target, `fuzz/fuzz_targets/kernel_image.rs`), through one reader.
pub trait ReadAt {
    fn read_at(&self, buf: &mut [u8], off: u64) -> std::io::Result<usize>;
}

impl ReadAt for std::fs::File {
    fn read_at(&self, buf: &mut [u8], off: u64) -> std::io::Result<usize> {
        FileExt::read_at(self, buf, off)
    }
}

impl ReadAt for [u8] {
    fn read_at(&self, buf: &mut [u8], off: u64) -> std::io::Result<usize> {
        let start = usize::try_from(off).unwrap_or(usize::MAX).min(self.len());
        let n = buf.len().min(self.len() - start);
        buf[..n].copy_from_slice(&self[start..start + n]);
        Ok(n)
    }
}

/// [`identify`] over any [`ReadAt`].
pub fn identify_from<R: ReadAt + ?Sized>(f: &R) -> Result<KernelImage, String> {
    let mut head = vec![0u8; HEAD];
    let mut got = 0;
    while got < HEAD {
        match f.read_at(&mut head[got..], got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("cannot be read: {e}")),
        }
    }
    head.truncate(got);
    if head.len() >= HEAD && &head[0x202..0x206] == b"HdrS" {
        return Ok(KernelImage::BzImage);
    }
    if head.len() < 4 || &head[..4] != b"\x7fELF" {
        return Ok(KernelImage::Other);
    }
    if head.len() < 64 {
        return Err("is a truncated ELF file".into());
    }
    let h = &head;
    let u16_at = |o: usize| u16::from_le_bytes([h[o], h[o + 1]]);
    let u64_at = |o: usize| u64::from_le_bytes(h[o..o + 8].try_into().unwrap_or_default());
    let mut facts = ElfFacts {
        class64: h[4] == 2,
        little_endian: h[5] == 1,
        machine: u16_at(18),
        entry: u64_at(24),
        pvh: false,
    };
    if facts.class64 && facts.little_endian {
        let (offset, phentsize, num) = (u64_at(32), u16_at(54), u16_at(56));
        if num > 0 && (usize::from(phentsize) != PHDR_SIZE || offset < 64) {
            return Err("has a malformed program header table".into());
        }
        let table = read_at(f, offset, usize::from(num) * PHDR_SIZE)
            .map_err(|e| format!("has a program header table that cannot be read: {e}"))?;
        for p in table.chunks_exact(PHDR_SIZE) {
            if u32::from_le_bytes(p[0..4].try_into().unwrap_or_default()) != PT_NOTE {
                continue;
            }
            let off = u64::from_le_bytes(p[8..16].try_into().unwrap_or_default());
            let size = u64::from_le_bytes(p[32..40].try_into().unwrap_or_default());
            let size = usize::try_from(size.min(1 << 20)).unwrap_or(1 << 20);
            let notes = read_at(f, off, size)
                .map_err(|e| format!("has a note that cannot be read: {e}"))?;
            if has_pvh_note(&notes) {
                facts.pvh = true;
                break;
            }
        }
    }
    Ok(KernelImage::Elf(facts))
}

/// The checks both loaders share for an ELF kernel: 64-bit, little-endian,
/// x86-64, entry at or above 1 MiB. `monitor` and `needs` go into messages.
pub fn check_x86_64_elf(e: &ElfFacts, monitor: &str, needs: &str) -> Result<(), String> {
    if !e.class64 {
        return Err(format!("is a 32-bit ELF file; {needs}"));
    }
    if !e.little_endian {
        return Err(format!("is a big-endian ELF file; {needs}"));
    }
    if e.machine != EM_X86_64 {
        return Err(format!(
            "is an ELF file for machine {}, not x86-64; {needs}",
            e.machine
        ));
    }
    if e.entry < MIN_ENTRY {
        return Err(format!(
            "has its ELF entry point at {:#x}; {monitor} needs it at or above {MIN_ENTRY:#x} (1 MiB)",
            e.entry
        ));
    }
    Ok(())
}

fn read_at<R: ReadAt + ?Sized>(f: &R, off: u64, len: usize) -> std::io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    let mut got = 0;
    while got < len {
        match f.read_at(&mut buf[got..], off + got as u64) {
            Ok(0) => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(buf)
}

/// Whether a PT_NOTE segment holds the PVH entry (name "Xen", type 18, a
/// descriptor of at least 4 bytes).
fn has_pvh_note(mut n: &[u8]) -> bool {
    let align = |x: usize| x.div_ceil(4) * 4;
    while n.len() >= 12 {
        let word = |i: usize| u32::from_le_bytes(n[i..i + 4].try_into().unwrap_or_default());
        let (namesz, descsz, ty) = (word(0) as usize, word(4) as usize, word(8));
        if ty == XEN_ELFNOTE_PHYS32_ENTRY
            && namesz == 4
            && n.len() >= 16
            && &n[12..16] == b"Xen\0"
            && descsz >= 4
        {
            return true;
        }
        let end = (12 + align(namesz)).saturating_add(align(descsz));
        if end > n.len() {
            return false;
        }
        n = &n[end..];
    }
    false
}

/// Test files: ELF headers, notes, bzImages.
#[cfg(test)]
pub(crate) mod testfiles {
    use super::*;

    /// A 64-bit ELF header plus one PT_NOTE program header at offset 64
    /// whose segment (at 120) holds `note`.
    pub fn elf64(class: u8, machine: u16, entry: u64, note: &[u8]) -> Vec<u8> {
        let mut h = vec![0u8; 120];
        h[..4].copy_from_slice(b"\x7fELF");
        h[4] = class;
        h[5] = 1;
        h[18..20].copy_from_slice(&machine.to_le_bytes());
        h[24..32].copy_from_slice(&entry.to_le_bytes());
        h[32..40].copy_from_slice(&64u64.to_le_bytes());
        h[54..56].copy_from_slice(&56u16.to_le_bytes());
        h[56..58].copy_from_slice(&1u16.to_le_bytes());
        h[64..68].copy_from_slice(&PT_NOTE.to_le_bytes());
        h[72..80].copy_from_slice(&120u64.to_le_bytes());
        h[96..104].copy_from_slice(&(note.len() as u64).to_le_bytes());
        h.extend_from_slice(note);
        h
    }

    pub fn note(name: &[u8], ty: u32, desc: &[u8]) -> Vec<u8> {
        let mut n = vec![];
        n.extend((name.len() as u32).to_le_bytes());
        n.extend((desc.len() as u32).to_le_bytes());
        n.extend(ty.to_le_bytes());
        n.extend(name);
        n.resize(n.len().div_ceil(4) * 4, 0);
        n.extend(desc);
        n.resize(n.len().div_ceil(4) * 4, 0);
        n
    }

    pub fn pvh_note() -> Vec<u8> {
        note(
            b"Xen\0",
            XEN_ELFNOTE_PHYS32_ENTRY,
            &0x100000u32.to_le_bytes(),
        )
    }

    pub fn bzimage() -> Vec<u8> {
        let mut bz = vec![0u8; 0x300];
        bz[0x202..0x206].copy_from_slice(b"HdrS");
        bz
    }

    /// Writes `bytes` to a temp file and runs `check` on it, open.
    pub fn check_bytes<T>(bytes: &[u8], check: impl FnOnce(&std::fs::File) -> T) -> T {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k");
        std::fs::write(&p, bytes).unwrap();
        check(&std::fs::File::open(&p).unwrap())
    }
}

#[cfg(test)]
mod tests {
    use super::testfiles::*;
    use super::*;

    fn id(bytes: &[u8]) -> Result<KernelImage, String> {
        check_bytes(bytes, identify)
    }

    #[test]
    fn identifies_images() {
        let gnu = note(b"GNU\0", 3, &[1; 20]);
        let elf = |class64, pvh| {
            KernelImage::Elf(ElfFacts {
                class64,
                little_endian: true,
                machine: EM_X86_64,
                entry: 0x100000,
                pvh,
            })
        };
        assert_eq!(
            id(&elf64(2, 62, 0x100000, &pvh_note())),
            Ok(elf(true, true))
        );
        assert_eq!(
            id(&elf64(2, 62, 0x100000, &[gnu.clone(), pvh_note()].concat())),
            Ok(elf(true, true))
        );
        assert_eq!(id(&elf64(2, 62, 0x100000, &gnu)), Ok(elf(true, false)));
        assert_eq!(
            id(&elf64(2, 62, 0x100000, &note(b"Xen\0", 18, &[1, 2]))),
            Ok(elf(true, false))
        );
        assert_eq!(
            id(&elf64(1, 62, 0x100000, &pvh_note())),
            Ok(elf(false, false))
        );
        assert_eq!(id(&bzimage()), Ok(KernelImage::BzImage));
        assert_eq!(id(b"#!/bin/sh\n"), Ok(KernelImage::Other));
        assert_eq!(id(b""), Ok(KernelImage::Other));
        assert!(id(b"\x7fELF\x02\x01").unwrap_err().contains("truncated"));
        let mut bad = elf64(2, 62, 0x100000, &pvh_note());
        bad[54] = 32;
        assert!(id(&bad).unwrap_err().contains("malformed"));
        let mut cut = elf64(2, 62, 0x100000, &pvh_note());
        cut.truncate(100);
        assert!(id(&cut).unwrap_err().contains("cannot be read"));
    }
}
