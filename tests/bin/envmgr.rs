//! The `envmgr` binary, for this package's tests (same code as host/src/main.rs).

fn main() -> anyhow::Result<()> {
    envmgr::cli::main()
}
