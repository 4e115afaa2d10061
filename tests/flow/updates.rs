//! After the first request: pushes, a stale request, a deleted comment, and
//! the duplicates racing deliveries leave.

use envmgr::calls::Call;
use envmgr::capabilities::github::{DeploymentState, GitHub, NewDeployment};
use envmgr_guest::deployment::{self as guest_deployment, TASK};
use envmgr_guest::request::EnvironmentType;
use envmgr_tests::*;

use crate::helpers::{acme_shop, calls, count, deployments, done, skipped, states};

#[tokio::test]
async fn a_new_push_moves_the_environment_and_updates_the_comment() {
    let host = seeded_host();
    let opened = pull_request_event("opened", 7, "feature/login", SHA_1, "2026-11-28T11:00:00Z");
    done(&host.deliver(&host.message("probot", &opened)).await);
    let pushed = pull_request_event(
        "synchronize",
        7,
        "feature/login",
        SHA_2,
        "2026-11-28T11:30:00Z",
    );
    done(&host.deliver(&host.message("probot", &pushed)).await);

    let items = records(&host);
    assert_eq!(items.len(), 3);
    assert!(items.iter().all(|i| attr(i, "sha") == Some(SHA_2)));
    let comments = host.github.comments(REPO, 7).unwrap();
    assert_eq!(comments.len(), 1);
    assert!(comments[0].body.contains("`2222222`"));
    // A new commit is a new runtime request, and a new deployment to the
    // same GitHub environment; the one it supersedes is retired.
    assert_eq!(host.runtime.runtimes().unwrap().len(), 2);
    let deployments = deployments(&host);
    let shas: Vec<&str> = deployments
        .iter()
        .map(|d| d.deployment.sha.as_str())
        .collect();
    assert_eq!(shas, [SHA_1, SHA_2]);
    for deployment in &deployments {
        assert_eq!(deployment.deployment.environment, "preview/feature/login");
    }
    assert_eq!(
        states(&deployments[0]),
        [DeploymentState::InProgress, DeploymentState::Inactive]
    );
    assert_eq!(states(&deployments[1]), [DeploymentState::InProgress]);
}

/// A force-push back to a commit deployed before: its deployment shows the
/// state again; no second deployment of one commit, and no list of
/// GitHub's deployments to find it (the lease item remembers it).
#[tokio::test]
async fn a_push_back_to_an_earlier_commit_reuses_its_deployment() {
    let host = seeded_host();
    let event = |action, sha, at| pull_request_event(action, 7, "feature/login", sha, at);
    done(
        &host
            .deliver(&host.message("probot", &event("opened", SHA_1, "2026-11-28T11:00:00Z")))
            .await,
    );
    done(
        &host
            .deliver(&host.message(
                "probot",
                &event("synchronize", SHA_2, "2026-11-28T11:30:00Z"),
            ))
            .await,
    );
    let back = host
        .deliver(&host.message(
            "probot",
            &event("synchronize", SHA_1, "2026-11-28T12:00:00Z"),
        ))
        .await;
    done(&back);
    assert_eq!(
        count(&back, Call::GithubFindDeployments),
        0,
        "{:?}",
        calls(&back)
    );
    assert_eq!(
        count(&back, Call::GithubCreateDeployment),
        0,
        "{:?}",
        calls(&back)
    );

    let deployments = deployments(&host);
    let shas: Vec<&str> = deployments
        .iter()
        .map(|d| d.deployment.sha.as_str())
        .collect();
    assert_eq!(shas, [SHA_1, SHA_2], "one deployment per commit");
    assert_eq!(
        states(&deployments[0]),
        [
            DeploymentState::InProgress,
            DeploymentState::Inactive,
            DeploymentState::InProgress
        ]
    );
    assert_eq!(
        states(&deployments[1]),
        [DeploymentState::InProgress, DeploymentState::Inactive]
    );
}

#[tokio::test]
async fn a_stale_request_never_overwrites_a_newer_one() {
    let host = seeded_host();
    let newer = pull_request_event(
        "synchronize",
        7,
        "feature/login",
        SHA_2,
        "2026-11-28T11:30:00Z",
    );
    let older = pull_request_event("opened", 7, "feature/login", SHA_1, "2026-11-28T11:00:00Z");
    done(&host.deliver(&host.message("probot", &newer)).await);
    let comment_before = host.github.comments(REPO, 7).unwrap()[0].body.clone();

    let delivery = host.deliver(&host.message("probot", &older)).await;
    let why = skipped(&delivery);
    assert!(why.starts_with("stale request"), "{why}");
    assert!(
        why.contains(SHA_2),
        "names the request the environment holds: {why}"
    );

    assert!(records(&host).iter().all(|i| attr(i, "sha") == Some(SHA_2)));
    assert_eq!(
        host.runtime.calls().len(),
        1,
        "no runtime for the stale request"
    );
    assert_eq!(
        host.github.comments(REPO, 7).unwrap()[0].body,
        comment_before
    );
    assert!(host.analytics.events().unwrap().len() == 1);
    // No deployment of the stale commit.
    let deployments = deployments(&host);
    assert_eq!(deployments.len(), 1);
    assert_eq!(deployments[0].deployment.sha, SHA_2);
}

#[tokio::test]
async fn a_deleted_comment_is_made_again() {
    let host = seeded_host();
    let opened = pull_request_event("opened", 7, "feature/login", SHA_1, "2026-11-28T11:00:00Z");
    done(&host.deliver(&host.message("probot", &opened)).await);
    let old = host.github.comments(REPO, 7).unwrap()[0].id;
    host.github.remove_comment(old).unwrap();

    let pushed = pull_request_event(
        "synchronize",
        7,
        "feature/login",
        SHA_2,
        "2026-11-28T11:30:00Z",
    );
    done(&host.deliver(&host.message("probot", &pushed)).await);
    let comments = host.github.comments(REPO, 7).unwrap();
    assert_eq!(comments.len(), 1);
    assert_ne!(comments[0].id, old);
}

#[tokio::test]
async fn duplicate_comments_from_racing_deliveries_collapse_to_the_oldest() {
    let host = seeded_host();
    a_crashed_holder_left(&host, "feature/login", "");
    let repo = acme_shop();
    let marker = envmgr_guest::comment::marker(APP_ID);
    let unrelated = host
        .github
        .create_comment(INSTALLATION, &repo, 7, "LGTM")
        .await
        .unwrap();
    let first = host
        .github
        .create_comment(
            INSTALLATION,
            &repo,
            7,
            &format!("{marker}\nfrom delivery A"),
        )
        .await
        .unwrap();
    host.github
        .create_comment(
            INSTALLATION,
            &repo,
            7,
            &format!("{marker}\nfrom delivery B"),
        )
        .await
        .unwrap();

    let opened = pull_request_event("opened", 7, "feature/login", SHA_1, "2026-11-28T11:00:00Z");
    done(&host.deliver(&host.message("probot", &opened)).await);
    let comments = host.github.comments(REPO, 7).unwrap();
    let ids: Vec<u64> = comments.iter().map(|c| c.id).collect();
    assert_eq!(
        ids,
        [unrelated.id, first.id],
        "other people's comments are left alone"
    );
    assert!(comments[1].body.contains("`1111111`"));
}

#[tokio::test]
async fn duplicate_deployments_from_racing_deliveries_collapse_to_the_oldest() {
    let host = seeded_host();
    a_crashed_holder_left(&host, "feature/login", SHA_1);
    let repo = acme_shop();
    let env_id = envmgr_guest::environment::environment_id(APP_ID, "feature/login");
    let deployment = |task: &str| NewDeployment {
        sha: SHA_1.into(),
        environment: "preview/feature/login".into(),
        task: task.into(),
        payload_json: guest_deployment::payload(APP_ID, &env_id, EnvironmentType::Preview),
        description: "made by a racing delivery".into(),
        transient_environment: true,
        production_environment: false,
    };
    // The repository's own deployment to the same environment and commit,
    // then two made by racing deliveries.
    let mut ids = Vec::new();
    for task in ["deploy", TASK, TASK] {
        let made = deployment(task);
        let made = host.github.create_deployment(INSTALLATION, &repo, &made);
        ids.push(made.await.unwrap().id);
    }
    let [theirs, first, second] = ids[..] else {
        unreachable!()
    };

    let opened = pull_request_event("opened", 7, "feature/login", SHA_1, "2026-11-28T11:00:00Z");
    let delivery = host.deliver(&host.message("probot", &opened)).await;
    done(&delivery);
    // The younger duplicate is made inactive, as GitHub requires, then deleted.
    let retired: Vec<&str> = delivery
        .transcript
        .iter()
        .filter(|e| {
            matches!(
                e.call,
                Call::GithubCreateDeploymentStatus | Call::GithubDeleteDeployment
            )
        })
        .map(|e| e.request.as_str())
        .collect();
    assert!(
        retired[0].contains(&format!("deployment={second} state=inactive")),
        "{retired:?}"
    );
    assert!(
        retired[1].ends_with(&format!("deployment={second}")),
        "{retired:?}"
    );
    assert_eq!(count(&delivery, Call::GithubCreateDeployment), 0);
    let ids: Vec<u64> = deployments(&host).iter().map(|d| d.deployment.id).collect();
    assert_eq!(ids, [theirs, first], "other deployments are left alone");
    assert!(deployments(&host)[0].statuses.is_empty());
    assert_eq!(
        states(&deployments(&host)[1]),
        [DeploymentState::InProgress]
    );
}
