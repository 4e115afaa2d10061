//! What asks for a delete, parsed: each trigger, its order, and the events
//! that ask for nothing.

use serde_json::{Value, json};

use crate::request::{AppRef, BadInput, DeleteRequest, Order, Parsed, Reason, parse};

const SHA: &str = "3f786850e387550fdab836ed7e6dc881de23001b";

fn repository(full_name: &str) -> Value {
    let (owner, name) = full_name.split_once('/').unwrap();
    json!({ "full_name": full_name, "name": name, "owner": { "login": owner } })
}

fn webhook(name: &str, payload: Value) -> String {
    json!({ "id": "delivery-9", "name": name, "payload": payload }).to_string()
}

fn closed(merged: bool, head_repo: Option<&str>) -> String {
    webhook(
        "pull_request",
        json!({
            "action": "closed",
            "pull_request": {
                "number": 7,
                "title": "Add login page",
                "updated_at": "2026-11-29T09:30:00Z",
                "merged": merged,
                "head": { "ref": "feature/login", "sha": SHA, "repo": head_repo.map(repository) },
            },
            "repository": repository("acme/shop"),
            "installation": { "id": 4242 },
            "sender": { "login": "octocat" },
        }),
    )
}

fn delete(body: &str) -> DeleteRequest {
    match parse(body) {
        Ok(Parsed::Delete(request)) => *request,
        other => panic!("expected a delete, got {other:?}"),
    }
}

fn ignored(body: &str) -> String {
    match parse(body) {
        Ok(Parsed::Ignored(why)) => why,
        other => panic!("expected it ignored, got {other:?}"),
    }
}

#[test]
fn a_closed_pull_request_deletes_at_its_time_and_head() {
    let request = delete(&closed(false, Some("acme/shop")));
    assert_eq!(request.reason, Reason::PullRequestClosed);
    assert_eq!(request.branch, "feature/login");
    assert_eq!(
        request.order,
        Order::At {
            ms: 1_795_944_600_000,
            sha: Some(SHA.into())
        }
    );
    assert_eq!(request.head.as_deref(), Some("acme:feature/login"));
    assert!(request.from_webhook);
    assert_eq!(request.requester, "github:octocat");
    assert_eq!(
        delete(&closed(true, Some("acme/shop"))).reason,
        Reason::PullRequestMerged
    );
    // A fork's branch is the fork owner's, as its create named it.
    let fork = delete(&closed(false, Some("someone/shop")));
    assert_eq!(fork.branch, "someone:feature/login");
    assert_eq!(fork.head.as_deref(), Some("someone:feature/login"));
    // A deleted fork: no head to ask GitHub about.
    assert_eq!(delete(&closed(false, None)).head, None);
}

#[test]
fn a_deleted_branch_deletes_what_it_saw_and_a_tag_or_a_push_asks_nothing() {
    let event = |ref_type: &str| {
        webhook(
            "delete",
            json!({
                "ref": "feature/login", "ref_type": ref_type, "pusher_type": "user",
                "repository": repository("acme/shop"), "installation": { "id": 4242 },
                "sender": { "login": "octocat" },
            }),
        )
    };
    let request = delete(&event("branch"));
    assert_eq!(
        (request.reason, &request.order, request.branch.as_str()),
        (
            Reason::BranchDeleted,
            &Order::Seen { sha: None },
            "feature/login"
        )
    );
    assert_eq!(request.app, AppRef::Repository);
    assert!(ignored(&event("tag")).contains("only a branch"));
    let push = |deleted: bool, reference: &str| {
        webhook(
            "push",
            json!({
                "ref": reference, "before": SHA, "after": "0".repeat(40), "deleted": deleted,
                "repository": repository("acme/shop"), "installation": { "id": 4242 },
            }),
        )
    };
    let pushed = delete(&push(true, "refs/heads/feature/login"));
    assert_eq!(
        pushed.order,
        Order::Seen {
            sha: Some(SHA.into())
        }
    );
    assert_eq!(pushed.branch, "feature/login");
    assert!(ignored(&push(false, "refs/heads/feature/login")).contains("deploys nothing"));
    assert!(ignored(&push(true, "refs/tags/v1")).contains("only a branch"));
}

#[test]
fn the_api_deletes_at_a_time_or_exactly_a_version() {
    let api = |extra: Value| {
        let mut body = json!({
            "version": 1, "kind": "delete-environment", "appId": "app_shop",
            "environmentType": "production", "branch": "main", "requester": "platform:ops",
        });
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        body.to_string()
    };
    let at = delete(&api(json!({ "requestedAt": "2026-11-29T09:30:00Z" })));
    assert_eq!(
        at.order,
        Order::At {
            ms: 1_795_944_600_000,
            sha: None
        }
    );
    assert_eq!((at.reason, at.from_webhook), (Reason::Api, false));
    let version = format!("1795944600000#{SHA}");
    let exactly = delete(&api(
        json!({ "ifRequestVersion": version, "reason": "idle" }),
    ));
    assert_eq!(
        (exactly.order, exactly.reason),
        (Order::IfAt(version), Reason::Idle)
    );
    for (extra, why) in [
        (json!({}), "exactly one of"),
        (
            json!({ "requestedAt": "2026-11-29T09:30:00Z", "ifRequestVersion": "x" }),
            "exactly one of",
        ),
        (
            json!({ "ifRequestVersion": "yesterday" }),
            "not a request version",
        ),
        (
            json!({ "requestedAt": "2026-11-29T09:30:00Z", "reason": "bored" }),
            "reason",
        ),
        (
            json!({ "requestedAt": "2026-11-29T09:30:00Z", "sha": SHA }),
            "unknown field",
        ),
    ] {
        match parse(&api(extra.clone())) {
            Err(BadInput(refused)) => assert!(refused.contains(why), "{extra}: {refused}"),
            other => panic!("{extra}: {other:?}"),
        }
    }
}
