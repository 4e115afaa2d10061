//! Operator commands on whichever backend the config names: `init`
//! (queues, tables, key), apps and secrets in the documented format.

mod check;
pub mod listing;
pub mod reencrypt;

pub use check::check_data;

use std::collections::HashMap;

use anyhow::{Context as _, bail};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
};
use aws_sdk_sqs::types::QueueAttributeName;

use crate::aws::operation_failed;
use crate::capabilities::Describe as _;
use crate::capabilities::dynamodb::fields::text;
use crate::capabilities::dynamodb::{
    AttributeCheck, AttributeValue, Condition, Item, KeyCondition, PutItem, UpdateItem, Write,
    WriteError,
};
use crate::catalog;
use crate::config::{Queue as QueueSettings, Settings};
use crate::platform::Platform;

/// Create whatever is missing; running it twice changes nothing. The local
/// database makes its tables and key when opened.
pub async fn init(platform: &Platform, settings: &Settings) -> anyhow::Result<()> {
    match platform.store() {
        Some(store) => println!(
            "local database {}: ready (queues, tables and KMS key {})",
            store.path().display(),
            settings.kms.key_id
        ),
        None => init_aws(platform, settings).await?,
    }
    store_kms_probe(platform, settings).await
}

/// The probe the hosts' health check decrypts (see `health::probes`):
/// a ciphertext of a fixed text under the configured key, in the `logic`
/// table. Stored anew each time, so it follows a change of `kms.key_id`.
pub(crate) async fn store_kms_probe(
    platform: &Platform,
    settings: &Settings,
) -> anyhow::Result<()> {
    use crate::health::probes::{KMS_PROBE_PLAINTEXT, kms_probe_context, kms_probe_key};
    let key_id = &settings.kms.key_id;
    let ciphertext = platform
        .kms
        .encrypt(KMS_PROBE_PLAINTEXT, &kms_probe_context())
        .await
        .map_err(|e| anyhow::anyhow!("storing the KMS probe: {}", e.describe()))?;
    let update = UpdateItem {
        table: "logic".into(),
        key: kms_probe_key(),
        set: vec![
            ("ciphertext".into(), AttributeValue::B(ciphertext)),
            ("keyId".into(), AttributeValue::S(key_id.clone())),
            (
                "storedAt".into(),
                AttributeValue::N(crate::support::now_ms().to_string()),
            ),
        ],
        condition: Condition::None,
    };
    platform
        .logic_tables()
        .update(&update)
        .await
        .map_err(|e| anyhow::anyhow!("storing the KMS probe: {}", e.describe()))?;
    println!(
        "kms probe for key {key_id}: stored in table {}",
        settings.tables.logic
    );
    Ok(())
}

/// Turn on DynamoDB's TTL on `attribute` for `table`, unless it is. A
/// table has one TTL attribute: one on another is an operator's to change.
async fn expire_on(
    dynamodb: &aws_sdk_dynamodb::Client,
    table: &str,
    attribute: &str,
) -> anyhow::Result<()> {
    let ttl = dynamodb
        .describe_time_to_live()
        .table_name(table)
        .send()
        .await
        .map_err(|e| operation_failed("DescribeTimeToLive", &e))?;
    let description = ttl.time_to_live_description();
    let status = description.and_then(|d| d.time_to_live_status());
    let enabled = matches!(
        status,
        Some(
            aws_sdk_dynamodb::types::TimeToLiveStatus::Enabled
                | aws_sdk_dynamodb::types::TimeToLiveStatus::Enabling
        )
    );
    match description.and_then(|d| d.attribute_name()) {
        Some(on) if on == attribute && enabled => {
            println!("table {table}: TTL on {attribute}");
            return Ok(());
        }
        Some(other) if enabled => anyhow::bail!(
            "table {table} has TTL on `{other}`; envmgr's items expire by `{attribute}` \
             (docs/data-model.md, \"Time to live\"): turn TTL off there, then run init again"
        ),
        _ => {}
    }
    dynamodb
        .update_time_to_live()
        .table_name(table)
        .time_to_live_specification(
            aws_sdk_dynamodb::types::TimeToLiveSpecification::builder()
                .enabled(true)
                .attribute_name(attribute)
                .build()
                .context("a TTL specification")?,
        )
        .send()
        .await
        .map_err(|e| operation_failed("UpdateTimeToLive", &e))?;
    println!("table {table}: TTL turned on for {attribute}");
    Ok(())
}

async fn init_aws(platform: &Platform, settings: &Settings) -> anyhow::Result<()> {
    let sdk = platform
        .sdk()
        .context("the aws backend has an SDK config")?;
    let dynamodb = aws_sdk_dynamodb::Client::new(sdk);
    let tables = settings.tables.mapping().into_iter();
    let own = settings.tables.logic_mapping().into_iter();
    for (logical, physical) in tables
        .chain(own)
        .chain(settings.tables.recordings_mapping())
    {
        create_table(&dynamodb, logical, physical).await?;
    }

    // Recordings and heartbeats expire (TTL deletion is lazy: readers
    // skip what expired). One TTL attribute per table: `expiresAt`, in
    // seconds, in both (docs/data-model.md, "Time to live").
    for table in [&settings.tables.recordings, &settings.tables.logic] {
        expire_on(&dynamodb, table, "expiresAt").await?;
    }
    // A deleted environment's tombstone expires by `purgeAt` (seconds):
    // there `expiresAt` is the lease's, in milliseconds.
    expire_on(&dynamodb, &settings.tables.environments, "purgeAt").await?;

    let sqs = aws_sdk_sqs::Client::new(sdk);
    for (logical, queue) in &settings.queues {
        create_queue_and_dead_letters(&sqs, logical, queue).await?;
    }

    let kms = aws_sdk_kms::Client::new(sdk);
    create_kms_key(&kms, &settings.kms.key_id).await
}

/// A table keyed by `pk` and `sk`, unless it exists.
async fn create_table(
    dynamodb: &aws_sdk_dynamodb::Client,
    logical: &str,
    physical: &str,
) -> anyhow::Result<()> {
    let exists = dynamodb.describe_table().table_name(physical).send().await;
    match exists {
        Ok(_) => println!("table {physical} ({logical}): exists"),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_resource_not_found_exception()) =>
        {
            let created = dynamodb
                .create_table()
                .table_name(physical)
                .billing_mode(BillingMode::PayPerRequest)
                .attribute_definitions(key_attribute("pk")?)
                .attribute_definitions(key_attribute("sk")?)
                .key_schema(key_element("pk", KeyType::Hash)?)
                .key_schema(key_element("sk", KeyType::Range)?)
                .send()
                .await;
            match created {
                Ok(_) => println!("table {physical} ({logical}): created"),
                // Another `init` created it meanwhile.
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_resource_in_use_exception()) =>
                {
                    println!("table {physical} ({logical}): exists")
                }
                Err(e) => return Err(operation_failed("CreateTable", &e)),
            }
        }
        Err(e) => return Err(operation_failed("DescribeTable", &e)),
    }
    Ok(())
}

/// The queue's dead-letter queue, then the queue redriving to it.
async fn create_queue_and_dead_letters(
    sqs: &aws_sdk_sqs::Client,
    logical: &str,
    queue: &QueueSettings,
) -> anyhow::Result<()> {
    let dead_letters = HashMap::from([
        (
            QueueAttributeName::MaximumMessageSize,
            queue.max_message_bytes.to_string(),
        ),
        (
            QueueAttributeName::MessageRetentionPeriod,
            crate::queue::DEAD_LETTER_RETENTION.as_secs().to_string(),
        ),
    ]);
    let dead_letter = create_queue(sqs, &queue.dead_letter_name(), dead_letters).await?;
    let arn = sqs
        .get_queue_attributes()
        .queue_url(&dead_letter)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .map_err(|e| operation_failed("GetQueueAttributes", &e))?
        .attributes
        .and_then(|a| a.get(&QueueAttributeName::QueueArn).cloned())
        .context("the dead-letter queue has no ARN")?;
    let redrive = serde_json::json!({
        "deadLetterTargetArn": arn,
        "maxReceiveCount": queue.max_receive_count.to_string(),
    });
    let attributes = HashMap::from([
        (
            QueueAttributeName::VisibilityTimeout,
            queue.visibility_timeout_seconds.to_string(),
        ),
        (QueueAttributeName::RedrivePolicy, redrive.to_string()),
        (
            QueueAttributeName::MaximumMessageSize,
            queue.max_message_bytes.to_string(),
        ),
    ]);
    create_queue(sqs, &queue.name, attributes).await?;
    println!(
        "queue {} ({logical}): ready, dead letters to {} (kept {} days) after {} receives, messages up to {} bytes",
        queue.name,
        queue.dead_letter_name(),
        crate::queue::DEAD_LETTER_RETENTION.as_secs() / 86_400,
        queue.max_receive_count,
        queue.max_message_bytes
    );
    Ok(())
}

/// The KMS key, unless it exists; only an alias can be created, since
/// KMS picks a new key's id.
async fn create_kms_key(kms: &aws_sdk_kms::Client, key_id: &str) -> anyhow::Result<()> {
    match kms.describe_key().key_id(key_id).send().await {
        Ok(_) => println!("kms key {key_id}: exists"),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_not_found_exception()) =>
        {
            let Some(alias) = key_id.strip_prefix("alias/").map(|_| key_id.to_string()) else {
                bail!(
                    "kms key {key_id} does not exist; name an alias (alias/...) for init to create it"
                );
            };
            let created = kms
                .create_key()
                .description("envmgr secrets")
                .send()
                .await
                .map_err(|e| operation_failed("CreateKey", &e))?;
            let id = created
                .key_metadata
                .map(|m| m.key_id)
                .context("CreateKey returned no key")?;
            kms.create_alias()
                .alias_name(&alias)
                .target_key_id(&id)
                .send()
                .await
                .map_err(|e| operation_failed("CreateAlias", &e))?;
            println!("kms key {alias}: created ({id})");
        }
        Err(e) => return Err(operation_failed("DescribeKey", &e)),
    }
    Ok(())
}

fn key_attribute(name: &str) -> anyhow::Result<AttributeDefinition> {
    Ok(AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(ScalarAttributeType::S)
        .build()?)
}

fn key_element(name: &str, kind: KeyType) -> anyhow::Result<KeySchemaElement> {
    Ok(KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(kind)
        .build()?)
}

/// Create a queue, or bring an existing one's attributes up to date.
async fn create_queue(
    sqs: &aws_sdk_sqs::Client,
    name: &str,
    attributes: HashMap<QueueAttributeName, String>,
) -> anyhow::Result<String> {
    let url = match sqs.create_queue().queue_name(name).send().await {
        Ok(created) => created.queue_url.context("CreateQueue returned no URL")?,
        Err(e) => return Err(operation_failed("CreateQueue", &e)),
    };
    if !attributes.is_empty() {
        sqs.set_queue_attributes()
            .queue_url(&url)
            .set_attributes(Some(attributes))
            .send()
            .await
            .map_err(|e| operation_failed("SetQueueAttributes", &e))?;
    }
    Ok(url)
}

/// The app record and its repository index, in one transaction. A
/// repository another app owns is refused, unless `replace`: then it moves
/// in the same transaction and the other app's record loses its
/// `repository`. An app that moves to another repository drops its old
/// index item. Returns what it did, for the operator.
pub async fn add_app(
    platform: &Platform,
    app_id: &str,
    name: &str,
    repository: &str,
    entrypoint: Option<&str>,
    trust: &catalog::Trust,
    replace: bool,
) -> anyhow::Result<String> {
    let [record, index] = catalog::app_items(app_id, name, repository, entrypoint, trust)?;
    let tables = &platform.tables;
    let read = |key: Item| async move {
        tables
            .get("apps", &key)
            .await
            .map_err(|e| anyhow::anyhow!("reading the apps table: {}", e.describe()))
    };
    let owner = read(catalog::repository_key(repository))
        .await?
        .and_then(|item| text(&item, "appId"));
    let mut writes = vec![catalog::put("apps", record)];
    let mut said = format!("app {app_id} on {repository}");
    let index_condition = match &owner {
        None => Condition::ItemAbsent,
        Some(owner) => Condition::Equals(AttributeCheck {
            name: "appId".into(),
            value: AttributeValue::S(owner.clone()),
        }),
    };
    if let Some(owner) = owner.as_ref().filter(|owner| *owner != app_id) {
        if !replace {
            bail!(
                "repository {repository} belongs to app {owner}; pass --replace to move it to {app_id} (app {owner} then has no repository)"
            );
        }
        if let Some(old) = read(catalog::app_key(owner)).await? {
            let old_repository = text(&old, "repository").unwrap_or_default();
            let kept: Item = old.into_iter().filter(|(n, _)| n != "repository").collect();
            writes.push(Write::Put(PutItem {
                table: "apps".into(),
                item: kept,
                condition: Condition::Equals(AttributeCheck {
                    name: "repository".into(),
                    value: AttributeValue::S(old_repository),
                }),
            }));
        }
        said.push_str(&format!(
            "; moved from app {owner}, which now has no repository"
        ));
    }
    writes.push(Write::Put(PutItem {
        table: "apps".into(),
        item: index,
        condition: index_condition,
    }));
    // The app's previous repository, if it had another, no longer leads to it.
    if let Some(previous) = read(catalog::app_key(app_id))
        .await?
        .and_then(|item| text(&item, "repository"))
        .filter(|previous| !previous.eq_ignore_ascii_case(repository))
    {
        writes.push(Write::Delete(KeyCondition {
            table: "apps".into(),
            key: catalog::repository_key(&previous),
            condition: Condition::Equals(AttributeCheck {
                name: "appId".into(),
                value: AttributeValue::S(app_id.to_string()),
            }),
        }));
        said.push_str(&format!("; {previous} no longer leads to it"));
    }
    match tables.transact_write(&writes).await {
        Ok(()) => Ok(said),
        Err(WriteError::ConditionFailed(_)) => {
            bail!("the apps table changed while add-app ran; run it again")
        }
        Err(e) => Err(anyhow::anyhow!("writing the app: {}", e.describe())),
    }
}

/// Encrypt `value` with the KMS key under its context and store it.
pub async fn set_secret(
    platform: &Platform,
    app_id: &str,
    scope: &str,
    name: &str,
    value: &str,
) -> anyhow::Result<()> {
    catalog::rules::app_id(app_id)?;
    catalog::rules::secret_name(name)?;
    catalog::check_scope(scope)?;
    let app = platform
        .tables
        .get("apps", &catalog::app_key(app_id))
        .await
        .map_err(|e| anyhow::anyhow!("reading the apps table: {}", e.describe()))?;
    if app.is_none() {
        bail!("there is no app `{app_id}`; add it first with `envmgr add-app`");
    }
    if value.len() > 4096 {
        bail!("a secret value holds at most 4096 bytes (KMS Encrypt's limit)");
    }
    if value.is_empty() {
        bail!("the value of secret {name} is empty: a runtime never needs an empty secret");
    }
    let ciphertext = platform
        .kms
        .encrypt(value, &catalog::secret_context(app_id, scope, name))
        .await
        .map_err(|e| anyhow::anyhow!("encrypting the secret: {}", e.message))?;
    let item = catalog::secret_item(app_id, scope, name, ciphertext);
    platform
        .tables
        .transact_write(&[catalog::put("secrets", item)])
        .await
        .map_err(|e| anyhow::anyhow!("writing the secret: {}", e.describe()))
}
