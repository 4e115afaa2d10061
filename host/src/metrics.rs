//! The figures `/metrics` serves, in the OpenMetrics text format
//! (prometheus-client). Counters that grow where the work happens (a
//! dependency's errors, counted at the capability boundary) live here for
//! the whole process; everything else is read when scraped.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::{LazyLock, Mutex};

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// A metric's labels, in the order they are shown.
pub type Labels = Vec<(&'static str, String)>;

/// What `/metrics` answers with.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

static DEPENDENCY_ERRORS: LazyLock<Family<Labels, Counter>> = LazyLock::new(Family::default);

/// Count one failed call of a dependency (`github`, `dynamodb`, `kms`,
/// `runtime`, `analytics`), by its error code as the WIT spells it.
pub fn dependency_error(dependency: &str, kind: &str) {
    DEPENDENCY_ERRORS
        .get_or_create(&vec![
            ("dependency", dependency.to_string()),
            ("kind", kind.to_string()),
        ])
        .inc();
}

/// How many failures of `kind` `dependency` has had (for unit tests).
#[cfg(test)]
pub fn dependency_errors(dependency: &str, kind: &str) -> u64 {
    DEPENDENCY_ERRORS
        .get_or_create(&vec![
            ("dependency", dependency.to_string()),
            ("kind", kind.to_string()),
        ])
        .get()
}

static PREVIOUS_KEY_DECRYPTS: LazyLock<Counter> = LazyLock::new(Counter::default);

/// Count one decrypt that only a key in `kms.previous_key_ids` could do.
pub fn previous_key_decrypt() {
    PREVIOUS_KEY_DECRYPTS.inc();
}

static RECORDINGS: LazyLock<Family<Labels, Counter>> = LazyLock::new(Family::default);
static RECORDED_BYTES: LazyLock<Counter> = LazyLock::new(Counter::default);
/// Shadow runs per version (short id) and verdict, and since when the
/// pointer has not named the version. Bound: the versions the pointer names
/// or named lately (see [`keep_shadow_runs_of`]) times four verdicts.
type ShadowRuns = BTreeMap<String, (BTreeMap<&'static str, u64>, Option<std::time::Instant>)>;
static SHADOW_RUNS: LazyLock<Mutex<ShadowRuns>> = LazyLock::new(Mutex::default);

/// Count one recording `stored`, `dropped` (the queue was full) or
/// `failed` (the store refused), and the compressed bytes stored.
pub fn recording(result: &str, bytes: usize) {
    RECORDINGS
        .get_or_create(&vec![("result", result.to_string())])
        .inc();
    RECORDED_BYTES.inc_by(bytes as u64);
}

/// Count one shadow run of `version` (its short id) by its verdict.
pub fn shadow_run(version: &str, verdict: &'static str) {
    *shadow_runs()
        .entry(version.to_string())
        .or_default()
        .0
        .entry(verdict)
        .or_default() += 1;
}

/// Keep the shadow-run counts of the versions `named` (by short id) says
/// yes to, and for `kept_for` those it stopped saying yes to.
pub fn keep_shadow_runs_of(named: impl Fn(&str) -> bool, kept_for: std::time::Duration) {
    let now = std::time::Instant::now();
    shadow_runs().retain(|version, (_, unnamed_since)| {
        if named(version) {
            *unnamed_since = None;
            return true;
        }
        now.duration_since(*unnamed_since.get_or_insert(now)) < kept_for
    });
}

fn shadow_runs() -> std::sync::MutexGuard<'static, ShadowRuns> {
    SHADOW_RUNS.lock().unwrap_or_else(|p| p.into_inner())
}

fn shadow_runs_snapshot() -> BTreeMap<String, BTreeMap<&'static str, u64>> {
    shadow_runs()
        .iter()
        .map(|(version, (verdicts, _))| (version.clone(), verdicts.clone()))
        .collect()
}

/// One scrape: the process's counters and the figures read for it.
pub struct Scrape {
    registry: Registry,
}

impl Default for Scrape {
    fn default() -> Self {
        let mut registry = Registry::default();
        registry.register(
            "envmgr_dependency_errors",
            "Failed capability calls, by dependency and error code",
            DEPENDENCY_ERRORS.clone(),
        );
        registry.register(
            "envmgr_kms_previous_key_decrypts",
            "Decrypts only a key being moved from (kms.previous_key_ids) could do",
            PREVIOUS_KEY_DECRYPTS.clone(),
        );
        registry.register(
            "envmgr_recordings",
            "Handled messages recorded, by result: stored, dropped (the queue was full) or failed",
            RECORDINGS.clone(),
        );
        crate::telemetry::slo::register(&mut registry);
        registry.register(
            "envmgr_recorded_bytes",
            "Compressed bytes of recordings stored",
            RECORDED_BYTES.clone(),
        );
        let shadow_runs = Family::<Labels, Counter>::default();
        for (version, verdicts) in shadow_runs_snapshot() {
            for (verdict, count) in verdicts {
                shadow_runs
                    .get_or_create(&vec![
                        ("version", version.clone()),
                        ("verdict", verdict.into()),
                    ])
                    .inc_by(count);
            }
        }
        registry.register(
            "envmgr_shadow_runs",
            "Shadow runs by version and verdict: identical, differs, fails, not_replayable",
            shadow_runs,
        );
        Self { registry }
    }
}

impl Scrape {
    /// A gauge without labels.
    pub fn gauge(&mut self, name: &str, help: &str, value: i64) {
        let gauge = Gauge::<i64>::default();
        gauge.set(value);
        self.registry.register(name, sentence(help), gauge);
    }

    /// A gauge of seconds, without labels.
    pub fn seconds(&mut self, name: &str, help: &str, value: f64) {
        let gauge = Gauge::<f64, AtomicU64>::default();
        gauge.set(value);
        self.registry.register(name, sentence(help), gauge);
    }

    /// A gauge with one value per label set.
    pub fn gauges(&mut self, name: &str, help: &str, values: Vec<(Labels, i64)>) {
        let family = Family::<Labels, Gauge<i64>>::default();
        for (labels, value) in values {
            family.get_or_create(&labels).set(value);
        }
        self.registry.register(name, sentence(help), family);
    }

    /// A counter kept elsewhere (`name` without `_total`, which the format
    /// adds), one value per label set.
    pub fn counters(&mut self, name: &str, help: &str, values: Vec<(Labels, u64)>) {
        let family = Family::<Labels, Counter>::default();
        for (labels, value) in values {
            family.get_or_create(&labels).inc_by(value);
        }
        self.registry.register(name, sentence(help), family);
    }

    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut text, &self.registry);
        text
    }
}

/// prometheus-client ends every help text with a full stop.
fn sentence(help: &str) -> &str {
    help.trim_end_matches('.')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scrape_is_openmetrics_text() {
        dependency_error("kms", "denied");
        let mut scrape = Scrape::default();
        scrape.gauge("envmgr_up", "Serving.", 1);
        scrape.seconds("envmgr_paused_seconds", "Paused.", 1.5);
        scrape.gauges(
            "envmgr_logic_version",
            "Versions.",
            vec![(
                vec![("version", "abc".into()), ("role", "active".into())],
                1,
            )],
        );
        scrape.counters(
            "envmgr_messages",
            "Messages.",
            vec![(
                vec![("version", "abc".into()), ("outcome", "done".into())],
                3,
            )],
        );
        let text = scrape.encode();
        assert!(text.contains("envmgr_up 1\n"), "{text}");
        assert!(text.contains("envmgr_paused_seconds 1.5\n"), "{text}");
        assert!(
            text.contains("envmgr_logic_version{version=\"abc\",role=\"active\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("envmgr_messages_total{version=\"abc\",outcome=\"done\"} 3\n"),
            "{text}"
        );
        assert!(
            text.contains("envmgr_dependency_errors_total{dependency=\"kms\",kind=\"denied\"}"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
        assert!(!text.contains(".."), "one full stop: {text}");
    }
}
