//! `Bundle::load`: config.json bytes -> parsed, validated spec with its
//! seccomp filter compiled. Load only reads a bundle, so one scratch
//! bundle (with an empty rootfs/) per process is rewritten for every input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::PathBuf;
use std::sync::OnceLock;

fn bundle_dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("brig-fuzz-bundle-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("rootfs")).unwrap();
        dir
    })
}

fuzz_target!(|data: &[u8]| {
    let dir = bundle_dir();
    std::fs::write(dir.join("config.json"), data).unwrap();
    if let Ok(b) = brig::spec::Bundle::load(dir) {
        let _ = b.terminal();
        assert!(b.rootfs.is_dir(), "load accepted a rootfs that is not a directory");
    }
});
