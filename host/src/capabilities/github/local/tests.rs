//! The local GitHub's records, as GitHub keeps them.

use super::*;
use crate::support::random_hex;

fn repo() -> Repository {
    Repository {
        owner: "Acme".into(),
        name: "shop".into(),
    }
}

fn new(environment: &str) -> NewDeployment {
    NewDeployment {
        sha: "3f786850e387550fdab836ed7e6dc881de23001b".into(),
        environment: environment.into(),
        task: "deploy:envmgr".into(),
        payload_json: r#"{"environmentId":"env_1"}"#.into(),
        description: "envmgr preview environment env_1".into(),
        transient_environment: true,
        production_environment: false,
    }
}

fn status(state: DeploymentState) -> NewDeploymentStatus {
    NewDeploymentStatus {
        state,
        description: "Runtime rt_1 requested".into(),
        environment_url: Some("https://env_1.preview.test".into()),
        log_url: None,
    }
}

#[tokio::test]
async fn deployments_and_statuses_are_recorded_as_github_keeps_them() {
    let dir = std::env::temp_dir().join(format!("envmgr-gh-{}", random_hex(6)));
    let store = Store::open_dir(&dir).unwrap();
    let github = LocalGitHub::new(store.clone());
    let sha = "3f786850e387550fdab836ed7e6dc881de23001b";

    let first = github
        .create_deployment(1, &repo(), &new("preview/feature/login"))
        .await
        .unwrap();
    let second = github
        .create_deployment(1, &repo(), &new("preview/feature/login"))
        .await
        .unwrap();
    github
        .create_deployment(1, &repo(), &new("production"))
        .await
        .unwrap();
    let found = github
        .find_deployments(1, &repo(), sha, "preview/feature/login", "deploy:envmgr")
        .await
        .unwrap();
    let ids: Vec<u64> = found.iter().map(|d| d.id).collect();
    assert_eq!(ids, [first.id, second.id], "oldest first, one environment");
    assert!(
        github
            .find_deployments(1, &repo(), sha, "preview/feature/login", "deploy")
            .await
            .unwrap()
            .is_empty()
    );

    let created = github
        .create_deployment_status(1, &repo(), first.id, &status(DeploymentState::InProgress))
        .await
        .unwrap();
    let listed = github
        .list_deployment_statuses(1, &repo(), first.id)
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, created.id);
    assert_eq!(listed[0].state, DeploymentState::InProgress);
    assert_eq!(
        listed[0].environment_url.as_deref(),
        Some("https://env_1.preview.test")
    );

    // As GitHub: an active deployment stays while there are others.
    let refused = github.delete_deployment(1, &repo(), second.id).await;
    assert_eq!(refused.unwrap_err().code, ErrorCode::Invalid);
    github
        .create_deployment_status(1, &repo(), second.id, &status(DeploymentState::Inactive))
        .await
        .unwrap();
    github
        .delete_deployment(1, &repo(), second.id)
        .await
        .unwrap();
    github
        .delete_deployment(1, &repo(), second.id)
        .await
        .unwrap();
    let missing = github
        .create_deployment_status(1, &repo(), second.id, &status(DeploymentState::Failure))
        .await;
    assert_eq!(missing.unwrap_err().code, ErrorCode::NotFound);

    let bad = NewDeployment {
        payload_json: "[1]".into(),
        ..new("production")
    };
    let refused = github.create_deployment(1, &repo(), &bad).await;
    assert_eq!(refused.unwrap_err().code, ErrorCode::Invalid);

    let recorded = deployments(&store).unwrap();
    assert_eq!(recorded.len(), 2);
    assert_eq!(recorded[0].repository, "acme/shop");
    assert_eq!(recorded[0].statuses.len(), 1);
    assert!(recorded[0].transient_environment);
    std::fs::remove_dir_all(&dir).ok();
}
