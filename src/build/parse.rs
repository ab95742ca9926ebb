//! The Dockerfile front end: text to stages of instructions, following
//! BuildKit's parser (moby/buildkit frontend/dockerfile/parser and
//! instructions) so that a Dockerfile means here what it means to Docker.
//!
//! Values are kept raw, as BuildKit's parser keeps them: quotes and escape
//! characters in ARG/ENV/LABEL keys and values, and in FROM, COPY, ADD,
//! WORKDIR, USER, EXPOSE, VOLUME and STOPSIGNAL arguments, are still there;
//! the executor runs each through [`crate::build::vars::expand`], which
//! removes quotes and substitutes variables in one pass. Doing quote removal
//! here instead would lose the difference between `'$A'` and `"$A"`.

use crate::build::vars;
use crate::{Error, Result};

#[derive(Debug, Clone, PartialEq)]
pub struct Dockerfile {
    /// `\` or `` ` ``, from the `# escape=` directive.
    pub escape: char,
    /// `# syntax=`: accepted and recorded, otherwise ignored.
    pub syntax: Option<String>,
    /// ARG instructions before the first FROM (only ARG is allowed there).
    pub global_args: Vec<Instruction>,
    pub stages: Vec<Stage>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Stage {
    pub index: usize,
    /// From `FROM image AS name`, lowercased as Docker does.
    pub name: Option<String>,
    /// The FROM itself (`Kind::From`).
    pub from: Instruction,
    /// Everything after FROM up to the next FROM.
    pub instructions: Vec<Instruction>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Instruction {
    /// 1-based line where the instruction starts.
    pub line: usize,
    /// The instruction as written, continuation lines joined (without the
    /// escape-newline, as Docker joins them), trimmed; heredoc bodies not
    /// included. For history `created_by` and cache keys.
    pub original: String,
    pub kind: Kind,
}

/// JSON array (exec) form vs shell form.
#[derive(Debug, Clone, PartialEq)]
pub enum Cmd {
    Exec(Vec<String>),
    Shell(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Heredoc {
    /// The delimiter, quotes removed (`<<"EOF"` gives `EOF`).
    pub name: String,
    /// The lines between the marker line and the delimiter, each ending in
    /// "\n"; with `strip_tabs` their leading tabs are already removed.
    pub body: String,
    /// False when the delimiter was quoted (`<<"EOF"`, `<<'EOF'`).
    pub expand: bool,
    /// `<<-EOF`.
    pub strip_tabs: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// Raw, unsubstituted.
    From {
        image: String,
        name: Option<String>,
        platform: Option<String>,
    },
    /// `ARG a=1 b`: keys and values raw (quotes kept, `$` unexpanded).
    Arg(Vec<(String, Option<String>)>),
    /// Both `ENV K V` (one pair, the rest of the line is the value) and
    /// `ENV K=V K2="v 2"`; keys and values raw.
    Env(Vec<(String, String)>),
    /// Keys and values raw.
    Label(Vec<(String, String)>),
    /// `cmd` is the whole command after the flags, heredoc markers
    /// included (`Shell("cat <<EOF > /f")`); see [`run_script`] and
    /// [`run_shell_line`] for what Docker runs. `flags` are (name without
    /// `--`, value) in order: network, security, mount (repeatable).
    Run {
        cmd: Cmd,
        heredocs: Vec<Heredoc>,
        flags: Vec<(String, String)>,
    },
    /// `srcs` excludes heredoc markers (`<<EOF`); those sources are in
    /// `heredocs`, each to be written as a file named after its delimiter.
    /// `--link` is accepted and ignored.
    Copy {
        srcs: Vec<String>,
        dest: String,
        from: Option<String>,
        chown: Option<String>,
        chmod: Option<String>,
        heredocs: Vec<Heredoc>,
    },
    Add {
        srcs: Vec<String>,
        dest: String,
        chown: Option<String>,
        chmod: Option<String>,
    },
    Workdir(String),
    User(String),
    Expose(Vec<String>),
    /// JSON array or space-separated.
    Volume(Vec<String>),
    Cmd(Cmd),
    Entrypoint(Cmd),
    /// JSON array only.
    Shell(Vec<String>),
    StopSignal(String),
    /// None = `HEALTHCHECK NONE`.
    Healthcheck(Option<Health>),
    /// `ONBUILD <instruction>`; the inner instruction's `original` is the
    /// trigger as the image config records it (without `ONBUILD `).
    Onbuild(Box<Instruction>),
    Maintainer(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Health {
    /// `["CMD", ...]` or `["CMD-SHELL", "..."]`.
    pub test: Vec<String>,
    /// Go durations as written (`30s`, `1m30s`), already validated.
    pub interval: Option<String>,
    pub timeout: Option<String>,
    pub start_period: Option<String>,
    pub retries: Option<u32>,
}

/// For `RUN <<EOF` — the command is nothing but one heredoc marker —
/// Docker runs that heredoc's body as the script: directly when it starts
/// with `#!`, else as the shell's command string. Returns that heredoc.
pub fn run_script<'a>(cmd: &Cmd, heredocs: &'a [Heredoc]) -> Option<&'a Heredoc> {
    match cmd {
        Cmd::Shell(s) if parse_heredoc_marker(s).ok().flatten().is_some() => heredocs.first(),
        _ => None,
    }
}

/// For any other RUN with heredocs (`RUN python3 <<EOF`, `cat <<A >a`),
/// Docker hands the shell the command line followed by each body and its
/// delimiter, as a shell script with real heredocs would read.
pub fn run_shell_line(cmd_line: &str, heredocs: &[Heredoc]) -> String {
    let mut full = cmd_line.to_string();
    for h in heredocs {
        full.push('\n');
        full.push_str(&h.body);
        full.push_str(&h.name);
    }
    full
}

/// Errors inside this module carry only the message; `parse` adds
/// "{file}:{line}: ".
type R<T> = std::result::Result<T, String>;

/// Parses a Dockerfile. `file` is the display name used in errors:
/// `Error::Other("{file}:{line}: {msg}")`, the line being where the
/// offending instruction starts.
pub fn parse(text: &str, file: &str) -> Result<Dockerfile> {
    let at = |line: usize, msg: String| Error::Other(format!("{file}:{line}: {msg}"));
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines: Vec<&str> = text
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .collect();

    let (escape, syntax) = directives(&lines).map_err(|(n, m)| at(n, m))?;

    let mut instructions: Vec<Instruction> = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let first = lines[i].trim_start();
        i += 1;
        if first.starts_with('#') {
            continue;
        }
        let start = i;
        let (head, mut done) = trim_continuation(first, escape);
        if done && head.is_empty() {
            continue;
        }
        let mut line = head.to_string();
        while !done && i < lines.len() {
            let raw = lines[i];
            i += 1;
            // Comment lines and empty lines inside a continuation are
            // skipped, not joined: Docker allows both there.
            let t = raw.trim_start();
            if t.starts_with('#') || t.is_empty() {
                continue;
            }
            let (more, d) = trim_continuation(raw, escape);
            line.push_str(more);
            done = d;
        }
        let (mut ins, heredoc_ok) =
            parse_instruction(&line, start, escape).map_err(|m| at(start, m))?;
        if heredoc_ok && line.contains("<<") {
            let mut docs = heredoc_markers(&line).map_err(|m| at(start, m))?;
            for doc in &mut docs {
                let mut terminated = false;
                while i < lines.len() {
                    let raw = lines[i];
                    i += 1;
                    let body_line = if doc.strip_tabs {
                        raw.trim_start_matches('\t')
                    } else {
                        raw
                    };
                    if body_line == doc.name {
                        terminated = true;
                        break;
                    }
                    doc.body.push_str(body_line);
                    doc.body.push('\n');
                }
                if !terminated {
                    return Err(at(
                        start,
                        format!("unterminated heredoc: no line \"{}\" ends it", doc.name),
                    ));
                }
            }
            attach_heredocs(&mut ins, docs).map_err(|m| at(start, m))?;
        }
        instructions.push(ins);
    }

    if instructions.is_empty() {
        return Err(Error::Other(format!("{file}: file with no instructions")));
    }
    let mut global_args = Vec::new();
    let mut stages: Vec<Stage> = Vec::new();
    for ins in instructions {
        if let Kind::From { name, .. } = &ins.kind {
            if let Some(n) = name {
                if stages.iter().any(|s| s.name.as_deref() == Some(n)) {
                    return Err(at(ins.line, format!("duplicate stage name \"{n}\"")));
                }
            }
            stages.push(Stage {
                index: stages.len(),
                name: name.clone(),
                from: ins,
                instructions: Vec::new(),
            });
            continue;
        }
        match stages.last_mut() {
            Some(stage) => stage.instructions.push(ins),
            None if matches!(ins.kind, Kind::Arg(_)) => global_args.push(ins),
            None => {
                let kw = keyword(&ins.kind);
                return Err(at(ins.line, format!("no FROM before {kw}")));
            }
        }
    }
    if stages.is_empty() {
        return Err(Error::Other(format!("{file}: no FROM instruction")));
    }
    Ok(Dockerfile {
        escape,
        syntax,
        global_args,
        stages,
    })
}

/// Parser directives: `# name=value` lines at the very top. The first line
/// that is not a known directive (a blank line, any other comment, an
/// instruction, or an unknown directive) ends them; later ones are comments.
fn directives(lines: &[&str]) -> std::result::Result<(char, Option<String>), (usize, String)> {
    let mut escape = None;
    let mut syntax = None;
    let mut check = false;
    for (n, raw) in lines.iter().enumerate() {
        let Some((name, value)) = directive(raw.trim_start()) else {
            break;
        };
        let dup = |n: usize| {
            (
                n + 1,
                format!("only one {name} parser directive can be used"),
            )
        };
        match name.as_str() {
            "escape" => {
                if escape.is_some() {
                    return Err(dup(n));
                }
                escape = Some(match value.as_str() {
                    "\\" => '\\',
                    "`" => '`',
                    v => {
                        return Err((
                            n + 1,
                            format!("invalid escape token '{v}' does not match ` or \\"),
                        ))
                    }
                });
            }
            "syntax" => {
                if syntax.is_some() {
                    return Err(dup(n));
                }
                syntax = Some(value);
            }
            "check" => {
                // BuildKit's lint settings: recognised so it does not end
                // the directives, otherwise irrelevant here.
                if check {
                    return Err(dup(n));
                }
                check = true;
            }
            _ => break,
        }
    }
    Ok((escape.unwrap_or('\\'), syntax))
}

/// `#[ \t]*name[ \t]*=[ \t]*value[ \t]*`, name lowercased.
fn directive(line: &str) -> Option<(String, String)> {
    let rest = line.strip_prefix('#')?.trim_start_matches([' ', '\t']);
    let name_len = rest
        .char_indices()
        .find(|&(i, c)| !(c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit())))
        .map_or(rest.len(), |(i, _)| i);
    if name_len == 0 {
        return None;
    }
    let name = rest[..name_len].to_ascii_lowercase();
    let value = rest[name_len..]
        .trim_start_matches([' ', '\t'])
        .strip_prefix('=')?
        .trim_matches([' ', '\t']);
    if value.is_empty() {
        return None;
    }
    match name.as_str() {
        "escape" | "syntax" | "check" => Some((name, value.to_string())),
        _ => None,
    }
}

/// Removes a trailing escape character (and whitespace after it); the bool
/// says whether the instruction ends on this line.
fn trim_continuation(line: &str, escape: char) -> (&str, bool) {
    let t = line.trim_end_matches([' ', '\t']);
    match t.strip_suffix(escape) {
        Some(rest) => (rest, false),
        None => (line, true),
    }
}

fn keyword(kind: &Kind) -> &'static str {
    match kind {
        Kind::From { .. } => "FROM",
        Kind::Arg(_) => "ARG",
        Kind::Env(_) => "ENV",
        Kind::Label(_) => "LABEL",
        Kind::Run { .. } => "RUN",
        Kind::Copy { .. } => "COPY",
        Kind::Add { .. } => "ADD",
        Kind::Workdir(_) => "WORKDIR",
        Kind::User(_) => "USER",
        Kind::Expose(_) => "EXPOSE",
        Kind::Volume(_) => "VOLUME",
        Kind::Cmd(_) => "CMD",
        Kind::Entrypoint(_) => "ENTRYPOINT",
        Kind::Shell(_) => "SHELL",
        Kind::StopSignal(_) => "STOPSIGNAL",
        Kind::Healthcheck(_) => "HEALTHCHECK",
        Kind::Onbuild(_) => "ONBUILD",
        Kind::Maintainer(_) => "MAINTAINER",
    }
}

/// How a flag may be given.
#[derive(Clone, Copy, PartialEq)]
enum FlagKind {
    /// `--name=value`, at most once.
    Str,
    /// `--name=value`, any number of times (RUN --mount).
    Multi,
    /// `--name` or `--name=true|false`.
    Bool,
    /// Docker has it, we do not: a clear error rather than "unknown".
    Unsupported,
}

/// Checks the flags against what the instruction accepts; returns them as
/// (name, value) in order, a bool flag's value being "true" or "false".
fn check_flags(kw: &str, raw: &[String], allowed: &[(&str, FlagKind)]) -> R<Vec<(String, String)>> {
    let mut out: Vec<(String, String)> = Vec::new();
    for f in raw {
        let (name, value) = match f.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (f.as_str(), None),
        };
        let Some(&(_, kind)) = allowed.iter().find(|(n, _)| *n == name) else {
            return Err(format!("{kw}: unknown flag --{name}"));
        };
        let value = match (kind, value) {
            (FlagKind::Unsupported, _) => {
                return Err(format!("{kw}: --{name} is not supported"));
            }
            (FlagKind::Bool, None) => "true".to_string(),
            (FlagKind::Bool, Some(v)) => match v.to_ascii_lowercase().as_str() {
                "true" | "false" => v.to_ascii_lowercase(),
                _ => {
                    return Err(format!(
                        "{kw}: expecting boolean value for flag --{name}, not: {v}"
                    ))
                }
            },
            (_, None) => return Err(format!("{kw}: missing a value on flag --{name}")),
            (_, Some(v)) => v.to_string(),
        };
        if kind != FlagKind::Multi && out.iter().any(|(n, _)| n == name) {
            return Err(format!("{kw}: duplicate flag specified: --{name}"));
        }
        out.push((name.to_string(), value));
    }
    Ok(out)
}

fn flag(flags: &[(String, String)], name: &str) -> Option<String> {
    flags
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.clone())
}

/// BuildKit's extractBuilderFlags: the leading `--name[=value]` words
/// (quotes and `\` allowed inside them), ended by the first other word or
/// by `--`. Returns the flags (without `--`) and the rest of the line.
fn extract_flags(line: &str) -> (Vec<String>, &str) {
    let mut flags = Vec::new();
    let mut rest = line;
    loop {
        let t = rest.trim_start();
        if !t.starts_with("--") {
            return (flags, t);
        }
        // Read one word with quote and backslash handling.
        let mut word = String::new();
        let mut quote: Option<char> = None;
        let mut chars = t.char_indices().peekable();
        let mut end = t.len();
        while let Some((i, c)) = chars.next() {
            match quote {
                None if c.is_whitespace() => {
                    end = i;
                    break;
                }
                None if c == '\'' || c == '"' => quote = Some(c),
                Some(q) if c == q => quote = None,
                _ if c == '\\' => {
                    if let Some((_, n)) = chars.next() {
                        word.push(n);
                    }
                }
                _ => word.push(c),
            }
        }
        rest = &t[end..];
        if word == "--" {
            return (flags, rest.trim_start());
        }
        flags.push(word[2..].to_string());
    }
}

/// BuildKit's parseWords: splits on whitespace outside quotes, keeping the
/// quotes and escape characters in the words for later processing.
fn parse_words(rest: &str, escape: char) -> Vec<String> {
    let chars: Vec<char> = rest.chars().collect();
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quote: Option<char> = None;
    let mut blank_ok = false;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        match quote {
            None => {
                if c.is_whitespace() {
                    if blank_ok || !word.is_empty() {
                        words.push(std::mem::take(&mut word));
                    }
                    blank_ok = false;
                    continue;
                }
                if c == '\'' || c == '"' {
                    quote = Some(c);
                    blank_ok = true;
                }
                if c == escape {
                    // A trailing escape is dropped; otherwise it stays with
                    // the escaped character, quote or not.
                    let Some(&n) = chars.get(i) else { continue };
                    word.push(c);
                    word.push(n);
                    i += 1;
                    continue;
                }
                word.push(c);
            }
            Some(q) => {
                if c == q {
                    quote = None;
                }
                // The escape character works inside double quotes only.
                if c == escape && q != '\'' {
                    let Some(&n) = chars.get(i) else {
                        quote = None;
                        continue;
                    };
                    word.push(c);
                    word.push(n);
                    i += 1;
                    continue;
                }
                word.push(c);
            }
        }
    }
    if blank_ok || !word.is_empty() {
        words.push(word);
    }
    words
}

/// Whitespace-delimited words, quotes not special (FROM, EXPOSE, shell-form
/// COPY/ADD/VOLUME), as BuildKit's parseStringsWhitespaceDelimited.
fn split_ws(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_string).collect()
}

const NOT_STRINGS: &str = "when using JSON array syntax, arrays must be comprised of strings only";

/// A JSON array of strings, `Ok(None)` when `s` is not valid JSON (the
/// caller falls back to the shell form), an error when it is JSON but not
/// all strings.
fn json_array(s: &str) -> R<Option<Vec<String>>> {
    if !s.starts_with('[') {
        return Ok(None);
    }
    match serde_json::from_str::<serde_json::Value>(s) {
        Ok(serde_json::Value::Array(items)) => items
            .into_iter()
            .map(|v| match v {
                serde_json::Value::String(s) => Ok(s),
                _ => Err(NOT_STRINGS.to_string()),
            })
            .collect::<R<Vec<_>>>()
            .map(Some),
        _ => Ok(None),
    }
}

fn maybe_json(s: &str) -> R<Cmd> {
    Ok(match json_array(s)? {
        Some(v) => Cmd::Exec(v),
        None => Cmd::Shell(s.to_string()),
    })
}

/// For ADD/COPY/VOLUME: the list and whether it was JSON.
fn maybe_json_list(s: &str) -> R<(Vec<String>, bool)> {
    Ok(match json_array(s)? {
        Some(v) => (v, true),
        None => (split_ws(s), false),
    })
}

/// ENV and LABEL: `K V` (old form: the rest of the line is the value) or
/// `K=V ...`, keys and values raw.
fn name_vals(kw: &str, args: &str, escape: char) -> R<Vec<(String, String)>> {
    let words = parse_words(args, escape);
    let Some(first) = words.first() else {
        return Err(format!("{kw} requires at least one argument"));
    };
    if !first.contains('=') {
        let Some((k, v)) = args.split_once(char::is_whitespace) else {
            return Err(format!("{kw} must have two arguments"));
        };
        return Ok(vec![(k.to_string(), v.trim_start().to_string())]);
    }
    words
        .iter()
        .map(|w| match w.split_once('=') {
            Some(("", _)) => Err(format!("{kw} names can not be blank")),
            Some((k, v)) => Ok((k.to_string(), v.to_string())),
            None => Err(format!(
                "Syntax error - can't find = in \"{w}\". Must be of the form: name=value"
            )),
        })
        .collect()
}

/// Parses one joined logical line. The bool says whether heredoc bodies may
/// follow (RUN/COPY/ADD in shell form, also under ONBUILD).
fn parse_instruction(line: &str, line_no: usize, escape: char) -> R<(Instruction, bool)> {
    let line = line.trim();
    let (kw_raw, rest) = match line.split_once(char::is_whitespace) {
        Some((k, r)) => (k, r),
        None => (line, ""),
    };
    let kw = kw_raw.to_ascii_uppercase();
    let (raw_flags, args) = extract_flags(rest);
    let args = args.trim();
    let one = |what: &str| -> R<String> {
        if args.is_empty() {
            Err(format!("{what} requires exactly one argument"))
        } else {
            Ok(args.to_string())
        }
    };
    let no_flags = |kw: &str| check_flags(kw, &raw_flags, &[]);
    let mut heredoc_ok = false;
    let kind = match kw.as_str() {
        "FROM" => {
            let flags = check_flags(&kw, &raw_flags, &[("platform", FlagKind::Str)])?;
            let words = split_ws(args);
            let name = match words.len() {
                1 => None,
                3 if words[1].eq_ignore_ascii_case("as") => {
                    let n = words[2].to_ascii_lowercase();
                    if !valid_stage_name(&n) {
                        return Err(format!(
                            "invalid name for build stage: \"{}\", name can't start with a number or contain symbols",
                            words[2]
                        ));
                    }
                    Some(n)
                }
                _ => return Err("FROM requires either one or three arguments".into()),
            };
            Kind::From {
                image: words[0].clone(),
                name,
                platform: flag(&flags, "platform").filter(|p| !p.is_empty()),
            }
        }
        "ARG" => {
            no_flags(&kw)?;
            let words = parse_words(args, escape);
            if words.is_empty() {
                return Err("ARG requires at least one argument".into());
            }
            let pairs = words
                .into_iter()
                .map(|w| match w.split_once('=') {
                    Some(("", _)) => Err("ARG names can not be blank".to_string()),
                    Some((k, v)) => Ok((k.to_string(), Some(v.to_string()))),
                    None => Ok((w, None)),
                })
                .collect::<R<Vec<_>>>()?;
            Kind::Arg(pairs)
        }
        "ENV" => {
            no_flags(&kw)?;
            Kind::Env(name_vals(&kw, args, escape)?)
        }
        "LABEL" => {
            no_flags(&kw)?;
            Kind::Label(name_vals(&kw, args, escape)?)
        }
        "RUN" => {
            let flags = check_flags(
                &kw,
                &raw_flags,
                &[
                    ("mount", FlagKind::Multi),
                    ("network", FlagKind::Str),
                    ("security", FlagKind::Str),
                    ("device", FlagKind::Unsupported),
                ],
            )?;
            let cmd = maybe_json(args)?;
            heredoc_ok = matches!(cmd, Cmd::Shell(_));
            Kind::Run {
                cmd,
                heredocs: Vec::new(),
                flags,
            }
        }
        "COPY" | "ADD" => {
            let is_copy = kw == "COPY";
            let mut allowed = vec![
                ("chown", FlagKind::Str),
                ("chmod", FlagKind::Str),
                ("link", FlagKind::Bool),
                ("exclude", FlagKind::Unsupported),
            ];
            if is_copy {
                allowed.extend([("from", FlagKind::Str), ("parents", FlagKind::Unsupported)]);
            } else {
                allowed.extend([
                    ("checksum", FlagKind::Unsupported),
                    ("keep-git-dir", FlagKind::Unsupported),
                    ("unpack", FlagKind::Unsupported),
                ]);
            }
            let flags = check_flags(&kw, &raw_flags, &allowed)?;
            let (words, json) = maybe_json_list(args)?;
            heredoc_ok = !json;
            if words.len() < 2 {
                return Err(format!("{kw} needs a source and a destination"));
            }
            let (dest, srcs) = words.split_last().ok_or("unreachable: checked above")?;
            let is_marker = |w: &str| !json && parse_heredoc_marker(w).ok().flatten().is_some();
            if is_marker(dest) {
                return Err(format!("{kw}: the destination cannot be a heredoc"));
            }
            let srcs: Vec<String> = srcs.iter().filter(|s| !is_marker(s)).cloned().collect();
            let (chown, chmod) = (flag(&flags, "chown"), flag(&flags, "chmod"));
            if is_copy {
                Kind::Copy {
                    srcs,
                    dest: dest.clone(),
                    from: flag(&flags, "from"),
                    chown,
                    chmod,
                    heredocs: Vec::new(),
                }
            } else {
                Kind::Add {
                    srcs,
                    dest: dest.clone(),
                    chown,
                    chmod,
                }
            }
        }
        "WORKDIR" => {
            no_flags(&kw)?;
            Kind::Workdir(one("WORKDIR")?)
        }
        "USER" => {
            no_flags(&kw)?;
            Kind::User(one("USER")?)
        }
        "STOPSIGNAL" => {
            no_flags(&kw)?;
            Kind::StopSignal(one("STOPSIGNAL")?)
        }
        "MAINTAINER" => {
            no_flags(&kw)?;
            Kind::Maintainer(one("MAINTAINER")?)
        }
        "EXPOSE" => {
            no_flags(&kw)?;
            let ports = split_ws(args);
            if ports.is_empty() {
                return Err("EXPOSE requires at least one argument".into());
            }
            Kind::Expose(ports)
        }
        "VOLUME" => {
            no_flags(&kw)?;
            let (vols, _) = maybe_json_list(args)?;
            if vols.is_empty() {
                return Err("VOLUME requires at least one argument".into());
            }
            if vols.iter().any(|v| v.trim().is_empty()) {
                return Err("VOLUME specified can not be an empty string".into());
            }
            Kind::Volume(vols)
        }
        "CMD" => {
            no_flags(&kw)?;
            Kind::Cmd(maybe_json(args)?)
        }
        "ENTRYPOINT" => {
            no_flags(&kw)?;
            Kind::Entrypoint(maybe_json(args)?)
        }
        "SHELL" => {
            no_flags(&kw)?;
            match json_array(args)? {
                Some(v) if v.is_empty() => {
                    return Err("SHELL requires at least one argument".into())
                }
                Some(v) => Kind::Shell(v),
                None => return Err("SHELL requires the arguments to be in JSON form".into()),
            }
        }
        "HEALTHCHECK" => Kind::Healthcheck(healthcheck(&raw_flags, args)?),
        "ONBUILD" => {
            no_flags(&kw)?;
            if args.is_empty() {
                return Err("ONBUILD requires at least one argument".into());
            }
            let inner_kw = args
                .split(char::is_whitespace)
                .next()
                .unwrap_or_default()
                .to_ascii_uppercase();
            match inner_kw.as_str() {
                "ONBUILD" => {
                    return Err("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed".into())
                }
                "FROM" | "MAINTAINER" => {
                    return Err(format!("{inner_kw} isn't allowed as an ONBUILD trigger"))
                }
                _ => {}
            }
            let (inner, ok) = parse_instruction(args, line_no, escape)?;
            heredoc_ok = ok;
            Kind::Onbuild(Box::new(inner))
        }
        _ => return Err(format!("unknown instruction: {kw}")),
    };
    Ok((
        Instruction {
            line: line_no,
            original: line.to_string(),
            kind,
        },
        heredoc_ok,
    ))
}

/// `^[a-z][a-z0-9-_.]*$`, as BuildKit checks stage names.
fn valid_stage_name(n: &str) -> bool {
    let mut chars = n.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c))
}

fn healthcheck(raw_flags: &[String], args: &str) -> R<Option<Health>> {
    let (typ, rest) = match args.split_once(char::is_whitespace) {
        Some((t, r)) => (t, r.trim_start()),
        None => (args, ""),
    };
    if typ.is_empty() {
        return Err("HEALTHCHECK requires at least one argument".into());
    }
    let typ = typ.to_ascii_uppercase();
    if typ == "NONE" {
        if !rest.is_empty() {
            return Err("HEALTHCHECK NONE takes no arguments".into());
        }
        return Ok(None);
    }
    let flags = check_flags(
        "HEALTHCHECK",
        raw_flags,
        &[
            ("interval", FlagKind::Str),
            ("timeout", FlagKind::Str),
            ("start-period", FlagKind::Str),
            // Accepted for compatibility, not recorded (Health has no field
            // for it; it only matters during the start period).
            ("start-interval", FlagKind::Str),
            ("retries", FlagKind::Str),
        ],
    )?;
    if typ != "CMD" {
        return Err(format!("Unknown type \"{typ}\" in HEALTHCHECK (try CMD)"));
    }
    let test = match maybe_json(rest)? {
        Cmd::Exec(v) if !v.is_empty() => std::iter::once("CMD".to_string()).chain(v).collect(),
        Cmd::Shell(s) if !s.is_empty() => vec!["CMD-SHELL".to_string(), s],
        _ => return Err("Missing command after HEALTHCHECK CMD".into()),
    };
    let duration = |name: &str| -> R<Option<String>> {
        match flag(&flags, name).filter(|v| !v.is_empty()) {
            None => Ok(None),
            Some(v) => {
                let ns = go_duration_ns(&v)
                    .ok_or_else(|| format!("HEALTHCHECK: --{name}: invalid duration \"{v}\""))?;
                // Docker: 0 means "inherit the default"; anything else must
                // be at least a millisecond.
                if ns != 0.0 && ns < 1_000_000.0 {
                    return Err(format!("HEALTHCHECK: --{name} cannot be less than 1ms"));
                }
                Ok(Some(v))
            }
        }
    };
    let retries = match flag(&flags, "retries").filter(|v| !v.is_empty()) {
        None => None,
        Some(v) => {
            let n: i64 = v
                .parse()
                .map_err(|_| format!("HEALTHCHECK: --retries: invalid number \"{v}\""))?;
            if n < 0 {
                return Err(format!("HEALTHCHECK: --retries cannot be negative ({n})"));
            }
            Some(u32::try_from(n).map_err(|_| format!("HEALTHCHECK: --retries too large ({n})"))?)
        }
    };
    Ok(Some(Health {
        test,
        interval: duration("interval")?,
        timeout: duration("timeout")?,
        start_period: duration("start-period")?,
        retries,
    }))
}

/// Go's time.ParseDuration, as nanoseconds (negative durations rejected:
/// no HEALTHCHECK option can use one).
fn go_duration_ns(s: &str) -> Option<f64> {
    if s == "0" {
        return Some(0.0);
    }
    let mut rest = s.strip_prefix('+').unwrap_or(s);
    if rest.is_empty() {
        return None;
    }
    let mut total = 0.0;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let num = &rest[..num_len];
        if num.is_empty() || num == "." || num.matches('.').count() > 1 {
            return None;
        }
        let n: f64 = num.parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let mult = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += n * mult;
    }
    Some(total)
}

/// BuildKit's ParseHeredoc on one word: `[digits]<<[-]NAME`, NAME one shell
/// word without `<`; quoting any part of it turns expansion off.
fn parse_heredoc_marker(word: &str) -> R<Option<Heredoc>> {
    let w = word.trim_start_matches(|c: char| c.is_ascii_digit());
    let Some(w) = w.strip_prefix("<<") else {
        return Ok(None);
    };
    let (strip_tabs, rest) = match w.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, w),
    };
    if rest.is_empty() || rest.contains('<') {
        return Ok(None);
    }
    let words = vars::words_unexpanded(rest, false).map_err(|e| e.to_string())?;
    if words.len() != 1 {
        return Ok(None);
    }
    let raw = vars::words_unexpanded(rest, true).map_err(|e| e.to_string())?;
    let quotes = |s: &str| s.matches(['\'', '"']).count();
    let expand = raw.len() == 1 && quotes(&words[0]) == quotes(&raw[0]);
    Ok(Some(Heredoc {
        name: words[0].clone(),
        body: String::new(),
        expand,
        strip_tabs,
    }))
}

/// The heredocs a line opens, in order (BuildKit's heredocsFromLine: the
/// line's shell words, quotes kept, so `"<<EOF"` is not one).
fn heredoc_markers(line: &str) -> R<Vec<Heredoc>> {
    // As in BuildKit, a line that does not lex (an open quote) opens none.
    let Ok(words) = vars::raw_words(line) else {
        return Ok(Vec::new());
    };
    let mut docs = Vec::new();
    for w in words {
        if let Some(h) = parse_heredoc_marker(&w)? {
            docs.push(h);
        }
    }
    Ok(docs)
}

fn attach_heredocs(ins: &mut Instruction, docs: Vec<Heredoc>) -> R<()> {
    if docs.is_empty() {
        return Ok(());
    }
    match &mut ins.kind {
        Kind::Run { heredocs, .. } | Kind::Copy { heredocs, .. } => {
            *heredocs = docs;
            Ok(())
        }
        Kind::Add { .. } => Err("ADD with a heredoc is not supported; use COPY".into()),
        Kind::Onbuild(inner) => attach_heredocs(inner, docs),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Dockerfile {
        match parse(text, "Dockerfile") {
            Ok(d) => d,
            Err(e) => panic!("parse failed: {e}\n{text}"),
        }
    }

    fn perr(text: &str) -> String {
        match parse(text, "Dockerfile") {
            Ok(d) => panic!("expected an error, got {d:?}"),
            Err(e) => e.to_string(),
        }
    }

    /// The instructions of the only stage.
    fn kinds(text: &str) -> Vec<Kind> {
        let d = p(text);
        d.stages[0]
            .instructions
            .iter()
            .map(|i| i.kind.clone())
            .collect()
    }

    fn one(text: &str) -> Kind {
        let k = kinds(&format!("FROM scratch\n{text}"));
        assert_eq!(k.len(), 1, "{k:?}");
        k.into_iter().next().unwrap_or(Kind::Workdir(String::new()))
    }

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    fn kv(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn minimal() {
        let d = p("FROM alpine:3.19\nRUN echo hi\n");
        assert_eq!(d.escape, '\\');
        assert_eq!(d.syntax, None);
        assert!(d.global_args.is_empty());
        assert_eq!(d.stages.len(), 1);
        let st = &d.stages[0];
        assert_eq!(st.index, 0);
        assert_eq!(st.name, None);
        assert_eq!(st.from.line, 1);
        assert_eq!(st.from.original, "FROM alpine:3.19");
        assert_eq!(
            st.from.kind,
            Kind::From {
                image: "alpine:3.19".into(),
                name: None,
                platform: None
            }
        );
        assert_eq!(st.instructions[0].line, 2);
        assert_eq!(st.instructions[0].original, "RUN echo hi");
    }

    #[test]
    fn keywords_are_case_insensitive() {
        let d = p("from alpine As Builder\nrun echo\nCopy a b\n");
        assert_eq!(d.stages[0].name.as_deref(), Some("builder"));
        assert!(matches!(d.stages[0].instructions[0].kind, Kind::Run { .. }));
        assert!(matches!(
            d.stages[0].instructions[1].kind,
            Kind::Copy { .. }
        ));
    }

    #[test]
    fn from_forms() {
        let d = p("FROM --platform=linux/amd64 golang:1.22 AS build\nFROM build\nFROM $BASE\n");
        assert_eq!(
            d.stages[0].from.kind,
            Kind::From {
                image: "golang:1.22".into(),
                name: Some("build".into()),
                platform: Some("linux/amd64".into())
            }
        );
        assert_eq!(d.stages[1].index, 1);
        assert_eq!(
            d.stages[2].from.kind,
            Kind::From {
                image: "$BASE".into(),
                name: None,
                platform: None
            }
        );
        assert!(perr("FROM a b\n").contains("FROM requires either one or three arguments"));
        assert!(perr("FROM\n").contains("FROM requires either one or three arguments"));
        assert!(perr("FROM a AS 1x\n").contains("invalid name for build stage"));
        assert!(perr("FROM --plat=x a\n").contains("Dockerfile:1: FROM: unknown flag --plat"));
        assert_eq!(
            perr("FROM a AS x\nFROM b AS X\n"),
            "Dockerfile:2: duplicate stage name \"x\""
        );
    }

    #[test]
    fn args_before_from() {
        let d = p("ARG VERSION=3.19\nARG OTHER\nFROM alpine:${VERSION}\nARG VERSION\n");
        assert_eq!(d.global_args.len(), 2);
        assert_eq!(
            d.global_args[0].kind,
            Kind::Arg(vec![("VERSION".into(), Some("3.19".into()))])
        );
        assert_eq!(
            d.global_args[1].kind,
            Kind::Arg(vec![("OTHER".into(), None)])
        );
        assert_eq!(
            d.stages[0].instructions[0].kind,
            Kind::Arg(vec![("VERSION".into(), None)])
        );
        assert_eq!(
            perr("ARG A\nRUN x\nFROM a\n"),
            "Dockerfile:2: no FROM before RUN"
        );
        assert_eq!(perr("RUN x\n"), "Dockerfile:1: no FROM before RUN");
        assert_eq!(perr("ARG A\n"), "Dockerfile: no FROM instruction");
        assert_eq!(
            perr("\n# only a comment\n\n"),
            "Dockerfile: file with no instructions"
        );
    }

    #[test]
    fn arg_forms() {
        assert_eq!(
            one(r#"ARG a=1 b c="x y" d='$e' f=\$g h="""#),
            Kind::Arg(vec![
                ("a".into(), Some("1".into())),
                ("b".into(), None),
                ("c".into(), Some("\"x y\"".into())),
                ("d".into(), Some("'$e'".into())),
                ("f".into(), Some("\\$g".into())),
                ("h".into(), Some("\"\"".into())),
            ])
        );
        assert!(perr("FROM a\nARG\n").contains("Dockerfile:2: ARG requires at least one argument"));
        assert!(perr("FROM a\nARG =x\n").contains("ARG names can not be blank"));
    }

    #[test]
    fn env_forms() {
        assert_eq!(one("ENV A b c  d"), Kind::Env(kv(&[("A", "b c  d")])));
        assert_eq!(
            one(r#"ENV A=1 B="two words" C=three\ words D='$x' E="""#),
            Kind::Env(kv(&[
                ("A", "1"),
                ("B", "\"two words\""),
                ("C", "three\\ words"),
                ("D", "'$x'"),
                ("E", "\"\""),
            ]))
        );
        assert_eq!(one("ENV A="), Kind::Env(kv(&[("A", "")])));
        assert!(perr("FROM a\nENV A\n").contains("ENV must have two arguments"));
        assert!(perr("FROM a\nENV A=1 B\n").contains("can't find = in \"B\""));
        assert!(perr("FROM a\nENV =1\n").contains("ENV names can not be blank"));
        assert!(perr("FROM a\nENV\n").contains("Dockerfile:2: ENV"));
    }

    #[test]
    fn env_values_expand_like_docker() {
        // The raw values, expanded the way the executor will, give what the
        // Docker documentation shows.
        let Kind::Env(pairs) =
            one(r#"ENV MY_NAME="John Doe" MY_DOG=Rex\ The\ Dog MY_CAT=fluffy Q='a $b'"#)
        else {
            panic!("not ENV")
        };
        let none = |_: &str| None;
        let got: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.clone(), vars::expand(v, &none, '\\').unwrap_or_default()))
            .collect();
        assert_eq!(
            got,
            kv(&[
                ("MY_NAME", "John Doe"),
                ("MY_DOG", "Rex The Dog"),
                ("MY_CAT", "fluffy"),
                ("Q", "a $b")
            ])
        );
    }

    #[test]
    fn label_forms() {
        assert_eq!(
            one(
                r#"LABEL "com.example.vendor"="ACME Incorporated" version=1.0 description="multi \
  line""#
            ),
            Kind::Label(kv(&[
                ("\"com.example.vendor\"", "\"ACME Incorporated\""),
                ("version", "1.0"),
                ("description", "\"multi   line\""),
            ]))
        );
        assert_eq!(
            one("LABEL maintainer someone@example.com"),
            Kind::Label(kv(&[("maintainer", "someone@example.com")]))
        );
        assert!(perr("FROM a\nLABEL\n").contains("LABEL requires at least one argument"));
    }

    #[test]
    fn run_forms() {
        assert_eq!(
            one("RUN apt-get update && apt-get install -y curl"),
            Kind::Run {
                cmd: Cmd::Shell("apt-get update && apt-get install -y curl".into()),
                heredocs: vec![],
                flags: vec![]
            }
        );
        assert_eq!(
            one(r#"RUN ["/bin/bash", "-c", "echo hello"]"#),
            Kind::Run {
                cmd: Cmd::Exec(s(&["/bin/bash", "-c", "echo hello"])),
                heredocs: vec![],
                flags: vec![]
            }
        );
        // Not valid JSON: the shell form, as Docker does.
        assert_eq!(
            one("RUN [ -f /etc/os-release ] && echo yes"),
            Kind::Run {
                cmd: Cmd::Shell("[ -f /etc/os-release ] && echo yes".into()),
                heredocs: vec![],
                flags: vec![]
            }
        );
        assert_eq!(
            one("RUN ['single', 'quotes']"),
            Kind::Run {
                cmd: Cmd::Shell("['single', 'quotes']".into()),
                heredocs: vec![],
                flags: vec![]
            }
        );
        assert!(
            perr("FROM a\nRUN [\"a\", 1]\n").contains("Dockerfile:2: when using JSON array syntax")
        );
    }

    #[test]
    fn run_flags() {
        assert_eq!(
            one("RUN --network=none --mount=type=cache,target=/root/.cache --mount=type=secret,id=x --security=insecure make"),
            Kind::Run {
                cmd: Cmd::Shell("make".into()),
                heredocs: vec![],
                flags: kv(&[
                    ("network", "none"),
                    ("mount", "type=cache,target=/root/.cache"),
                    ("mount", "type=secret,id=x"),
                    ("security", "insecure"),
                ])
            }
        );
        assert_eq!(
            one(r#"RUN --mount="type=bind,source=a b" -- --not-a-flag"#),
            Kind::Run {
                cmd: Cmd::Shell("--not-a-flag".into()),
                heredocs: vec![],
                flags: kv(&[("mount", "type=bind,source=a b")])
            }
        );
        assert_eq!(
            perr("FROM a\nRUN --netwrk=none x\n"),
            "Dockerfile:2: RUN: unknown flag --netwrk"
        );
        assert_eq!(
            perr("FROM a\nRUN --network x\n"),
            "Dockerfile:2: RUN: missing a value on flag --network"
        );
        assert!(perr("FROM a\nRUN --network=a --network=b x\n").contains("duplicate flag"));
        // A flag-looking word after the command is part of the command.
        assert_eq!(
            one("RUN ls --all"),
            Kind::Run {
                cmd: Cmd::Shell("ls --all".into()),
                heredocs: vec![],
                flags: vec![]
            }
        );
    }

    #[test]
    fn copy_and_add() {
        assert_eq!(
            one("COPY --from=build --chown=1000:1000 --chmod=0755 --link /src/app /bin/a /usr/local/bin/"),
            Kind::Copy {
                srcs: s(&["/src/app", "/bin/a"]),
                dest: "/usr/local/bin/".into(),
                from: Some("build".into()),
                chown: Some("1000:1000".into()),
                chmod: Some("0755".into()),
                heredocs: vec![]
            }
        );
        assert_eq!(
            one(r#"COPY ["a b.txt", "c", "/dest dir/"]"#),
            Kind::Copy {
                srcs: s(&["a b.txt", "c"]),
                dest: "/dest dir/".into(),
                from: None,
                chown: None,
                chmod: None,
                heredocs: vec![]
            }
        );
        assert_eq!(
            one("ADD --chown=app https://example.com/x.tar.gz *.txt /opt/"),
            Kind::Add {
                srcs: s(&["https://example.com/x.tar.gz", "*.txt"]),
                dest: "/opt/".into(),
                chown: Some("app".into()),
                chmod: None
            }
        );
        assert_eq!(
            perr("FROM a\n\nCOPY onlyone\n"),
            "Dockerfile:3: COPY needs a source and a destination"
        );
        assert_eq!(
            perr("FROM a\nADD\n"),
            "Dockerfile:2: ADD needs a source and a destination"
        );
        assert_eq!(
            perr("FROM a\nx\nx\nx\nCOPY --frm=a b c\n")
                .lines()
                .next()
                .unwrap_or(""),
            "Dockerfile:2: unknown instruction: X"
        );
        assert_eq!(
            perr("FROM a\n\n\n\nCOPY --frm=a b c\n"),
            "Dockerfile:5: COPY: unknown flag --frm"
        );
        assert_eq!(
            perr("FROM a\nADD --from=a b c\n"),
            "Dockerfile:2: ADD: unknown flag --from"
        );
        assert_eq!(
            perr("FROM a\nCOPY --parents a b\n"),
            "Dockerfile:2: COPY: --parents is not supported"
        );
        assert!(perr("FROM a\nCOPY --link=maybe a b\n").contains("expecting boolean"));
    }

    #[test]
    fn simple_instructions() {
        assert_eq!(
            one("WORKDIR /app/$NAME"),
            Kind::Workdir("/app/$NAME".into())
        );
        assert_eq!(one("USER app:app"), Kind::User("app:app".into()));
        assert_eq!(
            one("STOPSIGNAL SIGTERM"),
            Kind::StopSignal("SIGTERM".into())
        );
        assert_eq!(
            one("MAINTAINER Jane <jane@example.com>"),
            Kind::Maintainer("Jane <jane@example.com>".into())
        );
        assert_eq!(
            one("EXPOSE 80/tcp  443 ${PORT}"),
            Kind::Expose(s(&["80/tcp", "443", "${PORT}"]))
        );
        assert_eq!(
            one("VOLUME /data /logs"),
            Kind::Volume(s(&["/data", "/logs"]))
        );
        assert_eq!(one(r#"VOLUME ["/data"]"#), Kind::Volume(s(&["/data"])));
        assert_eq!(
            one(r#"CMD ["nginx", "-g", "daemon off;"]"#),
            Kind::Cmd(Cmd::Exec(s(&["nginx", "-g", "daemon off;"])))
        );
        assert_eq!(
            one("CMD echo $HOME"),
            Kind::Cmd(Cmd::Shell("echo $HOME".into()))
        );
        assert_eq!(one("CMD []"), Kind::Cmd(Cmd::Exec(vec![])));
        assert_eq!(
            one("ENTRYPOINT exec top -b"),
            Kind::Entrypoint(Cmd::Shell("exec top -b".into()))
        );
        assert_eq!(
            one(r#"ENTRYPOINT ["top", "-b"]"#),
            Kind::Entrypoint(Cmd::Exec(s(&["top", "-b"])))
        );
        assert_eq!(
            one(r#"SHELL ["/bin/bash", "-o", "pipefail", "-c"]"#),
            Kind::Shell(s(&["/bin/bash", "-o", "pipefail", "-c"]))
        );
        assert_eq!(
            perr("FROM a\nSHELL /bin/bash -c\n"),
            "Dockerfile:2: SHELL requires the arguments to be in JSON form"
        );
        assert!(perr("FROM a\nSHELL []\n").contains("SHELL requires at least one argument"));
        assert!(perr("FROM a\nWORKDIR\n").contains("WORKDIR requires exactly one argument"));
        assert!(perr("FROM a\nUSER\n").contains("USER requires exactly one argument"));
        assert!(perr("FROM a\nEXPOSE\n").contains("EXPOSE requires at least one argument"));
        assert!(perr("FROM a\nVOLUME\n").contains("VOLUME requires at least one argument"));
        assert!(perr("FROM a\nVOLUME [\"\"]\n").contains("can not be an empty string"));
        assert!(perr("FROM a\nWORKDIR --x /a\n").contains("WORKDIR: unknown flag --x"));
    }

    #[test]
    fn healthcheck() {
        assert_eq!(one("HEALTHCHECK NONE"), Kind::Healthcheck(None));
        assert_eq!(
            one("HEALTHCHECK --interval=5m --timeout=3s --start-period=1m30s --retries=3 CMD curl -f http://localhost/ || exit 1"),
            Kind::Healthcheck(Some(Health {
                test: s(&["CMD-SHELL", "curl -f http://localhost/ || exit 1"]),
                interval: Some("5m".into()),
                timeout: Some("3s".into()),
                start_period: Some("1m30s".into()),
                retries: Some(3),
            }))
        );
        assert_eq!(
            one(r#"HEALTHCHECK cmd ["/bin/check", "-q"]"#),
            Kind::Healthcheck(Some(Health {
                test: s(&["CMD", "/bin/check", "-q"]),
                interval: None,
                timeout: None,
                start_period: None,
                retries: None,
            }))
        );
        assert!(
            perr("FROM a\nHEALTHCHECK NONE x\n").contains("HEALTHCHECK NONE takes no arguments")
        );
        assert!(perr("FROM a\nHEALTHCHECK CMD\n").contains("Missing command after HEALTHCHECK CMD"));
        assert!(perr("FROM a\nHEALTHCHECK RUN x\n").contains("Unknown type \"RUN\" in HEALTHCHECK"));
        assert!(perr("FROM a\nHEALTHCHECK --interval=5 CMD x\n").contains("invalid duration"));
        assert!(perr("FROM a\nHEALTHCHECK --interval=10us CMD x\n").contains("less than 1ms"));
        assert!(perr("FROM a\nHEALTHCHECK --retries=-1 CMD x\n").contains("cannot be negative"));
        assert!(perr("FROM a\nHEALTHCHECK --bogus=1 CMD x\n")
            .contains("HEALTHCHECK: unknown flag --bogus"));
        assert!(
            perr("FROM a\nHEALTHCHECK\n").contains("HEALTHCHECK requires at least one argument")
        );
    }

    #[test]
    fn go_durations() {
        for (d, ns) in [
            ("0", 0.0),
            ("1s", 1e9),
            ("1m30s", 90e9),
            ("1.5h", 5400e9),
            ("10ms", 1e7),
            ("2us", 2e3),
        ] {
            assert_eq!(go_duration_ns(d), Some(ns), "{d}");
        }
        for d in ["", "1", "s", "1x", "-1s", "1..2s", ".s"] {
            assert_eq!(go_duration_ns(d), None, "{d}");
        }
    }

    #[test]
    fn onbuild() {
        let k = one("ONBUILD RUN /usr/local/bin/python-build --dir /app/src");
        let Kind::Onbuild(inner) = k else {
            panic!("{k:?}")
        };
        assert_eq!(
            inner.original,
            "RUN /usr/local/bin/python-build --dir /app/src"
        );
        assert_eq!(inner.line, 2);
        assert_eq!(
            inner.kind,
            Kind::Run {
                cmd: Cmd::Shell("/usr/local/bin/python-build --dir /app/src".into()),
                heredocs: vec![],
                flags: vec![]
            }
        );
        let k = one("onbuild add . /app/src");
        assert!(
            matches!(k, Kind::Onbuild(ref i) if matches!(i.kind, Kind::Add { .. })),
            "{k:?}"
        );
        assert!(perr("FROM a\nONBUILD ONBUILD RUN x\n").contains("Chaining ONBUILD"));
        assert!(
            perr("FROM a\nONBUILD FROM x\n").contains("FROM isn't allowed as an ONBUILD trigger")
        );
        assert!(perr("FROM a\nONBUILD maintainer x\n")
            .contains("MAINTAINER isn't allowed as an ONBUILD trigger"));
        assert!(perr("FROM a\nONBUILD\n").contains("ONBUILD requires at least one argument"));
        assert_eq!(
            perr("FROM a\nONBUILD COPPY a b\n"),
            "Dockerfile:2: unknown instruction: COPPY"
        );
    }

    #[test]
    fn unknown_instruction() {
        assert_eq!(
            perr("FROM a\nRUN x\n\n# c\nRUN y\n\nCOPPY a b\n"),
            "Dockerfile:7: unknown instruction: COPPY"
        );
        assert_eq!(
            parse("FROM a\nfoo\n", "sub/Dockerfile.dev")
                .map(|_| ())
                .map_err(|e| e.to_string()),
            Err("sub/Dockerfile.dev:2: unknown instruction: FOO".to_string())
        );
    }

    #[test]
    fn continuations() {
        let d = p("FROM a\nRUN apt-get update && \\\n    apt-get install -y \\\n# a comment inside\n\n      curl\nRUN x\n");
        let st = &d.stages[0];
        assert_eq!(st.instructions[0].line, 2);
        assert_eq!(
            st.instructions[0].original,
            "RUN apt-get update &&     apt-get install -y       curl"
        );
        assert_eq!(
            st.instructions[0].kind,
            Kind::Run {
                cmd: Cmd::Shell("apt-get update &&     apt-get install -y       curl".into()),
                heredocs: vec![],
                flags: vec![]
            }
        );
        assert_eq!(st.instructions[1].line, 7);
        // Trailing whitespace after the escape still continues the line.
        let d = p("FROM a\nENV A=1 \\  \n    B=2\n");
        assert_eq!(
            d.stages[0].instructions[0].kind,
            Kind::Env(kv(&[("A", "1"), ("B", "2")]))
        );
        // The error is reported at the first line of the instruction.
        assert_eq!(
            perr("FROM a\nCOPY \\\n  onlyone\n"),
            "Dockerfile:2: COPY needs a source and a destination"
        );
        assert_eq!(
            perr("FROM a\nRUN \\\n \\\n  [1]\n"),
            "Dockerfile:2: when using JSON array syntax, arrays must be comprised of strings only"
        );
        // Indented instructions and CRLF line endings.
        let d = p("FROM a\r\n   RUN x \\\r\n  y\r\n");
        assert_eq!(d.stages[0].instructions[0].original, "RUN x   y");
    }

    #[test]
    fn directives() {
        let d = p("# syntax=docker/dockerfile:1\n# escape=`\nFROM a\nRUN dir c:\\ `\n  /w\n");
        assert_eq!(d.escape, '`');
        assert_eq!(d.syntax.as_deref(), Some("docker/dockerfile:1"));
        assert_eq!(d.stages[0].instructions[0].original, "RUN dir c:\\   /w");
        let d = p("#ESCAPE = `\nFROM a\n");
        assert_eq!(d.escape, '`');
        // After a comment, a blank line or an unknown directive, it is just
        // a comment.
        for text in [
            "# comment\n# escape=`\nFROM a\nRUN x `\n",
            "\n# escape=`\nFROM a\nRUN x `\n",
            "# unknown=1\n# escape=`\nFROM a\nRUN x `\n",
            "FROM a\n# escape=`\nRUN x `\n",
        ] {
            let d = p(text);
            assert_eq!(d.escape, '\\', "{text:?}");
            assert_eq!(
                d.stages[0].instructions[0].kind,
                Kind::Run {
                    cmd: Cmd::Shell("x `".into()),
                    heredocs: vec![],
                    flags: vec![]
                }
            );
        }
        assert_eq!(
            perr("# escape=x\nFROM a\n"),
            "Dockerfile:1: invalid escape token 'x' does not match ` or \\"
        );
        assert_eq!(
            perr("# escape=`\n# escape=\\\nFROM a\n"),
            "Dockerfile:2: only one escape parser directive can be used"
        );
        let d = p("# check=skip=all\n# escape=`\nFROM a\n");
        assert_eq!(d.escape, '`');
    }

    #[test]
    fn windows_style_backtick() {
        let text = "# escape=`\n\nFROM mcr.microsoft.com/windows/servercore\nCOPY testfile.txt c:\\\nRUN dir c:\\\nENV A=c:\\path B=`$x\n";
        let d = p(text);
        let ins = &d.stages[0].instructions;
        assert_eq!(
            ins[0].kind,
            Kind::Copy {
                srcs: s(&["testfile.txt"]),
                dest: "c:\\".into(),
                from: None,
                chown: None,
                chmod: None,
                heredocs: vec![]
            }
        );
        assert_eq!(
            ins[1].kind,
            Kind::Run {
                cmd: Cmd::Shell("dir c:\\".into()),
                heredocs: vec![],
                flags: vec![]
            }
        );
        let Kind::Env(pairs) = &ins[2].kind else {
            panic!()
        };
        let none = |_: &str| None;
        let vals: Vec<String> = pairs
            .iter()
            .map(|(_, v)| vars::expand(v, &none, d.escape).unwrap_or_default())
            .collect();
        assert_eq!(vals, s(&["c:\\path", "$x"]));
        // Without the directive the same file misparses as Docker's does:
        // `c:\` continues onto the next line.
        let d = p("FROM a\nCOPY testfile.txt c:\\\nRUN dir c:\\\n");
        assert_eq!(d.stages[0].instructions.len(), 1);
    }

    #[test]
    fn heredocs_run() {
        let d = p("FROM a\nRUN <<EOF\napt-get update\napt-get install -y vim\nEOF\nRUN x\n");
        let ins = &d.stages[0].instructions;
        let Kind::Run { cmd, heredocs, .. } = &ins[0].kind else {
            panic!()
        };
        assert_eq!(cmd, &Cmd::Shell("<<EOF".into()));
        assert_eq!(ins[0].original, "RUN <<EOF");
        assert_eq!(
            heredocs,
            &vec![Heredoc {
                name: "EOF".into(),
                body: "apt-get update\napt-get install -y vim\n".into(),
                expand: true,
                strip_tabs: false
            }]
        );
        assert_eq!(
            run_script(cmd, heredocs).map(|h| h.name.as_str()),
            Some("EOF")
        );
        assert_eq!(ins[1].line, 6);

        let d = p("FROM a\nRUN python3 <<'PY'\nprint('$HOME')\nPY\n");
        let Kind::Run { cmd, heredocs, .. } = &d.stages[0].instructions[0].kind else {
            panic!()
        };
        assert_eq!(cmd, &Cmd::Shell("python3 <<'PY'".into()));
        assert!(!heredocs[0].expand);
        assert_eq!(heredocs[0].name, "PY");
        assert!(run_script(cmd, heredocs).is_none());
        assert_eq!(
            run_shell_line("python3 <<'PY'", heredocs),
            "python3 <<'PY'\nprint('$HOME')\nPY"
        );
    }

    #[test]
    fn heredocs_several_and_tabs() {
        let text = "FROM a\nRUN --mount=type=cache,target=/c <<-FILE1 cat > /file1 && cat <<\"FILE2\" > /file2\n\tI am\n\t\tfirst\n\tFILE1\nI am\nsecond\nFILE2\nCMD x\n";
        let d = p(text);
        let ins = &d.stages[0].instructions;
        let Kind::Run {
            cmd,
            heredocs,
            flags,
        } = &ins[0].kind
        else {
            panic!()
        };
        assert_eq!(flags, &kv(&[("mount", "type=cache,target=/c")]));
        assert_eq!(
            cmd,
            &Cmd::Shell("<<-FILE1 cat > /file1 && cat <<\"FILE2\" > /file2".into())
        );
        assert_eq!(
            heredocs,
            &vec![
                Heredoc {
                    name: "FILE1".into(),
                    body: "I am\nfirst\n".into(),
                    expand: true,
                    strip_tabs: true
                },
                Heredoc {
                    name: "FILE2".into(),
                    body: "I am\nsecond\n".into(),
                    expand: false,
                    strip_tabs: false
                },
            ]
        );
        assert_eq!(ins[1].line, 9);
    }

    #[test]
    fn heredocs_copy() {
        let d = p("FROM a\nCOPY --chmod=755 <<EOF /usr/local/bin/hello\n#!/bin/sh\necho hello ${NAME}\nEOF\n");
        assert_eq!(
            d.stages[0].instructions[0].kind,
            Kind::Copy {
                srcs: vec![],
                dest: "/usr/local/bin/hello".into(),
                from: None,
                chown: None,
                chmod: Some("755".into()),
                heredocs: vec![Heredoc {
                    name: "EOF".into(),
                    body: "#!/bin/sh\necho hello ${NAME}\n".into(),
                    expand: true,
                    strip_tabs: false
                }]
            }
        );
        let d = p("FROM a\nCOPY <<one.txt real.txt <<two.txt /dest/\n1\none.txt\n2\ntwo.txt\n");
        let Kind::Copy { srcs, heredocs, .. } = &d.stages[0].instructions[0].kind else {
            panic!()
        };
        assert_eq!(srcs, &s(&["real.txt"]));
        assert_eq!(
            heredocs
                .iter()
                .map(|h| (h.name.as_str(), h.body.as_str()))
                .collect::<Vec<_>>(),
            [("one.txt", "1\n"), ("two.txt", "2\n")]
        );
        assert!(perr("FROM a\nCOPY a <<EOF\nx\nEOF\n").contains("destination cannot be a heredoc"));
        assert!(
            perr("FROM a\nADD <<EOF /x\nx\nEOF\n").contains("ADD with a heredoc is not supported")
        );
    }

    #[test]
    fn heredoc_edge_cases() {
        assert_eq!(
            perr("FROM a\nRUN <<EOF\necho never ends\n"),
            "Dockerfile:2: unterminated heredoc: no line \"EOF\" ends it"
        );
        // Quoted or embedded `<<` is no heredoc; nor is exec form.
        for cmd in [
            "echo \"<<EOF\"",
            "echo '<<EOF'",
            "echo a<<b",
            "echo \\<<EOF",
        ] {
            let d = p(&format!("FROM a\nRUN {cmd}\nRUN next\n"));
            let ins = &d.stages[0].instructions;
            assert_eq!(ins.len(), 2, "{cmd}");
            assert!(
                matches!(&ins[0].kind, Kind::Run { heredocs, .. } if heredocs.is_empty()),
                "{cmd}"
            );
        }
        let d = p("FROM a\nRUN [\"cat\", \"<<EOF\"]\nRUN next\n");
        assert_eq!(d.stages[0].instructions.len(), 2);
        // A heredoc ends only at an exact delimiter line.
        let d = p("FROM a\nRUN <<EOF\n EOF\nEOF \nEOF\n");
        let Kind::Run { heredocs, .. } = &d.stages[0].instructions[0].kind else {
            panic!()
        };
        assert_eq!(heredocs[0].body, " EOF\nEOF \n");
        // Heredoc body lines are not comments or continuations.
        let d = p("FROM a\nRUN <<EOF\n# not a comment \\\nEOF\n");
        let Kind::Run { heredocs, .. } = &d.stages[0].instructions[0].kind else {
            panic!()
        };
        assert_eq!(heredocs[0].body, "# not a comment \\\n");
        // `2<<EOF`, and ONBUILD RUN with a heredoc.
        let d = p("FROM a\nONBUILD RUN cat 0<<EOF\nhi\nEOF\n");
        let Kind::Onbuild(inner) = &d.stages[0].instructions[0].kind else {
            panic!()
        };
        let Kind::Run { heredocs, .. } = &inner.kind else {
            panic!()
        };
        assert_eq!(heredocs[0].body, "hi\n");
        // Partly quoted delimiter: no expansion.
        let d = p("FROM a\nRUN cat <<E\"O\"F\nx\nEOF\n");
        let Kind::Run { heredocs, .. } = &d.stages[0].instructions[0].kind else {
            panic!()
        };
        assert_eq!(
            (heredocs[0].name.as_str(), heredocs[0].expand),
            ("EOF", false)
        );
    }

    #[test]
    fn bom_and_comments() {
        let d = p("\u{feff}# syntax=docker/dockerfile:1.7\nFROM a\n  # indented comment\nRUN x # not a comment\n");
        assert_eq!(d.syntax.as_deref(), Some("docker/dockerfile:1.7"));
        assert_eq!(
            d.stages[0].instructions[0].kind,
            Kind::Run {
                cmd: Cmd::Shell("x # not a comment".into()),
                heredocs: vec![],
                flags: vec![]
            }
        );
    }

    #[test]
    fn realistic_multistage() {
        let text = r#"# syntax=docker/dockerfile:1

ARG GO_VERSION=1.22
ARG ALPINE_VERSION=3.19

FROM --platform=$BUILDPLATFORM golang:${GO_VERSION}-alpine AS build
WORKDIR /src
ENV CGO_ENABLED=0 \
    GOFLAGS="-trimpath -mod=readonly"
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod \
    go mod download
COPY . .
ARG TARGETOS TARGETARCH
RUN --mount=type=cache,target=/root/.cache/go-build \
    GOOS=$TARGETOS GOARCH=$TARGETARCH go build -o /out/app ./cmd/app

FROM alpine:${ALPINE_VERSION} AS runtime
LABEL org.opencontainers.image.title="app" \
      org.opencontainers.image.source="https://example.com/app"
RUN apk add --no-cache ca-certificates tzdata \
 && addgroup -S app && adduser -S -G app app
COPY --from=build --chown=app:app /out/app /usr/local/bin/app
COPY <<EOF /etc/app/config.yaml
listen: ":8080"
EOF
USER app
EXPOSE 8080/tcp
VOLUME ["/var/lib/app"]
HEALTHCHECK --interval=30s --timeout=3s CMD ["/usr/local/bin/app", "healthcheck"]
STOPSIGNAL SIGINT
ENTRYPOINT ["/usr/local/bin/app"]
CMD ["serve"]

FROM runtime
ONBUILD COPY . /app
"#;
        let d = p(text);
        assert_eq!(d.syntax.as_deref(), Some("docker/dockerfile:1"));
        assert_eq!(d.global_args.len(), 2);
        assert_eq!(d.stages.len(), 3);
        let b = &d.stages[0];
        assert_eq!(b.name.as_deref(), Some("build"));
        assert_eq!(b.from.line, 6);
        assert_eq!(
            b.from.kind,
            Kind::From {
                image: "golang:${GO_VERSION}-alpine".into(),
                name: Some("build".into()),
                platform: Some("$BUILDPLATFORM".into())
            }
        );
        let lines: Vec<usize> = b.instructions.iter().map(|i| i.line).collect();
        assert_eq!(lines, [7, 8, 10, 11, 13, 14, 15]);
        assert_eq!(
            b.instructions[1].kind,
            Kind::Env(kv(&[
                ("CGO_ENABLED", "0"),
                ("GOFLAGS", "\"-trimpath -mod=readonly\"")
            ]))
        );
        assert_eq!(
            b.instructions[5].kind,
            Kind::Arg(vec![("TARGETOS".into(), None), ("TARGETARCH".into(), None)])
        );
        let r = &d.stages[1];
        assert_eq!(r.name.as_deref(), Some("runtime"));
        let kinds: Vec<&str> = r.instructions.iter().map(|i| keyword(&i.kind)).collect();
        assert_eq!(
            kinds,
            [
                "LABEL",
                "RUN",
                "COPY",
                "COPY",
                "USER",
                "EXPOSE",
                "VOLUME",
                "HEALTHCHECK",
                "STOPSIGNAL",
                "ENTRYPOINT",
                "CMD"
            ]
        );
        let Kind::Copy { heredocs, dest, .. } = &r.instructions[3].kind else {
            panic!()
        };
        assert_eq!(
            (dest.as_str(), heredocs[0].body.as_str()),
            ("/etc/app/config.yaml", "listen: \":8080\"\n")
        );
        assert_eq!(r.instructions[4].line, 27);
        let Kind::Healthcheck(Some(h)) = &r.instructions[7].kind else {
            panic!()
        };
        assert_eq!(h.test, s(&["CMD", "/usr/local/bin/app", "healthcheck"]));
        assert_eq!(h.interval.as_deref(), Some("30s"));
        let last = &d.stages[2];
        assert_eq!((last.index, last.name.as_deref()), (2, None));
        assert!(
            matches!(&last.instructions[0].kind, Kind::Onbuild(i) if i.original == "COPY . /app")
        );
    }
}
