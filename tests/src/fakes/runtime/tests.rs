//! The fake held to the contract it plays.

use super::*;

fn request() -> Value {
    json!({
        "appId": "app_shop",
        "environmentId": "env_4ccb1407cf7edbdc5866",
        "environmentType": "preview",
        "repository": "acme/shop",
        "branch": "feature/login",
        "sha": "3f786850e387550fdab836ed7e6dc881de23001b",
        "requestVersion": "1795863600000#3f786850e387550fdab836ed7e6dc881de23001b",
        "entrypoint": "src/server.ts",
        "installationToken": "ghs_abc",
        "secrets": { "DATABASE_URL": "postgres://x" }
    })
}

fn post(url: &str, key: Option<&str>, body: &Value) -> (u16, Value) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let client = reqwest::Client::new();
        let mut call = client
            .post(format!("{url}/v1/runtimes"))
            .bearer_auth(TOKEN)
            .json(body);
        if let Some(key) = key {
            call = call.header("Idempotency-Key", key);
        }
        let response = call.send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    })
}

#[test]
fn requests_are_held_to_the_published_schema() {
    let (fake, url) = FakeRuntime::start();
    for (edit, why) in [
        (json!({ "extra": 1 }), "Additional properties"),
        (json!({ "sha": "main" }), "sha"),
        (json!({ "environmentType": "staging" }), "environmentType"),
        (json!({ "secrets": { "A B=C": "x" } }), "secrets"),
        (json!({ "installationToken": 3 }), "installationToken"),
    ] {
        let mut body = request();
        for (k, v) in edit.as_object().unwrap() {
            body[k] = v.clone();
        }
        let (status, answer) = post(&url, Some("k1"), &body);
        assert_eq!(status, 422, "{edit}: {answer}");
        assert!(
            fake.refused().last().unwrap().contains(why),
            "{why}: {:?}",
            fake.refused()
        );
    }
    let mut missing = request();
    missing.as_object_mut().unwrap().remove("entrypoint");
    assert_eq!(post(&url, Some("k1"), &missing).0, 422);
    assert_eq!(post(&url, None, &request()).0, 400);
    assert!(fake.runtimes().is_empty());
}

#[test]
fn one_runtime_per_key_and_a_key_reused_for_another_request_is_refused() {
    let (fake, url) = FakeRuntime::start();
    let (status, first) = post(&url, Some("k1"), &request());
    assert_eq!(status, 201);
    // A new delivery: a fresh token and a rotated secret value.
    let mut again = request();
    again["installationToken"] = "ghs_other".into();
    again["secrets"]["DATABASE_URL"] = "postgres://rotated".into();
    let (status, second) = post(&url, Some("k1"), &again);
    assert_eq!((status, &second["runtimeId"]), (200, &first["runtimeId"]));
    // Another commit under the same key, or another secret name.
    let mut other = request();
    other["sha"] = "89e6c98d92887913cadf06b2adb97f26cde4849b".into();
    assert_eq!(post(&url, Some("k1"), &other).0, 422);
    let mut renamed = request();
    renamed["secrets"] = json!({ "OTHER": "x" });
    assert_eq!(post(&url, Some("k1"), &renamed).0, 422);
    assert_eq!(fake.runtimes().len(), 1);
    fake.throttle_next(9);
    assert_eq!(post(&url, Some("k2"), &request()).0, 429);
}

#[test]
fn a_create_older_than_the_newest_accepted_is_refused() {
    let (fake, url) = FakeRuntime::start();
    let at = |ms: u64, sha: &str| {
        let mut body = request();
        body["sha"] = sha.into();
        body["requestVersion"] = format!("{ms:013}#{sha}").into();
        body
    };
    let newer = at(2_000, &"b".repeat(40));
    let older = at(1_000, &"a".repeat(40));
    assert_eq!(post(&url, Some("new"), &newer).0, 201);
    assert_eq!(post(&url, Some("old"), &older).0, 409);
    assert_eq!(post(&url, Some("new"), &newer).0, 200, "a repeat passes");
    assert_eq!(fake.superseded().len(), 1);
    assert_eq!(fake.accepted().len(), 2);
    let mut unversioned = older.clone();
    unversioned
        .as_object_mut()
        .unwrap()
        .remove("requestVersion");
    assert_eq!(
        post(&url, Some("legacy"), &unversioned).0,
        201,
        "0.1: unfenced"
    );
}

#[test]
fn throttling_is_scripted() {
    let (fake, url) = FakeRuntime::start();
    fake.throttle_next(9);
    assert_eq!(post(&url, Some("k2"), &request()).0, 429);
}

fn delete(url: &str, key: &str, body: &Value) -> (u16, Value) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let response = reqwest::Client::new()
            .post(format!("{url}/v1/runtime-deletions"))
            .bearer_auth(TOKEN)
            .header("Idempotency-Key", key)
            .json(body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    })
}

#[test]
fn a_delete_removes_the_older_runtimes_and_fences_every_older_create() {
    let (fake, url) = FakeRuntime::start();
    let at = |ms: u64| {
        let sha = format!("{:040x}", ms);
        let mut body = request();
        body["sha"] = sha.clone().into();
        body["requestVersion"] = format!("{ms:013}#{sha}").into();
        body
    };
    assert_eq!(post(&url, Some("first"), &at(1_000)).0, 201);
    assert_eq!(post(&url, Some("second"), &at(2_000)).0, 201);
    let removal = json!({
        "appId": "app_shop",
        "environmentId": "env_4ccb1407cf7edbdc5866",
        "environmentType": "preview",
        "requestVersion": format!("{}#delete", at(2_000)["requestVersion"].as_str().unwrap()),
        "reason": "pull-request-closed",
    });
    let (status, answer) = delete(&url, "d1", &removal);
    assert_eq!(
        (status, answer),
        (200, json!({"deleted": ["rt_1", "rt_2"]}))
    );
    assert!(fake.live().is_empty());
    // A repeat answers the same; the key with another body is refused.
    assert_eq!(
        delete(&url, "d1", &removal).1,
        json!({"deleted": ["rt_1", "rt_2"]})
    );
    let mut other = removal.clone();
    other["reason"] = "idle".into();
    assert_eq!(delete(&url, "d1", &other).0, 422);
    // An earlier request's key again, or any create older than the delete: 409.
    assert_eq!(post(&url, Some("second"), &at(2_000)).0, 409);
    assert_eq!(post(&url, Some("late"), &at(1_500)).0, 409);
    // A later push (a reopen) is newer than the delete.
    assert_eq!(post(&url, Some("third"), &at(3_000)).0, 201);
    assert_eq!(fake.live().len(), 1);
    // A delete older than what the service accepted since: 409.
    assert_eq!(delete(&url, "d2", &removal).0, 409);
    let mut bad = removal.clone();
    bad["requestVersion"] = at(4_000)["requestVersion"].clone();
    assert_eq!(
        delete(&url, "d3", &bad).0,
        422,
        "a delete's version ends #delete"
    );
    fake.deletes_answer(Some(405));
    assert_eq!(delete(&url, "d4", &removal).0, 405);
}
