//! The example messages of docs/examples, compiled in: the demo enqueues
//! them and a new logic version's self-check runs them.

/// A GitHub `pull_request` opened event for acme/shop#7 (installation 4242).
pub const PULL_REQUEST_OPENED: &str =
    include_str!("../../../docs/examples/pull-request-opened.json");

/// A platform-API request for the production environment of app_shop.
pub const API_PRODUCTION: &str = include_str!("../../../docs/examples/api-production.json");

/// The same pull request closed (not merged): the preview's end.
pub const PULL_REQUEST_CLOSED: &str =
    include_str!("../../../docs/examples/pull-request-closed.json");
