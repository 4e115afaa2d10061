//! The `dynamodb` interface's requests.

use serde_json::Value;

use super::Request;
use crate::bindings::envmgr::environments::dynamodb::{Item, QueryRequest, UpdateItem, Write};
use crate::bindings::json::Recordable;
use crate::calls::Call;
use crate::capabilities::dynamodb::{show_item, show_query, show_write, show_writes};

pub struct Get<'a> {
    pub table: &'a str,
    pub key: &'a Item,
}

impl Request for Get<'_> {
    const CALL: Call = Call::DynamodbGet;
    fn text(&self) -> String {
        format!("{} {}", self.table, show_item(self.key))
    }
    fn json(&self) -> Value {
        serde_json::json!({ "table": self.table, "key": self.key.record() })
    }
}

pub struct Query<'a>(pub &'a QueryRequest);

impl Request for Query<'_> {
    const CALL: Call = Call::DynamodbQuery;
    fn text(&self) -> String {
        show_query(self.0)
    }
    fn json(&self) -> Value {
        self.0.record()
    }
}

pub struct TransactWrite<'a>(pub &'a [Write]);

impl Request for TransactWrite<'_> {
    const CALL: Call = Call::DynamodbTransactWrite;
    fn text(&self) -> String {
        show_writes(self.0)
    }
    fn json(&self) -> Value {
        serde_json::json!({ "writes": Write::record_list(self.0) })
    }
}

pub struct Update<'a>(pub &'a UpdateItem);

impl Request for Update<'_> {
    const CALL: Call = Call::DynamodbUpdate;
    fn text(&self) -> String {
        show_write(&Write::Update(self.0.clone()))
    }
    fn json(&self) -> Value {
        self.0.record()
    }
}
