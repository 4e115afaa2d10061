//! Operator commands on whichever backend the config names: `init`
//! (queues, tables, key), apps and secrets in the documented format.

use std::collections::HashMap;

use anyhow::{Context as _, bail};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
};
use aws_sdk_sqs::types::QueueAttributeName;

use crate::aws::operation_failed;
use crate::capabilities::Describe as _;
use crate::catalog;
use crate::config::Settings;
use crate::platform::Platform;

/// Create whatever is missing; running it twice changes nothing. The local
/// database makes its tables and key when opened.
pub async fn init(platform: &Platform, settings: &Settings) -> anyhow::Result<()> {
    if let Some(store) = platform.store() {
        println!(
            "local database {}: ready (queues, tables and KMS key {})",
            store.path().display(),
            settings.kms.key_id
        );
        return Ok(());
    }
    let sdk = platform
        .sdk()
        .context("the aws backend has an SDK config")?;
    let dynamodb = aws_sdk_dynamodb::Client::new(sdk);
    let tables = settings.tables.mapping().into_iter();
    for (logical, physical) in tables.chain(settings.tables.logic_mapping()) {
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
    }

    let sqs = aws_sdk_sqs::Client::new(sdk);
    for (logical, queue) in &settings.queues {
        let dead_letter = create_queue(&sqs, &queue.dead_letter_name(), HashMap::new()).await?;
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
        ]);
        create_queue(&sqs, &queue.name, attributes).await?;
        println!(
            "queue {} ({logical}): ready, dead letters to {} after {} receives",
            queue.name,
            queue.dead_letter_name(),
            queue.max_receive_count
        );
    }

    let kms = aws_sdk_kms::Client::new(sdk);
    let key_id = &settings.kms.key_id;
    match kms.describe_key().key_id(key_id).send().await {
        Ok(_) => println!("kms key {key_id}: exists"),
        Err(e)
            if e.as_service_error()
                .is_some_and(|s| s.is_not_found_exception()) =>
        {
            let Some(alias) = key_id.strip_prefix("alias/").map(|_| key_id.clone()) else {
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

/// The app record and its repository index, in one transaction.
pub async fn add_app(
    platform: &Platform,
    app_id: &str,
    name: &str,
    repository: &str,
    entrypoint: Option<&str>,
    trust: &catalog::Trust,
) -> anyhow::Result<()> {
    let writes = catalog::app_items(app_id, name, repository, entrypoint, trust)?
        .map(|item| catalog::put("apps", item));
    platform
        .tables
        .transact_write(&writes)
        .await
        .map_err(|e| anyhow::anyhow!("writing the app: {}", e.describe()))
}

/// Encrypt `value` with the KMS key under its context and store it.
pub async fn set_secret(
    platform: &Platform,
    app_id: &str,
    scope: &str,
    name: &str,
    value: &str,
) -> anyhow::Result<()> {
    catalog::check_scope(scope)?;
    if value.len() > 4096 {
        bail!("a secret value holds at most 4096 bytes (KMS Encrypt's limit)");
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
