//! The baseline corpus (issue 25, step 0): recordings of one message of
//! every kind the tests know, made by `envmgr serve` on both backends and
//! kept in `tests/corpus/{local,aws}/` as the recordings table stores them
//! (format 1: JSON, gzip'd). See tests/corpus/README.md.
//!
//! ```sh
//! cargo test -p envmgr-tests --test corpus            # the checks
//! # Make it again (only with a format note in tests/corpus/README.md):
//! ENVMGR_CORPUS_WRITE=1 cargo test -p envmgr-tests --test corpus -- --ignored --nocapture
//! ```
//!
//! Without `ENVMGR_CORPUS_WRITE=1` the generator writes to
//! `target/test-stacks/corpus-{pid}/` and leaves the corpus alone.
//!
//! Every recording must, at every step of the redesign:
//! - read through the host's reader (`record::store::unpack`, and
//!   `record::files::read` as `logic replay --from` does) and be written
//!   back by its writer (`record::store::pack`) as the same JSON, byte for
//!   byte; and every recorded answer, read as its WIT type, be written
//!   back the same;
//! - replay against the builtin logic as it was recorded: the same outcome
//!   and the same effects (compared as `logic replay` compares two
//!   versions), no call the recording cannot answer, every recorded call
//!   made again as many times; and `logic replay builtin --against builtin
//!   --from DIR --fail-on differ` pass on each backend's recordings.

#[path = "corpus/helpers.rs"]
mod helpers;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use envmgr::calls::tape::{Effect, is_effect};
use envmgr::record::Recording;
use envmgr::record::replay::{Expectations, Run, Verdict};
use envmgr_tests::corpus::{self as generator, KINDS};
use serde_json::Value;

use helpers::{BACKENDS, CORPUS, as_files, files, first_difference, gunzip, kind, recordings};

/// What the generator seeded or the stack holds that no recording may
/// carry: the secrets' values, the dependencies' credentials, a private
/// key in JWK form (a JSON object, or one in a text).
const NEVER_RECORDED: [&str; 7] = [
    generator::DATABASE_URL,
    generator::STRIPE_KEY,
    generator::BLOG_TOKEN,
    envmgr_tests::fakes::runtime::TOKEN,
    envmgr_tests::fakes::segment::WRITE_KEY,
    "\"d\":\"",
    "\\\"d\\\":\\\"",
];

#[test]
fn the_corpus_covers_every_kind_on_both_backends_and_holds_no_secret() {
    let kinds = |backend| -> Vec<String> {
        files(backend)
            .iter()
            .map(|(name, _)| kind(name).to_string())
            .collect()
    };
    assert_eq!(kinds("local"), KINDS, "local");
    assert_eq!(kinds("aws"), KINDS, "aws");
    let all = recordings();
    for (name, recording) in &all {
        let text = serde_json::to_string(recording).unwrap();
        for secret in NEVER_RECORDED {
            assert!(!text.contains(secret), "{name} holds {secret}");
        }
    }
    // Every way a run ends, and every call of the contract the builtin
    // logic makes, on each backend.
    for backend in BACKENDS {
        let mine: Vec<&Recording> = all
            .iter()
            .filter(|(name, _)| name.starts_with(backend))
            .map(|(_, r)| r)
            .collect();
        for ending in [
            "done: ",
            "skipped: ",
            "deferred: ",
            "permanent failure: ",
            "retryable failure: ",
        ] {
            assert!(
                mine.iter().any(|r| r.outcome.starts_with(ending)),
                "{backend}: no `{ending}`"
            );
        }
        for call in envmgr::calls::Call::ALL {
            let seen = mine
                .iter()
                .any(|r| r.taped.calls.iter().any(|c| c.call == call.name()));
            assert_eq!(seen, !NEVER_MADE.contains(&call), "{backend}: {call}");
        }
    }
}

/// Calls no recording of the corpus holds: never on tape (`config.get`,
/// `log`), made only where deliveries raced or a holder died between
/// making a deployment and recording it (tests/flow.rs, in the mock host),
/// or added to the contract (0.3.1: teardown) after the corpus was
/// recorded (tests/teardown.rs covers them; tests/replay.rs replays a
/// sweep's `requests.send`).
const NEVER_MADE: [envmgr::calls::Call; 9] = [
    envmgr::calls::Call::ConfigGet,
    envmgr::calls::Call::Log,
    envmgr::calls::Call::GithubDeleteComment,
    envmgr::calls::Call::GithubFindDeployments,
    envmgr::calls::Call::GithubDeleteDeployment,
    envmgr::calls::Call::GithubListOpenPullRequests,
    envmgr::calls::Call::GithubDeleteEnvironment,
    envmgr::calls::Call::RuntimeDelete,
    envmgr::calls::Call::RequestsSend,
];

/// The JSON in the table, read and written back by the host, is the same
/// JSON, byte for byte; each recorded answer, read as its WIT type and
/// written back, is the same answer.
#[test]
fn every_recording_reads_and_writes_back_byte_for_byte() {
    let mut count = 0;
    for backend in BACKENDS {
        let exported = envmgr::record::files::read(&as_files(backend, "files")).unwrap();
        for (name, packed) in files(backend) {
            let stored = gunzip(&packed);
            let recording = envmgr::record::store::unpack(&packed)
                .unwrap_or_else(|e| panic!("{backend}/{name} does not read: {e:#}"));
            let written = gunzip(&envmgr::record::store::pack(&recording).unwrap());
            assert!(
                written == stored,
                "{backend}/{name} is written back otherwise: {}",
                first_difference(&stored, &written)
            );
            assert!(
                exported.contains(&recording),
                "{backend}/{name} reads otherwise as a file"
            );
            for call in &recording.taped.calls {
                let named = envmgr::calls::Call::named(&call.call)
                    .unwrap_or_else(|| panic!("{backend}/{name}: unknown call {}", call.call));
                // Written back from the typed answer as the tape writes it
                // (no tree built): the recorded text, byte for byte.
                let again = answer_again(named, &call.answer());
                assert_eq!(
                    again.as_deref(),
                    Some(call.answer.get()),
                    "{backend}/{name}: the answer of {} reads back otherwise",
                    call.call
                );
            }
            count += 1;
        }
        assert_eq!(exported.len(), KINDS.len(), "{backend}");
    }
    assert_eq!(count, 2 * KINDS.len());
}

/// The recording as a run: what the logic that handled it did.
fn as_recorded(recording: &Recording) -> Run {
    let effects: Vec<Effect> = recording
        .taped
        .calls
        .iter()
        .filter_map(|c| {
            let call = envmgr::calls::Call::named(&c.call)?;
            is_effect(call).then(|| Effect {
                call,
                request: c.request(),
            })
        })
        .collect();
    let ended_well = ["done: ", "skipped: ", "deferred: "]
        .iter()
        .any(|how| recording.outcome.starts_with(how));
    Run {
        outcome: recording.outcome.clone(),
        failed: !ended_well,
        effects: with_reproducible_keys(recording, effects),
        unanswered: Vec::new(),
    }
}

/// A signing key `serve` made came from the OS's random source; a replay
/// makes the reproducible one of the same environment and request version
/// (`KeyPair::reproducible`) and writes its public half where the recorded
/// run wrote the random one: in the recorded effects, the random public
/// key is replaced by the reproducible one (the only value a replay cannot
/// make again).
fn with_reproducible_keys(recording: &Recording, effects: Vec<Effect>) -> Vec<Effect> {
    let made: Vec<String> = recording
        .taped
        .calls
        .iter()
        .filter(|call| call.call == "keys.generate" && call.answer().get("ok").is_some())
        .map(|call| {
            let request = call.request();
            let field = |name: &str| request[name].as_str().unwrap_or_default().to_string();
            let (environment, version) = (field("environment-id"), field("request-version"));
            envmgr::capabilities::keys::KeyPair::reproducible(&environment, &version)
                .unwrap()
                .public_jwk
        })
        .collect();
    // The random public keys, where the record keeps them (`publicKey`).
    let mut recorded: Vec<String> = Vec::new();
    for effect in &effects {
        public_keys(&effect.request, &mut recorded);
    }
    recorded.dedup();
    // A delivery that stopped before writing its key (deferred) wrote none.
    if recorded.is_empty() {
        return effects;
    }
    assert_eq!(
        recorded.len(),
        made.len(),
        "one public key written per key made: {recorded:?}"
    );
    let replaced: Vec<(String, String)> = recorded.into_iter().zip(made).collect();
    effects
        .into_iter()
        .map(|effect| Effect {
            call: effect.call,
            request: replace_texts(&effect.request, &replaced),
        })
        .collect()
}

fn public_keys(value: &Value, into: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (name, value) in map {
                match value.get("s").and_then(Value::as_str) {
                    Some(key) if name == "publicKey" => into.push(key.to_string()),
                    _ => public_keys(value, into),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| public_keys(v, into)),
        _ => {}
    }
}

fn replace_texts(value: &Value, replaced: &[(String, String)]) -> Value {
    match value {
        Value::String(text) => Value::String(
            replaced
                .iter()
                .fold(text.clone(), |text, (from, to)| text.replace(from, to)),
        ),
        Value::Array(items) => {
            Value::Array(items.iter().map(|v| replace_texts(v, replaced)).collect())
        }
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), replace_texts(v, replaced)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// How many times each call was made: by the recorded run, or by the
/// builtin logic replaying it (a transcript beside the replay).
fn calls_recorded(recording: &Recording) -> BTreeMap<String, usize> {
    let mut counted = BTreeMap::new();
    for call in &recording.taped.calls {
        *counted.entry(call.call.clone()).or_insert(0) += 1;
    }
    counted
}

async fn calls_replayed(
    engine: &Arc<envmgr::Engine>,
    logic: &Arc<envmgr::Logic>,
    recording: &Recording,
) -> BTreeMap<String, usize> {
    use envmgr::calls::{Call, Observer, Transcript};
    let host = envmgr::mock::MockHost::new(
        engine.clone(),
        logic.clone(),
        envmgr::capabilities::config::Config::new(recording.config.clone()),
    );
    let transcript = Transcript::default();
    let mut backends = envmgr::boundary::Backends::clone(host.backends());
    backends.observer = Observer {
        transcript: Some(transcript.clone()),
        replay: Some(Arc::new(envmgr::calls::tape::Replayer::new(
            &recording.taped,
        ))),
        ..Observer::default()
    };
    backends.clock = Some(envmgr::calls::clock::ManualClock::at_ms(
        recording.handled_at_ms,
    ));
    let _ = engine
        .run_as(
            logic,
            &recording.logic,
            Arc::new(backends),
            &recording.message.message(),
        )
        .await;
    let mut counted = BTreeMap::new();
    for entry in transcript.take() {
        if !matches!(entry.call, Call::ConfigGet | Call::Log) {
            *counted.entry(entry.call.name().to_string()).or_insert(0) += 1;
        }
    }
    counted
}

/// Recordings whose message the logic now handles otherwise, on purpose:
/// teardown (contract 0.3.1) deletes the preview of a closed pull request
/// (its calls are not on the recording), and reads a push, asking whether
/// it deleted its branch (its skip says so). Each must differ
/// ([`teardown_changed_exactly_the_messages_it_handles`]).
const CHANGED_ON_PURPOSE: [&str; 2] = ["14-pr-closed", "16-event-push"];

fn changed_on_purpose(name: &str) -> bool {
    CHANGED_ON_PURPOSE.iter().any(|kind| name.contains(kind))
}

/// What `logic` did with each recording that it did not do when it was
/// recorded: another outcome or effect, a call the recording cannot
/// answer, a recorded call made another number of times. The recordings
/// changed on purpose are left out.
async fn not_as_recorded(engine: &Arc<envmgr::Engine>, logic: &Arc<envmgr::Logic>) -> Vec<String> {
    not_as_recorded_of(engine, logic, |name| !changed_on_purpose(name)).await
}

async fn not_as_recorded_of(
    engine: &Arc<envmgr::Engine>,
    logic: &Arc<envmgr::Logic>,
    which: impl Fn(&str) -> bool,
) -> Vec<String> {
    let mut found = Vec::new();
    for (name, recording) in recordings().into_iter().filter(|(name, _)| which(name)) {
        let ran = envmgr::record::replay::run(engine, logic, &recording).await;
        let verdict = envmgr::record::replay::compare(
            &as_recorded(&recording),
            &ran,
            &[&logic.id, &recording.logic],
            &Expectations::default(),
        );
        if verdict != (Verdict::Identical { accepted: 0 }) {
            found.push(format!("{name}: {}", verdict.explained()));
            continue;
        }
        let (recorded, replayed) = (
            calls_recorded(&recording),
            calls_replayed(engine, logic, &recording).await,
        );
        if recorded != replayed {
            found.push(format!(
                "{name}: other calls: recorded {recorded:?}, replayed {replayed:?}"
            ));
        }
    }
    found
}

/// The recordings changed on purpose differ, and the way they should: the
/// closed pull request's teardown calls the recording never made, the
/// push's skip saying what a push now does.
#[tokio::test]
async fn teardown_changed_exactly_the_messages_it_handles() {
    let (engine, builtin) = envmgr_tests::shared_logic();
    let found = not_as_recorded_of(&engine, &builtin, changed_on_purpose).await;
    assert_eq!(found.len(), 2 * CHANGED_ON_PURPOSE.len(), "{found:#?}");
    for line in &found {
        let closed = line.contains("pr-closed") && line.contains("not replayable");
        let push = line.contains("event-push") && line.contains("deploys nothing");
        assert!(closed || push, "{line}");
    }
}

#[tokio::test]
async fn every_recording_replays_identically_against_the_builtin_logic() {
    let (engine, builtin) = envmgr_tests::shared_logic();
    let found = not_as_recorded(&engine, &builtin).await;
    assert!(found.is_empty(), "{}", found.join("\n"));
}

/// Every step of the redesign builds another builtin logic, of another
/// id: the same behaviour under another id replays identically too (the
/// id it was recorded under is normalised away, as `logic replay` does).
#[tokio::test]
async fn the_same_logic_under_another_id_replays_identically_too() {
    let (engine, builtin) = envmgr_tests::shared_logic();
    let other = envmgr_tests::variant(envmgr::BUILTIN_LOGIC, "corpus");
    let other = Arc::new(engine.load(&other).unwrap());
    assert_ne!(other.id, builtin.id);
    let found = not_as_recorded(&engine, &other).await;
    assert!(found.is_empty(), "{}", found.join("\n"));
}

/// The checks can fail: the builtin logic with another comment heading
/// (REWORDED_LOGIC) does not replay as recorded wherever a pull request's
/// comment was written (or, its text found outdated, would be now), in the
/// comment and the digest kept of it only; a message about no pull request
/// replays identically.
#[tokio::test]
async fn a_logic_that_words_its_comment_otherwise_is_found_where_it_comments() {
    let (engine, _) = envmgr_tests::shared_logic();
    let reworded = Arc::new(engine.load(envmgr_tests::REWORDED_LOGIC).unwrap());
    let found = not_as_recorded(&engine, &reworded).await;
    let shown = found.join("\n");
    let differing: Vec<&str> = found
        .iter()
        .map(|f| f.split_once(": ").unwrap().0)
        .collect();
    for (name, recording) in recordings() {
        let commented = recording
            .taped
            .calls
            .iter()
            .any(|c| c.call == "github.create-comment" || c.call == "github.update-comment");
        let about_no_pull_request = ["api-production", "body-", "event-push", "api-unknown"]
            .iter()
            .any(|kind| name.contains(kind));
        if commented {
            assert!(differing.contains(&name.as_str()), "{name}: {shown}");
        }
        if about_no_pull_request && !changed_on_purpose(&name) {
            assert!(!differing.contains(&name.as_str()), "{name}: {shown}");
        }
    }
    for line in shown
        .lines()
        .filter(|l| l.starts_with("    ") && !l.starts_with("      "))
    {
        assert!(
            line.contains("-comment") || line.contains("commentDigest"),
            "{line}"
        );
    }
}

/// `envmgr logic replay builtin --against builtin --from DIR --fail-on
/// differ`, as the CLI runs it.
#[tokio::test]
async fn the_cli_replay_of_each_backends_directory_passes() {
    let settings = envmgr::config::Settings::load(None, Vec::new()).unwrap();
    for backend in BACKENDS {
        let dir = as_files(backend, "cli");
        let request = envmgr::record::commands::ReplayRequest {
            candidate: "builtin",
            against: Some("builtin"),
            selection: envmgr::record::store::Selection::Last(usize::MAX),
            from: Some(&dir),
            expected: None,
            fail_on: Some(envmgr::record::replay::FailOn::Differ),
        };
        let tally = envmgr::record::commands::replay(&settings, None, &request)
            .await
            .unwrap();
        // Both runs are today's logic, so the push's new words agree; the
        // closed pull request's teardown makes calls its recording cannot
        // answer: not replayable.
        assert_eq!(
            (tally.identical, tally.total()),
            (KINDS.len() - 1, KINDS.len()),
            "{backend}: {tally}"
        );
    }
}

/// A recorded answer read as the call's WIT result and written back, as
/// the host reads it for a replay and writes it when recording.
fn answer_again(call: envmgr::calls::Call, answer: &Value) -> Option<String> {
    use envmgr::bindings::envmgr::environments::github::{
        Comment, Deployment, DeploymentStatus, PullRequest,
    };
    use envmgr::bindings::json::Ciphertext;
    use envmgr::bindings::json::Recordable;
    use envmgr::calls::Call::*;
    use envmgr::calls::tape::{answer as recorded, answered};
    use envmgr::capabilities::Error;
    use envmgr::capabilities::dynamodb::{AttributeValue, Page, WriteError};
    use envmgr::capabilities::runtime::Created;
    use envmgr::redact::Secret;
    fn again<T: Recordable, E: Recordable>(answer: &Value) -> Option<String> {
        answered::<T, E>(answer).map(|result| recorded(&result).get().to_string())
    }
    match call {
        GithubAuthenticate
        | GithubDeleteComment
        | GithubDeleteDeployment
        | GithubDeleteEnvironment
        | AnalyticsTrack => again::<(), Error>(answer),
        GithubListOpenPullRequests => again::<Vec<PullRequest>, Error>(answer),
        RuntimeDelete => again::<Vec<String>, Error>(answer),
        GithubListComments => again::<Vec<Comment>, Error>(answer),
        GithubCreateComment | GithubUpdateComment => again::<Comment, Error>(answer),
        GithubCreateInstallationToken | KmsDecrypt => again::<Secret, Error>(answer),
        GithubFindDeployments => again::<Vec<Deployment>, Error>(answer),
        GithubCreateDeployment => again::<Deployment, Error>(answer),
        GithubListDeploymentStatuses => again::<Vec<DeploymentStatus>, Error>(answer),
        GithubCreateDeploymentStatus => again::<DeploymentStatus, Error>(answer),
        DynamodbGet => again::<Option<Vec<(String, AttributeValue)>>, Error>(answer),
        DynamodbQuery => again::<Page, Error>(answer),
        DynamodbTransactWrite | DynamodbUpdate => again::<(), WriteError>(answer),
        KeysGenerate => again::<Ciphertext, Error>(answer),
        // The claims, and a sent request's message id, as text.
        KeysVerifyReport | RequestsSend => again::<String, Error>(answer),
        RuntimeCreate => again::<Created, Error>(answer),
        // Never on tape.
        ConfigGet | Log => None,
    }
}

/// Make the corpus again (tests/corpus/README.md): both backends, through
/// the binary built from this tree.
#[tokio::test(flavor = "multi_thread")]
#[ignore = "makes the corpus; run by hand"]
async fn generate() {
    let into = match std::env::var("ENVMGR_CORPUS_WRITE").as_deref() {
        Ok("1") => PathBuf::from(CORPUS),
        _ => envmgr_tests::scratch("corpus"),
    };
    let binary = env!("CARGO_BIN_EXE_envmgr-under-test");
    for (backend, name) in [
        (envmgr_tests::stack::Backend::Local, "local"),
        (envmgr_tests::stack::Backend::Aws, "aws"),
    ] {
        let made = generator::generate(backend, binary).await;
        let dir = into.join(name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut total = 0;
        for (file, packed) in &made.files {
            let json = gunzip(packed);
            let text = String::from_utf8_lossy(&json);
            for secret in NEVER_RECORDED
                .iter()
                .copied()
                .chain(made.never_recorded.iter().map(String::as_str))
            {
                assert!(!text.contains(secret), "{name}/{file} holds a secret");
            }
            total += packed.len();
            std::fs::write(dir.join(file), packed).unwrap();
        }
        println!(
            "{}: {} recordings, {total} bytes",
            dir.display(),
            made.files.len()
        );
    }
}
