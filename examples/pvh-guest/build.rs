//! Link the guest as a freestanding, non-PIE ELF at the addresses of
//! `link.ld` (1 MiB physical): no C runtime, no libc, no dynamic section.
use std::path::PathBuf;

fn main() {
    let dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let script = dir.join("link.ld");
    println!("cargo:rerun-if-changed={}", script.display());
    // The host target compiles position-independent code; linking it without
    // -pie resolves every GOT access at link time, so Xen's ELF loader (which
    // applies no relocations) gets an image that runs where it is loaded.
    for arg in [
        "-nostartfiles",
        "-nostdlib",
        "-static",
        "-no-pie",
        "-Wl,--build-id=none",
        "-Wl,-z,max-page-size=4096",
        "-Wl,-z,norelro",
        "-Wl,-z,noexecstack",
    ] {
        println!("cargo:rustc-link-arg-bins={arg}");
    }
    println!("cargo:rustc-link-arg-bins=-Wl,-T,{}", script.display());
}
