//! `envmgr show` (and the end of `envmgr demo`): what the local database
//! holds, as a person reads it. Secret values never appear: secrets are
//! stored encrypted, and the runtime record keeps them masked.

use std::collections::BTreeMap;

use crate::capabilities::analytics::local::events;
use crate::capabilities::dynamodb::local::LocalTables;
use crate::capabilities::dynamodb::{AttributeValue, Item, show_item};
use crate::capabilities::github::local::{comments, deployments, tokens_issued};
use crate::capabilities::github::state_name;
use crate::capabilities::runtime::local::runtimes;
use crate::config::Settings;
use crate::local::Store;
use crate::queue::local::{depth, messages};

fn text<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    item.iter().find_map(|(n, v)| match v {
        AttributeValue::S(s) if n == name => Some(s.as_str()),
        _ => None,
    })
}

/// Everything, section by section; each environment's stored items too
/// when `items`.
pub fn everything(store: &Store, settings: &Settings, items: bool) -> anyhow::Result<()> {
    environments(store, settings, items)?;
    comments_section(store)?;
    deployments_section(store)?;
    runtime_section(store)?;
    analytics_section(store)?;
    queues(store, settings)?;
    Ok(())
}

/// What is left of the environments that ended: their tombstones, the
/// runtimes deleted, the deployments made inactive, the comments saying so.
pub fn ended(store: &Store, settings: &Settings) -> anyhow::Result<()> {
    let tables = LocalTables::new(store.clone(), settings.tables.mapping());
    for item in tables.scan("environments")? {
        if text(&item, "sk") != Some("#") || text(&item, "status") != Some("deleted") {
            continue;
        }
        println!(
            "  record {} ({} {}): deleted ({}), a tombstone until purgeAt {}",
            text(&item, "environmentId").unwrap_or("?"),
            text(&item, "environmentType").unwrap_or("?"),
            text(&item, "branch").unwrap_or("?"),
            text(&item, "deleteReason").unwrap_or("?"),
            match item.iter().find(|(name, _)| name == "purgeAt") {
                Some((_, AttributeValue::N(at))) => at.as_str(),
                _ => "?",
            },
        );
    }
    for runtime in runtimes(store)? {
        if let Some(by) = &runtime.deleted_by {
            println!("  runtime {}: deleted by request {by}", runtime.runtime_id);
        }
    }
    for recorded in deployments(store)? {
        if let Some(last) = recorded
            .statuses
            .last()
            .filter(|s| state_name(s.state) == "inactive")
        {
            let deployment = &recorded.deployment;
            println!(
                "  deployment {} to {}: inactive {:?}",
                deployment.id, deployment.environment, last.description
            );
        }
    }
    for comment in comments(store)? {
        if let Some(status) = comment.body.lines().find(|l| l.contains("🗑️ Removed")) {
            println!(
                "  comment on {}#{}: {}",
                comment.repository,
                comment.issue,
                status.trim()
            );
        }
    }
    Ok(())
}

/// An environment's items as stored: its three items (the record and the
/// copies the logic keeps), its lease and its runtime's newest report.
#[derive(Default)]
pub struct Stored {
    pub items: Vec<Item>,
    pub lease: Option<Item>,
    pub report: Option<Item>,
}

/// The environments table, grouped by environment id.
pub fn grouped(store: &Store, settings: &Settings) -> anyhow::Result<BTreeMap<String, Stored>> {
    let tables = LocalTables::new(store.clone(), settings.tables.mapping());
    let mut grouped: BTreeMap<String, Stored> = BTreeMap::new();
    for item in tables.scan("environments")? {
        // The lease and the report are the environment's, not a copy of it.
        let by_key = text(&item, "pk")
            .and_then(|pk| pk.strip_prefix("ENVIRONMENT#"))
            .unwrap_or("?")
            .to_string();
        match text(&item, "entity") {
            Some("lease") => grouped.entry(by_key).or_default().lease = Some(item),
            Some("report") => grouped.entry(by_key).or_default().report = Some(item),
            _ => {
                let id = text(&item, "environmentId").unwrap_or("?").to_string();
                grouped.entry(id).or_default().items.push(item);
            }
        }
    }
    grouped.retain(|_, stored| !stored.items.is_empty());
    Ok(grouped)
}

/// One summary per environment (what, where, its status, its lease, its
/// runtime's newest report); its stored items too when `items`.
pub fn environments(store: &Store, settings: &Settings, items: bool) -> anyhow::Result<()> {
    let grouped = grouped(store, settings)?;
    println!("\n== environments ({}) ==", grouped.len());
    for (id, stored) in &grouped {
        let first = &stored.items[0];
        println!(
            "  {id}: {} {} @ {} · status {}{}",
            text(first, "environmentType").unwrap_or("?"),
            text(first, "repository").unwrap_or("?"),
            text(first, "branch").unwrap_or("?"),
            text(first, "status").unwrap_or("?"),
            text(first, "url")
                .map(|u| format!(" · {u}"))
                .unwrap_or_default(),
        );
        if items {
            for item in &stored.items {
                println!("    {}", show_item(item));
            }
        }
        if let Some(lease) = &stored.lease {
            let holder = text(lease, "holder").filter(|h| !h.is_empty());
            let wanted = text(lease, "wanted").filter(|w| !w.is_empty());
            println!(
                "    lease: {}{} · last holder {}",
                match holder {
                    Some(holder) => format!("held by delivery {holder}"),
                    None => "free".to_string(),
                },
                wanted
                    .map(|w| format!(" · request {w} waiting"))
                    .unwrap_or_default(),
                text(lease, "holderVersion").unwrap_or("-"),
            );
        }
        if let Some(report) = &stored.report {
            match items {
                true => println!("    status report: {}", show_item(report)),
                false => println!(
                    "    status report: {} for request {}{}",
                    text(report, "state").unwrap_or("?"),
                    text(report, "requestVersion").unwrap_or("?"),
                    text(report, "reason")
                        .map(|r| format!(" ({r})"))
                        .unwrap_or_default(),
                ),
            }
        }
    }
    if !items && !grouped.is_empty() {
        println!("  (`envmgr show --items` for the stored items)");
    }
    Ok(())
}

fn comments_section(store: &Store) -> anyhow::Result<()> {
    let all = comments(store)?;
    println!("\n== pull-request comments ({}) ==", all.len());
    for comment in all {
        println!(
            "  -- comment {} on {}#{} --",
            comment.id, comment.repository, comment.issue
        );
        for line in comment.body.lines() {
            println!("  | {line}");
        }
    }
    let tokens = tokens_issued(store)?;
    for (repository, count) in tokens {
        println!("  installation tokens issued for {repository}: {count} (values never stored)");
    }
    Ok(())
}

fn deployments_section(store: &Store) -> anyhow::Result<()> {
    let all = deployments(store)?;
    println!("\n== GitHub deployments ({}) ==", all.len());
    for recorded in all {
        let kind = match (
            recorded.transient_environment,
            recorded.production_environment,
        ) {
            (_, true) => " (production)",
            (true, _) => " (transient)",
            _ => "",
        };
        let deployment = &recorded.deployment;
        println!(
            "  deployment {} of {} @ {} to {}{kind} · {} · {}",
            deployment.id,
            recorded.repository,
            deployment.sha.chars().take(7).collect::<String>(),
            deployment.environment,
            deployment.task,
            deployment.payload_json,
        );
        for status in &recorded.statuses {
            let mut line = format!("    {} {:?}", state_name(status.state), status.description);
            if let Some(url) = &status.environment_url {
                line.push_str(&format!(" · environment {url}"));
            }
            if let Some(url) = &status.log_url {
                line.push_str(&format!(" · log {url}"));
            }
            println!("{line}");
        }
    }
    Ok(())
}

fn runtime_section(store: &Store) -> anyhow::Result<()> {
    let all = runtimes(store)?;
    println!(
        "\n== runtime requests ({}; secret values masked) ==",
        all.len()
    );
    for runtime in all {
        let deleted = runtime
            .deleted_by
            .as_deref()
            .map_or_else(String::new, |by| format!("; deleted by request {by}"));
        println!(
            "  {} -> {} {} (asked {} time{}{deleted})",
            runtime.idempotency_key,
            runtime.runtime_id,
            runtime.url,
            runtime.calls,
            if runtime.calls == 1 { "" } else { "s" }
        );
        let body = serde_json::to_string_pretty(&runtime.request)?;
        for line in body.lines() {
            println!("    {line}");
        }
    }
    Ok(())
}

fn analytics_section(store: &Store) -> anyhow::Result<()> {
    let all = events(store)?;
    println!("\n== analytics events ({}) ==", all.len());
    for event in all {
        println!(
            "  {} user={} {}",
            event.event, event.user_id, event.properties_json
        );
    }
    Ok(())
}

fn queues(store: &Store, settings: &Settings) -> anyhow::Result<()> {
    println!("\n== queues ==");
    for (logical, queue) in &settings.queues {
        let (visible, in_flight) = depth(store, &queue.name)?;
        let dead = messages(store, &queue.dead_letter_name())?;
        println!(
            "  {logical} ({}): {visible} waiting, {in_flight} in flight, {} dead-lettered",
            queue.name,
            dead.len()
        );
        // envmgr's metadata attribute says why; a message without one was
        // moved by the redrive policy (or had no room for it).
        for message in dead {
            let metadata = message.metadata.unwrap_or_default();
            println!(
                "    dead letter {}{}: {}",
                message.id,
                metadata
                    .receive_count
                    .map(|n| format!(" after {n} receive{}", if n == 1 { "" } else { "s" }))
                    .unwrap_or_default(),
                metadata.reason.as_deref().unwrap_or("received too often")
            );
        }
    }
    Ok(())
}

/// `show --json`: the same as [`everything`] for tools: each environment
/// with its items (attributes as JSON values; binary ones as their length
/// only), the comments, runtime requests (secret values masked, as
/// stored), analytics events and queues.
pub fn as_json(store: &Store, settings: &Settings) -> anyhow::Result<serde_json::Value> {
    use serde_json::json;
    let item = |item: &Item| -> serde_json::Value {
        item.iter()
            .map(|(name, value)| (name.clone(), value_json(value)))
            .collect::<serde_json::Map<_, _>>()
            .into()
    };
    let environments: Vec<_> = grouped(store, settings)?
        .iter()
        .map(|(id, stored)| {
            let first = &stored.items[0];
            json!({
                "id": id,
                "type": text(first, "environmentType"),
                "repository": text(first, "repository"),
                "branch": text(first, "branch"),
                "status": text(first, "status"),
                "url": text(first, "url"),
                "items": stored.items.iter().map(item).collect::<Vec<_>>(),
                "lease": stored.lease.as_ref().map(item),
                "report": stored.report.as_ref().map(item),
            })
        })
        .collect();
    let comments: Vec<_> = comments(store)?
        .into_iter()
        .map(|c| json!({"id": c.id, "repository": c.repository, "issue": c.issue, "body": c.body}))
        .collect();
    let runtimes: Vec<_> = runtimes(store)?
        .into_iter()
        .map(|r| {
            json!({
                "idempotencyKey": r.idempotency_key, "runtimeId": r.runtime_id, "url": r.url,
                "calls": r.calls, "deletedBy": r.deleted_by, "request": r.request,
            })
        })
        .collect();
    let analytics: Vec<_> = events(store)?
        .into_iter()
        .map(|e| {
            let properties = serde_json::from_str::<serde_json::Value>(&e.properties_json)
                .unwrap_or(serde_json::Value::String(e.properties_json));
            json!({"event": e.event, "userId": e.user_id, "properties": properties})
        })
        .collect();
    let mut queues = Vec::new();
    for (logical, queue) in &settings.queues {
        let (waiting, in_flight) = depth(store, &queue.name)?;
        let dead = messages(store, &queue.dead_letter_name())?.len();
        queues.push(json!({
            "name": logical, "queue": queue.name, "waiting": waiting,
            "inFlight": in_flight, "deadLettered": dead,
        }));
    }
    Ok(json!({
        "environments": environments,
        "comments": comments,
        "runtimeRequests": runtimes,
        "analyticsEvents": analytics,
        "queues": queues,
    }))
}

/// An attribute as a JSON value: strings and booleans as themselves, a
/// number as a number when it is one, a binary as `{"bytes": n}`.
fn value_json(value: &AttributeValue) -> serde_json::Value {
    use serde_json::Value;
    match value {
        AttributeValue::S(s) => Value::from(s.as_str()),
        AttributeValue::N(n) => serde_json::from_str::<serde_json::Number>(n)
            .map_or_else(|_| Value::from(n.as_str()), Value::Number),
        AttributeValue::B(b) => serde_json::json!({ "bytes": b.len() }),
        AttributeValue::Bool(b) => Value::from(*b),
        AttributeValue::Null => Value::Null,
        AttributeValue::Ss(v) | AttributeValue::Ns(v) => Value::from(v.clone()),
        AttributeValue::Bs(v) => serde_json::json!({ "binaries": v.len() }),
        AttributeValue::Json(j) => {
            serde_json::from_str(j).unwrap_or_else(|_| Value::from(j.as_str()))
        }
    }
}
