//! Manifest and index JSON, platform strings, and choosing an index entry.
//! Input: a platform string (`os/arch[/variant]`) on the first line, then
//! the JSON document.
#![no_main]

use brig::image::layout::{self, Index, Manifest, Platform};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let split = data.iter().position(|&b| b == b'\n').unwrap_or(data.len());
    let (first, json) = (&data[..split], data.get(split + 1..).unwrap_or(&[]));
    let want = match std::str::from_utf8(first).ok().map(Platform::parse) {
        Some(Ok(p)) => {
            let shown = p.to_string();
            let again = Platform::parse(&shown)
                .unwrap_or_else(|e| panic!("{p:?} shown as {shown:?}, which fails: {e}"));
            assert_eq!(p, again);
            assert!(p.matches(&p));
            p
        }
        _ => Platform::host(),
    };
    if let Ok(m) = serde_json::from_slice::<Manifest>(json) {
        for d in std::iter::once(&m.config).chain(&m.layers) {
            let _ = brig::image::layer::Compression::from_media_type(&d.media_type);
            let _ = brig::image::reference::check_digest(&d.digest);
        }
    }
    if let Ok(index) = serde_json::from_slice::<Index>(json) {
        if let Some(d) = layout::pick_platform(&index, &want) {
            assert!(d.platform.as_ref().is_some_and(|p| want.matches(p)));
        }
    }
});
