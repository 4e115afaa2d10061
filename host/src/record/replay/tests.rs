//! Replays and their verdicts.

use super::*;
use crate::calls::Call;
use serde_json::json;

fn run_with(outcome: &str, body: &str) -> Run {
    Run {
        outcome: outcome.to_string(),
        failed: false,
        effects: vec![Effect {
            call: Call::GithubCreateComment,
            request: json!({"repo": {"owner": "acme", "name": "shop"}, "issue-number": 7, "installation-id": 1, "body": body}),
        }],
        unanswered: Vec::new(),
    }
}

#[test]
fn a_changed_comment_differs_in_the_comment_only_unless_expected() {
    let before = run_with(
        "done: v=aaaaaaaaaaaa1",
        "<!-- m -->\nPreview ready\nlogic aaaaaaaaaaaa1",
    );
    let after = run_with(
        "done: v=bbbbbbbbbbbb2",
        "<!-- m -->\nYour preview is ready\nlogic bbbbbbbbbbbb2",
    );
    let ids = ["aaaaaaaaaaaa1", "bbbbbbbbbbbb2"];
    let verdict = compare(&before, &after, &ids, &Expectations::default());
    let Verdict::Differs(differences) = &verdict else {
        panic!("{verdict:?}");
    };
    assert_eq!(differences.len(), 1, "{differences:?}");
    assert_eq!(differences[0].path, "github.create-comment.body");
    let shown = verdict.explained();
    assert!(
        shown.contains("- Preview ready") && shown.contains("+ Your preview is ready"),
        "{shown}"
    );
    assert!(
        !shown.contains("logic"),
        "the version is normalised away: {shown}"
    );

    let expected = Expectations::parse(
        "[[change]]\npath = \"github.create-comment.body\"\npattern = \"Your preview\"\n",
    )
    .unwrap();
    assert_eq!(
        compare(&before, &after, &ids, &expected),
        Verdict::Identical { accepted: 1 }
    );
    let elsewhere =
        Expectations::parse("[[change]]\npath = \"github.*.title\"\npattern = \".*\"\n").unwrap();
    assert!(matches!(
        compare(&before, &after, &ids, &elsewhere),
        Verdict::Differs(_)
    ));
}

/// An effect one run made and the other not is accepted only when the
/// rules cover all of it but what it acts on.
#[test]
fn a_whole_effect_is_accepted_only_when_every_field_is_expected() {
    let recorded = run_with("done: x", "text");
    let update = Effect {
        call: Call::GithubUpdateComment,
        request: json!({"repo": {"owner": "acme", "name": "shop"}, "comment-id": 9, "body": "Your preview"}),
    };
    let write = Effect {
        call: Call::DynamodbUpdate,
        request: json!({"table": "environments", "key": {"pk": {"s": "ENVIRONMENT#e"}, "sk": {"s": "LEASE"}},
            "set": {"commentDigest": {"s": "d2"}, "runtimeId": {"s": "r-1"}}}),
    };
    let rules = Expectations::parse(
        "[[change]]\npath = \"github.*-comment.body\"\npattern = \"Your preview\"\n\n\
         [[change]]\npath = \"dynamodb.**.commentDigest.s\"\npattern = \".*\"\n",
    )
    .unwrap();

    // An update of the comment, its text as expected: accepted.
    let mut updated = recorded.clone();
    updated.effects.push(update.clone());
    assert_eq!(
        compare(&recorded, &updated, &[], &rules),
        Verdict::Identical { accepted: 1 }
    );
    // A delete, every field of it what it acts on: accepted when a
    // rule names it, not otherwise.
    let mut deleted = recorded.clone();
    deleted.effects.push(Effect {
        call: Call::GithubDeleteComment,
        request: json!({"installation-id": 1, "repo": {"owner": "acme", "name": "shop"}, "comment-id": 9}),
    });
    assert!(matches!(
        compare(&recorded, &deleted, &[], &rules),
        Verdict::Differs(_)
    ));
    let deletes =
        Expectations::parse("[[change]]\npath = \"github.delete-comment.**\"\npattern = \".*\"\n")
            .unwrap();
    assert_eq!(
        compare(&recorded, &deleted, &[], &deletes),
        Verdict::Identical { accepted: 1 }
    );
    // Its text not as expected: a difference.
    let mut otherwise = recorded.clone();
    otherwise.effects.push(Effect {
        request: json!({"repo": {"owner": "acme", "name": "shop"}, "comment-id": 9, "body": "Gone"}),
        ..update
    });
    assert!(matches!(
        compare(&recorded, &otherwise, &[], &rules),
        Verdict::Differs(_)
    ));
    // A write dropped, one of whose fields a rule names: a difference.
    let mut wrote = recorded.clone();
    wrote.effects.push(write);
    assert!(matches!(
        compare(&wrote, &recorded, &[], &rules),
        Verdict::Differs(_)
    ));
}

#[test]
fn a_failing_candidate_fails_and_an_unanswered_call_is_not_replayable() {
    let before = run_with("done: x", "b");
    let mut after = run_with("permanent failure: boom", "b");
    after.failed = true;
    assert_eq!(
        compare(&before, &after, &[], &Expectations::default()),
        Verdict::Fails("permanent failure: boom".into())
    );
    after.unanswered.push("dynamodb.get {}".into());
    assert!(matches!(
        compare(&before, &after, &[], &Expectations::default()),
        Verdict::NotReplayable(_)
    ));
}
