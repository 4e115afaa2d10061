//! Local HTTP servers standing in for GitHub, Segment and the Runtime
//! Service: each records what it was sent and can be told to fail.

pub mod github;

/// How a fake quotes a request back (as real APIs do in error messages:
/// "invalid request: {...}"), to prove no secret comes back through envmgr.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Echo {
    /// The request as JSON text inside the answer (JSON-escaped once more).
    Json,
    /// Base64 of the request.
    Base64,
    /// The request percent-encoded, as in a query string.
    UrlEncoded,
}

impl Echo {
    pub const ALL: [Echo; 3] = [Echo::Json, Echo::Base64, Echo::UrlEncoded];

    /// `request` in this form.
    pub fn quote(self, request: &str) -> String {
        use base64::Engine as _;
        match self {
            Echo::Json => serde_json::to_string(request).unwrap_or_default(),
            Echo::Base64 => base64::engine::general_purpose::STANDARD.encode(request),
            Echo::UrlEncoded => {
                let mut out = String::new();
                for b in request.bytes() {
                    match b {
                        b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                            out.push(b as char)
                        }
                        b => out.push_str(&format!("%{b:02X}")),
                    }
                }
                out
            }
        }
    }
}
pub mod runtime;
pub mod segment;

use std::net::SocketAddr;

/// Serve `router` on a free loopback port from a thread of its own, so the
/// fake outlives any one test's runtime.
pub fn serve(router: axum::Router) -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    listener
        .set_nonblocking(true)
        .expect("non-blocking listener");
    let address = listener.local_addr().expect("bound address");
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("fake server runtime");
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).expect("tokio listener");
            axum::serve(listener, router).await.expect("fake server");
        });
    });
    address
}
