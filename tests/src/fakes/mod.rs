//! Local HTTP servers standing in for GitHub, Segment and the Runtime
//! Service: each records what it was sent and can be told to fail.

pub mod collector;
pub mod github;
pub mod http;

/// How a fake quotes a request back (as real APIs do in error messages):
/// one of the named encoders.
pub use crate::encoders::Encoder as Echo;

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
