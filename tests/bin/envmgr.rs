//! The `envmgr` binary, for this package's tests (same code as host/src/main.rs).

fn main() -> std::process::ExitCode {
    envmgr::cli::main()
}
