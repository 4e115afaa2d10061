//! The tape: what it records of a message's calls, and answering a replay from it.

use super::*;

fn tape() -> Taped {
    let tape = Tape::default();
    tape.call_json(
        Call::DynamodbGet,
        json!({"table": "apps", "key": {"pk": {"s": "APP#1"}}}),
        json!({"ok": null}),
    );
    tape.call_json(
        Call::GithubCreateComment,
        json!({"installation-id": 1, "repo": {"owner": "a", "name": "b"}, "issue-number": 7, "body": "old"}),
        json!({"ok": {"id": 9, "body": "old", "html-url": "u"}}),
    );
    tape.taken()
}

#[test]
fn calls_are_answered_by_request_not_position_and_effects_by_identity() {
    let replayer = Replayer::new(&tape());
    let comment = json!({"installation-id": 1, "repo": {"owner": "a", "name": "b"}, "issue-number": 7, "body": "new"});
    let answered = replayer
        .answer(Call::GithubCreateComment, &comment)
        .unwrap();
    assert_eq!(answered["ok"]["id"], 9);
    assert_eq!(answered["ok"]["body"], "new");
    let read = json!({"table": "apps", "key": {"pk": {"s": "APP#1"}}});
    assert_eq!(
        replayer.answer(Call::DynamodbGet, &read),
        Some(json!({"ok": null}))
    );
    // Asked again: the same answer.
    assert_eq!(
        replayer.answer(Call::DynamodbGet, &read),
        Some(json!({"ok": null}))
    );
    let other = json!({"table": "apps", "key": {"pk": {"s": "APP#2"}}});
    assert_eq!(replayer.answer(Call::DynamodbGet, &other), None);
    // A second comment on the same issue was never made.
    assert_eq!(replayer.answer(Call::GithubCreateComment, &comment), None);
    let (effects, unanswered) = replayer.finish();
    assert_eq!(effects.len(), 2);
    assert_eq!(unanswered.len(), 2, "{unanswered:?}");
}

/// A read before a write and the same read after it: each answered as
/// the recording saw it at that point, whatever else the run did first.
#[test]
fn a_read_is_answered_as_it_was_between_the_same_effects() {
    let key = json!({"table": "envs", "key": {"pk": {"s": "ENV#1"}}});
    let write = json!({"table": "envs", "item": {"pk": {"s": "ENV#1"}}});
    let tape = Tape::default();
    tape.call_json(Call::DynamodbGet, key.clone(), json!({"ok": null}));
    tape.call_json(Call::DynamodbUpdate, write.clone(), json!({"ok": null}));
    // An event no read can see: a run that leaves it out still reads
    // what the write left.
    tape.call_json(
        Call::AnalyticsTrack,
        json!({"event": "e"}),
        json!({"ok": null}),
    );
    tape.call_json(
        Call::DynamodbGet,
        key.clone(),
        json!({"ok": {"pk": {"s": "ENV#1"}}}),
    );
    let taped = tape.taken();
    let after = json!({"ok": {"pk": {"s": "ENV#1"}}});

    // The recorded order.
    let replayer = Replayer::new(&taped);
    assert_eq!(
        replayer.answer(Call::DynamodbGet, &key),
        Some(json!({"ok": null}))
    );
    assert!(replayer.answer(Call::DynamodbUpdate, &write).is_some());
    assert_eq!(
        replayer.answer(Call::DynamodbGet, &key),
        Some(after.clone())
    );

    // The event first, then the read: still before the write.
    let replayer = Replayer::new(&taped);
    assert!(
        replayer
            .answer(Call::AnalyticsTrack, &json!({"event": "e"}))
            .is_some()
    );
    assert_eq!(
        replayer.answer(Call::DynamodbGet, &key),
        Some(json!({"ok": null}))
    );

    // Read twice before writing: nothing there, both times.
    let replayer = Replayer::new(&taped);
    assert_eq!(
        replayer.answer(Call::DynamodbGet, &key),
        Some(json!({"ok": null}))
    );
    assert_eq!(
        replayer.answer(Call::DynamodbGet, &key),
        Some(json!({"ok": null}))
    );

    // Written without reading first: the read after sees the write.
    let replayer = Replayer::new(&taped);
    assert!(replayer.answer(Call::DynamodbUpdate, &write).is_some());
    assert_eq!(
        replayer.answer(Call::DynamodbGet, &key),
        Some(after.clone())
    );
    assert_eq!(replayer.answer(Call::DynamodbGet, &key), Some(after));
    assert!(replayer.finish().1.is_empty());
}

#[test]
fn a_tape_stops_at_its_bounds_and_says_so() {
    let tape = Tape::default();
    for _ in 0..MAX_CALLS {
        tape.call_json(Call::DynamodbGet, json!({}), json!({"ok": null}));
    }
    for ms in 0..MAX_CLOCK_READS as u64 {
        tape.clock_read(ms);
    }
    let whole = tape.taken();
    assert!(!whole.overflowed);
    assert_eq!(whole.calls.len(), MAX_CALLS);

    let tape = Tape::default();
    for ms in 0..=MAX_CLOCK_READS as u64 {
        tape.clock_read(ms);
    }
    let taped = tape.taken();
    assert!(taped.overflowed);
    assert_eq!(taped.clock.len(), MAX_CLOCK_READS);

    let tape = Tape::default();
    for _ in 0..=MAX_CALLS {
        tape.call_json(Call::DynamodbGet, json!({}), json!({"ok": null}));
    }
    assert!(tape.taken().overflowed);
}
