//! The builder's side of RUN --mount (see [`crate::build::mounts`]):
//! `from=` resolved to a stage, an image or the context, what bind mounts
//! bring hashed into the step's key, and each mount made ready on the
//! host for the RUN container's spec.

use super::{Builder, StageState, StepDir};
use crate::build::copy::{self, Attrs, SourceRoot};
use crate::build::mounts::{self, CacheDir, Mount, Stubs, Type};
use crate::build::parse::Instruction;
use crate::error::{Error, IoContext, Result, SysContext};
use nix::mount::MsFlags;
use serde_json::Value;
use std::fs;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

/// What a RUN's mounts hold while it runs: the spec entries, the cache
/// locks, the read-only roots of other stages, and the mount points to
/// remove afterwards.
#[derive(Default)]
pub(super) struct Held {
    pub spec: Vec<Value>,
    pub stubs: Stubs,
    _caches: Vec<CacheDir>,
    _roots: Vec<StepDir>,
}

/// Where a mount's `from` points.
enum Root {
    Context,
    Dir(PathBuf),
}

impl Builder<'_> {
    /// `{file}:{line}: RUN --mount: {msg}`.
    fn mount_err(&self, ins: &Instruction, msg: impl std::fmt::Display) -> Error {
        Error::Other(format!(
            "{}:{}: RUN --mount: {msg}",
            self.o.file_label(),
            ins.line
        ))
    }

    /// Every RUN --mount that needs no substitution, checked before the
    /// first step runs (as BuildKit checks them when it parses), with the
    /// secrets they require.
    pub(super) fn check_mounts(&self, stages: &[crate::build::parse::Stage]) -> Result<()> {
        let empty = StageState {
            img: super::scratch_image(),
            key: String::new(),
            args: Default::default(),
            shell: Vec::new(),
            cmd_set: false,
        };
        for ins in stages.iter().flat_map(|s| &s.instructions) {
            if let crate::build::parse::Kind::Run { flags, .. } = &ins.kind {
                let plain: Vec<(String, String)> = flags
                    .iter()
                    .filter(|(_, v)| !v.contains('$'))
                    .cloned()
                    .collect();
                self.parse_mounts(&empty, ins, &plain)?;
            }
        }
        Ok(())
    }

    /// The RUN's --mount flags, substituted (ARG and ENV) and parsed.
    pub(super) fn parse_mounts(
        &self,
        st: &StageState,
        ins: &Instruction,
        flags: &[(String, String)],
    ) -> Result<Vec<Mount>> {
        let mut out: Vec<Mount> = Vec::new();
        for (_, v) in flags.iter().filter(|(k, _)| k == "mount") {
            let v = self.expand(st, ins, v)?;
            let m = mounts::parse(&v).map_err(|e| self.mount_err(ins, e))?;
            if out.iter().any(|o| o.target == m.target) {
                return Err(self.mount_err(ins, format!("two mounts at {}", m.target)));
            }
            if let Type::Secret { id, required: true } = &m.typ {
                if !self.o.secrets.contains_key(id) {
                    return Err(self.mount_err(
                        ins,
                        format!(
                            "secret \"{id}\" is required but not given \
                             (hoist build --secret id={id},src=FILE)"
                        ),
                    ));
                }
            }
            out.push(m);
        }
        Ok(out)
    }

    /// A stage, an image, or (None) the context, as a directory to read;
    /// with the key of its content.
    fn mount_root(
        &mut self,
        ins: &Instruction,
        from: Option<&str>,
    ) -> Result<(Root, Option<StepDir>, String)> {
        let Some(f) = from else {
            return Ok((Root::Context, None, String::new()));
        };
        let (guard, dir, key) = self
            .source_dir(f)
            .map_err(|e| self.mount_err(ins, format!("from={f}: {e}")))?;
        Ok((Root::Dir(dir), guard, key))
    }

    /// What the bind mounts bring, for the step's cache key (cache, tmpfs
    /// and secret mounts bring nothing to it).
    pub(super) fn mounts_key(&mut self, ins: &Instruction, ms: &[Mount]) -> Result<String> {
        let mut parts = Vec::new();
        for m in ms.iter().filter(|m| matches!(m.typ, Type::Bind { .. })) {
            let (root, _guard, key) = self.mount_root(ins, m.from.as_deref())?;
            let content = match root {
                Root::Context => {
                    let r = self.context_root();
                    let found = copy::resolve(&r, std::slice::from_ref(&m.source))
                        .map_err(|e| self.mount_err(ins, e))?;
                    copy::hash(&r, &found).map_err(|e| self.mount_err(ins, e))?
                }
                Root::Dir(_) => key,
            };
            parts.push(format!("{}={}:{content}", m.target, m.source));
        }
        Ok(parts.join("\n"))
    }

    fn context_root(&self) -> SourceRoot<'_> {
        SourceRoot {
            fd: self.context.as_fd(),
            ignore: Some(&self.ignore),
            what: "build context",
        }
    }

    /// Makes each mount ready on the host, its scratch under `sd`.
    pub(super) fn prepare_mounts(
        &mut self,
        ins: &Instruction,
        ms: &[Mount],
        sd: &mut StepDir,
        merged: &Path,
    ) -> Result<Held> {
        let mut held = Held::default();
        for (i, m) in ms.iter().enumerate() {
            let scratch = sd.dir.join(format!("mount-{i}"));
            let owner = (m.uid.unwrap_or(0), m.gid.unwrap_or(0));
            let entry = match &m.typ {
                Type::Tmpfs { size } => mounts::tmpfs_entry(&m.target, *size),
                Type::Secret { id, .. } => {
                    let Some(src) = self.o.secrets.get(id) else {
                        continue; // not required, not given: no mount
                    };
                    let data = mounts::read_secret(id, src).map_err(|e| self.mount_err(ins, e))?;
                    let mode = m.mode.unwrap_or(0o400);
                    let file = mounts::secret_file(&scratch, &data, owner, mode)?;
                    sd.mounted.push(scratch.clone());
                    mounts::bind_entry(&file, &m.target, false)
                }
                Type::Cache { id, sharing, ro } => {
                    let root = self.store.dir.join("cache-mounts");
                    let mode = m.mode.unwrap_or(0o755);
                    let c = mounts::cache_dir(&root, id, *sharing, owner, mode, &scratch)?;
                    if c.fresh && m.from.is_some() {
                        self.seed_cache(ins, m, &c.path, sd)?;
                    }
                    let e = mounts::bind_entry(&c.path, &m.target, !ro);
                    held._caches.push(c);
                    e
                }
                Type::Bind { rw } => {
                    let src = self.bind_source(ins, m, &scratch, sd, &mut held)?;
                    let src = if *rw && src.is_dir() {
                        // Writes go to a scratch upper, thrown away.
                        let (up, work, top) = (
                            scratch.join("upper"),
                            scratch.join("work"),
                            scratch.join("rw"),
                        );
                        for d in [&up, &work, &top] {
                            fs::create_dir_all(d).at(d)?;
                        }
                        crate::image::overlay::mount_overlay(&[src], &up, &work, &top)?;
                        sd.mounted.push(top.clone());
                        top
                    } else if *rw {
                        let copy = scratch.join("file");
                        fs::copy(&src, &copy).at(&src)?;
                        copy
                    } else {
                        src
                    };
                    mounts::bind_entry(&src, &m.target, *rw)
                }
            };
            held.stubs.note(merged, &m.target);
            held.spec.push(entry);
        }
        Ok(held)
    }

    /// The host path a bind mount reads: `source` inside its root, held
    /// by a bind mount of ours in `scratch` (resolved inside the root, so
    /// a symlink cannot lead out of it). From the context, what
    /// .dockerignore leaves out is left out, as BuildKit sends the context.
    fn bind_source(
        &mut self,
        ins: &Instruction,
        m: &Mount,
        scratch: &Path,
        sd: &mut StepDir,
        held: &mut Held,
    ) -> Result<PathBuf> {
        let (root, guard, _) = self.mount_root(ins, m.from.as_deref())?;
        held._roots.extend(guard);
        fs::create_dir_all(scratch).at(scratch)?;
        let rel = Path::new(m.source.trim_start_matches('/'));
        let not_found = |e| {
            self.mount_err(
                ins,
                format!(
                    "source \"{}\": {e} in {}",
                    m.source,
                    m.from.as_deref().unwrap_or("the build context")
                ),
            )
        };
        if let (Root::Context, false) = (&root, self.ignore.is_empty()) {
            let r = self.context_root();
            let found = copy::resolve(&r, std::slice::from_ref(&m.source))
                .map_err(|e| self.mount_err(ins, e))?;
            let dest = scratch.join("filtered");
            fs::create_dir_all(&dest).at(&dest)?;
            let target = fs::File::open(&dest).at(&dest)?;
            let is_dir = found.iter().any(|f| f.is_dir);
            let to = if is_dir { "/" } else { "/file" };
            let keep = Attrs {
                owner: None,
                chmod: None,
            };
            copy::copy(&r, &found, target.as_fd(), to, keep).map_err(|e| self.mount_err(ins, e))?;
            return Ok(if is_dir { dest } else { dest.join("file") });
        }
        let dir = match &root {
            Root::Context => fs::File::open(&self.o.context).at(&self.o.context)?,
            Root::Dir(d) => fs::File::open(d).at(d)?,
        };
        let fd =
            crate::linux::paths::open_in_root(dir.as_fd(), rel, libc::O_PATH).map_err(not_found)?;
        let st = nix::sys::stat::fstat(&fd).map_err(|e| Error::sys("stat", e))?;
        let at = scratch.join("src");
        if st.st_mode & libc::S_IFMT == libc::S_IFDIR {
            fs::create_dir_all(&at).at(&at)?;
        } else {
            fs::write(&at, b"").at(&at)?;
        }
        nix::mount::mount(
            Some(Path::new(&crate::linux::paths::fd_path(&fd))),
            &at,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .sys(|| format!("bind-mounting {} for RUN --mount", m.source))?;
        sd.mounted.push(at.clone());
        Ok(at)
    }

    /// A new cache mount's first content: `source` of its `from`.
    fn seed_cache(
        &mut self,
        ins: &Instruction,
        m: &Mount,
        dir: &Path,
        sd: &mut StepDir,
    ) -> Result<()> {
        let mut held = Held::default();
        let scratch = sd.dir.join("seed");
        let src = self.bind_source(ins, m, &scratch, sd, &mut held)?;
        let parent = src.parent().unwrap_or(Path::new("/")).to_path_buf();
        let root_dir = fs::File::open(&parent).at(&parent)?;
        let name = src.file_name().map(PathBuf::from).unwrap_or_default();
        let r = SourceRoot {
            fd: root_dir.as_fd(),
            ignore: None,
            what: "cache mount source",
        };
        let found = copy::resolve(&r, &[name.to_string_lossy().into_owned()])?;
        let target = fs::File::open(dir).at(dir)?;
        let keep = Attrs {
            owner: None,
            chmod: None,
        };
        copy::copy(&r, &found, target.as_fd(), "/", keep).map_err(|e| self.mount_err(ins, e))
    }
}
