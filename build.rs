//! Release builds of brig lay out its functions in the order listed in
//! hack/brig.order (written by hack/order): the ones `create` and `run`
//! execute come first and together, so the kernel's fault-around maps far
//! less of the binary (peak RSS) with fewer faults (start-up time).
//! Names the file lists that no longer exist are skipped without a warning,
//! so a stale file only costs memory. The flag is lld's, which rustc links
//! x86_64 Linux binaries with since 1.90; any other toolchain or target
//! links without it.

fn main() {
    let order = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("hack/brig.order");
    println!("cargo:rerun-if-changed={}", order.display());
    println!("cargo:rerun-if-changed=build.rs");
    commit();
    // brig starts at src/linux/early_reexec.rs's brig_entry, which then
    // jumps to the C library's _start.
    if std::env::var("TARGET").as_deref() == Ok("x86_64-unknown-linux-gnu") {
        println!("cargo:rustc-link-arg-bin=brig=-Wl,--entry=brig_entry");
    }
    let release = std::env::var("PROFILE").as_deref() == Ok("release");
    if release && order.exists() && links_with_lld() {
        println!(
            "cargo:rustc-link-arg-bin=brig=-Wl,--symbol-ordering-file={}",
            order.display()
        );
        println!("cargo:rustc-link-arg-bin=brig=-Wl,--no-warn-symbol-ordering");
    }
}

/// rustc 1.90 or later, for x86_64-unknown-linux-gnu: lld is the default linker.
fn links_with_lld() -> bool {
    if std::env::var("TARGET").as_deref() != Ok("x86_64-unknown-linux-gnu") {
        return false;
    }
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let Ok(out) = std::process::Command::new(rustc).arg("--version").output() else {
        return false;
    };
    // "rustc 1.95.0 (59807616e 2026-04-14)"
    let text = String::from_utf8_lossy(&out.stdout);
    let mut parts = text
        .split_whitespace()
        .nth(1)
        .unwrap_or("")
        .split(['.', '-'])
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    major > 1 || (major == 1 && minor >= 90)
}

/// The commit `brig --version` names, as runc's does: `git rev-parse HEAD`
/// where the source is a git checkout, else "unknown".
fn commit() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    for f in [".git/HEAD", ".git/refs/heads", ".git/packed-refs"] {
        if root.join(f).exists() {
            println!("cargo:rerun-if-changed={}", root.join(f).display());
        }
    }
    let hash = std::process::Command::new("git")
        .args(["rev-parse", "HEAD"])
        .current_dir(root)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=BRIG_COMMIT={hash}");
}
