//! The stack's tables as a host sees them: by logical name, the logic
//! registry, and the environments table's items as text.

use std::collections::BTreeMap;

use envmgr::capabilities::dynamodb::AttributeValue;
use envmgr::capabilities::dynamodb::local::LocalTables;

use super::{Backend, Stack};

impl Stack {
    /// The tables of this stack's store by logical name (environments,
    /// secrets, apps), as a host sees them.
    pub async fn tables(&self) -> std::sync::Arc<dyn envmgr::capabilities::dynamodb::Tables> {
        let names: Vec<(String, String)> = ["environments", "secrets", "apps"]
            .iter()
            .map(|l| (l.to_string(), format!("{}-{l}", self.prefix)))
            .collect();
        let mapping = names.iter().map(|(l, p)| (l.as_str(), p.as_str()));
        match self.backend {
            Backend::Local => std::sync::Arc::new(LocalTables::new(self.store(), mapping)),
            Backend::Aws => std::sync::Arc::new(
                envmgr::capabilities::dynamodb::aws::AwsTables::new(&self.sdk().await, mapping),
            ),
        }
    }

    /// The logic versions' registry of this stack's store, as a host sees it
    /// (to stage what a command would refuse to write).
    pub async fn registry(&self) -> envmgr::logic::registry::Registry {
        let physical = format!("{}-logic", self.prefix);
        let mapping = [("logic", physical.as_str())];
        let tables: std::sync::Arc<dyn envmgr::capabilities::dynamodb::Tables> = match self.backend
        {
            Backend::Local => std::sync::Arc::new(LocalTables::new(self.store(), mapping)),
            Backend::Aws => std::sync::Arc::new(
                envmgr::capabilities::dynamodb::aws::AwsTables::new(&self.sdk().await, mapping),
            ),
        };
        envmgr::logic::registry::Registry::new(tables, envmgr::BUILTIN_LOGIC)
    }

    /// The environment record items (not the leases), each as attribute
    /// name → text (strings and numbers), whichever backend holds them.
    pub async fn environment_items(&self) -> Vec<BTreeMap<String, String>> {
        self.environment_table()
            .await
            .into_iter()
            .filter(|item| item.get("entity").map(String::as_str) == Some("environment"))
            .collect()
    }

    /// Every item of the environments table (records and leases), each as
    /// attribute name → text (strings and numbers).
    pub async fn environment_table(&self) -> Vec<BTreeMap<String, String>> {
        match self.backend {
            Backend::Local => {
                let physical = format!("{}-environments", self.prefix);
                LocalTables::new(self.store(), [("environments", physical.as_str())])
                    .scan("environments")
                    .expect("scan")
                    .into_iter()
                    .map(|item| {
                        item.into_iter()
                            .filter_map(|(name, value)| match value {
                                AttributeValue::S(v) | AttributeValue::N(v) => Some((name, v)),
                                _ => None,
                            })
                            .collect()
                    })
                    .collect()
            }
            Backend::Aws => {
                let client = aws_sdk_dynamodb::Client::new(&self.sdk().await);
                client
                    .scan()
                    .table_name(format!("{}-environments", self.prefix))
                    .send()
                    .await
                    .expect("scan")
                    .items
                    .unwrap_or_default()
                    .into_iter()
                    .map(|item| {
                        item.into_iter()
                            .filter_map(|(name, value)| match value {
                                aws_sdk_dynamodb::types::AttributeValue::S(v)
                                | aws_sdk_dynamodb::types::AttributeValue::N(v) => Some((name, v)),
                                _ => None,
                            })
                            .collect()
                    })
                    .collect()
            }
        }
    }
}
