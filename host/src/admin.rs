//! Operations against the AWS backends: `init` (queues, tables, key), seeding
//! apps and secrets in the documented format, and sending messages.

use std::collections::HashMap;

use anyhow::{Context as _, bail};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, KeySchemaElement, KeyType, Put,
    ScalarAttributeType, TransactWriteItem,
};
use aws_sdk_sqs::types::QueueAttributeName;

use crate::aws::{operation_failed, sdk_config};
use crate::capabilities::kms::aws::AwsKms;
use crate::config::Settings;
use crate::daemon::QueueUrls;
use crate::mock::seed::secret_context;

/// Create whatever is missing; running it twice changes nothing.
pub async fn init(settings: &Settings) -> anyhow::Result<()> {
    let sdk = sdk_config(&settings.aws).await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    for (logical, physical) in settings.tables.mapping() {
        let exists = dynamodb.describe_table().table_name(physical).send().await;
        match exists {
            Ok(_) => println!("table {physical} ({logical}): exists"),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                dynamodb
                    .create_table()
                    .table_name(physical)
                    .billing_mode(BillingMode::PayPerRequest)
                    .attribute_definitions(key_attribute("pk")?)
                    .attribute_definitions(key_attribute("sk")?)
                    .key_schema(key_element("pk", KeyType::Hash)?)
                    .key_schema(key_element("sk", KeyType::Range)?)
                    .send()
                    .await
                    .map_err(|e| operation_failed("CreateTable", &e))?;
                println!("table {physical} ({logical}): created");
            }
            Err(e) => return Err(operation_failed("DescribeTable", &e)),
        }
    }

    let sqs = aws_sdk_sqs::Client::new(&sdk);
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

    let kms = aws_sdk_kms::Client::new(&sdk);
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

fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_string())
}

/// The app record and its repository index, in one transaction.
pub async fn add_app(
    settings: &Settings,
    app_id: &str,
    name: &str,
    repository: &str,
    entrypoint: Option<&str>,
) -> anyhow::Result<()> {
    if repository.split('/').count() != 2 {
        bail!("repository `{repository}` is not of the form owner/name");
    }
    let sdk = sdk_config(&settings.aws).await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&sdk);
    let mut record = HashMap::from([
        ("pk".to_string(), s(&format!("APP#{app_id}"))),
        ("sk".to_string(), s("#")),
        ("name".to_string(), s(name)),
        ("repository".to_string(), s(repository)),
    ]);
    if let Some(entrypoint) = entrypoint {
        record.insert("entrypoint".into(), s(entrypoint));
    }
    let index = HashMap::from([
        (
            "pk".to_string(),
            s(&format!("REPO#{}", repository.to_ascii_lowercase())),
        ),
        ("sk".to_string(), s("#")),
        ("appId".to_string(), s(app_id)),
    ]);
    let puts = [record, index]
        .into_iter()
        .map(|item| {
            Ok(TransactWriteItem::builder()
                .put(
                    Put::builder()
                        .table_name(&settings.tables.apps)
                        .set_item(Some(item))
                        .build()?,
                )
                .build())
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    dynamodb
        .transact_write_items()
        .set_transact_items(Some(puts))
        .send()
        .await
        .map_err(|e| operation_failed("TransactWriteItems", &e))?;
    Ok(())
}

/// Encrypt `value` with KMS under its context and store it.
pub async fn set_secret(
    settings: &Settings,
    app_id: &str,
    scope: &str,
    name: &str,
    value: &str,
) -> anyhow::Result<()> {
    let valid_scope = matches!(scope, "global" | "preview" | "production")
        || scope
            .strip_prefix("environment:")
            .is_some_and(|id| !id.is_empty());
    if !valid_scope {
        bail!("scope `{scope}` is not global, preview, production or environment:<id>");
    }
    if value.len() > 4096 {
        bail!("a secret value holds at most 4096 bytes (KMS Encrypt's limit)");
    }
    let sdk = sdk_config(&settings.aws).await;
    let ciphertext = AwsKms::new(&sdk)
        .encrypt(
            &settings.kms.key_id,
            value,
            &secret_context(app_id, scope, name),
        )
        .await
        .map_err(|e| anyhow::anyhow!(e.message))?;
    aws_sdk_dynamodb::Client::new(&sdk)
        .put_item()
        .table_name(&settings.tables.secrets)
        .item("pk", s(&format!("APP#{app_id}")))
        .item("sk", s(&format!("SECRET#{scope}#{name}")))
        .item("name", s(name))
        .item("scope", s(scope))
        .item("ciphertext", AttributeValue::B(ciphertext.into()))
        .send()
        .await
        .map_err(|e| operation_failed("PutItem", &e))?;
    Ok(())
}

/// Put one message on a configured queue; prints its id.
pub async fn send(settings: &Settings, logical_queue: &str, body: &str) -> anyhow::Result<String> {
    let queue = settings.queues.get(logical_queue).with_context(|| {
        format!(
            "no queue `{logical_queue}` in the config (have: {})",
            settings
                .queues
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        )
    })?;
    let sdk = sdk_config(&settings.aws).await;
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let urls = QueueUrls::resolve(&sqs, queue).await?;
    let sent = sqs
        .send_message()
        .queue_url(&urls.queue)
        .message_body(body)
        .send()
        .await
        .map_err(|e| operation_failed("SendMessage", &e))?;
    Ok(sent.message_id.unwrap_or_default())
}
