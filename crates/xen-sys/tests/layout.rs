//! Layout proof: every mirrored struct, field and constant against Xen's C
//! headers (Debian's `libxen-dev`, `/usr/include/xen`).
//!
//! One table (in [`table`]) lists every check once. From it the test
//! generates a C program per *view* that prints `key<TAB>value` lines
//! (`sizeof`, `_Alignof`, `offsetof`, field `sizeof`, field signedness,
//! constant values, and `RING_SIZE` after `FRONT_RING_INIT` for the rings),
//! builds it with the system C compiler (`$CC`, default `cc`), runs it, and
//! compares its output with the values the same table computes in Rust. Any
//! difference, and any key missing on either side, fails the test with the
//! full list.
//!
//! Views (on an x86_64 host):
//! * `x86_64`: the guest view, `__XEN_INTERFACE_VERSION__` = latest;
//! * `x86_64-tools`: the same headers with `__XEN_TOOLS__` (adds the
//!   toolstack-only constants, and re-checks everything else);
//! * `aarch64-sim`: Xen's arm headers, compiled by the host compiler with the
//!   arch macros switched (`tests/layout/prelude.h`). Both ABIs are LP64 with
//!   natural alignment, so this checks the arm layouts in the headers.
//!
//! Set `XEN_INCLUDE_DIR` to use headers from somewhere other than
//! `/usr/include` (the directory that contains `xen/xen.h`).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::marker::PhantomData;
use std::mem::{align_of, offset_of, size_of};
use std::path::{Path, PathBuf};
use std::process::Command;

use xenpv_sys::io::{blkif, console, libxenvchan, netif, protocols, ring, xenbus, xs_wire};
use xenpv_sys::*;

// --- Field probes ------------------------------------------------------------------------

fn field_size<T, F>(_: impl Fn(&T) -> &F) -> usize {
    size_of::<F>()
}

struct Probe<F>(PhantomData<F>);

fn probe<T, F>(_: impl Fn(&T) -> &F) -> Probe<F> {
    Probe(PhantomData)
}

/// Integer fields: 1 signed, 0 unsigned (chosen by method resolution when the
/// field type is one of these).
trait IntKind {
    fn kind(&self) -> i128;
}

macro_rules! int_kind {
    ($($t:ty => $k:expr),*) => {$(
        impl IntKind for Probe<$t> {
            fn kind(&self) -> i128 { $k }
        }
    )*};
}
int_kind!(u8 => 0, u16 => 0, u32 => 0, u64 => 0, i8 => 1, i16 => 1, i32 => 1, i64 => 1);

/// Everything else (arrays, structs, unions, handles): 2.
trait OtherKind {
    fn kind(&self) -> i128;
}

impl<F> OtherKind for &Probe<F> {
    fn kind(&self) -> i128 {
        2
    }
}

macro_rules! kind_of {
    ($t:ty, $f:ident) => {
        (&probe(|s: &$t| &s.$f)).kind()
    };
}

macro_rules! kind_of_type {
    ($t:ty) => {
        (&Probe::<$t>(PhantomData)).kind()
    };
}

macro_rules! or_name {
    ($f:ident) => {
        stringify!($f)
    };
    ($f:ident, $c:literal) => {
        $c
    };
}

/// `st!(t, RustType, "C type" [. "member.path"] [size "C size expr"], [field [=> "c_name"], ...])`
macro_rules! st {
    ($t:ident, $ty:ty, $cty:literal $(. $path:literal)? $(size $size:literal)?, [$($f:ident $(=> $c:literal)?),* $(,)?]) => {{
        let b = $t.base::<$ty>($cty, None$(.or(Some($path)))?, None$(.or(Some($size)))?);
        $(
            $t.field(&b, or_name!($f $(, $c)?), offset_of!($ty, $f), field_size(|s: &$ty| &s.$f), kind_of!($ty, $f));
        )*
        let _ = b;
    }};
}

/// `cs!(t, rust_value => "C_EXPR", ...)`
macro_rules! cs {
    ($t:ident, $($v:expr => $c:literal),* $(,)?) => {{
        $( $t.konst($c, ($v) as i128); )*
    }};
}

// --- The table model ------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Arch {
    Any,
    X86,
    Arm,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Value {
    Int(i128),
    Str(String),
}

impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::Int(v) => write!(f, "{v}"),
            Value::Str(s) => write!(f, "\"{s}\""),
        }
    }
}

#[derive(Debug)]
struct Entry {
    key: String,
    /// C expression printing the value (`P` for integers, `PS` for strings).
    c: String,
    rust: Value,
    arch: Arch,
    tools_only: bool,
}

#[derive(Default)]
struct Counts {
    structs: usize,
    fields: usize,
    consts: usize,
    rings: usize,
}

struct Table {
    entries: Vec<Entry>,
    arch: Arch,
    tools_only: bool,
}

/// A struct (or union member struct) being described.
struct Base {
    /// The C type, e.g. `struct netif_extra_info`.
    ty: String,
    /// Member path inside `ty` for union-member structs, e.g. `u.gso`.
    path: Option<String>,
    /// Display name used in keys.
    name: String,
}

impl Table {
    fn push(&mut self, key: String, c: String, rust: Value) {
        self.entries.push(Entry {
            key,
            c,
            rust,
            arch: self.arch,
            tools_only: self.tools_only,
        });
    }

    fn int(&mut self, key: String, c: String, rust: i128) {
        self.push(key, c, Value::Int(rust));
    }

    fn konst(&mut self, c_name: &str, rust: i128) {
        self.int(format!("const {c_name}"), c_name.to_string(), rust);
    }

    fn string(&mut self, c_name: &str, rust: &str) {
        self.push(
            format!("str {c_name}"),
            c_name.to_string(),
            Value::Str(rust.to_string()),
        );
    }

    fn base<T>(&mut self, ty: &str, path: Option<&str>, size_c: Option<&str>) -> Base {
        let name = match path {
            Some(p) => format!("{ty}.{p}"),
            None => ty.to_string(),
        };
        let lvalue = match path {
            Some(p) => format!("((({ty} *)0)->{p})"),
            None => format!("(*({ty} *)0)"),
        };
        let size_c = size_c.map_or_else(|| format!("sizeof({lvalue})"), str::to_string);
        self.int(format!("size {name}"), size_c, size_of::<T>() as i128);
        self.int(
            format!("align {name}"),
            format!("_Alignof(__typeof__({lvalue}))"),
            align_of::<T>() as i128,
        );
        Base {
            ty: ty.to_string(),
            path: path.map(str::to_string),
            name,
        }
    }

    fn field(&mut self, b: &Base, c_field: &str, offset: usize, size: usize, kind: i128) {
        let (member, offset_c) = match &b.path {
            Some(p) => (
                format!("{p}.{c_field}"),
                format!(
                    "offsetof({ty}, {p}.{c_field}) - offsetof({ty}, {p})",
                    ty = b.ty
                ),
            ),
            None => (
                c_field.to_string(),
                format!("offsetof({}, {c_field})", b.ty),
            ),
        };
        let lvalue = format!("((({} *)0)->{member})", b.ty);
        let name = format!("{}.{c_field}", b.name);
        self.int(format!("offset {name}"), offset_c, offset as i128);
        self.int(
            format!("fsize {name}"),
            format!("sizeof({lvalue})"),
            size as i128,
        );
        self.int(format!("kind {name}"), format!("KIND({lvalue})"), kind);
    }

    /// A member of a C union that Rust stores as raw bytes: its offset and size.
    fn union_member(&mut self, ty: &str, member: &str, offset: usize, size: usize) {
        self.int(
            format!("offset {ty}.{member}"),
            format!("offsetof({ty}, {member})"),
            offset as i128,
        );
        self.int(
            format!("fsize {ty}.{member}"),
            format!("sizeof(((({ty} *)0)->{member}))"),
            size as i128,
        );
    }

    /// A scalar or array typedef: its size and signedness.
    fn typedef(&mut self, c_name: &str, size: usize, kind: i128) {
        self.int(
            format!("size {c_name}"),
            format!("sizeof({c_name})"),
            size as i128,
        );
        self.int(
            format!("kind {c_name}"),
            format!("KIND(*({c_name} *)0)"),
            kind,
        );
    }

    /// A shared ring type from `DEFINE_RING_TYPES`: header layout, slot size,
    /// and slot counts for 1..16 pages by `FRONT_RING_INIT` and `__CONST_RING_SIZE`.
    fn ring(&mut self, name: &str, entry_size: usize) {
        let sring = format!("struct {name}_sring");
        let b =
            self.base::<ring::SringHeader>(&sring, None, Some(&format!("offsetof({sring}, ring)")));
        // The C struct's alignment includes the slots'; compare the header's own.
        self.entries.pop();
        self.int(
            format!("align {sring} header"),
            "_Alignof(RING_IDX)".to_string(),
            align_of::<ring::SringHeader>() as i128,
        );
        macro_rules! hdr {
            ($($f:ident $(=> $c:literal)?),*) => {$(
                self.field(&b, or_name!($f $(, $c)?), offset_of!(ring::SringHeader, $f),
                    field_size(|s: &ring::SringHeader| &s.$f), kind_of!(ring::SringHeader, $f));
            )*};
        }
        hdr!(req_prod, req_event, rsp_prod, rsp_event, pvt, _pad => "__pad");
        self.int(
            format!("size union {name}_sring_entry"),
            format!("sizeof(union {name}_sring_entry)"),
            entry_size as i128,
        );
        for pages in [1usize, 2, 4, 8, 16] {
            let bytes = pages * XEN_PAGE_SIZE;
            let n = i128::from(ring::ring_size(bytes, entry_size));
            self.int(
                format!("ring {name} pages={pages}"),
                format!("RING_NENTS({name}, {bytes})"),
                n,
            );
            self.int(
                format!("const_ring {name} pages={pages}"),
                format!("CONST_RING_NENTS({name}, {bytes})"),
                n,
            );
        }
    }
}

// --- The table -------------------------------------------------------------------------

fn table() -> Vec<Entry> {
    let mut t = Table {
        entries: Vec::new(),
        arch: Arch::Any,
        tools_only: false,
    };
    common(&mut t);
    t.arch = Arch::X86;
    x86(&mut t);
    t.arch = Arch::Arm;
    arm(&mut t);
    t.arch = native_arch();
    native(&mut t);
    t.arch = Arch::Any;
    t.tools_only = true;
    tools_only(&mut t);
    t.entries
}

fn native_arch() -> Arch {
    if cfg!(target_arch = "aarch64") {
        Arch::Arm
    } else {
        Arch::X86
    }
}

fn common(t: &mut Table) {
    use event_channel::*;
    use grant_table::*;
    use memory::*;
    use xen::*;

    cs!(t, XEN_INTERFACE_VERSION => "__XEN_LATEST_INTERFACE_VERSION__");

    // Basic typedefs.
    t.typedef("domid_t", size_of::<DomId>(), kind_of_type!(DomId));
    t.typedef("xen_pfn_t", size_of::<XenPfn>(), kind_of_type!(XenPfn));
    t.typedef(
        "xen_ulong_t",
        size_of::<XenUlong>(),
        kind_of_type!(XenUlong),
    );
    t.typedef(
        "grant_ref_t",
        size_of::<GrantRef>(),
        kind_of_type!(GrantRef),
    );
    t.typedef(
        "grant_handle_t",
        size_of::<GrantHandle>(),
        kind_of_type!(GrantHandle),
    );
    t.typedef(
        "grant_status_t",
        size_of::<GrantStatus>(),
        kind_of_type!(GrantStatus),
    );
    t.typedef(
        "evtchn_port_t",
        size_of::<EvtchnPort>(),
        kind_of_type!(EvtchnPort),
    );
    t.typedef(
        "event_word_t",
        size_of::<EventWord>(),
        kind_of_type!(EventWord),
    );
    t.typedef(
        "RING_IDX",
        size_of::<ring::RingIdx>(),
        kind_of_type!(ring::RingIdx),
    );
    t.typedef(
        "blkif_sector_t",
        size_of::<blkif::BlkifSector>(),
        kind_of_type!(blkif::BlkifSector),
    );
    t.typedef(
        "blkif_vdev_t",
        size_of::<blkif::BlkifVdev>(),
        kind_of_type!(blkif::BlkifVdev),
    );
    t.typedef(
        "XENCONS_RING_IDX",
        size_of::<console::XenconsRingIdx>(),
        kind_of_type!(console::XenconsRingIdx),
    );
    t.typedef(
        "XENSTORE_RING_IDX",
        size_of::<xs_wire::XenstoreRingIdx>(),
        kind_of_type!(xs_wire::XenstoreRingIdx),
    );
    t.typedef(
        "xen_domain_handle_t",
        size_of::<XenDomainHandle>(),
        kind_of_type!(XenDomainHandle),
    );
    t.typedef(
        "xen_extraversion_t",
        size_of::<version::XenExtraversion>(),
        2,
    );
    t.typedef(
        "xen_capabilities_info_t",
        size_of::<version::XenCapabilitiesInfo>(),
        2,
    );
    t.typedef(
        "xen_changeset_info_t",
        size_of::<version::XenChangesetInfo>(),
        2,
    );
    t.typedef("xen_commandline_t", size_of::<version::XenCommandline>(), 2);
    st!(t, GuestHandle<u8>, "XEN_GUEST_HANDLE(uint8)", []);
    st!(t, GuestHandle<XenPfn>, "XEN_GUEST_HANDLE(xen_pfn_t)", []);

    // xen.h
    cs!(t,
        HYPERVISOR_SET_TRAP_TABLE => "__HYPERVISOR_set_trap_table",
        HYPERVISOR_MMU_UPDATE => "__HYPERVISOR_mmu_update",
        HYPERVISOR_SET_GDT => "__HYPERVISOR_set_gdt",
        HYPERVISOR_STACK_SWITCH => "__HYPERVISOR_stack_switch",
        HYPERVISOR_SET_CALLBACKS => "__HYPERVISOR_set_callbacks",
        HYPERVISOR_FPU_TASKSWITCH => "__HYPERVISOR_fpu_taskswitch",
        HYPERVISOR_SCHED_OP_COMPAT => "__HYPERVISOR_sched_op_compat",
        HYPERVISOR_PLATFORM_OP => "__HYPERVISOR_platform_op",
        HYPERVISOR_SET_DEBUGREG => "__HYPERVISOR_set_debugreg",
        HYPERVISOR_GET_DEBUGREG => "__HYPERVISOR_get_debugreg",
        HYPERVISOR_UPDATE_DESCRIPTOR => "__HYPERVISOR_update_descriptor",
        HYPERVISOR_MEMORY_OP => "__HYPERVISOR_memory_op",
        HYPERVISOR_MULTICALL => "__HYPERVISOR_multicall",
        HYPERVISOR_UPDATE_VA_MAPPING => "__HYPERVISOR_update_va_mapping",
        HYPERVISOR_SET_TIMER_OP => "__HYPERVISOR_set_timer_op",
        HYPERVISOR_EVENT_CHANNEL_OP_COMPAT => "__HYPERVISOR_event_channel_op_compat",
        HYPERVISOR_XEN_VERSION => "__HYPERVISOR_xen_version",
        HYPERVISOR_CONSOLE_IO => "__HYPERVISOR_console_io",
        HYPERVISOR_PHYSDEV_OP_COMPAT => "__HYPERVISOR_physdev_op_compat",
        HYPERVISOR_GRANT_TABLE_OP => "__HYPERVISOR_grant_table_op",
        HYPERVISOR_VM_ASSIST => "__HYPERVISOR_vm_assist",
        HYPERVISOR_UPDATE_VA_MAPPING_OTHERDOMAIN => "__HYPERVISOR_update_va_mapping_otherdomain",
        HYPERVISOR_IRET => "__HYPERVISOR_iret",
        HYPERVISOR_VCPU_OP => "__HYPERVISOR_vcpu_op",
        HYPERVISOR_SET_SEGMENT_BASE => "__HYPERVISOR_set_segment_base",
        HYPERVISOR_MMUEXT_OP => "__HYPERVISOR_mmuext_op",
        HYPERVISOR_XSM_OP => "__HYPERVISOR_xsm_op",
        HYPERVISOR_NMI_OP => "__HYPERVISOR_nmi_op",
        HYPERVISOR_SCHED_OP => "__HYPERVISOR_sched_op",
        HYPERVISOR_CALLBACK_OP => "__HYPERVISOR_callback_op",
        HYPERVISOR_XENOPROF_OP => "__HYPERVISOR_xenoprof_op",
        HYPERVISOR_EVENT_CHANNEL_OP => "__HYPERVISOR_event_channel_op",
        HYPERVISOR_PHYSDEV_OP => "__HYPERVISOR_physdev_op",
        HYPERVISOR_HVM_OP => "__HYPERVISOR_hvm_op",
        HYPERVISOR_SYSCTL => "__HYPERVISOR_sysctl",
        HYPERVISOR_DOMCTL => "__HYPERVISOR_domctl",
        HYPERVISOR_KEXEC_OP => "__HYPERVISOR_kexec_op",
        HYPERVISOR_TMEM_OP => "__HYPERVISOR_tmem_op",
        HYPERVISOR_ARGO_OP => "__HYPERVISOR_argo_op",
        HYPERVISOR_XENPMU_OP => "__HYPERVISOR_xenpmu_op",
        HYPERVISOR_DM_OP => "__HYPERVISOR_dm_op",
        HYPERVISOR_HYPFS_OP => "__HYPERVISOR_hypfs_op",
        HYPERVISOR_ARCH_0 => "__HYPERVISOR_arch_0",
        HYPERVISOR_ARCH_1 => "__HYPERVISOR_arch_1",
        HYPERVISOR_ARCH_2 => "__HYPERVISOR_arch_2",
        HYPERVISOR_ARCH_3 => "__HYPERVISOR_arch_3",
        HYPERVISOR_ARCH_4 => "__HYPERVISOR_arch_4",
        HYPERVISOR_ARCH_5 => "__HYPERVISOR_arch_5",
        HYPERVISOR_ARCH_6 => "__HYPERVISOR_arch_6",
        HYPERVISOR_ARCH_7 => "__HYPERVISOR_arch_7",
    );
    cs!(t,
        VIRQ_TIMER => "VIRQ_TIMER", VIRQ_DEBUG => "VIRQ_DEBUG", VIRQ_CONSOLE => "VIRQ_CONSOLE",
        VIRQ_DOM_EXC => "VIRQ_DOM_EXC", VIRQ_TBUF => "VIRQ_TBUF", VIRQ_DEBUGGER => "VIRQ_DEBUGGER",
        VIRQ_XENOPROF => "VIRQ_XENOPROF", VIRQ_CON_RING => "VIRQ_CON_RING",
        VIRQ_PCPU_STATE => "VIRQ_PCPU_STATE", VIRQ_MEM_EVENT => "VIRQ_MEM_EVENT",
        VIRQ_ARGO => "VIRQ_ARGO", VIRQ_ENOMEM => "VIRQ_ENOMEM", VIRQ_XENPMU => "VIRQ_XENPMU",
        VIRQ_ARCH_0 => "VIRQ_ARCH_0", VIRQ_ARCH_1 => "VIRQ_ARCH_1", VIRQ_ARCH_2 => "VIRQ_ARCH_2",
        VIRQ_ARCH_3 => "VIRQ_ARCH_3", VIRQ_ARCH_4 => "VIRQ_ARCH_4", VIRQ_ARCH_5 => "VIRQ_ARCH_5",
        VIRQ_ARCH_6 => "VIRQ_ARCH_6", VIRQ_ARCH_7 => "VIRQ_ARCH_7", NR_VIRQS => "NR_VIRQS",
    );
    cs!(t,
        MMU_NORMAL_PT_UPDATE => "MMU_NORMAL_PT_UPDATE", MMU_MACHPHYS_UPDATE => "MMU_MACHPHYS_UPDATE",
        MMU_PT_UPDATE_PRESERVE_AD => "MMU_PT_UPDATE_PRESERVE_AD",
        MMU_PT_UPDATE_NO_TRANSLATE => "MMU_PT_UPDATE_NO_TRANSLATE",
        MMUEXT_PIN_L1_TABLE => "MMUEXT_PIN_L1_TABLE", MMUEXT_PIN_L2_TABLE => "MMUEXT_PIN_L2_TABLE",
        MMUEXT_PIN_L3_TABLE => "MMUEXT_PIN_L3_TABLE", MMUEXT_PIN_L4_TABLE => "MMUEXT_PIN_L4_TABLE",
        MMUEXT_UNPIN_TABLE => "MMUEXT_UNPIN_TABLE", MMUEXT_NEW_BASEPTR => "MMUEXT_NEW_BASEPTR",
        MMUEXT_TLB_FLUSH_LOCAL => "MMUEXT_TLB_FLUSH_LOCAL", MMUEXT_INVLPG_LOCAL => "MMUEXT_INVLPG_LOCAL",
        MMUEXT_TLB_FLUSH_MULTI => "MMUEXT_TLB_FLUSH_MULTI", MMUEXT_INVLPG_MULTI => "MMUEXT_INVLPG_MULTI",
        MMUEXT_TLB_FLUSH_ALL => "MMUEXT_TLB_FLUSH_ALL", MMUEXT_INVLPG_ALL => "MMUEXT_INVLPG_ALL",
        MMUEXT_FLUSH_CACHE => "MMUEXT_FLUSH_CACHE", MMUEXT_SET_LDT => "MMUEXT_SET_LDT",
        MMUEXT_NEW_USER_BASEPTR => "MMUEXT_NEW_USER_BASEPTR", MMUEXT_CLEAR_PAGE => "MMUEXT_CLEAR_PAGE",
        MMUEXT_COPY_PAGE => "MMUEXT_COPY_PAGE", MMUEXT_FLUSH_CACHE_GLOBAL => "MMUEXT_FLUSH_CACHE_GLOBAL",
        MMUEXT_MARK_SUPER => "MMUEXT_MARK_SUPER", MMUEXT_UNMARK_SUPER => "MMUEXT_UNMARK_SUPER",
        UVMF_NONE => "UVMF_NONE", Uvmf::TLB_FLUSH.bits() => "UVMF_TLB_FLUSH",
        Uvmf::INVLPG.bits() => "UVMF_INVLPG", Uvmf::FLUSHTYPE_MASK.bits() => "UVMF_FLUSHTYPE_MASK",
        UVMF_MULTI => "UVMF_MULTI", UVMF_LOCAL => "UVMF_LOCAL", Uvmf::ALL.bits() => "UVMF_ALL",
        VMASST_CMD_ENABLE => "VMASST_CMD_enable", VMASST_CMD_DISABLE => "VMASST_CMD_disable",
        VMASST_TYPE_4GB_SEGMENTS => "VMASST_TYPE_4gb_segments",
        VMASST_TYPE_4GB_SEGMENTS_NOTIFY => "VMASST_TYPE_4gb_segments_notify",
        VMASST_TYPE_WRITABLE_PAGETABLES => "VMASST_TYPE_writable_pagetables",
        VMASST_TYPE_PAE_EXTENDED_CR3 => "VMASST_TYPE_pae_extended_cr3",
        VMASST_TYPE_ARCHITECTURAL_IOPL => "VMASST_TYPE_architectural_iopl",
        VMASST_TYPE_RUNSTATE_UPDATE_FLAG => "VMASST_TYPE_runstate_update_flag",
        VMASST_TYPE_M2P_STRICT => "VMASST_TYPE_m2p_strict",
        DOMID_FIRST_RESERVED => "DOMID_FIRST_RESERVED", DOMID_SELF => "DOMID_SELF",
        DOMID_IO => "DOMID_IO", DOMID_XEN => "DOMID_XEN", DOMID_COW => "DOMID_COW",
        DOMID_INVALID => "DOMID_INVALID", DOMID_IDLE => "DOMID_IDLE", DOMID_MASK => "DOMID_MASK",
        PvclockFlags::TSC_STABLE_BIT.bits() => "XEN_PVCLOCK_TSC_STABLE_BIT",
        PvclockFlags::GUEST_STOPPED.bits() => "XEN_PVCLOCK_GUEST_STOPPED",
        StartInfoFlags::PRIVILEGED.bits() => "SIF_PRIVILEGED",
        StartInfoFlags::INITDOMAIN.bits() => "SIF_INITDOMAIN",
        StartInfoFlags::MULTIBOOT_MOD.bits() => "SIF_MULTIBOOT_MOD",
        StartInfoFlags::MOD_START_PFN.bits() => "SIF_MOD_START_PFN",
        StartInfoFlags::VIRT_P2M_4TOOLS.bits() => "SIF_VIRT_P2M_4TOOLS",
        StartInfoFlags::PM_MASK.bits() => "SIF_PM_MASK",
        console_io::CONSOLEIO_WRITE => "CONSOLEIO_write",
        console_io::CONSOLEIO_READ => "CONSOLEIO_read",
    );
    st!(t, MmuUpdate, "struct mmu_update", [ptr, val]);
    st!(t, MmuextOp, "struct mmuext_op", [cmd, arg1, arg2]);
    st!(t, MmuextOpArg1, "struct mmuext_op"."arg1", []);
    st!(t, MmuextOpArg2, "struct mmuext_op"."arg2", []);
    t.union_member("struct mmuext_op", "arg1.mfn", 8, 8);
    t.union_member("struct mmuext_op", "arg1.linear_addr", 8, 8);
    t.union_member("struct mmuext_op", "arg2.nr_ents", 16, 4);
    t.union_member("struct mmuext_op", "arg2.vcpumask", 16, 8);
    t.union_member("struct mmuext_op", "arg2.src_mfn", 16, 8);
    st!(
        t,
        MulticallEntry,
        "struct multicall_entry",
        [op, result, args]
    );
    st!(
        t,
        VcpuTimeInfo,
        "struct vcpu_time_info",
        [
            version,
            pad0,
            tsc_timestamp,
            system_time,
            tsc_to_system_mul,
            tsc_shift,
            flags,
            pad1
        ]
    );
    st!(
        t,
        XenMultibootModList,
        "struct xen_multiboot_mod_list",
        [mod_start, mod_end, cmdline, pad]
    );
    st!(t, XenUuid, "xen_uuid_t", [a]);

    // version.h, features.h
    cs!(t,
        version::XENVER_VERSION => "XENVER_version",
        version::XENVER_EXTRAVERSION => "XENVER_extraversion",
        version::XENVER_COMPILE_INFO => "XENVER_compile_info",
        version::XENVER_CAPABILITIES => "XENVER_capabilities",
        version::XENVER_CHANGESET => "XENVER_changeset",
        version::XENVER_PLATFORM_PARAMETERS => "XENVER_platform_parameters",
        version::XENVER_GET_FEATURES => "XENVER_get_features",
        version::XENVER_PAGESIZE => "XENVER_pagesize",
        version::XENVER_GUEST_HANDLE => "XENVER_guest_handle",
        version::XENVER_COMMANDLINE => "XENVER_commandline",
        version::XENVER_BUILD_ID => "XENVER_build_id",
        version::XEN_EXTRAVERSION_LEN => "XEN_EXTRAVERSION_LEN",
        version::XEN_CAPABILITIES_INFO_LEN => "XEN_CAPABILITIES_INFO_LEN",
        version::XEN_CHANGESET_INFO_LEN => "XEN_CHANGESET_INFO_LEN",
    );
    st!(
        t,
        version::XenCompileInfo,
        "struct xen_compile_info",
        [compiler, compile_by, compile_domain, compile_date]
    );
    st!(
        t,
        version::XenPlatformParameters,
        "struct xen_platform_parameters",
        [virt_start]
    );
    st!(t, version::XenBuildId, "struct xen_build_id", [len]);
    t.int(
        "offset struct xen_build_id.buf".into(),
        "offsetof(struct xen_build_id, buf)".into(),
        4,
    );
    st!(
        t,
        features::XenFeatureInfo,
        "struct xen_feature_info",
        [submap_idx, submap]
    );
    {
        use features::*;
        cs!(t,
            XENFEAT_WRITABLE_PAGE_TABLES => "XENFEAT_writable_page_tables",
            XENFEAT_WRITABLE_DESCRIPTOR_TABLES => "XENFEAT_writable_descriptor_tables",
            XENFEAT_AUTO_TRANSLATED_PHYSMAP => "XENFEAT_auto_translated_physmap",
            XENFEAT_SUPERVISOR_MODE_KERNEL => "XENFEAT_supervisor_mode_kernel",
            XENFEAT_PAE_PGDIR_ABOVE_4GB => "XENFEAT_pae_pgdir_above_4gb",
            XENFEAT_MMU_PT_UPDATE_PRESERVE_AD => "XENFEAT_mmu_pt_update_preserve_ad",
            XENFEAT_HIGHMEM_ASSIST => "XENFEAT_highmem_assist",
            XENFEAT_GNTTAB_MAP_AVAIL_BITS => "XENFEAT_gnttab_map_avail_bits",
            XENFEAT_HVM_CALLBACK_VECTOR => "XENFEAT_hvm_callback_vector",
            XENFEAT_HVM_SAFE_PVCLOCK => "XENFEAT_hvm_safe_pvclock",
            XENFEAT_HVM_PIRQS => "XENFEAT_hvm_pirqs",
            XENFEAT_DOM0 => "XENFEAT_dom0",
            XENFEAT_MEMORY_OP_VNODE_SUPPORTED => "XENFEAT_memory_op_vnode_supported",
            XENFEAT_ARM_SMCCC_SUPPORTED => "XENFEAT_ARM_SMCCC_supported",
            XENFEAT_LINUX_RSDP_UNRESTRICTED => "XENFEAT_linux_rsdp_unrestricted",
            XENFEAT_NOT_DIRECT_MAPPED => "XENFEAT_not_direct_mapped",
            XENFEAT_DIRECT_MAPPED => "XENFEAT_direct_mapped",
            XENFEAT_NR_SUBMAPS => "XENFEAT_NR_SUBMAPS",
        );
    }

    // grant_table.h
    st!(
        t,
        GrantEntryV1,
        "struct grant_entry_v1",
        [flags, domid, frame]
    );
    st!(
        t,
        GrantEntryHeader,
        "struct grant_entry_header",
        [flags, domid]
    );
    st!(t, GrantEntryV2, "union grant_entry_v2", [raw => "__spacer"]);
    t.union_member(
        "union grant_entry_v2",
        "hdr",
        0,
        size_of::<GrantEntryHeader>(),
    );
    st!(t, GrantEntryV2FullPage, "union grant_entry_v2"."full_page", [hdr, pad0, frame]);
    st!(t, GrantEntryV2SubPage, "union grant_entry_v2"."sub_page", [hdr, page_off, length, frame]);
    st!(t, GrantEntryV2Transitive, "union grant_entry_v2"."transitive" size "sizeof(union grant_entry_v2)",
        [hdr, trans_domid, pad0, gref]);
    st!(t, GnttabMapGrantRef, "struct gnttab_map_grant_ref",
        [host_addr, flags, ref_ => "ref", dom, status, handle, dev_bus_addr]);
    st!(
        t,
        GnttabUnmapGrantRef,
        "struct gnttab_unmap_grant_ref",
        [host_addr, dev_bus_addr, handle, status]
    );
    st!(
        t,
        GnttabSetupTable,
        "struct gnttab_setup_table",
        [dom, nr_frames, status, frame_list]
    );
    st!(
        t,
        GnttabDumpTable,
        "struct gnttab_dump_table",
        [dom, status]
    );
    st!(t, GnttabTransfer, "struct gnttab_transfer", [mfn, domid, ref_ => "ref", status]);
    st!(
        t,
        GnttabCopyPtr,
        "struct gnttab_copy_ptr",
        [u, domid, offset]
    );
    st!(t, GnttabCopyPtrU, "struct gnttab_copy_ptr"."u", []);
    t.union_member("struct gnttab_copy_ptr", "u.ref", 0, size_of::<GrantRef>());
    t.union_member("struct gnttab_copy_ptr", "u.gmfn", 0, size_of::<XenPfn>());
    st!(
        t,
        GnttabCopy,
        "struct gnttab_copy",
        [source, dest, len, flags, status]
    );
    st!(
        t,
        GnttabQuerySize,
        "struct gnttab_query_size",
        [dom, nr_frames, max_nr_frames, status]
    );
    st!(
        t,
        GnttabUnmapAndReplace,
        "struct gnttab_unmap_and_replace",
        [host_addr, new_addr, handle, status]
    );
    st!(t, GnttabSetVersion, "struct gnttab_set_version", [version]);
    st!(
        t,
        GnttabGetStatusFrames,
        "struct gnttab_get_status_frames",
        [nr_frames, dom, status, frame_list]
    );
    st!(
        t,
        GnttabGetVersion,
        "struct gnttab_get_version",
        [dom, pad, version]
    );
    st!(
        t,
        GnttabSwapGrantRef,
        "struct gnttab_swap_grant_ref",
        [ref_a, ref_b, status]
    );
    st!(
        t,
        GnttabCacheFlush,
        "struct gnttab_cache_flush",
        [a, offset, length, op]
    );
    st!(t, GnttabCacheFlushA, "struct gnttab_cache_flush"."a", []);
    t.union_member("struct gnttab_cache_flush", "a.dev_bus_addr", 0, 8);
    t.union_member(
        "struct gnttab_cache_flush",
        "a.ref",
        0,
        size_of::<GrantRef>(),
    );
    cs!(t,
        GNTTAB_NR_RESERVED_ENTRIES => "GNTTAB_NR_RESERVED_ENTRIES",
        GNTTAB_RESERVED_CONSOLE => "GNTTAB_RESERVED_CONSOLE",
        GNTTAB_RESERVED_XENSTORE => "GNTTAB_RESERVED_XENSTORE",
        GTF_INVALID => "GTF_invalid",
        GrantType::Invalid.raw() => "GTF_invalid",
        GrantFlags::PERMIT_ACCESS.bits() => "GTF_permit_access",
        GrantType::PermitAccess.raw() => "GTF_permit_access",
        GrantFlags::ACCEPT_TRANSFER.bits() => "GTF_accept_transfer",
        GrantType::AcceptTransfer.raw() => "GTF_accept_transfer",
        GrantFlags::TRANSITIVE.bits() => "GTF_transitive",
        GrantType::Transitive.raw() => "GTF_transitive",
        GrantFlags::TYPE_MASK.bits() => "GTF_type_mask",
        GrantFlags::READONLY.bits() => "GTF_readonly",
        GrantFlags::READING.bits() => "GTF_reading",
        GrantFlags::WRITING.bits() => "GTF_writing",
        GrantFlags::PWT.bits() => "GTF_PWT",
        GrantFlags::PCD.bits() => "GTF_PCD",
        GrantFlags::PAT.bits() => "GTF_PAT",
        GrantFlags::SUB_PAGE.bits() => "GTF_sub_page",
        GrantFlags::TRANSFER_COMMITTED.bits() => "GTF_transfer_committed",
        GrantFlags::TRANSFER_COMPLETED.bits() => "GTF_transfer_completed",
        GNTTABOP_MAP_GRANT_REF => "GNTTABOP_map_grant_ref",
        GNTTABOP_UNMAP_GRANT_REF => "GNTTABOP_unmap_grant_ref",
        GNTTABOP_SETUP_TABLE => "GNTTABOP_setup_table",
        GNTTABOP_DUMP_TABLE => "GNTTABOP_dump_table",
        GNTTABOP_TRANSFER => "GNTTABOP_transfer",
        GNTTABOP_COPY => "GNTTABOP_copy",
        GNTTABOP_QUERY_SIZE => "GNTTABOP_query_size",
        GNTTABOP_UNMAP_AND_REPLACE => "GNTTABOP_unmap_and_replace",
        GNTTABOP_SET_VERSION => "GNTTABOP_set_version",
        GNTTABOP_GET_STATUS_FRAMES => "GNTTABOP_get_status_frames",
        GNTTABOP_GET_VERSION => "GNTTABOP_get_version",
        GNTTABOP_SWAP_GRANT_REF => "GNTTABOP_swap_grant_ref",
        GNTTABOP_CACHE_FLUSH => "GNTTABOP_cache_flush",
        GntmapFlags::DEVICE_MAP.bits() => "GNTMAP_device_map",
        GntmapFlags::HOST_MAP.bits() => "GNTMAP_host_map",
        GntmapFlags::READONLY.bits() => "GNTMAP_readonly",
        GntmapFlags::APPLICATION_MAP.bits() => "GNTMAP_application_map",
        GntmapFlags::CONTAINS_PTE.bits() => "GNTMAP_contains_pte",
        GntmapFlags::GUEST_AVAIL_MASK.bits() => "GNTMAP_guest_avail_mask",
        GnttabCopyFlags::SOURCE_GREF.bits() => "GNTCOPY_source_gref",
        GnttabCopyFlags::DEST_GREF.bits() => "GNTCOPY_dest_gref",
        GnttabCacheFlags::CLEAN.bits() => "GNTTAB_CACHE_CLEAN",
        GnttabCacheFlags::INVAL.bits() => "GNTTAB_CACHE_INVAL",
        GnttabCacheFlags::SOURCE_GREF.bits() => "GNTTAB_CACHE_SOURCE_GREF",
        GNTST_OKAY => "GNTST_okay",
        GNTST_GENERAL_ERROR => "GNTST_general_error",
        GNTST_BAD_DOMAIN => "GNTST_bad_domain",
        GNTST_BAD_GNTREF => "GNTST_bad_gntref",
        GNTST_BAD_HANDLE => "GNTST_bad_handle",
        GNTST_BAD_VIRT_ADDR => "GNTST_bad_virt_addr",
        GNTST_BAD_DEV_ADDR => "GNTST_bad_dev_addr",
        GNTST_NO_DEVICE_SPACE => "GNTST_no_device_space",
        GNTST_PERMISSION_DENIED => "GNTST_permission_denied",
        GNTST_BAD_PAGE => "GNTST_bad_page",
        GNTST_BAD_COPY_ARG => "GNTST_bad_copy_arg",
        GNTST_ADDRESS_TOO_BIG => "GNTST_address_too_big",
        GNTST_EAGAIN => "GNTST_eagain",
        GNTST_NO_SPACE => "GNTST_no_space",
    );
    {
        use GrantStatusError as E;
        cs!(t,
            E::GeneralError.raw() => "GNTST_general_error",
            E::BadDomain.raw() => "GNTST_bad_domain",
            E::BadGntref.raw() => "GNTST_bad_gntref",
            E::BadHandle.raw() => "GNTST_bad_handle",
            E::BadVirtAddr.raw() => "GNTST_bad_virt_addr",
            E::BadDevAddr.raw() => "GNTST_bad_dev_addr",
            E::NoDeviceSpace.raw() => "GNTST_no_device_space",
            E::PermissionDenied.raw() => "GNTST_permission_denied",
            E::BadPage.raw() => "GNTST_bad_page",
            E::BadCopyArg.raw() => "GNTST_bad_copy_arg",
            E::AddressTooBig.raw() => "GNTST_address_too_big",
            E::Eagain.raw() => "GNTST_eagain",
            E::NoSpace.raw() => "GNTST_no_space",
        );
    }

    // event_channel.h
    st!(
        t,
        EvtchnAllocUnbound,
        "struct evtchn_alloc_unbound",
        [dom, remote_dom, port]
    );
    st!(
        t,
        EvtchnBindInterdomain,
        "struct evtchn_bind_interdomain",
        [remote_dom, remote_port, local_port]
    );
    st!(
        t,
        EvtchnBindVirq,
        "struct evtchn_bind_virq",
        [virq, vcpu, port]
    );
    st!(
        t,
        EvtchnBindPirq,
        "struct evtchn_bind_pirq",
        [pirq, flags, port]
    );
    st!(t, EvtchnBindIpi, "struct evtchn_bind_ipi", [vcpu, port]);
    st!(t, EvtchnClose, "struct evtchn_close", [port]);
    st!(t, EvtchnSend, "struct evtchn_send", [port]);
    st!(
        t,
        EvtchnStatus,
        "struct evtchn_status",
        [dom, port, status, vcpu, u]
    );
    st!(t, EvtchnStatusU, "struct evtchn_status"."u", []);
    t.union_member("struct evtchn_status", "u.unbound.dom", 16, 2);
    t.union_member("struct evtchn_status", "u.interdomain.dom", 16, 2);
    t.union_member("struct evtchn_status", "u.interdomain.port", 20, 4);
    t.union_member("struct evtchn_status", "u.pirq", 16, 4);
    t.union_member("struct evtchn_status", "u.virq", 16, 4);
    st!(t, EvtchnBindVcpu, "struct evtchn_bind_vcpu", [port, vcpu]);
    st!(t, EvtchnUnmask, "struct evtchn_unmask", [port]);
    st!(t, EvtchnReset, "struct evtchn_reset", [dom]);
    st!(
        t,
        EvtchnInitControl,
        "struct evtchn_init_control",
        [control_gfn, offset, vcpu, link_bits, _pad]
    );
    st!(
        t,
        EvtchnExpandArray,
        "struct evtchn_expand_array",
        [array_gfn]
    );
    st!(
        t,
        EvtchnSetPriority,
        "struct evtchn_set_priority",
        [port, priority]
    );
    st!(t, EvtchnOp, "struct evtchn_op", [cmd, u]);
    st!(
        t,
        EvtchnFifoControlBlock,
        "struct evtchn_fifo_control_block",
        [ready, _rsvd, head]
    );
    cs!(t,
        EVTCHNOP_BIND_INTERDOMAIN => "EVTCHNOP_bind_interdomain",
        EVTCHNOP_BIND_VIRQ => "EVTCHNOP_bind_virq",
        EVTCHNOP_BIND_PIRQ => "EVTCHNOP_bind_pirq",
        EVTCHNOP_CLOSE => "EVTCHNOP_close",
        EVTCHNOP_SEND => "EVTCHNOP_send",
        EVTCHNOP_STATUS => "EVTCHNOP_status",
        EVTCHNOP_ALLOC_UNBOUND => "EVTCHNOP_alloc_unbound",
        EVTCHNOP_BIND_IPI => "EVTCHNOP_bind_ipi",
        EVTCHNOP_BIND_VCPU => "EVTCHNOP_bind_vcpu",
        EVTCHNOP_UNMASK => "EVTCHNOP_unmask",
        EVTCHNOP_RESET => "EVTCHNOP_reset",
        EVTCHNOP_INIT_CONTROL => "EVTCHNOP_init_control",
        EVTCHNOP_EXPAND_ARRAY => "EVTCHNOP_expand_array",
        EVTCHNOP_SET_PRIORITY => "EVTCHNOP_set_priority",
        BIND_PIRQ_WILL_SHARE => "BIND_PIRQ__WILL_SHARE",
        EVTCHNSTAT_CLOSED => "EVTCHNSTAT_closed",
        EVTCHNSTAT_UNBOUND => "EVTCHNSTAT_unbound",
        EVTCHNSTAT_INTERDOMAIN => "EVTCHNSTAT_interdomain",
        EVTCHNSTAT_PIRQ => "EVTCHNSTAT_pirq",
        EVTCHNSTAT_VIRQ => "EVTCHNSTAT_virq",
        EVTCHNSTAT_IPI => "EVTCHNSTAT_ipi",
        EvtchnStatusKind::Closed.raw() => "EVTCHNSTAT_closed",
        EvtchnStatusKind::Unbound.raw() => "EVTCHNSTAT_unbound",
        EvtchnStatusKind::Interdomain.raw() => "EVTCHNSTAT_interdomain",
        EvtchnStatusKind::Pirq.raw() => "EVTCHNSTAT_pirq",
        EvtchnStatusKind::Virq.raw() => "EVTCHNSTAT_virq",
        EvtchnStatusKind::Ipi.raw() => "EVTCHNSTAT_ipi",
        EVTCHN_2L_NR_CHANNELS => "EVTCHN_2L_NR_CHANNELS",
        EVTCHN_FIFO_PRIORITY_MAX => "EVTCHN_FIFO_PRIORITY_MAX",
        EVTCHN_FIFO_PRIORITY_DEFAULT => "EVTCHN_FIFO_PRIORITY_DEFAULT",
        EVTCHN_FIFO_PRIORITY_MIN => "EVTCHN_FIFO_PRIORITY_MIN",
        EVTCHN_FIFO_MAX_QUEUES => "EVTCHN_FIFO_MAX_QUEUES",
        EVTCHN_FIFO_PENDING => "EVTCHN_FIFO_PENDING",
        EVTCHN_FIFO_MASKED => "EVTCHN_FIFO_MASKED",
        EVTCHN_FIFO_LINKED => "EVTCHN_FIFO_LINKED",
        EVTCHN_FIFO_BUSY => "EVTCHN_FIFO_BUSY",
        EVTCHN_FIFO_LINK_BITS => "EVTCHN_FIFO_LINK_BITS",
        EVTCHN_FIFO_LINK_MASK => "EVTCHN_FIFO_LINK_MASK",
        EVTCHN_FIFO_NR_CHANNELS => "EVTCHN_FIFO_NR_CHANNELS",
        FifoEventWord::PENDING.bits() => "(1u << EVTCHN_FIFO_PENDING)",
        FifoEventWord::MASKED.bits() => "(1u << EVTCHN_FIFO_MASKED)",
        FifoEventWord::LINKED.bits() => "(1u << EVTCHN_FIFO_LINKED)",
        FifoEventWord::BUSY.bits() => "(1u << EVTCHN_FIFO_BUSY)",
        FifoEventWord::LINK_MASK.bits() => "(EVTCHN_FIFO_LINK_MASK + 0)",
    );

    // memory.h
    st!(
        t,
        XenMemoryReservation,
        "struct xen_memory_reservation",
        [extent_start, nr_extents, extent_order, mem_flags, domid]
    );
    st!(t, XenMemoryExchange, "struct xen_memory_exchange", [in_ => "in", out, nr_exchanged]);
    st!(t, XenMemoryDomain, "struct xen_memory_domain", [domid]);
    st!(
        t,
        XenMachphysMfnList,
        "struct xen_machphys_mfn_list",
        [max_extents, extent_start, nr_extents]
    );
    st!(
        t,
        XenMachphysMapping,
        "struct xen_machphys_mapping",
        [v_start, v_end, max_mfn]
    );
    st!(
        t,
        XenAddToPhysmap,
        "struct xen_add_to_physmap",
        [domid, size, space, idx, gpfn]
    );
    st!(
        t,
        XenAddToPhysmapBatch,
        "struct xen_add_to_physmap_batch",
        [domid, space, size, u, idxs, gpfns, errs]
    );
    st!(t, XenAddToPhysmapBatchExtra, "union xen_add_to_physmap_batch_extra", [raw => "foreign_domid"]);
    t.union_member("union xen_add_to_physmap_batch_extra", "res0", 0, 2);
    st!(
        t,
        XenRemoveFromPhysmap,
        "struct xen_remove_from_physmap",
        [domid, gpfn]
    );
    st!(
        t,
        XenMemoryMap,
        "struct xen_memory_map",
        [nr_entries, buffer]
    );
    st!(
        t,
        XenForeignMemoryMap,
        "struct xen_foreign_memory_map",
        [domid, map]
    );
    st!(
        t,
        XenPodTarget,
        "struct xen_pod_target",
        [target_pages, tot_pages, pod_cache_pages, pod_entries, domid]
    );
    st!(t, XenMemAcquireResource, "struct xen_mem_acquire_resource",
        [domid, type_ => "type", id, nr_frames, pad, frame, frame_list]);
    cs!(t,
        XENMEM_INCREASE_RESERVATION => "XENMEM_increase_reservation",
        XENMEM_DECREASE_RESERVATION => "XENMEM_decrease_reservation",
        XENMEM_MAXIMUM_RAM_PAGE => "XENMEM_maximum_ram_page",
        XENMEM_CURRENT_RESERVATION => "XENMEM_current_reservation",
        XENMEM_MAXIMUM_RESERVATION => "XENMEM_maximum_reservation",
        XENMEM_MACHPHYS_MFN_LIST => "XENMEM_machphys_mfn_list",
        XENMEM_POPULATE_PHYSMAP => "XENMEM_populate_physmap",
        XENMEM_ADD_TO_PHYSMAP => "XENMEM_add_to_physmap",
        XENMEM_MEMORY_MAP => "XENMEM_memory_map",
        XENMEM_MACHINE_MEMORY_MAP => "XENMEM_machine_memory_map",
        XENMEM_EXCHANGE => "XENMEM_exchange",
        XENMEM_MACHPHYS_MAPPING => "XENMEM_machphys_mapping",
        XENMEM_SET_MEMORY_MAP => "XENMEM_set_memory_map",
        XENMEM_MAXIMUM_GPFN => "XENMEM_maximum_gpfn",
        XENMEM_REMOVE_FROM_PHYSMAP => "XENMEM_remove_from_physmap",
        XENMEM_SET_POD_TARGET => "XENMEM_set_pod_target",
        XENMEM_GET_POD_TARGET => "XENMEM_get_pod_target",
        XENMEM_ADD_TO_PHYSMAP_BATCH => "XENMEM_add_to_physmap_batch",
        XENMEM_MACHPHYS_COMPAT_MFN_LIST => "XENMEM_machphys_compat_mfn_list",
        XENMEM_GET_VNUMAINFO => "XENMEM_get_vnumainfo",
        XENMEM_ACQUIRE_RESOURCE => "XENMEM_acquire_resource",
        xenmemf_address_bits(17) => "XENMEMF_address_bits(17)",
        xenmemf_get_address_bits(0x1234_5678) => "XENMEMF_get_address_bits(0x12345678u)",
        xenmemf_node(3) => "XENMEMF_node(3)",
        xenmemf_get_node(xenmemf_node(3)) => "XENMEMF_get_node(XENMEMF_node(3))",
        xenmemf_get_node(0) => "XENMEMF_get_node(0u)",
        xenmemf_exact_node(2) => "XENMEMF_exact_node(2)",
        XENMEMF_POPULATE_ON_DEMAND => "XENMEMF_populate_on_demand",
        XENMEMF_EXACT_NODE_REQUEST => "XENMEMF_exact_node_request",
        XENMEMF_VNODE => "XENMEMF_vnode",
        XENMAPSPACE_SHARED_INFO => "XENMAPSPACE_shared_info",
        XENMAPSPACE_GRANT_TABLE => "XENMAPSPACE_grant_table",
        XENMAPSPACE_GMFN => "XENMAPSPACE_gmfn",
        XENMAPSPACE_GMFN_RANGE => "XENMAPSPACE_gmfn_range",
        XENMAPSPACE_GMFN_FOREIGN => "XENMAPSPACE_gmfn_foreign",
        XENMAPSPACE_DEV_MMIO => "XENMAPSPACE_dev_mmio",
        XENMAPIDX_GRANT_TABLE_STATUS => "XENMAPIDX_grant_table_status",
        XENMEM_RESOURCE_IOREQ_SERVER => "XENMEM_resource_ioreq_server",
        XENMEM_RESOURCE_GRANT_TABLE => "XENMEM_resource_grant_table",
        XENMEM_RESOURCE_VMTRACE_BUF => "XENMEM_resource_vmtrace_buf",
        XENMEM_RESOURCE_GRANT_TABLE_ID_SHARED => "XENMEM_resource_grant_table_id_shared",
        XENMEM_RESOURCE_GRANT_TABLE_ID_STATUS => "XENMEM_resource_grant_table_id_status",
    );

    // hvm/hvm_op.h, hvm/params.h
    {
        use hvm_params::*;
        st!(
            t,
            XenHvmParam,
            "struct xen_hvm_param",
            [domid, pad, index, value]
        );
        st!(
            t,
            XenHvmPagetableDying,
            "struct xen_hvm_pagetable_dying",
            [domid, pad, gpa]
        );
        st!(t, XenHvmGetTime, "struct xen_hvm_get_time", [now]);
        st!(
            t,
            XenHvmGetMemType,
            "struct xen_hvm_get_mem_type",
            [domid, mem_type, pad, pfn]
        );
        cs!(t,
            HVMOP_SET_PARAM => "HVMOP_set_param",
            HVMOP_GET_PARAM => "HVMOP_get_param",
            HVMOP_FLUSH_TLBS => "HVMOP_flush_tlbs",
            HVMOP_PAGETABLE_DYING => "HVMOP_pagetable_dying",
            HVMOP_GET_TIME => "HVMOP_get_time",
            HVMOP_XENTRACE => "HVMOP_xentrace",
            HVMOP_GET_MEM_TYPE => "HVMOP_get_mem_type",
            HVMOP_GUEST_REQUEST_VM_EVENT => "HVMOP_guest_request_vm_event",
            HVMOP_ALTP2M => "HVMOP_altp2m",
            HVM_PARAM_CALLBACK_IRQ => "HVM_PARAM_CALLBACK_IRQ",
            HVM_PARAM_CALLBACK_IRQ_TYPE_MASK => "HVM_PARAM_CALLBACK_IRQ_TYPE_MASK",
            HVM_PARAM_CALLBACK_TYPE_GSI => "HVM_PARAM_CALLBACK_TYPE_GSI",
            HVM_PARAM_CALLBACK_TYPE_PCI_INTX => "HVM_PARAM_CALLBACK_TYPE_PCI_INTX",
            HVM_PARAM_STORE_PFN => "HVM_PARAM_STORE_PFN",
            HVM_PARAM_STORE_EVTCHN => "HVM_PARAM_STORE_EVTCHN",
            HVM_PARAM_IOREQ_PFN => "HVM_PARAM_IOREQ_PFN",
            HVM_PARAM_BUFIOREQ_PFN => "HVM_PARAM_BUFIOREQ_PFN",
            HVM_PARAM_TIMER_MODE => "HVM_PARAM_TIMER_MODE",
            HVM_PARAM_HPET_ENABLED => "HVM_PARAM_HPET_ENABLED",
            HVM_PARAM_IDENT_PT => "HVM_PARAM_IDENT_PT",
            HVM_PARAM_ACPI_S_STATE => "HVM_PARAM_ACPI_S_STATE",
            HVM_PARAM_VM86_TSS => "HVM_PARAM_VM86_TSS",
            HVM_PARAM_VPT_ALIGN => "HVM_PARAM_VPT_ALIGN",
            HVM_PARAM_CONSOLE_PFN => "HVM_PARAM_CONSOLE_PFN",
            HVM_PARAM_CONSOLE_EVTCHN => "HVM_PARAM_CONSOLE_EVTCHN",
            HVM_PARAM_ACPI_IOPORTS_LOCATION => "HVM_PARAM_ACPI_IOPORTS_LOCATION",
            HVM_PARAM_PAGING_RING_PFN => "HVM_PARAM_PAGING_RING_PFN",
            HVM_PARAM_MONITOR_RING_PFN => "HVM_PARAM_MONITOR_RING_PFN",
            HVM_PARAM_SHARING_RING_PFN => "HVM_PARAM_SHARING_RING_PFN",
            HVM_PARAM_TRIPLE_FAULT_REASON => "HVM_PARAM_TRIPLE_FAULT_REASON",
            HVM_PARAM_IOREQ_SERVER_PFN => "HVM_PARAM_IOREQ_SERVER_PFN",
            HVM_PARAM_NR_IOREQ_SERVER_PAGES => "HVM_PARAM_NR_IOREQ_SERVER_PAGES",
            HVM_PARAM_VM_GENERATION_ID_ADDR => "HVM_PARAM_VM_GENERATION_ID_ADDR",
            HVM_PARAM_ALTP2M => "HVM_PARAM_ALTP2M",
            HVM_PARAM_X87_FIP_WIDTH => "HVM_PARAM_X87_FIP_WIDTH",
            HVM_PARAM_VM86_TSS_SIZED => "HVM_PARAM_VM86_TSS_SIZED",
            HVM_PARAM_MCA_CAP => "HVM_PARAM_MCA_CAP",
            HVM_NR_PARAMS => "HVM_NR_PARAMS",
            HVMPTM_DELAY_FOR_MISSED_TICKS => "HVMPTM_delay_for_missed_ticks",
            HVMPTM_NO_DELAY_FOR_MISSED_TICKS => "HVMPTM_no_delay_for_missed_ticks",
            HVMPTM_NO_MISSED_TICKS_PENDING => "HVMPTM_no_missed_ticks_pending",
            HVMPTM_ONE_MISSED_TICK_PENDING => "HVMPTM_one_missed_tick_pending",
            XEN_ALTP2M_DISABLED => "XEN_ALTP2M_disabled",
            XEN_ALTP2M_MIXED => "XEN_ALTP2M_mixed",
            XEN_ALTP2M_EXTERNAL => "XEN_ALTP2M_external",
            XEN_ALTP2M_LIMITED => "XEN_ALTP2M_limited",
        );
    }

    // sched.h
    {
        use sched::*;
        st!(t, SchedShutdown, "struct sched_shutdown", [reason]);
        st!(
            t,
            SchedPoll,
            "struct sched_poll",
            [ports, nr_ports, timeout]
        );
        st!(
            t,
            SchedRemoteShutdown,
            "struct sched_remote_shutdown",
            [domain_id, reason]
        );
        st!(t, SchedWatchdog, "struct sched_watchdog", [id, timeout]);
        st!(t, SchedPinOverride, "struct sched_pin_override", [pcpu]);
        cs!(t,
            SCHEDOP_YIELD => "SCHEDOP_yield",
            SCHEDOP_BLOCK => "SCHEDOP_block",
            SCHEDOP_SHUTDOWN => "SCHEDOP_shutdown",
            SCHEDOP_POLL => "SCHEDOP_poll",
            SCHEDOP_REMOTE_SHUTDOWN => "SCHEDOP_remote_shutdown",
            SCHEDOP_SHUTDOWN_CODE => "SCHEDOP_shutdown_code",
            SCHEDOP_WATCHDOG => "SCHEDOP_watchdog",
            SCHEDOP_PIN_OVERRIDE => "SCHEDOP_pin_override",
            SHUTDOWN_POWEROFF => "SHUTDOWN_poweroff",
            SHUTDOWN_REBOOT => "SHUTDOWN_reboot",
            SHUTDOWN_SUSPEND => "SHUTDOWN_suspend",
            SHUTDOWN_CRASH => "SHUTDOWN_crash",
            SHUTDOWN_WATCHDOG => "SHUTDOWN_watchdog",
            SHUTDOWN_SOFT_RESET => "SHUTDOWN_soft_reset",
            SHUTDOWN_MAX => "SHUTDOWN_MAX",
            ShutdownReason::Poweroff.raw() => "SHUTDOWN_poweroff",
            ShutdownReason::Reboot.raw() => "SHUTDOWN_reboot",
            ShutdownReason::Suspend.raw() => "SHUTDOWN_suspend",
            ShutdownReason::Crash.raw() => "SHUTDOWN_crash",
            ShutdownReason::Watchdog.raw() => "SHUTDOWN_watchdog",
            ShutdownReason::SoftReset.raw() => "SHUTDOWN_soft_reset",
        );
    }

    // vcpu.h
    {
        use vcpu::*;
        st!(
            t,
            VcpuRunstateInfo,
            "struct vcpu_runstate_info",
            [state, state_entry_time, time]
        );
        st!(
            t,
            VcpuRegisterRunstateMemoryArea,
            "struct vcpu_register_runstate_memory_area",
            [addr]
        );
        st!(
            t,
            VcpuSetPeriodicTimer,
            "struct vcpu_set_periodic_timer",
            [period_ns]
        );
        st!(
            t,
            VcpuSetSingleshotTimer,
            "struct vcpu_set_singleshot_timer",
            [timeout_abs_ns, flags]
        );
        st!(
            t,
            VcpuRegisterVcpuInfo,
            "struct vcpu_register_vcpu_info",
            [mfn, offset, rsvd]
        );
        st!(t, VcpuGetPhysid, "struct vcpu_get_physid", [phys_id]);
        st!(
            t,
            VcpuRegisterTimeMemoryArea,
            "struct vcpu_register_time_memory_area",
            [addr]
        );
        cs!(t,
            VCPUOP_INITIALISE => "VCPUOP_initialise",
            VCPUOP_UP => "VCPUOP_up",
            VCPUOP_DOWN => "VCPUOP_down",
            VCPUOP_IS_UP => "VCPUOP_is_up",
            VCPUOP_GET_RUNSTATE_INFO => "VCPUOP_get_runstate_info",
            VCPUOP_REGISTER_RUNSTATE_MEMORY_AREA => "VCPUOP_register_runstate_memory_area",
            VCPUOP_SET_PERIODIC_TIMER => "VCPUOP_set_periodic_timer",
            VCPUOP_STOP_PERIODIC_TIMER => "VCPUOP_stop_periodic_timer",
            VCPUOP_SET_SINGLESHOT_TIMER => "VCPUOP_set_singleshot_timer",
            VCPUOP_STOP_SINGLESHOT_TIMER => "VCPUOP_stop_singleshot_timer",
            VCPUOP_REGISTER_VCPU_INFO => "VCPUOP_register_vcpu_info",
            VCPUOP_SEND_NMI => "VCPUOP_send_nmi",
            VCPUOP_GET_PHYSID => "VCPUOP_get_physid",
            VCPUOP_REGISTER_VCPU_TIME_MEMORY_AREA => "VCPUOP_register_vcpu_time_memory_area",
            XEN_RUNSTATE_UPDATE => "XEN_RUNSTATE_UPDATE",
            RUNSTATE_RUNNING => "RUNSTATE_running",
            RUNSTATE_RUNNABLE => "RUNSTATE_runnable",
            RUNSTATE_BLOCKED => "RUNSTATE_blocked",
            RUNSTATE_OFFLINE => "RUNSTATE_offline",
            SingleshotTimerFlags::FUTURE.bits() => "VCPU_SSHOTTMR_future",
        );
    }

    // callback.h
    {
        use callback::*;
        st!(t, CallbackRegister, "struct callback_register", [type_ => "type", flags, address]);
        st!(t, CallbackUnregister, "struct callback_unregister", [type_ => "type", _unused]);
        cs!(t,
            CALLBACKTYPE_EVENT => "CALLBACKTYPE_event",
            CALLBACKTYPE_FAILSAFE => "CALLBACKTYPE_failsafe",
            CALLBACKTYPE_SYSCALL => "CALLBACKTYPE_syscall",
            CALLBACKTYPE_SYSENTER_DEPRECATED => "CALLBACKTYPE_sysenter_deprecated",
            CALLBACKTYPE_NMI => "CALLBACKTYPE_nmi",
            CALLBACKTYPE_SYSENTER => "CALLBACKTYPE_sysenter",
            CALLBACKTYPE_SYSCALL32 => "CALLBACKTYPE_syscall32",
            CallbackFlags::MASK_EVENTS.bits() => "CALLBACKF_mask_events",
            CALLBACKOP_REGISTER => "CALLBACKOP_register",
            CALLBACKOP_UNREGISTER => "CALLBACKOP_unregister",
        );
    }

    // errno.h
    for &e in errno::XenErrno::ALL {
        t.konst(&format!("XEN_{}", e.name()), e.raw().into());
    }
    cs!(t, errno::XEN_EWOULDBLOCK => "XEN_EWOULDBLOCK", errno::XEN_EDEADLOCK => "XEN_EDEADLOCK");

    // elfnote.h
    {
        use elfnote::*;
        cs!(t,
            XEN_ELFNOTE_INFO => "XEN_ELFNOTE_INFO",
            XEN_ELFNOTE_ENTRY => "XEN_ELFNOTE_ENTRY",
            XEN_ELFNOTE_HYPERCALL_PAGE => "XEN_ELFNOTE_HYPERCALL_PAGE",
            XEN_ELFNOTE_VIRT_BASE => "XEN_ELFNOTE_VIRT_BASE",
            XEN_ELFNOTE_PADDR_OFFSET => "XEN_ELFNOTE_PADDR_OFFSET",
            XEN_ELFNOTE_XEN_VERSION => "XEN_ELFNOTE_XEN_VERSION",
            XEN_ELFNOTE_GUEST_OS => "XEN_ELFNOTE_GUEST_OS",
            XEN_ELFNOTE_GUEST_VERSION => "XEN_ELFNOTE_GUEST_VERSION",
            XEN_ELFNOTE_LOADER => "XEN_ELFNOTE_LOADER",
            XEN_ELFNOTE_PAE_MODE => "XEN_ELFNOTE_PAE_MODE",
            XEN_ELFNOTE_FEATURES => "XEN_ELFNOTE_FEATURES",
            XEN_ELFNOTE_BSD_SYMTAB => "XEN_ELFNOTE_BSD_SYMTAB",
            XEN_ELFNOTE_HV_START_LOW => "XEN_ELFNOTE_HV_START_LOW",
            XEN_ELFNOTE_L1_MFN_VALID => "XEN_ELFNOTE_L1_MFN_VALID",
            XEN_ELFNOTE_SUSPEND_CANCEL => "XEN_ELFNOTE_SUSPEND_CANCEL",
            XEN_ELFNOTE_INIT_P2M => "XEN_ELFNOTE_INIT_P2M",
            XEN_ELFNOTE_MOD_START_PFN => "XEN_ELFNOTE_MOD_START_PFN",
            XEN_ELFNOTE_SUPPORTED_FEATURES => "XEN_ELFNOTE_SUPPORTED_FEATURES",
            XEN_ELFNOTE_PHYS32_ENTRY => "XEN_ELFNOTE_PHYS32_ENTRY",
            XEN_ELFNOTE_MAX => "XEN_ELFNOTE_MAX",
            XEN_ELFNOTE_CRASH_INFO => "XEN_ELFNOTE_CRASH_INFO",
            XEN_ELFNOTE_CRASH_REGS => "XEN_ELFNOTE_CRASH_REGS",
            XEN_ELFNOTE_DUMPCORE_NONE => "XEN_ELFNOTE_DUMPCORE_NONE",
            XEN_ELFNOTE_DUMPCORE_HEADER => "XEN_ELFNOTE_DUMPCORE_HEADER",
            XEN_ELFNOTE_DUMPCORE_XEN_VERSION => "XEN_ELFNOTE_DUMPCORE_XEN_VERSION",
            XEN_ELFNOTE_DUMPCORE_FORMAT_VERSION => "XEN_ELFNOTE_DUMPCORE_FORMAT_VERSION",
        );
    }

    // arch-x86/hvm/start_info.h (x86 semantics, but arch-independent layout)
    {
        use hvm_start_info::*;
        st!(
            t,
            HvmStartInfo,
            "struct hvm_start_info",
            [
                magic,
                version,
                flags,
                nr_modules,
                modlist_paddr,
                cmdline_paddr,
                rsdp_paddr,
                memmap_paddr,
                memmap_entries,
                reserved
            ]
        );
        st!(
            t,
            HvmModlistEntry,
            "struct hvm_modlist_entry",
            [paddr, size, cmdline_paddr, reserved]
        );
        st!(t, HvmMemmapTableEntry, "struct hvm_memmap_table_entry", [addr, size, type_ => "type", reserved]);
        cs!(t,
            XEN_HVM_START_MAGIC_VALUE => "XEN_HVM_START_MAGIC_VALUE",
            XEN_HVM_MEMMAP_TYPE_RAM => "XEN_HVM_MEMMAP_TYPE_RAM",
            XEN_HVM_MEMMAP_TYPE_RESERVED => "XEN_HVM_MEMMAP_TYPE_RESERVED",
            XEN_HVM_MEMMAP_TYPE_ACPI => "XEN_HVM_MEMMAP_TYPE_ACPI",
            XEN_HVM_MEMMAP_TYPE_NVS => "XEN_HVM_MEMMAP_TYPE_NVS",
            XEN_HVM_MEMMAP_TYPE_UNUSABLE => "XEN_HVM_MEMMAP_TYPE_UNUSABLE",
            XEN_HVM_MEMMAP_TYPE_DISABLED => "XEN_HVM_MEMMAP_TYPE_DISABLED",
            XEN_HVM_MEMMAP_TYPE_PMEM => "XEN_HVM_MEMMAP_TYPE_PMEM",
            HvmMemmapType::Ram.raw() => "XEN_HVM_MEMMAP_TYPE_RAM",
            HvmMemmapType::Reserved.raw() => "XEN_HVM_MEMMAP_TYPE_RESERVED",
            HvmMemmapType::Acpi.raw() => "XEN_HVM_MEMMAP_TYPE_ACPI",
            HvmMemmapType::Nvs.raw() => "XEN_HVM_MEMMAP_TYPE_NVS",
            HvmMemmapType::Unusable.raw() => "XEN_HVM_MEMMAP_TYPE_UNUSABLE",
            HvmMemmapType::Disabled.raw() => "XEN_HVM_MEMMAP_TYPE_DISABLED",
            HvmMemmapType::Pmem.raw() => "XEN_HVM_MEMMAP_TYPE_PMEM",
        );
    }

    io_headers(t);
}

fn io_headers(t: &mut Table) {
    // io/netif.h
    {
        use netif::*;
        st!(t, XenNetifCtrlRequest, "struct xen_netif_ctrl_request", [id, type_ => "type", data]);
        st!(t, XenNetifCtrlResponse, "struct xen_netif_ctrl_response", [id, type_ => "type", status, data]);
        st!(t, XenNetifGref, "struct xen_netif_gref", [ref_ => "ref", flags, status]);
        st!(
            t,
            NetifTxRequest,
            "struct netif_tx_request",
            [gref, offset, flags, id, size]
        );
        st!(t, NetifTxResponse, "struct netif_tx_response", [id, status]);
        st!(t, NetifExtraInfo, "struct netif_extra_info", [type_ => "type", flags, u]);
        st!(t, NetifExtraInfoU, "struct netif_extra_info"."u", [raw => "pad"]);
        st!(t, NetifExtraGso, "struct netif_extra_info"."u.gso", [size, type_ => "type", pad, features]);
        st!(t, NetifExtraMcast, "struct netif_extra_info"."u.mcast", [addr]);
        st!(t, NetifExtraHash, "struct netif_extra_info"."u.hash", [type_ => "type", algorithm, value]);
        st!(
            t,
            NetifRxRequest,
            "struct netif_rx_request",
            [id, pad, gref]
        );
        st!(
            t,
            NetifRxResponse,
            "struct netif_rx_response",
            [id, offset, flags, status]
        );
        t.ring("netif_tx", NETIF_TX_SRING_ENTRY_SIZE);
        t.ring("netif_rx", NETIF_RX_SRING_ENTRY_SIZE);
        t.ring("xen_netif_ctrl", XEN_NETIF_CTRL_SRING_ENTRY_SIZE);
        cs!(t,
            XEN_NETIF_NR_SLOTS_MIN => "XEN_NETIF_NR_SLOTS_MIN",
            XEN_NETIF_MAX_TX_SIZE => "XEN_NETIF_MAX_TX_SIZE",
            NetifCtrlHashType::IPV4.bits() => "XEN_NETIF_CTRL_HASH_TYPE_IPV4",
            NetifCtrlHashType::IPV4_TCP.bits() => "XEN_NETIF_CTRL_HASH_TYPE_IPV4_TCP",
            NetifCtrlHashType::IPV6.bits() => "XEN_NETIF_CTRL_HASH_TYPE_IPV6",
            NetifCtrlHashType::IPV6_TCP.bits() => "XEN_NETIF_CTRL_HASH_TYPE_IPV6_TCP",
            XEN_NETIF_CTRL_HASH_ALGORITHM_NONE => "XEN_NETIF_CTRL_HASH_ALGORITHM_NONE",
            XEN_NETIF_CTRL_HASH_ALGORITHM_TOEPLITZ => "XEN_NETIF_CTRL_HASH_ALGORITHM_TOEPLITZ",
            XEN_NETIF_CTRL_TYPE_INVALID => "XEN_NETIF_CTRL_TYPE_INVALID",
            XEN_NETIF_CTRL_TYPE_GET_HASH_FLAGS => "XEN_NETIF_CTRL_TYPE_GET_HASH_FLAGS",
            XEN_NETIF_CTRL_TYPE_SET_HASH_FLAGS => "XEN_NETIF_CTRL_TYPE_SET_HASH_FLAGS",
            XEN_NETIF_CTRL_TYPE_SET_HASH_KEY => "XEN_NETIF_CTRL_TYPE_SET_HASH_KEY",
            XEN_NETIF_CTRL_TYPE_GET_HASH_MAPPING_SIZE => "XEN_NETIF_CTRL_TYPE_GET_HASH_MAPPING_SIZE",
            XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING_SIZE => "XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING_SIZE",
            XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING => "XEN_NETIF_CTRL_TYPE_SET_HASH_MAPPING",
            XEN_NETIF_CTRL_TYPE_SET_HASH_ALGORITHM => "XEN_NETIF_CTRL_TYPE_SET_HASH_ALGORITHM",
            XEN_NETIF_CTRL_TYPE_GET_GREF_MAPPING_SIZE => "XEN_NETIF_CTRL_TYPE_GET_GREF_MAPPING_SIZE",
            XEN_NETIF_CTRL_TYPE_ADD_GREF_MAPPING => "XEN_NETIF_CTRL_TYPE_ADD_GREF_MAPPING",
            XEN_NETIF_CTRL_TYPE_DEL_GREF_MAPPING => "XEN_NETIF_CTRL_TYPE_DEL_GREF_MAPPING",
            XEN_NETIF_CTRL_STATUS_SUCCESS => "XEN_NETIF_CTRL_STATUS_SUCCESS",
            XEN_NETIF_CTRL_STATUS_NOT_SUPPORTED => "XEN_NETIF_CTRL_STATUS_NOT_SUPPORTED",
            XEN_NETIF_CTRL_STATUS_INVALID_PARAMETER => "XEN_NETIF_CTRL_STATUS_INVALID_PARAMETER",
            XEN_NETIF_CTRL_STATUS_BUFFER_OVERFLOW => "XEN_NETIF_CTRL_STATUS_BUFFER_OVERFLOW",
            NetifGrefFlags::READONLY.bits() => "XEN_NETIF_CTRLF_GREF_readonly",
            NetTxFlags::CSUM_BLANK.bits() => "NETTXF_csum_blank",
            NetTxFlags::DATA_VALIDATED.bits() => "NETTXF_data_validated",
            NetTxFlags::MORE_DATA.bits() => "NETTXF_more_data",
            NetTxFlags::EXTRA_INFO.bits() => "NETTXF_extra_info",
            XEN_NETIF_EXTRA_TYPE_NONE => "XEN_NETIF_EXTRA_TYPE_NONE",
            XEN_NETIF_EXTRA_TYPE_GSO => "XEN_NETIF_EXTRA_TYPE_GSO",
            XEN_NETIF_EXTRA_TYPE_MCAST_ADD => "XEN_NETIF_EXTRA_TYPE_MCAST_ADD",
            XEN_NETIF_EXTRA_TYPE_MCAST_DEL => "XEN_NETIF_EXTRA_TYPE_MCAST_DEL",
            XEN_NETIF_EXTRA_TYPE_HASH => "XEN_NETIF_EXTRA_TYPE_HASH",
            NetifExtraType::Gso.raw() => "XEN_NETIF_EXTRA_TYPE_GSO",
            NetifExtraType::McastAdd.raw() => "XEN_NETIF_EXTRA_TYPE_MCAST_ADD",
            NetifExtraType::McastDel.raw() => "XEN_NETIF_EXTRA_TYPE_MCAST_DEL",
            NetifExtraType::Hash.raw() => "XEN_NETIF_EXTRA_TYPE_HASH",
            NetifExtraFlags::MORE.bits() => "XEN_NETIF_EXTRA_FLAG_MORE",
            XEN_NETIF_GSO_TYPE_NONE => "XEN_NETIF_GSO_TYPE_NONE",
            XEN_NETIF_GSO_TYPE_TCPV4 => "XEN_NETIF_GSO_TYPE_TCPV4",
            XEN_NETIF_GSO_TYPE_TCPV6 => "XEN_NETIF_GSO_TYPE_TCPV6",
            NetifGsoType::None.raw() => "XEN_NETIF_GSO_TYPE_NONE",
            NetifGsoType::Tcpv4.raw() => "XEN_NETIF_GSO_TYPE_TCPV4",
            NetifGsoType::Tcpv6.raw() => "XEN_NETIF_GSO_TYPE_TCPV6",
            NetRxFlags::DATA_VALIDATED.bits() => "NETRXF_data_validated",
            NetRxFlags::CSUM_BLANK.bits() => "NETRXF_csum_blank",
            NetRxFlags::MORE_DATA.bits() => "NETRXF_more_data",
            NetRxFlags::EXTRA_INFO.bits() => "NETRXF_extra_info",
            NetRxFlags::GSO_PREFIX.bits() => "NETRXF_gso_prefix",
            NETIF_RSP_DROPPED => "NETIF_RSP_DROPPED",
            NETIF_RSP_ERROR => "NETIF_RSP_ERROR",
            NETIF_RSP_OKAY => "NETIF_RSP_OKAY",
            NETIF_RSP_NULL => "NETIF_RSP_NULL",
        );
    }

    // io/blkif.h
    {
        use blkif::*;
        st!(
            t,
            BlkifRequestSegment,
            "struct blkif_request_segment",
            [gref, first_sect, last_sect]
        );
        st!(
            t,
            BlkifRequest,
            "struct blkif_request",
            [operation, nr_segments, handle, id, sector_number, seg]
        );
        st!(
            t,
            BlkifRequestDiscard,
            "struct blkif_request_discard",
            [operation, flag, handle, id, sector_number, nr_sectors]
        );
        st!(
            t,
            BlkifRequestIndirect,
            "struct blkif_request_indirect",
            [
                operation,
                indirect_op,
                nr_segments,
                id,
                sector_number,
                handle,
                indirect_grefs
            ]
        );
        st!(
            t,
            BlkifResponse,
            "struct blkif_response",
            [id, operation, status]
        );
        // The Linux-style "other" request is the common prefix of struct blkif_request.
        t.int(
            "offset blkif_request_other.operation".into(),
            "offsetof(struct blkif_request, operation)".into(),
            offset_of!(BlkifRequestOther, operation) as i128,
        );
        t.int(
            "offset blkif_request_other.id".into(),
            "offsetof(struct blkif_request, id)".into(),
            offset_of!(BlkifRequestOther, id) as i128,
        );
        t.ring("blkif", BLKIF_SRING_ENTRY_SIZE);
        cs!(t,
            BLKIF_OP_READ => "BLKIF_OP_READ",
            BLKIF_OP_WRITE => "BLKIF_OP_WRITE",
            BLKIF_OP_WRITE_BARRIER => "BLKIF_OP_WRITE_BARRIER",
            BLKIF_OP_FLUSH_DISKCACHE => "BLKIF_OP_FLUSH_DISKCACHE",
            BLKIF_OP_RESERVED_1 => "BLKIF_OP_RESERVED_1",
            BLKIF_OP_DISCARD => "BLKIF_OP_DISCARD",
            BLKIF_OP_INDIRECT => "BLKIF_OP_INDIRECT",
            BlkifOp::Read.raw() => "BLKIF_OP_READ",
            BlkifOp::Write.raw() => "BLKIF_OP_WRITE",
            BlkifOp::WriteBarrier.raw() => "BLKIF_OP_WRITE_BARRIER",
            BlkifOp::FlushDiskcache.raw() => "BLKIF_OP_FLUSH_DISKCACHE",
            BlkifOp::Reserved1.raw() => "BLKIF_OP_RESERVED_1",
            BlkifOp::Discard.raw() => "BLKIF_OP_DISCARD",
            BlkifOp::Indirect.raw() => "BLKIF_OP_INDIRECT",
            BLKIF_MAX_SEGMENTS_PER_REQUEST => "BLKIF_MAX_SEGMENTS_PER_REQUEST",
            BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST => "BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST",
            BLKIF_DISCARD_SECURE => "BLKIF_DISCARD_SECURE",
            BLKIF_RSP_EOPNOTSUPP => "BLKIF_RSP_EOPNOTSUPP",
            BLKIF_RSP_ERROR => "BLKIF_RSP_ERROR",
            BLKIF_RSP_OKAY => "BLKIF_RSP_OKAY",
            BlkifRspStatus::Eopnotsupp.raw() => "BLKIF_RSP_EOPNOTSUPP",
            BlkifRspStatus::Error.raw() => "BLKIF_RSP_ERROR",
            BlkifRspStatus::Okay.raw() => "BLKIF_RSP_OKAY",
            VdiskInfo::CDROM.bits() => "VDISK_CDROM",
            VdiskInfo::REMOVABLE.bits() => "VDISK_REMOVABLE",
            VdiskInfo::READONLY.bits() => "VDISK_READONLY",
        );
    }

    // io/console.h
    {
        use console::*;
        st!(t, XenconsInterface, "struct xencons_interface",
            [in_ => "in", out, in_cons, in_prod, out_cons, out_prod]);
        cs!(t,
            XENCONS_IN_SIZE => "sizeof(((struct xencons_interface *)0)->in)",
            XENCONS_OUT_SIZE => "sizeof(((struct xencons_interface *)0)->out)",
        );
    }

    // io/xs_wire.h
    {
        use xs_wire::*;
        st!(t, XsdSockmsg, "struct xsd_sockmsg", [type_ => "type", req_id, tx_id, len]);
        st!(
            t,
            XenstoreDomainInterface,
            "struct xenstore_domain_interface",
            [
                req,
                rsp,
                req_cons,
                req_prod,
                rsp_cons,
                rsp_prod,
                server_features,
                connection,
                error
            ]
        );
        cs!(t,
            XS_CONTROL => "XS_CONTROL", XS_DEBUG => "XS_DEBUG", XS_DIRECTORY => "XS_DIRECTORY",
            XS_READ => "XS_READ", XS_GET_PERMS => "XS_GET_PERMS", XS_WATCH => "XS_WATCH",
            XS_UNWATCH => "XS_UNWATCH", XS_TRANSACTION_START => "XS_TRANSACTION_START",
            XS_TRANSACTION_END => "XS_TRANSACTION_END", XS_INTRODUCE => "XS_INTRODUCE",
            XS_RELEASE => "XS_RELEASE", XS_GET_DOMAIN_PATH => "XS_GET_DOMAIN_PATH",
            XS_WRITE => "XS_WRITE", XS_MKDIR => "XS_MKDIR", XS_RM => "XS_RM",
            XS_SET_PERMS => "XS_SET_PERMS", XS_WATCH_EVENT => "XS_WATCH_EVENT",
            XS_ERROR => "XS_ERROR", XS_IS_DOMAIN_INTRODUCED => "XS_IS_DOMAIN_INTRODUCED",
            XS_RESUME => "XS_RESUME", XS_SET_TARGET => "XS_SET_TARGET",
            XS_RESET_WATCHES => "XS_RESET_WATCHES", XS_DIRECTORY_PART => "XS_DIRECTORY_PART",
            XS_TYPE_COUNT => "XS_TYPE_COUNT", XS_INVALID => "XS_INVALID",
            XsdSockmsgType::ALL.len() + 1 => "(XS_TYPE_COUNT)", // 22 types + the removed XS_RESTRICT
            XS_WATCH_PATH => "XS_WATCH_PATH", XS_WATCH_TOKEN => "XS_WATCH_TOKEN",
            XENSTORE_RING_SIZE => "XENSTORE_RING_SIZE",
            XENSTORE_PAYLOAD_MAX => "XENSTORE_PAYLOAD_MAX",
            XENSTORE_ABS_PATH_MAX => "XENSTORE_ABS_PATH_MAX",
            XENSTORE_REL_PATH_MAX => "XENSTORE_REL_PATH_MAX",
            XenstoreServerFeatures::RECONNECTION.bits() => "XENSTORE_SERVER_FEATURE_RECONNECTION",
            XenstoreServerFeatures::ERROR.bits() => "XENSTORE_SERVER_FEATURE_ERROR",
            XENSTORE_CONNECTED => "XENSTORE_CONNECTED",
            XENSTORE_RECONNECT => "XENSTORE_RECONNECT",
            XENSTORE_ERROR_NONE => "XENSTORE_ERROR_NONE",
            XENSTORE_ERROR_COMM => "XENSTORE_ERROR_COMM",
            XENSTORE_ERROR_RINGIDX => "XENSTORE_ERROR_RINGIDX",
            XENSTORE_ERROR_PROTO => "XENSTORE_ERROR_PROTO",
        );
        for &ty in XsdSockmsgType::ALL {
            // Variant names are the C names in CamelCase; check each value by name.
            let c = xs_c_name(ty);
            t.konst(c, ty.raw().into());
        }
        t.string("XS_WRITE_NONE", XS_WRITE_NONE);
        t.string("XS_WRITE_CREATE", XS_WRITE_CREATE);
        t.string("XS_WRITE_CREATE_EXCL", XS_WRITE_CREATE_EXCL);
        t.int(
            "const xsd_errors.len".into(),
            "sizeof(xsd_errors) / sizeof(xsd_errors[0])".into(),
            XSD_ERRORS.len() as i128,
        );
        for (i, (num, name)) in XSD_ERRORS.iter().enumerate() {
            t.int(
                format!("const xsd_errors[{i}].errnum"),
                format!("xsd_errors[{i}].errnum"),
                (*num).into(),
            );
            t.push(
                format!("str xsd_errors[{i}].errstring"),
                format!("xsd_errors[{i}].errstring"),
                Value::Str(name.to_string()),
            );
        }
    }

    // io/xenbus.h
    for &s in xenbus::XenbusState::ALL {
        t.konst(&format!("XenbusState{}", s.name()), s.raw().into());
    }

    // io/protocols.h
    t.string(
        "XEN_IO_PROTO_ABI_X86_32",
        protocols::XEN_IO_PROTO_ABI_X86_32,
    );
    t.string(
        "XEN_IO_PROTO_ABI_X86_64",
        protocols::XEN_IO_PROTO_ABI_X86_64,
    );
    t.string("XEN_IO_PROTO_ABI_ARM", protocols::XEN_IO_PROTO_ABI_ARM);

    // io/libxenvchan.h
    {
        use libxenvchan::*;
        st!(t, RingShared, "struct ring_shared", [cons, prod]);
        st!(
            t,
            VchanInterface,
            "struct vchan_interface",
            [
                left,
                right,
                left_order,
                right_order,
                cli_live,
                srv_live,
                cli_notify,
                srv_notify
            ]
        );
        cs!(t,
            VCHAN_INTERFACE_GRANTS_OFFSET => "offsetof(struct vchan_interface, grants)",
            VchanNotify::WRITE.bits() => "VCHAN_NOTIFY_WRITE",
            VchanNotify::READ.bits() => "VCHAN_NOTIFY_READ",
        );
    }
}

fn xs_c_name(ty: xs_wire::XsdSockmsgType) -> &'static str {
    use xs_wire::XsdSockmsgType as T;
    match ty {
        T::Control => "XS_CONTROL",
        T::Directory => "XS_DIRECTORY",
        T::Read => "XS_READ",
        T::GetPerms => "XS_GET_PERMS",
        T::Watch => "XS_WATCH",
        T::Unwatch => "XS_UNWATCH",
        T::TransactionStart => "XS_TRANSACTION_START",
        T::TransactionEnd => "XS_TRANSACTION_END",
        T::Introduce => "XS_INTRODUCE",
        T::Release => "XS_RELEASE",
        T::GetDomainPath => "XS_GET_DOMAIN_PATH",
        T::Write => "XS_WRITE",
        T::Mkdir => "XS_MKDIR",
        T::Rm => "XS_RM",
        T::SetPerms => "XS_SET_PERMS",
        T::WatchEvent => "XS_WATCH_EVENT",
        T::Error => "XS_ERROR",
        T::IsDomainIntroduced => "XS_IS_DOMAIN_INTRODUCED",
        T::Resume => "XS_RESUME",
        T::SetTarget => "XS_SET_TARGET",
        T::ResetWatches => "XS_RESET_WATCHES",
        T::DirectoryPart => "XS_DIRECTORY_PART",
    }
}

/// Layouts and constants of the x86 headers.
fn x86(t: &mut Table) {
    use arch_x86::*;
    st!(t, ArchVcpuInfo, "struct arch_vcpu_info", [cr2, pad]);
    st!(
        t,
        VcpuInfo,
        "struct vcpu_info",
        [
            evtchn_upcall_pending,
            evtchn_upcall_mask,
            evtchn_pending_sel,
            arch,
            time
        ]
    );
    st!(
        t,
        ArchSharedInfo,
        "struct arch_shared_info",
        [
            max_pfn,
            pfn_to_mfn_frame_list_list,
            nmi_reason,
            p2m_cr3,
            p2m_vaddr,
            p2m_generation
        ]
    );
    st!(
        t,
        SharedInfo,
        "struct shared_info",
        [
            vcpu_info,
            evtchn_pending,
            evtchn_mask,
            wc_version,
            wc_sec,
            wc_nsec,
            wc_sec_hi,
            arch
        ]
    );
    st!(
        t,
        StartInfo,
        "struct start_info",
        [
            magic,
            nr_pages,
            shared_info,
            flags,
            store_mfn,
            store_evtchn,
            console,
            pt_base,
            nr_pt_frames,
            mfn_list,
            mod_start,
            mod_len,
            cmd_line,
            first_p2m_pfn,
            nr_p2m_frames
        ]
    );
    st!(t, StartInfoConsole, "struct start_info"."console", []);
    st!(t, StartInfoConsoleDomU, "struct start_info"."console.domU", [mfn, evtchn]);
    st!(t, StartInfoConsoleDom0, "struct start_info"."console.dom0"
        size "sizeof(((struct start_info *)0)->console)", [info_off, info_size]);
    st!(
        t,
        TrapInfo,
        "struct trap_info",
        [vector, flags, cs, address]
    );
    st!(
        t,
        hvm_params::XenHvmEvtchnUpcallVector,
        "struct xen_hvm_evtchn_upcall_vector",
        [vcpu, vector]
    );
    t.typedef(
        "xen_callback_t",
        size_of::<XenCallback>(),
        kind_of_type!(XenCallback),
    );
    cs!(t,
        XEN_LEGACY_MAX_VCPUS => "XEN_LEGACY_MAX_VCPUS",
        MAX_GUEST_CMDLINE => "MAX_GUEST_CMDLINE",
        FLAT_RING3_CS32 => "FLAT_RING3_CS32", FLAT_RING3_CS64 => "FLAT_RING3_CS64",
        FLAT_RING3_DS32 => "FLAT_RING3_DS32", FLAT_RING3_DS64 => "FLAT_RING3_DS64",
        FLAT_RING3_SS32 => "FLAT_RING3_SS32", FLAT_RING3_SS64 => "FLAT_RING3_SS64",
        FLAT_KERNEL_CS64 => "FLAT_KERNEL_CS64", FLAT_KERNEL_DS64 => "FLAT_KERNEL_DS64",
        FLAT_KERNEL_SS64 => "FLAT_KERNEL_SS64", FLAT_KERNEL_CS => "FLAT_KERNEL_CS",
        FLAT_KERNEL_DS => "FLAT_KERNEL_DS", FLAT_KERNEL_SS => "FLAT_KERNEL_SS",
        FLAT_USER_CS => "FLAT_USER_CS", FLAT_USER_DS => "FLAT_USER_DS", FLAT_USER_SS => "FLAT_USER_SS",
        HYPERVISOR_VIRT_START => "HYPERVISOR_VIRT_START",
        HYPERVISOR_VIRT_END => "HYPERVISOR_VIRT_END",
        MACH2PHYS_VIRT_START => "MACH2PHYS_VIRT_START",
        MACH2PHYS_VIRT_END => "MACH2PHYS_VIRT_END",
        MACH2PHYS_NR_ENTRIES => "MACH2PHYS_NR_ENTRIES",
        SEGBASE_FS => "SEGBASE_FS", SEGBASE_GS_USER => "SEGBASE_GS_USER",
        SEGBASE_GS_KERNEL => "SEGBASE_GS_KERNEL", SEGBASE_GS_USER_SEL => "SEGBASE_GS_USER_SEL",
        XEN_HVM_DEBUGCONS_IOPORT => "XEN_HVM_DEBUGCONS_IOPORT",
        hvm_params::HVM_PARAM_CALLBACK_TYPE_VECTOR => "HVM_PARAM_CALLBACK_TYPE_VECTOR",
        hvm_params::HVM_PARAM_VIRIDIAN => "HVM_PARAM_VIRIDIAN",
        hvm_params::HVMOP_SET_EVTCHN_UPCALL_VECTOR => "HVMOP_set_evtchn_upcall_vector",
    );
}

/// Layouts and constants of the arm headers.
fn arm(t: &mut Table) {
    use arch_arm::*;
    st!(t, ArchVcpuInfo, "struct arch_vcpu_info", []);
    st!(
        t,
        VcpuInfo,
        "struct vcpu_info",
        [evtchn_upcall_pending, pad0, evtchn_pending_sel, arch, time]
    );
    st!(t, ArchSharedInfo, "struct arch_shared_info", []);
    st!(
        t,
        SharedInfo,
        "struct shared_info",
        [
            vcpu_info,
            evtchn_pending,
            evtchn_mask,
            wc_version,
            wc_sec,
            wc_nsec,
            wc_sec_hi,
            arch
        ]
    );
    t.typedef(
        "xen_callback_t",
        size_of::<XenCallback>(),
        kind_of_type!(XenCallback),
    );
    cs!(t,
        XEN_LEGACY_MAX_VCPUS => "XEN_LEGACY_MAX_VCPUS",
        XEN_HYPERCALL_TAG => "XEN_HYPERCALL_TAG",
        hvm_params::HVM_PARAM_CALLBACK_TYPE_PPI => "HVM_PARAM_CALLBACK_TYPE_PPI",
        hvm_params::HVM_PARAM_CALLBACK_TYPE_PPI_FLAG_MASK => "HVM_PARAM_CALLBACK_TYPE_PPI_FLAG_MASK",
        hvm_params::HVM_PARAM_CALLBACK_TYPE_PPI_FLAG_LOW_LEVEL => "HVM_PARAM_CALLBACK_TYPE_PPI_FLAG_LOW_LEVEL",
    );
}

/// Items that only exist for the architecture this test is compiled for.
fn native(t: &mut Table) {
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    {
        t.string(
            "XEN_IO_PROTO_ABI_NATIVE",
            protocols::XEN_IO_PROTO_ABI_NATIVE,
        );
        st!(t, xen::VcpuInfo, "struct vcpu_info", []);
        st!(t, xen::SharedInfo, "struct shared_info", []);
        cs!(t, xen::XEN_LEGACY_MAX_VCPUS => "XEN_LEGACY_MAX_VCPUS");
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    let _ = t;
}

/// Items only visible with `__XEN_TOOLS__`.
fn tools_only(t: &mut Table) {
    cs!(t,
        hvm_params::HVM_PARAM_PAE_ENABLED => "HVM_PARAM_PAE_ENABLED",
        memory::XENMEM_CLAIM_PAGES => "XENMEM_claim_pages",
        memory::XENMEM_RESERVED_DEVICE_MEMORY_MAP => "XENMEM_reserved_device_memory_map",
    );
}

// --- Running the C side ----------------------------------------------------------------

struct View {
    name: &'static str,
    arch: Arch,
    tools: bool,
    defines: &'static [&'static str],
}

fn views() -> Vec<View> {
    const LATEST: &str = "-D__XEN_INTERFACE_VERSION__=0x00040e00";
    if cfg!(target_arch = "aarch64") {
        vec![
            View {
                name: "aarch64",
                arch: Arch::Arm,
                tools: false,
                defines: &[LATEST],
            },
            View {
                name: "aarch64-tools",
                arch: Arch::Arm,
                tools: true,
                defines: &["-D__XEN_TOOLS__"],
            },
            View {
                name: "x86_64-sim",
                arch: Arch::X86,
                tools: false,
                defines: &[LATEST, "-DXEN_LAYOUT_SIM_X86_64"],
            },
        ]
    } else {
        vec![
            View {
                name: "x86_64",
                arch: Arch::X86,
                tools: false,
                defines: &[LATEST],
            },
            View {
                name: "x86_64-tools",
                arch: Arch::X86,
                tools: true,
                defines: &["-D__XEN_TOOLS__"],
            },
            View {
                name: "aarch64-sim",
                arch: Arch::Arm,
                tools: false,
                defines: &[LATEST, "-DXEN_LAYOUT_SIM_AARCH64"],
            },
        ]
    }
}

fn selected<'a>(entries: &'a [Entry], view: &View) -> Vec<&'a Entry> {
    entries
        .iter()
        .filter(|e| (e.arch == Arch::Any || e.arch == view.arch) && (!e.tools_only || view.tools))
        .collect()
}

fn c_string_literal(s: &str) -> String {
    let mut out = String::from("\"");
    for ch in s.chars() {
        match ch {
            '"' | '\\' => {
                out.push('\\');
                out.push(ch);
            }
            _ => out.push(ch),
        }
    }
    out.push('"');
    out
}

fn generate_c(entries: &[&Entry]) -> String {
    let mut c = String::from("#include \"prelude.h\"\n\nint main(void)\n{\n");
    for e in entries {
        let key = c_string_literal(&e.key);
        match e.rust {
            Value::Int(_) => writeln!(c, "    P({key}, ({}));", e.c).unwrap(),
            Value::Str(_) => writeln!(c, "    PS({key}, ({}));", e.c).unwrap(),
        }
    }
    c.push_str("    return 0;\n}\n");
    c
}

fn include_dir() -> PathBuf {
    PathBuf::from(std::env::var_os("XEN_INCLUDE_DIR").unwrap_or_else(|| "/usr/include".into()))
}

fn run_c(view: &View, source: &str, out_dir: &Path) -> String {
    let inc = include_dir();
    let c_path = out_dir.join(format!("layout-{}.c", view.name));
    let exe = out_dir.join(format!("layout-{}", view.name));
    std::fs::write(&c_path, source).unwrap();
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_string());
    let prelude_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/layout");
    let output = Command::new(&cc)
        .arg("-std=gnu11")
        .arg("-Wall")
        .arg("-Werror")
        .arg("-Wno-unused-function")
        .args(view.defines)
        .arg(format!("-I{}", prelude_dir.display()))
        .arg(format!("-I{}", inc.display()))
        .arg("-o")
        .arg(&exe)
        .arg(&c_path)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run the C compiler `{cc}`: {e} (set CC to a working compiler)")
        });
    assert!(
        output.status.success(),
        "[{}] compiling {} failed:\n{}",
        view.name,
        c_path.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    let run = Command::new(&exe)
        .output()
        .expect("running the layout program");
    assert!(
        run.status.success(),
        "[{}] layout program failed: {:?}",
        view.name,
        run.status
    );
    String::from_utf8(run.stdout).expect("utf-8 output")
}

fn parse_c_output(out: &str) -> BTreeMap<String, Value> {
    let mut map = BTreeMap::new();
    for line in out.lines() {
        let (key, value) = line
            .split_once('\t')
            .unwrap_or_else(|| panic!("malformed line {line:?}"));
        let value = if let Some(s) = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
            Value::Str(s.to_string())
        } else {
            Value::Int(
                value
                    .parse()
                    .unwrap_or_else(|_| panic!("bad number in {line:?}")),
            )
        };
        assert!(
            map.insert(key.to_string(), value).is_none(),
            "duplicate key {key:?} in C output"
        );
    }
    map
}

#[test]
fn layouts_match_xen_headers() {
    let inc = include_dir();
    assert!(
        inc.join("xen/xen.h").exists(),
        "Xen's public headers are not installed: {} is missing. Install them with \
         `apt-get install libxen-dev` (or point XEN_INCLUDE_DIR at the directory containing xen/xen.h). \
         The layout proof cannot be skipped.",
        inc.join("xen/xen.h").display()
    );

    let entries = table();
    let out_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let mut failures = Vec::new();
    let mut summary = Vec::new();

    for view in views() {
        let sel = selected(&entries, &view);
        let mut expected = BTreeMap::new();
        for e in &sel {
            if let Some(old) = expected.insert(e.key.clone(), e.rust.clone()) {
                // The same key may appear twice only with the same value (e.g. a
                // constant and the enum variant it becomes).
                if old != e.rust {
                    failures.push(format!(
                        "[{}] table lists {} twice with different Rust values: {old} vs {}",
                        view.name, e.key, e.rust
                    ));
                }
            }
        }
        let mut dedup: Vec<&Entry> = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        for e in sel {
            if seen.insert(e.key.as_str()) {
                dedup.push(e);
            }
        }
        let actual = parse_c_output(&run_c(&view, &generate_c(&dedup), &out_dir));

        for (key, rust) in &expected {
            match actual.get(key) {
                None => failures.push(format!("[{}] {key}: missing from the C output", view.name)),
                Some(c) if c != rust => {
                    failures.push(format!("[{}] {key}: Rust {rust} != C {c}", view.name));
                }
                Some(_) => {}
            }
        }
        for key in actual.keys() {
            if !expected.contains_key(key) {
                failures.push(format!(
                    "[{}] {key}: printed by C but not in the Rust table",
                    view.name
                ));
            }
        }

        let mut counts = Counts::default();
        for key in expected.keys() {
            match key.split(' ').next().unwrap() {
                "size" if key.starts_with("size struct") || key.starts_with("size union") => {
                    counts.structs += 1
                }
                "offset" => counts.fields += 1,
                "const" | "str" => counts.consts += 1,
                "ring" | "const_ring" => counts.rings += 1,
                _ => {}
            }
        }
        summary.push(format!(
            "[{}] {} checks: {} struct/union layouts, {} field offsets (each with size and signedness), \
             {} constants, {} ring sizes",
            view.name,
            expected.len(),
            counts.structs,
            counts.fields,
            counts.consts,
            counts.rings
        ));
    }

    for s in &summary {
        eprintln!("{s}");
    }
    assert!(
        failures.is_empty(),
        "{} layout mismatch(es) against Xen's headers:\n  {}",
        failures.len(),
        failures.join("\n  ")
    );
}

/// The table must not be trivially empty or lose whole sections.
#[test]
fn table_covers_enough() {
    let entries = table();
    let structs = entries
        .iter()
        .filter(|e| e.key.starts_with("size struct") || e.key.starts_with("size union"))
        .count();
    assert!(structs >= 90, "only {structs} struct layouts in the table");
    assert!(
        entries
            .iter()
            .filter(|e| e.key.starts_with("offset "))
            .count()
            >= 300
    );
    assert!(
        entries
            .iter()
            .filter(|e| e.key.starts_with("const "))
            .count()
            >= 400
    );
}
