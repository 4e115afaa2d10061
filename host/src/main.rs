//! `envmgr`: the Environment Manager host. The commands live in
//! [`envmgr::cli`].

fn main() -> std::process::ExitCode {
    envmgr::cli::main()
}
