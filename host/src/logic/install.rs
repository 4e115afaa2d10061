//! `envmgr logic install`: a version is refused with the reason unless it
//! compiles, matches the contract's world, and passes a self-check in the
//! mock host; only then is it stored (and its native code cached).

use std::sync::Arc;
use std::time::Instant;

use crate::calls::{Call, Hit};
use crate::engine::{Engine, Logic, RunError};
use crate::logic::cache::NativeCache;
use crate::logic::registry::Registry;
use crate::mock::examples::{API_PRODUCTION, PULL_REQUEST_OPENED};
use crate::mock::{MockHost, default_config, seed};
use crate::support::hex_sha256;
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
    let contract = logic.contract;
    let logic = Arc::new(logic);
    let mut self_check = self_check(cache.engine(), logic.clone())
        .await
        .map_err(|e| anyhow::anyhow!("refused {id}: the self-check failed: {e:#}"))?;
    // Beside the builtin version, as during a canary or a swap: both must
    // keep the one-writer protocol.
    let builtin = cache
        .load_or_compile(registry.builtin_id(), async {
            Ok(crate::BUILTIN_LOGIC.to_vec())
        })
        .await?;
    let side_by_side = concurrency_check(cache.engine(), logic, Arc::new(builtin))
        .await
        .map_err(|e| anyhow::anyhow!("refused {id}: the two-version check failed: {e:#}"))?;
    self_check.push_str("; ");
    self_check.push_str(&side_by_side);
    registry
        .store(&id, tag, &component, contract, now_ms)
        .await?;
    Ok(Installed {
        id,
        compile_ms,
        self_check,
    })
}

fn expect_handled(what: &str, result: Result<Handled, RunError>) -> anyhow::Result<()> {
    match result {
        Ok(Ok(Outcome::Done(_) | Outcome::Skipped(_))) => Ok(()),
        Ok(Ok(Outcome::Deferred(deferral))) => anyhow::bail!(
            "{what}: deferred with nothing else holding the environment: {}",
            deferral.reason
        ),
        Ok(Err(failure)) => anyhow::bail!(
            "{what}: {} failure: {}",
            crate::bindings::kind_name(failure.kind),
            failure.reason
        ),
        Err(error) => anyhow::bail!("{what}: {error}"),
    }
}

/// The built-in create scenarios: a pull request, its redelivery, and a
/// production request, each checked for the records, the comment and the
/// runtime they must leave behind.
pub async fn self_check(engine: &Arc<Engine>, logic: Arc<Logic>) -> anyhow::Result<String> {
    let host = seeded(engine, logic);

    let opened = host.message("probot", PULL_REQUEST_OPENED);
    expect_handled(
        "a pull_request opened event",
        host.deliver(&opened).await.result,
    )?;
    let environments = records(&host)?.len();
    if environments != 3 {
        anyhow::bail!("a pull request left {environments} environment items, not 3");
    }
    if host.runtime.runtimes()?.len() != 1 {
        anyhow::bail!("a pull request did not create exactly one runtime");
    }
    if host.github.comments("acme/shop", 7)?.len() != 1 {
        anyhow::bail!("a pull request did not leave exactly one comment");
    }

    expect_handled(
        "the same event delivered again",
        host.deliver(&opened).await.result,
    )?;
    if host.runtime.runtimes()?.len() != 1 || host.github.comments("acme/shop", 7)?.len() != 1 {
        anyhow::bail!("a redelivery created a second runtime or comment");
    }

    let production = host.message("api", API_PRODUCTION);
    expect_handled(
        "a production request",
        host.deliver(&production).await.result,
    )?;
    if records(&host)?.len() != 6 || host.runtime.runtimes()?.len() != 2 {
        anyhow::bail!("a production request did not create its environment and runtime");
    }
    Ok("pull request created, redelivery changed nothing, production created".to_string())
}

/// The environment record items (not the leases) in the mock host.
fn records(host: &MockHost) -> anyhow::Result<Vec<crate::capabilities::dynamodb::Item>> {
    use crate::capabilities::dynamodb::AttributeValue;
    let mut items = host.tables.scan("environments")?;
    items.retain(|item| {
        item.iter()
            .any(|(n, v)| n == "entity" && matches!(v, AttributeValue::S(e) if e == "environment"))
    });
    Ok(items)
}

/// A mock host with the self-check's app, secrets and installation.
fn seeded(engine: &Arc<Engine>, logic: Arc<Logic>) -> MockHost {
    let host = MockHost::new(engine.clone(), logic, default_config());
    seed::example_shop(&host, "postgres://self-check", "sk_test_self_check");
    host
}

/// What a delivery interleaved into another one did.
struct Interleaved {
    outcome: String,
    /// It changed something outside its own bookkeeping: a GitHub write, a
    /// runtime call, the environment's record.
    acted: bool,
}

/// What the interleaved delivery did; an error if it never ran.
fn seen(
    slot: &Arc<std::sync::Mutex<Option<Interleaved>>>,
    what: &str,
) -> anyhow::Result<Interleaved> {
    slot.lock()
        .unwrap_or_else(|p| p.into_inner())
        .take()
        .ok_or_else(|| anyhow::anyhow!("{what}: the holder never showed its comment"))
}

/// Run `body` on `host` right before the first `call` of whoever runs next.
fn interleave(
    host: &Arc<MockHost>,
    on: &Arc<MockHost>,
    call: Call,
    body: String,
) -> Arc<std::sync::Mutex<Option<Interleaved>>> {
    let slot: Arc<std::sync::Mutex<Option<Interleaved>>> = Arc::default();
    let (peer, out) = (on.clone(), slot.clone());
    host.faults.interleave(
        call,
        Hit::Nth(1),
        Arc::new(move || {
            let (peer, out, body) = (peer.clone(), out.clone(), body.clone());
            Box::pin(async move {
                let delivery = peer.deliver(&peer.message("probot", &body)).await;
                let acted = delivery.transcript.iter().any(|e| {
                    matches!(
                        e.call,
                        Call::GithubCreateComment
                            | Call::GithubUpdateComment
                            | Call::GithubCreateDeployment
                            | Call::GithubCreateDeploymentStatus
                            | Call::RuntimeCreate
                    ) || (e.call == Call::DynamodbTransactWrite
                        && e.request.contains("entity=environment"))
                });
                let outcome = match &delivery.result {
                    Ok(Ok(Outcome::Done(_))) => "done",
                    Ok(Ok(Outcome::Skipped(_))) => "skipped",
                    Ok(Ok(Outcome::Deferred(_))) => "deferred",
                    Ok(Err(_)) | Err(_) => "failed",
                };
                *out.lock().unwrap_or_else(|p| p.into_inner()) = Some(Interleaved {
                    outcome: outcome.to_string(),
                    acted,
                });
            })
        }),
    );
    slot
}

/// Two pushes to one pull request, the older (`at` 11:00) and the newer
/// (11:30).
fn pushes() -> (String, String) {
    let older = PULL_REQUEST_OPENED.to_string();
    let newer = PULL_REQUEST_OPENED
        .replace("\"opened\"", "\"synchronize\"")
        .replace(
            "3f786850e387550fdab836ed7e6dc881de23001b",
            "89e6c98d92887913cadf06b2adb97f26cde4849b",
        )
        .replace("2026-11-28T11:00:00Z", "2026-11-28T11:30:00Z");
    (older, newer)
}

/// The one-writer protocol (docs/data-model.md), with `candidate` and
/// `reference` (the builtin version) working on one environment at once,
/// in each role: the holder must make the other wait, a newer request must
/// wait for an older holder without acting, and an older request meeting a
/// newer holder must do nothing. A version that ignores the lease (as one
/// built for contract 0.1 did) fails here.
pub async fn concurrency_check(
    engine: &Arc<Engine>,
    candidate: Arc<Logic>,
    reference: Arc<Logic>,
) -> anyhow::Result<String> {
    let (older, newer) = pushes();
    for (holder, arriving, role) in [
        (
            &candidate,
            &reference,
            "the candidate holding, the builtin version arriving newer",
        ),
        (
            &reference,
            &candidate,
            "the builtin version holding, the candidate arriving newer",
        ),
    ] {
        let host = Arc::new(seeded(engine, holder.clone()));
        let peer = Arc::new(host.peer(arriving.clone()));
        let during = interleave(&host, &peer, Call::GithubCreateComment, newer.clone());
        let held = host.deliver(&host.message("probot", &older)).await.result;
        let seen = seen(&during, role)?;
        if seen.outcome != "deferred" || seen.acted {
            anyhow::bail!(
                "{role}: the newer request {} while the older held the environment (it must wait, untouched)",
                if seen.acted {
                    "acted"
                } else {
                    seen.outcome.as_str()
                }
            );
        }
        if !matches!(held, Ok(Ok(Outcome::Skipped(_)))) {
            anyhow::bail!(
                "{role}: the older holder did not stop for the newer request waiting: {}",
                crate::engine::summary(&held)
            );
        }
        host.faults.clear();
        expect_handled(
            &format!("{role}: the newer request after its wait"),
            peer.deliver(&peer.message("probot", &newer)).await.result,
        )?;
        let newest = host.runtime.calls().last().map(|c| c.sha.clone());
        if newest.as_deref() != Some("89e6c98d92887913cadf06b2adb97f26cde4849b") {
            anyhow::bail!("{role}: the runtime's last request is not the newest commit");
        }
    }
    // An older request meeting a newer holder does nothing.
    let host = Arc::new(seeded(engine, reference.clone()));
    let peer = Arc::new(host.peer(candidate.clone()));
    let during = interleave(&host, &peer, Call::GithubCreateComment, older.clone());
    expect_handled(
        "the builtin version's newer request",
        host.deliver(&host.message("probot", &newer)).await.result,
    )?;
    let seen = seen(&during, "a newer holder")?;
    if seen.outcome != "skipped" || seen.acted {
        anyhow::bail!(
            "the candidate's older request {} while a newer one held the environment (it must be skipped, untouched)",
            if seen.acted {
                "acted"
            } else {
                seen.outcome.as_str()
            }
        );
    }
    Ok("beside the builtin version it keeps the one-writer protocol".to_string())
}
