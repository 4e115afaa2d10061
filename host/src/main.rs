//! `envmgr`: the Environment Manager host. The commands live in
//! [`envmgr::cli`].

fn main() -> anyhow::Result<()> {
    envmgr::cli::main()
}
