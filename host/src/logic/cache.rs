//! Native code of logic versions, compiled once per host and engine
//! configuration: loading it takes ~0.1 ms where compiling takes tens to
//! hundreds of milliseconds. The builtin's comes from the binary
//! (`engine/shipped.rs`) when it fits, and is never written here.
//!
//! A file is `{sha256 of the component}-{engine compatibility key}.cwasm`,
//! holding the sha256 of the native code, then the code. It is written to a
//! temporary name and renamed into place, and its checksum is verified
//! before wasmtime loads it, so a torn or corrupted file is recompiled, never
//! run. The directory must be writable only by the user envmgr runs as:
//! native code in it runs in the host.
//!
//! Bound: [`NativeCache::prune`] (run by `logic gc` and `serve`'s hourly
//! retention) keeps the files of the versions the pointer names under this
//! engine's key; files of other versions, of other engine keys (a wasmtime
//! upgrade, another memory limit) and temporary files older than
//! [`ABANDONED_AFTER`] (a crash mid-write) go.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use sha2::{Digest, Sha256};

use crate::engine::{Engine, Logic};
use crate::support::hex_sha256;

/// A version this host cannot run at all: not a component, or built for a
/// contract the host does not link. Trying again will not help; only
/// another version will.
#[derive(Debug)]
pub struct Unloadable(pub String);

impl std::fmt::Display for Unloadable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Unloadable {}

/// A temporary file this old was left by a crash, not a write under way.
pub const ABANDONED_AFTER: std::time::Duration = std::time::Duration::from_secs(600);

/// What a prune removed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Pruned {
    pub files: usize,
    pub bytes: u64,
}

pub struct NativeCache {
    dir: PathBuf,
    engine: Arc<Engine>,
    key: String,
}

impl NativeCache {
    pub fn new(dir: PathBuf, engine: Arc<Engine>) -> Self {
        let key = engine.compatibility_key();
        Self { dir, engine, key }
    }

    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    fn path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}-{}.cwasm", self.key))
    }

    /// The cached native code of `id`, if present and intact.
    pub async fn load(&self, id: &str) -> Option<Logic> {
        let path = self.path(id);
        let engine = self.engine.clone();
        let id = id.to_string();
        tokio::task::spawn_blocking(move || {
            // The builtin's code shipped in the binary needs no file.
            if let Some(logic) = engine.load_shipped(&id) {
                return Some(logic);
            }
            let file = std::fs::read(&path).ok()?;
            let (checksum, artifact) = file.split_at_checked(32)?;
            if Sha256::digest(artifact).as_slice() != checksum {
                tracing::warn!(path = %path.display(), "cached native code is corrupt; compiling again");
                return None;
            }
            // SAFETY: this cache wrote the file with `precompile` of an
            // engine with the same compatibility key (the file name), and
            // the checksum shows it is unchanged since.
            match unsafe { engine.load_precompiled(&id, artifact) } {
                Ok(logic) => Some(logic),
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "cached native code does not load; compiling again");
                    None
                }
            }
        })
        .await
        .ok()
        .flatten()
    }

    /// Compile `component` (checking it against the contract), cache its
    /// native code, and return it loaded.
    pub async fn compile(&self, component: Vec<u8>) -> anyhow::Result<Logic> {
        let engine = self.engine.clone();
        let dir = self.dir.clone();
        let id = hex_sha256(&component);
        let path = self.path(&id);
        tokio::task::spawn_blocking(move || {
            let unloadable = |e: anyhow::Error| anyhow::Error::new(Unloadable(format!("{e:#}")));
            let artifact = engine
                .precompile(&component)
                .with_context(|| format!("logic {id} is not a valid component"))
                .map_err(unloadable)?;
            // Linking checks the world: a mismatch is refused before
            // anything is cached.
            // SAFETY: the artifact was made by this engine a moment ago.
            let logic = unsafe { engine.load_precompiled(&id, &artifact) }.map_err(unloadable)?;
            // Caching is best effort: a read-only or full disk costs the
            // next start a compile, never the version.
            if let Err(e) = write_artifact(&dir, &path, &artifact) {
                tracing::warn!(error = %format!("{e:#}"), "native code not cached");
            }
            Ok(logic)
        })
        .await
        .context("the compile task")?
    }

    /// Cached native code if present, else compile what `fetch` returns.
    pub async fn load_or_compile(
        &self,
        id: &str,
        fetch: impl std::future::Future<Output = anyhow::Result<Vec<u8>>>,
    ) -> anyhow::Result<Logic> {
        if let Some(logic) = self.load(id).await {
            return Ok(logic);
        }
        let component = fetch.await?;
        if hex_sha256(&component) != id {
            anyhow::bail!("the component fetched for logic {id} has another sha256");
        }
        self.compile(component).await
    }
}

impl NativeCache {
    /// Remove what no one will load: every cached file but those of `keep`
    /// (version ids) under this engine's key. Files that are not the
    /// cache's own (another name pattern) are left alone. A host loading a
    /// file another removes meanwhile compiles it again: never a failure.
    pub async fn prune(&self, keep: &std::collections::BTreeSet<String>) -> anyhow::Result<Pruned> {
        let (dir, key) = (self.dir.clone(), self.key.clone());
        let kept_names: std::collections::BTreeSet<String> =
            keep.iter().map(|id| format!("{id}-{key}.cwasm")).collect();
        tokio::task::spawn_blocking(move || prune_dir(&dir, &kept_names))
            .await
            .context("the prune task")?
    }
}

/// Remove the cache's files in `dir` but `kept_names` (and temporary files
/// younger than [`ABANDONED_AFTER`]).
fn prune_dir(
    dir: &std::path::Path,
    kept_names: &std::collections::BTreeSet<String>,
) -> anyhow::Result<Pruned> {
    let mut pruned = Pruned::default();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(pruned),
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Ok(meta) = entry.metadata() else { continue };
        let ours = cache_file(&name).is_some_and(|temporary| match temporary {
            false => !kept_names.contains(&name),
            true => meta
                .modified()
                .ok()
                .and_then(|at| at.elapsed().ok())
                .is_some_and(|age| age >= ABANDONED_AFTER),
        });
        if meta.is_file() && ours && std::fs::remove_file(entry.path()).is_ok() {
            pruned.files += 1;
            pruned.bytes += meta.len();
        }
    }
    Ok(pruned)
}

/// Whether `name` is one of the cache's files: `{64 hex}-{key}.cwasm`
/// (false) or its temporary `{64 hex}-{key}.tmp{pid}` (true).
fn cache_file(name: &str) -> Option<bool> {
    let (id, rest) = name.split_at_checked(64)?;
    if !id.bytes().all(|b| b.is_ascii_hexdigit()) || !rest.starts_with('-') {
        return None;
    }
    let (_, extension) = rest.rsplit_once('.')?;
    match extension {
        "cwasm" => Some(false),
        pid if pid.strip_prefix("tmp")?.bytes().all(|b| b.is_ascii_digit()) => Some(true),
        _ => None,
    }
}

/// Write `{checksum}{artifact}` to a temporary name and rename it into
/// place, in a directory only this user can reach.
fn write_artifact(
    dir: &std::path::Path,
    path: &std::path::Path,
    artifact: &[u8],
) -> anyhow::Result<()> {
    crate::local::private_dir(dir)
        .with_context(|| format!("creating the logic cache {}", dir.display()))?;
    let temporary = path.with_extension(format!("tmp{}", std::process::id()));
    let mut file = Sha256::digest(artifact).to_vec();
    file.extend_from_slice(artifact);
    std::fs::write(&temporary, file).with_context(|| format!("writing {}", temporary.display()))?;
    std::fs::rename(&temporary, path)
        .with_context(|| format!("moving the native code to {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::cache_file;

    #[test]
    fn only_the_caches_own_names_are_its_files() {
        let id = "a".repeat(64);
        assert_eq!(cache_file(&format!("{id}-0123abcd.cwasm")), Some(false));
        assert_eq!(cache_file(&format!("{id}-0123abcd.tmp4242")), Some(true));
        for other in [
            format!("{id}-0123abcd.tmpx"),
            format!("{id}.cwasm"),
            format!("{}-k.cwasm", "g".repeat(64)),
            "notes.txt".to_string(),
            "short-k.cwasm".to_string(),
        ] {
            assert_eq!(cache_file(&other), None, "{other}");
        }
    }
}
