//! What the domain builder tells a guest at boot: PVH's `hvm_start_info`
//! (with its memory map and command line) and classic PV's `start_info`.
//!
//! The builder is part of the trusted toolstack, but its structures are
//! still parsed defensively: magic and version checked, the memory map's
//! size bounded, every address range-checked through a [`PhysMap`].

use core::fmt;
use core::ptr::NonNull;

use zerocopy::FromBytes;

use xenpv_sys::arch_x86::{StartInfo, StartInfoConsoleDomU};
use xenpv_sys::hvm_start_info::{
    HvmMemmapTableEntry, HvmMemmapType, HvmStartInfo, XEN_HVM_START_MAGIC_VALUE,
};
use xenpv_sys::xen::StartInfoFlags;

use super::PhysMap;
use crate::PAGE_SIZE;

/// Most memory-map entries read (an E820 map has a few dozen at most).
pub const MAX_MEMMAP_ENTRIES: u32 = 128;

/// Why boot information was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StartInfoError {
    /// The structure (or a table it points to) is not in the mapped range.
    OutOfRange,
    /// Not the expected magic value.
    BadMagic,
    /// `hvm_start_info` version 0 has no memory map.
    NoMemmap,
    /// More memory-map entries than [`MAX_MEMMAP_ENTRIES`].
    MemmapTooLarge(u32),
}

impl fmt::Display for StartInfoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::OutOfRange => f.write_str("boot information outside the mapped memory"),
            Self::BadMagic => f.write_str("boot information has a bad magic value"),
            Self::NoMemmap => f.write_str("no memory map (hvm_start_info version 0)"),
            Self::MemmapTooLarge(n) => write!(f, "memory map of {n} entries is too large"),
        }
    }
}

impl core::error::Error for StartInfoError {}

/// PVH boot information: a checked copy of `struct hvm_start_info`, whose
/// physical address a PVH guest finds in `%ebx` at its entry point.
///
/// ```
/// use xenpv_platform::x86_64::{PhysMap, PvhStartInfo};
/// use xenpv_sys::hvm_start_info::*;
/// use zerocopy::IntoBytes;
///
/// // A builder's work, in host memory standing in for guest RAM at 0.
/// let mut ram = vec![0u8; 4096];
/// let info = HvmStartInfo {
///     magic: XEN_HVM_START_MAGIC_VALUE,
///     version: 1,
///     cmdline_paddr: 0x100,
///     memmap_paddr: 0x200,
///     memmap_entries: 1,
///     ..Default::default()
/// };
/// ram[..56].copy_from_slice(info.as_bytes());
/// ram[0x100..0x10b].copy_from_slice(b"console=hvc");
/// let ram_entry = HvmMemmapTableEntry { addr: 0, size: 64 << 20, type_: XEN_HVM_MEMMAP_TYPE_RAM, reserved: 0 };
/// ram[0x200..0x218].copy_from_slice(ram_entry.as_bytes());
///
/// // SAFETY: `ram` outlives `phys` and is not otherwise used meanwhile.
/// let phys = unsafe { PhysMap::over_slice(&mut ram, 0) };
/// let info = PvhStartInfo::read(&phys, 0)?;
/// let mut buf = [0u8; 64];
/// assert_eq!(info.cmdline(&phys, &mut buf), b"console=hvc");
/// let map = info.memmap(&phys)?;
/// assert_eq!(map.ram_end_below(1 << 32), Some(64 << 20));
/// # Ok::<(), xenpv_platform::x86_64::StartInfoError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PvhStartInfo {
    raw: HvmStartInfo,
}

impl PvhStartInfo {
    /// Parses the structure from its bytes.
    pub fn parse(bytes: &[u8]) -> Result<Self, StartInfoError> {
        let (raw, _) =
            HvmStartInfo::read_from_prefix(bytes).map_err(|_| StartInfoError::OutOfRange)?;
        Self::check(raw)
    }

    /// Reads the structure at physical address `pa` (the guest's `%ebx` at
    /// entry).
    pub fn read(phys: &PhysMap, pa: u64) -> Result<Self, StartInfoError> {
        let raw: HvmStartInfo = phys.read(pa).ok_or(StartInfoError::OutOfRange)?;
        Self::check(raw)
    }

    fn check(raw: HvmStartInfo) -> Result<Self, StartInfoError> {
        if raw.magic != XEN_HVM_START_MAGIC_VALUE {
            return Err(StartInfoError::BadMagic);
        }
        Ok(Self { raw })
    }

    /// The structure as the builder wrote it.
    pub fn raw(&self) -> &HvmStartInfo {
        &self.raw
    }

    /// `SIF_*` flags.
    pub fn flags(&self) -> StartInfoFlags {
        StartInfoFlags::from_bits_retain(self.raw.flags)
    }

    /// Physical address of the ACPI RSDP (0 if none).
    pub fn rsdp_paddr(&self) -> u64 {
        self.raw.rsdp_paddr
    }

    /// The command line (`cmdline =` in the xl config), copied into `buf`
    /// up to its NUL or `buf.len()` bytes; empty if there is none.
    pub fn cmdline<'b>(&self, phys: &PhysMap, buf: &'b mut [u8]) -> &'b [u8] {
        match self.raw.cmdline_paddr {
            0 => &[],
            pa => phys.read_cstr(pa, buf),
        }
    }

    /// The memory map (version 1 and later), after checking that all of it
    /// is in `phys` and that it has at most [`MAX_MEMMAP_ENTRIES`] entries.
    pub fn memmap<'a>(&self, phys: &'a PhysMap) -> Result<Memmap<'a>, StartInfoError> {
        if self.raw.version < 1 || self.raw.memmap_entries == 0 {
            return Err(StartInfoError::NoMemmap);
        }
        let count = self.raw.memmap_entries;
        if count > MAX_MEMMAP_ENTRIES {
            return Err(StartInfoError::MemmapTooLarge(count));
        }
        let len = u64::from(count) * ENTRY_SIZE;
        if !phys.contains(self.raw.memmap_paddr, len) {
            return Err(StartInfoError::OutOfRange);
        }
        Ok(Memmap {
            phys,
            base: self.raw.memmap_paddr,
            count,
        })
    }
}

const ENTRY_SIZE: u64 = core::mem::size_of::<HvmMemmapTableEntry>() as u64;

/// The PVH memory map (E820 numbering), read entry by entry from guest memory.
#[derive(Clone, Copy, Debug)]
pub struct Memmap<'a> {
    phys: &'a PhysMap,
    base: u64,
    count: u32,
}

impl Memmap<'_> {
    /// Number of entries.
    pub fn len(&self) -> usize {
        self.count as usize
    }

    /// Whether there are no entries (never, once [`PvhStartInfo::memmap`]
    /// accepted the map).
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The entries, in the builder's order.
    pub fn entries(&self) -> impl Iterator<Item = HvmMemmapTableEntry> + Clone + '_ {
        // Every entry is in range (checked by `PvhStartInfo::memmap`).
        (0..u64::from(self.count)).filter_map(|i| {
            self.phys
                .read::<HvmMemmapTableEntry>(self.base + i * ENTRY_SIZE)
        })
    }

    /// The end of the highest RAM region that ends at or below `limit`.
    pub fn ram_end_below(&self, limit: u64) -> Option<u64> {
        ram_end_below(self.entries(), limit)
    }

    /// The first frame of `pages` guest frames that hold no RAM and overlap
    /// no region of the map (so Xen may populate them: `shared_info`, grant
    /// frames): just above the highest RAM ending below `limit`, rounded up to
    /// 2 MiB, and ending at or below `limit`.
    pub fn unpopulated_window(&self, pages: usize, limit: u64) -> Option<u64> {
        unpopulated_window(self.entries(), pages, limit)
    }
}

/// See [`Memmap::ram_end_below`]; for any list of entries.
pub fn ram_end_below(
    entries: impl Iterator<Item = HvmMemmapTableEntry>,
    limit: u64,
) -> Option<u64> {
    entries
        .filter(|e| HvmMemmapType::try_from(e.type_) == Ok(HvmMemmapType::Ram))
        .filter_map(|e| e.addr.checked_add(e.size))
        .filter(|&end| end <= limit)
        .max()
}

/// See [`Memmap::unpopulated_window`]; for any list of entries.
///
/// ```
/// use xenpv_platform::x86_64::start_info::unpopulated_window;
/// use xenpv_sys::hvm_start_info::*;
/// let e = |addr, size, type_| HvmMemmapTableEntry { addr, size, type_, reserved: 0 };
/// let map = [
///     e(0, 0xa0000, XEN_HVM_MEMMAP_TYPE_RAM),
///     e(0x100000, 0x3ff0_0000, XEN_HVM_MEMMAP_TYPE_RAM), // RAM up to 1 GiB
///     e(0xfc00_0000, 0x400_0000, XEN_HVM_MEMMAP_TYPE_RESERVED),
/// ];
/// assert_eq!(unpopulated_window(map.into_iter(), 48, 0xf000_0000), Some(0x4_0000));
/// ```
pub fn unpopulated_window(
    entries: impl Iterator<Item = HvmMemmapTableEntry> + Clone,
    pages: usize,
    limit: u64,
) -> Option<u64> {
    const TWO_MIB: u64 = 2 << 20;
    let ram_end = ram_end_below(entries.clone(), limit)?;
    let start = ram_end.checked_next_multiple_of(TWO_MIB)?;
    let end = start.checked_add((pages as u64).checked_mul(PAGE_SIZE as u64)?)?;
    let mut all = entries;
    let overlaps = all.any(|e| e.addr < end && start < e.addr.saturating_add(e.size));
    (end <= limit && !overlaps).then_some(start / PAGE_SIZE as u64)
}

/// Classic PV boot information: a checked copy of `struct start_info`, whose
/// virtual address a PV guest finds in `%rsi` at its entry point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PvStartInfo {
    raw: StartInfo,
}

impl PvStartInfo {
    /// Parses the structure from its bytes; the magic must be
    /// `"xen-<version>-x86_64"`.
    pub fn parse(bytes: &[u8]) -> Result<Self, StartInfoError> {
        let (raw, _) =
            StartInfo::read_from_prefix(bytes).map_err(|_| StartInfoError::OutOfRange)?;
        let magic = raw.magic.split(|&b| b == 0).next().unwrap_or_default();
        if !magic.starts_with(b"xen-") || !magic.ends_with(b"-x86_64") {
            return Err(StartInfoError::BadMagic);
        }
        Ok(Self { raw })
    }

    /// Reads and parses the structure at `ptr`.
    ///
    /// # Safety
    /// `ptr` must be valid for reads of `size_of::<StartInfo>()` bytes (the
    /// page Xen passed in `%rsi`, mapped by the initial page tables).
    pub unsafe fn read(ptr: NonNull<StartInfo>) -> Result<Self, StartInfoError> {
        let mut raw = StartInfo::default();
        let dst = zerocopy::IntoBytes::as_mut_bytes(&mut raw);
        for (i, b) in dst.iter_mut().enumerate() {
            // SAFETY: `i < size_of::<StartInfo>()`, inside the structure the
            // caller vouches for; a volatile byte read creates no reference.
            *b = unsafe { ptr.as_ptr().cast::<u8>().wrapping_add(i).read_volatile() };
        }
        Self::parse(zerocopy::IntoBytes::as_bytes(&raw))
    }

    /// The structure as the builder wrote it.
    pub fn raw(&self) -> &StartInfo {
        &self.raw
    }

    /// `SIF_*` flags.
    pub fn flags(&self) -> StartInfoFlags {
        self.raw.sif_flags()
    }

    /// Pages given to the domain (the length of the p2m list).
    pub fn nr_pages(&self) -> u64 {
        self.raw.nr_pages
    }

    /// Virtual address of the p2m list (`mfn_list`).
    pub fn mfn_list(&self) -> u64 {
        self.raw.mfn_list
    }

    /// Machine address of the `shared_info` page.
    pub fn shared_info_maddr(&self) -> u64 {
        self.raw.shared_info
    }

    /// The xenstore page's machine frame and event channel.
    pub fn store(&self) -> (u64, u32) {
        (self.raw.store_mfn, self.raw.store_evtchn)
    }

    /// The PV console's machine frame and event channel; `None` for the
    /// initial domain, whose `console` field means something else.
    pub fn console(&self) -> Option<(u64, u32)> {
        if self.flags().contains(StartInfoFlags::INITDOMAIN) {
            return None;
        }
        let bytes = zerocopy::IntoBytes::as_bytes(&self.raw.console);
        let c = StartInfoConsoleDomU::read_from_bytes(bytes).ok()?;
        Some((c.mfn, c.evtchn))
    }

    /// The command line, up to its NUL.
    pub fn cmdline(&self) -> &[u8] {
        self.raw
            .cmd_line
            .split(|&b| b == 0)
            .next()
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xenpv_sys::hvm_start_info::{XEN_HVM_MEMMAP_TYPE_RAM, XEN_HVM_MEMMAP_TYPE_RESERVED};
    use zerocopy::IntoBytes;

    fn e(addr: u64, size: u64, type_: u32) -> HvmMemmapTableEntry {
        HvmMemmapTableEntry {
            addr,
            size,
            type_,
            reserved: 0,
        }
    }

    fn guest(info: HvmStartInfo, map: &[HvmMemmapTableEntry], cmdline: &[u8]) -> std::vec::Vec<u8> {
        let mut ram = std::vec![0u8; 8192];
        ram[..56].copy_from_slice(info.as_bytes());
        ram[0x100..0x100 + cmdline.len()].copy_from_slice(cmdline);
        for (i, m) in map.iter().enumerate() {
            ram[0x1000 + 24 * i..0x1000 + 24 * (i + 1)].copy_from_slice(m.as_bytes());
        }
        ram
    }

    fn info(entries: u32) -> HvmStartInfo {
        HvmStartInfo {
            magic: XEN_HVM_START_MAGIC_VALUE,
            version: 1,
            cmdline_paddr: 0x100,
            memmap_paddr: 0x1000,
            memmap_entries: entries,
            ..Default::default()
        }
    }

    #[test]
    fn pvh_start_info_memmap_and_cmdline() {
        let map = [
            e(0, 0x9f000, XEN_HVM_MEMMAP_TYPE_RAM),
            e(0x100000, 0x1ff0_0000, XEN_HVM_MEMMAP_TYPE_RAM),
            e(0xfc00_0000, 0x100_0000, XEN_HVM_MEMMAP_TYPE_RESERVED),
        ];
        let mut ram = guest(info(3), &map, b"xtb.break=grant quiet\0garbage");
        // SAFETY: `ram` outlives `phys` and is not otherwise used meanwhile.
        let phys = unsafe { PhysMap::over_slice(&mut ram, 0) };
        let si = PvhStartInfo::read(&phys, 0).unwrap();
        let mut buf = [0u8; 64];
        assert_eq!(si.cmdline(&phys, &mut buf), b"xtb.break=grant quiet");
        let mm = si.memmap(&phys).unwrap();
        assert_eq!(mm.len(), 3);
        assert_eq!(mm.entries().nth(2), Some(map[2]));
        assert_eq!(mm.ram_end_below(u64::MAX), Some(0x2000_0000));
        assert_eq!(mm.unpopulated_window(48, 0xf000_0000), Some(0x2_0000));
        // A window that would reach the reserved region is refused.
        assert_eq!(mm.unpopulated_window(48, 0x2000_0000 + 47 * 4096), None);
    }

    #[test]
    fn hostile_start_info_is_refused_not_followed() {
        let mut bad_magic = info(1);
        bad_magic.magic ^= 1;
        let mut ram = guest(bad_magic, &[], b"");
        // SAFETY: as above.
        let phys = unsafe { PhysMap::over_slice(&mut ram, 0) };
        assert_eq!(PvhStartInfo::read(&phys, 0), Err(StartInfoError::BadMagic));
        assert_eq!(
            PvhStartInfo::read(&phys, 8190),
            Err(StartInfoError::OutOfRange)
        );

        for (entries, paddr, want) in [
            (
                MAX_MEMMAP_ENTRIES + 1,
                0x1000,
                StartInfoError::MemmapTooLarge(129),
            ),
            (u32::MAX, 0x1000, StartInfoError::MemmapTooLarge(u32::MAX)),
            (0, 0x1000, StartInfoError::NoMemmap),
            (100, 0x1f00, StartInfoError::OutOfRange), // runs off the end
            (1, u64::MAX - 8, StartInfoError::OutOfRange),
        ] {
            let mut i = info(entries);
            i.memmap_paddr = paddr;
            let mut ram = guest(i, &[], b"");
            // SAFETY: as above.
            let phys = unsafe { PhysMap::over_slice(&mut ram, 0) };
            let si = PvhStartInfo::read(&phys, 0).unwrap();
            assert_eq!(si.memmap(&phys).map(|m| m.len()), Err(want));
        }
        let mut v0 = info(1);
        v0.version = 0;
        assert_eq!(
            PvhStartInfo::parse(v0.as_bytes())
                .unwrap()
                .memmap(&phys)
                .map(|m| m.len()),
            Err(StartInfoError::NoMemmap)
        );
        assert_eq!(
            PvhStartInfo::parse(&[0; 10]),
            Err(StartInfoError::OutOfRange)
        );
    }

    #[test]
    fn window_edge_cases() {
        let ram = |size| [e(0, size, XEN_HVM_MEMMAP_TYPE_RAM)];
        // No RAM below the limit.
        assert_eq!(
            unpopulated_window(ram(1 << 33).into_iter(), 1, 1 << 32),
            None
        );
        // Overflowing entries are ignored, not wrapped.
        let map = [
            e(u64::MAX, 2, XEN_HVM_MEMMAP_TYPE_RAM),
            e(0, 4096, XEN_HVM_MEMMAP_TYPE_RAM),
        ];
        assert_eq!(unpopulated_window(map.into_iter(), 1, 1 << 32), Some(0x200));
        // Unknown types are not RAM, but still must not be overlapped.
        let map = [e(0, 4096, XEN_HVM_MEMMAP_TYPE_RAM), e(0x200000, 4096, 99)];
        assert_eq!(unpopulated_window(map.into_iter(), 1, 1 << 32), None);
        assert_eq!(
            unpopulated_window(ram(4096).into_iter(), usize::MAX, u64::MAX),
            None
        );
    }

    #[test]
    fn pv_start_info() {
        let mut raw = StartInfo::default();
        raw.magic[..14].copy_from_slice(b"xen-3.0-x86_64");
        raw.store_mfn = 0x1234;
        raw.store_evtchn = 1;
        raw.console.raw = [0x5678, 2];
        raw.cmd_line[..5].copy_from_slice(b"quiet");
        let si = PvStartInfo::parse(raw.as_bytes()).unwrap();
        assert_eq!(si.store(), (0x1234, 1));
        assert_eq!(si.console(), Some((0x5678, 2)));
        assert_eq!(si.cmdline(), b"quiet");
        // SAFETY: `raw` is a whole StartInfo on the stack.
        let again = unsafe { PvStartInfo::read(NonNull::from(&raw)) }.unwrap();
        assert_eq!(again, si);
        raw.flags = StartInfoFlags::INITDOMAIN.bits();
        assert_eq!(PvStartInfo::parse(raw.as_bytes()).unwrap().console(), None);
        raw.magic[..14].copy_from_slice(b"xen-3.0-x86_32");
        assert_eq!(
            PvStartInfo::parse(raw.as_bytes()),
            Err(StartInfoError::BadMagic)
        );
    }
}
