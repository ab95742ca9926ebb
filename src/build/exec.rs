//! The stage executor: each instruction of each stage, in order, on an
//! image state (config + layers) that starts from the stage's base.
//!
//! Metadata instructions change the config and add a history entry.
//! RUN, COPY and ADD mount an overlay of the state's layers (unpacked once
//! in the store, as `unpack --overlay` does) with a fresh upper directory,
//! make their changes through it (RUN in a brig container), and commit the
//! upper directory as a new layer, which then also becomes that layer's
//! unpacked directory in the store. Every step has a cache key (its
//! parent's key, the instruction after substitution, and for COPY/ADD the
//! content of what it copies); a step whose key is in the cache is not run.

mod run_mounts;
mod stages;

use super::cache;
use super::commit;
use super::copy::{self, Attrs, SourceRoot};
use super::ignore::Ignore;
use super::parse::{self, Cmd, Dockerfile, Instruction, Kind};
use super::run_step::{self, Network};
use super::vars;
use crate::error::{Error, IoContext, Result, SysContext};
use crate::image::config::strings;
use crate::image::layout::{Descriptor, Manifest, Platform};
use crate::image::overlay;
use crate::image::pull::{self, PullOptions};
use crate::image::reference::Reference;
use crate::image::source::Source;
use crate::image::store::Store;
use nix::mount::MntFlags;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::fs;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The PATH of an image whose base sets none (BuildKit's and buildah's).
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A layer of an image being built.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Layer {
    pub desc: Descriptor,
    pub diff_id: String,
}

/// An image: its config JSON and its layers.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Image {
    pub config: Value,
    pub layers: Vec<Layer>,
}

pub struct Options {
    pub context: PathBuf,
    pub dockerfile: PathBuf,
    pub build_args: BTreeMap<String, String>,
    pub target: Option<String>,
    pub no_cache: bool,
    pub network: Network,
    pub pull: PullOptions,
    pub quiet: bool,
    /// `--secret`s for RUN --mount=type=secret.
    pub secrets: super::mounts::Secrets,
    /// `--cache-from`: more cache entries to reuse.
    pub cache_from: Vec<cache::CacheRef>,
    /// `--build-context NAME=...`, by name.
    pub build_contexts: BTreeMap<String, BuildContext>,
}

/// What `--build-context NAME=VALUE` names for FROM, COPY --from and
/// RUN --mount from= (before any stage or image of that name).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BuildContext {
    /// A local directory.
    Dir(PathBuf),
    /// An image source, as `hoist unpack` takes it.
    Image(String),
}

impl BuildContext {
    /// `NAME=DIR`, `NAME=docker-image://REF`, or `NAME=` any image source
    /// with a transport (`oci:`, `oci-archive:`, `docker-archive:`,
    /// `docker://`).
    pub fn parse(s: &str) -> Result<(String, BuildContext)> {
        let bad = |why: String| Error::Other(format!("--build-context {s}: {why}"));
        let (name, value) = s
            .split_once('=')
            .filter(|(n, v)| !n.is_empty() && !v.is_empty())
            .ok_or_else(|| bad("want NAME=DIR or NAME=docker-image://REF".into()))?;
        let name = name.to_lowercase();
        if let Some(r) = value.strip_prefix("docker-image://") {
            return Ok((name, BuildContext::Image(r.to_string())));
        }
        if ["oci:", "oci-archive:", "docker-archive:", "docker://"]
            .iter()
            .any(|p| value.starts_with(p))
        {
            return Ok((name, BuildContext::Image(value.to_string())));
        }
        let dir = fs::canonicalize(value).map_err(|e| bad(format!("{value}: {e}")))?;
        if !dir.is_dir() {
            return Err(bad(format!(
                "{value} is not a directory (an image wants docker-image://REF or oci:DIR)"
            )));
        }
        Ok((name, BuildContext::Dir(dir)))
    }
}

impl Options {
    /// How errors name the Dockerfile: its file name, as Docker does.
    pub fn file_label(&self) -> String {
        self.dockerfile
            .file_name()
            .map(|f| f.to_string_lossy().into_owned())
            .unwrap_or_else(|| "Dockerfile".into())
    }
}

/// A stage as it is being built.
struct StageState {
    img: Image,
    key: String,
    /// ARGs declared in the stage (and their values).
    args: BTreeMap<String, String>,
    shell: Vec<String>,
    /// Whether this stage set CMD (an inherited one does not survive a
    /// new ENTRYPOINT).
    cmd_set: bool,
}

pub struct Builder<'a> {
    store: &'a Store,
    o: &'a Options,
    file: &'a Dockerfile,
    ignore: Ignore,
    context: fs::File,
    /// Finished stages, by index.
    done: Vec<Option<Image>>,
    /// The stage being built: names refer to stages before it.
    current: usize,
    /// Each stage's first step number (0-based), in Dockerfile order.
    first_step: Vec<usize>,
    /// Where RUN containers keep their state.
    brig_root: PathBuf,
    step: usize,
    steps: usize,
    epoch: Option<i64>,
    /// --cache-from, read lazily.
    imports: Vec<cache::Import>,
    /// The cache keys of this build's steps (noted by `cached`, which
    /// the steps call while they borrow the builder).
    keys: std::cell::RefCell<Vec<String>>,
}

/// The time a build records: SOURCE_DATE_EPOCH when set (reproducible
/// builds), else now.
pub(crate) fn now() -> String {
    match std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
    {
        Some(s) => {
            humantime::format_rfc3339(std::time::UNIX_EPOCH + std::time::Duration::from_secs(s))
                .to_string()
        }
        None => humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
    }
}

fn sha(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0]);
    }
    hex::encode(h.finalize())
}

/// An image that is nothing: FROM scratch.
fn scratch_image() -> Image {
    let p = Platform::host();
    Image {
        config: json!({
            "architecture": p.architecture,
            "os": p.os,
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": []},
            "history": [],
        }),
        layers: Vec::new(),
    }
}

/// Unmounts and removes a step's scratch directory, also on failure.
struct StepDir {
    dir: PathBuf,
    mounted: Vec<PathBuf>,
}

impl StepDir {
    fn unmount(&mut self) -> Result<()> {
        while let Some(m) = self.mounted.pop() {
            nix::mount::umount2(&m, MntFlags::empty())
                .sys(|| format!("unmounting {}", m.display()))?;
        }
        Ok(())
    }
}

impl Drop for StepDir {
    fn drop(&mut self) {
        for m in self.mounted.drain(..).rev() {
            let _ = nix::mount::umount2(&m, MntFlags::MNT_DETACH);
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

impl<'a> Builder<'a> {
    pub fn new(store: &'a Store, o: &'a Options, file: &'a Dockerfile) -> Result<Builder<'a>> {
        let context = fs::File::open(&o.context).at(&o.context)?;
        let ignore_path = o.context.join(".dockerignore");
        let ignore = match fs::read_to_string(&ignore_path) {
            Ok(t) => Ignore::parse(&t),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ignore::parse(""),
            Err(e) => return Err(Error::io(&ignore_path, e)),
        };
        let brig_root = store.tmp_path("brig");
        let steps = file.stages.iter().map(|s| s.instructions.len() + 1).sum();
        Ok(Builder {
            store,
            o,
            file,
            ignore,
            context,
            done: vec![None; file.stages.len()],
            current: 0,
            first_step: vec![0; file.stages.len()],
            brig_root,
            step: 0,
            steps,
            epoch: std::env::var("SOURCE_DATE_EPOCH")
                .ok()
                .and_then(|s| s.parse().ok()),
            imports: o
                .cache_from
                .iter()
                .map(|c| cache::Import::open(c, &o.pull.registry))
                .collect::<Result<_>>()?,
            keys: Default::default(),
        })
    }

    fn say(&self, line: &str) {
        if !self.o.quiet {
            println!("{line}");
        }
    }

    fn err(&self, ins: &Instruction, msg: impl std::fmt::Display) -> Error {
        let file = self.o.file_label();
        Error::Other(format!(
            "{file}:{}: {}: {msg}",
            ins.line,
            first_word(&ins.original)
        ))
    }

    /// Builds up to the target stage (the last one by default); returns its
    /// image.
    pub fn build(&mut self) -> Result<Image> {
        let last = match &self.o.target {
            None => self.file.stages.len().saturating_sub(1),
            Some(t) => self
                .file
                .stages
                .iter()
                .position(|s| s.name.as_deref() == Some(t.to_lowercase().as_str()))
                .ok_or_else(|| Error::Other(format!("--target {t}: no stage of that name")))?,
        };
        if self.file.stages.is_empty() {
            return Err(Error::Other("the Dockerfile has no FROM".into()));
        }
        self.check_mounts(&self.file.stages[..=last])?;
        let waves = self.plan(last);
        let r = (|| {
            for wave in waves {
                self.wave(&wave)?;
            }
            self.done[last]
                .take()
                .ok_or_else(|| Error::Other("no stage was built".into()))
        })();
        let _ = fs::remove_dir_all(&self.brig_root);
        r
    }

    /// Values of the global ARGs (before the first FROM), for FROM lines.
    fn global_args(&self) -> Result<BTreeMap<String, String>> {
        let mut out = BTreeMap::new();
        for ins in &self.file.global_args {
            if let Kind::Arg(list) = &ins.kind {
                for (k, default) in list {
                    let look = |n: &str| out.get(n).cloned();
                    let v = match self.o.build_args.get(k) {
                        Some(v) => Some(v.clone()),
                        None => default
                            .as_ref()
                            .map(|d| vars::expand(d, &look, self.file.escape))
                            .transpose()
                            .map_err(|e| self.err(ins, e))?,
                    };
                    out.insert(k.clone(), v.unwrap_or_default());
                }
            }
        }
        Ok(out)
    }

    fn stage(&mut self, i: usize) -> Result<Image> {
        self.current = i;
        self.step = self.first_step[i];
        let stage = &self.file.stages[i];
        let globals = self.global_args()?;
        let Kind::From { image, .. } = &stage.from.kind else {
            return Err(self.err(&stage.from, "a stage must start with FROM"));
        };
        let look = |n: &str| globals.get(n).cloned();
        let base =
            vars::expand(image, &look, self.file.escape).map_err(|e| self.err(&stage.from, e))?;
        self.step += 1;
        self.say(&format!(
            "STEP {}/{}: {}",
            self.step, self.steps, stage.from.original
        ));
        let (mut img, key) = self.base(&base).map_err(|e| self.err(&stage.from, e))?;
        // A base without Env gets the default PATH in the image's config,
        // as both BuildKit and buildah write it.
        if strings(&img.config["config"]["Env"]).is_empty() {
            if !img.config["config"].is_object() {
                img.config["config"] = json!({});
            }
            img.config["config"]["Env"] = json!([format!("PATH={DEFAULT_PATH}")]);
        }
        let mut st = StageState {
            img,
            key,
            args: BTreeMap::new(),
            shell: vec!["/bin/sh".into(), "-c".into()],
            cmd_set: false,
        };
        if let Some(sh) = st.img.config["config"]["Shell"].as_array() {
            let sh: Vec<String> = sh
                .iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect();
            if !sh.is_empty() {
                st.shell = sh;
            }
        }
        // ONBUILD triggers of the base run first, then are consumed.
        let triggers = strings(&st.img.config["config"]["OnBuild"]);
        if let Some(c) = st.img.config["config"].as_object_mut() {
            c.remove("OnBuild");
        }
        for t in triggers {
            let parsed = parse::parse(&format!("FROM scratch\n{t}\n"), "ONBUILD")?;
            for ins in parsed.stages.into_iter().flat_map(|s| s.instructions) {
                self.say(&format!("ONBUILD trigger: {}", ins.original));
                let cached = self.instruction(&mut st, &ins, &globals)?;
                if cached {
                    self.say("--> Using cache");
                }
            }
        }
        for ins in &stage.instructions {
            crate::interrupt::check()?;
            self.step += 1;
            self.say(&format!(
                "STEP {}/{}: {}",
                self.step, self.steps, ins.original
            ));
            let t = Instant::now();
            let cached = self.instruction(&mut st, ins, &globals)?;
            if cached {
                self.say("--> Using cache");
            } else if matches!(
                ins.kind,
                Kind::Run { .. } | Kind::Copy { .. } | Kind::Add { .. }
            ) {
                self.say(&format!("--> {:.2}s", t.elapsed().as_secs_f64()));
            }
        }
        Ok(st.img)
    }

    /// The base of a stage: scratch, an earlier stage, or an image (from
    /// the store, a layout or archive, or a registry), with its cache key.
    fn base(&mut self, name: &str) -> Result<(Image, String)> {
        if name == "scratch" {
            return Ok((scratch_image(), sha(&["scratch"])));
        }
        match self.o.build_contexts.get(name) {
            Some(BuildContext::Dir(d)) => {
                return Err(Error::Other(format!(
                    "\"{name}\" is the directory {} (--build-context): FROM needs an image; \
                     use it with COPY --from or RUN --mount from=",
                    d.display()
                )))
            }
            Some(BuildContext::Image(r)) => return self.image(&r.clone()),
            None => {}
        }
        if let Some(idx) = self.stage_index(name) {
            let img = self.stage_image(idx)?;
            let key = sha(&[
                "stage",
                &serde_json::to_string(&img.config).unwrap_or_default(),
            ]);
            return Ok((img, key));
        }
        self.image(name)
    }

    /// What `name` in COPY --from or --mount from= reads: a directory of
    /// --build-context, or the rootfs of a --build-context image, a stage
    /// or an image, mounted read-only for as long as the guard lives; and
    /// a key of its content (an image's diff_ids, a directory's hash).
    fn source_dir(&mut self, name: &str) -> Result<(Option<StepDir>, PathBuf, String)> {
        let img = match self.o.build_contexts.get(name) {
            Some(BuildContext::Dir(d)) => {
                let d = d.clone();
                let f = fs::File::open(&d).at(&d)?;
                let r = SourceRoot {
                    fd: f.as_fd(),
                    ignore: None,
                    what: name,
                };
                let key = copy::hash(&r, &copy::resolve(&r, &["/".to_string()])?)?;
                return Ok((None, d, key));
            }
            Some(BuildContext::Image(r)) => self.image(&r.clone())?.0,
            None => match self.stage_index(name) {
                Some(i) => self.stage_image(i)?,
                None => self.image(name)?.0,
            },
        };
        let key: Vec<&str> = img.layers.iter().map(|l| l.diff_id.as_str()).collect();
        let key = key.join(",");
        let (guard, dir) = self.read_only_root(&img)?;
        Ok((guard, dir, key))
    }

    /// The built stage `name` (or index) stands for, if it is one.
    fn stage_index(&self, name: &str) -> Option<usize> {
        self.stage_before(name, self.current)
            .filter(|i| self.done[*i].is_some())
    }

    /// The stage before `before` that `name` (or index) names.
    fn stage_before(&self, name: &str, before: usize) -> Option<usize> {
        let lname = name.to_lowercase();
        if let Some(i) = self
            .file
            .stages
            .iter()
            .take(before)
            .position(|s| s.name.as_deref() == Some(lname.as_str()))
        {
            return Some(i);
        }
        name.parse::<usize>().ok().filter(|i| *i < before)
    }

    /// The image of a built stage.
    fn stage_image(&self, i: usize) -> Result<Image> {
        self.done[i]
            .clone()
            .ok_or_else(|| Error::Other(format!("stage {i} was not built")))
    }

    /// An image by reference, brought into the store if it is not there.
    fn image(&mut self, name: &str) -> Result<(Image, String)> {
        let src = Source::parse(name)?;
        let scratch = self.store.tmp_path("base");
        let img = match &src {
            Source::Name(n) => {
                let full = Reference::parse(n)?.to_string();
                if self.store.lookup(&full)?.is_none() {
                    pull::pull_registry(self.store, n, &self.o.pull)?;
                }
                crate::image::source::from_store(
                    Store::open(&self.store.dir)?,
                    &full,
                    &self.o.pull.platform,
                )?
            }
            _ => {
                fs::create_dir_all(&scratch).at(&scratch)?;
                let opened = src.open(&self.store.dir, &scratch.join("x"), &self.o.pull)?;
                if !matches!(src, Source::Registry(_)) {
                    let bytes = opened.manifest_bytes()?;
                    pull::import_as(
                        self.store,
                        &opened.layout,
                        name,
                        None,
                        &opened.mdesc,
                        &bytes,
                        true,
                    )?;
                }
                opened
            }
        };
        let _ = fs::remove_dir_all(&scratch);
        let config: Value = self.store.layout().json_blob(&img.manifest.config)?;
        let ids = strings(&config["rootfs"]["diff_ids"]);
        if ids.len() != img.manifest.layers.len() {
            return Err(Error::Other(format!(
                "{name}: the config lists {} diff_ids for {} layers",
                ids.len(),
                img.manifest.layers.len()
            )));
        }
        let layers = img
            .manifest
            .layers
            .iter()
            .zip(ids)
            .map(|(d, id)| Layer {
                desc: Descriptor {
                    platform: None,
                    annotations: Default::default(),
                    ..d.clone()
                },
                diff_id: id,
            })
            .collect();
        let key = sha(&["image", &img.mdesc.digest]);
        Ok((Image { config, layers }, key))
    }

    /// Variables for substitution: ENV over ARG.
    fn lookup<'s>(st: &'s StageState) -> impl Fn(&str) -> Option<String> + 's {
        move |n: &str| {
            let env = st.img.config["config"]["Env"].as_array();
            env.into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .find_map(|kv| {
                    kv.split_once('=')
                        .filter(|(k, _)| *k == n)
                        .map(|(_, v)| v.to_string())
                })
                .or_else(|| st.args.get(n).cloned())
        }
    }

    fn expand(&self, st: &StageState, ins: &Instruction, s: &str) -> Result<String> {
        let look = Self::lookup(st);
        vars::expand(s, &look, self.file.escape).map_err(|e| self.err(ins, e))
    }

    fn history(&self, st: &mut StageState, created_by: String, empty: bool) {
        let mut h = json!({"created": now(), "created_by": created_by});
        if empty {
            h["empty_layer"] = json!(true);
        }
        if !st.img.config["history"].is_array() {
            st.img.config["history"] = json!([]);
        }
        if let Some(a) = st.img.config["history"].as_array_mut() {
            a.push(h);
        }
    }

    fn cfg(st: &mut StageState) -> &mut Map<String, Value> {
        if !st.img.config["config"].is_object() {
            st.img.config["config"] = json!({});
        }
        st.img.config["config"]
            .as_object_mut()
            .expect("config was just made an object")
    }

    /// Runs one instruction; returns whether it came from the cache.
    fn instruction(
        &mut self,
        st: &mut StageState,
        ins: &Instruction,
        globals: &BTreeMap<String, String>,
    ) -> Result<bool> {
        let nop = |s: &str| format!("/bin/sh -c #(nop) {s}");
        match &ins.kind {
            Kind::From { .. } => return Err(self.err(ins, "FROM inside a stage")),
            Kind::Arg(list) => {
                // Every default is expanded with the values from before the
                // instruction (`ARG X=1 Y=${X}2` gives Y the old X), as
                // BuildKit and buildah expand a whole instruction at once.
                let mut values = Vec::new();
                for (k, default) in list {
                    let v = match self.o.build_args.get(k) {
                        Some(v) => v.clone(),
                        None => match default {
                            Some(d) => self.expand(st, ins, d)?,
                            None => globals.get(k).cloned().unwrap_or_default(),
                        },
                    };
                    values.push((k.clone(), v));
                }
                st.args.extend(values);
                st.key = sha(&[
                    &st.key,
                    "ARG",
                    &serde_json::to_string(&st.args).unwrap_or_default(),
                ]);
                // buildah's history names the keys only: values may be
                // build arguments the user does not want in the image.
                let keys: Vec<&str> = list.iter().map(|(k, _)| k.as_str()).collect();
                self.history(st, nop(&format!("ARG {}", keys.join(" "))), true);
            }
            Kind::Env(pairs) => {
                // Substitution sees the environment from before the
                // instruction: `ENV a=1 b=$a` gives b the old a.
                let expanded = pairs
                    .iter()
                    .map(|(k, v)| Ok((self.expand(st, ins, k)?, self.expand(st, ins, v)?)))
                    .collect::<Result<Vec<_>>>()?;
                for (k, v) in expanded {
                    let env = Self::cfg(st).entry("Env").or_insert_with(|| json!([]));
                    if let Some(a) = env.as_array_mut() {
                        set_env(a, &k, &v);
                    }
                }
                self.meta_done(st, ins, nop(&ins.original));
            }
            Kind::Label(pairs) => {
                for (k, v) in pairs {
                    let k = self.expand(st, ins, k)?;
                    let v = self.expand(st, ins, v)?;
                    let l = Self::cfg(st).entry("Labels").or_insert_with(|| json!({}));
                    if !l.is_object() {
                        *l = json!({});
                    }
                    l[k] = json!(v);
                }
                self.meta_done(st, ins, nop(&ins.original));
            }
            Kind::Workdir(w) => {
                let w = self.expand(st, ins, w)?;
                let cur = Self::cfg(st)
                    .get("WorkingDir")
                    .and_then(Value::as_str)
                    .unwrap_or("/")
                    .to_string();
                let new = if w.starts_with('/') {
                    PathBuf::from(&w)
                } else {
                    Path::new(if cur.is_empty() { "/" } else { &cur }).join(&w)
                };
                let path = clean_abs(&new);
                Self::cfg(st).insert("WorkingDir".into(), json!(path));
                if path == "/" {
                    self.meta_done(st, ins, nop(&ins.original));
                } else {
                    return self.make_workdir(st, ins, &path, nop(&ins.original));
                }
            }
            Kind::User(u) => {
                let u = self.expand(st, ins, u)?;
                Self::cfg(st).insert("User".into(), json!(u));
                self.meta_done(st, ins, nop(&ins.original));
            }
            Kind::Expose(ports) => {
                for p in ports {
                    let words = vars::expand_words(p, &Self::lookup(st), self.file.escape)
                        .map_err(|e| self.err(ins, e))?;
                    for p in words {
                        if !valid_port(&p) {
                            return Err(self.err(
                                ins,
                                format!(
                                    "\"{p}\" is not a port or a range with a protocol \
                                     (PORT[-PORT][/tcp|udp|sctp])"
                                ),
                            ));
                        }
                        let p = if p.contains('/') {
                            p
                        } else {
                            format!("{p}/tcp")
                        };
                        let e = Self::cfg(st)
                            .entry("ExposedPorts")
                            .or_insert_with(|| json!({}));
                        e[p] = json!({});
                    }
                }
                self.meta_done(st, ins, nop(&ins.original));
            }
            Kind::Volume(vols) => {
                for v in vols {
                    let v = self.expand(st, ins, v)?;
                    let e = Self::cfg(st).entry("Volumes").or_insert_with(|| json!({}));
                    e[v] = json!({});
                }
                self.meta_done(st, ins, nop(&ins.original));
            }
            Kind::StopSignal(s) => {
                let s = self.expand(st, ins, s)?;
                Self::cfg(st).insert("StopSignal".into(), json!(s));
                self.meta_done(st, ins, nop(&ins.original));
            }
            Kind::Cmd(c) => {
                let v = self.cmd_json(st, c);
                Self::cfg(st).insert("Cmd".into(), v);
                st.cmd_set = true;
                self.meta_done(st, ins, nop(&ins.original));
            }
            Kind::Entrypoint(c) => {
                let v = self.cmd_json(st, c);
                let cfg = Self::cfg(st);
                cfg.insert("Entrypoint".into(), v);
                // An inherited CMD does not survive a new ENTRYPOINT (Docker).
                if !st.cmd_set {
                    Self::cfg(st).insert("Cmd".into(), Value::Null);
                }
                self.meta_done(st, ins, nop(&ins.original));
            }
            Kind::Shell(sh) => {
                st.shell = sh.clone();
                Self::cfg(st).insert("Shell".into(), json!(sh));
                self.meta_done(st, ins, nop(&ins.original));
            }
            Kind::Healthcheck(h) => {
                let v = match h {
                    None => json!({"Test": ["NONE"]}),
                    Some(h) => {
                        let mut v = json!({"Test": h.test});
                        let dur = |s: &Option<String>| -> Result<Option<u64>> {
                            s.as_ref()
                                .map(|s| {
                                    humantime::parse_duration(s)
                                        .map(|d| d.as_nanos() as u64)
                                        .map_err(|e| {
                                            self.err(ins, format!("duration \"{s}\": {e}"))
                                        })
                                })
                                .transpose()
                        };
                        for (k, d) in [
                            ("Interval", &h.interval),
                            ("Timeout", &h.timeout),
                            ("StartPeriod", &h.start_period),
                        ] {
                            if let Some(n) = dur(d)? {
                                v[k] = json!(n);
                            }
                        }
                        if let Some(r) = h.retries {
                            v["Retries"] = json!(r);
                        }
                        v
                    }
                };
                Self::cfg(st).insert("Healthcheck".into(), v);
                self.meta_done(st, ins, nop(&ins.original));
            }
            Kind::Onbuild(inner) => {
                let e = Self::cfg(st).entry("OnBuild").or_insert_with(|| json!([]));
                if let Some(a) = e.as_array_mut() {
                    a.push(json!(inner.original));
                }
                self.meta_done(st, ins, nop(&ins.original));
            }
            Kind::Maintainer(m) => {
                st.img.config["author"] = json!(m);
                self.meta_done(st, ins, nop(&ins.original));
            }
            Kind::Run {
                cmd,
                heredocs,
                flags,
            } => return self.run(st, ins, cmd, heredocs, flags),
            Kind::Copy {
                srcs,
                dest,
                from,
                chown,
                chmod,
                heredocs,
            } => {
                return self.copy(
                    st,
                    ins,
                    srcs,
                    dest,
                    from.as_deref(),
                    chown,
                    chmod,
                    heredocs,
                    false,
                )
            }
            Kind::Add {
                srcs,
                dest,
                chown,
                chmod,
            } => return self.copy(st, ins, srcs, dest, None, chown, chmod, &[], true),
        }
        Ok(false)
    }

    /// WORKDIR makes its directory, owned by the USER of the time with
    /// mode 0755 (BuildKit's mkdir), in a layer of its own; when it is
    /// there already, the step is only metadata.
    fn make_workdir(
        &mut self,
        st: &mut StageState,
        ins: &Instruction,
        path: &str,
        created_by: String,
    ) -> Result<bool> {
        let key = sha(&[
            &st.key,
            &created_by,
            &serde_json::to_string(&st.img.config["config"]).unwrap_or_default(),
        ]);
        if let Some(img) = self.cached(&key) {
            st.img = img;
            st.key = key;
            return Ok(true);
        }
        let (sd, merged, upper) = self.step_overlay(st)?;
        let user = self.user(st, &merged).map_err(|e| self.err(ins, e))?;
        let owner = (
            user["uid"].as_u64().unwrap_or(0) as u32,
            user["gid"].as_u64().unwrap_or(0) as u32,
        );
        let root = fs::File::open(&merged).at(&merged)?;
        let attrs = Attrs {
            owner: Some(owner),
            chmod: None,
        };
        copy::mkdir_owned(root.as_fd(), Path::new(path.trim_start_matches('/')), attrs)
            .map_err(|e| self.err(ins, e))?;
        drop(root);
        let made = fs::read_dir(&upper).at(&upper)?.next().is_some();
        if made {
            self.commit(st, sd, &upper, created_by, &key)?;
        } else {
            drop(sd);
            self.history(st, created_by, true);
            st.key = key.clone();
            self.remember(&key, &st.img)?;
        }
        Ok(false)
    }

    /// A metadata step: a history entry, and the key moves on.
    fn meta_done(&self, st: &mut StageState, ins: &Instruction, created_by: String) {
        st.key = sha(&[
            &st.key,
            &created_by,
            &serde_json::to_string(&st.img.config["config"]).unwrap_or_default(),
        ]);
        self.history(st, created_by, true);
        let _ = ins;
    }

    fn cmd_json(&self, st: &StageState, c: &Cmd) -> Value {
        match c {
            Cmd::Exec(v) => json!(v),
            Cmd::Shell(s) => {
                let mut v = st.shell.clone();
                v.push(s.clone());
                json!(v)
            }
        }
    }

    /// The cache entry of `key`: the store's, else one of --cache-from's
    /// (brought into the store). A cache import that fails is a warning
    /// and a miss, as in BuildKit: the step runs.
    fn cached(&self, key: &str) -> Option<Image> {
        if self.o.no_cache {
            return None;
        }
        let mut img = cache::lookup(self.store, key);
        for i in &self.imports {
            if img.is_some() {
                break;
            }
            match i.fetch(self.store, key) {
                Ok(found) => img = found,
                Err(e) => eprintln!("hoist: warning: {e}"),
            }
        }
        if img.is_some() {
            self.keys.borrow_mut().push(key.to_string());
        }
        img
    }

    fn remember(&self, key: &str, img: &Image) -> Result<()> {
        self.keys.borrow_mut().push(key.to_string());
        cache::remember(self.store, key, img)
    }

    /// Opens --cache-from's sources again (a forked stage's own).
    fn reopen_imports(&mut self) -> Result<()> {
        self.imports = Vec::new();
        for c in &self.o.cache_from {
            self.imports
                .push(cache::Import::open(c, &self.o.pull.registry)?);
        }
        Ok(())
    }

    /// The keys of the steps this build used or made, for --cache-to.
    pub fn keys(&self) -> Vec<String> {
        self.keys.borrow().clone()
    }

    /// Mounts an overlay of the state's layers with a fresh upper
    /// directory; returns the scratch dir guard, the merged and upper paths.
    fn step_overlay(&self, st: &StageState) -> Result<(StepDir, PathBuf, PathBuf)> {
        let dir = self.store.tmp_path("step");
        let mut sd = StepDir {
            dir: dir.clone(),
            mounted: Vec::new(),
        };
        let (upper, work, merged) = (dir.join("upper"), dir.join("work"), dir.join("merged"));
        for d in [&upper, &work, &merged] {
            fs::create_dir_all(d).at(d)?;
        }
        let mut lowers = self.layer_dirs(&st.img)?;
        if lowers.is_empty() {
            let empty = dir.join("empty");
            fs::create_dir(&empty).at(&empty)?;
            lowers.push(empty);
        }
        overlay::mount_overlay(&lowers, &upper, &work, &merged)?;
        sd.mounted.push(merged.clone());
        // The mount point's own mode is the top layer's root; the rootfs
        // of an image is 0755.
        Ok((sd, merged, upper))
    }

    fn layer_dirs(&self, img: &Image) -> Result<Vec<PathBuf>> {
        let manifest = Manifest {
            media_type: None,
            config: Descriptor {
                media_type: String::new(),
                digest: String::new(),
                size: 0,
                platform: None,
                annotations: Default::default(),
            },
            layers: img.layers.iter().map(|l| l.desc.clone()).collect(),
        };
        let ids: Vec<String> = img.layers.iter().map(|l| l.diff_id.clone()).collect();
        overlay::ensure_layers(
            self.store,
            self.store.layout(),
            &manifest,
            &ids,
            "base image",
        )
    }

    /// Commits the step's upper directory as a layer on `st`.
    fn commit(
        &self,
        st: &mut StageState,
        mut sd: StepDir,
        upper: &Path,
        created_by: String,
        key: &str,
    ) -> Result<()> {
        sd.unmount()?;
        let c = commit::commit(self.store, upper, self.epoch)?;
        let mut ids: Vec<String> = st.img.layers.iter().map(|l| l.diff_id.clone()).collect();
        ids.push(c.diff_id.clone());
        let chain = overlay::chain_ids(&ids);
        if let Some(chain) = chain.last() {
            let dest = overlay::layer_dir(self.store, chain);
            if !dest.exists() {
                // The upper directory is already in overlay form: it is
                // the layer's unpacked directory, no need to unpack it.
                let _ = fs::rename(upper, &dest);
            }
        }
        st.img.layers.push(Layer {
            desc: c.desc,
            diff_id: c.diff_id.clone(),
        });
        if let Some(a) = st.img.config["rootfs"]["diff_ids"].as_array_mut() {
            a.push(json!(c.diff_id));
        } else {
            st.img.config["rootfs"] = json!({"type": "layers", "diff_ids": ids});
        }
        self.history(st, created_by, false);
        st.key = key.to_string();
        self.remember(key, &st.img)
    }

    /// The process user for a step: config User resolved in the rootfs.
    fn user(&self, st: &StageState, rootfs: &Path) -> Result<Value> {
        let u = st.img.config["config"]["User"].as_str().unwrap_or("");
        if u.is_empty() {
            return Ok(json!({"uid": 0, "gid": 0}));
        }
        let root = fs::File::open(rootfs).at(rootfs)?;
        crate::image::config::resolve_user(u, root.as_fd())
    }

    fn workdir(st: &StageState) -> String {
        st.img.config["config"]["WorkingDir"]
            .as_str()
            .filter(|w| !w.is_empty())
            .unwrap_or("/")
            .to_string()
    }

    fn run(
        &mut self,
        st: &mut StageState,
        ins: &Instruction,
        cmd: &Cmd,
        heredocs: &[parse::Heredoc],
        flags: &[(String, String)],
    ) -> Result<bool> {
        let mut network = self.o.network;
        for (k, v) in flags {
            match (k.as_str(), v.as_str()) {
                ("network", "none") => network = Network::None,
                ("network", "host" | "default") | ("mount", _) => {}
                ("security" | "network", _) => {
                    return Err(self.err(ins, format!("--{k}={v} is not supported")))
                }
                _ => return Err(self.err(ins, format!("unknown flag --{k}"))),
            }
        }
        let mounts = self.parse_mounts(st, ins, flags)?;
        let mounts_key = self.mounts_key(ins, &mounts)?;
        // The command; a heredoc with no command is a script for the shell.
        let mut args = match cmd {
            Cmd::Exec(v) => v.clone(),
            Cmd::Shell(s) => {
                let mut v = st.shell.clone();
                v.push(s.clone());
                v
            }
        };
        let env: Vec<String> = {
            let mut env = strings(&st.img.config["config"]["Env"]);
            if !env.iter().any(|e| e.starts_with("PATH=")) {
                env.insert(0, format!("PATH={DEFAULT_PATH}"));
            }
            // ARGs are in RUN's environment, unless ENV says otherwise.
            for (k, v) in &st.args {
                if !env
                    .iter()
                    .any(|e| e.split_once('=').map(|(x, _)| x) == Some(k))
                {
                    env.push(format!("{k}={v}"));
                }
            }
            env
        };
        let shell_form = matches!(cmd, Cmd::Shell(_)) && heredocs.is_empty();
        let command = match cmd {
            Cmd::Shell(s) if shell_form => format!("{} {s}", st.shell.join(" ")),
            _ => ins.original.clone(),
        };
        // History names the build arguments a RUN saw, as `|N K=V ...`
        // (the value ENV gives a key wins), as buildah and BuildKit do.
        let created_by = if st.args.is_empty() || !shell_form {
            command.clone()
        } else {
            let look = Self::lookup(st);
            let args: Vec<String> = st
                .args
                .keys()
                .map(|k| format!("{k}={}", look(k).unwrap_or_default()))
                .collect();
            format!("|{} {} {command}", args.len(), args.join(" "))
        };
        let key = sha(&[
            &st.key,
            "RUN",
            &ins.original,
            &serde_json::to_string(&heredocs.iter().map(|h| &h.body).collect::<Vec<_>>())
                .unwrap_or_default(),
            &serde_json::to_string(&env).unwrap_or_default(),
            &serde_json::to_string(&st.img.config["config"]["User"]).unwrap_or_default(),
            &Self::workdir(st),
            &format!("{network:?}"),
            &mounts_key,
        ]);
        if let Some(img) = self.cached(&key) {
            st.img = img;
            st.key = key;
            return Ok(true);
        }
        let (mut sd, merged, upper) = self.step_overlay(st)?;
        let held = self.prepare_mounts(ins, &mounts, &mut sd, &merged)?;
        let cwd = Self::workdir(st);
        let root = fs::File::open(&merged).at(&merged)?;
        crate::linux::paths::mkdir_all_in_root(root.as_fd(), Path::new(&cwd), 0o755)?;
        // Heredocs: a lone `RUN <<EOF` is a script for the shell; any other
        // command gets its heredocs inline, for the shell to read (and
        // expand, unless the delimiter was quoted) as in a script.
        if let Cmd::Shell(line) = cmd {
            if !heredocs.is_empty() {
                args = st.shell.clone();
                args.push(match parse::run_script(cmd, heredocs) {
                    Some(h) => h.body.clone(),
                    None => parse::run_shell_line(line, heredocs),
                });
            }
        }
        let user = self.user(st, &merged).map_err(|e| self.err(ins, e))?;
        drop(root);
        let spec = run_step::RunSpec {
            args,
            env,
            cwd,
            user,
            network,
            rootfs: &merged,
            mounts: held.spec.clone(),
        };
        let ran = run_step::run(&spec, &sd.dir.join("run"), &self.brig_root, !self.o.quiet)
            .map_err(|e| self.err(ins, e))?;
        // What the mounts brought stays out of the layer.
        held.stubs.remove_made(&merged);
        sd.unmount()?;
        held.stubs.prune_upper(&upper);
        drop(held);
        crate::interrupt::check().map_err(|e| self.err(ins, e))?;
        if ran.code != 0 {
            let tail = if ran.tail.is_empty() {
                String::new()
            } else {
                format!("; last output: {}", ran.tail.join(" | "))
            };
            return Err(self.err(
                ins,
                format!("\"{command}\" exited with code {}{tail}", ran.code),
            ));
        }
        self.commit(st, sd, &upper, created_by, &key)?;
        Ok(false)
    }

    #[allow(clippy::too_many_arguments)]
    fn copy(
        &mut self,
        st: &mut StageState,
        ins: &Instruction,
        srcs: &[String],
        dest: &str,
        from: Option<&str>,
        chown: &Option<String>,
        chmod: &Option<String>,
        heredocs: &[parse::Heredoc],
        add: bool,
    ) -> Result<bool> {
        let word = if add { "ADD" } else { "COPY" };
        let srcs: Vec<String> = srcs
            .iter()
            .map(|s| self.expand(st, ins, s))
            .collect::<Result<_>>()?;
        if add {
            if let Some(u) = srcs.iter().find(|s| s.contains("://")) {
                return Err(self.err(ins, format!("ADD from a URL ({u}) is not supported")));
            }
        }
        let mut dest = self.expand(st, ins, dest)?;
        // "." and "x/." name a directory, as a trailing slash does.
        if dest == "." || dest == ".." || dest.ends_with("/.") || dest.ends_with("/..") {
            dest.push('/');
        }
        let cwd = Self::workdir(st);
        let dest_abs = if dest.starts_with('/') {
            dest.clone()
        } else {
            let mut d = Path::new(&cwd).join(&dest).to_string_lossy().into_owned();
            if dest.ends_with('/') && !d.ends_with('/') {
                d.push('/');
            }
            d
        };
        let chmod = chmod
            .as_ref()
            .map(|m| {
                u32::from_str_radix(m, 8)
                    .ok()
                    .filter(|m| *m <= 0o7777)
                    .ok_or_else(|| self.err(ins, format!("--chmod={m}: not an octal mode")))
            })
            .transpose()?;

        // Where the sources are: the context, another stage, or an image.
        let _mounts;
        let from_dir: Option<PathBuf> = match from {
            None => None,
            Some(f) => {
                let f = self.expand(st, ins, f)?;
                let (guard, dir, _) = self.source_dir(&f).map_err(|e| self.err(ins, e))?;
                _mounts = guard;
                Some(dir)
            }
        };
        let src_file;
        let (root_fd, what) = match &from_dir {
            None => (self.context.as_fd(), "build context".to_string()),
            Some(d) => {
                src_file = fs::File::open(d).at(d)?;
                (
                    src_file.as_fd(),
                    format!("{} source", from.unwrap_or_default()),
                )
            }
        };
        let root = SourceRoot {
            fd: root_fd,
            ignore: if from.is_none() {
                Some(&self.ignore)
            } else {
                None
            },
            what: &what,
        };
        let resolved = copy::resolve(
            &root,
            &srcs
                .iter()
                .filter(|s| !s.starts_with("<<"))
                .cloned()
                .collect::<Vec<_>>(),
        )
        .map_err(|e| self.err(ins, e))?;
        let content = copy::hash(&root, &resolved).map_err(|e| self.err(ins, e))?;
        let hd: Vec<&str> = heredocs.iter().map(|h| h.body.as_str()).collect();
        let key = sha(&[
            &st.key,
            word,
            &ins.original,
            &dest_abs,
            &content,
            &hd.join("\0"),
            &format!("{chown:?}{chmod:?}"),
        ]);
        if let Some(img) = self.cached(&key) {
            st.img = img;
            st.key = key;
            return Ok(true);
        }
        let (sd, merged, upper) = self.step_overlay(st)?;
        let target = fs::File::open(&merged).at(&merged)?;
        // Context files belong to root unless --chown says otherwise;
        // files from another stage or image keep their owners.
        let owner = match chown {
            None if from.is_some() => None,
            None => Some((0, 0)),
            Some(c) => {
                let c = self.expand(st, ins, c)?;
                Some(
                    chown_ids(&c, target.as_fd())
                        .map_err(|e| self.err(ins, format!("--chown={c}: {e}")))?,
                )
            }
        };
        let attrs = Attrs { owner, chmod };
        let mut plain = Vec::new();
        for r in resolved {
            if add && !r.is_dir {
                if let Some(c) = copy::archive_kind(root.fd, &r.rel) {
                    copy::extract(root.fd, &r.rel, c, target.as_fd(), Path::new(&dest_abs))
                        .map_err(|e| self.err(ins, e))?;
                    continue;
                }
            }
            plain.push(r);
        }
        if !plain.is_empty() {
            copy::copy(&root, &plain, target.as_fd(), &dest_abs, attrs)
                .map_err(|e| self.err(ins, e))?;
        }
        for h in heredocs {
            let body = if h.expand {
                self.expand(st, ins, &h.body)?
            } else {
                h.body.clone()
            };
            let to = if dest_abs.ends_with('/') {
                format!("{dest_abs}{}", h.name)
            } else {
                dest_abs.clone()
            };
            write_heredoc(target.as_fd(), &to, &body, attrs).map_err(|e| self.err(ins, e))?;
        }
        drop(target);
        self.commit(
            st,
            sd,
            &upper,
            format!("/bin/sh -c #(nop) {}", ins.original),
            &key,
        )?;
        Ok(false)
    }

    /// The rootfs of `img`, read-only, for COPY --from.
    fn read_only_root(&self, img: &Image) -> Result<(Option<StepDir>, PathBuf)> {
        let dirs = self.layer_dirs(img)?;
        match dirs.len() {
            0 => Err(Error::Other("COPY --from an empty image".into())),
            1 => Ok((None, dirs[0].clone())),
            _ => {
                let dir = self.store.tmp_path("from");
                let merged = dir.join("merged");
                fs::create_dir_all(&merged).at(&merged)?;
                let mut sd = StepDir {
                    dir,
                    mounted: Vec::new(),
                };
                let lower: Vec<String> =
                    dirs.iter().rev().map(|p| p.display().to_string()).collect();
                nix::mount::mount(
                    Some("overlay"),
                    &merged,
                    Some("overlay"),
                    nix::mount::MsFlags::MS_RDONLY,
                    Some(format!("lowerdir={}", lower.join(":")).as_str()),
                )
                .sys(|| format!("mounting {}", merged.display()))?;
                sd.mounted.push(merged.clone());
                Ok((Some(sd), merged))
            }
        }
    }
}

fn write_heredoc(target: std::os::fd::BorrowedFd, to: &str, body: &str, a: Attrs) -> Result<()> {
    let p = Path::new(to);
    let (Some(parent), Some(name)) = (p.parent(), p.file_name()) else {
        return Err(Error::Other(format!("bad destination \"{to}\"")));
    };
    crate::linux::paths::mkdir_all_in_root(target, parent, 0o755)?;
    let dir = crate::linux::paths::open_in_root(target, parent, libc::O_RDONLY | libc::O_DIRECTORY)
        .map_err(|e| Error::sys(format!("opening {}", parent.display()), e))?;
    let cname = std::ffi::CString::new(std::os::unix::ffi::OsStrExt::as_bytes(name))
        .map_err(|_| Error::Other("a name with a NUL byte".into()))?;
    let fd = nix::fcntl::openat(
        &dir,
        cname.as_c_str(),
        nix::fcntl::OFlag::O_CREAT
            | nix::fcntl::OFlag::O_TRUNC
            | nix::fcntl::OFlag::O_WRONLY
            | nix::fcntl::OFlag::O_NOFOLLOW
            | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::from_bits_truncate(a.chmod.unwrap_or(0o644)),
    )
    .map_err(|e| Error::sys(format!("creating {to}"), e))?;
    let (uid, gid) = a.owner.unwrap_or((0, 0));
    nix::unistd::fchown(
        &fd,
        Some(nix::unistd::Uid::from_raw(uid)),
        Some(nix::unistd::Gid::from_raw(gid)),
    )
    .map_err(|e| Error::sys("chown", e))?;
    let mut f = fs::File::from(fd);
    std::io::Write::write_all(&mut f, body.as_bytes()).map_err(|e| Error::io(to, e))
}

/// An absolute path with `.` and `..` resolved lexically, as Docker
/// records WORKDIR (`..` stops at `/`).
pub(crate) fn clean_abs(p: &Path) -> String {
    let mut parts: Vec<&std::ffi::OsStr> = Vec::new();
    for c in p.components() {
        match c {
            std::path::Component::Normal(n) => parts.push(n),
            std::path::Component::ParentDir => {
                parts.pop();
            }
            _ => {}
        }
    }
    let mut out = String::new();
    for n in parts {
        out.push('/');
        out.push_str(&n.to_string_lossy());
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

/// The owner `COPY --chown=SPEC` gives: a named user without a group gets
/// its primary group from /etc/passwd, a numeric one its uid as gid, and
/// `:group` is root's with that group (BuildKit and buildah alike).
fn chown_ids(spec: &str, root: std::os::fd::BorrowedFd) -> Result<(u32, u32)> {
    let spec = match spec.strip_prefix(':') {
        Some(group) => format!("0:{group}"),
        None => spec.to_string(),
    };
    let u = crate::image::config::resolve_user(&spec, root)?;
    let uid = u["uid"].as_u64().unwrap_or(0) as u32;
    let gid = match spec.parse::<u32>() {
        Ok(numeric) => numeric,
        Err(_) => u["gid"].as_u64().unwrap_or(0) as u32,
    };
    Ok((uid, gid))
}

/// What EXPOSE takes (go-connections' nat rules): a port or a range of
/// ports 0-65535, with tcp, udp or sctp after a slash if anything.
fn valid_port(p: &str) -> bool {
    let (ports, proto) = match p.split_once('/') {
        Some((ports, proto)) => (ports, Some(proto)),
        None => (p, None),
    };
    let proto_ok = proto.is_none_or(|pr| {
        ["tcp", "udp", "sctp"]
            .iter()
            .any(|ok| pr.eq_ignore_ascii_case(ok))
    });
    let num = |s: &str| {
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && s.parse::<u16>().is_ok()
    };
    let ports_ok = match ports.split_once('-') {
        Some((a, b)) => num(a) && num(b) && a.parse::<u16>().ok() <= b.parse::<u16>().ok(),
        None => num(ports),
    };
    proto_ok && ports_ok
}

/// Sets KEY=VALUE in an Env list: a key already there keeps its place,
/// as both references keep it.
fn set_env(env: &mut Vec<Value>, key: &str, value: &str) {
    let entry = json!(format!("{key}={value}"));
    let same = |e: &Value| e.as_str().and_then(|s| s.split_once('=')).map(|(k, _)| k) == Some(key);
    match env.iter().position(same) {
        Some(i) => {
            env[i] = entry;
            env.retain({
                let mut seen = false;
                move |e| !(same(e) && std::mem::replace(&mut seen, true))
            });
        }
        None => env.push(entry),
    }
}

fn first_word(s: &str) -> String {
    s.split_whitespace()
        .next()
        .unwrap_or_default()
        .to_uppercase()
}
