//! The library's error type: every variant says what failed and where.

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    // The cause is part of the message rather than a `source`, so the
    // one-line rendering at the edge does not print it twice.
    #[error("{path}: {err}")]
    Io { path: PathBuf, err: std::io::Error },
    #[error("{op}: {err}")]
    Sys { op: String, err: nix::Error },
    #[error("{path}: {msg}")]
    Config { path: PathBuf, msg: String },
    #[error("container \"{0}\" does not exist")]
    NotFound(String),
    #[error("container \"{0}\" already exists")]
    Exists(String),
    #[error("invalid container id \"{id}\": {why}")]
    InvalidId { id: String, why: &'static str },
    #[error("container \"{id}\" is {status}: {why}")]
    WrongState {
        id: String,
        status: String,
        why: &'static str,
    },
    #[error("container init: {0}")]
    Init(String),
    #[error("{0} is not supported yet")]
    Unsupported(String),
    #[error("{0}")]
    Other(String),
}

impl Error {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            err: source,
        }
    }

    pub fn sys(op: impl Into<String>, source: nix::Error) -> Self {
        Error::Sys {
            op: op.into(),
            err: source,
        }
    }
}

/// Attach "what we were doing" to a raw nix result.
pub trait SysContext<T> {
    fn sys(self, op: impl FnOnce() -> String) -> Result<T>;
}

impl<T> SysContext<T> for nix::Result<T> {
    fn sys(self, op: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error::sys(op(), e))
    }
}

/// Attach the path to an io result.
pub trait IoContext<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|e| Error::io(path, e))
    }
}
