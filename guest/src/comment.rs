//! The pull-request comment: one per pull request and app, found again by a
//! hidden marker (so a lost comment id never makes a second comment), updated
//! in place, recreated when someone deleted it.

use std::fmt::Write as _;

use crate::capabilities::{Capabilities, Comment, ErrorCode, Repository};
use crate::display;
use crate::environment::{Environment, hex_digest};
use crate::github_state::GitHubState;
use crate::outcome::{Failure, failed};
use crate::time::format_utc_minutes;
use crate::trust::Withheld;

/// How the heading names the branch. A build with the `reworded-comment`
/// feature words it differently and changes nothing else: the candidate
/// the replay tests compare (and the tutorial's example change, docs/tutorial.md).
#[cfg(not(feature = "reworded-comment"))]
const HEADING: &str = "environment for";
#[cfg(feature = "reworded-comment")]
const HEADING: &str = "environment built from";

/// How far the environment got, as the comment shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status<'a> {
    /// Recorded; the runtime is being requested, or starting.
    Deploying,
    /// The runtime reported it up.
    Ready,
    /// Failed: the request for good, or the runtime reported so. The
    /// category (a runtime's report) is shown; the reason stays on the
    /// record (`failureReason`), which not everyone reading the pull request
    /// should see.
    Failed(Option<&'a str>),
    /// The environment ended (`flow/teardown.rs`): why, and how to bring it
    /// back ("" when there is no way).
    Removed { why: &'a str, again: &'a str },
    /// The environment stays for another pull request on the same branch,
    /// which has the comment now.
    Moved(u64),
}

impl Status<'_> {
    fn label(self) -> String {
        match self {
            Self::Deploying => "🔄 Deploying".to_string(),
            Self::Ready => "✅ Ready".to_string(),
            Self::Failed(None) => "❌ Failed".to_string(),
            Self::Failed(Some(category)) => format!("❌ Failed ({})", text(category)),
            Self::Removed { .. } => "🗑️ Removed".to_string(),
            Self::Moved(number) => format!("➡️ Moved to #{number}"),
        }
    }
}

/// What the comment shows. Nothing in it is secret: the logic never holds a
/// secret's or a token's value, only sealed handles.
pub struct View<'a> {
    pub environment: &'a Environment,
    pub app_name: &'a str,
    pub status: Status<'a>,
    /// Where the environment answers (deploying, ready), or where to read
    /// more about its failure.
    pub url: Option<&'a str>,
    /// From the capability clock, so rendering is deterministic.
    pub updated_at_ms: u64,
    /// The logic version (config `logic-version`), if the host names it.
    pub logic_version: Option<&'a str>,
}

/// The hidden marker that identifies envmgr's comment for an app. In an app
/// id, a character other than letters, digits and `_.:-` (a `>` that would
/// end the HTML comment early, a space, anything invisible) is
/// percent-encoded, so the ids envmgr accepts keep their marker as it was.
pub fn marker(app_id: &str) -> String {
    let mut id = String::with_capacity(app_id.len());
    for c in app_id.chars() {
        if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-') {
            id.push(c);
        } else {
            let mut bytes = [0u8; 4];
            for b in c.encode_utf8(&mut bytes).bytes() {
                id.push_str(&format!("%{b:02X}"));
            }
        }
    }
    format!("<!-- envmgr:comment app={id} -->")
}

/// How many characters of the logic version the footer shows.
const LOGIC_VERSION_CHARS: usize = 12;

/// The comment's markdown. Text from outside (app name, branch, author)
/// never reaches a table cell and is escaped where it appears.
pub fn render(view: &View<'_>) -> String {
    let env = view.environment;
    let kind = env.environment_type.as_str();
    let short_sha = &env.sha[..env.sha.len().min(7)];
    // Only a URL safe to offer people becomes a link (https, or a
    // `localhost` name), escaped so it cannot end the link or the cell.
    let link = match (view.status, view.url.and_then(display::link_target)) {
        (Status::Deploying | Status::Ready, Some(url)) => format!("[Visit {kind}]({url})"),
        (Status::Failed(_), Some(url)) => format!("[Details]({url})"),
        _ => "—".to_string(),
    };
    let mut body = format!(
        "{marker}\n\
         **{app}** · {kind} {HEADING} {branch}\n\
         \n\
         | Environment | Status | Commit | Preview | Updated |\n\
         | :--- | :--- | :--- | :--- | :--- |\n\
         | `{id}` | {status} | `{short_sha}` | {link} | {updated} |\n",
        marker = marker(&env.app_id),
        app = text(view.app_name),
        branch = code(&env.branch),
        id = env.id,
        status = view.status.label(),
        updated = format_utc_minutes(view.updated_at_ms),
    );
    match view.status {
        Status::Removed { why, again } => {
            let _ = writeln!(body, "\nThis {kind} was removed: {why}.");
            if !again.is_empty() {
                let _ = writeln!(body, "{again}");
            }
        }
        Status::Moved(number) => {
            let _ = writeln!(
                body,
                "\nPull request #{number} deploys the same branch: the {kind} stays, \
                 and its status is shown there."
            );
        }
        _ if !env.secrets_withheld.is_empty() => {
            body.push_str(&withheld_notice(&env.app_id, &env.secrets_withheld));
        }
        _ => {}
    }
    let version: String = view
        .logic_version
        .unwrap_or("unknown")
        .chars()
        .take(LOGIC_VERSION_CHARS)
        .collect();
    let _ = write!(body, "\n<sub>envmgr · logic {}</sub>\n", code(&version));
    body
}

/// Why the environment has no secrets and no token, and what would change
/// that: one line per reason, so everything to change is said at once.
fn withheld_notice(app_id: &str, reasons: &[Withheld]) -> String {
    let record = code(&format!("APP#{app_id}"));
    let mut notice = String::from(
        "\n> ⚠️ **Secrets withheld.** This environment gets none of the app's secrets \
         and no GitHub token.\n",
    );
    for reason in reasons {
        let line = match reason {
            Withheld::Fork => format!(
                "The pull request comes from a fork. To give pull requests from forks \
                 the secrets and a token, set `forkSecrets` to `true` on the app record \
                 {record} (apps table); anyone who can open a pull request could then \
                 read them."
            ),
            Withheld::UntrustedAuthor(Some(login)) => format!(
                "The pull request's author {login} is not one of the app's \
                 `trustedAuthors`. To trust them, add {login} to `trustedAuthors` on \
                 the app record {record} (apps table).",
                login = code(login)
            ),
            Withheld::UntrustedAuthor(None) => format!(
                "The event does not name the pull request's author, and the app trusts \
                 only the authors in `trustedAuthors` on the app record {record} \
                 (apps table)."
            ),
        };
        let _ = writeln!(notice, "> - {line}");
    }
    notice
}

/// Plain markdown text: every ASCII punctuation character escaped (so no
/// emphasis, link, HTML or comment can start), line breaks made spaces.
fn text(raw: &str) -> String {
    let mut escaped = String::with_capacity(raw.len());
    for c in display::neutralise(raw).chars() {
        match c {
            c if c.is_control() => escaped.push(' '),
            c if c.is_ascii_punctuation() => {
                escaped.push('\\');
                escaped.push(c);
            }
            c => escaped.push(c),
        }
    }
    escaped
}

/// An inline code span showing `raw` literally, whatever it holds: the
/// fence is longer than any run of backticks inside, and a space pads
/// content that starts or ends with a backtick (markdown strips it again).
/// Only for text outside tables, where a pipe needs no escape.
fn code(raw: &str) -> String {
    let content = display::neutralise(raw);
    let longest_run = content.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest_run + 1);
    let pad = if content.starts_with('`') || content.ends_with('`') {
        " "
    } else {
        ""
    };
    format!("{fence}{pad}{content}{pad}{fence}")
}

/// The comment as it stands on the pull request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Shown {
    pub id: u64,
    pub html_url: String,
}

/// Create the comment, or update the one made before; returns it. The lease
/// item remembers the comment and a digest of its body (`github`), so a
/// body already shown costs no request, and a known comment no search. One
/// delivery at a time works on an environment (the lease), so a comment just
/// created needs no second look for a concurrent duplicate; duplicates left
/// by older versions of the logic are removed when the comment is searched.
pub fn upsert<C: Capabilities>(
    caps: &mut C,
    installation_id: u64,
    repo: &Repository,
    pull_request: u64,
    app_id: &str,
    body: &str,
    github: &mut GitHubState,
) -> Result<Shown, Failure> {
    let digest = hex_digest(&[body], 16);
    if let (Some(id), Some(html_url)) = (github.comment_id, github.comment_url.clone()) {
        if github.comment_digest.as_deref() == Some(digest.as_str()) {
            return Ok(Shown { id, html_url });
        }
        match caps.github_update_comment(installation_id, repo, id, body) {
            Ok(updated) => return Ok(remember(github, updated, digest)),
            // Deleted by someone: found again below, or made anew.
            Err(error) if error.code == ErrorCode::NotFound => {}
            Err(error) => return Err(Failure::at("update the pull-request comment", &error)),
        }
    }
    // The first holder of a new environment knows there is no comment to
    // find; anyone else looks (an earlier holder may have made one and
    // stopped before recording it).
    if !github.first_holder {
        let marker = marker(app_id);
        let existing = caps
            .github_list_comments(installation_id, repo, pull_request, &marker)
            .map_err(failed("find the pull-request comment"))?;
        if let Some(kept) = settle(caps, installation_id, repo, &existing, body)? {
            return Ok(remember(github, kept, digest));
        }
    }
    let created = caps
        .github_create_comment(installation_id, repo, pull_request, body)
        .map_err(failed("create the pull-request comment"))?;
    Ok(remember(github, created, digest))
}

fn remember(github: &mut GitHubState, comment: Comment, digest: String) -> Shown {
    github.comment_id = Some(comment.id);
    github.comment_url = Some(comment.html_url.clone());
    github.comment_digest = Some(digest);
    Shown {
        id: comment.id,
        html_url: comment.html_url,
    }
}

/// Keep the oldest of our comments with `body`, delete any others. None when
/// there is no comment left to keep (none existed, or it was just deleted).
fn settle<C: Capabilities>(
    caps: &mut C,
    installation_id: u64,
    repo: &Repository,
    comments: &[Comment],
    body: &str,
) -> Result<Option<Comment>, Failure> {
    let Some(oldest) = comments.iter().min_by_key(|c| c.id) else {
        return Ok(None);
    };
    for duplicate in comments.iter().filter(|c| c.id != oldest.id) {
        caps.github_delete_comment(installation_id, repo, duplicate.id)
            .map_err(failed("delete a duplicate pull-request comment"))?;
    }
    if oldest.body == body {
        return Ok(Some(oldest.clone()));
    }
    match caps.github_update_comment(installation_id, repo, oldest.id, body) {
        Ok(updated) => Ok(Some(updated)),
        // Deleted by someone since we listed it: the caller makes a new one.
        Err(error) if error.code == ErrorCode::NotFound => Ok(None),
        Err(error) => Err(Failure::at("update the pull-request comment", &error)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::EnvironmentType;

    /// The rendered text against `guest/tests/snapshots/{name}.snap`, so a
    /// change to what people see shows up in review as a diff of that
    /// file. `INSTA_UPDATE=always cargo test -p envmgr-guest` writes them
    /// anew (or `cargo insta review`, with cargo-insta installed).
    fn assert_snapshot(name: &str, rendered: &str) {
        insta::with_settings!({
            snapshot_path => "../tests/snapshots",
            prepend_module_to_snapshot => false,
            omit_expression => true,
        }, {
            insta::assert_snapshot!(name, rendered);
        });
    }

    const SHA: &str = "3f786850e387550fdab836ed7e6dc881de23001b";
    const LOGIC: &str = "9a0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b";
    /// 2026-11-28 11:00 UTC
    const AT: u64 = 1_795_863_600_000;

    fn environment(branch: &str, environment_type: EnvironmentType) -> Environment {
        crate::environment::example(branch, environment_type, SHA, AT)
    }

    fn preview(branch: &str) -> Environment {
        environment(branch, EnvironmentType::Preview)
    }

    fn view<'a>(environment: &'a Environment, url: Option<&'a str>) -> View<'a> {
        View {
            environment,
            app_name: "Shop",
            status: Status::Deploying,
            url,
            updated_at_ms: AT,
            logic_version: Some(LOGIC),
        }
    }

    fn url(env: &Environment) -> String {
        format!("https://{}.preview.example.com", env.id)
    }

    #[test]
    fn preview_deploying_without_a_url_or_logic_version() {
        let env = preview("feature/login");
        let rendered = render(&View {
            logic_version: None,
            ..view(&env, None)
        });
        assert_snapshot("preview-deploying", &rendered);
    }

    #[test]
    fn preview_with_a_url() {
        let env = preview("feature/login");
        assert_snapshot("preview-with-url", &render(&view(&env, Some(&url(&env)))));
    }

    #[test]
    fn production() {
        let env = environment("main", EnvironmentType::Production);
        let url = format!("https://{}.example.com", env.id);
        assert_snapshot("production", &render(&view(&env, Some(&url))));
    }

    #[test]
    fn removed_says_why_and_how_to_bring_it_back_and_links_nothing() {
        let env = preview("feature/login");
        let rendered = render(&View {
            status: Status::Removed {
                why: "the pull request was closed",
                again: "Reopen the pull request to deploy it again.",
            },
            ..view(&env, Some(&url(&env)))
        });
        assert_snapshot("removed", &rendered);
    }

    #[test]
    fn moved_names_the_pull_request_that_has_it_now() {
        let env = preview("feature/login");
        let rendered = render(&View {
            status: Status::Moved(9),
            ..view(&env, Some(&url(&env)))
        });
        assert_snapshot("moved", &rendered);
    }

    #[test]
    fn failed_shows_no_link() {
        let env = preview("feature/login");
        let rendered = render(&View {
            status: Status::Failed(None),
            ..view(&env, None)
        });
        assert_snapshot("failed", &rendered);
    }

    #[test]
    fn ready_links_the_environment() {
        let env = preview("feature/login");
        let rendered = render(&View {
            status: Status::Ready,
            ..view(&env, Some(&url(&env)))
        });
        assert_snapshot("ready", &rendered);
    }

    #[test]
    fn a_reported_failure_shows_its_category_and_where_to_read_more() {
        let env = preview("feature/login");
        let rendered = render(&View {
            status: Status::Failed(Some("health-check")),
            ..view(
                &env,
                Some("https://logs.example.com/env_4ccb1407cf7edbdc5866"),
            )
        });
        assert_snapshot("failed-reported", &rendered);
    }

    #[test]
    fn fork_withheld() {
        let env = Environment {
            secrets_withheld: vec![Withheld::Fork],
            ..preview("mallory:feature/login")
        };
        assert_snapshot("fork-withheld", &render(&view(&env, Some(&url(&env)))));
    }

    #[test]
    fn untrusted_author_withheld() {
        let env = Environment {
            secrets_withheld: vec![Withheld::UntrustedAuthor(Some("mallory".into()))],
            ..preview("feature/login")
        };
        assert_snapshot(
            "untrusted-author-withheld",
            &render(&view(&env, Some(&url(&env)))),
        );
    }

    #[test]
    fn fork_by_an_unknown_author_withheld_for_both_reasons() {
        let env = Environment {
            secrets_withheld: vec![Withheld::Fork, Withheld::UntrustedAuthor(None)],
            ..preview("deleted-fork:feature/login")
        };
        assert_snapshot(
            "fork-and-unknown-author-withheld",
            &render(&view(&env, None)),
        );
    }

    #[test]
    fn markdown_hostile_names_stay_text() {
        let branch = "fix|pipe`tick``ticks<!--hidden-->*bold*[link](x)";
        let env = Environment {
            secrets_withheld: vec![Withheld::UntrustedAuthor(Some("`evil|<!--".into()))],
            ..preview(branch)
        };
        let rendered = render(&View {
            app_name: "Shop | <!-- x --> **beta**\n# heading",
            ..view(&env, Some(&url(&env)))
        });
        // The table keeps its five cells: no outside text reaches it.
        let row = rendered
            .lines()
            .find(|line| line.starts_with("| `env_"))
            .expect("the table row");
        assert_eq!(row.matches(" | ").count(), 4, "{row}");
        // Outside code spans, every `<`, backtick or `|` is escaped, but the
        // marker's, the footer's and the table's own.
        let outside = without_code_spans(&rendered);
        let body = outside
            .strip_prefix(&marker("app_shop"))
            .expect("the marker");
        let body = body.replace("<sub>", "").replace("</sub>", "");
        for (i, c) in body.char_indices() {
            let before = &body[..i];
            let escaped = (before.len() - before.trim_end_matches('\\').len()) % 2 == 1;
            let table_line = body[before.rfind('\n').map_or(0, |n| n + 1)..].starts_with('|');
            let special = matches!(c, '<' | '`') || (c == '|' && !table_line);
            assert!(!special || escaped, "unescaped `{c}` at {i} in\n{body}");
        }
        assert_snapshot("markdown-hostile", &rendered);
    }

    #[test]
    fn invisible_direction_tricks_are_shown_and_links_are_safe() {
        let env = preview("x\u{202E}gnp.exe\u{200B}");
        let rendered = render(&View {
            app_name: "Shop\u{2066}admin",
            ..view(&env, Some("https://env.example.com/a)b|c d"))
        });
        assert!(!rendered.contains('\u{202E}') && !rendered.contains('\u{200B}'));
        assert!(!rendered.contains('\u{2066}'));
        assert!(
            rendered.contains("x\\u{202E}gnp.exe\\u{200B}"),
            "{rendered}"
        );
        assert!(
            rendered.contains("(https://env.example.com/a%29b%7Cc%20d)"),
            "{rendered}"
        );
        // A URL that is not safe to offer is not a link at all.
        for unsafe_url in [
            "javascript:alert(1)",
            "http://example.com",
            "https://github.com@evil.test",
        ] {
            let rendered = render(&view(&env, Some(unsafe_url)));
            assert!(
                !rendered.contains("Visit preview"),
                "{unsafe_url}: {rendered}"
            );
        }
    }

    #[test]
    fn an_app_id_cannot_end_the_hidden_marker() {
        assert_eq!(marker("app_shop"), "<!-- envmgr:comment app=app_shop -->");
        let hostile = marker("x-->y <b>");
        assert_eq!(hostile.matches("-->").count(), 1, "{hostile}");
        assert!(hostile.ends_with(" -->"));
    }

    /// `markdown` with every code span (fence, content, fence) removed.
    fn without_code_spans(markdown: &str) -> String {
        let mut rest = markdown;
        let mut outside = String::new();
        while let Some(open) = rest.find('`') {
            outside.push_str(&rest[..open]);
            let fence_len = rest[open..].len() - rest[open..].trim_start_matches('`').len();
            let after = &rest[open + fence_len..];
            // The closing fence is the next run of exactly as many backticks.
            let mut search = 0;
            let close = loop {
                let at = search + after[search..].find('`').expect("an unclosed code span");
                let run = after[at..].len() - after[at..].trim_start_matches('`').len();
                if run == fence_len {
                    break at;
                }
                search = at + run;
            };
            rest = &after[close + fence_len..];
        }
        outside.push_str(rest);
        outside
    }

    #[test]
    fn code_spans_hold_any_text() {
        assert_eq!(code("main"), "`main`");
        assert_eq!(code("a`b"), "``a`b``");
        assert_eq!(code("`a``"), "``` `a`` ```");
        assert_eq!(code("a\nb"), "`a b`");
    }

    #[test]
    fn text_escapes_markdown() {
        assert_eq!(text("Shop"), "Shop");
        assert_eq!(text("a|b <!--"), "a\\|b \\<\\!\\-\\-");
        assert_eq!(text("two\nlines"), "two lines");
    }

    #[test]
    fn the_logic_version_is_shortened() {
        let env = preview("main");
        let rendered = render(&view(&env, None));
        assert!(
            rendered.ends_with("<sub>envmgr · logic `9a0b1c2d3e4f`</sub>\n"),
            "{rendered}"
        );
    }
}
