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
    if let Some(first) = existing.first() {
        match caps.github_update_comment(installation_id, repo, first.id, body) {
            Ok(updated) => return Ok(updated.id),
            // Deleted between listing and updating: make a new one below.
            Err(error) if error.code == ErrorCode::NotFound => {}
            Err(error) => return Err(Failure::at("update the pull-request comment", &error)),
        }
    }
    let created = caps
        .github_create_comment(installation_id, repo, pull_request, body)
        .map_err(failed("create the pull-request comment"))?;
    remove_duplicates(caps, installation_id, repo, pull_request, &marker, &created)
}

/// Two deliveries racing can both find no comment and both create one. The
/// oldest comment wins; the others are deleted, so the pull request settles on
/// one comment whichever delivery finishes last.
fn remove_duplicates<C: Capabilities>(
    caps: &mut C,
    installation_id: u64,
    repo: &Repository,
    pull_request: u64,
    marker: &str,
    created: &Comment,
) -> Result<u64, Failure> {
    let all = caps
        .github_list_comments(installation_id, repo, pull_request, marker)
        .map_err(failed("check for duplicate pull-request comments"))?;
    let Some(oldest) = all.iter().min_by_key(|c| c.id) else {
        return Ok(created.id);
    };
    for duplicate in all.iter().filter(|c| c.id != oldest.id) {
        caps.github_delete_comment(installation_id, repo, duplicate.id)
            .map_err(failed("delete a duplicate pull-request comment"))?;
    }
    if oldest.id != created.id {
        caps.github_update_comment(installation_id, repo, oldest.id, &created.body)
            .map_err(failed("update the pull-request comment"))?;
    }
    Ok(oldest.id)
}
