//! `envmgr logic replay`, `envmgr record list|export`: the operator's and
//! the guest author's side of recordings.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context as _;

use crate::config::Settings;
use crate::engine::{Engine, Logic};
use crate::logic::short;
use crate::platform::Platform;
use crate::record::Recording;
use crate::record::replay::{Expectations, FailOn, Replaying, Tally};
use crate::record::store::Selection;

fn now_ms() -> u64 {
    crate::support::now_ms().max(0) as u64
}

/// `--since`: RFC 3339 (`2026-11-29T08:00:00Z`) or an age (`90m`, `6h`,
/// `2d`).
pub fn parse_since(text: &str, now_ms: u64) -> anyhow::Result<u64> {
    let age = |digits: &str, unit_ms: u64| {
        digits
            .parse::<u64>()
            .ok()
            .map(|n| now_ms.saturating_sub(n.saturating_mul(unit_ms)))
    };
    let relative = match text.char_indices().last() {
        Some((at, 'm')) => age(&text[..at], 60_000),
        Some((at, 'h')) => age(&text[..at], 3_600_000),
        Some((at, 'd')) => age(&text[..at], 86_400_000),
        _ => None,
    };
    if let Some(ms) = relative {
        return Ok(ms);
    }
    let at = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .with_context(|| format!("`{text}` is neither RFC 3339 nor an age like 90m, 6h or 2d"))?;
    Ok((at.unix_timestamp_nanos() / 1_000_000).max(0) as u64)
}

/// Which recordings a command reads.
pub fn selection(
    last: Option<usize>,
    since: Option<&str>,
    messages: &[String],
) -> anyhow::Result<Selection> {
    Ok(match (last, since, messages) {
        (_, _, [_, ..]) => Selection::Messages(messages.to_vec()),
        (_, Some(since), _) => Selection::Since(parse_since(since, now_ms())?),
        (last, None, []) => Selection::Last(last.unwrap_or(100)),
    })
}

/// Where versions' components come from: files, exported recordings, the
/// registry.
struct Components<'a> {
    engine: &'a Engine,
    from: Option<&'a Path>,
    platform: Option<&'a Platform>,
    loaded: HashMap<String, Arc<Logic>>,
}

impl Components<'_> {
    /// A file path, or a version name (sha256, prefix, tag, `builtin`).
    async fn named(&mut self, name: &str) -> anyhow::Result<Arc<Logic>> {
        let path = Path::new(name);
        if path.is_file() {
            let bytes = std::fs::read(path).with_context(|| format!("reading {name}"))?;
            return self.load(bytes);
        }
        if let Some(bytes) = self.from.and_then(|dir| super::files::component(dir, name)) {
            return self.load(bytes);
        }
        // The builtin logic is in the binary: no deployment needed.
        if name == crate::logic::BUILTIN_TAG && self.platform.is_none() {
            return self.load(crate::BUILTIN_LOGIC.to_vec());
        }
        let platform = self.platform.with_context(|| {
            format!(
                "`{name}` is not a file, and recordings read from files name no installed versions (give a component file, a version's sha256 in the export, or `builtin`)"
            )
        })?;
        let registry = platform.registry();
        let id = match name {
            crate::logic::BUILTIN_TAG => registry.builtin_id().to_string(),
            name => registry.resolve(name).await?.id,
        };
        self.by_id(&id).await
    }

    /// The version that handled a recording.
    async fn by_id(&mut self, id: &str) -> anyhow::Result<Arc<Logic>> {
        if let Some(logic) = self.loaded.get(id) {
            return Ok(logic.clone());
        }
        let bytes = match (
            self.from.and_then(|dir| super::files::component(dir, id)),
            self.platform,
        ) {
            (Some(bytes), _) => bytes,
            (None, Some(platform)) => platform.registry().component(id).await?,
            (None, None) if crate::support::hex_sha256(crate::BUILTIN_LOGIC) == id => {
                crate::BUILTIN_LOGIC.to_vec()
            }
            (None, None) => anyhow::bail!(
                "logic {} handled a recording but is not in the export (logic/{id}.wasm); give --against",
                short(id)
            ),
        };
        self.load(bytes)
    }

    fn load(&mut self, bytes: Vec<u8>) -> anyhow::Result<Arc<Logic>> {
        let id = crate::support::hex_sha256(&bytes);
        if let Some(logic) = self.loaded.get(&id) {
            return Ok(logic.clone());
        }
        let logic = Arc::new(self.engine.load(&bytes)?);
        self.loaded.insert(id, logic.clone());
        Ok(logic)
    }
}

/// What `logic replay` was asked.
pub struct ReplayRequest<'a> {
    pub candidate: &'a str,
    pub against: Option<&'a str>,
    pub selection: Selection,
    pub from: Option<&'a Path>,
    pub expected: Option<&'a Path>,
    pub fail_on: Option<FailOn>,
}

/// Replay and print; an error when the gate (`--fail-on`) is not passed.
pub async fn replay(
    settings: &Settings,
    platform: Option<&Platform>,
    request: &ReplayRequest<'_>,
) -> anyhow::Result<Tally> {
    let recordings = match (request.from, platform) {
        (Some(dir), _) => {
            let all = super::files::read(dir)?;
            choose(all, &request.selection)?
        }
        (None, Some(platform)) => {
            platform
                .recordings(settings)?
                .select(&request.selection, now_ms())
                .await?
        }
        (None, None) => {
            anyhow::bail!("no recordings: give --from DIR or a config to read them from")
        }
    };
    let engine = Engine::new(settings.limits())?;
    let mut components = Components {
        engine: &engine,
        from: request.from,
        platform,
        loaded: HashMap::new(),
    };
    let candidate = components.named(request.candidate).await?;
    let against = match request.against {
        Some(name) => Some(components.named(name).await?),
        None => None,
    };
    let expected = match request.expected {
        Some(file) => Expectations::read(file)?,
        None => Expectations::default(),
    };
    println!(
        "replaying {} recorded messages through {} and {}",
        recordings.len(),
        short(&candidate.id),
        against
            .as_ref()
            .map_or("the versions that handled them".to_string(), |a| short(
                &a.id
            )
            .to_string())
    );
    let started = Instant::now();
    let tally = run_all(
        &mut components,
        &candidate,
        against.as_ref(),
        &recordings,
        &expected,
        true,
    )
    .await?;
    let seconds = started.elapsed().as_secs_f64();
    println!(
        "{tally} ({seconds:.2} s, {:.0} messages/s)",
        tally.total() as f64 / seconds.max(1e-9)
    );
    if let Some(gate) = request.fail_on
        && gate.fails(&tally)
    {
        anyhow::bail!(
            "the replay does not pass --fail-on {}",
            match gate {
                FailOn::Differ => "differ",
                FailOn::Fail => "fail",
            }
        );
    }
    Ok(tally)
}

async fn run_all(
    components: &mut Components<'_>,
    candidate: &Arc<Logic>,
    against: Option<&Arc<Logic>>,
    recordings: &[Recording],
    expected: &Expectations,
    print: bool,
) -> anyhow::Result<Tally> {
    let mut tally = Tally::default();
    let replaying = Replaying {
        engine: components.engine,
        expected,
    };
    for recording in recordings {
        let before = match against {
            Some(against) => against.clone(),
            None => components.by_id(&recording.logic).await?,
        };
        let verdict = replaying.verdict(recording, &before, candidate).await;
        tally.add(&verdict);
        if print {
            println!(
                "{}  {:<40} {:<7} {}",
                shown_time(recording.handled_at_ms),
                recording.name(),
                recording.queue,
                verdict.explained()
            );
        }
    }
    Ok(tally)
}

fn choose(all: Vec<Recording>, selection: &Selection) -> anyhow::Result<Vec<Recording>> {
    Ok(match selection {
        Selection::Last(n) => {
            let skip = all.len().saturating_sub(*n);
            all.into_iter().skip(skip).collect()
        }
        Selection::Since(ms) => all.into_iter().filter(|r| r.handled_at_ms >= *ms).collect(),
        // As from the store: the newest delivery of each, every one named.
        Selection::Messages(ids) => super::store::newest_of_each(all, ids)
            .map_err(|missing| anyhow::anyhow!("no recording of {missing} in these files"))?,
    })
}

fn shown_time(ms: u64) -> String {
    crate::support::utc(ms, true)
}

/// `logic install --replay N`: the last N recordings through the new
/// version; failures refuse it, differences are reported (refused too with
/// `differ`).
pub async fn install_check(
    settings: &Settings,
    platform: &Platform,
    engine: &Engine,
    logic: Arc<Logic>,
    last: usize,
    fail_on: FailOn,
) -> anyhow::Result<String> {
    let recordings = platform
        .recordings(settings)?
        .select(&Selection::Last(last), now_ms())
        .await?;
    if recordings.is_empty() {
        return Ok("replay: no recordings yet".to_string());
    }
    let mut components = Components {
        engine,
        from: None,
        platform: Some(platform),
        loaded: HashMap::new(),
    };
    let tally = run_all(
        &mut components,
        &logic,
        None,
        &recordings,
        &Expectations::default(),
        true,
    )
    .await?;
    // The same gate as `logic replay --fail-on`: nothing replayable passes
    // nothing.
    if fail_on.fails(&tally) {
        anyhow::bail!("the replay of the last {last} recorded messages: {tally}");
    }
    Ok(format!("replay: {tally}"))
}

/// `logic replay --shadow-report`: a shadow version's counts over every
/// host, and the runs that differed or failed.
pub async fn shadow_report(
    settings: &Settings,
    platform: &Platform,
    name: Option<&str>,
) -> anyhow::Result<()> {
    let registry = platform.registry();
    let version = match name {
        Some(name) => registry.resolve(name).await?.id,
        None => registry
            .pointer()
            .await?
            .and_then(|p| p.shadow)
            .context("no shadow version is set; name one")?,
    };
    let recordings = platform.recordings(settings)?;
    let tally = recordings.shadow_counts(&version, None, now_ms()).await?;
    println!("shadow {}: {tally}", short(&version));
    for result in recordings.shadow_results(&version, now_ms()).await? {
        println!(
            "{}  {:<40} {}",
            shown_time(result.handled_at_ms),
            result.message,
            result.explained
        );
    }
    Ok(())
}

/// `record list`.
pub async fn list(
    settings: &Settings,
    platform: &Platform,
    selection: &Selection,
    json: bool,
) -> anyhow::Result<()> {
    let recordings = platform
        .recordings(settings)?
        .select(selection, now_ms())
        .await?;
    if json {
        let listed: Vec<_> = recordings
            .iter()
            .map(|r| {
                serde_json::json!({
                    "handledAt": crate::support::utc(r.handled_at_ms, true),
                    "message": r.name(),
                    "queue": r.queue,
                    "logic": r.logic,
                    "calls": r.taped.calls.len(),
                    "outcome": r.outcome,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&listed)?);
        return Ok(());
    }
    if recordings.is_empty() {
        println!("no recordings match (is [record] enabled?)");
        return Ok(());
    }
    println!(
        "{:<24}  {:<40} {:<7} {:<12}  {:>9}  OUTCOME",
        "HANDLED AT", "MESSAGE", "QUEUE", "LOGIC", "CALLS"
    );
    for recording in &recordings {
        println!(
            "{:<24}  {:<40} {:<7} {:<12}  {:>9}  {}",
            shown_time(recording.handled_at_ms),
            recording.name(),
            recording.queue,
            short(&recording.logic),
            crate::support::plural(recording.taped.calls.len() as u64, "call"),
            crate::redact::cut(&recording.outcome, 100)
        );
    }
    println!(
        "{}",
        crate::support::plural(recordings.len() as u64, "recording")
    );
    Ok(())
}

/// `record export`.
pub async fn export(
    settings: &Settings,
    platform: &Platform,
    selection: &Selection,
    dir: &Path,
    scrub: bool,
) -> anyhow::Result<()> {
    let recordings = platform
        .recordings(settings)?
        .select(selection, now_ms())
        .await?;
    let registry = platform.registry();
    let mut components = HashMap::new();
    for id in recordings.iter().map(|r| r.logic.clone()) {
        if let std::collections::hash_map::Entry::Vacant(entry) = components.entry(id.clone()) {
            entry.insert(registry.component(&id).await.ok());
        }
    }
    let written = super::files::export(&recordings, dir, scrub, |id| {
        components.get(id).cloned().flatten()
    })?;
    println!(
        "exported {} recordings{} to {} ({} files)",
        recordings.len(),
        if scrub { ", scrubbed," } else { "" },
        dir.display(),
        written.len()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_an_age_or_a_time() {
        let now = 1_795_900_000_000;
        assert_eq!(parse_since("90m", now).unwrap(), now - 90 * 60_000);
        assert_eq!(parse_since("6h", now).unwrap(), now - 6 * 3_600_000);
        assert_eq!(parse_since("2d", now).unwrap(), now - 2 * 86_400_000);
        assert_eq!(
            parse_since("2026-11-28T12:00:00Z", now).unwrap(),
            1_795_867_200_000
        );
        for wrong in ["", "6", "h", "-1h", "yesterday", "2026-11-28"] {
            assert!(parse_since(wrong, now).is_err(), "{wrong}");
        }
    }

    #[test]
    fn a_selection_is_messages_then_since_then_the_newest() {
        let ids = vec!["m-1".to_string()];
        assert_eq!(
            selection(Some(5), None, &ids).unwrap(),
            Selection::Messages(ids.clone())
        );
        assert_eq!(selection(Some(5), None, &[]).unwrap(), Selection::Last(5));
        assert_eq!(selection(None, None, &[]).unwrap(), Selection::Last(100));
        assert!(matches!(
            selection(None, Some("1h"), &[]).unwrap(),
            Selection::Since(_)
        ));
    }
}
