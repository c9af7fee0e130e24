//! `console_io` hypercall commands (`CONSOLEIO_*`, from `xen.h`): the
//! hypervisor's own console, usable before any ring is set up.

/// Write bytes to the hypervisor console: `console_io(CONSOLEIO_write, len, buf)`.
pub const CONSOLEIO_WRITE: u32 = 0;
/// Read bytes from the hypervisor console (privileged).
pub const CONSOLEIO_READ: u32 = 1;
