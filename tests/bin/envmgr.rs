//! The `envmgr` binary, for this package's tests (same code as host/src/main.rs).

#[global_allocator]
static ALLOCATOR: envmgr::Allocator = envmgr::Allocator;

fn main() -> std::process::ExitCode {
    envmgr::cli::main()
}
