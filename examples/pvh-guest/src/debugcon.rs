//! Early output on I/O port 0xE9, the HVM debug port.
//!
//! Xen's emulation of the port buffers each line and prints it on its own
//! console as `(dN) line` when the hypervisor runs with `guest_loglvl=all`.
//! It works from the first instruction (no hypercall page, no memory shared
//! with anyone), so it carries the boot trace and every failure message.

use core::fmt;

/// The debug port as a [`fmt::Write`] sink; see [`dprintln!`](crate::dprintln).
pub struct DebugCon;

const DEBUG_PORT: u16 = 0xE9;

impl fmt::Write for DebugCon {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for byte in s.bytes() {
            // SAFETY: an `out` to port 0xE9 only hands a byte to Xen's
            // debug-port emulation: it touches no memory, no stack and no
            // flags (`nomem, nostack, preserves_flags`), and in a PVH guest
            // no device sits behind that port.
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

/// `println!` to the debug port; every line is prefixed with the guest's name
/// so it is easy to find among Xen's own messages.
#[macro_export]
macro_rules! dprintln {
    ($($arg:tt)*) => {{
        use core::fmt::Write as _;
        let _ = write!($crate::debugcon::DebugCon, "xenpv-pvh-guest: ");
        let _ = writeln!($crate::debugcon::DebugCon, $($arg)*);
    }};
}
