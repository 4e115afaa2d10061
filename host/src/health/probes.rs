//! Probes that depend on no message: each asks one dependency something
//! that succeeds whenever the deployment is right, and names the config key
//! or permission to fix when it does not.
//!
//! | dependency | probe | needs |
//! |---|---|---|
//! | dynamodb | GetItem `pk=envmgr-probe, sk=probe` in every table (the `logic` table's `sk=kms`) | `dynamodb:GetItem` |
//! | kms | Decrypt the probe ciphertext `init` stored in the `logic` table, with the configured `KeyId` | `kms:Decrypt` |
//! | github | `GET /app` with the App's JWT | the App's key |
//! | runtime | `GET {url}/v1/health` with the service token | the token |
//! | sqs | the queue's and its dead-letter queue's attributes | `sqs:GetQueueAttributes` |

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::capabilities::dynamodb::fields::text;
use crate::capabilities::dynamodb::{AttributeValue, Item, Tables};
use crate::capabilities::github::GitHub;
use crate::capabilities::kms::Kms;
use crate::capabilities::runtime::Runtime;
use crate::capabilities::{Error, ErrorCode};
use crate::queue::Queue;
use crate::redact::{Credentials, Redactor};

/// The partition key of the probe items.
pub const PROBE_PK: &str = "envmgr-probe";
/// The sort key of the item a table probe reads (it need not exist).
const TABLE_PROBE_SK: &str = "probe";
/// The sort key of the KMS probe item in the `logic` table.
pub const KMS_PROBE_SK: &str = "kms";
/// What the KMS probe ciphertext holds.
pub const KMS_PROBE_PLAINTEXT: &str = "envmgr-probe";
/// A probe that takes longer than this failed.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// The encryption context of the KMS probe. It has the three keys the
/// IAM policies require of every envmgr ciphertext (docs/iam.md), and a
/// scope no secret has (`global`, `preview`, `production`,
/// `environment:...`), so the probe cannot stand in for a secret nor a
/// secret for it.
pub fn kms_probe_context() -> Vec<(String, String)> {
    [
        ("envmgr:app", "envmgr-probe"),
        ("envmgr:scope", "probe"),
        ("envmgr:name", "PROBE"),
    ]
    .into_iter()
    .map(|(key, value)| (key.to_string(), value.to_string()))
    .collect()
}

/// The key of the KMS probe item in the `logic` table.
pub fn kms_probe_key() -> Item {
    vec![
        ("pk".to_string(), AttributeValue::S(PROBE_PK.to_string())),
        (
            "sk".to_string(),
            AttributeValue::S(KMS_PROBE_SK.to_string()),
        ),
    ]
}

/// Something wrong with the deployment, and what to do about it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// `dynamodb`, `kms`, `github`, `runtime`, `sqs`.
    pub dependency: &'static str,
    pub what: String,
    pub fix: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} ({})", self.dependency, self.what, self.fix)
    }
}

impl Problem {
    /// Several problems on one line.
    pub fn list(problems: &[Problem]) -> String {
        problems
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// One table a probe reads: the logical name the backend takes, the
/// physical one people know, and the backend.
struct TableProbe {
    logical: &'static str,
    physical: String,
    tables: Arc<dyn Tables>,
}

/// What the probes ask.
pub struct Probes {
    tables: Vec<TableProbe>,
    /// The `logic` table's backend (where the KMS probe is kept).
    logic_tables: Arc<dyn Tables>,
    kms: Arc<dyn Kms>,
    kms_key_id: String,
    github: Arc<dyn GitHub>,
    runtime: Arc<dyn Runtime>,
    credentials: Credentials,
    /// Added once connected (`serve` probes before it looks queues up).
    queues: Mutex<Vec<(String, Arc<dyn Queue>)>>,
    /// Warnings said once: no KMS probe stored, no runtime health call.
    said_no_kms_probe: AtomicBool,
}

/// What `Probes::new` needs to know.
pub struct Deployment<'a> {
    /// (logical, physical) of the logic's tables, served by `tables`.
    pub table_names: Vec<(&'static str, &'a str)>,
    pub tables: Arc<dyn Tables>,
    /// The `logic` table's physical name, served by `logic_tables`.
    pub logic_table: &'a str,
    pub logic_tables: Arc<dyn Tables>,
    pub kms: Arc<dyn Kms>,
    pub kms_key_id: &'a str,
    pub github: Arc<dyn GitHub>,
    pub runtime: Arc<dyn Runtime>,
    /// The process's credentials: no probe's answer is said with one in it.
    pub credentials: Credentials,
}

impl Probes {
    pub fn new(deployment: Deployment<'_>) -> Self {
        let mut tables: Vec<TableProbe> = deployment
            .table_names
            .iter()
            .map(|(logical, physical)| TableProbe {
                logical,
                physical: physical.to_string(),
                tables: deployment.tables.clone(),
            })
            .collect();
        tables.push(TableProbe {
            logical: "logic",
            physical: deployment.logic_table.to_string(),
            tables: deployment.logic_tables.clone(),
        });
        Self {
            tables,
            logic_tables: deployment.logic_tables,
            kms: deployment.kms,
            kms_key_id: deployment.kms_key_id.to_string(),
            github: deployment.github,
            runtime: deployment.runtime,
            credentials: deployment.credentials,
            queues: Mutex::default(),
            said_no_kms_probe: AtomicBool::new(false),
        }
    }

    /// Probe the queues too from now on.
    pub fn add_queue(&self, logical: &str, queue: Arc<dyn Queue>) {
        self.queues
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((logical.to_string(), queue));
    }

    /// Every probe at once; what failed. A probe's own errors raise no
    /// suspicion for the message that asked for the round.
    pub async fn run(&self) -> Vec<Problem> {
        let (problems, _) = super::watched(None, async {
            let tables = futures::future::join_all(self.tables.iter().map(|t| self.table(t)));
            let queues: Vec<(String, Arc<dyn Queue>)> = self
                .queues
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            let queues = futures::future::join_all(
                queues
                    .iter()
                    .map(|(logical, queue)| self.queue(logical, queue.as_ref())),
            );
            let (tables, kms, github, runtime, queues) =
                tokio::join!(tables, self.kms(), self.github(), self.runtime(), queues);
            tables
                .into_iter()
                .chain([kms, github, runtime])
                .chain(queues)
                .flatten()
                .collect::<Vec<Problem>>()
        })
        .await;
        // What a dependency said may quote the request it was sent.
        let redactor = Redactor::new(self.credentials.clone());
        problems
            .into_iter()
            .map(|problem| Problem {
                what: redactor.clean(&problem.what),
                ..problem
            })
            .collect()
    }

    async fn table(&self, probe: &TableProbe) -> Option<Problem> {
        let sk = if probe.logical == "logic" {
            KMS_PROBE_SK
        } else {
            TABLE_PROBE_SK
        };
        let key = vec![
            ("pk".to_string(), AttributeValue::S(PROBE_PK.to_string())),
            ("sk".to_string(), AttributeValue::S(sk.to_string())),
        ];
        let error = match timed(probe.tables.get(probe.logical, &key)).await {
            Ok(_) => return None,
            Err(error) => error,
        };
        let setting = format!("ENVMGR__TABLES__{}", probe.logical.to_uppercase());
        let fix = match error.code {
            ErrorCode::NotFound => {
                format!("create it with `envmgr init`, or correct `{setting}`")
            }
            ErrorCode::Denied => format!(
                "grant the host dynamodb:GetItem on table {} (docs/iam.md), or check the AWS credentials",
                probe.physical
            ),
            _ => "DynamoDB did not answer as it should; check `aws.endpoint_url` and the region"
                .to_string(),
        };
        Some(Problem {
            dependency: "dynamodb",
            what: format!(
                "table {} (tables.{}): {}",
                probe.physical, probe.logical, error.message
            ),
            fix,
        })
    }

    async fn kms(&self) -> Option<Problem> {
        let stored = match timed(self.logic_tables.get("logic", &kms_probe_key())).await {
            Ok(stored) => stored,
            // The table probe says what is wrong with the table.
            Err(_) => return None,
        };
        let ciphertext = stored.as_ref().and_then(|item| {
            let key_id = text(item, "keyId");
            let ciphertext = item.iter().find_map(|(name, value)| match value {
                AttributeValue::B(bytes) if name == "ciphertext" => Some(bytes.clone()),
                _ => None,
            });
            // A probe made under another key proves nothing about this one.
            ciphertext.filter(|_| key_id.as_deref() == Some(self.kms_key_id.as_str()))
        });
        let Some(ciphertext) = ciphertext else {
            if !self.said_no_kms_probe.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    key = %self.kms_key_id,
                    "no KMS probe for this key in the logic table: the key is not probed until `envmgr init` stores one"
                );
            }
            return None;
        };
        let error = match timed(self.kms.decrypt(&ciphertext, &kms_probe_context())).await {
            Ok(_) => return None,
            Err(error) => error,
        };
        let fix = match error.code {
            ErrorCode::NotFound => {
                "the key does not exist: correct `ENVMGR__KMS__KEY_ID`, or create it with `envmgr init`"
            }
            ErrorCode::Denied => {
                "grant the host kms:Decrypt on the key (docs/iam.md), and make sure the key is enabled"
            }
            _ => "KMS did not answer as it should; check `aws.endpoint_url` and the region",
        };
        Some(Problem {
            dependency: "kms",
            what: format!("key {}: {}", self.kms_key_id, error.message),
            fix: fix.to_string(),
        })
    }

    async fn github(&self) -> Option<Problem> {
        let error = timed(self.github.probe()).await.err()?;
        let fix = match error.code {
            ErrorCode::Denied => {
                "GitHub refuses the App's JWT: check `github.app_id` and the private key (`github.private_key_file` or ENVMGR_GITHUB_PRIVATE_KEY) against the App's settings"
            }
            _ => "GitHub did not answer as it should; check `github.api_url`",
        };
        Some(Problem {
            dependency: "github",
            what: error.message,
            fix: fix.to_string(),
        })
    }

    async fn runtime(&self) -> Option<Problem> {
        let error = timed(self.runtime.probe()).await.err()?;
        let fix = match error.code {
            ErrorCode::Denied => {
                "the Runtime Service refuses the host's token: check `runtime.token_file` or ENVMGR_RUNTIME_TOKEN"
            }
            _ => "the Runtime Service did not answer as it should; check `runtime.url`",
        };
        Some(Problem {
            dependency: "runtime",
            what: error.message,
            fix: fix.to_string(),
        })
    }

    async fn queue(&self, logical: &str, queue: &dyn Queue) -> Option<Problem> {
        let error = match tokio::time::timeout(PROBE_TIMEOUT, queue.state()).await {
            Ok(Ok(_)) => return None,
            Ok(Err(error)) => format!("{error:#}"),
            Err(_) => format!("no answer in {} s", PROBE_TIMEOUT.as_secs()),
        };
        let setting = format!("ENVMGR__QUEUES__{}__NAME", logical.to_uppercase());
        Some(Problem {
            dependency: "sqs",
            what: format!("queue {logical}: {error}"),
            fix: format!(
                "create it with `envmgr init`, correct `{setting}`, or grant the host sqs:GetQueueAttributes (docs/iam.md)"
            ),
        })
    }
}

/// A probe call bounded by [`PROBE_TIMEOUT`].
async fn timed<T>(call: impl Future<Output = Result<T, Error>>) -> Result<T, Error> {
    match tokio::time::timeout(PROBE_TIMEOUT, call).await {
        Ok(result) => result,
        Err(_) => Err(crate::capabilities::error(
            ErrorCode::Unavailable,
            format!("no answer in {} s", PROBE_TIMEOUT.as_secs()),
        )),
    }
}
