//! `envmgr sweep --dry-run`: each app's sweep run here, by the logic version
//! the pointer names (the builtin one without a pointer), against the
//! deployment's tables and GitHub, its deletes kept and printed instead of
//! sent. The sweep only reads and sends (`guest/src/flow/sweep.rs`), so
//! keeping its sends is all a dry run needs: nothing is written.

use std::sync::Arc;

use crate::Message;
use crate::capabilities::requests::Kept;
use crate::config::Settings;
use crate::engine::{Engine, summary};
use crate::logic::cache::NativeCache;
use crate::platform::Platform;
use crate::redact::Credentials;

/// One app's dry run: what the logic answered, and the deletes it would
/// have sent.
pub struct AppSweep {
    pub app_id: String,
    pub outcome: String,
    pub deletes: Vec<String>,
}

/// Run the sweep of every app (or `only` that one) without sending: one
/// [`AppSweep`] per app, each with at most the 50 deletes one sweep sends.
pub async fn dry_run(settings: &Settings, only: Option<&str>) -> anyhow::Result<Vec<AppSweep>> {
    let platform = Platform::connect(settings).await?;
    let credentials = Credentials::default();
    let services = platform.services(settings, &credentials)?;
    let kept = Arc::new(Kept::default());
    let backends = Arc::new(crate::daemon::assemble::backends(
        settings,
        &platform,
        &services,
        kept.clone(),
        credentials,
    ));
    let engine = Arc::new(Engine::new(settings.limits())?);
    let registry = platform.registry();
    let active = match registry.pointer().await? {
        Some(pointer) => pointer.active,
        None => registry.builtin_id().to_string(),
    };
    let cache = NativeCache::new(settings.logic_cache_dir(), engine.clone());
    let logic = cache
        .load_or_compile(&active, registry.component(&active))
        .await?;
    let mut swept = Vec::new();
    for (n, app_id) in super::apps(platform.consumer_tables.as_ref(), only)
        .await?
        .into_iter()
        .enumerate()
    {
        let body = super::sweep_message(&app_id);
        let message = Message {
            id: format!("dry-run-{n}"),
            source_queue: "api".to_string(),
            body,
            attributes: Vec::new(),
            receive_count: 1,
            sent_at_ms: crate::support::now_ms().max(0) as u64,
            delivery_token: format!("dry-run-{n}"),
            deferrals: 0,
        };
        let result = engine.run(&logic, backends.clone(), &message).await;
        swept.push(AppSweep {
            app_id,
            outcome: summary(&result),
            deletes: kept.take(),
        });
    }
    Ok(swept)
}
