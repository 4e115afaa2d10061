//! A recording through two logic versions in the mock host, every call
//! answered from the recording (see [`tape`](crate::calls::tape)), and what the
//! two runs did compared: their outcome and every effect they asked for
//! (writes, comments, deployments and statuses, tokens, runtime requests,
//! analytics events). Nothing reaches a real dependency: the backends behind
//! a replay are the local ones over a database in memory, and never called.
//!
//! | verdict | when |
//! |---|---|
//! | identical | same outcome, same effects (the logic version's id normalised away; expected changes accepted) |
//! | differs | another outcome or other effects: listed field by field |
//! | fails | the candidate failed (a failure, a trap, a timeout) where the other version did not, or failed otherwise |
//! | not replayable | one of the runs made a call the recording cannot answer |

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, OnceLock};

use anyhow::Context as _;
use serde::Deserialize;
use serde_json::Value;

use crate::calls::Observer;
use crate::calls::clock::ManualClock;
use crate::calls::tape::{Effect, Replayer, identity};
use crate::capabilities::config::Config;
use crate::engine::{Engine, Logic};
use crate::mock::InMemory;
use crate::record::Recording;

/// What one version did with one recording.
#[derive(Clone, Debug)]
pub struct Run {
    /// As logs say it (`done: …`, `permanent failure: …`).
    pub outcome: String,
    /// A failure, trap, timeout or exhausted memory.
    pub failed: bool,
    pub effects: Vec<Effect>,
    /// Calls the recording had no answer for.
    pub unanswered: Vec<String>,
}

/// Run `recording`'s message through `logic`, answered from the recording.
pub async fn run(engine: &Engine, logic: &Logic, recording: &Recording) -> Run {
    let replayer = Arc::new(Replayer::new(&recording.taped));
    let backends = Arc::new(never_called().backends(
        Config::new(recording.config.clone()),
        Observer {
            replay: Some(replayer.clone()),
            ..Observer::default()
        },
        ManualClock::at_ms(recording.handled_at_ms),
    ));
    // Both versions compared are told they are the recorded one: what a
    // logic derives from its own name (a digest of a comment naming it)
    // must not count as a difference.
    let result = engine
        .run_as(
            logic,
            &recording.logic,
            backends,
            &recording.message.message(),
        )
        .await;
    let (effects, unanswered) = replayer.finish();
    Run {
        outcome: crate::engine::summary(&result),
        failed: !matches!(result, Ok(Ok(_))),
        effects,
        unanswered,
    }
}

/// The backends behind every replay, opened once: a replayed call never
/// reaches a backend ([`crate::calls::layers::replay`]), so one database in
/// memory, empty, does for all.
fn never_called() -> &'static InMemory {
    static BACKENDS: OnceLock<InMemory> = OnceLock::new();
    BACKENDS.get_or_init(|| {
        InMemory::open(&ManualClock::at_ms(0), &Config::default()).expect("a database in memory")
    })
}

/// One field that differs between the two runs.
#[derive(Clone, Debug, PartialEq)]
pub struct Difference {
    /// `call[what it acts on]`, or `outcome`.
    pub effect: String,
    /// The call and the field within its request, as expected changes name
    /// it: `github.create-comment.body`, `outcome`.
    pub path: String,
    pub before: Option<Value>,
    pub after: Option<Value>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    /// `accepted`: differences the expected changes allowed.
    Identical {
        accepted: usize,
    },
    Differs(Vec<Difference>),
    Fails(String),
    NotReplayable(Vec<String>),
}

impl Verdict {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Identical { .. } => "identical",
            Self::Differs(_) => "differs",
            Self::Fails(_) => "fails",
            Self::NotReplayable(_) => "not replayable",
        }
    }

    /// The name as a metric label says it.
    pub fn label(&self) -> &'static str {
        match self {
            Self::NotReplayable(_) => "not_replayable",
            other => other.name(),
        }
    }

    /// The verdict with what explains it, for people.
    pub fn explained(&self) -> String {
        match self {
            Self::Identical { accepted: 0 } => "identical".to_string(),
            Self::Identical { accepted } => {
                format!("identical ({accepted} expected changes)")
            }
            Self::Differs(differences) => {
                let mut text = String::from("differs");
                for d in differences {
                    text.push_str(&format!("\n    {}", show(d)));
                }
                text
            }
            Self::Fails(outcome) => format!("fails: {outcome}"),
            Self::NotReplayable(calls) => {
                format!(
                    "not replayable: no recorded answer for {}",
                    calls.join("; ")
                )
            }
        }
    }
}

/// Intentional differences: a field path (`*` one segment, `**` any) and
/// a pattern the candidate's value must match.
#[derive(Debug, Default)]
pub struct Expectations {
    rules: Vec<(regex::Regex, regex::Regex)>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectationsFile {
    #[serde(default)]
    change: Vec<ExpectedChange>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectedChange {
    path: String,
    pattern: String,
}

impl Expectations {
    /// A TOML file of `[[change]]` tables with `path` and `pattern`.
    pub fn read(file: &Path) -> anyhow::Result<Self> {
        let text =
            std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        Self::parse(&text).with_context(|| format!("in {}", file.display()))
    }

    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let file: ExpectationsFile = toml::from_str(text)?;
        let rules = file
            .change
            .into_iter()
            .map(|c| {
                let path = regex::escape(&c.path)
                    .replace(r"\*\*", ".*")
                    .replace(r"\*", "[^.]*");
                let path = regex::Regex::new(&format!("^{path}$"))?;
                let pattern = regex::Regex::new(&c.pattern)
                    .with_context(|| format!("the pattern of {}", c.path))?;
                Ok((path, pattern))
            })
            .collect::<anyhow::Result<_>>()?;
        Ok(Self { rules })
    }

    fn accepts(&self, difference: &Difference) -> bool {
        let accepted = |at: &str, value: &str| {
            self.rules
                .iter()
                .any(|(path, pattern)| path.is_match(at) && pattern.is_match(value))
        };
        // Something one run had and the other not (a whole effect, such as
        // an update of a comment whose text changed): accepted when rules
        // cover every field of it but those naming what it acts on (the
        // comment's id and repository) and as whom (the installation). A dropped write of a record is not
        // accepted because one of its fields may change.
        if difference.before.is_none() || difference.after.is_none() {
            let Some(request) = difference.after.as_ref().or(difference.before.as_ref()) else {
                return false;
            };
            let mut fields = Vec::new();
            leaves(&difference.path, request, &mut fields);
            let mut names = Vec::new();
            if let Some(call) = crate::calls::Call::named(&difference.path) {
                leaves(
                    &difference.path,
                    &crate::calls::tape::identity(call, request),
                    &mut names,
                );
            }
            let installation = format!("{}.installation-id", difference.path);
            fields.retain(|field| !names.contains(field) && field.0 != installation);
            // An effect that is nothing but what it acts on (a delete):
            // accepted when the rules name that.
            if fields.is_empty() {
                return !names.is_empty() && names.iter().all(|(at, value)| accepted(at, value));
            }
            return fields.iter().all(|(at, value)| accepted(at, value));
        }
        let after = difference.after.as_ref().map_or(String::new(), text_of);
        accepted(&difference.path, &after)
    }
}

/// Every field of `value` with its path below `path`, as text.
fn leaves(path: &str, value: &Value, into: &mut Vec<(String, String)>) {
    match value {
        Value::Object(map) => map
            .iter()
            .for_each(|(key, v)| leaves(&format!("{path}.{key}"), v, into)),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .for_each(|(i, v)| leaves(&format!("{path}.{i}"), v, into)),
        other => into.push((path.to_string(), text_of(other))),
    }
}

fn text_of(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The placeholder for a logic version's id: two versions differ in it by
/// definition.
const VERSION: &str = "<logic-version>";

fn normalised(value: &Value, ids: &[&str]) -> Value {
    match value {
        Value::String(s) => {
            let mut s = s.clone();
            for id in ids {
                s = s.replace(id, VERSION);
                s = s.replace(crate::logic::short(id), VERSION);
            }
            Value::String(s)
        }
        Value::Array(items) => Value::Array(items.iter().map(|v| normalised(v, ids)).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), normalised(v, ids)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// The effects keyed by what they act on (the n-th such effect when one
/// run makes several, e.g. a lease taken and released).
fn keyed(effects: &[Effect], ids: &[&str]) -> BTreeMap<(String, String, usize), Value> {
    let mut keyed = BTreeMap::new();
    let mut seen: BTreeMap<(String, String), usize> = BTreeMap::new();
    for effect in effects {
        let request = normalised(&effect.request, ids);
        let target = label(&identity(effect.call, &request));
        let n = seen
            .entry((effect.call.name().to_string(), target.clone()))
            .or_insert(0);
        keyed.insert((effect.call.name().to_string(), target, *n), request);
        *n += 1;
    }
    keyed
}

/// What an effect acts on, short: its identity's texts and numbers.
fn label(identity: &Value) -> String {
    fn leaves(value: &Value, into: &mut Vec<String>) {
        match value {
            Value::String(s) => into.push(s.clone()),
            Value::Number(n) => into.push(n.to_string()),
            Value::Array(items) => items.iter().for_each(|v| leaves(v, into)),
            Value::Object(map) => map.values().for_each(|v| leaves(v, into)),
            _ => {}
        }
    }
    let mut texts = Vec::new();
    leaves(identity, &mut texts);
    texts.join(" ")
}

fn diff(at: &str, path: &str, before: &Value, after: &Value, into: &mut Vec<Difference>) {
    match (before, after) {
        (Value::Object(b), Value::Object(a)) => {
            let keys: std::collections::BTreeSet<&String> = b.keys().chain(a.keys()).collect();
            for key in keys {
                let path = format!("{path}.{key}");
                match (b.get(key), a.get(key)) {
                    (Some(b), Some(a)) => diff(at, &path, b, a, into),
                    (b, a) => into.push(Difference {
                        effect: at.to_string(),
                        path,
                        before: b.cloned(),
                        after: a.cloned(),
                    }),
                }
            }
        }
        (Value::Array(b), Value::Array(a)) if b.len() == a.len() => {
            for (i, (b, a)) in b.iter().zip(a).enumerate() {
                diff(at, &format!("{path}.{i}"), b, a, into);
            }
        }
        (b, a) if b != a => into.push(Difference {
            effect: at.to_string(),
            path: path.to_string(),
            before: Some(b.clone()),
            after: Some(a.clone()),
        }),
        _ => {}
    }
}

/// How the candidate's run compares with the other version's.
pub fn compare(before: &Run, after: &Run, versions: &[&str], expected: &Expectations) -> Verdict {
    let unanswered: Vec<String> = before
        .unanswered
        .iter()
        .chain(&after.unanswered)
        .cloned()
        .collect();
    if !unanswered.is_empty() {
        return Verdict::NotReplayable(unanswered);
    }
    let outcome = |run: &Run| normalised(&Value::String(run.outcome.clone()), versions);
    if after.failed && (!before.failed || outcome(before) != outcome(after)) {
        return Verdict::Fails(text_of(&outcome(after)));
    }
    let mut differences = Vec::new();
    diff(
        "outcome",
        "outcome",
        &outcome(before),
        &outcome(after),
        &mut differences,
    );
    let (b, a) = (
        keyed(&before.effects, versions),
        keyed(&after.effects, versions),
    );
    let keys: std::collections::BTreeSet<_> = b.keys().chain(a.keys()).collect();
    for key in keys {
        let (call, target, n) = key;
        let at = match n {
            0 => format!("{call}[{target}]"),
            n => format!("{call}[{target}] #{}", n + 1),
        };
        match (b.get(key), a.get(key)) {
            (Some(b), Some(a)) => diff(&at, call, b, a, &mut differences),
            (b, a) => differences.push(Difference {
                effect: at,
                path: call.clone(),
                before: b.cloned(),
                after: a.cloned(),
            }),
        }
    }
    let total = differences.len();
    differences.retain(|d| !expected.accepts(d));
    match differences.is_empty() {
        true => Verdict::Identical { accepted: total },
        false => Verdict::Differs(differences),
    }
}

/// One difference, readable: a multi-line text as the lines that changed.
pub fn show(d: &Difference) -> String {
    // The field below the call (`body`), none for a whole effect.
    let call = d.effect.split('[').next().unwrap_or_default();
    let field = d
        .path
        .strip_prefix(call)
        .and_then(|rest| rest.strip_prefix('.'))
        .map_or(String::new(), |field| format!(" {field}"));
    let head = format!("{}{field}:", d.effect);
    match (&d.before, &d.after) {
        (Some(Value::String(b)), Some(Value::String(a)))
            if b.contains('\n') || a.contains('\n') =>
        {
            let mut text = head;
            for line in line_diff(b, a) {
                text.push_str("\n      ");
                text.push_str(&line);
            }
            text
        }
        (b, a) => {
            let side = |v: &Option<Value>| {
                v.as_ref().map_or("(none)".to_string(), |v| {
                    crate::redact::cut(&v.to_string(), 400)
                })
            };
            format!("{head}\n      - {}\n      + {}", side(b), side(a))
        }
    }
}

/// The lines of `after` that are not in `before` and the other way round,
/// in order (a longest-common-subsequence diff; texts here are comments).
fn line_diff(before: &str, after: &str) -> Vec<String> {
    let b: Vec<&str> = before.lines().collect();
    let a: Vec<&str> = after.lines().collect();
    let mut common = vec![vec![0usize; a.len() + 1]; b.len() + 1];
    for i in (0..b.len()).rev() {
        for j in (0..a.len()).rev() {
            common[i][j] = if b[i] == a[j] {
                common[i + 1][j + 1] + 1
            } else {
                common[i + 1][j].max(common[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut lines) = (0, 0, Vec::new());
    while i < b.len() || j < a.len() {
        if i < b.len() && j < a.len() && b[i] == a[j] {
            i += 1;
            j += 1;
        } else if i < b.len() && (j == a.len() || common[i + 1][j] >= common[i][j + 1]) {
            lines.push(format!("- {}", b[i]));
            i += 1;
        } else {
            lines.push(format!("+ {}", a[j]));
            j += 1;
        }
    }
    lines
}

/// A candidate and the version it is compared with, per recording.
pub struct Replaying<'a> {
    pub engine: &'a Engine,
    pub expected: &'a Expectations,
}

impl Replaying<'_> {
    /// Both runs and the verdict.
    pub async fn verdict(&self, recording: &Recording, before: &Logic, after: &Logic) -> Verdict {
        let ran_before = run(self.engine, before, recording).await;
        let ran_after = run(self.engine, after, recording).await;
        compare(
            &ran_before,
            &ran_after,
            &[&before.id, &after.id, &recording.logic],
            self.expected,
        )
    }
}

/// Verdicts counted, for the summary and the exit status.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    pub identical: usize,
    pub differs: usize,
    pub fails: usize,
    pub not_replayable: usize,
}

impl Tally {
    pub fn add(&mut self, verdict: &Verdict) {
        match verdict {
            Verdict::Identical { .. } => self.identical += 1,
            Verdict::Differs(_) => self.differs += 1,
            Verdict::Fails(_) => self.fails += 1,
            Verdict::NotReplayable(_) => self.not_replayable += 1,
        }
    }

    pub fn total(&self) -> usize {
        self.identical + self.differs + self.fails + self.not_replayable
    }
}

impl std::fmt::Display for Tally {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} messages: {} identical, {} differ, {} fail, {} not replayable",
            self.total(),
            self.identical,
            self.differs,
            self.fails,
            self.not_replayable
        )
    }
}

/// What `--fail-on` gates on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum FailOn {
    /// A difference or a failure.
    Differ,
    /// A failure only.
    Fail,
}

impl FailOn {
    /// Whether the replay should end with a failing exit status. Nothing
    /// replayable at all fails too: a gate that saw nothing passed nothing.
    pub fn fails(self, tally: &Tally) -> bool {
        let replayed = tally.identical + tally.differs + tally.fails;
        replayed == 0 || tally.fails > 0 || (self == Self::Differ && tally.differs > 0)
    }
}

#[cfg(test)]
mod tests;
