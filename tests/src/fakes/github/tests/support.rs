//! The fake's tests' tools: a fake with one installation, App JWTs, raw
//! HTTP/1.1 requests, minted tokens and a deployment request body.

use std::io::{Read, Write};

use serde_json::{Value, json};

use crate::fakes::github::{APP_ID, FakeGitHub, Installation, MEDIA_TYPE, PRIVATE_KEY, unix_now};

pub(super) const SHA: &str = "3f786850e387550fdab836ed7e6dc881de23001b";

/// A fake with installation 1 on `acme` (all repositories), PR 7 and one
/// commit in acme/shop; its address.
pub(super) fn fake() -> (FakeGitHub, String) {
    let (fake, url) = FakeGitHub::start();
    fake.add_installation(Installation::new(1, "acme"));
    fake.add_pull_request("acme/shop", 7);
    fake.add_commit("acme/shop", SHA);
    (fake, url.trim_start_matches("http://").to_string())
}

/// An App JWT signed with the test key; `iat`/`exp` relative to now.
pub(super) fn jwt(iat_offset: i64, exp_offset: i64) -> String {
    let now = unix_now() as i64;
    let claims = json!({ "iss": APP_ID, "iat": now + iat_offset, "exp": now + exp_offset });
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(PRIVATE_KEY.as_bytes()).unwrap();
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
        &claims,
        &key,
    )
    .unwrap()
}

pub(super) struct Answer {
    pub(super) status: u16,
    pub(super) headers: Vec<(String, String)>,
    pub(super) body: Value,
}

impl Answer {
    pub(super) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 request with `credential` as bearer and the given extra
/// headers (the media type unless `accept` overrides it).
pub(super) fn call(
    address: &str,
    method: &str,
    path: &str,
    credential: &str,
    extra: &[(&str, &str)],
    body: Option<Value>,
) -> Answer {
    let mut stream = std::net::TcpStream::connect(address).expect("connect to the fake");
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let mut headers = String::new();
    if !extra.iter().any(|(n, _)| n.eq_ignore_ascii_case("accept")) {
        headers.push_str(&format!("Accept: {MEDIA_TYPE}\r\n"));
    }
    for (name, value) in extra {
        headers.push_str(&format!("{name}: {value}\r\n"));
    }
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nAuthorization: Bearer {credential}\r\n\
         {headers}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response[9..12].parse().expect("a status code");
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let headers = head
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(": "))
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
    Answer {
        status,
        headers,
        body: serde_json::from_str(body).unwrap_or(Value::Null),
    }
}

/// Mint a token for installation `id` with `body`.
pub(super) fn mint(address: &str, id: u64, body: Value) -> Answer {
    call(
        address,
        "POST",
        &format!("/app/installations/{id}/access_tokens"),
        &jwt(-60, 540),
        &[],
        Some(body),
    )
}

pub(super) fn token(address: &str, body: Value) -> String {
    let answer = mint(address, 1, body);
    assert_eq!(answer.status, 201, "{}", answer.body);
    answer.body["token"].as_str().unwrap().to_string()
}
pub(super) fn deployment(edit: impl FnOnce(&mut Value)) -> Value {
    let mut body = json!({
        "ref": SHA,
        "task": "deploy:envmgr",
        "auto_merge": false,
        "required_contexts": [],
        "payload": { "environmentId": "env_1" },
        "environment": "preview/feature/login",
        "description": "envmgr preview",
        "transient_environment": true,
        "production_environment": false
    });
    edit(&mut body);
    body
}

/// Invalid deployment requests: the Accept header to send (the media type
/// when `None`), the body, GitHub's status and the reason it gives.
pub(super) fn deployment_refusals() -> Vec<(Option<&'static str>, Value, u16, &'static str)> {
    vec![
        (Some("application/json"), deployment(|_| {}), 415, "Accept"),
        (
            None,
            deployment(|b| b["transient_environment"] = "yes".into()),
            422,
            "`transient_environment` must be a boolean",
        ),
        (
            None,
            deployment(|b| b["required_contexts"] = json!([1])),
            422,
            "`required_contexts` must be an array of strings",
        ),
        (
            None,
            deployment(|b| b["payload"] = json!(3)),
            422,
            "`payload` must be an object or a string",
        ),
        (
            None,
            deployment(|b| b["transient"] = true.into()),
            422,
            "`transient` is not a documented parameter",
        ),
        (
            None,
            deployment(|b| {
                b.as_object_mut().unwrap().remove("ref");
            }),
            422,
            "`ref` is required",
        ),
        (
            None,
            deployment(|b| b["ref"] = "0".repeat(40).into()),
            422,
            "No ref found",
        ),
        (
            None,
            deployment(|b| b["environment"] = "e".repeat(256).into()),
            422,
            "environment name is too long",
        ),
        (
            None,
            deployment(|b| {
                b.as_object_mut().unwrap().remove("auto_merge");
            }),
            409,
            "auto_merge",
        ),
        (
            None,
            deployment(|b| {
                b.as_object_mut().unwrap().remove("required_contexts");
            }),
            409,
            "required_contexts",
        ),
    ]
}
