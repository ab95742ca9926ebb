//! The state root: one directory per container, each guarded by a lock.

use super::record::State;
use crate::error::{Error, IoContext, Result};
use nix::fcntl::{Flock, FlockArg};
use std::fs::File;
use std::path::{Path, PathBuf};

pub const STATE_FILE: &str = "state.json";
pub const EXEC_FIFO: &str = "exec.fifo";

/// Container ids name directories, so they must never be able to name
/// anything but one entry of the root.
pub fn validate_id(id: &str) -> Result<()> {
    let bad = |why| {
        Err(Error::InvalidId {
            id: id.to_string(),
            why,
        })
    };
    if id.is_empty() {
        return bad("empty");
    }
    if id.len() > 1024 {
        return bad("longer than 1024 bytes");
    }
    if id == "." || id == ".." {
        return bad("reserved name");
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'+'))
    {
        return bad("only letters, digits and _ - . + are allowed");
    }
    Ok(())
}

pub struct Store {
    root: PathBuf,
}

/// A container directory held under an exclusive lock; the lock is released
/// when this is dropped.
pub struct Locked {
    pub dir: PathBuf,
    pub state: State,
    _lock: Flock<File>,
}

impl Store {
    pub fn new(root: &Path) -> Store {
        Store {
            root: root.to_path_buf(),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn ensure_root(&self) -> Result<()> {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o711)
            .create(&self.root)
            .at(&self.root)
    }

    /// Claims a new container directory. mkdir is the atomic step: of two
    /// creates with one id, exactly one gets here.
    pub fn claim(&self, state: State) -> Result<Locked> {
        validate_id(&state.id)?;
        self.ensure_root()?;
        let dir = self.root.join(&state.id);
        match std::fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(Error::Exists(state.id.clone()));
            }
            Err(e) => return Err(Error::io(&dir, e)),
        }
        let lock = lock_dir(&dir)?;
        let locked = Locked {
            dir,
            state,
            _lock: lock,
        };
        locked.save()?;
        Ok(locked)
    }

    /// Opens and locks an existing container.
    pub fn load(&self, id: &str) -> Result<Locked> {
        validate_id(id)?;
        let dir = self.root.join(id);
        let lock = match lock_dir(&dir) {
            Ok(l) => l,
            Err(Error::Io { err, .. }) if err.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::NotFound(id.to_string()));
            }
            Err(e) => return Err(e),
        };
        // Another command may have deleted it while we waited for the lock.
        let path = dir.join(STATE_FILE);
        let raw = match std::fs::read(&path) {
            Ok(raw) => raw,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::NotFound(id.to_string()));
            }
            Err(e) => return Err(Error::io(&path, e)),
        };
        let state: State = serde_json::from_slice(&raw).map_err(|e| Error::Config {
            path: path.clone(),
            msg: e.to_string(),
        })?;
        Ok(Locked {
            dir,
            state,
            _lock: lock,
        })
    }

    /// Ids of every container in the root, sorted.
    pub fn ids(&self) -> Result<Vec<String>> {
        let entries = match std::fs::read_dir(&self.root) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io(&self.root, e)),
        };
        let mut ids: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter(|e| e.path().join(STATE_FILE).exists())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        ids.sort();
        Ok(ids)
    }
}

fn lock_dir(dir: &Path) -> Result<Flock<File>> {
    let f = File::open(dir).at(dir)?;
    Flock::lock(f, FlockArg::LockExclusive)
        .map_err(|(_, e)| Error::sys(format!("flock {}", dir.display()), e))
}

impl Locked {
    /// Writes state.json atomically: readers see the old or the new file,
    /// never half of one.
    pub fn save(&self) -> Result<()> {
        let path = self.dir.join(STATE_FILE);
        let tmp = self.dir.join(".state.json.tmp");
        let data = serde_json::to_vec(&self.state)
            .map_err(|e| Error::Other(format!("encoding state: {e}")))?;
        std::fs::write(&tmp, data).at(&tmp)?;
        std::fs::rename(&tmp, &path).at(&path)
    }

    pub fn fifo_path(&self) -> PathBuf {
        self.dir.join(EXEC_FIFO)
    }

    /// Removes the container's directory; the lock goes with it.
    pub fn destroy(self) -> Result<()> {
        std::fs::remove_dir_all(&self.dir).at(&self.dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_that_could_escape_the_root_are_rejected() {
        for id in ["", ".", "..", "../x", "a/b", "a\0b", "x y"] {
            assert!(validate_id(id).is_err(), "{id:?} accepted");
        }
        for id in ["abc", "a-b_c.d", "0123456789abcdef", "x+y"] {
            assert!(validate_id(id).is_ok(), "{id:?} rejected");
        }
        assert!(validate_id(&"a".repeat(1025)).is_err());
    }
}
