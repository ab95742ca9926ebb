//! The store's commands: `hoist pull`, `images`, `rmi` and `inspect`.

use super::layout::Platform;
use super::progress::human;
use super::pull::{self, PullOptions};
use super::reference::Reference;
use super::source::{self, Source};
use super::store::Store;
use crate::error::{Error, Result};
use serde_json::{json, Value};
use std::path::Path;

/// `hoist pull SOURCE [--name NAME]`: returns the name the image is stored
/// under.
pub fn pull(store_dir: &Path, source: &str, name: Option<&str>, o: &PullOptions) -> Result<String> {
    let store = Store::open(store_dir)?;
    let src = Source::parse(source)?;
    if let Source::Registry(r) | Source::Name(r) = &src {
        if name.is_some() {
            return Err(Error::Other(format!(
                "{source}: --name is for local images; a registry image keeps its reference"
            )));
        }
        return pull::pull_registry(&store, r, o).map(|(n, _)| n);
    }
    let scratch = store.tmp_path("import");
    let img = src.open(store_dir, &scratch, o)?;
    let name = match name {
        Some(n) => Reference::parse(n)?.to_string(),
        None => img.name.clone().ok_or_else(|| {
            Error::Other(format!(
                "{source}: the image has no full name (REPO:TAG) of its own; give one with --name"
            ))
        })?,
    };
    let bytes = img.manifest_bytes()?;
    pull::import(&store, &img.layout, &name, &img.mdesc, &bytes, o.quiet)?;
    Ok(name)
}

/// One image of the store, as `images` shows it.
fn describe(store: &Store, name: &str, desc: &super::layout::Descriptor) -> Value {
    let mut size = 0u64;
    let mut created = String::new();
    if let Ok(m) = store.manifest(desc) {
        size = m.config.size + m.layers.iter().map(|l| l.size).sum::<u64>();
        if let Ok(cfg) = store.layout().json_blob::<Value>(&m.config) {
            created = cfg["created"].as_str().unwrap_or_default().to_string();
        }
    }
    json!({"name": name, "digest": desc.digest, "size": size, "created": created})
}

/// `hoist images`: a table (or JSON, or names only) of the store.
pub fn images(store_dir: &Path, quiet: bool, format: &str) -> Result<String> {
    let store = Store::open(store_dir)?;
    let list = store.images()?;
    if quiet {
        return Ok(list.iter().map(|(n, _)| format!("{n}\n")).collect());
    }
    let rows: Vec<Value> = list.iter().map(|(n, d)| describe(&store, n, d)).collect();
    match format {
        "json" => Ok(format!(
            "{}\n",
            serde_json::to_string_pretty(&rows).map_err(|e| Error::Other(e.to_string()))?
        )),
        "table" => {
            let w = rows
                .iter()
                .filter_map(|r| r["name"].as_str().map(str::len))
                .max()
                .unwrap_or(4)
                .max(4);
            let mut out = format!("{:w$}  {:12}  {:>9}  CREATED\n", "NAME", "DIGEST", "SIZE");
            for r in &rows {
                let digest = r["digest"].as_str().unwrap_or_default();
                let short = digest.strip_prefix("sha256:").unwrap_or(digest);
                out.push_str(&format!(
                    "{:w$}  {:12}  {:>9}  {}\n",
                    r["name"].as_str().unwrap_or_default(),
                    short.get(..12).unwrap_or(short),
                    human(r["size"].as_u64().unwrap_or(0)),
                    r["created"].as_str().unwrap_or_default()
                ));
            }
            Ok(out)
        }
        other => Err(Error::Other(format!(
            "--format \"{other}\": want table or json"
        ))),
    }
}

/// `hoist rmi NAME...`: every name is tried; one failure is the error,
/// several are each reported on a line of their own. Blobs no image uses
/// any more go too.
pub fn rmi(store_dir: &Path, names: &[String]) -> Result<()> {
    let store = Store::open(store_dir)?;
    let mut errors = Vec::new();
    for n in names {
        let full = Reference::parse(n).map(|r| r.to_string());
        match full.and_then(|full| store.untag(&full)) {
            Ok(_) => println!("{n}"),
            Err(e) => errors.push(e),
        }
    }
    store.gc()?;
    match errors.len() {
        0 => Ok(()),
        1 => Err(errors.remove(0)),
        n => {
            for e in &errors {
                eprintln!("hoist: {e}");
            }
            Err(Error::Other(format!(
                "{n} of {} images not removed",
                names.len()
            )))
        }
    }
}

/// `hoist inspect NAME`: manifest and config of a stored image.
pub fn inspect(store_dir: &Path, name: &str, want: &Platform) -> Result<Value> {
    let full = Reference::parse(name)?.to_string();
    let img = source::from_store(Store::open(store_dir)?, &full, want)?;
    let manifest: Value = img.layout.json_blob(&img.mdesc)?;
    let config: Value = img.layout.json_blob(&img.manifest.config)?;
    Ok(json!({
        "name": full,
        "digest": img.mdesc.digest,
        "mediaType": img.mdesc.media_type,
        "manifest": manifest,
        "config": config,
    }))
}
