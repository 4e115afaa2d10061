//! The `dynamodb` interface's requests.

use super::Request;
use crate::bindings::envmgr::environments::dynamodb::{Item, QueryRequest, UpdateItem, Write};
use crate::bindings::json::{Object, Recordable};
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
    fn write_json(&self, out: &mut Vec<u8>) {
        Object::new(out)
            .field("key", self.key)
            .field("table", self.table)
            .end();
    }
}

pub struct Query<'a>(pub &'a QueryRequest);

impl Request for Query<'_> {
    const CALL: Call = Call::DynamodbQuery;
    fn text(&self) -> String {
        show_query(self.0)
    }
    fn write_json(&self, out: &mut Vec<u8>) {
        self.0.write_json(out);
    }
}

pub struct TransactWrite<'a>(pub &'a [Write]);

impl Request for TransactWrite<'_> {
    const CALL: Call = Call::DynamodbTransactWrite;
    fn text(&self) -> String {
        show_writes(self.0)
    }
    fn write_json(&self, out: &mut Vec<u8>) {
        Object::new(out).field("writes", self.0).end();
    }
}

pub struct Update<'a>(pub &'a UpdateItem);

impl Request for Update<'_> {
    const CALL: Call = Call::DynamodbUpdate;
    fn text(&self) -> String {
        show_write(&Write::Update(self.0.clone()))
    }
    fn write_json(&self, out: &mut Vec<u8>) {
        self.0.write_json(out);
    }
}
