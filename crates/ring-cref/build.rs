//! Compiles `csrc/cref.c` against Xen's own `io/ring.h`, `io/netif.h` and
//! `io/blkif.h`. There is no fallback: without the headers the build fails.

use std::env;
use std::path::PathBuf;

fn main() {
    println!("cargo::rerun-if-changed=csrc/cref.c");
    println!("cargo::rerun-if-env-changed=XEN_INCLUDE_DIR");

    // The directory that contains `xen/`, Debian's libxen-dev by default.
    let include = env::var_os("XEN_INCLUDE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/include"));
    for header in ["xen/io/ring.h", "xen/io/netif.h", "xen/io/blkif.h"] {
        let path = include.join(header);
        if !path.is_file() {
            panic!(
                "\n\nxenpv-ring-cref: Xen's C header {} is missing.\n\
                 This crate compiles the real io/ring.h macros as the reference the Rust\n\
                 ring is tested and benchmarked against; it never builds without them.\n\
                 Install them (Debian/Ubuntu: `apt-get install libxen-dev`), or set\n\
                 XEN_INCLUDE_DIR to the directory that contains `xen/io/ring.h`.\n\n",
                path.display()
            );
        }
        println!("cargo::rerun-if-changed={}", path.display());
    }

    cc::Build::new()
        .file("csrc/cref.c")
        .include(&include)
        .std("gnu11")
        .opt_level(2)
        .warnings(true)
        .extra_warnings(true)
        .warnings_into_errors(true)
        .compile("xenpv_ring_cref");
}
