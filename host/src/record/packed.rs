//! A recording as it is stored: its JSON, gzip'd.
//!
//! Why not `flate2`'s `GzEncoder` per recording: a new encoder allocates
//! and zeroes the deflate state (its window and hash tables, a few hundred
//! KiB) for a recording of ~16 KiB of JSON, and a busy `serve` packs one
//! per message: setting the state up was a sixth of packing's time
//! (docs/performance.md). So each thread that packs keeps one compressor
//! and resets it, which writes what a new one writes
//! (`a_reused_compressor_packs_what_a_new_one_does`); the stream is
//! deflated in one call, the header is `GzEncoder`'s at
//! [`Compression::fast`], the trailer RFC 1952's.
//!
//! Bound: one compressor per thread that packs (the recorder runs on the
//! runtime's workers, `replay` and `record export` on theirs), each freed
//! with its thread.

use std::cell::RefCell;
use std::io::Read as _;

use flate2::{Compress, Compression, Crc, FlushCompress, Status};

use super::Recording;

/// The header `GzEncoder` writes at [`Compression::fast`]: no name, no
/// time, "fastest" in its extra flags, an unknown OS.
const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 4, 255];

thread_local! {
    static DEFLATE: RefCell<Option<Compress>> = const { RefCell::new(None) };
}

/// Gzip'd JSON.
pub fn pack(recording: &Recording) -> anyhow::Result<Vec<u8>> {
    let json = serde_json::to_vec(recording)?;
    let mut packed = Vec::with_capacity(HEADER.len() + json.len() / 2 + 64);
    packed.extend_from_slice(&HEADER);
    DEFLATE.with_borrow_mut(|kept| {
        let deflate = kept.get_or_insert_with(|| Compress::new(Compression::fast(), false));
        deflate.reset();
        deflate_into(deflate, &json, &mut packed)
    })?;
    let mut crc = Crc::new();
    crc.update(&json);
    packed.extend_from_slice(&crc.sum().to_le_bytes());
    // RFC 1952: the input's length modulo 2^32.
    packed.extend_from_slice(&(json.len() as u32).to_le_bytes());
    Ok(packed)
}

/// All of `input` as one finished raw deflate stream, appended to `out`.
fn deflate_into(deflate: &mut Compress, input: &[u8], out: &mut Vec<u8>) -> anyhow::Result<()> {
    let mut read = 0;
    loop {
        // `compress_vec` writes into the spare capacity only.
        if out.capacity() - out.len() < 1024 {
            out.reserve(out.capacity().max(4096));
        }
        let (before_in, before_out) = (deflate.total_in(), deflate.total_out());
        let status = deflate.compress_vec(&input[read..], out, FlushCompress::Finish)?;
        read += (deflate.total_in() - before_in) as usize;
        if status == Status::StreamEnd {
            return Ok(());
        }
        // With room to write, a call that neither reads nor writes never
        // will: a stream already finished (never reset) would loop here.
        anyhow::ensure!(
            (deflate.total_in(), deflate.total_out()) != (before_in, before_out),
            "the compressor made no progress"
        );
    }
}

pub fn unpack(packed: &[u8]) -> anyhow::Result<Recording> {
    let mut json = Vec::new();
    flate2::read::GzDecoder::new(packed).read_to_end(&mut json)?;
    let recording: Recording = serde_json::from_slice(&json)?;
    if recording.format != super::FORMAT {
        anyhow::bail!(
            "a recording of format {}; this host reads format {}",
            recording.format,
            super::FORMAT
        );
    }
    Ok(recording)
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;

    /// A recording whose message and config grow with `size`, varied
    /// enough that the stream holds matches and literals both.
    fn recording(size: usize) -> Recording {
        let body: String = (0..size)
            .map(|i| format!("{{\"n\":{i},\"pad\":\"{}\"}},", "y".repeat(i * 37 % 90)))
            .collect();
        Recording {
            format: crate::record::FORMAT,
            build: "0.1.0".into(),
            logic: "sha256:1".into(),
            contract: "0.3.0".into(),
            queue: "probot".into(),
            message: crate::record::RecordedMessage {
                id: "m".into(),
                source_queue: "envmgr-probot".into(),
                body,
                attributes: vec![("a".into(), "b".into())],
                receive_count: 1,
                sent_at_ms: 1,
                delivery_token: "t".into(),
                deferrals: 0,
            },
            config: (0..size % 50)
                .map(|i| (format!("k{i}"), i.to_string()))
                .collect(),
            handled_at_ms: 5,
            outcome: "done: created".into(),
            taped: Default::default(),
        }
    }

    #[test]
    fn a_reused_compressor_packs_what_a_new_one_does() {
        // Several in a row on one thread, a large one first: the reset
        // compressor writes what a new one (a thread of its own) writes,
        // whatever came before, and `GzDecoder` reads it back (it checks
        // the trailer's CRC and length).
        for size in [4000, 0, 3, 60, 4000, 1] {
            let recording = recording(size);
            let packed = pack(&recording).unwrap();
            let fresh = std::thread::scope(|s| s.spawn(|| pack(&recording).unwrap()).join());
            assert_eq!(packed, fresh.unwrap(), "size {size}");
            assert_eq!(packed[..10], HEADER);
            assert_eq!(unpack(&packed).unwrap(), recording);
        }
    }

    #[test]
    fn gzip_tools_read_what_is_packed() {
        // What `GzEncoder` wrote before reads the same, and the header is
        // the one it writes at this level.
        let recording = recording(500);
        let json = serde_json::to_vec(&recording).unwrap();
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), Compression::fast());
        encoder.write_all(&json).unwrap();
        let old = encoder.finish().unwrap();
        assert_eq!(old[..10], HEADER);
        assert_eq!(
            unpack(&old).unwrap(),
            unpack(&pack(&recording).unwrap()).unwrap()
        );
    }
}
