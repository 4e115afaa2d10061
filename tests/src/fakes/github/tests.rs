//! The fake's own rules, each provoked over HTTP.

mod support;

use std::time::Duration;

use serde_json::{Value, json};

use super::*;
use support::{SHA, call, deployment, deployment_refusals, fake, jwt, mint, token};

#[test]
fn the_app_jwt_is_judged_as_github_judges_it() {
    let (fake, address) = fake();
    let post = |credential: &str| {
        call(
            &address,
            "POST",
            "/app/installations/1/access_tokens",
            credential,
            &[],
            None,
        )
    };
    assert_eq!(post(&jwt(-60, 540)).status, 201, "octocrab's shape");
    for (credential, why) in [
        (jwt(-60, 600), "too far in the future"),
        (
            jwt(-700, -60),
            "must be a numeric value representing the future",
        ),
        (jwt(120, 500), "'Issued at' claim"),
        ("not-a-jwt".to_string(), "could not be decoded"),
    ] {
        let answer = post(&credential);
        assert_eq!(answer.status, 401, "{why}");
        assert!(fake.rejected().last().unwrap().contains(why), "{why}");
    }
    // An installation the App is not on.
    let answer = mint(&address, 99, json!({}));
    assert_eq!(answer.status, 404);
    assert_eq!(fake.mints().len(), 1);
}

#[test]
fn tokens_are_scoped_to_repositories_and_permissions_and_expire() {
    let (fake, address) = fake();
    let full = token(&address, json!({}));
    let scoped = token(
        &address,
        json!({ "repositories": ["shop"], "permissions": { "contents": "read" } }),
    );
    let mints = fake.mints();
    assert_eq!(
        mints[1].repositories.as_deref(),
        Some(&["shop".to_string()][..])
    );
    assert_eq!(
        mints[1].permissions.get("contents").map(String::as_str),
        Some("read")
    );
    assert!(!mints[1].permissions.contains_key("issues"));

    let list = "/repos/acme/shop/issues/7/comments";
    assert_eq!(call(&address, "GET", list, &full, &[], None).status, 200);
    // contents:read cannot read comments: 403 as GitHub answers.
    assert_eq!(call(&address, "GET", list, &scoped, &[], None).status, 403);
    assert!(
        fake.rejected()
            .last()
            .unwrap()
            .contains("not accessible by integration")
    );
    // Another repository of the same account is outside `scoped`: 404.
    let other = token(&address, json!({ "repositories": ["other"] }));
    assert_eq!(call(&address, "GET", list, &other, &[], None).status, 404);
    // Another account is outside the installation.
    let foreign = "/repos/mallory/shop/issues/7/comments";
    assert_eq!(call(&address, "GET", foreign, &full, &[], None).status, 404);
    // Unknown tokens and permissions the installation lacks.
    assert_eq!(
        call(&address, "GET", list, "ghs_made_up", &[], None).status,
        401
    );
    let asked = mint(
        &address,
        1,
        json!({ "permissions": { "administration": "write" } }),
    );
    assert_eq!(asked.status, 422);
    let asked = mint(
        &address,
        1,
        json!({ "permissions": { "contents": "write" } }),
    );
    assert_eq!(
        asked.status, 422,
        "the installation has contents: read only"
    );
    assert!(fake.rejected().last().unwrap().contains("not granted"));
    let asked = mint(&address, 1, json!({ "repositories": ["shop"], "other": 1 }));
    assert_eq!(asked.status, 422);

    // Expiry: a token past its lifetime is refused.
    fake.set_token_ttl(Duration::from_millis(300));
    let short = token(&address, json!({}));
    let expires: String = mint(&address, 1, json!({})).body["expires_at"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(expires.ends_with('Z'), "RFC 3339 UTC: {expires}");
    assert_eq!(call(&address, "GET", list, &short, &[], None).status, 200);
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(call(&address, "GET", list, &short, &[], None).status, 401);
    assert!(fake.rejected().last().unwrap().contains("expired"));
}

#[test]
fn every_route_checks_the_media_type_and_api_version() {
    let (fake, address) = fake();
    let full = token(&address, json!({}));
    let list = "/repos/acme/shop/issues/7/comments";
    let plain = call(
        &address,
        "GET",
        list,
        &full,
        &[("Accept", "application/json")],
        None,
    );
    assert_eq!(plain.status, 415);
    let version = [("X-GitHub-Api-Version", "2021-01-01")];
    assert_eq!(
        call(&address, "GET", list, &full, &version, None).status,
        400
    );
    let version = [("X-GitHub-Api-Version", "2022-11-28")];
    assert_eq!(
        call(&address, "GET", list, &full, &version, None).status,
        200
    );
    let logged = fake.requests();
    assert_eq!(
        logged.last().unwrap().api_version.as_deref(),
        Some("2022-11-28")
    );
    assert_eq!(logged.last().unwrap().route, Some(Route::ListComments));
}

#[test]
fn comments_follow_the_rest_documentation() {
    let (fake, address) = fake();
    let full = token(&address, json!({}));
    let path = "/repos/acme/shop/issues/7/comments";
    let post = |body: Value| call(&address, "POST", path, &full, &[], Some(body));
    assert_eq!(post(json!({})).status, 422, "body is required");
    assert_eq!(post(json!({ "body": 3 })).status, 422);
    assert_eq!(
        post(json!({ "body": "x".repeat(COMMENT_LIMIT + 1) })).status,
        422
    );
    assert!(fake.rejected().last().unwrap().contains("too long"));
    assert_eq!(
        call(
            &address,
            "POST",
            "/repos/acme/shop/issues/8/comments",
            &full,
            &[],
            Some(json!({ "body": "x" }))
        )
        .status,
        404,
        "no such pull request"
    );
    let created = post(json!({ "body": "x".repeat(COMMENT_LIMIT) }));
    assert_eq!(created.status, 201);
    let id = created.body["id"].as_u64().unwrap();
    let patch = |body: Option<Value>| {
        call(
            &address,
            "PATCH",
            &format!("/repos/acme/shop/issues/comments/{id}"),
            &full,
            &[],
            body,
        )
    };
    assert_eq!(patch(None).status, 422, "an update needs a body");
    assert_eq!(patch(Some(json!({}))).status, 422);
    assert_eq!(patch(Some(json!({ "body": "edited" }))).status, 200);
    assert_eq!(fake.comments("acme/shop", 7), ["edited"]);

    // A person's comment carries no App, and pages follow each other.
    for i in 0..120 {
        fake.add_human_comment("acme/shop", 7, "octocat", &format!("hello {i}"));
    }
    let first = call(
        &address,
        "GET",
        &format!("{path}?per_page=100"),
        &full,
        &[],
        None,
    );
    assert_eq!(first.body.as_array().unwrap().len(), 100);
    let next = first.header("link").expect("a next page");
    assert!(next.contains("page=2"), "{next}");
    let human = &first.body[1];
    assert_eq!(human["performed_via_github_app"], Value::Null);
    assert_eq!(human["user"]["type"], "User");
    let second = call(
        &address,
        "GET",
        &format!("{path}?per_page=100&page=2"),
        &full,
        &[],
        None,
    );
    assert_eq!(second.body.as_array().unwrap().len(), 21);
    assert!(second.header("link").is_none());
}

#[test]
fn list_answers_carry_an_etag_and_a_matching_one_is_304_and_not_counted() {
    let (fake, address) = fake();
    let full = token(&address, json!({}));
    let path = "/repos/acme/shop/issues/7/comments";
    let first = call(&address, "GET", path, &full, &[], None);
    let etag = first.header("etag").unwrap().to_string();
    let remaining: u64 = first
        .header("x-ratelimit-remaining")
        .unwrap()
        .parse()
        .unwrap();
    let again = call(
        &address,
        "GET",
        path,
        &full,
        &[("If-None-Match", &etag)],
        None,
    );
    assert_eq!(again.status, 304);
    assert_eq!(
        again
            .header("x-ratelimit-remaining")
            .unwrap()
            .parse::<u64>()
            .unwrap(),
        remaining,
        "a 304 is free"
    );
    fake.add_human_comment("acme/shop", 7, "octocat", "new");
    let changed = call(
        &address,
        "GET",
        path,
        &full,
        &[("If-None-Match", &etag)],
        None,
    );
    assert_eq!(changed.status, 200);
    let counted: Vec<bool> = fake.requests().iter().skip(1).map(|r| r.counted).collect();
    assert_eq!(counted, [true, false, true]);
}

#[test]
fn scripted_failures_answer_as_github_does() {
    let (fake, address) = fake();
    let full = token(&address, json!({}));
    let path = "/repos/acme/shop/issues/7/comments";
    fake.fail_next(
        Route::ListComments,
        1,
        Failure::TooManyRequests {
            retry_after_seconds: 7,
        },
    );
    fake.fail_next(
        Route::ListComments,
        1,
        Failure::PrimaryRateLimit {
            reset_in_seconds: 30,
        },
    );
    fake.fail_next(Route::ListComments, 1, Failure::Status(502));
    let limited = call(&address, "GET", path, &full, &[], None);
    assert_eq!(
        (limited.status, limited.header("retry-after")),
        (429, Some("7"))
    );
    let primary = call(&address, "GET", path, &full, &[], None);
    assert_eq!(primary.status, 403);
    assert_eq!(primary.header("x-ratelimit-remaining"), Some("0"));
    assert!(primary.header("retry-after").is_none());
    let reset: u64 = primary
        .header("x-ratelimit-reset")
        .unwrap()
        .parse()
        .unwrap();
    assert!(reset >= unix_now() + 25);
    assert_eq!(call(&address, "GET", path, &full, &[], None).status, 502);
    assert_eq!(call(&address, "GET", path, &full, &[], None).status, 200);
}

#[test]
fn deployment_requests_are_checked_against_the_rest_documentation() {
    let (fake, address) = fake();
    let full = token(&address, json!({}));
    let read_only = token(
        &address,
        json!({ "permissions": { "deployments": "read" } }),
    );
    let path = "/repos/acme/shop/deployments";
    assert_deployments_checked(&fake, &address, &full, &read_only);

    let create = || call(&address, "POST", path, &full, &[], Some(deployment(|_| {}))).body;
    let first = create();
    let second = create();
    assert_statuses_checked(&fake, &address, &full, &first);
    assert_listed_newest_first(&address, &full, &read_only, &first, &second);
    assert_only_an_inactive_deployment_deleted(&fake, &address, &full, &first, &second);
}

/// Each invalid deployment is refused with GitHub's status and reason and
/// creates nothing; a token with deployments: read cannot create one.
fn assert_deployments_checked(fake: &FakeGitHub, address: &str, full: &str, read_only: &str) {
    let path = "/repos/acme/shop/deployments";
    let post = |accept: Option<&str>, body: Value| {
        let accept: Vec<(&str, &str)> = accept.map(|a| ("Accept", a)).into_iter().collect();
        call(address, "POST", path, full, &accept, Some(body)).status
    };
    for (accept, body, status, why) in deployment_refusals() {
        let before = fake.rejected().len();
        assert_eq!(post(accept, body.clone()), status, "{body}");
        let rejected = fake.rejected();
        assert_eq!(rejected.len(), before + 1, "{body}");
        assert!(rejected[before].contains(why), "{rejected:?} lacks {why}");
    }
    assert!(fake.deployments("acme/shop").is_empty());
    assert_eq!(
        call(
            address,
            "POST",
            path,
            read_only,
            &[],
            Some(deployment(|_| {}))
        )
        .status,
        403,
        "deployments: read cannot create"
    );
}

/// Each invalid status is refused with its reason; a valid one is created.
fn assert_statuses_checked(fake: &FakeGitHub, address: &str, full: &str, first: &Value) {
    let path = "/repos/acme/shop/deployments";
    let statuses = |id: &Value| format!("{path}/{id}/statuses");
    for (body, why) in [
        (json!({ "state": "done" }), "`state` `done` is not one of"),
        (json!({ "description": "x" }), "`state` is required"),
        (
            json!({ "state": "in_progress", "environment_url": null }),
            "`environment_url` must be a string",
        ),
        (
            json!({ "state": "in_progress", "log_url": 7 }),
            "`log_url` must be a string",
        ),
        (
            json!({ "state": "failure", "description": "d".repeat(141) }),
            "more than 140 characters",
        ),
    ] {
        let answer = call(
            address,
            "POST",
            &statuses(&first["id"]),
            full,
            &[],
            Some(body),
        );
        assert_eq!(answer.status, 422);
        assert!(fake.rejected().last().unwrap().contains(why), "{why}");
    }
    let in_progress = json!({
        "state": "in_progress",
        "description": "Runtime rt_1 requested",
        "environment_url": "https://env_1.runtime.test",
        "log_url": "https://github.com/acme/shop/pull/7#issuecomment-1"
    });
    let created = call(
        address,
        "POST",
        &statuses(&first["id"]),
        full,
        &[],
        Some(in_progress),
    );
    assert_eq!(created.status, 201);
    assert_eq!(
        created.body["environment_url"],
        "https://env_1.runtime.test"
    );
}

/// Listed newest first, filtered by the documented query parameters.
fn assert_listed_newest_first(
    address: &str,
    full: &str,
    read_only: &str,
    first: &Value,
    second: &Value,
) {
    let path = "/repos/acme/shop/deployments";
    let query =
        format!("{path}?sha={SHA}&environment=preview%2Ffeature%2Flogin&task=deploy%3Aenvmgr");
    let listed = call(address, "GET", &query, read_only, &[], None);
    assert_eq!(listed.status, 200);
    let ids: Vec<&Value> = listed
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|d| &d["id"])
        .collect();
    assert_eq!(ids, [&second["id"], &first["id"]]);
    let none = call(
        address,
        "GET",
        &format!("{path}?task=deploy"),
        full,
        &[],
        None,
    );
    assert_eq!(none.body, json!([]));
}

/// Only an inactive deployment is deleted while there are others.
fn assert_only_an_inactive_deployment_deleted(
    fake: &FakeGitHub,
    address: &str,
    full: &str,
    first: &Value,
    second: &Value,
) {
    let path = "/repos/acme/shop/deployments";
    let statuses = |id: &Value| format!("{path}/{id}/statuses");
    let delete =
        |id: &Value| call(address, "DELETE", &format!("{path}/{id}"), full, &[], None).status;
    assert_eq!(delete(&first["id"]), 422);
    assert!(
        fake.rejected()
            .last()
            .unwrap()
            .contains("active deployment")
    );
    let failed = json!({ "state": "failure", "description": "broken" });
    call(
        address,
        "POST",
        &statuses(&second["id"]),
        full,
        &[],
        Some(failed),
    );
    assert_eq!(delete(&second["id"]), 422, "failure is not inactive");
    let inactive = json!({ "state": "inactive", "description": "duplicate" });
    call(
        address,
        "POST",
        &statuses(&second["id"]),
        full,
        &[],
        Some(inactive),
    );
    assert_eq!(delete(&second["id"]), 204);
    assert_eq!(delete(&second["id"]), 404);
    assert_eq!(fake.deployments("acme/shop").len(), 1);
}

#[test]
fn a_success_status_retires_earlier_successful_deployments_of_the_environment() {
    let (fake, address) = fake();
    let full = token(&address, json!({}));
    let path = "/repos/acme/shop/deployments";
    let staging = |_: ()| {
        deployment(|b| {
            b["environment"] = "staging".into();
            b["transient_environment"] = false.into();
        })
    };
    let first = call(&address, "POST", path, &full, &[], Some(staging(()))).body;
    let second = call(&address, "POST", path, &full, &[], Some(staging(()))).body;
    let success = json!({ "state": "success", "environment_url": "https://x.test" });
    let status = |id: &Value, body: Value| {
        call(
            &address,
            "POST",
            &format!("{path}/{id}/statuses"),
            &full,
            &[],
            Some(body),
        )
        .status
    };
    assert_eq!(status(&first["id"], success.clone()), 201);
    assert_eq!(status(&second["id"], success.clone()), 201);
    let states: Vec<Option<String>> = fake
        .deployments("acme/shop")
        .iter()
        .map(|d| d.state().map(str::to_string))
        .collect();
    assert_eq!(
        states,
        [Some("inactive".to_string()), Some("success".to_string())]
    );
    // auto_inactive: false leaves the earlier one alone.
    let third = call(&address, "POST", path, &full, &[], Some(staging(()))).body;
    let mut kept = success.clone();
    kept["auto_inactive"] = false.into();
    assert_eq!(status(&third["id"], kept), 201);
    assert_eq!(fake.deployments("acme/shop")[1].state(), Some("success"));
}
