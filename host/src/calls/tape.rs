//! One message's calls on tape, and the same tape answering them again.
//!
//! Recording: every capability call the guest makes, with its request and
//! the answer it got (after redaction: what the guest saw), every read of
//! the wall clock and every random byte drawn.
//!
//! Replaying: a call is answered from the tape by its function and its
//! canonical request (the typed request as JSON, whose objects are
//! key-sorted), never by position, so a candidate may make its calls in
//! another order. An effect (a write, a comment, a deployment, a runtime, an
//! event) whose request changed is answered by the recorded call with the
//! same identity (the same item keys, the same comment or deployment),
//! since that is the candidate doing the same thing differently; what it
//! sent is kept for the comparison. A read the recording made more than
//! once (before and after a write) is answered as it was between the same
//! effects as the run has made so far. A call with no such answer makes the
//! run "not replayable" and fails in the guest as `unavailable`, never as a
//! silent not-found. The clock answers its recorded reads in order (then
//! the last again); random bytes likewise (then a fixed sequence).

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{Value, json};

use crate::calls::Call;

mod recorded;
pub use recorded::{RecordedCall, answer, text, tree};

/// At most this many random bytes are kept per message: a guest drawing
/// more replays the rest from a fixed sequence.
const MAX_RANDOM_BYTES: usize = 4_096;
/// A message's tape is bounded: past this many calls or clock reads (a
/// guest polling in a loop) it stops taking more, and the recording is
/// dropped rather than kept incomplete (it could not replay). The builtin
/// logic makes about 20 calls and a handful of clock reads a message.
const MAX_CALLS: usize = 1_000;
const MAX_CLOCK_READS: usize = 10_000;

/// What a tape holds.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Taped {
    /// In the order the calls ended.
    pub calls: Vec<RecordedCall>,
    /// Every wall-clock read, milliseconds since the Unix epoch.
    pub clock: Vec<u64>,
    /// The random bytes drawn, hex.
    #[serde(default)]
    pub random: String,
    /// More calls or clock reads than a tape keeps: not a whole recording.
    #[serde(skip)]
    pub overflowed: bool,
}

/// The tape of one message being handled.
#[derive(Clone, Default)]
pub struct Tape(Arc<Mutex<Taped>>);

impl Tape {
    /// A call ended: its request, and its answer as [`answer`] wrote it.
    pub fn call(&self, call: Call, request: Box<RawValue>, answer: Box<RawValue>) {
        let mut taped = lock(&self.0);
        if taped.calls.len() >= MAX_CALLS {
            taped.overflowed = true;
            return;
        }
        taped.calls.push(RecordedCall {
            call: call.name().to_string(),
            request,
            answer,
        });
    }

    /// [`Tape::call`] with the answer as a tree.
    #[cfg(test)]
    pub fn call_json(&self, call: Call, request: Value, answer: Value) {
        self.call(call, recorded::text(&request), recorded::text(&answer));
    }

    fn clock_read(&self, ms: u64) {
        let mut taped = lock(&self.0);
        if taped.clock.len() >= MAX_CLOCK_READS {
            taped.overflowed = true;
            return;
        }
        taped.clock.push(ms);
    }

    fn random_drawn(&self, bytes: &[u8]) {
        let mut taped = lock(&self.0);
        let room = (MAX_RANDOM_BYTES * 2).saturating_sub(taped.random.len()) / 2;
        let kept = &bytes[..bytes.len().min(room)];
        taped.random.push_str(&hex::encode(kept));
    }

    /// What was recorded so far.
    pub fn taken(&self) -> Taped {
        std::mem::take(&mut *lock(&self.0))
    }
}

/// The tape's answer as the result it was.
pub fn answered<T: crate::bindings::json::Recordable, E: crate::bindings::json::Recordable>(
    answer: &Value,
) -> Option<Result<T, E>> {
    if let Some(ok) = answer.get("ok") {
        return T::replayed(ok).map(Ok);
    }
    E::replayed(answer.get("err")?).map(Err)
}

/// Calls that change something outside the guest. Everything else only
/// reads, and is answered for exactly the request recorded.
pub fn is_effect(call: Call) -> bool {
    matches!(
        call,
        Call::GithubCreateComment
            | Call::GithubUpdateComment
            | Call::GithubDeleteComment
            | Call::GithubCreateInstallationToken
            | Call::GithubCreateDeployment
            | Call::GithubCreateDeploymentStatus
            | Call::GithubDeleteDeployment
            | Call::GithubDeleteEnvironment
            | Call::DynamodbTransactWrite
            | Call::DynamodbUpdate
            | Call::KeysGenerate
            | Call::AnalyticsTrack
            | Call::RuntimeCreate
            | Call::RuntimeDelete
            | Call::RequestsSend
    )
}

/// Effects a later read can see (a record, a comment, a deployment, a
/// runtime): the ones that move a replay's frontier. A token minted, an
/// event tracked or a key generated changes nothing the logic reads back.
fn seen_by_reads(call: Call) -> bool {
    is_effect(call)
        && !matches!(
            call,
            Call::GithubCreateInstallationToken
                | Call::AnalyticsTrack
                | Call::KeysGenerate
                | Call::RequestsSend
        )
}

/// What an effect acts on: two requests with the same identity are the
/// same effect, perhaps made differently.
pub fn identity(call: Call, request: &Value) -> Value {
    let pick = |fields: &[&str]| {
        Value::Object(
            fields
                .iter()
                .filter_map(|f| request.get(*f).map(|v| (f.to_string(), v.clone())))
                .collect(),
        )
    };
    match call {
        Call::GithubCreateComment => pick(&["installation-id", "repo", "issue-number"]),
        Call::GithubUpdateComment | Call::GithubDeleteComment => pick(&["repo", "comment-id"]),
        Call::GithubCreateInstallationToken => pick(&["installation-id", "repo"]),
        Call::GithubCreateDeployment => {
            let deployment = request.get("deployment").cloned().unwrap_or_default();
            json!({
                "repo": request.get("repo"),
                "sha": deployment.get("sha"),
                "environment": deployment.get("environment"),
            })
        }
        Call::GithubCreateDeploymentStatus | Call::GithubDeleteDeployment => {
            pick(&["repo", "deployment-id"])
        }
        Call::DynamodbTransactWrite => {
            let keys: Vec<Value> = request
                .get("writes")
                .and_then(Value::as_array)
                .map(|writes| writes.iter().map(write_target).collect())
                .unwrap_or_default();
            Value::Array(keys)
        }
        Call::DynamodbUpdate => pick(&["table", "key"]),
        Call::KeysGenerate => pick(&["app-id", "environment-id"]),
        Call::AnalyticsTrack => pick(&["event"]),
        Call::RuntimeCreate | Call::RuntimeDelete => pick(&["environment-id"]),
        Call::GithubDeleteEnvironment => pick(&["repo", "name"]),
        _ => request.clone(),
    }
}

/// The table and key one write of a transaction acts on.
fn write_target(write: &Value) -> Value {
    let Some((_, body)) = write.as_object().and_then(|w| w.iter().next()) else {
        return Value::Null;
    };
    let key = body.get("key").cloned().unwrap_or_else(|| {
        let item = body.get("item").cloned().unwrap_or_default();
        json!({ "pk": item.get("pk"), "sk": item.get("sk") })
    });
    json!({ "table": body.get("table"), "key": key })
}

/// An effect a replayed run asked for: what is compared between versions.
#[derive(Clone, Debug, PartialEq)]
pub struct Effect {
    pub call: Call,
    pub request: Value,
}

struct Answering {
    used: Vec<bool>,
    /// Just past the newest recorded effect answered so far: where in the
    /// recording the run has got to, as far as the world outside knows.
    frontier: usize,
    clock_read: usize,
    random_read: usize,
    effects: Vec<Effect>,
    unanswered: Vec<String>,
}

/// A recorded call as the replay compares it.
struct Replayed {
    request: Value,
    answer: Value,
}

/// A recording answering a run's calls.
pub struct Replayer {
    calls: Vec<(Option<Call>, Replayed)>,
    clock: Vec<u64>,
    random: Vec<u8>,
    state: Mutex<Answering>,
}

impl Replayer {
    pub fn new(taped: &Taped) -> Self {
        let calls: Vec<_> = taped
            .calls
            .iter()
            .map(|c| {
                let replayed = Replayed {
                    request: c.request(),
                    answer: c.answer(),
                };
                (Call::named(&c.call), replayed)
            })
            .collect();
        Self {
            state: Mutex::new(Answering {
                used: vec![false; calls.len()],
                frontier: 0,
                clock_read: 0,
                random_read: 0,
                effects: Vec::new(),
                unanswered: Vec::new(),
            }),
            calls,
            clock: taped.clock.clone(),
            random: hex::decode(&taped.random).unwrap_or_default(),
        }
    }

    /// The recorded answer for this call, or none (the run is then not
    /// replayable).
    pub fn answer(&self, call: Call, request: &Value) -> Option<Value> {
        let mut state = lock(&self.state);
        let effect = is_effect(call);
        if effect {
            state.effects.push(Effect {
                call,
                request: request.clone(),
            });
        }
        let same = |(c, recorded): &(Option<Call>, Replayed)| {
            *c == Some(call) && recorded.request == *request
        };
        let unused = |i: &usize| !state.used[*i];
        let indices = || 0..self.calls.len();
        let found = match effect {
            true => indices()
                .filter(unused)
                .find(|i| same(&self.calls[*i]))
                .or_else(|| {
                    // The same effect made differently (another text,
                    // another attribute): answered as it was then.
                    let wanted = identity(call, request);
                    indices().filter(unused).find(|i| {
                        let (c, recorded) = &self.calls[*i];
                        *c == Some(call) && identity(call, &recorded.request) == wanted
                    })
                }),
            false => {
                let reads: Vec<usize> = indices().filter(|i| same(&self.calls[*i])).collect();
                self.read_at(&state, &reads)
            }
        };
        match found {
            Some(i) => {
                state.used[i] = true;
                if seen_by_reads(call) {
                    state.frontier = state.frontier.max(i + 1);
                }
                let mut answer = self.calls[i].1.answer.clone();
                // A comment is answered with the text it was given.
                if matches!(call, Call::GithubCreateComment | Call::GithubUpdateComment)
                    && let (Some(ok), Some(body)) = (answer.get_mut("ok"), request.get("body"))
                {
                    ok["body"] = body.clone();
                }
                Some(answer)
            }
            None => match self.echoed(call, request) {
                Some(answer) => Some(answer),
                None => {
                    state.unanswered.push(format!(
                        "{call} {}",
                        crate::redact::cut(&request.to_string(), 300)
                    ));
                    None
                }
            },
        }
    }

    /// Which of the recorded reads identical to this one answers it: the
    /// one made between the same effects as the run has made so far, so a
    /// read after a write sees what the recording saw after that write and
    /// a read before it what was there before. In order: the first unused
    /// read since the run's last effect and before the recording's next
    /// one; asked again there, the same answer again; else the newest read
    /// before (the state the run's effects have brought about); else the
    /// first one after.
    fn read_at(&self, state: &Answering, reads: &[usize]) -> Option<usize> {
        let from = state.frontier;
        let until = (from..self.calls.len())
            .find(|i| !state.used[*i] && self.calls[*i].0.is_some_and(seen_by_reads))
            .unwrap_or(self.calls.len());
        let between = || reads.iter().copied().filter(|i| (from..until).contains(i));
        between()
            .find(|i| !state.used[*i])
            .or_else(|| between().next_back())
            .or_else(|| reads.iter().copied().rfind(|i| *i < from))
            .or_else(|| reads.iter().copied().find(|i| !state.used[*i]))
            .or_else(|| reads.first().copied())
    }

    /// An update of a comment the recording knows, which the recorded run
    /// did not make: GitHub answers it with the comment and the new text
    /// (a candidate that rewrites a comment updates it where the recorded
    /// version, its text unchanged, did not). The comment is known from an
    /// answer that held it, or from its link kept in an item.
    fn echoed(&self, call: Call, request: &Value) -> Option<Value> {
        if call != Call::GithubUpdateComment {
            return None;
        }
        let id = request.get("comment-id")?;
        let anchor = format!("#issuecomment-{id}");
        let html_url = self.calls.iter().find_map(|(_, recorded)| {
            find_text(recorded.answer.get("ok")?, &|text| text.ends_with(&anchor))
        })?;
        Some(json!({
            "ok": { "id": id, "body": request.get("body")?, "html-url": html_url }
        }))
    }

    /// A call the recording could not answer, for another reason (its
    /// answer was not of the call's type).
    pub fn unanswerable(&self, call: Call, why: &str) {
        lock(&self.state).unanswered.push(format!("{call}: {why}"));
    }

    /// The effects asked for so far, and the calls no recording answered.
    pub fn finish(&self) -> (Vec<Effect>, Vec<String>) {
        let mut state = lock(&self.state);
        (
            std::mem::take(&mut state.effects),
            std::mem::take(&mut state.unanswered),
        )
    }

    fn next_clock(&self) -> Option<u64> {
        let mut state = lock(&self.state);
        let at = state.clock_read;
        state.clock_read += 1;
        self.clock.get(at).or(self.clock.last()).copied()
    }

    fn next_random(&self, into: &mut [u8]) {
        let mut state = lock(&self.state);
        for byte in into.iter_mut() {
            *byte = self
                .random
                .get(state.random_read)
                .copied()
                .unwrap_or((state.random_read % 251) as u8);
            state.random_read += 1;
        }
    }
}

/// The first text in `value` (at any depth) that `wanted` accepts.
fn find_text(value: &Value, wanted: &dyn Fn(&str) -> bool) -> Option<String> {
    match value {
        Value::String(text) if wanted(text) => Some(text.clone()),
        Value::Array(items) => items.iter().find_map(|v| find_text(v, wanted)),
        Value::Object(map) => map.values().find_map(|v| find_text(v, wanted)),
        _ => None,
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A wall clock whose reads go on tape.
pub struct TapedClock<C> {
    pub inner: C,
    pub tape: Tape,
}

impl<C: wasmtime_wasi::HostWallClock> wasmtime_wasi::HostWallClock for TapedClock<C> {
    fn resolution(&self) -> Duration {
        self.inner.resolution()
    }

    fn now(&self) -> Duration {
        let now = self.inner.now();
        self.tape.clock_read(millis(now));
        now
    }
}

/// The system's wall clock (what WASI gives by default).
pub struct SystemClock;

impl wasmtime_wasi::HostWallClock for SystemClock {
    fn resolution(&self) -> Duration {
        Duration::from_nanos(1)
    }

    fn now(&self) -> Duration {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
    }
}

/// The recorded clock, read again in order.
pub struct ReplayedClock {
    pub replayer: Arc<Replayer>,
    pub otherwise_ms: u64,
}

impl wasmtime_wasi::HostWallClock for ReplayedClock {
    fn resolution(&self) -> Duration {
        Duration::from_millis(1)
    }

    fn now(&self) -> Duration {
        Duration::from_millis(self.replayer.next_clock().unwrap_or(self.otherwise_ms))
    }
}

/// OS randomness whose bytes go on tape.
pub struct TapedRandom(pub Tape);

impl rand_core::TryRng for TapedRandom {
    type Error = std::convert::Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        let mut bytes = [0; 4];
        self.try_fill_bytes(&mut bytes)?;
        Ok(u32::from_le_bytes(bytes))
    }

    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        let mut bytes = [0; 8];
        self.try_fill_bytes(&mut bytes)?;
        Ok(u64::from_le_bytes(bytes))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        // The OS never fails this on Linux; if it did, zeros are still
        // recorded as what the guest got.
        let _ = getrandom::fill(dst);
        self.0.random_drawn(dst);
        Ok(())
    }
}

/// The recorded random bytes, drawn again in order.
pub struct ReplayedRandom(pub Arc<Replayer>);

impl rand_core::TryRng for ReplayedRandom {
    type Error = std::convert::Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        let mut bytes = [0; 4];
        self.0.next_random(&mut bytes);
        Ok(u32::from_le_bytes(bytes))
    }

    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        let mut bytes = [0; 8];
        self.0.next_random(&mut bytes);
        Ok(u64::from_le_bytes(bytes))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        self.0.next_random(dst);
        Ok(())
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests;
