//! Apps and secrets written in the documented format (see [`crate::catalog`]),
//! for mock hosts in tests, examples and `envmgr try`.

use crate::catalog;
pub use crate::catalog::secret_context;
use crate::mock::MockHost;

/// The app record and its repository index item.
pub fn app(host: &MockHost, app_id: &str, name: &str, repository: &str, entrypoint: &str) {
    let items = catalog::app_items(
        app_id,
        name,
        repository,
        Some(entrypoint),
        &catalog::Trust::default(),
    )
    .expect("a well-formed app");
    for item in items {
        host.tables
            .put("apps", item)
            .expect("the mock host has an apps table");
    }
}

/// A secret item holding `ciphertext` (normally from [`secret`]).
pub fn secret_item(host: &MockHost, app_id: &str, scope: &str, name: &str, ciphertext: Vec<u8>) {
    host.tables
        .put(
            "secrets",
            catalog::secret_item(app_id, scope, name, ciphertext),
        )
        .expect("the mock host has a secrets table");
}

/// A secret encrypted by the mock host's KMS key under its documented
/// context.
pub fn secret(host: &MockHost, app_id: &str, scope: &str, name: &str, value: &str) {
    let ciphertext = host
        .kms
        .seal(value, &secret_context(app_id, scope, name))
        .expect("the mock host's key seals");
    secret_item(host, app_id, scope, name, ciphertext);
}

/// The Shop of docs/examples: app `app_shop` on acme/shop, a global
/// `DATABASE_URL` and a preview `STRIPE_KEY` with these values, and the
/// GitHub App installed (4242).
pub fn example_shop(host: &MockHost, database_url: &str, stripe_key: &str) {
    app(host, "app_shop", "Shop", "acme/shop", "src/server.ts");
    secret(host, "app_shop", "global", "DATABASE_URL", database_url);
    secret(host, "app_shop", "preview", "STRIPE_KEY", stripe_key);
    host.github.add_installation(4242);
}
