//! The real GitHub backend (`GitHubApp`, octocrab) against the fake GitHub:
//! its tokens, GitHub's rate-limit rules, and the requests it spends.
//! Every assertion is on what the fake saw (`requests()`, `mints()`), so a
//! client that sends more, sooner or at once fails here.

#[path = "github_client/helpers.rs"]
mod helpers;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use envmgr::capabilities::ErrorCode;
use envmgr::capabilities::github::{DeploymentState, GitHub, NewDeployment, NewDeploymentStatus};
use envmgr_tests::fakes::github::{Failure, Installation, Logged, Route};

use helpers::{
    INSTALLATION, MARKER, SHA, api_token_mints, assert_nothing_refused, client, comment_body, fake,
    fake_with, github_settings, requests_of, shop, sleep_until,
};

#[tokio::test(flavor = "multi_thread")]
async fn the_installation_token_is_minted_once_and_again_after_its_margin() {
    let (github, url) = fake();
    // expires_at is whole seconds: the token lives 2 to 3 s, and is
    // replaced a tenth of that before it expires.
    github.set_token_ttl(Duration::from_secs(3));
    let app = Arc::new(client(&url, |_| {}));

    // Five callers at once share one mint.
    let callers: Vec<_> = (0..5)
        .map(|_| {
            let app = app.clone();
            tokio::spawn(async move { app.authenticate(INSTALLATION).await })
        })
        .collect();
    for caller in callers {
        caller.await.unwrap().expect("authenticated");
    }
    for n in 0..3 {
        app.create_comment(INSTALLATION, &shop(), 7, &comment_body(n))
            .await
            .expect("created");
        app.list_comments(INSTALLATION, &shop(), 7, MARKER)
            .await
            .expect("listed");
    }
    assert_eq!(api_token_mints(&github), 1, "{:?}", github.mints());
    let minted_at = github.mints()[0].at;

    // Well inside the token's life: the kept one is used.
    sleep_until(minted_at + Duration::from_millis(1_500)).await;
    app.list_comments(INSTALLATION, &shop(), 7, MARKER)
        .await
        .expect("listed");
    assert_eq!(api_token_mints(&github), 1, "{:?}", github.mints());

    // Past the margin: a new one, before the old one is refused.
    sleep_until(minted_at + Duration::from_millis(2_900)).await;
    app.list_comments(INSTALLATION, &shop(), 7, MARKER)
        .await
        .expect("listed");
    assert_eq!(api_token_mints(&github), 2, "{:?}", github.mints());
    assert!(
        github.requests().iter().all(|r| r.status != 401),
        "no request went with an expired token"
    );
    assert_nothing_refused(&github);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_401_drops_the_kept_token_and_the_request_goes_once_more_with_a_new_one() {
    let (github, url) = fake();
    let app = client(&url, |_| {});
    app.authenticate(INSTALLATION).await.expect("authenticated");
    github.fail_next(Route::ListComments, 1, Failure::Status(401));
    app.list_comments(INSTALLATION, &shop(), 7, MARKER)
        .await
        .expect("listed with a new token");
    assert_eq!(api_token_mints(&github), 2);
    let statuses: Vec<u16> = requests_of(&github, Route::ListComments)
        .iter()
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, [401, 200]);
    // The new token is kept.
    app.list_comments(INSTALLATION, &shop(), 7, MARKER)
        .await
        .expect("listed");
    assert_eq!(api_token_mints(&github), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_runtime_token_is_minted_each_time_for_one_repository_and_the_configured_permissions() {
    let (github, url) = fake();
    let app = client(&url, |_| {});
    let first = app
        .create_installation_token(INSTALLATION, &shop())
        .await
        .expect("a token");
    let second = app
        .create_installation_token(INSTALLATION, &shop())
        .await
        .expect("a token");
    assert_ne!(first.expose(), second.expose(), "never the kept token");
    let contents_read = BTreeMap::from([("contents".to_string(), "read".to_string())]);
    let mints = github.mints();
    assert_eq!(mints.len(), 2, "{mints:?}");
    for mint in &mints {
        assert_eq!(mint.repositories, Some(vec!["shop".to_string()]));
        assert_eq!(mint.requested_permissions.as_ref(), Some(&contents_read));
        assert_eq!(mint.permissions, contents_read);
    }
    assert!(github.tokens().contains(&first.expose().to_string()));

    // Exactly the configured permissions, whatever else the App holds.
    let wider = BTreeMap::from([
        ("contents".to_string(), "read".to_string()),
        ("deployments".to_string(), "read".to_string()),
    ]);
    let app = client(&url, |o| o.runtime_token_permissions = wider.clone());
    app.create_installation_token(INSTALLATION, &shop())
        .await
        .expect("a token");
    let last = github.mints().pop().expect("a mint");
    assert_eq!(last.requested_permissions, Some(wider.clone()));
    assert_eq!(last.permissions, wider);
    assert_nothing_refused(&github);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_permission_the_installation_lacks_is_denied_naming_the_config_key() {
    let (github, url) = fake_with(Installation::new(INSTALLATION, "acme").without("contents"));
    let app = client(&url, |_| {});
    let refused = app
        .create_installation_token(INSTALLATION, &shop())
        .await
        .expect_err("refused");
    assert_eq!(refused.code, ErrorCode::Denied, "{}", refused.message);
    assert!(
        refused
            .message
            .contains("`github.runtime_token_permissions`")
            && refused.message.contains("contents: read"),
        "{}",
        refused.message
    );
    assert_eq!(github.mints().len(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_429_is_waited_out_then_sent_once_more_by_envmgr() {
    let (github, url) = fake();
    let app = client(&url, |o| o.max_wait = Duration::from_millis(1_500));
    github.fail_next(
        Route::CreateComment,
        1,
        Failure::TooManyRequests {
            retry_after_seconds: 1,
        },
    );
    app.create_comment(INSTALLATION, &shop(), 7, &comment_body(1))
        .await
        .expect("created after the wait");
    let sent = requests_of(&github, Route::CreateComment);
    assert_eq!(
        sent.iter().map(|r| r.status).collect::<Vec<_>>(),
        [429, 201]
    );
    let gap = sent[1].started.duration_since(sent[0].finished);
    assert!(gap >= Duration::from_secs(1), "sent again after {gap:?}");
    assert_eq!(github.comments("acme/shop", 7).len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_429_longer_than_max_wait_is_throttled_at_once_and_not_sent_again() {
    let (github, url) = fake();
    let app = client(&url, |o| o.max_wait = Duration::ZERO);
    github.fail_next(
        Route::CreateComment,
        1,
        Failure::TooManyRequests {
            retry_after_seconds: 1,
        },
    );
    let started = std::time::Instant::now();
    let throttled = app
        .create_comment(INSTALLATION, &shop(), 7, &comment_body(1))
        .await
        .expect_err("throttled");
    assert!(started.elapsed() < Duration::from_millis(900), "no wait");
    assert_eq!(
        throttled.code,
        ErrorCode::Throttled,
        "{}",
        throttled.message
    );
    let retry_after = throttled.retry_after_ms.expect("retry_after_ms");
    assert!(
        (900..=1_000).contains(&retry_after),
        "retry after {retry_after} ms"
    );
    // Within the wait, the installation's next call is not sent either.
    let again = app
        .create_comment(INSTALLATION, &shop(), 7, &comment_body(2))
        .await
        .expect_err("still waiting");
    assert_eq!(again.code, ErrorCode::Throttled);
    assert!(
        again.message.contains("github.max_wait_ms"),
        "{}",
        again.message
    );
    assert_eq!(requests_of(&github, Route::CreateComment).len(), 1);
    assert!(github.comments("acme/shop", 7).is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_primary_rate_limit_is_waited_out_until_its_reset() {
    let (github, url) = fake();
    let app = client(&url, |o| o.max_wait = Duration::from_millis(3_000));
    github.fail_next(
        Route::CreateComment,
        1,
        Failure::PrimaryRateLimit {
            reset_in_seconds: 2,
        },
    );
    app.create_comment(INSTALLATION, &shop(), 7, &comment_body(1))
        .await
        .expect("created after the reset");
    let sent = requests_of(&github, Route::CreateComment);
    assert_eq!(
        sent.iter().map(|r| r.status).collect::<Vec<_>>(),
        [403, 201]
    );
    // The reset is 2 whole seconds ahead of the fake's clock, so at least
    // 1 s ahead of the refusal.
    let gap = sent[1].started.duration_since(sent[0].finished);
    assert!(gap >= Duration::from_secs(1), "sent again after {gap:?}");

    let (github, url) = fake();
    let app = client(&url, |o| o.max_wait = Duration::ZERO);
    github.fail_next(
        Route::CreateComment,
        1,
        Failure::PrimaryRateLimit {
            reset_in_seconds: 2,
        },
    );
    let throttled = app
        .create_comment(INSTALLATION, &shop(), 7, &comment_body(1))
        .await
        .expect_err("throttled");
    assert_eq!(
        throttled.code,
        ErrorCode::Throttled,
        "{}",
        throttled.message
    );
    let retry_after = throttled.retry_after_ms.expect("retry_after_ms");
    assert!(
        (900..=2_000).contains(&retry_after),
        "retry after {retry_after} ms"
    );
    assert_eq!(requests_of(&github, Route::CreateComment).len(), 1);
}

/// GitHub failing to answer: a read is sent again as it is; a create only
/// after looking for what the failed try made; past the tries, `unavailable`.
#[tokio::test(flavor = "multi_thread")]
async fn a_5xx_is_tried_again_within_the_call_and_a_create_is_made_once() {
    let (github, url) = fake();
    let app = client(&url, |_| {});
    github.fail_next(Route::ListComments, 2, Failure::HtmlPage(502));
    app.list_comments(INSTALLATION, &shop(), 7, MARKER)
        .await
        .expect("listed on the third try");
    assert_eq!(requests_of(&github, Route::ListComments).len(), 3);

    // Made, and the answer lost: found by the look, not made again.
    github.fail_next(Route::CreateComment, 1, Failure::AfterDoing(502));
    let made = app
        .create_comment(INSTALLATION, &shop(), 7, &comment_body(1))
        .await
        .expect("found after the lost answer");
    assert_eq!(requests_of(&github, Route::CreateComment).len(), 1);
    assert_eq!(github.comments("acme/shop", 7).len(), 1);
    assert_eq!(made.body, comment_body(1));

    // Not answering four times: unavailable.
    github.fail_next(Route::UpdateComment, 4, Failure::Status(503));
    let failed = app
        .update_comment(INSTALLATION, &shop(), made.id, &comment_body(2))
        .await
        .expect_err("unavailable");
    assert_eq!(failed.code, ErrorCode::Unavailable, "{}", failed.message);
    assert_eq!(requests_of(&github, Route::UpdateComment).len(), 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn every_request_carries_the_media_type_and_api_version() {
    let (github, url) = fake();
    let app = client(&url, |_| {});
    let repo = shop();
    let comment = app
        .create_comment(INSTALLATION, &repo, 7, &comment_body(1))
        .await
        .expect("created");
    app.update_comment(INSTALLATION, &repo, comment.id, &comment_body(2))
        .await
        .expect("updated");
    app.list_comments(INSTALLATION, &repo, 7, MARKER)
        .await
        .expect("listed");
    let deployment = app
        .create_deployment(
            INSTALLATION,
            &repo,
            &NewDeployment {
                sha: SHA.into(),
                environment: "preview-login".into(),
                task: "deploy:envmgr".into(),
                payload_json: r#"{"app":"app_shop"}"#.into(),
                description: "preview".into(),
                transient_environment: true,
                production_environment: false,
            },
        )
        .await
        .expect("deployment");
    app.create_deployment_status(
        INSTALLATION,
        &repo,
        deployment.id,
        &NewDeploymentStatus {
            state: DeploymentState::InProgress,
            description: "starting".into(),
            environment_url: Some("https://login.preview.test".into()),
            log_url: None,
        },
    )
    .await
    .expect("status");
    app.find_deployments(INSTALLATION, &repo, SHA, "preview-login", "deploy:envmgr")
        .await
        .expect("found");
    app.list_deployment_statuses(INSTALLATION, &repo, deployment.id)
        .await
        .expect("statuses");
    app.create_installation_token(INSTALLATION, &repo)
        .await
        .expect("runtime token");
    app.delete_comment(INSTALLATION, &repo, comment.id)
        .await
        .expect("deleted");

    let requests = github.requests();
    assert!(requests.len() >= 10, "{requests:?}");
    assert!(
        requests.iter().any(|r| r.route == Some(Route::AccessToken)),
        "token mints included"
    );
    for request in &requests {
        assert_eq!(
            request.api_version.as_deref(),
            Some("2022-11-28"),
            "{request:?}"
        );
    }
    // The fake refuses (415) a request without GitHub's media type.
    assert_nothing_refused(&github);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_list_read_again_is_not_modified_and_not_counted() {
    let (github, url) = fake();
    let app = client(&url, |_| {});
    // More than one page (100 a page), so the remembered next link counts.
    for n in 0..101 {
        app.create_comment(INSTALLATION, &shop(), 7, &comment_body(n))
            .await
            .expect("created");
    }
    github.add_human_comment("acme/shop", 7, "mallory", &comment_body(999));
    let first = app
        .list_comments(INSTALLATION, &shop(), 7, MARKER)
        .await
        .expect("listed");
    assert_eq!(first.len(), 101, "the person's comment is not envmgr's");
    let again = app
        .list_comments(INSTALLATION, &shop(), 7, MARKER)
        .await
        .expect("listed again");
    let ids_and_bodies = |comments: &[envmgr::capabilities::github::Comment]| {
        comments
            .iter()
            .map(|c| (c.id, c.body.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(ids_and_bodies(&again), ids_and_bodies(&first));

    let lists = requests_of(&github, Route::ListComments);
    let statuses: Vec<(u16, bool)> = lists.iter().map(|r| (r.status, r.counted)).collect();
    assert_eq!(
        statuses,
        [(200, true), (200, true), (304, false), (304, false)]
    );

    // The client's own figures agree with what GitHub saw.
    let seen: Vec<Logged> = github
        .requests()
        .into_iter()
        .filter(|r| r.installation == Some(INSTALLATION))
        .collect();
    let counts = app.request_counts();
    assert_eq!(counts.len(), 1);
    let (installation, counts) = counts[0];
    assert_eq!(installation, INSTALLATION);
    assert_eq!(counts.sent, seen.len() as u64);
    assert_eq!(
        counts.counted,
        seen.iter().filter(|r| r.counted).count() as u64
    );
    assert_eq!(counts.token_mints, 1);
    let limits = app.rate_limits();
    assert_eq!(limits.len(), 1);
    assert_eq!(limits[0].0, INSTALLATION);
    assert_eq!(limits[0].1.limit, Some(5_000));
    assert_eq!(limits[0].1.remaining, 5_000 - counts.counted);
    assert!(limits[0].1.reset.is_some());
}

#[tokio::test(flavor = "multi_thread")]
async fn requests_for_one_installation_never_overlap() {
    let (github, url) = fake();
    github.set_latency(Duration::from_millis(30));
    let app = Arc::new(client(&url, |_| {}));
    let callers: Vec<_> = (0..5)
        .map(|n| {
            let app = app.clone();
            tokio::spawn(async move {
                app.list_comments(INSTALLATION, &shop(), 7, MARKER).await?;
                app.create_comment(INSTALLATION, &shop(), 7, &comment_body(n))
                    .await?;
                app.find_deployments(INSTALLATION, &shop(), SHA, "preview", "deploy")
                    .await
            })
        })
        .collect();
    for caller in callers {
        caller.await.unwrap().expect("every call succeeds");
    }
    let mut ours: Vec<Logged> = github
        .requests()
        .into_iter()
        .filter(|r| r.installation == Some(INSTALLATION))
        .collect();
    assert_eq!(ours.len(), 15);
    ours.sort_by_key(|r| r.started);
    for pair in ours.windows(2) {
        assert!(
            pair[1].started >= pair[0].finished,
            "{:?} started before {:?} finished",
            pair[1].path,
            pair[0].path
        );
    }
    assert_eq!(api_token_mints(&github), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn writes_are_spaced_by_write_spacing() {
    let (github, url) = fake();
    let app = client(&url, |o| o.write_spacing = Duration::from_millis(300));
    let first = app
        .create_comment(INSTALLATION, &shop(), 7, &comment_body(1))
        .await
        .expect("created");
    app.update_comment(INSTALLATION, &shop(), first.id, &comment_body(2))
        .await
        .expect("updated");
    app.list_comments(INSTALLATION, &shop(), 7, MARKER)
        .await
        .expect("listed");
    app.delete_comment(INSTALLATION, &shop(), first.id)
        .await
        .expect("deleted");
    let writes: Vec<Logged> = github
        .requests()
        .into_iter()
        .filter(|r| r.installation == Some(INSTALLATION) && r.route.is_some_and(Route::is_write))
        .collect();
    assert_eq!(writes.len(), 3);
    for pair in writes.windows(2) {
        let gap = pair[1].started.duration_since(pair[0].finished);
        assert!(gap >= Duration::from_millis(300), "writes {gap:?} apart");
    }
    // A read is not held back by the spacing.
    let list = &requests_of(&github, Route::ListComments)[0];
    let update = &requests_of(&github, Route::UpdateComment)[0];
    assert!(list.started.duration_since(update.finished) < Duration::from_millis(300));
}

#[test]
fn the_github_keys_default_and_are_checked_naming_the_key() {
    let defaults = github_settings("", &[]).expect("defaults");
    assert_eq!(
        defaults.runtime_token_permissions,
        BTreeMap::from([("contents".to_string(), "read".to_string())])
    );
    assert_eq!(defaults.write_spacing_ms, 0);
    assert_eq!(defaults.max_wait_ms, 2_000);

    let set = github_settings(
        "runtime_token_permissions = { contents = \"read\", checks = \"write\" }\nwrite_spacing_ms = 1000\n",
        &[("ENVMGR__GITHUB__MAX_WAIT_MS", "0")],
    )
    .expect("set");
    assert_eq!(set.runtime_token_permissions.len(), 2);
    assert_eq!(set.write_spacing_ms, 1_000);
    assert_eq!(set.max_wait_ms, 0);

    for (file, key) in [
        (
            "runtime_token_permissions = { contnets = \"read\" }\n",
            "`github.runtime_token_permissions.contnets`",
        ),
        (
            "runtime_token_permissions = { contents = \"admin\" }\n",
            "`github.runtime_token_permissions.contents`",
        ),
        (
            "runtime_token_permissions = {}\n",
            "`github.runtime_token_permissions`",
        ),
        ("max_wait_ms = 600000\n", "`github.max_wait_ms`"),
    ] {
        let refused = github_settings(file, &[]).expect_err(file).to_string();
        assert!(refused.contains(key), "{file}: {refused}");
    }
}
