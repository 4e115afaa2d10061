//! What the fake does around every route: latency, the media type and API
//! version, scripted failures, the ETag of list answers, rate-limit headers
//! and the log of every request.

use std::time::Instant;

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::{
    API_VERSIONS, Failure, FakeGitHub, Logged, MEDIA_TYPE, RATE_LIMIT, Route, bearer, github_error,
    refuse, unix_now,
};

/// Around every route: latency, the media type and API version, scripted
/// failures, the ETag of list answers, rate-limit headers and the log.
pub(super) async fn every_request(
    State(fake): State<FakeGitHub>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .and_then(|matched| Route::of(&method, matched.as_str()));
    let headers = request.headers().clone();
    let api_version = headers
        .get("x-github-api-version")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let installation =
        bearer(&headers).and_then(|t| fake.lock().tokens.get(&t).map(|t| t.installation));

    let latency = fake.lock().latency;
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let failure = route.and_then(|route| {
        let mut inner = fake.lock();
        inner
            .faults
            .get_mut(&route)
            .filter(|queue| !queue.is_empty())
            .map(|queue| queue.remove(0))
    });
    let response = match failure {
        Some(Failure::Echo { status, how }) => echo(status, how, &headers, request).await,
        Some(Failure::HtmlPage(status)) => html_page(status),
        Some(Failure::AfterDoing(status)) => {
            let _done = next.run(request).await;
            failure_response(&Failure::Status(status))
        }
        Some(failure) => failure_response(&failure),
        None => match refused_headers(&fake, &headers, route, api_version.as_deref()) {
            Some(refused) => refused,
            None => {
                let response = next.run(request).await;
                if method == Method::GET && response.status() == StatusCode::OK {
                    with_etag(response, &headers).await
                } else {
                    response
                }
            }
        },
    };
    finish(
        &fake,
        response,
        route,
        method,
        path,
        installation,
        api_version,
        started,
    )
}

/// What GitHub refuses before a route's own work: a media type or an API
/// version it does not serve.
fn refused_headers(
    fake: &FakeGitHub,
    headers: &HeaderMap,
    route: Option<Route>,
    api_version: Option<&str>,
) -> Option<Response> {
    let accept = headers
        .get_all("accept")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(", ");
    if !accept.split(',').any(|media| media.trim() == MEDIA_TYPE) {
        return Some(refuse(
            fake,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!("{route:?}: Accept `{accept}` is not `{MEDIA_TYPE}`"),
        ));
    }
    if let Some(version) = api_version
        && !API_VERSIONS.contains(&version)
    {
        return Some(refuse(
            fake,
            StatusCode::BAD_REQUEST,
            format!("{route:?}: API version `{version}` is not supported"),
        ));
    }
    None
}

fn failure_response(failure: &Failure) -> Response {
    let rate_limit_doc =
        "https://docs.github.com/rest/using-the-rest-api/rate-limits-for-the-rest-api";
    let (status, message, headers): (u16, &str, Vec<(&str, String)>) = match failure {
        Failure::TooManyRequests {
            retry_after_seconds,
        } => (
            429,
            "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
            vec![("retry-after", retry_after_seconds.to_string())],
        ),
        Failure::SecondaryRateLimit {
            retry_after_seconds,
        } => (
            403,
            "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
            vec![
                ("retry-after", retry_after_seconds.to_string()),
                ("x-ratelimit-remaining", "0".to_string()),
            ],
        ),
        Failure::PrimaryRateLimit { reset_in_seconds } => (
            403,
            "API rate limit exceeded for installation.",
            vec![
                ("x-ratelimit-limit", RATE_LIMIT.to_string()),
                ("x-ratelimit-remaining", "0".to_string()),
                ("x-ratelimit-used", RATE_LIMIT.to_string()),
                (
                    "x-ratelimit-reset",
                    (unix_now() + reset_in_seconds).to_string(),
                ),
                ("x-ratelimit-resource", "core".to_string()),
            ],
        ),
        Failure::Echo { .. } | Failure::HtmlPage(_) | Failure::AfterDoing(_) => {
            unreachable!("answered where the failure is taken")
        }
        Failure::Status(status) => (
            *status,
            match status {
                401 => "Bad credentials",
                403 => "Resource not accessible by integration",
                404 => "Not Found",
                409 => "Conflict",
                410 => "Gone",
                422 => "Validation Failed",
                502 => "Server Error",
                503 => "Service Unavailable",
                _ => "Server Error",
            },
            Vec::new(),
        ),
    };
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = github_error(status, message, rate_limit_doc);
    for (name, value) in headers {
        response
            .headers_mut()
            .insert(name, HeaderValue::from_str(&value).expect("a header value"));
    }
    response
}

/// The page GitHub's edge serves when the API behind it does not answer.
fn html_page(status: u16) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
    let page = format!(
        "<!DOCTYPE html>\n<html><head><title>{status} · GitHub</title></head>\n\
         <body><h1>{status}</h1><p>We couldn't respond to your request in time.</p></body></html>\n"
    );
    (status, [("content-type", "text/html; charset=utf-8")], page).into_response()
}

/// A 422-style answer quoting the request back: its credential and body.
async fn echo(
    status: u16,
    how: crate::fakes::Echo,
    headers: &HeaderMap,
    request: Request,
) -> Response {
    let credential = crate::fakes::http::authorization(headers)
        .unwrap_or("")
        .to_string();
    let body = axum::body::to_bytes(request.into_body(), 1 << 20)
        .await
        .unwrap_or_default();
    let quoted = how.encode(&format!(
        "Authorization: {credential}\n{}",
        String::from_utf8_lossy(&body)
    ));
    github_error(
        StatusCode::from_u16(status).unwrap_or(StatusCode::UNPROCESSABLE_ENTITY),
        &format!("Invalid request: {quoted}"),
        "https://docs.github.com/rest",
    )
}

/// A 200 list answer gets an ETag; a request already holding it gets 304
/// with no body.
async fn with_etag(response: Response, request_headers: &HeaderMap) -> Response {
    use sha2_free::digest_hex;
    let (mut parts, body) = response.into_parts();
    let bytes = axum::body::to_bytes(body, 64 << 20)
        .await
        .unwrap_or_default();
    let etag = format!("W/\"{}\"", digest_hex(&bytes));
    let held = request_headers
        .get("if-none-match")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|held| held.split(',').any(|tag| tag.trim() == etag));
    parts
        .headers
        .insert("etag", HeaderValue::from_str(&etag).expect("an etag"));
    if held {
        parts.status = StatusCode::NOT_MODIFIED;
        parts.headers.remove("content-length");
        parts.headers.remove("content-type");
        return Response::from_parts(parts, Body::empty());
    }
    Response::from_parts(parts, Body::from(bytes))
}

/// Count the request against its installation, add the rate-limit headers,
/// log it.
#[allow(clippy::too_many_arguments)]
fn finish(
    fake: &FakeGitHub,
    mut response: Response,
    route: Option<Route>,
    method: Method,
    path: String,
    installation: Option<u64>,
    api_version: Option<String>,
    started: Instant,
) -> Response {
    let status = response.status().as_u16();
    let counted = status != 304;
    let mut inner = fake.lock();
    if let Some(installation) = installation {
        let used = inner.used.entry(installation).or_default();
        if counted {
            *used += 1;
        }
        let used = *used;
        let headers = response.headers_mut();
        if !headers.contains_key("x-ratelimit-remaining") {
            let now = unix_now();
            for (name, value) in [
                ("x-ratelimit-limit", RATE_LIMIT.to_string()),
                (
                    "x-ratelimit-remaining",
                    RATE_LIMIT.saturating_sub(used).to_string(),
                ),
                ("x-ratelimit-used", used.to_string()),
                ("x-ratelimit-reset", (now - now % 3_600 + 3_600).to_string()),
                ("x-ratelimit-resource", "core".to_string()),
            ] {
                headers.insert(name, HeaderValue::from_str(&value).expect("a header value"));
            }
        }
    }
    inner.log.push(Logged {
        route,
        method: method.to_string(),
        path,
        installation,
        status,
        counted,
        api_version,
        started,
        finished: Instant::now(),
    });
    response
}

/// A content hash for ETags; any stable digest does.
mod sha2_free {
    use std::hash::{Hash, Hasher};

    pub fn digest_hex(bytes: &[u8]) -> String {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        bytes.hash(&mut hasher);
        format!("{:016x}", hasher.finish())
    }
}
