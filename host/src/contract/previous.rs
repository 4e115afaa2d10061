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
use crate::bindings::resources::SealedValue;
use crate::boundary::Session;

/// The 0.2 world's bindings; its `wasi:*` imports are the current ones.
pub mod bindings {
    wasmtime::component::bindgen!({
        world: "environment-manager",
        path: "../wit/previous/0.2.0",
        imports: { default: async | trappable },
        exports: { default: async },
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

/// A value of one contract version as the other version's type.
pub trait Convert<T> {
    fn convert(self) -> T;
}

macro_rules! identity {
    ($($t:ty),* $(,)?) => {
        $(impl Convert<$t> for $t {
            fn convert(self) -> $t {
                self
            }
        })*
    };
}

identity!((), String, u8, u32, u64, bool, Resource<SealedValue>);

impl<A: Convert<B>, B> Convert<Vec<B>> for Vec<A> {
    fn convert(self) -> Vec<B> {
        self.into_iter().map(Convert::convert).collect()
    }
}

impl<A: Convert<B>, B> Convert<Option<B>> for Option<A> {
    fn convert(self) -> Option<B> {
        self.map(Convert::convert)
    }
}

impl<A1: Convert<B1>, A2: Convert<B2>, B1, B2> Convert<(B1, B2)> for (A1, A2) {
    fn convert(self) -> (B1, B2) {
        (self.0.convert(), self.1.convert())
    }
}

impl<A: Convert<B>, B, E: Convert<F>, F> Convert<Result<B, F>> for Result<A, E> {
    fn convert(self) -> Result<B, F> {
        match self {
            Ok(value) => Ok(value.convert()),
            Err(error) => Err(error.convert()),
        }
    }
}

/// A record with the same fields in both versions, both ways.
macro_rules! record {
    ($a:path, $b:path { $($field:ident),* $(,)? }) => {
        impl Convert<$b> for $a {
            fn convert(self) -> $b {
                type To = $b;
                To { $($field: self.$field.convert()),* }
            }
        }
        impl Convert<$a> for $b {
            fn convert(self) -> $a {
                type To = $a;
                To { $($field: self.$field.convert()),* }
            }
        }
    };
}

/// A variant or enum with the same cases in both versions, both ways.
macro_rules! cases {
    ($a:path, $b:path { $($unit:ident),* ; $($case:ident),* $(,)? }) => {
        impl Convert<$b> for $a {
            fn convert(self) -> $b {
                type From = $a;
                type To = $b;
                match self {
                    $(From::$unit => To::$unit,)*
                    $(From::$case(value) => To::$case(value.convert()),)*
                }
            }
        }
        impl Convert<$a> for $b {
            fn convert(self) -> $a {
                type From = $b;
                type To = $a;
                match self {
                    $(From::$unit => To::$unit,)*
                    $(From::$case(value) => To::$case(value.convert()),)*
                }
            }
        }
    };
}

cases!(then::types::ErrorCode, now::types::ErrorCode {
    NotFound, Denied, Invalid, Conflict, Throttled, Unavailable;
});
record!(
    then::types::Error,
    now::types::Error {
        code,
        message,
        retry_after_ms
    }
);
cases!(then::types::FailureKind, now::types::FailureKind { Retryable, Permanent; });
record!(
    then::types::Failure,
    now::types::Failure {
        kind,
        reason,
        retry_after_ms
    }
);

record!(
    then::github::Repository,
    now::github::Repository { owner, name }
);
record!(
    then::github::Comment,
    now::github::Comment { id, body, html_url }
);
record!(
    then::github::Deployment,
    now::github::Deployment {
        id,
        sha,
        environment,
        task,
        payload_json,
    }
);
record!(
    then::github::NewDeployment,
    now::github::NewDeployment {
        sha,
        environment,
        task,
        payload_json,
        description,
        transient_environment,
        production_environment,
    }
);
cases!(then::github::DeploymentState, now::github::DeploymentState {
    Error, Failure, Inactive, InProgress, Queued, Pending, Success;
});
record!(
    then::github::DeploymentStatus,
    now::github::DeploymentStatus {
        id,
        state,
        description,
        environment_url,
        log_url,
    }
);
record!(
    then::github::NewDeploymentStatus,
    now::github::NewDeploymentStatus {
        state,
        description,
        environment_url,
        log_url,
    }
);

cases!(then::dynamodb::AttributeValue, now::dynamodb::AttributeValue {
    Null; S, N, B, Bool, Ss, Ns, Bs, Json,
});
record!(
    then::dynamodb::AttributeCheck,
    now::dynamodb::AttributeCheck { name, value }
);
cases!(then::dynamodb::Condition, now::dynamodb::Condition {
    None, ItemAbsent, ItemPresent; Equals, AbsentOrAtMost,
});
record!(
    then::dynamodb::PutItem,
    now::dynamodb::PutItem {
        table,
        item,
        condition
    }
);
record!(
    then::dynamodb::UpdateItem,
    now::dynamodb::UpdateItem {
        table,
        key,
        set,
        condition
    }
);
record!(
    then::dynamodb::KeyCondition,
    now::dynamodb::KeyCondition {
        table,
        key,
        condition
    }
);
cases!(then::dynamodb::Write, now::dynamodb::Write { ; Put, Update, Delete, Check });
cases!(then::dynamodb::WriteError, now::dynamodb::WriteError { ; ConditionFailed, Failed });
record!(
    then::dynamodb::QueryRequest,
    now::dynamodb::QueryRequest {
        table,
        partition,
        sort_prefix,
        limit,
        start_after,
    }
);
record!(then::dynamodb::Page, now::dynamodb::Page { items, next });

record!(
    then::analytics::TrackEvent,
    now::analytics::TrackEvent {
        event,
        user_id,
        properties_json,
        message_id,
    }
);
record!(then::runtime::Secret, now::runtime::Secret { name, value });
record!(
    then::runtime::Created,
    now::runtime::Created { runtime_id, url }
);

record!(
    then::types::Message,
    now::types::Message {
        id,
        source_queue,
        body,
        attributes,
        receive_count,
        sent_at_ms,
        delivery_token,
        deferrals,
    }
);
record!(
    then::types::Deferral,
    now::types::Deferral { until_ms, reason }
);
cases!(then::types::Outcome, now::types::Outcome { ; Done, Skipped, Deferred });

/// The message as 0.2 sees it: the same.
pub fn message(message: &now::types::Message) -> then::types::Message {
    message.clone().convert()
}

/// What a 0.2 logic version returned, in current terms.
pub fn handled(
    handled: Result<then::types::Outcome, then::types::Failure>,
) -> Result<now::types::Outcome, now::types::Failure> {
    handled.convert()
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

impl then::github::Host for Session {
    async fn authenticate(&mut self, installation_id: u64) -> Answer<()> {
        Ok(now::github::Host::authenticate(self, installation_id)
            .await?
            .convert())
    }

    async fn list_comments(
        &mut self,
        installation_id: u64,
        repo: then::github::Repository,
        issue_number: u64,
        marker: String,
    ) -> Answer<Vec<then::github::Comment>> {
        Ok(now::github::Host::list_comments(
            self,
            installation_id,
            repo.convert(),
            issue_number,
            marker,
        )
        .await?
        .convert())
    }

    async fn create_comment(
        &mut self,
        installation_id: u64,
        repo: then::github::Repository,
        issue_number: u64,
        body: String,
    ) -> Answer<then::github::Comment> {
        Ok(now::github::Host::create_comment(
            self,
            installation_id,
            repo.convert(),
            issue_number,
            body,
        )
        .await?
        .convert())
    }

    async fn update_comment(
        &mut self,
        installation_id: u64,
        repo: then::github::Repository,
        comment_id: u64,
        body: String,
    ) -> Answer<then::github::Comment> {
        Ok(now::github::Host::update_comment(
            self,
            installation_id,
            repo.convert(),
            comment_id,
            body,
        )
        .await?
        .convert())
    }

    async fn delete_comment(
        &mut self,
        installation_id: u64,
        repo: then::github::Repository,
        comment_id: u64,
    ) -> Answer<()> {
        Ok(
            now::github::Host::delete_comment(self, installation_id, repo.convert(), comment_id)
                .await?
                .convert(),
        )
    }

    async fn create_installation_token(
        &mut self,
        installation_id: u64,
        repo: then::github::Repository,
    ) -> Answer<Resource<SealedValue>> {
        Ok(
            now::github::Host::create_installation_token(self, installation_id, repo.convert())
                .await?
                .convert(),
        )
    }

    async fn find_deployments(
        &mut self,
        installation_id: u64,
        repo: then::github::Repository,
        sha: String,
        environment: String,
        task: String,
    ) -> Answer<Vec<then::github::Deployment>> {
        Ok(now::github::Host::find_deployments(
            self,
            installation_id,
            repo.convert(),
            sha,
            environment,
            task,
        )
        .await?
        .convert())
    }

    async fn create_deployment(
        &mut self,
        installation_id: u64,
        repo: then::github::Repository,
        deployment: then::github::NewDeployment,
    ) -> Answer<then::github::Deployment> {
        Ok(now::github::Host::create_deployment(
            self,
            installation_id,
            repo.convert(),
            deployment.convert(),
        )
        .await?
        .convert())
    }

    async fn list_deployment_statuses(
        &mut self,
        installation_id: u64,
        repo: then::github::Repository,
        deployment_id: u64,
    ) -> Answer<Vec<then::github::DeploymentStatus>> {
        Ok(now::github::Host::list_deployment_statuses(
            self,
            installation_id,
            repo.convert(),
            deployment_id,
        )
        .await?
        .convert())
    }

    async fn create_deployment_status(
        &mut self,
        installation_id: u64,
        repo: then::github::Repository,
        deployment_id: u64,
        status: then::github::NewDeploymentStatus,
    ) -> Answer<then::github::DeploymentStatus> {
        Ok(now::github::Host::create_deployment_status(
            self,
            installation_id,
            repo.convert(),
            deployment_id,
            status.convert(),
        )
        .await?
        .convert())
    }

    async fn delete_deployment(
        &mut self,
        installation_id: u64,
        repo: then::github::Repository,
        deployment_id: u64,
    ) -> Answer<()> {
        Ok(now::github::Host::delete_deployment(
            self,
            installation_id,
            repo.convert(),
            deployment_id,
        )
        .await?
        .convert())
    }
}

type Item = Vec<(String, then::dynamodb::AttributeValue)>;

impl then::dynamodb::Host for Session {
    async fn get(&mut self, table: String, key: Item) -> Answer<Option<Item>> {
        Ok(now::dynamodb::Host::get(self, table, key.convert())
            .await?
            .convert())
    }

    async fn query(
        &mut self,
        request: then::dynamodb::QueryRequest,
    ) -> Answer<then::dynamodb::Page> {
        Ok(now::dynamodb::Host::query(self, request.convert())
            .await?
            .convert())
    }

    async fn transact_write(
        &mut self,
        writes: Vec<then::dynamodb::Write>,
    ) -> wasmtime::Result<Result<(), then::dynamodb::WriteError>> {
        Ok(now::dynamodb::Host::transact_write(self, writes.convert())
            .await?
            .convert())
    }

    async fn update(
        &mut self,
        request: then::dynamodb::UpdateItem,
    ) -> wasmtime::Result<Result<(), then::dynamodb::WriteError>> {
        Ok(now::dynamodb::Host::update(self, request.convert())
            .await?
            .convert())
    }
}

impl then::kms::Host for Session {
    async fn decrypt(
        &mut self,
        ciphertext: Vec<u8>,
        encryption_context: Vec<(String, String)>,
        label: String,
    ) -> Answer<Resource<SealedValue>> {
        Ok(
            now::kms::Host::decrypt(self, ciphertext, encryption_context, label)
                .await?
                .convert(),
        )
    }
}

impl then::analytics::Host for Session {
    async fn track(&mut self, event: then::analytics::TrackEvent) -> Answer<()> {
        Ok(now::analytics::Host::track(self, event.convert())
            .await?
            .convert())
    }
}

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
            secrets: request.secrets.convert(),
            // 0.2 makes no signing key: its runtimes send no reports.
            signing_key: None,
        };
        Ok(now::runtime::Host::create(self, request).await?.convert())
    }
}
