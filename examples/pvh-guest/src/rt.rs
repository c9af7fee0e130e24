//! The panic handler. The other symbols a freestanding binary must supply
//! (`mem*`, the unwinding personality) come from `examples/freestanding/rt.rs`.

use xenpv_sys::sched::SHUTDOWN_CRASH;

#[panic_handler]
fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
    crate::dprintln!("FAIL panic: {info}");
    crate::xen::shutdown_without_platform(SHUTDOWN_CRASH);
    crate::halt()
}
