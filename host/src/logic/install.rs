//! `envmgr logic install`: a version is refused with the reason unless it
//! compiles, matches the contract's world, and passes a self-check in the
//! mock host; only then is it stored (and its native code cached).

use std::sync::Arc;
use std::time::Instant;

use crate::engine::{Engine, Logic, RunError, hex_sha256};
use crate::logic::cache::NativeCache;
use crate::logic::registry::Registry;
use crate::mock::examples::{API_PRODUCTION, PULL_REQUEST_OPENED};
use crate::mock::{MockHost, default_config, seed};
use crate::{Handled, Outcome};

/// What `install` did.
#[derive(Debug)]
pub struct Installed {
    pub id: String,
    pub compile_ms: u128,
    /// What the self-check saw.
    pub self_check: String,
}

pub async fn install(
    registry: &Registry,
    cache: &NativeCache,
    component: Vec<u8>,
    tag: Option<&str>,
    now_ms: u64,
) -> anyhow::Result<Installed> {
    let id = hex_sha256(&component);
    let started = Instant::now();
    let logic = cache
        .compile(component.clone())
        .await
        .map_err(|e| anyhow::anyhow!("refused {id}: {e:#}"))?;
    let compile_ms = started.elapsed().as_millis();
    let self_check = self_check(cache.engine(), Arc::new(logic))
        .await
        .map_err(|e| anyhow::anyhow!("refused {id}: the self-check failed: {e:#}"))?;
    registry.store(&id, tag, &component, now_ms).await?;
    Ok(Installed {
        id,
        compile_ms,
        self_check,
    })
}

fn expect_handled(what: &str, result: Result<Handled, RunError>) -> anyhow::Result<()> {
    match result {
        Ok(Ok(Outcome::Done(_) | Outcome::Skipped(_))) => Ok(()),
        Ok(Err(failure)) => anyhow::bail!("{what}: {:?} failure: {}", failure.kind, failure.reason),
        Err(error) => anyhow::bail!("{what}: {error}"),
    }
}

/// The built-in create scenarios: a pull request, its redelivery, and a
/// production request, each checked for the records, the comment and the
/// runtime they must leave behind.
pub async fn self_check(engine: &Arc<Engine>, logic: Arc<Logic>) -> anyhow::Result<String> {
    let host = MockHost::new(engine.clone(), logic, default_config());
    seed::app(&host, "app_shop", "Shop", "acme/shop", "src/server.ts");
    seed::secret(
        &host,
        "app_shop",
        "global",
        "DATABASE_URL",
        "postgres://self-check",
    );
    seed::secret(
        &host,
        "app_shop",
        "preview",
        "STRIPE_KEY",
        "sk_test_self_check",
    );
    host.github.add_installation(4242);

    let opened = host.message("probot", PULL_REQUEST_OPENED);
    expect_handled(
        "a pull_request opened event",
        host.deliver(&opened).await.result,
    )?;
    let environments = host.tables.scan("environments").len();
    if environments != 3 {
        anyhow::bail!("a pull request left {environments} environment items, not 3");
    }
    if host.runtime.runtimes().len() != 1 {
        anyhow::bail!("a pull request did not create exactly one runtime");
    }
    if host.github.comments("acme/shop", 7).len() != 1 {
        anyhow::bail!("a pull request did not leave exactly one comment");
    }

    expect_handled(
        "the same event delivered again",
        host.deliver(&opened).await.result,
    )?;
    if host.runtime.runtimes().len() != 1 || host.github.comments("acme/shop", 7).len() != 1 {
        anyhow::bail!("a redelivery created a second runtime or comment");
    }

    let production = host.message("api", API_PRODUCTION);
    expect_handled(
        "a production request",
        host.deliver(&production).await.result,
    )?;
    if host.tables.scan("environments").len() != 6 || host.runtime.runtimes().len() != 2 {
        anyhow::bail!("a production request did not create its environment and runtime");
    }
    Ok("pull request created, redelivery changed nothing, production created".to_string())
}
