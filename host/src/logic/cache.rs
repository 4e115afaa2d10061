//! Native code of logic versions, compiled once per host and engine
//! configuration: loading it takes ~0.1 ms where compiling takes tens to
//! hundreds of milliseconds.
//!
//! A file is `{sha256 of the component}-{engine compatibility key}.cwasm`,
//! holding the sha256 of the native code, then the code. It is written to a
//! temporary name and renamed into place, and its checksum is verified
//! before wasmtime loads it, so a torn or corrupted file is recompiled, never
//! run. The directory must be writable only by the user envmgr runs as:
//! native code in it runs in the host.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use sha2::{Digest, Sha256};

use crate::engine::{Engine, Logic, hex_sha256};

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
