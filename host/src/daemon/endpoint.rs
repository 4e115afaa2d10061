//! The daemon's admin endpoint (`[admin] listen`):
//!
//! | path | answers |
//! |---|---|
//! | `/healthz` | 200 while the process serves (liveness: restart it if this fails) |
//! | `/readyz` | 200 when the probes pass and the daemon is not shutting down; 503 with the problems otherwise |
//! | `/metrics` | OpenMetrics text (prometheus-client) |
//! | `/status` | JSON: the logic versions served, per-version outcome counts, the last swap's figures, health |

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::capabilities::github::GitHub;
use crate::health::{Health, Problem};
use crate::logic::serving::Versions;
use crate::metrics::{CONTENT_TYPE, Scrape};
use crate::queue::Queue;

/// A queue that takes longer than this to tell its state is left out of a
/// scrape (and counted in `envmgr_queue_state_errors`).
const QUEUE_STATE_TIMEOUT: Duration = Duration::from_secs(5);

/// Where the daemon stands, as `/readyz` tells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Probing and loading the logic: nothing received yet.
    Starting,
    Serving,
    /// Shutdown began: no more receives.
    Draining,
    /// Drained: the endpoint stops.
    Closed,
}

/// What the endpoint reads. Up from the start of `serve`, so a host that
/// waits for its dependencies says why on `/readyz`.
pub struct Admin {
    health: Arc<Health>,
    github: Arc<dyn GitHub>,
    /// Set once the logic is loaded.
    versions: OnceLock<Arc<Versions>>,
    /// (logical name, queue), set once connected.
    queues: OnceLock<Vec<(String, Arc<dyn Queue>)>>,
    phase: watch::Sender<Phase>,
}

impl Admin {
    /// Listen on `listen` and serve until [`Admin::set_phase`] closes it.
    pub async fn start(
        listen: SocketAddr,
        health: Arc<Health>,
        github: Arc<dyn GitHub>,
    ) -> anyhow::Result<Arc<Self>> {
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|e| anyhow::anyhow!("admin endpoint {listen}: {e}"))?;
        let admin = Arc::new(Self {
            health,
            github,
            versions: OnceLock::new(),
            queues: OnceLock::new(),
            phase: watch::channel(Phase::Starting).0,
        });
        tracing::info!(%listen, "admin endpoint: /healthz, /readyz, /metrics, /status");
        tokio::spawn(serve(listener, admin.clone()));
        Ok(admin)
    }

    /// The daemon is assembled: what it serves, from which queues.
    pub fn serving(&self, versions: Arc<Versions>, queues: Vec<(String, Arc<dyn Queue>)>) {
        let _ = self.versions.set(versions);
        let _ = self.queues.set(queues);
        self.set_phase(Phase::Serving);
    }

    pub fn set_phase(&self, phase: Phase) {
        self.phase.send_replace(phase);
    }

    fn queues(&self) -> &[(String, Arc<dyn Queue>)] {
        self.queues.get().map_or(&[], Vec::as_slice)
    }
}

async fn serve(listener: TcpListener, admin: Arc<Admin>) {
    let mut phase = admin.phase.subscribe();
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/status", get(status))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(admin);
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = phase.wait_for(|p| *p == Phase::Closed).await;
        })
        .await;
    if let Err(e) = served {
        tracing::error!(error = %e, "the admin endpoint stopped");
    }
}

async fn healthz() -> impl IntoResponse {
    "ok\n"
}

async fn readyz(State(admin): State<Arc<Admin>>) -> impl IntoResponse {
    let unavailable = |why: String| {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {why}\n"),
        )
    };
    if !admin.health.is_healthy() {
        return unavailable(format!(
            "paused for {}",
            Problem::list(&admin.health.problems())
        ));
    }
    match *admin.phase.borrow() {
        Phase::Serving => (StatusCode::OK, "ready\n".to_string()),
        Phase::Starting => unavailable("starting".to_string()),
        Phase::Draining | Phase::Closed => unavailable("shutting down".to_string()),
    }
}

async fn status(State(admin): State<Arc<Admin>>) -> impl IntoResponse {
    let mut status = match admin.versions.get() {
        Some(versions) => serde_json::to_value(versions.status()).unwrap_or_default(),
        None => serde_json::json!({}),
    };
    let problems: Vec<String> = admin
        .health
        .problems()
        .iter()
        .map(ToString::to_string)
        .collect();
    status["healthy"] = admin.health.is_healthy().into();
    status["problems"] = problems.into();
    status["pausedSeconds"] = admin.health.paused_seconds().into();
    // Release 0.1 named this one `last_swap`, its fields in snake_case:
    // kept beside `lastSwap` for one more release (docs/reference/metrics.md).
    if let Some(last) = status.get("lastSwap").cloned() {
        status["last_swap"] = snake_case_keys(last);
    }
    axum::Json(status)
}

/// `{"pointerToSwapMs": 1}` → `{"pointer_to_swap_ms": 1}` (one level).
fn snake_case_keys(value: serde_json::Value) -> serde_json::Value {
    let serde_json::Value::Object(fields) = value else {
        return value;
    };
    fields
        .into_iter()
        .map(|(name, value)| {
            let snake: String = name
                .chars()
                .flat_map(|c| match c.is_ascii_uppercase() {
                    true => vec!['_', c.to_ascii_lowercase()],
                    false => vec![c],
                })
                .collect();
            (snake, value)
        })
        .collect::<serde_json::Map<_, _>>()
        .into()
}

async fn metrics(State(admin): State<Arc<Admin>>) -> impl IntoResponse {
    let mut scrape = Scrape::default();
    scrape.gauge(
        "envmgr_up",
        "1 while the host is healthy and receiving, 0 while paused on a deployment fault.",
        i64::from(admin.health.is_healthy()),
    );
    scrape.seconds(
        "envmgr_paused_seconds",
        "Seconds this process spent paused on deployment faults.",
        admin.health.paused_seconds(),
    );

    if let Some(versions) = admin.versions.get() {
        logic_figures(versions, &mut scrape);
    }

    // No series per installation: a few numbers whatever their count.
    let github = admin.github.rate_limit_summary();
    scrape.gauge(
        "envmgr_github_installations",
        "GitHub App installations held in memory (used within the last hour).",
        i64::try_from(github.installations).unwrap_or(i64::MAX),
    );
    if let Some(lowest) = github.lowest_remaining {
        scrape.gauge(
            "envmgr_github_rate_limit_lowest_remaining",
            "The fewest requests any installation may still make this hour (GitHub's last x-ratelimit-remaining).",
            i64::try_from(lowest).unwrap_or(i64::MAX),
        );
    }
    scrape.gauge(
        "envmgr_github_installations_low_on_requests",
        "Installations with less than a tenth of their hourly rate limit left.",
        i64::try_from(github.low).unwrap_or(i64::MAX),
    );

    queue_figures(&admin, &mut scrape).await;
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], scrape.encode())
}

/// The logic versions served and what became of their messages.
fn logic_figures(versions: &Versions, scrape: &mut Scrape) {
    let status = versions.status();
    let mut served = vec![(
        vec![
            ("version", status.active.clone()),
            ("role", "active".to_string()),
        ],
        1,
    )];
    if let Some(canary) = &status.canary {
        served.push((
            vec![
                ("version", canary.version.clone()),
                ("role", "canary".to_string()),
                ("percent", canary.percent.to_string()),
            ],
            1,
        ));
    }
    scrape.gauges(
        "envmgr_logic_version",
        "The logic versions served: role active or canary, with the canary's share.",
        served,
    );
    scrape.gauge(
        "envmgr_logic_pointer_revision",
        "The revision of the shared pointer this host follows (0: none yet).",
        i64::try_from(status.revision.unwrap_or(0)).unwrap_or(i64::MAX),
    );
    let messages = status
        .versions
        .iter()
        .flat_map(|(version, counts)| {
            counts.iter().map(move |(outcome, count)| {
                (
                    vec![
                        ("version", version.clone()),
                        ("outcome", outcome.to_string()),
                    ],
                    *count,
                )
            })
        })
        .collect();
    scrape.counters(
        "envmgr_messages",
        "Messages handled, by logic version and outcome.",
        messages,
    );
}

/// Each queue's own state, read for the scrape.
async fn queue_figures(admin: &Admin, scrape: &mut Scrape) {
    let states =
        futures::future::join_all(admin.queues().iter().map(|(logical, queue)| async move {
            let state = tokio::time::timeout(QUEUE_STATE_TIMEOUT, queue.state()).await;
            (logical.clone(), state)
        }))
        .await;
    let mut messages = Vec::new();
    let mut dead_letters = Vec::new();
    let mut oldest = Vec::new();
    let mut errors = Vec::new();
    for (logical, state) in states {
        let queue = || vec![("queue", logical.clone())];
        match state {
            Ok(Ok(state)) => {
                for (name, count) in [
                    ("visible", state.visible),
                    ("in_flight", state.in_flight),
                    ("delayed", state.delayed),
                ] {
                    messages.push((
                        vec![("queue", logical.clone()), ("state", name.to_string())],
                        count as i64,
                    ));
                }
                dead_letters.push((queue(), state.dead_letters as i64));
                // SQS's API does not tell it (CloudWatch's
                // ApproximateAgeOfOldestMessage does): no series then.
                if let Some(age) = state.oldest_age {
                    oldest.push((queue(), age.as_secs() as i64));
                }
                errors.push((queue(), 0));
            }
            Ok(Err(e)) => {
                tracing::warn!(queue = %logical, error = %format!("{e:#}"), "queue state not read for /metrics");
                errors.push((queue(), 1));
            }
            Err(_) => errors.push((queue(), 1)),
        }
    }
    scrape.gauges(
        "envmgr_queue_messages",
        "Messages in each queue: visible (the backlog), in flight, delayed (deferred or held back).",
        messages,
    );
    scrape.gauges(
        "envmgr_queue_dead_letters",
        "Messages in each queue's dead-letter queue.",
        dead_letters,
    );
    scrape.gauges(
        "envmgr_queue_oldest_message_age_seconds",
        "Age of the oldest message in each queue (0 when empty; the local backend only).",
        oldest,
    );
    scrape.gauges(
        "envmgr_queue_state_errors",
        "1 when a queue's state could not be read for this scrape.",
        errors,
    );
}
