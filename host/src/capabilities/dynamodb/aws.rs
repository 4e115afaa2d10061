//! DynamoDB through aws-sdk-dynamodb. Typed conditions become condition
//! expressions; logical table names become physical ones.

use std::collections::HashMap;
use tracing::Instrument as _;

use async_trait::async_trait;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{
    self as ddb, ConditionCheck, Delete, Put, TransactWriteItem, Update,
};

use super::{
    AttributeValue, Condition, Item, Page, QueryRequest, Tables, UpdateItem, Write, WriteError,
    write_table,
};
use crate::aws::capability_error;
use crate::capabilities::{CapResult, ErrorCode, error};

type AwsItem = HashMap<String, ddb::AttributeValue>;

pub struct AwsTables {
    client: aws_sdk_dynamodb::Client,
    /// Logical name → physical table.
    tables: HashMap<String, String>,
}

impl AwsTables {
    pub fn new<'a>(
        config: &aws_config::SdkConfig,
        mapping: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Self {
        Self {
            client: aws_sdk_dynamodb::Client::new(config),
            tables: mapping
                .into_iter()
                .map(|(l, p)| (l.to_string(), p.to_string()))
                .collect(),
        }
    }

    pub fn client(&self) -> &aws_sdk_dynamodb::Client {
        &self.client
    }

    fn physical(&self, logical: &str) -> CapResult<&str> {
        self.tables
            .get(logical)
            .map(String::as_str)
            .ok_or_else(|| error(ErrorCode::Invalid, format!("unknown table `{logical}`")))
    }
}

/// Placeholder names and values of one expression.
#[derive(Default)]
struct Expression {
    names: HashMap<String, String>,
    values: AwsItem,
}

impl Expression {
    fn name(&mut self, prefix: &str, attribute: &str) -> String {
        let placeholder = format!("#{prefix}{}", self.names.len());
        self.names
            .insert(placeholder.clone(), attribute.to_string());
        placeholder
    }

    fn value(&mut self, prefix: &str, value: ddb::AttributeValue) -> String {
        let placeholder = format!(":{prefix}{}", self.values.len());
        self.values.insert(placeholder.clone(), value);
        placeholder
    }

    fn names(&self) -> Option<HashMap<String, String>> {
        (!self.names.is_empty()).then(|| self.names.clone())
    }

    fn values(&self) -> Option<AwsItem> {
        (!self.values.is_empty()).then(|| self.values.clone())
    }

    fn condition(&mut self, condition: &Condition) -> CapResult<Option<String>> {
        Ok(match condition {
            Condition::None => None,
            Condition::ItemAbsent => Some("attribute_not_exists(pk)".into()),
            Condition::ItemPresent => Some("attribute_exists(pk)".into()),
            Condition::Equals(check) => {
                let name = self.name("c", &check.name);
                let value = self.value("c", to_aws(&check.value)?);
                Some(format!("{name} = {value}"))
            }
            Condition::AbsentOrAtMost(check) => {
                let name = self.name("c", &check.name);
                let value = self.value("c", to_aws(&check.value)?);
                Some(format!("attribute_not_exists(pk) OR {name} <= {value}"))
            }
        })
    }

    fn set(&mut self, set: &Item) -> CapResult<String> {
        if set.is_empty() {
            return Err(error(
                ErrorCode::Invalid,
                "an update must set at least one attribute",
            ));
        }
        let mut parts = Vec::with_capacity(set.len());
        for (attribute, value) in set {
            let name = self.name("u", attribute);
            let value = self.value("u", to_aws(value)?);
            parts.push(format!("{name} = {value}"));
        }
        Ok(format!("SET {}", parts.join(", ")))
    }
}

fn to_aws(value: &AttributeValue) -> CapResult<ddb::AttributeValue> {
    use ddb::AttributeValue as A;
    Ok(match value {
        AttributeValue::S(s) => A::S(s.clone()),
        AttributeValue::N(n) => A::N(n.clone()),
        AttributeValue::B(b) => A::B(Blob::new(b.clone())),
        AttributeValue::Bool(b) => A::Bool(*b),
        AttributeValue::Null => A::Null(true),
        AttributeValue::Ss(v) => A::Ss(v.clone()),
        AttributeValue::Ns(v) => A::Ns(v.clone()),
        AttributeValue::Bs(v) => A::Bs(v.iter().map(|b| Blob::new(b.clone())).collect()),
        AttributeValue::Json(text) => {
            let json: serde_json::Value = serde_json::from_str(text).map_err(|e| {
                error(
                    ErrorCode::Invalid,
                    format!("attribute JSON is not JSON: {e}"),
                )
            })?;
            from_dynamodb_json(&json)?
        }
    })
}

/// DynamoDB JSON (`{"M": {"a": {"S": "x"}}}`) into an SDK value.
fn from_dynamodb_json(json: &serde_json::Value) -> CapResult<ddb::AttributeValue> {
    use ddb::AttributeValue as A;
    let invalid = || {
        error(
            ErrorCode::Invalid,
            format!("not a DynamoDB JSON attribute value: {json}"),
        )
    };
    let object = json
        .as_object()
        .filter(|o| o.len() == 1)
        .ok_or_else(invalid)?;
    let (tag, inner) = object.iter().next().ok_or_else(invalid)?;
    let strings = |v: &serde_json::Value| -> CapResult<Vec<String>> {
        v.as_array()
            .ok_or_else(invalid)?
            .iter()
            .map(|s| s.as_str().map(str::to_string).ok_or_else(invalid))
            .collect()
    };
    Ok(match tag.as_str() {
        "S" => A::S(inner.as_str().ok_or_else(invalid)?.to_string()),
        "N" => A::N(inner.as_str().ok_or_else(invalid)?.to_string()),
        "BOOL" => A::Bool(inner.as_bool().ok_or_else(invalid)?),
        "NULL" => A::Null(true),
        "SS" => A::Ss(strings(inner)?),
        "NS" => A::Ns(strings(inner)?),
        "L" => A::L(
            inner
                .as_array()
                .ok_or_else(invalid)?
                .iter()
                .map(from_dynamodb_json)
                .collect::<CapResult<_>>()?,
        ),
        "M" => A::M(
            inner
                .as_object()
                .ok_or_else(invalid)?
                .iter()
                .map(|(k, v)| Ok((k.clone(), from_dynamodb_json(v)?)))
                .collect::<CapResult<_>>()?,
        ),
        _ => return Err(invalid()),
    })
}

/// An SDK value as DynamoDB JSON, for nested maps and lists.
fn to_dynamodb_json(value: &ddb::AttributeValue) -> serde_json::Value {
    use ddb::AttributeValue as A;
    use serde_json::json;
    match value {
        A::S(s) => json!({ "S": s }),
        A::N(n) => json!({ "N": n }),
        A::Bool(b) => json!({ "BOOL": b }),
        A::Null(_) => json!({ "NULL": true }),
        A::Ss(v) => json!({ "SS": v }),
        A::Ns(v) => json!({ "NS": v }),
        A::L(v) => json!({ "L": v.iter().map(to_dynamodb_json).collect::<Vec<_>>() }),
        A::M(m) => json!({
            "M": m.iter().map(|(k, v)| (k.clone(), to_dynamodb_json(v))).collect::<serde_json::Map<_, _>>()
        }),
        // Binary inside a nested value has no JSON form envmgr uses.
        _ => json!({ "NULL": true }),
    }
}

fn from_aws(value: ddb::AttributeValue) -> AttributeValue {
    use ddb::AttributeValue as A;
    match value {
        A::S(s) => AttributeValue::S(s),
        A::N(n) => AttributeValue::N(n),
        A::B(b) => AttributeValue::B(b.into_inner()),
        A::Bool(b) => AttributeValue::Bool(b),
        A::Null(_) => AttributeValue::Null,
        A::Ss(v) => AttributeValue::Ss(v),
        A::Ns(v) => AttributeValue::Ns(v),
        A::Bs(v) => AttributeValue::Bs(v.into_iter().map(Blob::into_inner).collect()),
        other => AttributeValue::Json(to_dynamodb_json(&other).to_string()),
    }
}

fn to_aws_item(item: &Item) -> CapResult<AwsItem> {
    item.iter()
        .map(|(name, value)| Ok((name.clone(), to_aws(value)?)))
        .collect()
}

/// Items come back as hash maps; keys first, then the rest by name, so the
/// order is stable.
fn from_aws_item(item: AwsItem) -> Item {
    let mut fields: Vec<(String, AttributeValue)> =
        item.into_iter().map(|(n, v)| (n, from_aws(v))).collect();
    fields.sort_by(|(a, _), (b, _)| {
        let rank = |n: &str| match n {
            "pk" => 0,
            "sk" => 1,
            _ => 2,
        };
        rank(a).cmp(&rank(b)).then_with(|| a.cmp(b))
    });
    fields
}

impl AwsTables {
    fn transact_item(&self, write: &Write) -> CapResult<TransactWriteItem> {
        let build = |e: aws_sdk_dynamodb::error::BuildError| {
            error(ErrorCode::Invalid, format!("transaction item: {e}"))
        };
        let mut expression = Expression::default();
        Ok(match write {
            Write::Put(put) => {
                let condition = expression.condition(&put.condition)?;
                TransactWriteItem::builder()
                    .put(
                        Put::builder()
                            .table_name(self.physical(&put.table)?)
                            .set_item(Some(to_aws_item(&put.item)?))
                            .set_condition_expression(condition)
                            .set_expression_attribute_names(expression.names())
                            .set_expression_attribute_values(expression.values())
                            .build()
                            .map_err(build)?,
                    )
                    .build()
            }
            Write::Update(update) => {
                let set = expression.set(&update.set)?;
                let condition = expression.condition(&update.condition)?;
                TransactWriteItem::builder()
                    .update(
                        Update::builder()
                            .table_name(self.physical(&update.table)?)
                            .set_key(Some(to_aws_item(&update.key)?))
                            .update_expression(set)
                            .set_condition_expression(condition)
                            .set_expression_attribute_names(expression.names())
                            .set_expression_attribute_values(expression.values())
                            .build()
                            .map_err(build)?,
                    )
                    .build()
            }
            Write::Delete(delete) => {
                let condition = expression.condition(&delete.condition)?;
                TransactWriteItem::builder()
                    .delete(
                        Delete::builder()
                            .table_name(self.physical(&delete.table)?)
                            .set_key(Some(to_aws_item(&delete.key)?))
                            .set_condition_expression(condition)
                            .set_expression_attribute_names(expression.names())
                            .set_expression_attribute_values(expression.values())
                            .build()
                            .map_err(build)?,
                    )
                    .build()
            }
            Write::Check(check) => {
                // A check needs a condition; `none` checks that nothing is amiss.
                let condition = expression
                    .condition(&check.condition)?
                    .unwrap_or_else(|| "attribute_exists(pk) OR attribute_not_exists(pk)".into());
                TransactWriteItem::builder()
                    .condition_check(
                        ConditionCheck::builder()
                            .table_name(self.physical(&check.table)?)
                            .set_key(Some(to_aws_item(&check.key)?))
                            .condition_expression(condition)
                            .set_expression_attribute_names(expression.names())
                            .set_expression_attribute_values(expression.values())
                            .build()
                            .map_err(build)?,
                    )
                    .build()
            }
        })
    }
}

fn transaction_error(
    e: SdkError<TransactWriteItemsError, aws_sdk_dynamodb::config::http::HttpResponse>,
    tables: &str,
) -> WriteError {
    if let SdkError::ServiceError(context) = &e
        && let TransactWriteItemsError::TransactionCanceledException(cancelled) = context.err()
    {
        let reasons = cancelled.cancellation_reasons();
        let failed: Vec<u32> = reasons
            .iter()
            .enumerate()
            .filter(|(_, r)| r.code() == Some("ConditionalCheckFailed"))
            .map(|(i, _)| i as u32)
            .collect();
        if !failed.is_empty() {
            return WriteError::ConditionFailed(failed);
        }
        let codes: Vec<&str> = reasons
            .iter()
            .filter_map(|r| r.code())
            .filter(|c| *c != "None")
            .collect();
        // Conflicts and throttling pass; anything else is a bad request.
        let passing = [
            "TransactionConflict",
            "ThrottlingError",
            "ProvisionedThroughputExceeded",
        ];
        let code = if codes.iter().all(|c| passing.contains(c)) {
            ErrorCode::Conflict
        } else {
            ErrorCode::Invalid
        };
        return WriteError::Failed(error(
            code,
            format!(
                "dynamodb TransactWriteItems cancelled: {}",
                codes.join(", ")
            ),
        ));
    }
    WriteError::Failed(capability_error(
        &format!("dynamodb TransactWriteItems on tables {tables}"),
        &e,
    ))
}

#[async_trait]
impl Tables for AwsTables {
    async fn scan_all(&self, table: &str) -> CapResult<Vec<Item>> {
        let physical = self.physical(table)?;
        let operation = format!("dynamodb Scan on table {physical}");
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let output = self
                .client
                .scan()
                .table_name(physical)
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .instrument(crate::telemetry::spans::aws("DynamoDB", "Scan"))
                .await
                .map_err(|e| capability_error(&operation, &e))?;
            items.extend(
                output
                    .items
                    .unwrap_or_default()
                    .into_iter()
                    .map(from_aws_item),
            );
            match output.last_evaluated_key.filter(|k| !k.is_empty()) {
                Some(next) => start = Some(next),
                None => return Ok(items),
            }
        }
    }

    async fn get(&self, table: &str, key: &Item) -> CapResult<Option<Item>> {
        let physical = self.physical(table)?;
        let output = self
            .client
            .get_item()
            .table_name(physical)
            .set_key(Some(to_aws_item(key)?))
            .consistent_read(true)
            .send()
            .instrument(crate::telemetry::spans::aws("DynamoDB", "GetItem"))
            .await
            .map_err(|e| capability_error(&format!("dynamodb GetItem on table {physical}"), &e))?;
        Ok(output.item.map(from_aws_item))
    }

    async fn query(&self, request: &QueryRequest) -> CapResult<Page> {
        let mut expression = Expression::default();
        let pk = expression.value("k", ddb::AttributeValue::S(request.partition.clone()));
        let mut key_condition = format!("pk = {pk}");
        if let Some(prefix) = &request.sort_prefix {
            let prefix = expression.value("k", ddb::AttributeValue::S(prefix.clone()));
            key_condition.push_str(&format!(" AND begins_with(sk, {prefix})"));
        }
        let physical = self.physical(&request.table)?;
        let output = self
            .client
            .query()
            .table_name(physical)
            .key_condition_expression(key_condition)
            .set_expression_attribute_values(expression.values())
            .consistent_read(true)
            .set_limit(request.limit.map(|l| l.clamp(1, i32::MAX as u32) as i32))
            .set_exclusive_start_key(request.start_after.as_ref().map(to_aws_item).transpose()?)
            .send()
            .instrument(crate::telemetry::spans::aws("DynamoDB", "Query"))
            .await
            .map_err(|e| capability_error(&format!("dynamodb Query on table {physical}"), &e))?;
        Ok(Page {
            items: output
                .items
                .unwrap_or_default()
                .into_iter()
                .map(from_aws_item)
                .collect(),
            next: output
                .last_evaluated_key
                .filter(|k| !k.is_empty())
                .map(from_aws_item),
        })
    }

    async fn transact_write(&self, writes: &[Write]) -> Result<(), WriteError> {
        let items = writes
            .iter()
            .map(|w| self.transact_item(w))
            .collect::<CapResult<Vec<_>>>()
            .map_err(WriteError::Failed)?;
        let mut tables: Vec<&str> = writes
            .iter()
            .filter_map(|w| self.physical(write_table(w)).ok())
            .collect();
        tables.sort_unstable();
        tables.dedup();
        self.client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .instrument(crate::telemetry::spans::aws(
                "DynamoDB",
                "TransactWriteItems",
            ))
            .await
            .map(drop)
            .map_err(|e| transaction_error(e, &tables.join(", ")))
    }

    async fn update(&self, request: &UpdateItem) -> Result<(), WriteError> {
        let mut expression = Expression::default();
        let set = expression.set(&request.set).map_err(WriteError::Failed)?;
        let condition = expression
            .condition(&request.condition)
            .map_err(WriteError::Failed)?;
        let table = self.physical(&request.table).map_err(WriteError::Failed)?;
        let key = to_aws_item(&request.key).map_err(WriteError::Failed)?;
        match self
            .client
            .update_item()
            .table_name(table)
            .set_key(Some(key))
            .update_expression(set)
            .set_condition_expression(condition)
            .set_expression_attribute_names(expression.names())
            .set_expression_attribute_values(expression.values())
            .send()
            .instrument(crate::telemetry::spans::aws("DynamoDB", "UpdateItem"))
            .await
        {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(context))
                if matches!(
                    context.err(),
                    UpdateItemError::ConditionalCheckFailedException(_)
                ) =>
            {
                Err(WriteError::ConditionFailed(vec![0]))
            }
            Err(e) => Err(WriteError::Failed(capability_error(
                &format!("dynamodb UpdateItem on table {table}"),
                &e,
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_values_round_trip_through_dynamodb_json() {
        let text = r#"{"M":{"a":{"L":[{"S":"x"},{"N":"1"},{"BOOL":true}]},"b":{"NULL":true}}}"#;
        let value = to_aws(&AttributeValue::Json(text.into())).unwrap();
        let back = from_aws(value);
        let AttributeValue::Json(json) = back else {
            panic!("{back:?}")
        };
        let a: serde_json::Value = serde_json::from_str(&json).unwrap();
        let b: serde_json::Value = serde_json::from_str(text).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn conditions_become_expressions() {
        let mut e = Expression::default();
        let c = Condition::AbsentOrAtMost(super::super::AttributeCheck {
            name: "requestVersion".into(),
            value: AttributeValue::S("v".into()),
        });
        assert_eq!(
            e.condition(&c).unwrap().as_deref(),
            Some("attribute_not_exists(pk) OR #c0 <= :c0")
        );
        assert_eq!(e.names().unwrap()["#c0"], "requestVersion");
    }
}
