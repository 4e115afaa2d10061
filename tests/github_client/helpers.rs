//! The client tests' fake and client: the App installed on acme, a client
//! with options, what the fake saw per route, and `[github]` settings as
//! the config gives them.

use std::time::SystemTime;

use envmgr::capabilities::github::Repository;
use envmgr::capabilities::github::app::{GitHubApp, GitHubAppOptions};
use envmgr_tests::fakes::github::{APP_ID, FakeGitHub, Installation, Logged, PRIVATE_KEY, Route};

pub(crate) const INSTALLATION: u64 = 4242;
pub(crate) const SHA: &str = "3333333333333333333333333333333333333333";
pub(crate) const MARKER: &str = "<!-- envmgr:test -->";

/// The fake with the App installed on acme (every repository), pull
/// request acme/shop#7 and one commit.
pub(crate) fn fake_with(installation: Installation) -> (FakeGitHub, String) {
    let (github, url) = FakeGitHub::start();
    github.add_installation(installation);
    github.add_pull_request("acme/shop", 7);
    github.add_commit("acme/shop", SHA);
    (github, url)
}

pub(crate) fn fake() -> (FakeGitHub, String) {
    fake_with(Installation::new(INSTALLATION, "acme"))
}

pub(crate) fn client(url: &str, edit: impl FnOnce(&mut GitHubAppOptions)) -> GitHubApp {
    let mut options = GitHubAppOptions::new(url);
    edit(&mut options);
    GitHubApp::new(APP_ID, PRIVATE_KEY, options).expect("the client")
}

pub(crate) fn shop() -> Repository {
    Repository {
        owner: "acme".into(),
        name: "shop".into(),
    }
}

pub(crate) fn comment_body(n: usize) -> String {
    format!("{MARKER} comment {n}")
}

/// Tokens minted for the API (all repositories), not the runtime's.
pub(crate) fn api_token_mints(github: &FakeGitHub) -> usize {
    github
        .mints()
        .iter()
        .filter(|m| m.installation == INSTALLATION && m.repositories.is_none())
        .count()
}

pub(crate) fn requests_of(github: &FakeGitHub, route: Route) -> Vec<Logged> {
    github
        .requests()
        .into_iter()
        .filter(|r| r.route == Some(route))
        .collect()
}

pub(crate) fn assert_nothing_refused(github: &FakeGitHub) {
    assert!(github.rejected().is_empty(), "{:?}", github.rejected());
}

pub(crate) async fn sleep_until(at: SystemTime) {
    if let Ok(left) = at.duration_since(SystemTime::now()) {
        tokio::time::sleep(left).await;
    }
}

/// `[github]` as the config file and the variables give it.
pub(crate) fn github_settings(
    file: &str,
    env: &[(&str, &str)],
) -> anyhow::Result<envmgr::config::GitHub> {
    let dir = std::env::temp_dir().join(format!(
        "envmgr-github-config-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("envmgr.toml");
    std::fs::write(&path, format!("[github]\napp_id = 1\n{file}"))?;
    let env = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect::<Vec<_>>();
    let settings = envmgr::config::Settings::load(Some(&path), env);
    std::fs::remove_dir_all(&dir)?;
    Ok(settings?.github.expect("a [github] section"))
}
