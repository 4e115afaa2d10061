//! The record's writes when an environment ends (`flow/teardown.rs`): to
//! `deleting` at the delete's version, then `deleted`, a tombstone whose
//! items expire at `purgeAt` (seconds, the table's time to live; not the
//! lease's millisecond `expiresAt`).

use super::{Environment, STATUS_DELETED, STATUS_DELETING, TABLE, primary_key};
use crate::apps::App;
use crate::capabilities::{Condition, KeyCondition, PutItem, Update, Value, Write};
use crate::item::{key, n, s};
use crate::request::{DeleteRequest, Reason};

impl Environment {
    /// The three items to `deleting` at `version`, only if they still hold
    /// request `from` (the version the delete decided on).
    pub fn deleting(&self, from: &str, version: &str, reason: Reason, at_ms: u64) -> Vec<Write> {
        self.updates_at(
            from,
            vec![
                s("status", STATUS_DELETING),
                s("requestVersion", version),
                s("deleteReason", reason.as_str()),
                n("deleteRequestedAt", at_ms),
                n("updatedAt", at_ms),
            ],
        )
    }

    /// The three items a tombstone (`deleted`, expiring at `purge_at_s`),
    /// the signing key dropped (NULL: the contract's update only sets), and
    /// the runtime's last report gone with the environment.
    pub fn deleted(&self, at_ms: u64, purge_at_s: u64) -> Vec<Write> {
        let mut writes = self.updates_at(
            &self.request_version,
            vec![
                s("status", STATUS_DELETED),
                n("deletedAt", at_ms),
                n("purgeAt", purge_at_s),
                ("signingKeyCiphertext".to_string(), Value::Null),
                n("updatedAt", at_ms),
            ],
        );
        writes.push(Write::Delete(KeyCondition {
            table: TABLE.to_string(),
            key: key(
                format!("ENVIRONMENT#{}", self.id),
                crate::report::SORT_KEY.to_string(),
            ),
            condition: Condition::None,
        }));
        writes
    }

    /// The three items naming pull request `other` instead, at the same
    /// request.
    pub fn moved_to(&self, other: u64) -> Vec<Write> {
        self.updates_at(&self.request_version, vec![n("pullRequest", other)])
    }

    /// The canonical item of an environment that was never made (or was
    /// purged), deleted at `version`: a later create older than the delete
    /// finds it newer and is skipped.
    pub fn tombstone(
        app: &App,
        request: &DeleteRequest,
        id: &str,
        version: &str,
        at_ms: u64,
        purge_at_s: u64,
    ) -> Write {
        let mut item = primary_key(id);
        let repository = request
            .repository
            .as_ref()
            .map_or_else(|| app.repository.clone(), |r| r.to_string());
        item.extend([
            s("entity", "environment"),
            s("environmentId", id),
            s("appId", &app.id),
            s("environmentType", request.environment_type.as_str()),
            s("repository", &repository),
            s("branch", &request.branch),
            s("sha", ""),
            s("status", STATUS_DELETED),
            s("requestVersion", version),
            s("deleteReason", request.reason.as_str()),
            n("deletedAt", at_ms),
            n("purgeAt", purge_at_s),
            n("updatedAt", at_ms),
        ]);
        Write::Put(PutItem {
            table: TABLE.to_string(),
            item,
            condition: Condition::ItemAbsent,
        })
    }

    /// `set` on the three items, only while they hold request `version`.
    pub(super) fn updates_at(&self, version: &str, set: Vec<(String, Value)>) -> Vec<Write> {
        self.keys()
            .into_iter()
            .map(|key| {
                Write::Update(Update {
                    table: TABLE.to_string(),
                    key,
                    set: set.clone(),
                    condition: crate::capabilities::equals(
                        "requestVersion".to_string(),
                        Value::S(version.to_string()),
                    ),
                })
            })
            .collect()
    }
}
