//! `version.h`: `XENVER_*` queries and their structures.

use crate::xen::XenUlong;

pub use crate::features::XenFeatureInfo;

/// Returns `major << 16 | minor` (argument NULL).
pub const XENVER_VERSION: u32 = 0;
/// Extra version string (`xen_extraversion_t`).
pub const XENVER_EXTRAVERSION: u32 = 1;
/// Build information ([`XenCompileInfo`]).
pub const XENVER_COMPILE_INFO: u32 = 2;
/// Capability string (`xen_capabilities_info_t`).
pub const XENVER_CAPABILITIES: u32 = 3;
/// Changeset string (`xen_changeset_info_t`).
pub const XENVER_CHANGESET: u32 = 4;
/// Platform parameters ([`XenPlatformParameters`]).
pub const XENVER_PLATFORM_PARAMETERS: u32 = 5;
/// One 32-bit submap of `XENFEAT_*` flags ([`XenFeatureInfo`]).
pub const XENVER_GET_FEATURES: u32 = 6;
/// Returns the hypervisor's page size (argument NULL).
pub const XENVER_PAGESIZE: u32 = 7;
/// The domain's handle (`xen_domain_handle_t`).
pub const XENVER_GUEST_HANDLE: u32 = 8;
/// Xen's command line (`xen_commandline_t`).
pub const XENVER_COMMANDLINE: u32 = 9;
/// Build id ([`XenBuildId`]).
pub const XENVER_BUILD_ID: u32 = 10;

/// Size of `xen_extraversion_t`.
pub const XEN_EXTRAVERSION_LEN: usize = 16;
/// Size of `xen_capabilities_info_t`.
pub const XEN_CAPABILITIES_INFO_LEN: usize = 1024;
/// Size of `xen_changeset_info_t`.
pub const XEN_CHANGESET_INFO_LEN: usize = 64;
/// Size of `xen_commandline_t`.
pub const XEN_COMMANDLINE_LEN: usize = 1024;

/// `xen_extraversion_t`.
pub type XenExtraversion = [u8; XEN_EXTRAVERSION_LEN];
/// `xen_capabilities_info_t`.
pub type XenCapabilitiesInfo = [u8; XEN_CAPABILITIES_INFO_LEN];
/// `xen_changeset_info_t`.
pub type XenChangesetInfo = [u8; XEN_CHANGESET_INFO_LEN];
/// `xen_commandline_t`.
pub type XenCommandline = [u8; XEN_COMMANDLINE_LEN];

abi_struct_big! {
    /// `struct xen_compile_info`: NUL-padded build strings.
    #[doc(alias = "xen_compile_info")]
    pub struct XenCompileInfo {
        /// Compiler.
        pub compiler: [u8; 64],
        /// Built by.
        pub compile_by: [u8; 16],
        /// Build domain.
        pub compile_domain: [u8; 32],
        /// Build date.
        pub compile_date: [u8; 32],
    }
}
assert_layout!(XenCompileInfo, size 144, align 1, compiler @ 0, compile_by @ 64,
    compile_domain @ 80, compile_date @ 112);

abi_struct! {
    /// `struct xen_platform_parameters`.
    #[doc(alias = "xen_platform_parameters")]
    pub struct XenPlatformParameters {
        /// Start of the hypervisor's virtual range.
        pub virt_start: XenUlong,
    }
}
assert_layout!(XenPlatformParameters, size 8, align 8, virt_start @ 0);

abi_struct! {
    /// `struct xen_build_id`: header of a variable-length build id; the id
    /// bytes follow (`buf[]` at offset 4).
    #[doc(alias = "xen_build_id")]
    pub struct XenBuildId {
        /// IN: size of the buffer; OUT: size of the id.
        pub len: u32,
    }
}
assert_layout!(XenBuildId, size 4, align 4, len @ 0);
