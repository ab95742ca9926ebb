//! `.dockerignore` parsing and matching. Input: the ignore file, then a
//! NUL, then paths to test, one per line.
#![no_main]

use brig::build::ignore::{self, Ignore};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (patterns, paths) = text.split_once('\0').unwrap_or((text, "a/b/c"));
    let ig = Ignore::parse(patterns);
    for path in paths.lines().take(64) {
        let _ = ig.excluded(path);
        let _ = ig.may_include_under(path);
        for pat in patterns.lines().take(16) {
            let _ = ignore::glob_match(pat, path);
        }
    }
});
