//! The pull-request comment: one per pull request and app, found again by a
//! hidden marker (so a lost comment id never makes a second comment), updated
//! in place, recreated when someone deleted it.

use crate::capabilities::{Capabilities, Comment, ErrorCode, Repository};
use crate::environment::Environment;
use crate::outcome::{Failure, failed};
use crate::time::format_utc_minutes;

/// What the comment shows.
pub struct View<'a> {
    pub environment: &'a Environment,
    pub app_name: &'a str,
    pub status: &'a str,
    pub url: Option<&'a str>,
    pub updated_at_ms: u64,
}

/// The hidden marker that identifies envmgr's comment for an app.
pub fn marker(app_id: &str) -> String {
    format!("<!-- envmgr:comment app={app_id} -->")
}

pub fn render(view: &View<'_>) -> String {
    let env = view.environment;
    let short_sha = &env.sha[..env.sha.len().min(7)];
    let url = view
        .url
        .map(|u| format!("[Visit preview]({u})"))
        .unwrap_or_else(|| "—".to_string());
    format!(
        "{marker}\n\
         **{app}** · {kind} environment for `{branch}`\n\
         \n\
         | Environment | Status | Commit | Preview | Updated |\n\
         | :--- | :--- | :--- | :--- | :--- |\n\
         | `{id}` | {status} | `{short_sha}` | {url} | {updated} |\n",
        marker = marker(&env.app_id),
        app = escape(view.app_name),
        kind = env.environment_type.as_str(),
        branch = escape(&env.branch),
        id = env.id,
        status = view.status,
        updated = format_utc_minutes(view.updated_at_ms),
    )
}

/// Markdown-table-safe text: no pipes, backticks or newlines from user input.
fn escape(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '|' | '`' | '\n' | '\r' => ' ',
            other => other,
        })
        .collect()
}

/// Create the comment, or update the one made before. Returns its id.
pub fn upsert<C: Capabilities>(
    caps: &mut C,
    installation_id: u64,
    repo: &Repository,
    pull_request: u64,
    app_id: &str,
    body: &str,
) -> Result<u64, Failure> {
    let marker = marker(app_id);
    let existing = caps
        .github_list_comments(installation_id, repo, pull_request, &marker)
        .map_err(failed("find the pull-request comment"))?;
    if let Some(kept) = settle(caps, installation_id, repo, &existing, body)? {
        return Ok(kept);
    }
    caps.github_create_comment(installation_id, repo, pull_request, body)
        .map_err(failed("create the pull-request comment"))?;
    // Two deliveries racing can both find no comment and both create one:
    // look again, so whichever finishes last leaves exactly one.
    let after = caps
        .github_list_comments(installation_id, repo, pull_request, &marker)
        .map_err(failed("check for duplicate pull-request comments"))?;
    settle(caps, installation_id, repo, &after, body)?.ok_or_else(|| {
        Failure::retryable("the pull-request comment vanished right after it was created")
    })
}

/// Keep the oldest of our comments with `body`, delete any others. None when
/// there is no comment left to keep (none existed, or it was just deleted).
fn settle<C: Capabilities>(
    caps: &mut C,
    installation_id: u64,
    repo: &Repository,
    comments: &[Comment],
    body: &str,
) -> Result<Option<u64>, Failure> {
    let Some(oldest) = comments.iter().min_by_key(|c| c.id) else {
        return Ok(None);
    };
    for duplicate in comments.iter().filter(|c| c.id != oldest.id) {
        caps.github_delete_comment(installation_id, repo, duplicate.id)
            .map_err(failed("delete a duplicate pull-request comment"))?;
    }
    if oldest.body == body {
        return Ok(Some(oldest.id));
    }
    match caps.github_update_comment(installation_id, repo, oldest.id, body) {
        Ok(updated) => Ok(Some(updated.id)),
        // Deleted by someone since we listed it: the caller makes a new one.
        Err(error) if error.code == ErrorCode::NotFound => Ok(None),
        Err(error) => Err(Failure::at("update the pull-request comment", &error)),
    }
}
