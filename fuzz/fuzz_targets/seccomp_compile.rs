//! The OCI `linux.seccomp` object -> BPF translation, fed JSON for the
//! object alone (what a config.json's linux.seccomp holds).
#![no_main]

use libfuzzer_sys::fuzz_target;
use oci_spec::runtime::LinuxSeccomp;

fuzz_target!(|data: &[u8]| {
    let Ok(profile) = serde_json::from_slice::<LinuxSeccomp>(data) else {
        return;
    };
    if let Err(e) = brig::linux::seccomp::compile(&profile) {
        // Every rejection must render as the one-line message users see.
        let msg = e.to_string();
        assert!(!msg.is_empty());
    }
});
