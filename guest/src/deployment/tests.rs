//! The deployment as GitHub shows it: its environment's name, what marks
//! it as ours, and descriptions within GitHub's limit.

use super::*;
use crate::environment::environment_id;

const SHA: &str = "3f786850e387550fdab836ed7e6dc881de23001b";

fn environment(branch: &str, environment_type: EnvironmentType) -> Environment {
    crate::environment::example(branch, environment_type, SHA, 0)
}

#[test]
fn environments_are_named_after_the_envmgr_environment() {
    let id = environment_id("app_shop", "feature/login");
    assert_eq!(
        environment_name(EnvironmentType::Preview, "feature/login", &id),
        "preview/feature/login"
    );
    assert_eq!(
        environment_name(EnvironmentType::Preview, "mallory:main", &id),
        "preview/mallory:main"
    );
    assert_eq!(
        environment_name(EnvironmentType::Production, "main", &id),
        "production"
    );
}

#[test]
fn a_name_too_long_for_github_stays_the_branchs_own() {
    let long = "b".repeat(255);
    let other = format!("{}c", "b".repeat(254));
    let a = environment_name(
        EnvironmentType::Preview,
        &long,
        &environment_id("app", &long),
    );
    let b = environment_name(
        EnvironmentType::Preview,
        &other,
        &environment_id("app", &other),
    );
    assert_eq!(a.chars().count(), ENVIRONMENT_NAME_LIMIT);
    assert!(a.starts_with("preview/bbb"), "{a}");
    assert!(a.ends_with(&format!("~{}", environment_id("app", &long))));
    assert_ne!(a, b);
}

#[test]
fn a_preview_is_transient_and_production_is_production() {
    let preview = new_deployment(&environment("feature/login", EnvironmentType::Preview));
    assert_eq!(preview.sha, SHA);
    assert_eq!(preview.task, TASK);
    assert!(preview.transient_environment && !preview.production_environment);
    let production = new_deployment(&environment("main", EnvironmentType::Production));
    assert_eq!(production.environment, "production");
    assert!(!production.transient_environment && production.production_environment);
}

#[test]
fn only_deployments_with_our_task_and_environment_id_are_ours() {
    let env = environment("feature/login", EnvironmentType::Preview);
    let new = new_deployment(&env);
    let deployment = |task: &str, payload_json: &str| Deployment {
        id: 1,
        sha: SHA.into(),
        environment: new.environment.clone(),
        task: task.into(),
        payload_json: payload_json.into(),
    };
    assert!(is_ours(&deployment(TASK, &new.payload_json), &env));
    assert!(!is_ours(&deployment("deploy", &new.payload_json), &env));
    let other = payload("app_shop", "env_other", EnvironmentType::Preview);
    assert!(!is_ours(&deployment(TASK, &other), &env));
    assert!(!is_ours(&deployment(TASK, "{}"), &env));
    assert!(!is_ours(&deployment(TASK, "not json"), &env));
}

#[test]
fn descriptions_fit_githubs_limit() {
    let long = "r".repeat(300);
    let status = in_progress(&long, None, None);
    assert_eq!(status.description.chars().count(), DESCRIPTION_LIMIT);
    assert!(status.description.ends_with('…'));
    let env = environment(&"x".repeat(255), EnvironmentType::Preview);
    assert!(new_deployment(&env).description.chars().count() <= DESCRIPTION_LIMIT);
    assert!(failure(&env, None).description.chars().count() <= DESCRIPTION_LIMIT);
    assert_eq!(
        in_progress("rt_1", None, None).description,
        "Runtime rt_1 requested; starting"
    );
}
