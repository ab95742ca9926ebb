//! Docker's shell-word processing: variable substitution, quote removal
//! and escapes, as BuildKit's `shell.Lex` does it for the instructions that
//! take variables (FROM, ADD, COPY, ENV, EXPOSE, LABEL, STOPSIGNAL, USER,
//! VOLUME, WORKDIR, ONBUILD and ARG defaults).
//!
//! Quoting follows sh, not a JSON or Go string: single quotes keep
//! everything literal, double quotes still substitute `$` and let the escape
//! character protect `"`, `$` and itself; outside quotes the escape character
//! makes any next character literal. Unset variables become "".
//!
//! Supported forms: `$V`, `${V}`, `${V:-word}`, `${V-word}`, `${V:+word}`,
//! `${V+word}`, `${V:?msg}`, `${V?msg}`, `${V#pat}`, `${V##pat}`,
//! `${V%pat}`, `${V%%pat}`, `${V/pat/repl}`, `${V//pat/repl}`. The word in
//! a modifier is itself processed (quotes, escapes, nested variables).

use crate::{Error, Result};

/// Expands one word (quotes removed, variables substituted, whitespace kept).
pub fn expand(word: &str, lookup: &dyn Fn(&str) -> Option<String>, escape: char) -> Result<String> {
    let mut lex = Lex::new(word, lookup, escape);
    let (s, _) = lex.process_stop_on(None)?;
    Ok(s)
}

/// Same, but splits into words on unquoted, unescaped whitespace.
/// Whitespace coming from a variable's value splits too, as in sh and in
/// Docker's `ProcessWords`; empty words are dropped.
pub fn expand_words(
    s: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    escape: char,
) -> Result<Vec<String>> {
    let mut lex = Lex::new(s, lookup, escape);
    let (_, words) = lex.process_stop_on(None)?;
    Ok(words.finish())
}

/// Splits a line into shell words the way BuildKit's heredoc detection
/// does: quotes and escapes are kept in the words (so `"<<EOF"` is not a
/// heredoc marker), nothing is substituted. Escape is always `\` there, as
/// in BuildKit.
pub(crate) fn raw_words(s: &str) -> Result<Vec<String>> {
    let none = |_: &str| None;
    let mut lex = Lex::new(s, &none, '\\');
    lex.raw_quotes = true;
    lex.raw_escapes = true;
    let (_, words) = lex.process_stop_on(None)?;
    Ok(words.finish())
}

/// Splits without substitution, `$NAME` left as written; `raw_quotes`
/// chooses whether quote characters stay in the words. Heredoc delimiter
/// parsing compares both results to learn whether the name was quoted.
pub(crate) fn words_unexpanded(s: &str, raw_quotes: bool) -> Result<Vec<String>> {
    let none = |_: &str| None;
    let mut lex = Lex::new(s, &none, '\\');
    lex.raw_quotes = raw_quotes;
    lex.skip_unset = true;
    let (_, words) = lex.process_stop_on(None)?;
    Ok(words.finish())
}

fn err(msg: impl Into<String>) -> Error {
    Error::Other(msg.into())
}

/// Word splitting state, as BuildKit's `wordsStruct`: characters from
/// variables split on whitespace, quoted or escaped ones never do.
#[derive(Default)]
struct Words {
    word: String,
    words: Vec<String>,
    in_word: bool,
}

impl Words {
    fn add_char(&mut self, ch: char) {
        if ch.is_whitespace() {
            if self.in_word && !self.word.is_empty() {
                self.words.push(std::mem::take(&mut self.word));
                self.in_word = false;
            }
        } else {
            self.add_raw_char(ch);
        }
    }

    fn add_raw_char(&mut self, ch: char) {
        self.word.push(ch);
        self.in_word = true;
    }

    fn add_string(&mut self, s: &str) {
        for ch in s.chars() {
            self.add_char(ch);
        }
    }

    fn add_raw_string(&mut self, s: &str) {
        self.word.push_str(s);
        self.in_word = true;
    }

    fn finish(mut self) -> Vec<String> {
        if !self.word.is_empty() {
            self.words.push(std::mem::take(&mut self.word));
        }
        self.words
    }
}

struct Lex<'a> {
    chars: Vec<char>,
    pos: usize,
    escape: char,
    /// Keep quote characters in the output (heredoc detection).
    raw_quotes: bool,
    /// Keep escape characters in the output (heredoc detection).
    raw_escapes: bool,
    /// Leave `$NAME` as written when NAME is unset (heredoc detection).
    skip_unset: bool,
    lookup: &'a dyn Fn(&str) -> Option<String>,
}

impl<'a> Lex<'a> {
    fn new(s: &str, lookup: &'a dyn Fn(&str) -> Option<String>, escape: char) -> Self {
        Lex {
            chars: s.chars().collect(),
            pos: 0,
            escape,
            raw_quotes: false,
            raw_escapes: false,
            skip_unset: false,
            lookup,
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }

    /// Processes up to `stop` (consumed) or the end of input; a missing
    /// `stop` is an error, as an unclosed `${` is.
    fn process_stop_on(&mut self, stop: Option<char>) -> Result<(String, Words)> {
        let mut result = String::new();
        let mut words = Words::default();
        while let Some(ch) = self.peek() {
            if Some(ch) == stop {
                self.pos += 1;
                return Ok((result, words));
            }
            match ch {
                '\'' => {
                    let s = self.single_quote()?;
                    result.push_str(&s);
                    words.add_raw_string(&s);
                }
                '"' => {
                    let s = self.double_quote()?;
                    result.push_str(&s);
                    words.add_raw_string(&s);
                }
                '$' => {
                    let s = self.dollar()?;
                    result.push_str(&s);
                    words.add_string(&s);
                }
                _ => {
                    self.pos += 1;
                    if ch == self.escape {
                        if self.raw_escapes {
                            words.add_raw_char(ch);
                            result.push(ch);
                        }
                        // A trailing escape character is dropped, as in
                        // BuildKit; otherwise the next character is literal.
                        let Some(next) = self.next() else { break };
                        words.add_raw_char(next);
                        result.push(next);
                    } else {
                        words.add_char(ch);
                        result.push(ch);
                    }
                }
            }
        }
        if let Some(stop) = stop {
            return Err(err(format!(
                "unexpected end of statement while looking for matching {stop}"
            )));
        }
        Ok((result, words))
    }

    fn single_quote(&mut self) -> Result<String> {
        let mut out = String::new();
        self.pos += 1;
        if self.raw_quotes {
            out.push('\'');
        }
        loop {
            match self.next() {
                None => {
                    return Err(err(
                        "unexpected end of statement while looking for matching single-quote",
                    ))
                }
                Some('\'') => {
                    if self.raw_quotes {
                        out.push('\'');
                    }
                    return Ok(out);
                }
                Some(c) => out.push(c),
            }
        }
    }

    fn double_quote(&mut self) -> Result<String> {
        let mut out = String::new();
        self.pos += 1;
        if self.raw_quotes {
            out.push('"');
        }
        loop {
            match self.peek() {
                None => {
                    return Err(err(
                        "unexpected end of statement while looking for matching double-quote",
                    ))
                }
                Some('"') => {
                    self.pos += 1;
                    if self.raw_quotes {
                        out.push('"');
                    }
                    return Ok(out);
                }
                Some('$') => {
                    let v = self.dollar()?;
                    out.push_str(&v);
                }
                Some(mut c) => {
                    self.pos += 1;
                    if c == self.escape {
                        if self.raw_escapes {
                            out.push(c);
                        }
                        match self.peek() {
                            // The loop reports the missing quote next turn.
                            None => continue,
                            // Only these are escapable inside double quotes;
                            // any other escape character stays, as in sh.
                            Some(n) if n == '"' || n == '$' || n == self.escape => {
                                c = n;
                                self.pos += 1;
                            }
                            Some(_) => {}
                        }
                    }
                    out.push(c);
                }
            }
        }
    }

    fn name(&mut self) -> String {
        let mut name = String::new();
        while let Some(ch) = self.peek() {
            if name.is_empty() && ch.is_ascii_digit() {
                // Positional parameters: all the digits, never letters.
                while let Some(d) = self.peek().filter(char::is_ascii_digit) {
                    name.push(d);
                    self.pos += 1;
                }
                return name;
            }
            if name.is_empty() && matches!(ch, '@' | '*' | '#' | '?' | '-' | '$' | '!' | '0') {
                self.pos += 1;
                return ch.to_string();
            }
            if !(ch.is_alphanumeric() || ch == '_') {
                break;
            }
            name.push(ch);
            self.pos += 1;
        }
        name
    }

    fn get(&self, name: &str) -> Option<String> {
        (self.lookup)(name)
    }

    /// A modifier's word: processed up to the closing brace, with the error
    /// BuildKit gives when the input ends first.
    fn word_until(&mut self, stop: char) -> Result<String> {
        match self.process_stop_on(Some(stop)) {
            Ok((w, _)) => Ok(w),
            Err(_) if self.peek().is_none() => Err(err("syntax error: missing '}'")),
            Err(e) => Err(e),
        }
    }

    fn dollar(&mut self) -> Result<String> {
        self.pos += 1;
        if self.peek() != Some('{') {
            let name = self.name();
            if name.is_empty() {
                return Ok("$".into());
            }
            return Ok(match self.get(&name) {
                Some(v) => v,
                None if self.skip_unset => format!("${name}"),
                None => String::new(),
            });
        }
        self.pos += 1;
        match self.peek() {
            None => return Err(err("syntax error: missing '}'")),
            Some('{' | '}' | ':') => return Err(err("syntax error: bad substitution")),
            Some(_) => {}
        }
        let name = self.name();
        let Some(ch) = self.next() else {
            return Err(err("syntax error: missing '}'"));
        };
        let value = self.get(&name);
        match ch {
            '}' => Ok(match value {
                Some(v) => v,
                None if self.skip_unset => format!("${{{name}}}"),
                None => String::new(),
            }),
            ':' => {
                let Some(modifier) = self.next() else {
                    return Err(err("syntax error: missing '}'"));
                };
                let word = self.word_until('}')?;
                let set_nonempty = value.as_deref().is_some_and(|v| !v.is_empty());
                match modifier {
                    '-' => Ok(if set_nonempty {
                        value.unwrap_or_default()
                    } else {
                        word
                    }),
                    '+' => Ok(if set_nonempty { word } else { String::new() }),
                    '?' => match value {
                        Some(v) if !v.is_empty() => Ok(v),
                        Some(_) => Err(unset_error(&name, &word, "is not allowed to be empty")),
                        None => Err(unset_error(&name, &word, "is not allowed to be unset")),
                    },
                    m => Err(err(format!("unsupported modifier ({m}) in substitution"))),
                }
            }
            '-' => {
                let word = self.word_until('}')?;
                Ok(value.unwrap_or(word))
            }
            '+' => {
                let word = self.word_until('}')?;
                Ok(if value.is_some() { word } else { String::new() })
            }
            '?' => {
                let word = self.word_until('}')?;
                value.ok_or_else(|| unset_error(&name, &word, "is not allowed to be unset"))
            }
            '#' | '%' => {
                let longest = self.peek() == Some(ch);
                if longest {
                    self.pos += 1;
                }
                let pat = self.word_until('}')?;
                let v = value.unwrap_or_default();
                Ok(trim_pattern(&v, &pat, ch == '#', longest))
            }
            '/' => {
                let all = self.peek() == Some('/');
                if all {
                    self.pos += 1;
                }
                let pat = self.word_until('/')?;
                let repl = self.word_until('}')?;
                let v = value.unwrap_or_default();
                Ok(replace_pattern(&v, &pat, &repl, all))
            }
            c => Err(err(format!("unsupported modifier ({c}) in substitution"))),
        }
    }
}

fn unset_error(name: &str, word: &str, default: &str) -> Error {
    let msg = if word.is_empty() { default } else { word };
    err(format!("{name}: {msg}"))
}

/// `${V#pat}` / `${V##pat}` (from the start) and `${V%pat}` / `${V%%pat}`
/// (from the end): the shortest or longest match is removed.
fn trim_pattern(v: &str, pat: &str, from_start: bool, longest: bool) -> String {
    let Some(p) = crate::build::ignore::ShellPattern::new(pat) else {
        return v.to_string();
    };
    // Char boundaries, so slicing never splits a UTF-8 sequence.
    let mut cuts: Vec<usize> = v.char_indices().map(|(i, _)| i).collect();
    cuts.push(v.len());
    if from_start {
        let mut it: Box<dyn Iterator<Item = &usize>> = if longest {
            Box::new(cuts.iter().rev())
        } else {
            Box::new(cuts.iter())
        };
        it.find(|&&k| p.matches(&v[..k]))
            .map(|&k| v[k..].to_string())
            .unwrap_or_else(|| v.to_string())
    } else {
        let mut it: Box<dyn Iterator<Item = &usize>> = if longest {
            Box::new(cuts.iter())
        } else {
            Box::new(cuts.iter().rev())
        };
        it.find(|&&k| p.matches(&v[k..]))
            .map(|&k| v[..k].to_string())
            .unwrap_or_else(|| v.to_string())
    }
}

/// `${V/pat/repl}` replaces the leftmost longest match, `${V//pat/repl}`
/// every non-overlapping one.
fn replace_pattern(v: &str, pat: &str, repl: &str, all: bool) -> String {
    let Some(p) = crate::build::ignore::ShellPattern::new(pat) else {
        return v.to_string();
    };
    let mut cuts: Vec<usize> = v.char_indices().map(|(i, _)| i).collect();
    cuts.push(v.len());
    let mut out = String::new();
    let mut i = 0; // index into cuts
    let mut copied = 0; // byte offset already copied to out
    while i < cuts.len() {
        let start = cuts[i];
        // Longest non-empty match starting here: an empty match would
        // replace nothing useful and never advance.
        let end = cuts[i + 1..]
            .iter()
            .rev()
            .find(|&&e| p.matches(&v[start..e]))
            .copied();
        match end {
            Some(e) => {
                out.push_str(&v[copied..start]);
                out.push_str(repl);
                copied = e;
                i = cuts.iter().position(|&c| c == e).unwrap_or(cuts.len());
                if !all {
                    break;
                }
            }
            None => i += 1,
        }
    }
    out.push_str(&v[copied..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn ex(word: &str, vars: &HashMap<String, String>) -> Result<String> {
        let look = |k: &str| vars.get(k).cloned();
        expand(word, &look, '\\')
    }

    #[test]
    fn documented_examples() {
        let vars = env(&[("FOO", "/bar"), ("abc", "hello"), ("empty", "")]);
        let table: &[(&str, &str)] = &[
            ("${FOO}", "/bar"),
            ("$FOO", "/bar"),
            (r"\$FOO", "$FOO"),
            (r"\${FOO}", "${FOO}"),
            ("${FOO}_bar", "/bar_bar"),
            ("$FOO_bar", ""),
            ("${FOO:-word}", "/bar"),
            ("${nope:-word}", "word"),
            ("${empty:-word}", "word"),
            ("${FOO:+word}", "word"),
            ("${nope:+word}", ""),
            ("${empty:+word}", ""),
            ("${nope:-$FOO/x}", "/bar/x"),
            ("${nope:-${abc}}", "hello"),
            ("${empty-word}", ""),
            ("${nope-word}", "word"),
            ("${empty+word}", "word"),
            ("${nope+word}", ""),
            ("'$FOO'", "$FOO"),
            ("\"$FOO\"", "/bar"),
            ("\"a b\"", "a b"),
            ("a\\ b", "a b"),
            ("a b", "a b"),
            ("\"\\$FOO\"", "$FOO"),
            ("\"a\\\"b\"", "a\"b"),
            ("\"a\\nb\"", "a\\nb"),
            ("a\\nb", "anb"),
            ("'a\\b'", "a\\b"),
            ("$", "$"),
            ("a$", "a$"),
            ("$1", ""),
            ("${nope}", ""),
            ("trailing\\", "trailing"),
            ("'it'\\''s'", "it's"),
        ];
        for (input, want) in table {
            assert_eq!(ex(input, &vars).unwrap(), *want, "input {input:?}");
        }
    }

    #[test]
    fn patterns() {
        let vars = env(&[("path", "/usr/local/bin/tool.tar.gz"), ("s", "aXbXc")]);
        let table: &[(&str, &str)] = &[
            ("${path#*/}", "usr/local/bin/tool.tar.gz"),
            ("${path##*/}", "tool.tar.gz"),
            ("${path%.*}", "/usr/local/bin/tool.tar"),
            ("${path%%.*}", "/usr/local/bin/tool"),
            ("${path#nomatch}", "/usr/local/bin/tool.tar.gz"),
            ("${s/X/-}", "a-bXc"),
            ("${s//X/-}", "a-b-c"),
            ("${s/X*/-}", "a-"),
        ];
        for (input, want) in table {
            assert_eq!(ex(input, &vars).unwrap(), *want, "input {input:?}");
        }
    }

    #[test]
    fn errors() {
        let vars = env(&[("empty", "")]);
        for bad in [
            "${", "${FOO", "${}", "${:x}", "'abc", "\"abc", "${x:-abc", "${x:%y}",
        ] {
            assert!(ex(bad, &vars).is_err(), "{bad:?} should fail");
        }
        let e = ex("${nope:?must be set}", &vars).unwrap_err().to_string();
        assert_eq!(e, "nope: must be set");
        let e = ex("${empty:?}", &vars).unwrap_err().to_string();
        assert_eq!(e, "empty: is not allowed to be empty");
        assert_eq!(ex("${empty?}", &vars).unwrap(), "");
        assert!(ex("${nope?}", &vars).is_err());
    }

    #[test]
    fn backtick_escape() {
        let vars = env(&[("FOO", "x")]);
        let look = |k: &str| vars.get(k).cloned();
        assert_eq!(expand("`$FOO", &look, '`').unwrap(), "$FOO");
        assert_eq!(expand(r"c:\dir\$FOO", &look, '`').unwrap(), r"c:\dir\x");
        assert_eq!(expand("\"a`\"b\"", &look, '`').unwrap(), "a\"b");
    }

    #[test]
    fn words() {
        let vars = env(&[("A", "1 2"), ("B", "x")]);
        let look = |k: &str| vars.get(k).cloned();
        let w = |s: &str| expand_words(s, &look, '\\').unwrap();
        assert_eq!(w("a  b\tc"), ["a", "b", "c"]);
        assert_eq!(w("$A $B"), ["1", "2", "x"]);
        assert_eq!(w("\"$A\" $B"), ["1 2", "x"]);
        assert_eq!(w("'a b' c\\ d"), ["a b", "c d"]);
        assert_eq!(w("pre$A"), ["pre1", "2"]);
        assert!(w("   ").is_empty());
        assert!(w("\"\"").is_empty());
    }

    #[test]
    fn raw_words_keep_quotes() {
        assert_eq!(
            raw_words(r#"RUN cat <<"EOF" > 'a b' x\ y"#).unwrap(),
            ["RUN", "cat", "<<\"EOF\"", ">", "'a b'", r"x\ y"]
        );
        assert_eq!(words_unexpanded("$X'Y'", false).unwrap(), ["$XY"]);
        assert_eq!(words_unexpanded("$X'Y'", true).unwrap(), ["$X'Y'"]);
    }
}
