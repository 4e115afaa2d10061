//! The command line's reference, made from its clap definition so it
//! cannot drift from the code: `envmgr completions <shell>`, the man pages
//! in `docs/man/` (`clap_mangen`) and the book's command page
//! `docs/reference/commands.md`. The checked-in files are compared with
//! what the code makes by this module's tests (so CI fails on a drift);
//! `ENVMGR_WRITE_REFERENCE=1 cargo test -p envmgr --lib cli::reference`
//! writes them again.

use clap_complete::Shell;

/// Print a completion script for a shell.
#[derive(clap::Args)]
#[command(
    after_help = "Examples:\n  envmgr completions bash > ~/.local/share/bash-completion/completions/envmgr\n  \
envmgr completions zsh > \"${fpath[1]}/_envmgr\"\n  envmgr completions fish > ~/.config/fish/completions/envmgr.fish"
)]
pub struct Completions {
    /// The shell: bash, zsh, fish, elvish or powershell.
    #[arg(value_enum)]
    shell: Shell,
    #[command(flatten)]
    no_deployment: super::mock::NoDeployment,
}

impl Completions {
    pub fn run(&self) -> anyhow::Result<()> {
        print!("{}", completions(self.shell));
        Ok(())
    }
}

/// The completion script for `shell`.
pub fn completions(shell: Shell) -> String {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut super::command(), "envmgr", &mut script);
    String::from_utf8_lossy(&script).into_owned()
}

#[cfg(test)]
/// Every visible command, the top one first, depth first, each with its
/// full name (`envmgr logic install`).
fn commands() -> Vec<(String, clap::Command)> {
    fn walk(prefix: &str, command: &clap::Command, into: &mut Vec<(String, clap::Command)>) {
        let name = match prefix {
            "" => command.get_name().to_string(),
            _ => format!("{prefix} {}", command.get_name()),
        };
        into.push((name.clone(), command.clone()));
        for sub in command.get_subcommands() {
            if !sub.is_hide_set() && sub.get_name() != "help" {
                walk(&name, sub, into);
            }
        }
    }
    let mut command = super::command();
    command.build();
    let mut all = Vec::new();
    walk("", &command, &mut all);
    all
}

#[cfg(test)]
/// `docs/reference/commands.md`: every command's `--help`, under a heading
/// per command, with a contents list.
pub fn commands_page() -> String {
    let all = commands();
    let mut page = String::from(
        "<!-- Generated from the clap definitions in host/src/cli by \
         `ENVMGR_WRITE_REFERENCE=1 cargo test -p envmgr --lib cli::reference`; \
         a test fails when this page and the code differ. Do not edit. -->\n\n\
         # Commands\n\n\
         Every `envmgr` command with its `--help`, as the binary prints it. \
         `envmgr completions <shell>` prints shell completions; `docs/man/` holds \
         the same as man pages. Output: `--json` where a command offers it is the \
         stable interface for tools; the text for people may change between releases.\n\n",
    );
    for (name, _) in &all {
        page.push_str(&format!("- [`{name}`](#{})\n", name.replace(' ', "-")));
    }
    for (name, mut command) in all {
        let help = command.render_long_help().to_string();
        let help: Vec<&str> = help.lines().map(str::trim_end).collect();
        page.push_str(&format!(
            "\n## {name}\n\n```text\n{}\n```\n",
            help.join("\n").trim_end()
        ));
    }
    page
}

#[cfg(test)]
/// The man pages: `envmgr.1` and one per subcommand (`envmgr-logic-install.1`).
pub fn man_pages() -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let mut pages = Vec::new();
    for (name, command) in commands() {
        let file = format!("{}.1", name.replace(' ', "-"));
        let mut text = Vec::new();
        // A test's few dozen names: leaked, as clap wants a static name.
        let title: &'static str = Box::leak(name.replace(' ', "-").into_boxed_str());
        clap_mangen::Man::new(command.name(title)).render(&mut text)?;
        pages.push((file, text));
    }
    Ok(pages)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    fn docs() -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs")
    }

    const AGAIN: &str =
        "make it again: ENVMGR_WRITE_REFERENCE=1 cargo test -p envmgr --lib cli::reference";

    /// The checked-in `file` is `made`, or is written when asked.
    fn same_or_write(file: &std::path::Path, made: &[u8]) -> Option<String> {
        if std::env::var_os("ENVMGR_WRITE_REFERENCE").is_some() {
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(file, made).unwrap();
            return None;
        }
        match std::fs::read(file) {
            Ok(stored) if stored == made => None,
            Ok(_) => Some(format!("{} differs from the code", file.display())),
            Err(_) => Some(format!("{} is missing", file.display())),
        }
    }

    #[test]
    fn the_checked_in_reference_is_what_the_code_makes() {
        let mut drift = Vec::new();
        let page = docs().join("reference/commands.md");
        drift.extend(same_or_write(&page, commands_page().as_bytes()));
        let man = docs().join("man");
        let pages = man_pages().unwrap();
        for (file, text) in &pages {
            drift.extend(same_or_write(&man.join(file), text));
        }
        // A page for a command that is gone.
        for entry in std::fs::read_dir(&man).unwrap() {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            if !pages.iter().any(|(file, _)| *file == name) {
                drift.push(format!("docs/man/{name} is for no command"));
            }
        }
        assert!(drift.is_empty(), "{}; {AGAIN}", drift.join("; "));
    }

    #[test]
    fn every_argument_has_help_and_every_command_an_example() {
        let mut missing = Vec::new();
        for (name, command) in commands() {
            for arg in command.get_arguments() {
                let id = arg.get_id().as_str();
                if arg.is_hide_set() || id == "help" || id == "version" {
                    continue;
                }
                if arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("`{name}`: argument `{id}` has no help"));
                }
            }
            let leaf = !command.has_subcommands();
            let example = command
                .get_after_help()
                .is_some_and(|text| text.to_string().contains("envmgr "));
            if leaf && !example {
                missing.push(format!("`{name}` shows no example (after_help)"));
            }
            if command.get_about().is_none() && name != "envmgr" {
                missing.push(format!("`{name}` has no description"));
            }
        }
        assert!(missing.is_empty(), "{}", missing.join("\n"));
    }

    #[test]
    fn completions_name_every_command_and_bash_parses_them() {
        let bash = completions(Shell::Bash);
        for (name, _) in commands() {
            let last = name.rsplit(' ').next().unwrap();
            assert!(bash.contains(last), "`{last}` not completed");
        }
        for shell in [Shell::Zsh, Shell::Fish, Shell::Elvish, Shell::PowerShell] {
            assert!(completions(shell).contains("re-encrypt"), "{shell}");
        }
        // bash itself checks the script's syntax, where it is installed.
        let file = std::env::temp_dir().join(format!("envmgr-completion-{}", std::process::id()));
        std::fs::write(&file, &bash).unwrap();
        let checked = std::process::Command::new("bash")
            .arg("-n")
            .arg(&file)
            .output();
        let _ = std::fs::remove_file(&file);
        if let Ok(output) = checked {
            assert!(
                output.status.success(),
                "{}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
    }
}
