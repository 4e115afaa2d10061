//! The corpus read as the tests read it: each backend's files in order,
//! gunzip'd, written out as `record export` writes them, and as
//! recordings.

use std::path::{Path, PathBuf};

use envmgr::record::Recording;

pub(crate) const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/corpus");
pub(crate) const BACKENDS: [&str; 2] = ["local", "aws"];

/// Every corpus file of a backend, in name order: (name, the recording as
/// the table stores it).
pub(crate) fn files(backend: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(CORPUS).join(backend);
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.to_string_lossy().ends_with(".json.gz"))
        .map(|path| {
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            (name, std::fs::read(&path).unwrap())
        })
        .collect();
    files.sort();
    files
}

/// A file's kind: its name without the number in front and `.json.gz`.
pub(crate) fn kind(name: &str) -> &str {
    let stem = name.strip_suffix(".json.gz").unwrap_or(name);
    stem.split_once('-').map_or(stem, |(_, kind)| kind)
}

pub(crate) fn gunzip(packed: &[u8]) -> Vec<u8> {
    use std::io::Read as _;
    let mut bytes = Vec::new();
    flate2::read::GzDecoder::new(packed)
        .read_to_end(&mut bytes)
        .unwrap();
    bytes
}

/// A backend's recordings as `record export` writes them (`N-kind.json`),
/// in a directory of this test's own, for what reads them as files.
pub(crate) fn as_files(backend: &str, test: &str) -> PathBuf {
    let dir = envmgr_tests::scratch(&format!("corpus-{test}-{backend}"));
    std::fs::create_dir_all(&dir).unwrap();
    for (name, packed) in files(backend) {
        let json = name.strip_suffix(".gz").unwrap();
        std::fs::write(dir.join(json), gunzip(&packed)).unwrap();
    }
    dir
}

/// Where two texts part, with some of each around it.
pub(crate) fn first_difference(expected: &[u8], got: &[u8]) -> String {
    let at = expected
        .iter()
        .zip(got)
        .position(|(a, b)| a != b)
        .unwrap_or(expected.len().min(got.len()));
    let around = |bytes: &[u8]| {
        let from = at.saturating_sub(80);
        String::from_utf8_lossy(&bytes[from..(at + 80).min(bytes.len())]).to_string()
    };
    format!(
        "byte {at} of {} (written: {} bytes)\n  stored:  …{}…\n  written: …{}…",
        expected.len(),
        got.len(),
        around(expected),
        around(got)
    )
}

/// Every recording of the corpus, read as `record::store` reads a stored
/// one: (backend/name, recording).
pub(crate) fn recordings() -> Vec<(String, Recording)> {
    BACKENDS
        .iter()
        .flat_map(|backend| {
            files(backend).into_iter().map(move |(name, packed)| {
                let recording = envmgr::record::store::unpack(&packed)
                    .unwrap_or_else(|e| panic!("{backend}/{name} does not read: {e:#}"));
                (format!("{backend}/{name}"), recording)
            })
        })
        .collect()
}
