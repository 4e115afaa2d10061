//! Everything `envmgr serve` talks to, started for one test: the queues,
//! tables and KMS key on moto (shared by the test binary; names are prefixed
//! per test) or in the local backend's database file, a fake GitHub, Segment
//! and Runtime Service, a config file, and the `envmgr` binary under test.

mod outage;
mod queues;
mod tables;

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use aws_sdk_sqs::config::Credentials;
use envmgr::local::Store;

use crate::fakes::github::{self, FakeGitHub};
use crate::fakes::runtime::{self, FakeRuntime};
use crate::fakes::segment::{self, FakeSegment};
use crate::moto::{Moto, moto};

pub use outage::Outage;

/// The commits of acme/shop the examples and fixtures name.
pub const EXAMPLE_COMMITS: [&str; 5] = [
    "3f786850e387550fdab836ed7e6dc881de23001b",
    "89e6c98d92887913cadf06b2adb97f26cde4849b",
    "9c1e0e5d3f0b4b1c8a7e6d5c4b3a291807f6e5d4",
    crate::SHA_1,
    crate::SHA_2,
];

/// Where the stack keeps queues, tables and the KMS key.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// moto: SQS, DynamoDB and KMS through the AWS SDKs.
    Aws,
    /// The embedded database file.
    Local,
}

pub struct Stack {
    pub binary: PathBuf,
    pub backend: Backend,
    /// Started for the AWS backend only.
    pub moto: Option<&'static Moto>,
    pub github: FakeGitHub,
    pub segment: FakeSegment,
    pub runtime: FakeRuntime,
    /// Prefix of this test's tables and queues.
    pub prefix: String,
    pub dir: PathBuf,
    pub config: PathBuf,
    /// The proxy envmgr reaches moto through, when asked for.
    pub outage: Option<Outage>,
    /// [`Options::env`].
    env: Vec<(String, String)>,
    /// Every `serve` started: killed when the stack goes, so a failed test
    /// leaves no daemon behind.
    children: std::sync::Mutex<Vec<u32>>,
}

impl Drop for Stack {
    fn drop(&mut self) {
        let mine = format!("ENVMGR_CONFIG={}", self.config.display());
        for pid in self
            .children
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .drain(..)
        {
            // Only if the pid is still one of this stack's daemons (a pid
            // that exited may have been reused by another test's).
            let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
            let ours = environ.split(|b| *b == 0).any(|v| v == mine.as_bytes());
            if !ours {
                continue;
            }
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .stderr(Stdio::null())
                .status();
        }
        // A passing test's files go (its database holds a KMS key, tokens
        // and the App's key); a failing test's stay, for its logs.
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Knobs a test may turn before writing the config.
pub struct Options {
    pub backend: Backend,
    pub visibility_seconds: u32,
    /// The message deadline; the lease lasts one second longer (the clock
    /// skew margin is 1 s: every host of a test shares one clock).
    pub deadline_seconds: u32,
    pub max_receive_count: u32,
    pub grace_seconds: u32,
    /// A logic component to serve instead of the builtin one.
    pub logic: Option<&'static [u8]>,
    /// Put a proxy between envmgr and moto that the test can cut, and
    /// that counts the SQS calls passing through ([`Outage::sqs_calls`]).
    pub cuttable: bool,
    /// More TOML appended to the config (sections not written otherwise,
    /// e.g. `[logic]`, `[admin]`).
    pub extra_config: String,
    /// `ENVMGR__…` overrides for every command, for keys of sections the
    /// stack writes itself (e.g. `ENVMGR__QUEUES__API__MAX_IN_FLIGHT`).
    pub env: Vec<(String, String)>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            backend: Backend::Aws,
            visibility_seconds: 6,
            deadline_seconds: 5,
            max_receive_count: 3,
            grace_seconds: 15,
            logic: None,
            cuttable: false,
            extra_config: String::new(),
            env: Vec::new(),
        }
    }
}

impl Stack {
    /// `binary`: `env!("CARGO_BIN_EXE_envmgr-under-test")`, unless
    /// `ENVMGR_UNDER_TEST` names another build (e.g. a copy kept steady
    /// through a long series of runs while the tree is rebuilt).
    pub fn new(name: &str, binary: &str, options: Options) -> Self {
        let binary = std::env::var("ENVMGR_UNDER_TEST").unwrap_or_else(|_| binary.to_string());
        let binary = binary.as_str();
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let prefix = format!(
            "{name}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../target/test-stacks")
            .join(&prefix);
        std::fs::create_dir_all(&dir).expect("stack dir");
        let moto = (options.backend == Backend::Aws).then(moto);
        let outage = options
            .cuttable
            .then(|| Outage::in_front_of(moto.expect("an outage cuts the AWS backend")));
        let backend = match moto {
            Some(moto) => {
                let endpoint = outage
                    .as_ref()
                    .map_or_else(|| moto.endpoint(), |o| o.endpoint.clone());
                format!(
                    "backend = \"aws\"\n\n[aws]\nregion = \"us-east-1\"\nendpoint_url = \"{endpoint}\"\n"
                )
            }
            None => "backend = \"local\"\n".to_string(),
        };
        let (github, github_url) = FakeGitHub::start();
        // What GitHub holds for docs/examples: the App on acme, pull
        // request 7 of acme/shop and the commits the examples name.
        github.add_installation(github::Installation::new(crate::INSTALLATION, "acme"));
        github.add_pull_request(crate::REPO, 7);
        for sha in EXAMPLE_COMMITS {
            github.add_commit(crate::REPO, sha);
        }
        let (segment, segment_url) = FakeSegment::start();
        let (runtime, runtime_url) = FakeRuntime::start();
        std::fs::write(dir.join("github-app.pem"), github::PRIVATE_KEY).unwrap();
        std::fs::write(dir.join("segment.key"), segment::WRITE_KEY).unwrap();
        std::fs::write(dir.join("runtime.token"), runtime::TOKEN).unwrap();
        let queue = |logical: &str| {
            format!(
                "[queues.{logical}]\n\
                 name = \"{prefix}-{logical}\"\n\
                 wait_seconds = 1\n\
                 visibility_timeout_seconds = {}\n\
                 max_receive_count = {}\n\
                 backoff_base_seconds = 1\n\
                 backoff_max_seconds = 2\n",
                options.visibility_seconds, options.max_receive_count
            )
        };
        let config = format!(
            "{backend}\n\
             # Also where the aws backend caches native code of logic versions.\n\
             [local]\ndata_dir = \"{dir}/data\"\n\n\
             [tables]\nenvironments = \"{prefix}-environments\"\nsecrets = \"{prefix}-secrets\"\napps = \"{prefix}-apps\"\nlogic = \"{prefix}-logic\"\nrecordings = \"{prefix}-recordings\"\n\n\
             [kms]\nkey_id = \"alias/{prefix}\"\n\n\
             {probot}\n{api}\n\
             [github]\napp_id = {app_id}\nprivate_key_file = \"{dir}/github-app.pem\"\napi_url = \"{github_url}\"\n\n\
             [segment]\nwrite_key_file = \"{dir}/segment.key\"\nurl = \"{segment_url}\"\nflush_interval_ms = 200\n\n\
             [runtime]\nurl = \"{runtime_url}\"\ntoken_file = \"{dir}/runtime.token\"\ntimeout_ms = 5000\nretries = 0\n\n\
             [limits]\ndeadline_seconds = {deadline}\n\n\
             [lease]\nttl_seconds = {ttl}\nclock_skew_seconds = 1\n\n\
             [shutdown]\ngrace_seconds = {grace}\n\n\
             [logic_config]\npreview-url-template = \"https://{{environment}}.preview.test\"\n\n\
             {extra}\n",
            probot = queue("probot"),
            api = queue("api"),
            app_id = github::APP_ID,
            dir = dir.display(),
            grace = options.grace_seconds,
            deadline = options.deadline_seconds,
            ttl = options.deadline_seconds + 1,
            extra = options.extra_config,
        );
        let config_path = dir.join("envmgr.toml");
        std::fs::write(&config_path, config).unwrap();
        let stack = Self {
            binary: PathBuf::from(binary),
            backend: options.backend,
            moto,
            github,
            segment,
            runtime,
            prefix,
            dir,
            config: config_path,
            outage,
            env: options.env,
            children: std::sync::Mutex::default(),
        };
        stack.ok(&["init"]);
        if let Some(logic) = options.logic {
            std::fs::write(stack.dir.join("logic.wasm"), logic).unwrap();
        }
        stack
    }

    /// The binary with the config and test credentials; nothing else.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(&self.binary);
        command
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("ENVMGR_CONFIG", &self.config)
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("ENVMGR_LOG", "info,aws=warn,hyper=warn")
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        command
    }

    /// Run to completion; it must succeed.
    pub fn ok(&self, args: &[&str]) -> Output {
        let output = self.command(args).output().expect("running envmgr");
        assert!(
            output.status.success(),
            "envmgr {args:?} failed:\n{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        output
    }

    /// Run to completion: whether it succeeded, and its standard output and
    /// error together.
    pub fn run(&self, args: &[&str]) -> (bool, String) {
        self.run_with(args, &[])
    }

    /// [`run`](Self::run) with `env` on top of the stack's environment
    /// (`ENVMGR__…` overrides for this command only).
    pub fn run_with(&self, args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
        let output = self
            .command(args)
            .envs(env.iter().copied())
            .output()
            .expect("running envmgr");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        (output.status.success(), text)
    }

    /// [`run`](Self::run); it must succeed.
    pub fn run_ok(&self, args: &[&str]) -> String {
        let (ok, text) = self.run(args);
        assert!(ok, "envmgr {args:?} failed:\n{text}");
        text
    }

    /// Run with `stdin` as standard input; it must succeed.
    pub fn ok_with_input(&self, args: &[&str], stdin: &str) {
        use std::io::Write;
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawning envmgr");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(stdin.as_bytes())
            .unwrap();
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "envmgr {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// Start `envmgr serve`; its log goes to `{dir}/serve-N.log`.
    pub fn serve(&self) -> Child {
        self.serve_logged().0
    }

    /// Start `envmgr serve`; the process and the file it logs to.
    pub fn serve_logged(&self) -> (Child, PathBuf) {
        self.serve_with(&[])
    }

    /// Start `envmgr serve` with more `ENVMGR__…` overrides (e.g. each
    /// daemon its own admin port); the process and the file it logs to.
    pub fn serve_with(&self, env: &[(&str, &str)]) -> (Child, PathBuf) {
        static RUNS: AtomicU32 = AtomicU32::new(0);
        let log = self
            .dir
            .join(format!("serve-{}.log", RUNS.fetch_add(1, Ordering::SeqCst)));
        let mut args = vec!["serve".to_string()];
        let logic = self.dir.join("logic.wasm");
        if logic.exists() {
            args.push("--logic".into());
            args.push(logic.display().to_string());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let child = self
            .command(&args)
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("starting envmgr serve");
        self.children
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(child.id());
        (child, log)
    }

    /// Everything the daemons of this stack logged so far.
    pub fn logs(&self) -> String {
        let mut text = String::new();
        for entry in std::fs::read_dir(&self.dir).into_iter().flatten().flatten() {
            if entry.file_name().to_string_lossy().starts_with("serve-") {
                text.push_str(&std::fs::read_to_string(entry.path()).unwrap_or_default());
            }
        }
        text
    }

    pub async fn sdk(&self) -> aws_config::SdkConfig {
        let moto = self.moto.expect("the AWS backend");
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .endpoint_url(moto.endpoint())
            .credentials_provider(Credentials::new("test", "test", None, None, "tests"))
            .load()
            .await
    }

    pub fn queue_name(&self, logical: &str) -> String {
        format!("{}-{logical}", self.prefix)
    }

    /// The Shop app (acme/shop, as in docs/examples) and two secrets:
    /// `DATABASE_URL` for every environment, `STRIPE_KEY` for previews.
    pub fn seed_shop(&self, database_url: &str, stripe_key: &str) {
        self.ok(&crate::ADD_SHOP_APP);
        for (scope, name, value) in [
            ("global", "DATABASE_URL", database_url),
            ("preview", "STRIPE_KEY", stripe_key),
        ] {
            self.ok_with_input(
                &[
                    "set-secret",
                    "--app",
                    "app_shop",
                    "--scope",
                    scope,
                    "--name",
                    name,
                ],
                value,
            );
        }
    }

    /// The fake Runtime Service reports `state` on every runtime it
    /// creates, `after` its answer, through `envmgr send --queue api` as a
    /// real one puts its reports on the queue.
    pub fn runtime_reports(&self, after: std::time::Duration, state: &str) {
        let command = self.command(&[]);
        let program = command.get_program().to_owned();
        let envs: Vec<(std::ffi::OsString, std::ffi::OsString)> = command
            .get_envs()
            .filter_map(|(k, v)| Some((k.to_owned(), v?.to_owned())))
            .collect();
        self.runtime.report(
            after,
            state,
            std::sync::Arc::new(move |body: String, traceparent: Option<String>| {
                let attribute = traceparent.map(|v| format!("traceparent={v}"));
                let sent = Command::new(&program)
                    .env_clear()
                    .envs(envs.iter().cloned())
                    .args(["send", "--queue", "api", "--body", &body])
                    .args(attribute.iter().flat_map(|a| ["--attribute", a.as_str()]))
                    .output();
                assert!(
                    sent.is_ok_and(|o| o.status.success()),
                    "sending a status report"
                );
            }),
        );
    }

    /// Put `body` on a queue with `envmgr send`.
    pub fn send(&self, queue: &str, body: &str) {
        self.ok(&["send", "--queue", queue, "--body", body]);
    }

    /// The local backend's database (another connection to the file the
    /// daemon uses).
    pub fn store(&self) -> Store {
        Store::open_dir(&self.dir.join("data")).expect("the local database")
    }
}

/// A message of docs/examples.
pub fn example(name: &str) -> String {
    let path = format!("{}/../docs/examples/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(path).expect("example message")
}

/// Poll `check` until it holds or `limit` passes; panics with `what`.
pub async fn eventually<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while !check().await {
        assert!(started.elapsed() < limit, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Send SIGTERM and wait for the exit status.
pub fn terminate(child: &mut Child) -> std::process::ExitStatus {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    child.wait().expect("waiting for envmgr")
}
