//! The create flow's runtime: requested with everything it needs, and its
//! answer recorded.
//!
//! Apart from the flow because this is where the create meets what the
//! runtime does on its own: the runtime may report on itself before its
//! creation is even recorded, and the record must then say what it
//! reported, not that it is still starting.

use crate::capabilities::{
    CapResult, Capabilities, RuntimeCreated, RuntimeRequest, Started, key_context,
};
use crate::environment::{Environment, StoredKey};
use crate::flow::Halt;
use crate::item::get_s;
use crate::lease::{self, Lease, Refused, Stop};
use crate::outcome::{Failure, failed};
use crate::report::{self, Report};
use crate::request::CreateRequest;
use crate::secrets;

/// Where the runtime's signing key comes from.
pub(super) enum Signing<S> {
    /// Made for this delivery: the private key, sealed.
    Made(S),
    /// On the record: decrypted for the runtime call.
    Stored(StoredKey),
    /// The runtime is on the record already.
    NotNeeded,
}

/// The runtime of this request: on the record, or being created.
pub(super) enum Runtime {
    Recorded(RuntimeCreated),
    Requested(Started<CapResult<RuntimeCreated>>),
}

/// Start the runtime's creation. Everything the call needs is asked for at
/// once: the repository-scoped token (the first GitHub request: the
/// developer waits for the runtime, and the runtime for it), the secrets,
/// the stored signing key. Untrusted code gets neither secrets nor a token.
pub(super) fn start<C: Capabilities>(
    caps: &mut C,
    request: &CreateRequest,
    app_id: &str,
    env: &Environment,
    lease: &mut Lease,
    chosen: Vec<secrets::Stored>,
    signing: Signing<C::Sealed>,
) -> Result<Started<CapResult<RuntimeCreated>>, Halt> {
    let trusted = env.secrets_withheld.is_empty();
    let token = trusted.then(|| {
        caps.start_github_create_installation_token(request.installation_id, &request.repository)
    });
    let secrets = if trusted {
        secrets::start_decrypt(caps, app_id, chosen)
    } else {
        secrets::Decrypting::none()
    };
    let key = match signing {
        Signing::Made(sealed) => Some(Started::ready(Ok(sealed))),
        Signing::Stored(stored) => Some(caps.start_kms_decrypt(
            &stored.ciphertext,
            &key_context(&env.app_id, &env.id, &env.request_version),
            &format!("signing-key:{}", env.id),
        )),
        Signing::NotNeeded => None,
    };
    let token = token
        .map(Started::wait)
        .transpose()
        .map_err(failed("create an installation token for the runtime"))?;
    let secrets = secrets.wait()?;
    let signing_key = key
        .map(Started::wait)
        .transpose()
        .map_err(failed("decrypt the environment's signing key"))?;
    lease.fence(caps)?;
    Ok(caps.start_runtime_create(&RuntimeRequest {
        idempotency_key: env.idempotency_key(),
        app_id: env.app_id.clone(),
        environment_id: env.id.clone(),
        environment_type: env.environment_type.as_str().to_string(),
        repository: env.repository.clone(),
        branch: env.branch.clone(),
        sha: env.sha.clone(),
        request_version: env.request_version.clone(),
        entrypoint: env.entrypoint.clone(),
        installation_token: token.as_ref(),
        secrets: secrets
            .iter()
            .map(|(name, value)| (name.clone(), value))
            .collect(),
        signing_key: signing_key.as_ref(),
    }))
}

/// The runtime's answer, recorded; with what the runtime reported already,
/// if it did (merged into the record).
pub(super) fn created<C: Capabilities>(
    caps: &mut C,
    env: &Environment,
    lease: &mut Lease,
    started: Started<CapResult<RuntimeCreated>>,
) -> Result<(RuntimeCreated, Option<Report>), Halt> {
    let created = started.wait().map_err(failed("create the runtime"))?;
    let report = record(caps, env, lease, &created)?;
    Ok((created, report))
}

/// Record the runtime on all three items, in one transaction with the
/// lease's renewal: only while this delivery holds the environment. A
/// report the runtime sent before this (it is stored, not applied: the
/// create was under way) is merged: the record says ready or failed.
fn record<C: Capabilities>(
    caps: &mut C,
    env: &Environment,
    lease: &mut Lease,
    created: &RuntimeCreated,
) -> Result<Option<Report>, Halt> {
    let mut report = None;
    for _ in 0..2 {
        let now = caps.now_ms();
        let mut writes = env.runtime_requested(
            &created.runtime_id,
            created.url.as_deref(),
            report.as_ref(),
            now,
        );
        let report_check = match &report {
            Some(_) => None,
            None => {
                writes.push(report::none_for(&env.id, &env.request_version));
                Some(writes.len() as u32 - 1)
            }
        };
        match lease.write_holding(caps, now, writes) {
            Ok(()) => return Ok(report),
            Err(Refused::Lease) => return Err(Halt::Stop(lease.why_lost(caps)?)),
            Err(Refused::Writes(failed)) if report_check.is_some_and(|check| failed == [check]) => {
                let stored = lease::read_all(caps, &env.id)?.report;
                report = Report::stored(stored.as_ref(), &env.request_version);
                if report.is_none() {
                    return Err(Failure::retryable(format!(
                        "a status report of environment {} was stored and is gone",
                        env.id
                    ))
                    .into());
                }
            }
            Err(Refused::Writes(_)) => {
                // The record moved on without the lease (a logic version that
                // does not take it, during an upgrade).
                let record = lease::read_all(caps, &env.id)?.record;
                let newer = record
                    .as_ref()
                    .and_then(|r| get_s(r, "requestVersion"))
                    .unwrap_or("(unknown)")
                    .to_string();
                return Err(Halt::Stop(Stop::Stale { newer }));
            }
            Err(Refused::Failed(error)) => {
                return Err(Failure::at("record the runtime on the environment", &error).into());
            }
        }
    }
    Err(Failure::retryable(format!(
        "the status reports of environment {} kept changing while recording its runtime",
        env.id
    ))
    .into())
}
