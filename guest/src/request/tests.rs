//! Parsing both message kinds: refusals that name the real problem and
//! the field as its producer wrote it, and what a request says of who
//! wrote its code.

use super::*;

/// A minimal `opened` event; `head_repo` is the head's `full_name`, or
/// None for a deleted fork.
fn event(author: Option<&str>, head_repo: Option<&str>) -> String {
    let repo = |full_name: &str| {
        let (owner, name) = full_name.split_once('/').unwrap();
        serde_json::json!({ "full_name": full_name, "name": name, "owner": { "login": owner } })
    };
    let mut pull_request = serde_json::json!({
        "number": 7,
        "title": "Add login page",
        "updated_at": "2026-11-28T11:00:00Z",
        "head": {
            "ref": "main",
            "sha": "3f786850e387550fdab836ed7e6dc881de23001b",
            "repo": head_repo.map(repo),
        },
    });
    if let Some(login) = author {
        pull_request["user"] = serde_json::json!({ "login": login });
    }
    serde_json::json!({
        "id": "delivery-1",
        "name": "pull_request",
        "payload": {
            "action": "opened",
            "pull_request": pull_request,
            "repository": repo("acme/shop"),
            "installation": { "id": 4242 },
        },
    })
    .to_string()
}

fn refused(body: &str) -> String {
    match parse(body) {
        Err(BadInput(why)) => why,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn reasons_name_the_real_problem() {
    let why = refused(r#"{"kind": "create-environment", "kind": "x"}"#);
    assert!(
        why.contains("names a field twice") && why.contains("kind"),
        "{why}"
    );
    let big = format!(
        r#"{{"kind": "create-environment", "version": {}}}"#,
        "9".repeat(1000)
    );
    let why = refused(&big);
    assert!(
        why.contains("number too large") && why.contains("version"),
        "{why}"
    );
    assert!(refused("[1, 2]").contains("must be a JSON object"));
    let api = |edit: &dyn Fn(&mut serde_json::Value)| {
        let mut body = serde_json::json!({
            "version": 1, "kind": "create-environment", "appId": "app_shop",
            "environmentType": "preview", "repository": "acme/shop", "branch": "b",
            "sha": "3f786850e387550fdab836ed7e6dc881de23001b", "installationId": 1,
            "requester": "u", "requestedAt": "2026-11-28T11:00:00Z"
        });
        edit(&mut body);
        refused(&body.to_string())
    };
    assert!(
        api(&|b| b["entrypoint"] = "e".repeat(1_025).into()).starts_with("entrypoint has 1025")
    );
    assert!(api(&|b| b["requester"] = "r".repeat(256).into()).starts_with("requester has"));
    assert!(api(&|b| b["appId"] = "x-->".into()).contains("appId `x-->`"));
    assert!(api(&|b| b["repository"] = "ac me/shop".into()).starts_with("repository: "));
    assert!(refused("{ nope").contains("not valid JSON"));
    for payload in ["\"text\"", "42", "[]"] {
        let body = format!(r#"{{"id": "d1", "name": "pull_request", "payload": {payload}}}"#);
        let why = refused(&body);
        assert!(
            why.contains("`payload`") && why.contains("JSON object"),
            "{payload}: {why}"
        );
    }
}

#[test]
fn one_json_value_or_a_refusal_saying_where_parsing_stopped() {
    let body = event(None, Some("acme/shop"));
    for trailing in [" xyz", "{}", " {\"id\": 2}", "]"] {
        let why = refused(&format!("{body}{trailing}"));
        assert!(
            why.contains("not valid JSON") && why.contains("trailing characters at line 1"),
            "{trailing}: {why}"
        );
    }
    let why = refused("xyz");
    assert!(
        why.contains("not valid JSON") && why.contains("line 1 column 1"),
        "{why}"
    );
    // Whitespace after the value is part of one JSON text.
    assert!(parse(&format!("{body} \n")).is_ok());
}

#[test]
fn a_webhook_refusal_names_the_field_as_the_event_has_it() {
    let changed = |edit: &dyn Fn(&mut serde_json::Value)| {
        let mut body: serde_json::Value =
            serde_json::from_str(&event(None, Some("acme/shop"))).unwrap();
        edit(&mut body["payload"]);
        refused(&body.to_string())
    };
    let why = changed(&|p| p["sender"] = serde_json::json!({ "login": "l".repeat(300) }));
    assert!(why.starts_with("sender.login has 300 characters"), "{why}");
    let why = changed(&|p| p["pull_request"]["title"] = "t".repeat(1_100).into());
    assert!(why.starts_with("pull_request.title has 1100"), "{why}");
    let why = changed(&|p| p["pull_request"]["head"]["sha"] = "abc".into());
    assert!(why.starts_with("pull_request.head.sha `abc`"), "{why}");
    let why = changed(&|p| p["pull_request"]["head"]["ref"] = "a b".into());
    assert!(why.starts_with("pull_request.head.ref `a b`"), "{why}");
    let why = changed(&|p| p["repository"]["owner"]["login"] = "ac me".into());
    assert!(why.starts_with("repository.owner.login: "), "{why}");
}

fn create(body: &str) -> CreateRequest {
    match parse(body) {
        Ok(Parsed::Create(request)) => *request,
        other => panic!("expected a create request, got {other:?}"),
    }
}

#[test]
fn a_webhook_names_its_author_and_whether_it_comes_from_a_fork() {
    let own = create(&event(Some("octocat"), Some("ACME/Shop")));
    assert_eq!(own.branch, "main");
    assert_eq!(
        own.origin,
        Origin::PullRequest {
            author: Some("octocat".into()),
            from_fork: false
        }
    );

    let fork = create(&event(Some("mallory"), Some("mallory/shop")));
    assert_eq!(fork.branch, "mallory:main");
    assert_eq!(
        fork.origin,
        Origin::PullRequest {
            author: Some("mallory".into()),
            from_fork: true
        }
    );

    let deleted = create(&event(None, None));
    assert_eq!(deleted.branch, "deleted-fork:main");
    assert_eq!(
        deleted.origin,
        Origin::PullRequest {
            author: None,
            from_fork: true
        }
    );
}

#[test]
fn an_api_request_comes_from_the_platform() {
    let body = serde_json::json!({
        "version": 1,
        "kind": "create-environment",
        "appId": "app_shop",
        "environmentType": "preview",
        "repository": "acme/shop",
        "branch": "main",
        "sha": "3f786850e387550fdab836ed7e6dc881de23001b",
        "installationId": 4242,
        "requester": "user_123",
        "requestedAt": "2026-11-28T11:00:00Z",
    });
    assert_eq!(create(&body.to_string()).origin, Origin::Platform);
}

/// The one-pass read of a pull-request event (`webhook::at_once`) decides
/// as the careful path does wherever it decides at all, and decides the
/// common events; bodies the careful path refuses or words apart it leaves
/// to that path.
#[test]
fn the_one_pass_read_agrees_with_the_careful_path() {
    let opened = event(Some("octocat"), Some("acme/shop"));
    let with = |from: &str, to: &str| {
        assert!(opened.contains(from), "{from}");
        opened.replacen(from, to, 1)
    };
    let decided = [
        opened.clone(),
        with("\"opened\"", "\"synchronize\""),
        with("\"opened\"", "\"closed\""),
        with(
            "\"id\":\"delivery-1\"",
            "\"kind\":null,\"id\":\"delivery-1\"",
        ),
        with("\"installation\":{\"id\":4242},", ""),
        with("3f786850e387550fdab836ed7e6dc881de23001b", "not-a-sha"),
        event(None, None),
    ];
    for body in &decided {
        let once = webhook::at_once(body).unwrap_or_else(|| panic!("not decided at once: {body}"));
        assert_eq!(once, careful(body), "{body}");
    }
    let left = [
        with("\"opened\"", "\"labeled\""),
        with("\"opened\"", "null"),
        with("\"opened\"", "7"),
        with(
            "\"action\":\"opened\",",
            "\"action\":\"opened\",\"action\":\"opened\",",
        ),
        with(
            "\"id\":\"delivery-1\"",
            "\"version\":1e400,\"id\":\"delivery-1\"",
        ),
        with(
            "\"id\":\"delivery-1\"",
            "\"kind\":1,\"kind\":2,\"id\":\"delivery-1\"",
        ),
        with("\"pull_request\",", "\"push\","),
        format!("{opened} x"),
        format!("[{opened}]"),
    ];
    for body in &left {
        assert_eq!(webhook::at_once(body), None, "{body}");
    }
    // The fields in an array, in order: serde's derive takes that for a
    // struct; the careful path refuses it, so the one pass leaves it.
    let payload: serde_json::Value = serde_json::from_str(&opened).unwrap();
    let payload = &payload["payload"];
    let fields = [
        "action",
        "pull_request",
        "repository",
        "installation",
        "sender",
    ];
    let in_order: Vec<_> = fields.iter().map(|f| payload[f].clone()).collect();
    let body = serde_json::json!({ "id": "d", "name": "pull_request", "payload": in_order });
    let delivery = serde_json::json!(["d", "pull_request", payload, null, null]);
    for body in [body.to_string(), delivery.to_string()] {
        assert_eq!(webhook::at_once(&body), None, "{body}");
        assert!(careful(&body).is_err(), "{body}");
    }
}
