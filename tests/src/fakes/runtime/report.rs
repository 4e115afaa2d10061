//! The status report a runtime sends once it is up (or not), as
//! docs/runtime-service.md ("Status reports") has the service sign it.

use serde_json::{Value, json};

use super::Reporting;

/// The report a runtime sends once it is up (or not): signed with the
/// request's key, its first (`seq` 1), valid for five minutes.
pub(super) fn send_report(reporting: Reporting, body: &Value, traceparent: Option<String>) {
    let Some(key) = body.get("signingKey").filter(|k| k.is_object()) else {
        return;
    };
    let key = key.to_string();
    let environment = body["environmentId"].as_str().unwrap_or("").to_string();
    let version = body["requestVersion"].as_str().unwrap_or("").to_string();
    tokio::spawn(async move {
        tokio::time::sleep(reporting.after).await;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut claims = json!({
            "sub": environment,
            "ver": version,
            "state": reporting.state,
            "iat": now,
            "exp": now + 300,
            "jti": format!("{environment}/{version}/1"),
            "seq": 1,
        });
        if reporting.state == "ready" {
            claims["url"] = format!("https://{environment}.preview.test").into();
        } else {
            claims["category"] = "start".into();
            claims["reason"] = "the process exited with status 1".into();
        }
        let report = envmgr::capabilities::keys::sign_report(&key, &claims).expect("a report");
        let envelope = json!({"version": 1, "kind": "runtime-status", "report": report});
        let send = reporting.send;
        let _ = tokio::task::spawn_blocking(move || send(envelope.to_string(), traceparent)).await;
    });
}
