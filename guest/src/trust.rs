//! Whether the code a request deploys may have the app's secrets and a
//! GitHub token.
//!
//! A preview runs the pull request's code. From a fork, that code can be
//! anyone's, and with the secrets or a token (which can push to the
//! repository) it could send them anywhere. So by default a fork's pull
//! request gets neither; the app can allow it (`forkSecrets`). An app can
//! also name the only authors it trusts (`trustedAuthors`); anyone else's
//! pull request gets neither either. The environment is created all the
//! same, and says why on its record and its comment.

use crate::apps::App;
use crate::request::Origin;

/// Why the app's secrets and a token were kept from a request's code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Withheld {
    /// The pull request comes from a fork and the app does not allow it.
    Fork,
    /// The app names its trusted authors and this one is not among them;
    /// None when the event did not say who the author is.
    UntrustedAuthor(Option<String>),
}

impl Withheld {
    /// The value recorded on the environment (`secretsWithheld`).
    pub fn code(&self) -> &'static str {
        match self {
            Self::Fork => "fork",
            Self::UntrustedAuthor(_) => "untrusted-author",
        }
    }
}

/// The reasons as recorded (`secretsWithheld`), logged and reported:
/// their codes joined by commas, e.g. `fork,untrusted-author`.
pub fn codes(reasons: &[Withheld]) -> String {
    let codes: Vec<&str> = reasons.iter().map(Withheld::code).collect();
    codes.join(",")
}

/// The reasons from their codes as recorded, and the author's login as
/// recorded (`untrustedAuthor`).
pub fn from_codes(codes: &str, author: Option<&str>) -> Vec<Withheld> {
    codes
        .split(',')
        .filter_map(|code| match code.trim() {
            "fork" => Some(Withheld::Fork),
            "untrusted-author" => Some(Withheld::UntrustedAuthor(author.map(str::to_string))),
            _ => None,
        })
        .collect()
}

/// Every reason the request's code may not have the secrets and a token;
/// empty when it may. All of them, so whoever reads the comment learns
/// everything they would have to change at once.
pub fn withheld(app: &App, origin: &Origin) -> Vec<Withheld> {
    let Origin::PullRequest { author, from_fork } = origin else {
        // The platform API authorized the request itself.
        return Vec::new();
    };
    let mut reasons = Vec::new();
    if *from_fork && !app.fork_secrets {
        reasons.push(Withheld::Fork);
    }
    if let Some(trusted) = &app.trusted_authors {
        // GitHub logins are case-insensitive.
        let is_trusted = author
            .as_ref()
            .is_some_and(|login| trusted.iter().any(|t| t.eq_ignore_ascii_case(login)));
        if !is_trusted {
            reasons.push(Withheld::UntrustedAuthor(author.clone()));
        }
    }
    reasons
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(fork_secrets: bool, trusted_authors: Option<&[&str]>) -> App {
        App {
            id: "app_shop".into(),
            name: "Shop".into(),
            repository: "acme/shop".into(),
            entrypoint: "index.ts".into(),
            fork_secrets,
            trusted_authors: trusted_authors
                .map(|logins| logins.iter().map(|l| l.to_string()).collect()),
        }
    }

    fn pull_request(author: Option<&str>, from_fork: bool) -> Origin {
        Origin::PullRequest {
            author: author.map(str::to_string),
            from_fork,
        }
    }

    #[test]
    fn forks_are_withheld_unless_the_app_allows_them() {
        let fork = pull_request(Some("mallory"), true);
        assert_eq!(withheld(&app(false, None), &fork), [Withheld::Fork]);
        assert_eq!(withheld(&app(true, None), &fork), []);
        let own = pull_request(Some("octocat"), false);
        assert_eq!(withheld(&app(false, None), &own), []);
    }

    #[test]
    fn only_listed_authors_are_trusted_when_the_app_lists_them() {
        let listed = app(false, Some(&["OctoCat", "hubot"]));
        assert_eq!(withheld(&listed, &pull_request(Some("octocat"), false)), []);
        assert_eq!(
            withheld(&listed, &pull_request(Some("mallory"), false)),
            [Withheld::UntrustedAuthor(Some("mallory".into()))]
        );
        assert_eq!(
            withheld(&listed, &pull_request(None, false)),
            [Withheld::UntrustedAuthor(None)]
        );
    }

    #[test]
    fn every_reason_is_given() {
        let listed = app(false, Some(&["octocat"]));
        assert_eq!(
            withheld(&listed, &pull_request(Some("mallory"), true)),
            [
                Withheld::Fork,
                Withheld::UntrustedAuthor(Some("mallory".into()))
            ]
        );
    }

    #[test]
    fn platform_requests_are_trusted() {
        assert_eq!(withheld(&app(false, Some(&[])), &Origin::Platform), []);
    }
}
