//! The daemon's admin endpoint (`[admin] listen`): `/metrics` in the
//! Prometheus text format, `/status` as JSON — the active and canary logic
//! versions, per-version outcome counts, and the last swap's figures.

use std::fmt::Write as _;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::logic::serving::Versions;

pub async fn serve(
    listener: TcpListener,
    versions: Arc<Versions>,
    mut stop: watch::Receiver<bool>,
) {
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/status", get(status))
        .with_state(versions);
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = stop.changed().await;
        })
        .await;
    if let Err(e) = served {
        tracing::error!(error = %e, "the admin endpoint stopped");
    }
}

async fn status(State(versions): State<Arc<Versions>>) -> impl IntoResponse {
    axum::Json(versions.status())
}

async fn metrics(State(versions): State<Arc<Versions>>) -> impl IntoResponse {
    let status = versions.status();
    let mut text = String::new();
    text.push_str("# HELP envmgr_logic_version The logic versions served: role active or canary, with the canary's share.\n");
    text.push_str("# TYPE envmgr_logic_version gauge\n");
    let _ = writeln!(
        text,
        "envmgr_logic_version{{version=\"{}\",role=\"active\"}} 1",
        status.active
    );
    if let Some(canary) = &status.canary {
        let _ = writeln!(
            text,
            "envmgr_logic_version{{version=\"{}\",role=\"canary\",percent=\"{}\"}} 1",
            canary.version, canary.percent
        );
    }
    text.push_str("# HELP envmgr_logic_pointer_revision The revision of the shared pointer this host follows (0: none yet).\n");
    text.push_str("# TYPE envmgr_logic_pointer_revision gauge\n");
    let _ = writeln!(
        text,
        "envmgr_logic_pointer_revision {}",
        status.revision.unwrap_or(0)
    );
    text.push_str("# HELP envmgr_messages_total Messages handled, by logic version and outcome.\n");
    text.push_str("# TYPE envmgr_messages_total counter\n");
    for (version, counts) in &status.versions {
        for (outcome, count) in counts {
            let _ = writeln!(
                text,
                "envmgr_messages_total{{version=\"{version}\",outcome=\"{outcome}\"}} {count}"
            );
        }
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text)
}
