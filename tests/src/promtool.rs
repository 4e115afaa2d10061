//! `promtool`, Prometheus's rule checker and unit tester, for the SLO
//! rules' test (`tests/slo.rs`): `ENVMGR_PROMTOOL` if set, else one on
//! `PATH`, else Debian's `prometheus` package unpacked into
//! `target/promtool` the first time (`apt-get download`, `dpkg-deb -x`: no
//! install, no root needed beyond what apt's cache asks). One test binary
//! uses it, so no two processes unpack at once; a marker written last tells
//! a finished unpack from an interrupted one.

use std::path::PathBuf;
use std::process::Command;

pub fn promtool() -> PathBuf {
    if let Some(path) = std::env::var_os("ENVMGR_PROMTOOL") {
        return PathBuf::from(path);
    }
    if Command::new("promtool")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        return PathBuf::from("promtool");
    }
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/promtool");
    let binary = dir.join("usr/bin/promtool");
    let marker = dir.join("unpacked");
    if marker.is_file() {
        return binary;
    }
    std::fs::create_dir_all(&dir).expect("creating target/promtool");
    let download = || {
        Command::new("apt-get")
            .args(["download", "prometheus"])
            .current_dir(&dir)
            .output()
            .is_ok_and(|o| o.status.success())
    };
    // A machine whose package lists were never fetched knows no package.
    if !download() {
        let _ = Command::new("apt-get").args(["update", "-qq"]).status();
        assert!(
            download(),
            "promtool is needed: install Prometheus's promtool (Debian: `apt-get install prometheus`) \
             or set ENVMGR_PROMTOOL to one"
        );
    }
    let package = std::fs::read_dir(&dir)
        .expect("target/promtool")
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .expect("the downloaded package");
    let unpacked = Command::new("dpkg-deb")
        .arg("-x")
        .arg(&package)
        .arg(&dir)
        .status();
    assert!(
        unpacked.is_ok_and(|s| s.success()),
        "dpkg-deb -x {}",
        package.display()
    );
    let _ = std::fs::remove_file(&package);
    std::fs::write(&marker, "").expect("writing the unpack marker");
    binary
}
