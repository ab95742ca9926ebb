//! Docker's shell-word processing (`build::vars`). The first byte picks the
//! escape character; the rest is the word. A few variables are set, with
//! values that hold whitespace, quotes, `$` and escapes of their own.
#![no_main]

use brig::build::vars;
use libfuzzer_sys::fuzz_target;

fn lookup(name: &str) -> Option<String> {
    match name {
        "A" => Some("value".into()),
        "E" => Some(String::new()),
        "S" => Some(" two  words ".into()),
        "Q" => Some("'\"$A\\`".into()),
        "P" => Some("/usr/local/bin:/usr/bin".into()),
        _ => None,
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let Ok(word) = std::str::from_utf8(rest) else {
        return;
    };
    let escape = if sel & 1 == 0 { '\\' } else { '`' };
    let one = vars::expand(word, &lookup, escape);
    let many = vars::expand_words(word, &lookup, escape);
    // Both walk the same lexer: they fail on the same words.
    assert_eq!(one.is_ok(), many.is_ok(), "expand {one:?} vs expand_words {many:?}");
    if let Ok(words) = many {
        assert!(words.iter().all(|w| !w.is_empty()), "empty word in {words:?}");
    }
});
