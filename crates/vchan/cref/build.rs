//! Links Xen's own libxenvchan I/O code — the `io.o` member of Debian's
//! `libxenvchan.a` (libxen-dev), unchanged — with `csrc/stubs.c`, which
//! stands in for the event-channel and unmap calls it makes. There is no
//! fallback: without the library the build fails.

use std::env;
use std::path::PathBuf;
use std::process::Command;

fn main() {
    println!("cargo::rerun-if-changed=csrc/stubs.c");
    println!("cargo::rerun-if-env-changed=XEN_LIB_DIR");
    println!("cargo::rerun-if-env-changed=XEN_INCLUDE_DIR");
    let lib_dir = env::var_os("XEN_LIB_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/lib/x86_64-linux-gnu"));
    let include = env::var_os("XEN_INCLUDE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/include"));
    let archive = lib_dir.join("libxenvchan.a");
    if !archive.is_file() || !include.join("libxenvchan.h").is_file() {
        panic!(
            "\n\nxenpv-vchan-cref: {} or libxenvchan.h is missing. This crate links Xen's own \
             libxenvchan as the reference xenpv-vchan is tested against. Install libxen-dev, \
             or set XEN_LIB_DIR / XEN_INCLUDE_DIR.\n\n",
            archive.display()
        );
    }
    println!("cargo::rerun-if-changed={}", archive.display());
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR"));
    let status = Command::new("ar")
        .arg("x")
        .arg(&archive)
        .arg("io.o")
        .current_dir(&out)
        .status()
        .expect("running ar");
    assert!(status.success(), "ar x {} io.o failed", archive.display());
    // One archive with our stubs and Xen's io.o, so that the linker resolves
    // io.o's calls to the stubs (and never pulls in init.o).
    cc::Build::new()
        .file("csrc/stubs.c")
        .object(out.join("io.o"))
        .include(&include)
        .std("gnu11")
        .opt_level(2)
        .warnings(true)
        .extra_warnings(true)
        .warnings_into_errors(true)
        .compile("xenpv_vchan_cref");
}
