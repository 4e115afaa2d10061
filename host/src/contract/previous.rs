//! `envmgr:environments@0.2.0`, the previous contract, linked for one
//! release so that logic versions installed before a host upgrade keep
//! running while the new host rolls out.
//!
//! Every 0.2 import is served by the current (0.3) implementation: the
//! arguments are converted up, the answers down. What 0.2 lacks, it does
//! without: it starts no call (each is made and waited for in turn), and
//! its runtime calls carry no signing key (its environments get no status
//! reports: they stay `runtime-requested`).

use wasmtime::component::{HasSelf, Linker, Resource};

use crate::bindings::envmgr::environments as now;
use crate::bindings::json::{self, Recordable};
use crate::bindings::resources::SealedValue;
use crate::boundary::Session;

/// The 0.2 world's bindings; its `wasi:*` imports are the current ones.
pub mod bindings {
    wasmtime::component::bindgen!({
        world: "environment-manager",
        path: "../wit/previous/0.2.0",
        imports: { default: async | trappable },
        exports: { default: async },
        additional_derives: [envmgr_derive::Recordable],
        with: {
            "envmgr:environments/sealed.sealed-value": crate::bindings::resources::SealedValue,
            "wasi:logging": crate::bindings::wasi::logging,
            "wasi:config": crate::bindings::wasi::config,
        },
    });
}

use bindings::envmgr::environments as then;

/// The contract version these bindings are for.
pub const VERSION: &str = "0.2.0";

/// Whether a component import (`envmgr:environments/github@0.2.0`) is one
/// of this contract's.
pub fn is_its_import(name: &str) -> bool {
    name.strip_prefix("envmgr:environments/")
        .and_then(|rest| rest.split_once('@'))
        .is_some_and(|(_, version)| version == VERSION)
}

/// Define the 0.2 interfaces of envmgr in `linker` (which holds WASI and the
/// current world already; `wasi:*` is shared).
pub fn add_to_linker(linker: &mut Linker<Session>) -> wasmtime::Result<()> {
    then::types::add_to_linker::<_, HasSelf<_>>(linker, |s| s)?;
    then::sealed::add_to_linker::<_, HasSelf<_>>(linker, |s| s)?;
    then::github::add_to_linker::<_, HasSelf<_>>(linker, |s| s)?;
    then::dynamodb::add_to_linker::<_, HasSelf<_>>(linker, |s| s)?;
    then::kms::add_to_linker::<_, HasSelf<_>>(linker, |s| s)?;
    then::analytics::add_to_linker::<_, HasSelf<_>>(linker, |s| s)?;
    then::runtime::add_to_linker::<_, HasSelf<_>>(linker, |s| s)?;
    Ok(())
}

/// A value as the other contract version's type: both bindgens derive the
/// recording's JSON from the same WIT names (`bindings/json.rs`), so a type
/// whose shape did not change goes through it unchanged. Costs a JSON value
/// per call, paid only by logic of the previous contract. A shape that
/// differs is a host bug: it traps the message.
fn to<B: Recordable>(value: impl Recordable) -> wasmtime::Result<B> {
    json::convert(&value).ok_or_else(|| {
        wasmtime::format_err!(
            "{} has another shape in contract {VERSION}",
            std::any::type_name::<B>()
        )
    })
}

/// An answer as the other version's: its value and its error.
fn answer<A: Recordable, E: Recordable, B: Recordable, F: Recordable>(
    answer: Result<A, E>,
) -> wasmtime::Result<Result<B, F>> {
    Ok(match answer {
        Ok(value) => Ok(to(value)?),
        Err(error) => Err(to(error)?),
    })
}

/// An answer that is a handle: the handle is the same in both versions.
fn sealed(
    answer: Result<Resource<SealedValue>, now::types::Error>,
) -> wasmtime::Result<Result<Resource<SealedValue>, then::types::Error>> {
    Ok(match answer {
        Ok(handle) => Ok(handle),
        Err(error) => Err(to(error)?),
    })
}

/// The message as 0.2 sees it: the same.
pub fn message(message: &now::types::Message) -> wasmtime::Result<then::types::Message> {
    to(message.clone())
}

/// What a 0.2 logic version returned, in current terms.
pub fn handled(
    handled: Result<then::types::Outcome, then::types::Failure>,
) -> wasmtime::Result<Result<now::types::Outcome, now::types::Failure>> {
    answer(handled)
}

impl then::types::Host for Session {}
impl then::sealed::Host for Session {}

impl then::sealed::HostSealedValue for Session {
    async fn label(&mut self, handle: Resource<SealedValue>) -> wasmtime::Result<String> {
        now::sealed::HostSealedValue::label(self, handle).await
    }

    async fn drop(&mut self, handle: Resource<SealedValue>) -> wasmtime::Result<()> {
        now::sealed::HostSealedValue::drop(self, handle).await
    }
}

type Answer<T> = wasmtime::Result<Result<T, then::types::Error>>;
type Written = wasmtime::Result<Result<(), then::dynamodb::WriteError>>;

/// Each method of a 0.2 interface served by the current one of the same
/// name: every argument carried up (`to`), the answer carried down by
/// `$down` (`answer`, or `sealed` for a handle).
macro_rules! forward {
    ($then:path => $now:path {
        $(fn $name:ident($($arg:ident: $ty:ty),*) -> $ret:ty = $down:ident;)*
    }) => {
        impl $then for Session {
            $(async fn $name(&mut self, $($arg: $ty),*) -> $ret {
                $down(<Session as $now>::$name(self, $(to($arg)?),*).await?)
            })*
        }
    };
}

use then::github::{Comment, Deployment, DeploymentStatus, Repository};
type Item = Vec<(String, then::dynamodb::AttributeValue)>;

forward!(then::github::Host => now::github::Host {
    fn authenticate(installation_id: u64) -> Answer<()> = answer;
    fn list_comments(installation_id: u64, repo: Repository, issue_number: u64, marker: String)
        -> Answer<Vec<Comment>> = answer;
    fn create_comment(installation_id: u64, repo: Repository, issue_number: u64, body: String)
        -> Answer<Comment> = answer;
    fn update_comment(installation_id: u64, repo: Repository, comment_id: u64, body: String)
        -> Answer<Comment> = answer;
    fn delete_comment(installation_id: u64, repo: Repository, comment_id: u64)
        -> Answer<()> = answer;
    fn create_installation_token(installation_id: u64, repo: Repository)
        -> Answer<Resource<SealedValue>> = sealed;
    fn find_deployments(
        installation_id: u64, repo: Repository, sha: String, environment: String, task: String
    ) -> Answer<Vec<Deployment>> = answer;
    fn create_deployment(
        installation_id: u64, repo: Repository, deployment: then::github::NewDeployment
    ) -> Answer<Deployment> = answer;
    fn list_deployment_statuses(installation_id: u64, repo: Repository, deployment_id: u64)
        -> Answer<Vec<DeploymentStatus>> = answer;
    fn create_deployment_status(
        installation_id: u64, repo: Repository, deployment_id: u64,
        status: then::github::NewDeploymentStatus
    ) -> Answer<DeploymentStatus> = answer;
    fn delete_deployment(installation_id: u64, repo: Repository, deployment_id: u64)
        -> Answer<()> = answer;
});

forward!(then::dynamodb::Host => now::dynamodb::Host {
    fn get(table: String, key: Item) -> Answer<Option<Item>> = answer;
    fn query(request: then::dynamodb::QueryRequest) -> Answer<then::dynamodb::Page> = answer;
    fn transact_write(writes: Vec<then::dynamodb::Write>) -> Written = answer;
    fn update(request: then::dynamodb::UpdateItem) -> Written = answer;
});

forward!(then::kms::Host => now::kms::Host {
    fn decrypt(ciphertext: Vec<u8>, encryption_context: Vec<(String, String)>, label: String)
        -> Answer<Resource<SealedValue>> = sealed;
});

forward!(then::analytics::Host => now::analytics::Host {
    fn track(event: then::analytics::TrackEvent) -> Answer<()> = answer;
});

impl then::runtime::Host for Session {
    async fn create(
        &mut self,
        request: then::runtime::CreateRequest,
    ) -> Answer<then::runtime::Created> {
        let request = now::runtime::CreateRequest {
            idempotency_key: request.idempotency_key,
            app_id: request.app_id,
            environment_id: request.environment_id,
            environment_type: request.environment_type,
            repository: request.repository,
            branch: request.branch,
            sha: request.sha,
            request_version: request.request_version,
            entrypoint: request.entrypoint,
            installation_token: request.installation_token,
            // A secret carries a handle, the same in both versions.
            secrets: (request.secrets.into_iter())
                .map(|s| now::runtime::Secret {
                    name: s.name,
                    value: s.value,
                })
                .collect(),
            // 0.2 makes no signing key: its runtimes send no reports.
            signing_key: None,
        };
        answer(now::runtime::Host::create(self, request).await?)
    }
}
