//! Link freestanding: no C runtime, no libc, static.
fn main() {
    for arg in ["-nostartfiles", "-nostdlib", "-static"] {
        println!("cargo:rustc-link-arg-bins={arg}");
    }
}
