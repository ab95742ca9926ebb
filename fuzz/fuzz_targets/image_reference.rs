//! Image references: parse, and the normalised form parses back to itself.
#![no_main]

use brig::image::reference::{self, Reference};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let _ = reference::valid_tag(s);
    let _ = reference::check_digest(s);
    let Ok(r) = Reference::parse(s) else {
        return;
    };
    assert!(r.tag.is_some() || r.digest.is_some(), "{s:?} -> {r:?}");
    let _ = r.reference();
    let _ = r.repo_name();
    let shown = r.to_string();
    let again = Reference::parse(&shown)
        .unwrap_or_else(|e| panic!("{s:?} -> {r:?} shown as {shown:?}, which fails: {e}"));
    assert_eq!(r, again, "{s:?} shown as {shown:?}");
});
