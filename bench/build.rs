//! Compiles B6's C peer (`csrc/flexring.c`) against Xen's own `io/ring.h`
//! (Debian's libxen-dev, or `XEN_INCLUDE_DIR`), as `xenpv-ring-cref` does
//! for B1's.

use std::env;
use std::path::PathBuf;

fn main() {
    println!("cargo::rerun-if-changed=csrc/flexring.c");
    println!("cargo::rerun-if-env-changed=XEN_INCLUDE_DIR");
    let include = env::var_os("XEN_INCLUDE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/include"));
    let header = include.join("xen/io/ring.h");
    if !header.is_file() {
        panic!(
            "\n\nxenpv-bench: Xen's C header {} is missing (B6 compiles the real \
             io/ring.h flex-ring macros). Install libxen-dev or set XEN_INCLUDE_DIR.\n\n",
            header.display()
        );
    }
    println!("cargo::rerun-if-changed={}", header.display());
    cc::Build::new()
        .file("csrc/flexring.c")
        .include(&include)
        .std("gnu11")
        .opt_level(2)
        .warnings(true)
        .extra_warnings(true)
        .warnings_into_errors(true)
        .compile("xenpv_bench_flexring");
}
