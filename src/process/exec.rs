//! The last step of every container process: find the program, exec it.

use crate::error::{Error, Result};
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

fn is_executable(p: &Path) -> bool {
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Resolves args[0] as execvp would, using the container's PATH, and fails
/// with the message runc gives so users recognise it.
pub fn find_program(arg0: &str, env: &[String]) -> Result<PathBuf> {
    if arg0.contains('/') {
        let p = PathBuf::from(arg0);
        if !p.exists() {
            return Err(Error::Other(format!(
                "exec: \"{arg0}\": stat {arg0}: no such file or directory"
            )));
        }
        if !is_executable(&p) {
            return Err(Error::Other(format!("exec: \"{arg0}\": permission denied")));
        }
        return Ok(p);
    }
    let path = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or(DEFAULT_PATH);
    path.split(':')
        .map(|dir| Path::new(if dir.is_empty() { "." } else { dir }).join(arg0))
        .find(|p| is_executable(p))
        .ok_or_else(|| {
            Error::Other(format!(
                "exec: \"{arg0}\": executable file not found in $PATH"
            ))
        })
}

fn cstrings<'a>(items: impl Iterator<Item = &'a [u8]>) -> Result<Vec<CString>> {
    items
        .map(|b| {
            CString::new(b).map_err(|_| Error::Other("argument or env contains a NUL byte".into()))
        })
        .collect()
}

/// Replaces this process with the program. Only returns on failure.
pub fn exec(program: &Path, args: &[String], env: &[String]) -> Error {
    let run = || -> Result<std::convert::Infallible> {
        let prog = CString::new(program.as_os_str().as_bytes())
            .map_err(|_| Error::Other("program path contains a NUL byte".into()))?;
        let argv = cstrings(args.iter().map(|s| s.as_bytes()))?;
        let envp = cstrings(env.iter().map(|s| s.as_bytes()))?;
        nix::unistd::execve(&prog, &argv, &envp)
            .map_err(|e| Error::sys(format!("exec {}", program.display()), e))
    };
    match run() {
        Err(e) => e,
        Ok(never) => match never {},
    }
}

/// HOME from the container's /etc/passwd when the spec does not set it, as runc does.
pub fn with_home(env: &[String], uid: u32) -> Vec<String> {
    let mut env = env.to_vec();
    if env.iter().any(|e| e.starts_with("HOME=")) {
        return env;
    }
    let home = std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|pw| {
            pw.lines().find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.len() >= 6 && f[2].parse() == Ok(uid)).then(|| f[5].to_string())
            })
        })
        .unwrap_or_else(|| "/".into());
    env.push(format!("HOME={home}"));
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_programs_on_path_and_names_missing_ones() {
        let env = vec!["PATH=/nonexistent:/bin:/usr/bin".to_string()];
        assert!(find_program("sh", &env).unwrap().ends_with("sh"));
        let e = find_program("no-such-program-xyz", &env)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("\"no-such-program-xyz\"") && e.contains("$PATH"),
            "{e}"
        );
        let e = find_program("/no/such/file", &env).unwrap_err().to_string();
        assert!(e.contains("no such file"), "{e}");
    }
}
