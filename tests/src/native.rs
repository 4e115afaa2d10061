//! The guest's flow compiled natively, running against the host's backends
//! directly: the baseline the sandbox's cost is measured against, and a check
//! that the component behaves as its source does.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use envmgr::boundary::Backends;
use envmgr::capabilities::analytics::TrackEvent as HostEvent;
use envmgr::capabilities::dynamodb::{
    AttributeCheck, AttributeValue, Condition as HostCondition, KeyCondition, PutItem,
    QueryRequest, UpdateItem, Write as HostWrite, WriteError as HostWriteError,
};
use envmgr::capabilities::github::{
    Comment as HostComment, Deployment as HostDeployment, DeploymentState as HostState,
    DeploymentStatus as HostStatus, NewDeployment as HostNewDeployment,
    NewDeploymentStatus as HostNewStatus, Repository as HostRepository,
};
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

fn error(e: HostError) -> CapabilityError {
    CapabilityError {
        code: match e.code {
            HostCode::NotFound => ErrorCode::NotFound,
            HostCode::Denied => ErrorCode::Denied,
            HostCode::Invalid => ErrorCode::Invalid,
            HostCode::Conflict => ErrorCode::Conflict,
            HostCode::Throttled => ErrorCode::Throttled,
            HostCode::Unavailable => ErrorCode::Unavailable,
        },
        message: e.message,
        retry_after_ms: e.retry_after_ms,
    }
}

fn write_error(e: HostWriteError) -> WriteError {
    match e {
        HostWriteError::ConditionFailed(i) => WriteError::ConditionFailed(i),
        HostWriteError::Failed(e) => WriteError::Failed(error(e)),
    }
}

fn repo(r: &Repository) -> HostRepository {
    HostRepository {
        owner: r.owner.clone(),
        name: r.name.clone(),
    }
}

fn comment(c: HostComment) -> Comment {
    Comment {
        id: c.id,
        body: c.body,
        html_url: c.html_url,
    }
}

fn deployment(d: HostDeployment) -> Deployment {
    Deployment {
        id: d.id,
        sha: d.sha,
        environment: d.environment,
        task: d.task,
        payload_json: d.payload_json,
    }
}

fn deployment_status(s: HostStatus) -> DeploymentStatus {
    DeploymentStatus {
        id: s.id,
        state: match s.state {
            HostState::Error => DeploymentState::Error,
            HostState::Failure => DeploymentState::Failure,
            HostState::Inactive => DeploymentState::Inactive,
            HostState::InProgress => DeploymentState::InProgress,
            HostState::Queued => DeploymentState::Queued,
            HostState::Pending => DeploymentState::Pending,
            HostState::Success => DeploymentState::Success,
        },
        description: s.description,
        environment_url: s.environment_url,
        log_url: s.log_url,
    }
}

fn host_state(state: DeploymentState) -> HostState {
    match state {
        DeploymentState::Error => HostState::Error,
        DeploymentState::Failure => HostState::Failure,
        DeploymentState::Inactive => HostState::Inactive,
        DeploymentState::InProgress => HostState::InProgress,
        DeploymentState::Queued => HostState::Queued,
        DeploymentState::Pending => HostState::Pending,
        DeploymentState::Success => HostState::Success,
    }
}

fn to_value(v: &Value) -> AttributeValue {
    match v {
        Value::S(s) => AttributeValue::S(s.clone()),
        Value::N(n) => AttributeValue::N(n.clone()),
        Value::B(b) => AttributeValue::B(b.clone()),
        Value::Bool(b) => AttributeValue::Bool(*b),
        Value::Null => AttributeValue::Null,
        Value::Ss(v) => AttributeValue::Ss(v.clone()),
        Value::Ns(v) => AttributeValue::Ns(v.clone()),
        Value::Bs(v) => AttributeValue::Bs(v.clone()),
        Value::Json(j) => AttributeValue::Json(j.clone()),
    }
}

fn from_value(v: AttributeValue) -> Value {
    match v {
        AttributeValue::S(s) => Value::S(s),
        AttributeValue::N(n) => Value::N(n),
        AttributeValue::B(b) => Value::B(b),
        AttributeValue::Bool(b) => Value::Bool(b),
        AttributeValue::Null => Value::Null,
        AttributeValue::Ss(v) => Value::Ss(v),
        AttributeValue::Ns(v) => Value::Ns(v),
        AttributeValue::Bs(v) => Value::Bs(v),
        AttributeValue::Json(j) => Value::Json(j),
    }
}

fn to_item(item: &Item) -> Vec<(String, AttributeValue)> {
    item.iter().map(|(n, v)| (n.clone(), to_value(v))).collect()
}

fn from_item(item: Vec<(String, AttributeValue)>) -> Item {
    item.into_iter().map(|(n, v)| (n, from_value(v))).collect()
}

fn condition(c: &Condition) -> HostCondition {
    let check = |c: &envmgr_guest::capabilities::AttributeCheck| AttributeCheck {
        name: c.name.clone(),
        value: to_value(&c.value),
    };
    match c {
        Condition::None => HostCondition::None,
        Condition::ItemAbsent => HostCondition::ItemAbsent,
        Condition::ItemPresent => HostCondition::ItemPresent,
        Condition::Equals(c) => HostCondition::Equals(check(c)),
        Condition::AbsentOrAtMost(c) => HostCondition::AbsentOrAtMost(check(c)),
    }
}

fn update(u: &Update) -> UpdateItem {
    UpdateItem {
        table: u.table.clone(),
        key: to_item(&u.key),
        set: to_item(&u.set),
        condition: condition(&u.condition),
    }
}

fn write(w: &Write) -> HostWrite {
    let keyed = |k: &envmgr_guest::capabilities::KeyCondition| KeyCondition {
        table: k.table.clone(),
        key: to_item(&k.key),
        condition: condition(&k.condition),
    };
    match w {
        Write::Put(p) => HostWrite::Put(PutItem {
            table: p.table.clone(),
            item: to_item(&p.item),
            condition: condition(&p.condition),
        }),
        Write::Update(u) => HostWrite::Update(update(u)),
        Write::Delete(k) => HostWrite::Delete(keyed(k)),
        Write::Check(k) => HostWrite::Check(keyed(k)),
    }
}

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
        ready(self.backends.github.authenticate(installation_id)).map_err(error)
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
                .list_comments(installation_id, &repo(r), issue_number, marker),
        )
        .map(|all| all.into_iter().map(comment).collect())
        .map_err(error)
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
                .create_comment(installation_id, &repo(r), issue_number, body),
        )
        .map(comment)
        .map_err(error)
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
                .update_comment(installation_id, &repo(r), comment_id, body),
        )
        .map(comment)
        .map_err(error)
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
                .delete_comment(installation_id, &repo(r), comment_id),
        )
        .map_err(error)
    }

    fn github_create_installation_token(
        &mut self,
        installation_id: u64,
        r: &Repository,
    ) -> CapResult<Secret> {
        ready(
            self.backends
                .github
                .create_installation_token(installation_id, &repo(r)),
        )
        .map_err(error)
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
            &repo(r),
            sha,
            environment,
            task,
        ))
        .map(|all| all.into_iter().map(deployment).collect())
        .map_err(error)
    }

    fn github_create_deployment(
        &mut self,
        installation_id: u64,
        r: &Repository,
        new: &NewDeployment,
    ) -> CapResult<Deployment> {
        let new = HostNewDeployment {
            sha: new.sha.clone(),
            environment: new.environment.clone(),
            task: new.task.clone(),
            payload_json: new.payload_json.clone(),
            description: new.description.clone(),
            transient_environment: new.transient_environment,
            production_environment: new.production_environment,
        };
        ready(
            self.backends
                .github
                .create_deployment(installation_id, &repo(r), &new),
        )
        .map(deployment)
        .map_err(error)
    }

    fn github_list_deployment_statuses(
        &mut self,
        installation_id: u64,
        r: &Repository,
        deployment_id: u64,
    ) -> CapResult<Vec<DeploymentStatus>> {
        ready(self.backends.github.list_deployment_statuses(
            installation_id,
            &repo(r),
            deployment_id,
        ))
        .map(|all| all.into_iter().map(deployment_status).collect())
        .map_err(error)
    }

    fn github_create_deployment_status(
        &mut self,
        installation_id: u64,
        r: &Repository,
        deployment_id: u64,
        status: &NewDeploymentStatus,
    ) -> CapResult<DeploymentStatus> {
        let status = HostNewStatus {
            state: host_state(status.state),
            description: status.description.clone(),
            environment_url: status.environment_url.clone(),
            log_url: status.log_url.clone(),
        };
        ready(self.backends.github.create_deployment_status(
            installation_id,
            &repo(r),
            deployment_id,
            &status,
        ))
        .map(deployment_status)
        .map_err(error)
    }

    fn github_list_open_pull_requests(
        &mut self,
        installation_id: u64,
        r: &Repository,
        head: &str,
    ) -> CapResult<Vec<PullRequest>> {
        let open = ready(self.backends.github.list_open_pull_requests(
            installation_id,
            &repo(r),
            head,
        ));
        open.map(|found| {
            (found.into_iter())
                .map(|p| PullRequest {
                    number: p.number,
                    head_sha: p.head_sha,
                })
                .collect()
        })
        .map_err(error)
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
                .delete_environment(installation_id, &repo(r), name),
        )
        .map_err(error)
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
                .delete_deployment(installation_id, &repo(r), deployment_id),
        )
        .map_err(error)
    }

    fn db_get(&mut self, table: &str, key: &Item) -> CapResult<Option<Item>> {
        ready(self.backends.dynamodb.get(table, &to_item(key)))
            .map(|found| found.map(from_item))
            .map_err(error)
    }

    fn db_query(&mut self, q: &Query) -> CapResult<Page> {
        let request = QueryRequest {
            table: q.table.clone(),
            partition: q.partition.clone(),
            sort_prefix: q.sort_prefix.clone(),
            limit: q.limit,
            start_after: q.start_after.as_ref().map(to_item),
        };
        ready(self.backends.dynamodb.query(&request))
            .map(|page| Page {
                items: page.items.into_iter().map(from_item).collect(),
                next: page.next.map(from_item),
            })
            .map_err(error)
    }

    fn db_transact_write(&mut self, writes: &[Write]) -> Result<(), WriteError> {
        let writes: Vec<HostWrite> = writes.iter().map(write).collect();
        ready(self.backends.dynamodb.transact_write(&writes)).map_err(write_error)
    }

    fn db_update(&mut self, u: &Update) -> Result<(), WriteError> {
        ready(self.backends.dynamodb.update(&update(u))).map_err(write_error)
    }

    fn kms_decrypt(
        &mut self,
        ciphertext: &[u8],
        context: &[(String, String)],
        _label: &str,
    ) -> CapResult<Secret> {
        ready(self.backends.kms.decrypt(ciphertext, context)).map_err(error)
    }

    fn analytics_track(&mut self, e: &TrackEvent) -> CapResult<()> {
        ready(self.backends.analytics.track(&HostEvent {
            event: e.event.clone(),
            user_id: e.user_id.clone(),
            properties_json: e.properties_json.clone(),
            message_id: e.message_id.clone(),
        }))
        .map_err(error)
    }

    fn runtime_delete(&mut self, request: &RuntimeDelete) -> CapResult<Vec<String>> {
        let plain = HostRuntimeDelete {
            idempotency_key: request.idempotency_key.clone(),
            app_id: request.app_id.clone(),
            environment_id: request.environment_id.clone(),
            environment_type: request.environment_type.clone(),
            request_version: request.request_version.clone(),
            reason: request.reason.clone(),
        };
        ready(self.backends.runtime.delete(&plain)).map_err(error)
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
            .map(|created| RuntimeCreated {
                runtime_id: created.runtime_id,
                url: created.url,
            })
            .map_err(error)
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
        .map_err(error)?;
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
