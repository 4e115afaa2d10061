//! Where the local backends take "now" and fresh random bytes from: the
//! system's clock and randomness, or — a reproducible store, which is only
//! ever in memory (the mock host) — a clock moved by hand and a counter, so
//! that a run makes the same keys, nonces, tokens and timestamps every time
//! it is made. A key on disk is always random.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest as _, Sha256};

/// Milliseconds since the epoch, as the host's manual clock tells them.
pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

#[derive(Clone, Default)]
pub enum Sources {
    #[default]
    System,
    Reproducible {
        now: Clock,
        /// Draws so far: each is hashed into bytes no other draw repeats.
        drawn: Arc<AtomicU64>,
    },
}

impl Sources {
    pub fn reproducible(now: Clock) -> Self {
        Self::Reproducible {
            now,
            drawn: Arc::default(),
        }
    }

    pub fn now_ms(&self) -> i64 {
        match self {
            Self::System => crate::support::now_ms(),
            Self::Reproducible { now, .. } => i64::try_from(now()).unwrap_or(i64::MAX),
        }
    }

    /// Fill `out` with bytes no other draw of this store repeats: the OS's
    /// randomness, or the hash of a counter.
    pub fn fill(&self, out: &mut [u8]) -> Result<(), getrandom::Error> {
        let Self::Reproducible { drawn, .. } = self else {
            return getrandom::fill(out);
        };
        let draw = drawn.fetch_add(1, Ordering::SeqCst);
        for (block, chunk) in out.chunks_mut(32).enumerate() {
            let digest = Sha256::new()
                .chain_update(b"envmgr reproducible draw")
                .chain_update(draw.to_be_bytes())
                .chain_update((block as u64).to_be_bytes())
                .finalize();
            chunk.copy_from_slice(&digest[..chunk.len()]);
        }
        Ok(())
    }

    /// `bytes` fresh bytes as lowercase hex (the local GitHub's tokens).
    pub fn hex(&self, bytes: usize) -> String {
        let mut buffer = vec![0u8; bytes];
        self.fill(&mut buffer)
            .expect("the OS random source is available");
        hex::encode(buffer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reproducible_source_draws_the_same_bytes_every_run_and_never_twice() {
        let run = || {
            let sources = Sources::reproducible(Arc::new(|| 7));
            let mut drawn = vec![[0u8; 40], [0u8; 40]];
            for out in &mut drawn {
                sources.fill(out).unwrap();
            }
            (sources.now_ms(), drawn)
        };
        let (now, first) = run();
        assert_eq!(now, 7);
        assert_eq!(run().1, first, "the same run to run");
        assert_ne!(first[0], first[1], "no draw repeats another");
        assert_ne!(first[0][..8], first[0][32..40], "nor one block another");
    }
}
