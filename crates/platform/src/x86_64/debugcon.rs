//! Output on I/O port 0xE9, the HVM debug port.
//!
//! Xen's emulation of the port buffers each line and prints it on its own
//! console as `(dN) line` when the hypervisor runs with `guest_loglvl=all`.
//! It works from the first instruction (no hypercall page, no memory shared
//! with anyone), so it suits boot traces and last words before a crash.

use core::fmt;

/// The HVM debug port.
pub const DEBUG_PORT: u16 = 0xE9;

/// The debug port as a [`fmt::Write`] sink (HVM and PVH guests only: a PV
/// guest has no port I/O).
///
/// ```no_run
/// use core::fmt::Write;
/// let _ = writeln!(xenpv_platform::x86_64::DebugCon, "booting");
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct DebugCon;

impl fmt::Write for DebugCon {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for byte in s.bytes() {
            // SAFETY: an `out` to port 0xE9 hands a byte to Xen's debug-port
            // emulation: it touches no memory, no stack and no flags, and in
            // an HVM/PVH guest no device sits behind that port.
            unsafe {
                core::arch::asm!(
                    "out dx, al",
                    in("dx") DEBUG_PORT,
                    in("al") byte,
                    options(nomem, nostack, preserves_flags)
                );
            }
        }
        Ok(())
    }
}
