//! One type per capability call the guest makes: which call it is, how the
//! transcript shows it and its JSON on the recording's tape (format 1), in
//! one place. A `Host` method builds its call's request from the guest's
//! arguments and hands it, [`Described`], to the call path with the backend
//! call; nothing else describes the call.

pub mod dynamodb;
pub mod github;
pub mod others;

use serde_json::value::RawValue;

use crate::calls::{Call, Observer};

/// A capability call's request.
pub trait Request {
    const CALL: Call;
    /// How the transcript shows it (sealed values by their labels only).
    fn text(&self) -> String;
    /// Its JSON on the tape, as format 1 writes it (compact, an object's
    /// names in order), written straight to text.
    fn write_json(&self, out: &mut Vec<u8>);
}

/// `request`'s JSON as the tape keeps it.
fn written(request: &impl Request) -> Box<RawValue> {
    let mut out = Vec::with_capacity(256);
    request.write_json(&mut out);
    let text = String::from_utf8(out).expect("JSON written from strings is UTF-8");
    RawValue::from_string(text).expect("a request is written as JSON")
}

/// A call as the transcript and the tape need it: each form built at once,
/// and only if something keeps it (a started call runs on after the
/// guest's arguments are gone, so nothing is left to build it from later).
pub struct Described {
    pub call: Call,
    /// For the transcript (the mock host).
    pub text: Option<String>,
    /// For the tape, or to find the answer in a replayed recording.
    pub json: Option<Box<RawValue>>,
}

impl Described {
    pub fn of<R: Request>(request: &R, observer: &Observer) -> Self {
        Described {
            call: R::CALL,
            text: observer.transcript.is_some().then(|| request.text()),
            json: (observer.tape.is_some() || observer.replay.is_some()).then(|| written(request)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calls::Transcript;
    use crate::calls::requests::github::Authenticate;

    /// One request of every kind, written.
    fn one_of_each() -> Vec<Box<RawValue>> {
        let mut written = github_requests();
        written.extend(other_requests());
        written
    }

    fn github_requests() -> Vec<Box<RawValue>> {
        use crate::bindings::envmgr::environments::github::{
            DeploymentState, NewDeployment, NewDeploymentStatus, Repository,
        };
        use github::*;

        let repo = Repository {
            owner: "Acme".into(),
            name: "shop \"é\"".into(),
        };
        let deployment = NewDeployment {
            sha: "3f78".into(),
            environment: "preview/env_1".into(),
            task: "deploy:envmgr".into(),
            payload_json: r#"{"environmentId":"env_1"}"#.into(),
            description: "preview".into(),
            transient_environment: true,
            production_environment: false,
        };
        let status = NewDeploymentStatus {
            state: DeploymentState::Success,
            description: "ready".into(),
            environment_url: Some("https://env_1.preview.test".into()),
            log_url: None,
        };
        let (installation_id, repo) = (42, &repo);
        vec![
            written(&Authenticate { installation_id }),
            written(&ListComments {
                installation_id,
                repo,
                issue_number: 7,
                marker: "<!-- m -->",
            }),
            written(&CreateComment {
                installation_id,
                repo,
                issue_number: 7,
                body: "hi",
            }),
            written(&UpdateComment {
                installation_id,
                repo,
                comment_id: 9,
                body: "hi",
            }),
            written(&DeleteComment {
                installation_id,
                repo,
                id: 9,
            }),
            written(&DeleteEnvironment {
                installation_id,
                repo,
                name: "preview/env_1",
            }),
            written(&ListOpenPullRequests {
                installation_id,
                repo,
                head: "acme:main",
            }),
            written(&CreateInstallationToken {
                installation_id,
                repo,
            }),
            written(&FindDeployments {
                installation_id,
                repo,
                sha: "3f78",
                environment: "e",
                task: "t",
            }),
            written(&CreateDeployment {
                installation_id,
                repo,
                deployment: &deployment,
            }),
            written(&CreateDeploymentStatus {
                installation_id,
                repo,
                deployment_id: 5,
                status: &status,
            }),
        ]
    }

    fn other_requests() -> Vec<Box<RawValue>> {
        use crate::bindings::envmgr::environments::analytics::TrackEvent;
        use others::*;

        let event = TrackEvent {
            event: "cloud_environment_created".into(),
            user_id: "u".into(),
            properties_json: "{}".into(),
            message_id: "m".into(),
        };
        let runtime = runtime_request();
        let context = [
            ("b".to_string(), "1".to_string()),
            ("a".into(), "x".into()),
            ("a".into(), "2".into()),
        ];
        vec![
            written(&Decrypt {
                ciphertext: b"c",
                context: &context,
                label: "DATABASE_URL",
            }),
            written(&GenerateKey {
                app_id: "app_shop",
                environment_id: "env_1",
                request_version: "1",
            }),
            written(&VerifyReport {
                jws: "a.b.c",
                public_jwk: "{}",
            }),
            written(&Track(&event)),
            written(&CreateRuntime {
                request: &runtime,
                installation_token: Some("token"),
                secrets: vec![("STRIPE_KEY", "preview/STRIPE_KEY")],
                signing_key: None,
            }),
            written(&SendRequest("{\"a\":1}")),
        ]
    }

    fn runtime_request() -> crate::bindings::envmgr::environments::runtime::CreateRequest {
        use crate::bindings::envmgr::environments::runtime::{CreateRequest, Secret};
        use wasmtime::component::Resource;
        CreateRequest {
            idempotency_key: "k".into(),
            app_id: "app_shop".into(),
            environment_id: "env_1".into(),
            environment_type: "preview".into(),
            repository: "acme/shop".into(),
            branch: "main".into(),
            sha: "3f78".into(),
            request_version: "1".into(),
            entrypoint: "src/server.ts".into(),
            installation_token: Some(Resource::new_borrow(1)),
            secrets: vec![Secret {
                name: "STRIPE_KEY".into(),
                value: Resource::new_borrow(2),
            }],
            signing_key: None,
        }
    }

    /// Written as its tree would be: compact, every object's names in
    /// order (the tape compares texts, and a replay finds an answer by its
    /// request), and holding what the call was given.
    #[test]
    fn every_request_is_written_as_its_tree_would_be() {
        let written = one_of_each();
        for text in &written {
            let tree: serde_json::Value = serde_json::from_str(text.get()).unwrap();
            assert_eq!(text.get(), serde_json::to_string(&tree).unwrap());
        }
        let tree =
            |i: usize| -> serde_json::Value { serde_json::from_str(written[i].get()).unwrap() };
        assert_eq!(tree(5)["name"], "preview/env_1");
        assert_eq!(tree(1)["repo"]["name"], "shop \"é\"");
        assert_eq!(
            tree(11)["encryption-context"],
            serde_json::json!({"a": "2", "b": "1"})
        );
        assert_eq!(
            tree(15)["secrets"],
            serde_json::json!([{"name": "STRIPE_KEY", "value": {"sealed": "preview/STRIPE_KEY"}}])
        );
        assert_eq!(
            tree(15)["installation-token"],
            serde_json::json!({"sealed": "token"})
        );
        assert!(tree(15)["signing-key"].is_null());
    }

    #[test]
    fn only_the_forms_something_keeps_are_built() {
        let request = Authenticate {
            installation_id: 42,
        };
        let bare = Described::of(&request, &Observer::default());
        assert_eq!(bare.call, Call::GithubAuthenticate);
        assert!(bare.text.is_none() && bare.json.is_none());
        let watched = Observer {
            transcript: Some(Transcript::default()),
            ..Observer::default()
        };
        let described = Described::of(&request, &watched);
        assert_eq!(described.text.as_deref(), Some("installation=42"));
        assert!(described.json.is_none());
    }
}
