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

/// Everything, section by section.
pub fn everything(store: &Store, settings: &Settings) -> anyhow::Result<()> {
    environments(store, settings)?;
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

/// The environment items, grouped by environment (three per environment),
/// each with its lease and the newest status report of its runtime.
pub fn environments(store: &Store, settings: &Settings) -> anyhow::Result<()> {
    let tables = LocalTables::new(store.clone(), settings.tables.mapping());
    let mut grouped: BTreeMap<String, Vec<Item>> = BTreeMap::new();
    let mut leases: BTreeMap<String, Item> = BTreeMap::new();
    let mut reports: BTreeMap<String, Item> = BTreeMap::new();
    for item in tables.scan("environments")? {
        // The lease and the report are the environment's, not a copy of it.
        let kept = match text(&item, "entity") {
            Some("lease") => &mut leases,
            Some("report") => &mut reports,
            _ => {
                let id = text(&item, "environmentId").unwrap_or("?").to_string();
                grouped.entry(id).or_default().push(item);
                continue;
            }
        };
        let id = text(&item, "pk")
            .and_then(|pk| pk.strip_prefix("ENVIRONMENT#"))
            .unwrap_or("?")
            .to_string();
        kept.insert(id, item);
    }
    println!("\n== environments ({}) ==", grouped.len());
    for (id, items) in &grouped {
        let first = &items[0];
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
        for item in items {
            println!("    {}", show_item(item));
        }
        if let Some(lease) = leases.get(id) {
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
        if let Some(report) = reports.get(id) {
            println!("    status report: {}", show_item(report));
        }
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
