//! `envmgr`: the Environment Manager host. The commands live in
//! [`envmgr::cli`].

#[global_allocator]
static ALLOCATOR: envmgr::Allocator = envmgr::Allocator;

fn main() -> std::process::ExitCode {
    envmgr::cli::main()
}
