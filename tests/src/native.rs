//! The guest's flow compiled natively, running against the host's backends
//! directly: the baseline the sandbox's cost is measured against, and a check
//! that the component behaves as its source does.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use envmgr::boundary::Backends;
use envmgr::capabilities::dynamodb as host_db;
use envmgr::capabilities::github as host_gh;
use envmgr::capabilities::keys::{KeyPair, verify_report};
use envmgr::capabilities::runtime::{
    RuntimeDelete as HostRuntimeDelete, RuntimeRequest as HostRuntimeRequest,
};
use envmgr::capabilities::{Error as HostError, ErrorCode as HostCode};
use envmgr::redact::Secret;
use envmgr_guest::capabilities::*;

/// The flow's capabilities served straight from host backends, no sandbox.
pub struct Native<'a> {
    pub backends: &'a Backends,
    pub now_ms: u64,
}

/// The mock host's backends never wait: the local ones over a database in
/// memory run every read and write where it is asked for (no writer
/// thread, `envmgr::local`'s `memory`), so their futures finish on their
/// first poll — no executor needed, and none measured.
fn ready<T>(future: impl Future<Output = T>) -> T {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(value) => value,
        Poll::Pending => panic!("the native baseline needs backends that never wait"),
    }
}

/// The guest's types (wit-bindgen's) and the host's (wasmtime's) of one WIT
/// type have the same fields and cases: the same shape, in two crates'
/// types. [`ToHost`] carries a guest value to the host's type (cloned, as
/// the boundary copies it), [`ToGuest`] an answer back.
trait ToHost<T> {
    fn host(&self) -> T;
}

trait ToGuest<T> {
    fn guest(self) -> T;
}

macro_rules! primitives {
    ($($t:ty),*) => {$(
        impl ToHost<$t> for $t {
            fn host(&self) -> $t {
                self.clone()
            }
        }
        impl ToGuest<$t> for $t {
            fn guest(self) -> $t {
                self
            }
        }
    )*};
}
primitives!(String, u64, u32, u8, bool, ());

impl<A: ToHost<B>, B> ToHost<Vec<B>> for Vec<A> {
    fn host(&self) -> Vec<B> {
        self.iter().map(ToHost::host).collect()
    }
}
impl<A: ToGuest<B>, B> ToGuest<Vec<B>> for Vec<A> {
    fn guest(self) -> Vec<B> {
        self.into_iter().map(ToGuest::guest).collect()
    }
}
impl<A: ToHost<B>, B> ToHost<Option<B>> for Option<A> {
    fn host(&self) -> Option<B> {
        self.as_ref().map(ToHost::host)
    }
}
impl<A: ToGuest<B>, B> ToGuest<Option<B>> for Option<A> {
    fn guest(self) -> Option<B> {
        self.map(ToGuest::guest)
    }
}
impl<A: ToHost<B>, B> ToHost<(String, B)> for (String, A) {
    fn host(&self) -> (String, B) {
        (self.0.clone(), self.1.host())
    }
}
impl<A: ToGuest<B>, B> ToGuest<(String, B)> for (String, A) {
    fn guest(self) -> (String, B) {
        (self.0, self.1.guest())
    }
}

/// A record, field by field: `guest => host` to the host, `host => guest`
/// back.
macro_rules! record {
    (to host: $from:ty => $to:ty { $($f:ident),* $(,)? }) => {
        impl ToHost<$to> for $from {
            fn host(&self) -> $to {
                type To = $to;
                To { $($f: self.$f.host()),* }
            }
        }
    };
    (to guest: $from:ty => $to:ty { $($f:ident),* $(,)? }) => {
        impl ToGuest<$to> for $from {
            fn guest(self) -> $to {
                type To = $to;
                To { $($f: self.$f.guest()),* }
            }
        }
    };
}

/// A variant or enum, case by case (cases without a payload first).
macro_rules! cases {
    (to host: $from:ty => $to:ty { $($unit:ident),* ; $($case:ident),* $(,)? }) => {
        impl ToHost<$to> for $from {
            fn host(&self) -> $to {
                type From = $from;
                type To = $to;
                match self {
                    $(From::$unit => To::$unit,)*
                    $(From::$case(value) => To::$case(value.host()),)*
                }
            }
        }
    };
    (to guest: $from:ty => $to:ty { $($unit:ident),* ; $($case:ident),* $(,)? }) => {
        impl ToGuest<$to> for $from {
            fn guest(self) -> $to {
                type From = $from;
                type To = $to;
                match self {
                    $(From::$unit => To::$unit,)*
                    $(From::$case(value) => To::$case(value.guest()),)*
                }
            }
        }
    };
}

cases!(to guest: HostCode => ErrorCode {
    NotFound, Denied, Invalid, Conflict, Throttled, Unavailable;
});
record!(to guest: HostError => CapabilityError { code, message, retry_after_ms });
cases!(to guest: host_db::WriteError => WriteError { ; ConditionFailed, Failed });
record!(to host: Repository => host_gh::Repository { owner, name });
record!(to guest: host_gh::Comment => Comment { id, body, html_url });
record!(to guest: host_gh::Deployment => Deployment { id, sha, environment, task, payload_json });
cases!(to host: DeploymentState => host_gh::DeploymentState {
    Error, Failure, Inactive, InProgress, Queued, Pending, Success;
});
cases!(to guest: host_gh::DeploymentState => DeploymentState {
    Error, Failure, Inactive, InProgress, Queued, Pending, Success;
});
record!(to guest: host_gh::DeploymentStatus => DeploymentStatus {
    id, state, description, environment_url, log_url,
});
record!(to host: NewDeployment => host_gh::NewDeployment {
    sha, environment, task, payload_json, description, transient_environment,
    production_environment,
});
record!(to host: NewDeploymentStatus => host_gh::NewDeploymentStatus {
    state, description, environment_url, log_url,
});
record!(to guest: host_gh::PullRequest => PullRequest { number, head_sha });
cases!(to host: Value => host_db::AttributeValue { Null; S, N, B, Bool, Ss, Ns, Bs, Json });
cases!(to guest: host_db::AttributeValue => Value { Null; S, N, B, Bool, Ss, Ns, Bs, Json });
record!(to host: AttributeCheck => host_db::AttributeCheck { name, value });
cases!(to host: Condition => host_db::Condition {
    None, ItemAbsent, ItemPresent; Equals, AbsentOrAtMost,
});
record!(to host: Update => host_db::UpdateItem { table, key, set, condition });
record!(to host: PutItem => host_db::PutItem { table, item, condition });
record!(to host: KeyCondition => host_db::KeyCondition { table, key, condition });
cases!(to host: Write => host_db::Write { ; Put, Update, Delete, Check });
record!(to host: Query => host_db::QueryRequest { table, partition, sort_prefix, limit, start_after });
record!(to guest: host_db::Page => Page { items, next });
record!(to host: TrackEvent => envmgr::capabilities::analytics::TrackEvent {
    event, user_id, properties_json, message_id,
});
record!(to host: RuntimeDelete => HostRuntimeDelete {
    idempotency_key, app_id, environment_id, environment_type, request_version, reason,
});
record!(to guest: envmgr::capabilities::runtime::Created => RuntimeCreated { runtime_id, url });

impl Capabilities for Native<'_> {
    type Sealed = Secret;

    fn now_ms(&mut self) -> u64 {
        self.now_ms
    }

    fn config(&mut self, key: &str) -> Option<String> {
        self.backends.config.get(key).map(str::to_string)
    }

    fn log(&mut self, _level: LogLevel, _step: &str, _message: &str) {}

    fn github_authenticate(&mut self, installation_id: u64) -> CapResult<()> {
        ready(self.backends.github.authenticate(installation_id)).map_err(ToGuest::guest)
    }

    fn github_list_comments(
        &mut self,
        installation_id: u64,
        r: &Repository,
        issue_number: u64,
        marker: &str,
    ) -> CapResult<Vec<Comment>> {
        ready(
            self.backends
                .github
                .list_comments(installation_id, &r.host(), issue_number, marker),
        )
        .map(ToGuest::guest)
        .map_err(ToGuest::guest)
    }

    fn github_create_comment(
        &mut self,
        installation_id: u64,
        r: &Repository,
        issue_number: u64,
        body: &str,
    ) -> CapResult<Comment> {
        ready(
            self.backends
                .github
                .create_comment(installation_id, &r.host(), issue_number, body),
        )
        .map(ToGuest::guest)
        .map_err(ToGuest::guest)
    }

    fn github_update_comment(
        &mut self,
        installation_id: u64,
        r: &Repository,
        comment_id: u64,
        body: &str,
    ) -> CapResult<Comment> {
        ready(
            self.backends
                .github
                .update_comment(installation_id, &r.host(), comment_id, body),
        )
        .map(ToGuest::guest)
        .map_err(ToGuest::guest)
    }

    fn github_delete_comment(
        &mut self,
        installation_id: u64,
        r: &Repository,
        comment_id: u64,
    ) -> CapResult<()> {
        ready(
            self.backends
                .github
                .delete_comment(installation_id, &r.host(), comment_id),
        )
        .map_err(ToGuest::guest)
    }

    fn github_create_installation_token(
        &mut self,
        installation_id: u64,
        r: &Repository,
    ) -> CapResult<Secret> {
        ready(
            self.backends
                .github
                .create_installation_token(installation_id, &r.host()),
        )
        .map_err(ToGuest::guest)
    }

    fn github_find_deployments(
        &mut self,
        installation_id: u64,
        r: &Repository,
        sha: &str,
        environment: &str,
        task: &str,
    ) -> CapResult<Vec<Deployment>> {
        ready(self.backends.github.find_deployments(
            installation_id,
            &r.host(),
            sha,
            environment,
            task,
        ))
        .map(ToGuest::guest)
        .map_err(ToGuest::guest)
    }

    fn github_create_deployment(
        &mut self,
        installation_id: u64,
        r: &Repository,
        new: &NewDeployment,
    ) -> CapResult<Deployment> {
        ready(
            self.backends
                .github
                .create_deployment(installation_id, &r.host(), &new.host()),
        )
        .map(ToGuest::guest)
        .map_err(ToGuest::guest)
    }

    fn github_list_deployment_statuses(
        &mut self,
        installation_id: u64,
        r: &Repository,
        deployment_id: u64,
    ) -> CapResult<Vec<DeploymentStatus>> {
        ready(self.backends.github.list_deployment_statuses(
            installation_id,
            &r.host(),
            deployment_id,
        ))
        .map(ToGuest::guest)
        .map_err(ToGuest::guest)
    }

    fn github_create_deployment_status(
        &mut self,
        installation_id: u64,
        r: &Repository,
        deployment_id: u64,
        status: &NewDeploymentStatus,
    ) -> CapResult<DeploymentStatus> {
        ready(self.backends.github.create_deployment_status(
            installation_id,
            &r.host(),
            deployment_id,
            &status.host(),
        ))
        .map(ToGuest::guest)
        .map_err(ToGuest::guest)
    }

    fn github_list_open_pull_requests(
        &mut self,
        installation_id: u64,
        r: &Repository,
        head: &str,
    ) -> CapResult<Vec<PullRequest>> {
        let open = ready(self.backends.github.list_open_pull_requests(
            installation_id,
            &r.host(),
            head,
        ));
        open.map(ToGuest::guest).map_err(ToGuest::guest)
    }

    fn github_delete_environment(
        &mut self,
        installation_id: u64,
        r: &Repository,
        name: &str,
    ) -> CapResult<()> {
        ready(
            self.backends
                .github
                .delete_environment(installation_id, &r.host(), name),
        )
        .map_err(ToGuest::guest)
    }

    fn github_delete_deployment(
        &mut self,
        installation_id: u64,
        r: &Repository,
        deployment_id: u64,
    ) -> CapResult<()> {
        ready(
            self.backends
                .github
                .delete_deployment(installation_id, &r.host(), deployment_id),
        )
        .map_err(ToGuest::guest)
    }

    fn db_get(&mut self, table: &str, key: &Item) -> CapResult<Option<Item>> {
        ready(self.backends.dynamodb.get(table, &key.host()))
            .map(ToGuest::guest)
            .map_err(ToGuest::guest)
    }

    fn db_query(&mut self, q: &Query) -> CapResult<Page> {
        ready(self.backends.dynamodb.query(&q.host()))
            .map(ToGuest::guest)
            .map_err(ToGuest::guest)
    }

    fn db_transact_write(&mut self, writes: &[Write]) -> Result<(), WriteError> {
        let writes: Vec<host_db::Write> = writes.iter().map(ToHost::host).collect();
        ready(self.backends.dynamodb.transact_write(&writes)).map_err(ToGuest::guest)
    }

    fn db_update(&mut self, u: &Update) -> Result<(), WriteError> {
        ready(self.backends.dynamodb.update(&u.host())).map_err(ToGuest::guest)
    }

    fn kms_decrypt(
        &mut self,
        ciphertext: &[u8],
        context: &[(String, String)],
        _label: &str,
    ) -> CapResult<Secret> {
        ready(self.backends.kms.decrypt(ciphertext, context)).map_err(ToGuest::guest)
    }

    fn analytics_track(&mut self, e: &TrackEvent) -> CapResult<()> {
        ready(self.backends.analytics.track(&e.host())).map_err(ToGuest::guest)
    }

    fn runtime_delete(&mut self, request: &RuntimeDelete) -> CapResult<Vec<String>> {
        ready(self.backends.runtime.delete(&request.host())).map_err(ToGuest::guest)
    }

    fn requests_send(&mut self, body: &str) -> CapResult<String> {
        ready(self.backends.requests.send(body)).map_err(ToGuest::guest)
    }

    fn runtime_create(
        &mut self,
        request: &RuntimeRequest<'_, Secret>,
    ) -> CapResult<RuntimeCreated> {
        let plain = HostRuntimeRequest {
            idempotency_key: request.idempotency_key.clone(),
            app_id: request.app_id.clone(),
            environment_id: request.environment_id.clone(),
            environment_type: request.environment_type.clone(),
            repository: request.repository.clone(),
            branch: request.branch.clone(),
            sha: request.sha.clone(),
            request_version: request.request_version.clone(),
            entrypoint: request.entrypoint.clone(),
            installation_token: request.installation_token.cloned(),
            secrets: request
                .secrets
                .iter()
                .map(|(name, value)| (name.clone(), (*value).clone()))
                .collect(),
            signing_key: request.signing_key.cloned(),
        };
        ready(self.backends.runtime.create(&plain))
            .map(ToGuest::guest)
            .map_err(ToGuest::guest)
    }

    /// As the mock host makes them: reproducible from what they are for.
    fn keys_generate(
        &mut self,
        app_id: &str,
        environment_id: &str,
        request_version: &str,
    ) -> CapResult<SigningKey<Secret>> {
        let pair = KeyPair::reproducible(environment_id, request_version).map_err(|e| {
            CapabilityError {
                code: ErrorCode::Unavailable,
                message: e.to_string(),
                retry_after_ms: None,
            }
        })?;
        let context = key_context(app_id, environment_id, request_version);
        let ciphertext = ready(
            self.backends
                .kms
                .encrypt(pair.private_jwk.expose(), &context),
        )
        .map_err(ToGuest::guest)?;
        Ok(SigningKey {
            public_jwk: pair.public_jwk,
            private_key: pair.private_jwk,
            ciphertext,
        })
    }

    fn keys_verify_report(&mut self, jws: &str, public_jwk: &str) -> CapResult<String> {
        verify_report(jws, public_jwk).map_err(|why| CapabilityError {
            code: ErrorCode::Invalid,
            message: format!("status report: {why}"),
            retry_after_ms: None,
        })
    }
}
