//! Finding Xen from inside an HVM/PVH guest: its CPUID leaves.
//!
//! Facts from `xen/include/public/arch-x86/cpuid.h`: Xen's leaves start at
//! `0x40000000` or a multiple of `0x100` above it (Xen moves them up when it
//! also presents Viridian leaves for Windows guests). Leaf `base` carries the
//! `"XenVMMXenVMM"` signature and the highest Xen leaf, `base + 1` the
//! version, `base + 2` the number of hypercall pages and the MSR that
//! installs them, `base + 3` the guest TSC frequency, `base + 4` HVM features
//! (with the vCPU and domain ids when flagged).

use xenpv_sys::xen::DomId;

/// First leaf Xen may use.
pub const XEN_CPUID_FIRST_LEAF: u32 = 0x4000_0000;
/// Xen's leaves move in steps of this many leaves.
pub const XEN_CPUID_LEAF_STEP: u32 = 0x100;
/// Last base the signature may be found at.
pub const XEN_CPUID_LAST_BASE: u32 = 0x4000_ff00;
/// `"XenVMMXenVMM"` in `ebx`, `ecx`, `edx` of the base leaf.
pub const XEN_CPUID_SIGNATURE: [u32; 3] = [0x566e_6558, 0x6558_4d4d, 0x4d4d_566e];

/// Leaf `base + 4`, `eax`: the vCPU id is in `ebx`.
pub const XEN_HVM_CPUID_VCPU_ID_PRESENT: u32 = 1 << 3;
/// Leaf `base + 4`, `eax`: the domain id is in `ecx` (Xen 4.9 and later).
pub const XEN_HVM_CPUID_DOMID_PRESENT: u32 = 1 << 4;
/// Leaf `base + 4`, `eax`: per-vCPU event-channel upcall vectors
/// (`HVMOP_set_evtchn_upcall_vector`) are supported.
pub const XEN_HVM_CPUID_UPCALL_VECTOR: u32 = 1 << 6;

/// Executes `cpuid` for `leaf`/`subleaf`: `[eax, ebx, ecx, edx]`.
#[allow(unused_unsafe)] // the intrinsic is a safe fn on newer toolchains
pub fn cpuid(leaf: u32, subleaf: u32) -> [u32; 4] {
    // SAFETY: `cpuid` exists on every x86_64 CPU and only writes registers.
    let r = unsafe { core::arch::x86_64::__cpuid_count(leaf, subleaf) };
    [r.eax, r.ebx, r.ecx, r.edx]
}

/// What Xen says about itself in its CPUID leaves, read once.
///
/// [`XenCpuid::detect`] reads the real CPU; [`XenCpuid::scan`] takes any
/// `cpuid` function, so the scan is testable:
///
/// ```
/// use xenpv_platform::x86_64::cpuid::{XEN_CPUID_SIGNATURE, XenCpuid};
///
/// // Xen 4.17 at 0x40000100 (behind Viridian leaves), hypercall MSR
/// // 0x40000000, 1 GHz TSC, domain 7.
/// let [b, c, d] = XEN_CPUID_SIGNATURE;
/// let fake = |leaf: u32, _sub: u32| match leaf {
///     0x4000_0100 => [0x4000_0105, b, c, d],
///     0x4000_0101 => [4 << 16 | 17, 0, 0, 0],
///     0x4000_0102 => [1, 0x4000_0000, 0, 0],
///     0x4000_0103 => [0, 0, 1_000_000, 0],
///     0x4000_0104 => [1 << 4, 0, 7, 0],
///     _ => [0; 4],
/// };
/// let xen = XenCpuid::scan(fake).unwrap();
/// assert_eq!(xen.base(), 0x4000_0100);
/// assert_eq!(xen.version(), (4, 17));
/// assert_eq!(xen.hypercall_msr(), 0x4000_0000);
/// assert_eq!(xen.tsc_khz(), Some(1_000_000));
/// assert_eq!(xen.domid(), Some(7));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct XenCpuid {
    base: u32,
    max: u32,
    version: (u16, u16),
    hypercall_pages: u32,
    hypercall_msr: u32,
    tsc_khz: Option<u32>,
    hvm_features: u32,
    vcpu_id: Option<u32>,
    domid: Option<DomId>,
}

impl XenCpuid {
    /// Looks for Xen's signature on this CPU (`0x40000000`, `0x40000100`,
    /// ... `0x4000ff00`). `None` when not running on Xen, or on a Xen too old
    /// to have the hypercall leaf.
    pub fn detect() -> Option<Self> {
        Self::scan(cpuid)
    }

    /// As [`detect`](Self::detect), with `cpuid(leaf, subleaf)` supplied by
    /// the caller (tests, or a PV guest's forced-emulation `cpuid`).
    pub fn scan(mut cpuid: impl FnMut(u32, u32) -> [u32; 4]) -> Option<Self> {
        let (base, max) = (XEN_CPUID_FIRST_LEAF..=XEN_CPUID_LAST_BASE)
            .step_by(XEN_CPUID_LEAF_STEP as usize)
            .find_map(|base| {
                let [max, b, c, d] = cpuid(base, 0);
                // The hypercall leaf is the one a guest cannot do without.
                let usable = [b, c, d] == XEN_CPUID_SIGNATURE && max >= base + 2;
                usable.then_some((base, max))
            })?;
        let [ver, ..] = cpuid(base + 1, 0);
        let [pages, msr, ..] = cpuid(base + 2, 0);
        let tsc_khz = if max >= base + 3 {
            Some(cpuid(base + 3, 0)[2]).filter(|&khz| khz != 0)
        } else {
            None
        };
        let [hvm_features, vcpu, dom, _] = if max >= base + 4 {
            cpuid(base + 4, 0)
        } else {
            [0; 4]
        };
        Some(Self {
            base,
            max,
            version: ((ver >> 16) as u16, ver as u16),
            hypercall_pages: pages,
            hypercall_msr: msr,
            tsc_khz,
            hvm_features,
            vcpu_id: (hvm_features & XEN_HVM_CPUID_VCPU_ID_PRESENT != 0).then_some(vcpu),
            domid: (hvm_features & XEN_HVM_CPUID_DOMID_PRESENT != 0).then_some(dom as DomId),
        })
    }

    /// The leaf the signature was found at.
    pub fn base(&self) -> u32 {
        self.base
    }

    /// The highest Xen leaf.
    pub fn max_leaf(&self) -> u32 {
        self.max
    }

    /// Xen's `(major, minor)` version.
    pub fn version(&self) -> (u16, u16) {
        self.version
    }

    /// The MSR whose write installs a hypercall page.
    pub fn hypercall_msr(&self) -> u32 {
        self.hypercall_msr
    }

    /// How many hypercall pages Xen offers (1 on every current Xen).
    pub fn hypercall_pages(&self) -> u32 {
        self.hypercall_pages
    }

    /// Guest TSC frequency in kHz, if Xen reports one.
    pub fn tsc_khz(&self) -> Option<u32> {
        self.tsc_khz
    }

    /// `XEN_HVM_CPUID_*` feature bits of leaf `base + 4` (0 if absent).
    pub fn hvm_features(&self) -> u32 {
        self.hvm_features
    }

    /// Whether `HVMOP_set_evtchn_upcall_vector` is available
    /// ([`XEN_HVM_CPUID_UPCALL_VECTOR`]).
    pub fn has_upcall_vector(&self) -> bool {
        self.hvm_features & XEN_HVM_CPUID_UPCALL_VECTOR != 0
    }

    /// The id of the vCPU that ran [`scan`](Self::scan), if Xen reports it.
    pub fn vcpu_id(&self) -> Option<u32> {
        self.vcpu_id
    }

    /// This domain's id, if Xen reports it (Xen 4.9 and later).
    pub fn domid(&self) -> Option<DomId> {
        self.domid
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn xen_at(base: u32, max_off: u32) -> impl FnMut(u32, u32) -> [u32; 4] {
        let [b, c, d] = XEN_CPUID_SIGNATURE;
        move |leaf, _| match leaf.wrapping_sub(base) {
            0 => [base + max_off, b, c, d],
            1 => [4 << 16 | 17, 0, 0, 0],
            2 => [1, 0x4000_0000, 0, 0],
            3 => [0, 0, 2_500_000, 0],
            4 => [
                XEN_HVM_CPUID_DOMID_PRESENT | XEN_HVM_CPUID_UPCALL_VECTOR,
                0,
                3,
                0,
            ],
            _ => [0; 4],
        }
    }

    #[test]
    fn finds_xen_at_every_step_and_reads_its_leaves() {
        for base in [0x4000_0000, 0x4000_0100, 0x4000_ff00] {
            let xen = XenCpuid::scan(xen_at(base, 4)).unwrap();
            assert_eq!(xen.base(), base);
            assert_eq!(xen.version(), (4, 17));
            assert_eq!(xen.hypercall_msr(), 0x4000_0000);
            assert_eq!(xen.tsc_khz(), Some(2_500_000));
            assert_eq!(xen.domid(), Some(3));
            assert_eq!(xen.vcpu_id(), None);
            assert!(xen.has_upcall_vector());
        }
    }

    #[test]
    fn leaves_beyond_max_are_not_read() {
        let xen = XenCpuid::scan(xen_at(0x4000_0000, 2)).unwrap();
        assert_eq!(
            (xen.tsc_khz(), xen.domid(), xen.hvm_features()),
            (None, None, 0)
        );
    }

    #[test]
    fn no_signature_or_no_hypercall_leaf_is_not_xen() {
        assert_eq!(XenCpuid::scan(|_, _| [0; 4]), None);
        // Signature but max leaf too small for the hypercall leaf.
        assert_eq!(XenCpuid::scan(xen_at(0x4000_0000, 1)), None);
        // Another hypervisor's signature (KVM's "KVMKVMKVM\0\0\0").
        let kvm = |leaf: u32, _| match leaf {
            0x4000_0000 => [0x4000_0001, 0x4b4d_564b, 0x564b_4d56, 0x4d],
            _ => [0; 4],
        };
        assert_eq!(XenCpuid::scan(kvm), None);
        // The scan stops at the last base.
        let mut leaves = std::vec::Vec::new();
        let _ = XenCpuid::scan(|leaf, _| {
            leaves.push(leaf);
            [0; 4]
        });
        assert_eq!(leaves.len(), 256);
        assert_eq!(leaves.last(), Some(&XEN_CPUID_LAST_BASE));
    }
}
