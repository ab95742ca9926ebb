//! `.dockerignore` and glob matching, with Docker's semantics
//! (moby/patternmatcher): Go `filepath.Match` patterns plus `**`, paths
//! cleaned like Go's `filepath.Clean`, `!` exceptions, the last matching
//! pattern wins, and a path is excluded when one of its parent directories
//! is.

/// One element of a compiled pattern.
#[derive(Debug, Clone)]
enum Tok {
    Lit(char),
    /// `?`: one character (not `/` unless the pattern is a shell pattern).
    Any,
    /// `*`: any run of characters (without `/` unless shell pattern).
    Star,
    /// `[...]`: as Go, a class may match `/`.
    Class {
        neg: bool,
        ranges: Vec<(char, char)>,
    },
    /// `**` at the end of a .dockerignore pattern: anything, `/` included.
    AnyAll,
    /// `**` elsewhere in a .dockerignore pattern: zero or more leading
    /// directories, i.e. the regexp `(.*/)?` patternmatcher uses.
    DirPrefix,
}

#[derive(Debug, Clone)]
struct Matcher {
    toks: Vec<Tok>,
    /// Whether `*` and `?` stop at `/` (paths) or not (sh patterns).
    slash_special: bool,
}

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// Go filepath.Match.
    Glob,
    /// filepath.Match plus `**` (.dockerignore).
    Ignore,
    /// sh pattern for `${V#pat}` and friends.
    Shell,
}

/// Parses a class body after `[`; returns the token and the index after
/// `]`, or None for a malformed class (Go's ErrBadPattern).
fn parse_class(p: &[char], mut i: usize) -> Option<(Tok, usize)> {
    let mut neg = false;
    if p.get(i) == Some(&'^') {
        neg = true;
        i += 1;
    }
    let mut ranges = Vec::new();
    loop {
        let c = *p.get(i)?;
        if c == ']' && !ranges.is_empty() {
            return Some((Tok::Class { neg, ranges }, i + 1));
        }
        let (lo, ni) = class_char(p, i)?;
        i = ni;
        let mut hi = lo;
        if p.get(i) == Some(&'-') {
            let (h, ni) = class_char(p, i + 1)?;
            hi = h;
            i = ni;
        }
        ranges.push((lo, hi));
    }
}

/// Go's getEsc: one possibly escaped class character; an unescaped `-` or
/// `]` here is malformed.
fn class_char(p: &[char], i: usize) -> Option<(char, usize)> {
    match *p.get(i)? {
        '-' | ']' => None,
        '\\' => Some((*p.get(i + 1)?, i + 2)),
        c => Some((c, i + 1)),
    }
}

fn compile(pattern: &str, mode: Mode) -> Option<Matcher> {
    let p: Vec<char> = pattern.chars().collect();
    let mut toks = Vec::new();
    let mut i = 0;
    while i < p.len() {
        let c = p[i];
        i += 1;
        match c {
            '*' if mode == Mode::Ignore && p.get(i) == Some(&'*') => {
                i += 1;
                // "**/" is treated as "**": the slash is part of it.
                if p.get(i) == Some(&'/') {
                    i += 1;
                }
                toks.push(if i == p.len() {
                    Tok::AnyAll
                } else {
                    Tok::DirPrefix
                });
            }
            '*' => toks.push(Tok::Star),
            '?' => toks.push(Tok::Any),
            '[' => {
                let (t, ni) = parse_class(&p, i)?;
                toks.push(t);
                i = ni;
            }
            '\\' => {
                // Go rejects a trailing backslash; so does Docker for
                // .dockerignore (it validates with filepath.Match).
                let n = *p.get(i)?;
                toks.push(Tok::Lit(n));
                i += 1;
            }
            c => toks.push(Tok::Lit(c)),
        }
    }
    Some(Matcher {
        toks,
        slash_special: mode != Mode::Shell,
    })
}

impl Matcher {
    fn matches(&self, name: &str) -> bool {
        let s: Vec<char> = name.chars().collect();
        let (n, m) = (self.toks.len(), s.len());
        // dp[j] for toks[i..] against s[j..], computed from the last token
        // back: linear in pattern x name, no exponential backtracking.
        let mut next = vec![false; m + 1];
        next[m] = true;
        for i in (0..n).rev() {
            let mut cur = vec![false; m + 1];
            let plain = |ch: char| !(self.slash_special && ch == '/');
            match &self.toks[i] {
                Tok::Star | Tok::AnyAll => {
                    let any_slash = matches!(self.toks[i], Tok::AnyAll) || !self.slash_special;
                    cur[m] = next[m];
                    for j in (0..m).rev() {
                        cur[j] = next[j] || ((any_slash || s[j] != '/') && cur[j + 1]);
                    }
                }
                Tok::DirPrefix => {
                    // Some k >= j with s[k] == '/' and the rest matching
                    // after it, or nothing consumed at all.
                    let mut later = false;
                    cur[m] = next[m];
                    for j in (0..m).rev() {
                        later = later || (s[j] == '/' && next[j + 1]);
                        cur[j] = next[j] || later;
                    }
                }
                t => {
                    for j in 0..m {
                        let ch = s[j];
                        let ok = match t {
                            Tok::Lit(c) => *c == ch,
                            Tok::Any => plain(ch),
                            Tok::Class { neg, ranges } => {
                                ranges.iter().any(|&(lo, hi)| lo <= ch && ch <= hi) != *neg
                            }
                            _ => false,
                        };
                        cur[j] = ok && next[j + 1];
                    }
                }
            }
            next = cur;
        }
        next[0]
    }
}

/// Glob matching used for COPY sources too: Go's filepath.Match semantics
/// (`*`, `?`, `[a-z]`, `[^a]`, `\` escape); `*` and `?` do not match `/`.
/// A malformed pattern matches nothing (Go returns ErrBadPattern).
pub fn glob_match(pattern: &str, name: &str) -> bool {
    compile(pattern, Mode::Glob).is_some_and(|m| m.matches(name))
}

/// An sh pattern (`*` and `?` match `/` too), for `${V#pattern}` etc.
pub(crate) struct ShellPattern(Matcher);

impl ShellPattern {
    pub(crate) fn new(pattern: &str) -> Option<Self> {
        compile(pattern, Mode::Shell).map(ShellPattern)
    }

    pub(crate) fn matches(&self, s: &str) -> bool {
        self.0.matches(s)
    }
}

/// Go's filepath.Clean for '/'-separated paths.
fn clean(path: &str) -> String {
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for seg in path.split('/') {
        match seg {
            "" | "." => {}
            ".." => match parts.last() {
                Some(&last) if last != ".." => {
                    parts.pop();
                }
                // `/..` is `/`; a relative path keeps its leading `..`s.
                _ if rooted => {}
                _ => parts.push(".."),
            },
            s => parts.push(s),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".into(),
        (false, false) => joined,
    }
}

#[derive(Debug, Clone)]
struct Pattern {
    exclusion: bool,
    text: String,
    matcher: Matcher,
}

/// A parsed `.dockerignore`.
#[derive(Debug, Clone, Default)]
pub struct Ignore {
    patterns: Vec<Pattern>,
}

impl Ignore {
    /// No pattern: nothing is left out.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Lines: comments (`#` in the first column), blank lines, patterns per
    /// Go filepath.Match plus `**` (any number of directories), leading and
    /// trailing slashes and `./` cleaned, `!` exceptions; the last matching
    /// pattern wins. Malformed patterns (a bad `[` class, a trailing `\`, a
    /// lone `!`), which make Docker refuse the build, are skipped.
    pub fn parse(text: &str) -> Ignore {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut patterns = Vec::new();
        for line in text.lines() {
            // Docker checks for `#` before trimming: " #x" is a pattern.
            if line.starts_with('#') {
                continue;
            }
            let mut p = line.trim();
            if p.is_empty() {
                continue;
            }
            let exclusion = p.starts_with('!');
            if exclusion {
                p = p[1..].trim();
            }
            if p.is_empty() {
                continue;
            }
            let mut p = clean(p);
            if p.len() > 1 && p.starts_with('/') {
                p.remove(0);
            }
            // Docker validates with filepath.Match before adding `**`.
            if compile(&p, Mode::Glob).is_none() {
                continue;
            }
            if let Some(matcher) = compile(&p, Mode::Ignore) {
                patterns.push(Pattern {
                    exclusion,
                    text: p,
                    matcher,
                });
            }
        }
        Ignore { patterns }
    }

    /// Whether `rel` (a context-relative path with '/' separators, no
    /// leading './') is excluded. A path is also excluded if one of its
    /// parent dirs matches a pattern (Docker semantics), unless an exception
    /// re-includes it.
    pub fn excluded(&self, rel: &str) -> bool {
        let file = clean(rel.trim_start_matches('/'));
        let parents: Vec<&str> = match file.rfind('/') {
            Some(i) => file[..i].split('/').collect(),
            None => Vec::new(),
        };
        let mut matched = false;
        for p in &self.patterns {
            // Only a pattern that could flip the answer is worth testing.
            if p.exclusion != matched {
                continue;
            }
            let mut m = p.matcher.matches(&file);
            if !m {
                m = (1..=parents.len()).any(|i| p.matcher.matches(&parents[..i].join("/")));
            }
            if m {
                matched = !p.exclusion;
            }
        }
        matched
    }

    /// Whether some `!` exception could re-include something under the
    /// excluded directory `rel` (so a walker must still descend into it).
    /// Conservative: true whenever an exception's leading components are
    /// compatible with `rel`, or it has a `**` before they diverge.
    pub fn may_include_under(&self, rel: &str) -> bool {
        let dir = clean(rel.trim_start_matches('/'));
        let dir_segs: Vec<&str> = dir.split('/').collect();
        self.patterns.iter().filter(|p| p.exclusion).any(|p| {
            for (i, pseg) in p.text.split('/').enumerate() {
                if pseg.contains("**") {
                    return true;
                }
                let Some(dseg) = dir_segs.get(i) else {
                    // The exception goes deeper than `dir` and agrees so far.
                    return true;
                };
                if !glob_match(pseg, dseg) {
                    return false;
                }
            }
            // It matches `dir` or one of its parents: everything under
            // `dir` is re-included.
            true
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_glob() {
        let yes: &[(&str, &str)] = &[
            ("abc", "abc"),
            ("*", "abc"),
            ("*c", "abc"),
            ("a*", "a"),
            ("a*/b", "abc/b"),
            ("a*b*c*d*e*/f", "axbxcxdxe/f"),
            ("a*b*c*d*e*/f", "axbxcxdxexxx/f"),
            ("ab[c]", "abc"),
            ("ab[b-d]", "abc"),
            ("ab[^c]", "abd"),
            ("ab[^b-d]", "abe"),
            ("a\\*b", "a*b"),
            ("a?b", "a☺b"),
            ("a[^a]b", "a☺b"),
            ("[\\]a]", "]"),
            ("[\\-]", "-"),
            ("[x\\-]", "-"),
            ("*x", "xxx"),
        ];
        for (p, n) in yes {
            assert!(glob_match(p, n), "{p:?} should match {n:?}");
        }
        let no: &[(&str, &str)] = &[
            ("abc", "abd"),
            ("*c", "abcd"),
            ("a*", "ab/c"),
            ("a*/b", "a/c/b"),
            ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f"),
            ("a*b*c*d*e*/f", "axbxcxdxexxx/fff"),
            ("ab[d]", "abc"),
            ("ab[^c]", "abc"),
            ("a?b", "a/b"),
            ("a*b", "a/b"),
            ("a\\*b", "ab"),
            ("[]a]", "]"),
            ("[-]", "-"),
            ("[x-]", "x"),
            ("[", "a"),
            ("[^", "a"),
            ("a[", "a"),
            ("*x", "xxx/x"),
            ("ab\\", "ab\\"),
            ("[a-b-d]", "-"),
        ];
        for (p, n) in no {
            assert!(!glob_match(p, n), "{p:?} should not match {n:?}");
        }
    }

    #[test]
    fn docs_temp_examples() {
        let ig = Ignore::parse("# comment\n*/temp*\n*/*/temp*\ntemp?\n");
        assert!(ig.excluded("somedir/temporary.txt"));
        assert!(ig.excluded("somedir/temp"));
        assert!(ig.excluded("somedir/temp/inner/file"));
        assert!(ig.excluded("somedir/subdir/temporary.txt"));
        assert!(ig.excluded("tempa"));
        assert!(ig.excluded("tempb"));
        assert!(!ig.excluded("temp"));
        assert!(!ig.excluded("temporary.txt"));
        assert!(!ig.excluded("a/b/c/temp"));
        assert!(!ig.excluded("# comment"));
    }

    #[test]
    fn double_star() {
        let ig = Ignore::parse("**/*.go\n");
        assert!(ig.excluded("main.go"));
        assert!(ig.excluded("a/b/c/x.go"));
        assert!(!ig.excluded("a/b/x.rs"));
        let ig = Ignore::parse("a/**\n");
        assert!(ig.excluded("a/x"));
        assert!(ig.excluded("a/x/y"));
        assert!(!ig.excluded("b/a/x"));
        let ig = Ignore::parse("a/**/b\n");
        assert!(ig.excluded("a/b"));
        assert!(ig.excluded("a/x/y/b"));
        assert!(ig.excluded("a/x/b/c"));
        assert!(!ig.excluded("a/xb"));
        let ig = Ignore::parse("**\n!keep\n");
        assert!(ig.excluded("x/y"));
        assert!(!ig.excluded("keep"));
        assert!(!ig.excluded("keep/inside"));
    }

    #[test]
    fn exceptions_in_order() {
        let ig = Ignore::parse("*.md\n!README.md\n");
        assert!(ig.excluded("CHANGES.md"));
        assert!(!ig.excluded("README.md"));
        assert!(!ig.excluded("docs/x.md"), "*.md only matches the root");

        let ig = Ignore::parse("*.md\n!README*.md\nREADME-secret.md\n");
        assert!(ig.excluded("CHANGES.md"));
        assert!(!ig.excluded("README-public.md"));
        assert!(ig.excluded("README-secret.md"));

        let ig = Ignore::parse("*.md\nREADME-secret.md\n!README*.md\n");
        assert!(ig.excluded("CHANGES.md"));
        assert!(!ig.excluded("README-secret.md"));
        assert!(!ig.excluded("README-public.md"));
    }

    #[test]
    fn cleaning() {
        let ig = Ignore::parse("/build/\n./target\n  node_modules  \n !/dist/keep\ndist\n");
        assert!(ig.excluded("build"));
        assert!(ig.excluded("build/out.o"));
        assert!(ig.excluded("target/debug/x"));
        assert!(ig.excluded("node_modules/left-pad/index.js"));
        // `dist` comes after the exception, so it wins.
        assert!(ig.excluded("dist/keep"));
        let ig = Ignore::parse("dist\n!dist/keep\n");
        assert!(ig.excluded("dist"));
        assert!(ig.excluded("dist/other"));
        assert!(!ig.excluded("dist/keep"));
        assert!(!ig.excluded("dist/keep/deep"));
        assert!(!ig.excluded("./dist/keep"));
        // " #x" is a pattern in Docker, "#x" a comment.
        let ig = Ignore::parse(" #x\n#y\n");
        assert!(ig.excluded("#x"));
        assert!(!ig.excluded("#y"));
    }

    #[test]
    fn malformed_lines_are_skipped() {
        let ig = Ignore::parse("[\n!\na\\\nok\n");
        assert_eq!(ig.patterns.len(), 1);
        assert!(ig.excluded("ok"));
        assert!(!ig.excluded("["));
    }

    #[test]
    fn descend_for_exceptions() {
        let ig = Ignore::parse("vendor\n!vendor/keep/*.go\n");
        assert!(ig.excluded("vendor"));
        assert!(ig.may_include_under("vendor"));
        assert!(ig.may_include_under("vendor/keep"));
        assert!(!ig.may_include_under("vendor/other"));
        assert!(!ig.may_include_under("src"));
        assert!(!ig.excluded("vendor/keep/a.go"));
        assert!(ig.excluded("vendor/keep/a.rs"));

        let ig = Ignore::parse("*\n!**/*.go\n");
        assert!(ig.may_include_under("anything/deep"));
        let ig = Ignore::parse("a\n!a\n");
        assert!(ig.may_include_under("a/b"));
        let ig = Ignore::parse("node_modules\n");
        assert!(!ig.may_include_under("node_modules"));
    }

    #[test]
    fn shell_pattern_matches_slash() {
        let p = ShellPattern::new("*/b").unwrap();
        assert!(p.matches("x/y/b"));
        assert!(!glob_match("*/b", "x/y/b"));
    }

    #[test]
    fn clean_like_go() {
        for (i, o) in [
            ("", "."),
            ("a/b/", "a/b"),
            ("./a", "a"),
            ("a//b", "a/b"),
            ("a/../b", "b"),
            ("../a", "../a"),
            ("/../a", "/a"),
            ("/", "/"),
            ("a/b/../..", "."),
        ] {
            assert_eq!(clean(i), o, "clean({i:?})");
        }
    }
}
