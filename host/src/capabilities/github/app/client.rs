//! Sending one request for an installation: its turn, its token (minted
//! when missing, shared by everything that uses the backend), GitHub's
//! waits, the answer read whole, conditional list pages, and the answer in
//! the contract's terms.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use http::header::{ETAG, LINK};
use http::{HeaderValue, Method, StatusCode};
use octocrab::OctoBody;
use secrecy::{ExposeSecret, SecretString};

pub mod answer;
mod request;

pub use self::answer::{Answer, minted};
pub use self::request::ApiRequest;
use self::request::{Sender, build};
use super::GitHubApp;
use super::conditional;
use super::limiter::{self, Figures, Pacing};
use super::retry;
use super::tokens::{self, CachedToken};
use crate::capabilities::{CapResult, Error, ErrorCode, error};

/// Times one request goes again after rate-limit refusals (within
/// `max_wait`): GitHub asks to give up after a few.
const RATE_LIMIT_RESENDS: u32 = 2;

/// What envmgr holds for one installation.
#[derive(Default)]
pub struct InstallationState {
    /// Taken for the whole of each request, its token mint and resends
    /// included: GitHub asks integrations to send one installation's
    /// requests one at a time, and callers needing a token share one mint.
    turn: tokio::sync::Mutex<Turn>,
    figures: std::sync::Mutex<Figures>,
}

impl InstallationState {
    pub fn figures<T>(&self, read: impl FnOnce(&Figures) -> T) -> T {
        read(&self.figures.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn update_figures(&self, change: impl FnOnce(&mut Figures)) {
        change(&mut self.figures.lock().unwrap_or_else(|p| p.into_inner()));
    }
}

#[derive(Default)]
struct Turn {
    pacing: Pacing,
    /// The installation's API token.
    token: Option<CachedToken>,
}

/// An installation's turn, held for one request.
struct Held<'a> {
    installation: u64,
    state: &'a InstallationState,
    turn: tokio::sync::MutexGuard<'a, Turn>,
    /// What is left of `max_wait` for this request.
    budget: Duration,
}

impl GitHubApp {
    fn state(&self, installation: u64) -> Arc<InstallationState> {
        self.installations.get(installation)
    }

    /// Wait for the installation's turn.
    async fn take_turn<'a>(&self, installation: u64, state: &'a InstallationState) -> Held<'a> {
        Held {
            installation,
            state,
            turn: state.turn.lock().await,
            budget: self.max_wait,
        }
    }

    /// Every installation seen, by id, with `read` of its figures.
    pub(super) fn each_installation<T>(&self, read: impl Fn(&Figures) -> T) -> Vec<(u64, T)> {
        let mut out: Vec<(u64, T)> = self
            .installations
            .each()
            .into_iter()
            .map(|(id, state)| (id, state.figures(&read)))
            .collect();
        out.sort_by_key(|(id, _)| *id);
        out
    }

    /// Make sure the installation has an API token.
    pub(super) async fn ensure_token(&self, installation: u64) -> CapResult<()> {
        let state = self.state(installation);
        let mut held = self.take_turn(installation, &state).await;
        self.api_token(&mut held).await.map(drop)
    }

    /// Send `request` with the installation's token.
    pub(super) async fn send(&self, installation: u64, request: &ApiRequest) -> CapResult<Answer> {
        self.send_as_installation(installation, request, false)
            .await
    }

    /// Send a `GET` conditionally: with the `ETag` of the page remembered
    /// for it, whose body a `304` stands for.
    pub(super) async fn send_conditional(
        &self,
        installation: u64,
        request: &ApiRequest,
    ) -> CapResult<Answer> {
        self.send_as_installation(installation, request, true).await
    }

    /// Mint a token (`body`: its repositories and permissions) in the
    /// installation's turn; the answer as GitHub gave it.
    pub(super) async fn mint_token(
        &self,
        installation: u64,
        body: &serde_json::Value,
    ) -> CapResult<Answer> {
        let state = self.state(installation);
        let mut held = self.take_turn(installation, &state).await;
        self.mint(&mut held, body).await
    }

    async fn send_as_installation(
        &self,
        installation: u64,
        request: &ApiRequest,
        conditional: bool,
    ) -> CapResult<Answer> {
        let state = self.state(installation);
        let mut held = self.take_turn(installation, &state).await;
        let mut sent_again_after_401 = false;
        loop {
            let (token, fresh) = self.api_token(&mut held).await?;
            let remembered = conditional
                .then(|| self.remembered.get(installation, &request.path))
                .flatten();
            let mut answer = self
                .exchange(
                    &mut held,
                    request,
                    Sender::Installation(&token),
                    remembered.as_ref().map(|page| &page.etag),
                )
                .await?;
            if answer.status == StatusCode::UNAUTHORIZED {
                // Revoked, or expired before its time on GitHub's clock:
                // not used again. GitHub did nothing with the request, so
                // a kept token's 401 is worth one more try with a new one.
                held.turn.token = None;
                if !fresh && !sent_again_after_401 {
                    sent_again_after_401 = true;
                    continue;
                }
            }
            if conditional {
                match (answer.status, remembered) {
                    (StatusCode::NOT_MODIFIED, Some(page)) => {
                        answer.status = StatusCode::OK;
                        answer.body = page.body;
                        if let Some(link) = page.link {
                            answer.headers.insert(LINK, link);
                        }
                    }
                    (StatusCode::OK, _) => {
                        if let Some(etag) = answer.headers.get(ETAG) {
                            let page = conditional::Page {
                                etag: etag.clone(),
                                body: answer.body.clone(),
                                link: answer.headers.get(LINK).cloned(),
                            };
                            self.remembered.remember(installation, &request.path, page);
                        }
                    }
                    _ => {}
                }
            }
            return Ok(answer);
        }
    }

    /// The installation's API token: the kept one while it is fresh, else
    /// a new one (true: minted now).
    async fn api_token(&self, held: &mut Held<'_>) -> CapResult<(SecretString, bool)> {
        if let Some(token) = held
            .turn
            .token
            .as_ref()
            .filter(|t| t.usable(Instant::now()))
        {
            return Ok((token.secret.clone(), false));
        }
        held.turn.token = None;
        let answer = self.mint(held, &serde_json::json!({})).await?;
        let received = Instant::now();
        let minted = minted(answer, "installation token")?;
        self.credentials
            .register_for(minted.secret.expose_secret(), minted.lifetime);
        held.turn.token = CachedToken::keep(&minted, received);
        Ok((minted.secret, true))
    }

    /// `POST /app/installations/{id}/access_tokens` with the App's JWT.
    async fn mint(&self, held: &mut Held<'_>, body: &serde_json::Value) -> CapResult<Answer> {
        let jwt = tokens::app_jwt(self.app_id, &self.signing_key()).map_err(|e| {
            error(
                ErrorCode::Denied,
                format!("github installation token: the App's JWT could not be signed: {e}"),
            )
        })?;
        self.credentials
            .register_for(&jwt, Some(tokens::APP_JWT_LIFETIME));
        let request = ApiRequest::with_json(
            "installation token",
            Method::POST,
            format!("/app/installations/{}/access_tokens", held.installation),
            body,
        );
        let answer = self
            .exchange(held, &request, Sender::App(&jwt), None)
            .await?;
        if answer.status == StatusCode::UNAUTHORIZED {
            // The App's own key refused: every installation's request will
            // be, whatever the message.
            crate::health::suspect("github", "GitHub refused the App's JWT (401)");
        }
        Ok(answer)
    }

    /// `GET /app` with the App's JWT, outside every installation's turn:
    /// whether GitHub takes the App's key (the health probe).
    pub(super) async fn probe_app(&self) -> CapResult<()> {
        let jwt = tokens::app_jwt(self.app_id, &self.signing_key()).map_err(|e| {
            error(
                ErrorCode::Denied,
                format!("github app: the App's JWT could not be signed: {e}"),
            )
        })?;
        self.credentials
            .register_for(&jwt, Some(tokens::APP_JWT_LIFETIME));
        let request = ApiRequest::get("app", "/app".to_string());
        let http_request = build(&request, &Sender::App(&jwt), None).map_err(|e| {
            error(
                ErrorCode::Invalid,
                format!("github app: the request could not be built: {e}"),
            )
        })?;
        self.execute("app", http_request)
            .await?
            .success("app")
            .map(drop)
    }

    /// Send one request and read the whole answer; `unavailable` when none
    /// came.
    async fn execute(&self, what: &str, mut request: http::Request<OctoBody>) -> CapResult<Answer> {
        use tracing::Instrument as _;
        let no_answer = |e: octocrab::Error| {
            error(
                ErrorCode::Unavailable,
                format!("github {what}: {}", crate::support::error_chain(&e)),
            )
        };
        // The request's span: its method and host, and `what` for the
        // route (the path holds repository names).
        let span = crate::telemetry::spans::http(
            request.method().as_str(),
            request.uri().host().unwrap_or(""),
            what,
        );
        let _entered = span.enter();
        if let Some(value) = crate::telemetry::context::current_traceparent()
            .and_then(|v| http::HeaderValue::from_str(&v).ok())
        {
            request
                .headers_mut()
                .insert(crate::telemetry::context::TRACEPARENT, value);
        }
        drop(_entered);
        let response = self.http.execute(request).instrument(span.clone()).await;
        crate::telemetry::spans::http_status(
            &span,
            response.as_ref().ok().map(|r| r.status().as_u16()),
        );
        let response = response.map_err(no_answer)?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = self
            .http
            .body_to_string(response)
            .await
            .map_err(no_answer)?;
        Ok(Answer {
            status,
            headers,
            body: Arc::from(body),
        })
    }

    /// Send one request in the installation's turn: after GitHub's wait
    /// (within `budget`) and the write spacing, and again after a rate-limit
    /// refusal while the budget lasts. Every answer's wait holds the
    /// installation's later requests too.
    async fn exchange(
        &self,
        held: &mut Held<'_>,
        request: &ApiRequest,
        sender: Sender<'_>,
        if_none_match: Option<&HeaderValue>,
    ) -> CapResult<Answer> {
        let write = request.is_write();
        let what = request.what;
        let mut refusal: Option<String> = None;
        let mut resends = 0;
        let mut tries = 1;
        loop {
            let ready = held
                .turn
                .pacing
                .ready(write, self.write_spacing, &mut held.budget)
                .await;
            if let Err(wait) = ready {
                let refusal = refusal.as_deref();
                return Err(self.wait_too_long(what, held.installation, wait, refusal));
            }
            let http_request = build(request, &sender, if_none_match).map_err(|e| {
                error(
                    ErrorCode::Invalid,
                    format!("github {what}: the request could not be built: {e}"),
                )
            })?;
            held.state.update_figures(|f| match sender {
                Sender::Installation(_) => f.counts.sent += 1,
                Sender::App(_) => f.counts.token_mints += 1,
            });
            let answer = self.execute(what, http_request).await;
            held.turn.pacing.answered(write);
            let mints = matches!(sender, Sender::App(_));
            if retry::transient(&answer)
                && retry::repeatable(&request.method, mints)
                && let Some(wait) = retry::wait_before_next(tries)
            {
                tracing::info!(
                    installation = held.installation,
                    request = what,
                    failed = %transient_text(&answer),
                    wait_ms = millis_up(wait),
                    "GitHub did not answer: trying again"
                );
                tries += 1;
                tokio::time::sleep(wait).await;
                continue;
            }
            let answer = answer?;
            if let Sender::Installation(_) = sender {
                held.state.update_figures(|f| {
                    if answer.status != StatusCode::NOT_MODIFIED {
                        f.counts.counted += 1;
                    }
                    if let Some(rate_limit) = limiter::rate_limit_of(&answer.headers) {
                        f.rate_limit = Some(rate_limit);
                    }
                });
            }
            let message = answer.message();
            let Some(asked) =
                limiter::wait_asked(answer.status, &answer.headers, &message, SystemTime::now())
            else {
                return Ok(answer);
            };
            held.turn.pacing.hold(asked.wait);
            if !asked.refused {
                return Ok(answer);
            }
            tracing::warn!(
                installation = held.installation,
                request = what,
                status = answer.status.as_u16(),
                wait_ms = millis_up(asked.wait),
                "Throttled by GitHub: the installation's requests wait"
            );
            if resends == RATE_LIMIT_RESENDS {
                return Ok(answer);
            }
            resends += 1;
            refusal = Some(format!("{} {message}", answer.status.as_u16()));
        }
    }

    fn wait_too_long(
        &self,
        what: &str,
        installation: u64,
        wait: Duration,
        refusal: Option<&str>,
    ) -> Error {
        let retry_after_ms = millis_up(wait);
        let refusal = refusal.map(|r| format!("{r}; ")).unwrap_or_default();
        Error {
            code: ErrorCode::Throttled,
            message: format!(
                "github {what}: {refusal}GitHub asks installation {installation} to wait {retry_after_ms} ms, longer than `github.max_wait_ms` ({} ms)",
                self.max_wait.as_millis()
            ),
            retry_after_ms: Some(retry_after_ms),
        }
    }
}

/// A transient failure in a log line: the status, or why there was none.
fn transient_text(answer: &CapResult<Answer>) -> String {
    match answer {
        Ok(answer) => answer.status.as_u16().to_string(),
        Err(failed) => failed.message.chars().take(200).collect(),
    }
}

/// Milliseconds, rounded up (a wait is never reported shorter than it is).
fn millis_up(wait: Duration) -> u64 {
    u64::try_from(wait.as_nanos().div_ceil(1_000_000)).unwrap_or(u64::MAX)
}
