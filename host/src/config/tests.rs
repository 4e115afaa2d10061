use super::*;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn defaults_need_no_file() {
    let settings = Settings::load(None, env(&[])).unwrap();
    assert_eq!(settings.backend, Backend::Local);
    assert_eq!(settings.local.data_dir, PathBuf::from(".envmgr"));
    assert_eq!(settings.queues.len(), 2);
    assert_eq!(
        settings.queues["probot"].dead_letter_name(),
        "envmgr-probot-dlq"
    );
    // Ten per queue, and one for the recorder's shadow runs.
    assert_eq!(settings.limits().concurrency, 21);
    let unrecorded = Settings::load(None, env(&[("ENVMGR__RECORD__ENABLED", "false")])).unwrap();
    assert_eq!(unrecorded.limits().concurrency, 20);
}

#[test]
fn environment_overrides_the_file() {
    let settings = Settings::load(
        None,
        env(&[
            ("ENVMGR__AWS__ENDPOINT_URL", "http://127.0.0.1:5000"),
            ("ENVMGR__BACKEND", "aws"),
            ("ENVMGR__QUEUES__API__NAME", "api-q"),
            ("ENVMGR__QUEUES__API__MAX_IN_FLIGHT", "3"),
            (
                "ENVMGR__LOGIC_CONFIG__preview-url-template",
                "https://{environment}.x",
            ),
            ("UNRELATED", "1"),
        ]),
    )
    .unwrap();
    assert_eq!(
        settings.aws.endpoint_url.as_deref(),
        Some("http://127.0.0.1:5000")
    );
    assert_eq!(settings.queues["api"].name, "api-q");
    assert_eq!(settings.backend, Backend::Aws);
    assert_eq!(settings.queues["api"].max_in_flight, 3);
    assert_eq!(settings.queues["probot"].name, "envmgr-probot", "kept");
    assert_eq!(
        settings.logic_config["preview-url-template"],
        "https://{environment}.x"
    );
}

#[test]
fn errors_name_the_bad_key() {
    let error = Settings::load(
        None,
        env(&[
            ("ENVMGR__QUEUES__API__NAME", "q"),
            ("ENVMGR__QUEUES__API__WAIT_SECONDS", "99"),
        ]),
    )
    .unwrap_err();
    assert!(
        error.to_string().contains("queues.api.wait_seconds"),
        "{error}"
    );
    let error = Settings::load(None, env(&[("ENVMGR__AWS__ENDPONT_URL", "x")])).unwrap_err();
    assert!(format!("{error:#}").contains("aws"), "{error:#}");
    assert!(format!("{error:#}").contains("endpont_url"), "{error:#}");
}

#[test]
fn backoff_grows_with_receive_count() {
    let queue = Queue::named("q");
    assert_eq!(queue.backoff(1), Duration::from_secs(2));
    assert_eq!(queue.backoff(3), Duration::from_secs(8));
    assert_eq!(queue.backoff(30), Duration::from_secs(300));
}

fn from_file(text: &str, vars: &[(&str, &str)]) -> anyhow::Result<Settings> {
    let dir = std::env::temp_dir().join(format!("envmgr-config-{}", crate::support::random_hex(6)));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("envmgr.toml");
    std::fs::write(&path, text).unwrap();
    let loaded = Settings::load(Some(&path), env(vars));
    let _ = std::fs::remove_dir_all(&dir);
    loaded
}

#[test]
fn a_queue_section_merges_over_the_defaults() {
    let settings = from_file("[queues.api]\nwait_seconds = 5\n", &[]).unwrap();
    assert_eq!(settings.queues.len(), 2, "probot kept");
    assert_eq!(settings.queues["api"].name, "envmgr-api");
    assert_eq!(settings.queues["api"].wait_seconds, 5);
    assert_eq!(settings.queues["probot"].wait_seconds, 20);
    let settings = from_file("[queues.api]\nname = \"platform-requests\"\n", &[]).unwrap();
    assert_eq!(settings.queues["api"].name, "platform-requests");
    assert_eq!(
        settings.queues["probot"].name, "envmgr-probot",
        "not dropped"
    );
    // A new logical queue is named after itself; `enabled = false` drops one.
    let settings = from_file(
        "[queues.probot]\nenabled = false\n[queues.batch]\nmax_in_flight = 2\n",
        &[("ENVMGR__QUEUES__BATCH__WAIT_SECONDS", "1")],
    )
    .unwrap();
    let names: Vec<&str> = settings.queues.values().map(|q| q.name.as_str()).collect();
    assert_eq!(names, ["envmgr-api", "envmgr-batch"]);
    assert_eq!(settings.queues["batch"].wait_seconds, 1);
    let error = from_file("[queues.api]\nenabled = \"no\"\n", &[]).unwrap_err();
    assert!(error.to_string().contains("queues.api.enabled"), "{error}");
}

#[test]
fn a_command_validates_what_it_uses() {
    let short = [("ENVMGR__QUEUES__API__VISIBILITY_TIMEOUT_SECONDS", "10")];
    assert!(Settings::load_for(None, env(&short), Uses::Stores).is_ok());
    let error = Settings::load_for(None, env(&short), Uses::Queues).unwrap_err();
    assert!(
        error.to_string().contains("visibility_timeout_seconds"),
        "{error}"
    );
    assert!(Settings::load_for(None, env(&short), Uses::Everything).is_err());
    // A malformed value is refused whatever the command.
    let bad = [("ENVMGR__QUEUES__API__WAIT_SECONDS", "soon")];
    assert!(Settings::load_for(None, env(&bad), Uses::Stores).is_err());
}
