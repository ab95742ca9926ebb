//! Release builds of brig lay out its functions in the order listed in
//! hack/brig.order (written by hack/order): the ones `create` and `run`
//! execute come first and together, so the kernel's 64 KiB fault-around
//! maps far less of the binary (peak RSS) with fewer faults (start-up time).
//! The linker is lld (rustc's default on x86_64 Linux); names the file lists
//! that no longer exist are skipped without a warning, so a stale file only
//! costs memory.

fn main() {
    let order = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("hack/brig.order");
    println!("cargo:rerun-if-changed={}", order.display());
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var("PROFILE").as_deref() == Ok("release") && order.exists() {
        println!(
            "cargo:rustc-link-arg-bin=brig=-Wl,--symbol-ordering-file={}",
            order.display()
        );
        println!("cargo:rustc-link-arg-bin=brig=-Wl,--no-warn-symbol-ordering");
    }
}
