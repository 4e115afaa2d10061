//! Redaction as a guarantee. A property test: random secrets — plain,
//! a JWK whose private `d` is echoed alone, a URL whose password is — go
//! through every named encoder (tests/src/encoders.rs) inside random
//! surroundings, are cut at random places, and no part that identifies
//! them survives a redactor that knows them (as the process's credential
//! or as the message's). And the real binary against a Runtime Service
//! that echoes each create request through each encoder: no signing key,
//! secret or token anywhere envmgr writes.

use std::time::{Duration, Instant};

use envmgr::redact::{CUT_MARK, Credentials, REDACTED, Redactor, cut_for_redaction};
use envmgr_tests::encoders::Encoder;
use envmgr_tests::rng::Rng;

/// Cases of the property test; each runs every encoder, whole and cut.
/// `ENVMGR_REDACTION_CASES` runs more (and lifts the budget), by hand.
const CASES: u64 = 240;
/// The property test stops early past this (a slow machine), having run
/// at least a quarter of the cases.
const BUDGET: Duration = Duration::from_secs(8);
/// A window this long of a secret's form left in a text is a leak.
const WINDOW: usize = 10;

/// What secrets and their surroundings are made of: every ASCII printable
/// character (the ones escapes are about among them), whitespace and
/// characters outside ASCII, of two, three and four bytes.
fn alphabet() -> Vec<char> {
    let mut chars: Vec<char> = (b' '..=b'~').map(char::from).collect();
    chars.extend(['\n', '\t', 'ä', 'é', '€', '😀', '\u{2028}']);
    chars
}

fn base64url(rng: &mut Rng, len: usize) -> String {
    let chars: Vec<char> = ('A'..='Z')
        .chain('a'..='z')
        .chain('0'..='9')
        .chain(['-', '_'])
        .collect();
    rng.text(&chars, len, 1)
}

/// One case: the secret the redactor is told, the text a service echoes
/// of it, and the parts of it that must not survive.
fn case(rng: &mut Rng, alphabet: &[char]) -> (String, String, Vec<String>) {
    match rng.below(3) {
        0 => {
            let secret = rng.text(alphabet, 8, 40);
            let echoed = format!(
                "{}{secret}{}",
                rng.text(alphabet, 0, 20),
                rng.text(alphabet, 0, 20)
            );
            (secret.clone(), echoed, vec![secret])
        }
        1 => {
            let d = base64url(rng, 43);
            let jwk = serde_json::json!({
                "kty": "OKP", "crv": "Ed25519", "x": base64url(rng, 43), "d": d,
            })
            .to_string();
            // The whole request in the service's layout, or `d` alone.
            let echoed = if rng.below(2) == 0 {
                format!(r#"{{"signingKey":{jwk},"n":1}}"#)
            } else {
                format!("invalid key material {d} for signingKey.d")
            };
            (jwk, echoed, vec![d])
        }
        _ => {
            let password = rng.text(alphabet, 8, 16);
            let encoded: String = form_urlencoded::byte_serialize(password.as_bytes()).collect();
            let url = format!("postgres://shop:{encoded}@db.internal/shop");
            let echoed = format!("FATAL: password authentication failed ({password})");
            (url, echoed, vec![password])
        }
    }
}

/// The first window of a form of `part` left in `text`. A window spans at
/// least two of the part's characters however they are encoded (an emoji
/// percent-encoded takes 12), so what the surroundings share with it by
/// chance (one character's encoding) is not taken for a leak.
fn leaked(text: &str, part: &str) -> Option<String> {
    let widest = part
        .chars()
        .flat_map(|c| Encoder::ALL.map(|encoder| encoder.encode(&c.to_string()).len()))
        .max()
        .unwrap_or(0);
    let window = WINDOW.max(2 * widest + 2);
    for form in Encoder::forms(part, 1) {
        let chars: Vec<char> = form.chars().collect();
        for window in chars.windows(window.min(chars.len())) {
            let window: String = window.iter().collect();
            if text.contains(&window) {
                return Some(window);
            }
        }
    }
    None
}

#[test]
fn no_part_of_a_secret_survives_any_encoder_surrounding_or_cut() {
    let alphabet = alphabet();
    let started = Instant::now();
    let mut checked = 0;
    let by_hand: Option<u64> = std::env::var("ENVMGR_REDACTION_CASES")
        .ok()
        .and_then(|n| n.parse().ok());
    for seed in 1..=by_hand.unwrap_or(CASES) {
        if by_hand.is_none() && started.elapsed() > BUDGET && seed > CASES / 4 {
            break;
        }
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let (secret, echoed, parts) = case(&mut rng, &alphabet);
        let credentials = Credentials::default();
        let redactor = Redactor::new(credentials.clone());
        if rng.below(2) == 0 {
            credentials.register(&secret);
        } else {
            redactor.add(&secret);
        }
        for encoder in Encoder::ALL {
            let before = rng.text(&alphabet, 0, 30);
            let after = rng.text(&alphabet, 0, 30);
            let text = format!("{before}{}{after}", encoder.encode(&echoed));
            let cut_at = rng.below(text.len() as u64 + 1) as usize;
            let whole = redactor.scrub(&text);
            let cut = redactor.scrub(&cut_for_redaction(&text, cut_at));
            for (how, clean) in [("whole", &whole), ("cut", &cut)] {
                for part in &parts {
                    if let Some(window) = leaked(clean, part) {
                        panic!(
                            "seed {seed}, {encoder:?}, {how} at {cut_at}: `{window}` of {part:?} \
                             survived in {clean:?} (from {text:?})"
                        );
                    }
                }
            }
            assert!(
                whole.contains(REDACTED),
                "seed {seed}, {encoder:?}: {whole:?}"
            );
            assert!(cut.ends_with(CUT_MARK) || cut_at >= text.len());
            checked += 1;
        }
    }
    assert!(checked as u64 >= CASES / 4 * Encoder::ALL.len() as u64);
}

#[test]
fn ordinary_text_in_every_encoding_is_left_alone() {
    let credentials = Credentials::default();
    credentials.register("ghs_16C7e42F292c6912E7710c838347Ae178B4a");
    let redactor = Redactor::new(credentials);
    redactor.add(r#"{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","d":"nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"}"#);
    for encoder in Encoder::ALL {
        let text = encoder.encode("422 Validation Failed: field `title` is too long (a+b & c/d)");
        assert_eq!(redactor.scrub(&text), text, "{encoder:?}");
    }
    // The public half of the key is not a secret.
    let public = "x=11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";
    assert_eq!(redactor.scrub(public), public);
}

const BINARY: &str = env!("CARGO_BIN_EXE_envmgr-under-test");
const DATABASE_PASSWORD: &str = "Zq8-canary-db-7Yp";
const STRIPE_KEY: &str = "sk_live_canary_4f9a1c2e8b7d6a5f";

#[tokio::test(flavor = "multi_thread")]
async fn a_runtime_service_echoing_the_request_in_every_encoding_leaks_nothing() {
    use envmgr_tests::stack::{Backend, Options, Stack, eventually, terminate};
    let stack = Stack::new(
        "echo-encoders",
        BINARY,
        Options {
            backend: Backend::Local,
            ..Options::default()
        },
    );
    let database_url = format!("postgres://canary:{DATABASE_PASSWORD}@db.internal/shop");
    stack.seed_shop(&database_url, STRIPE_KEY);
    // Each create request is refused with the request quoted back, in one
    // encoder each; then the signing key's `d` and a secret quoted alone.
    for encoder in Encoder::ALL {
        stack.runtime.echo_next(422, encoder);
    }
    stack.runtime.echo_member_next(422, "/signingKey/d");
    stack.runtime.echo_member_next(422, "/secrets/STRIPE_KEY");
    let messages = Encoder::ALL.len() as u64 + 2;
    for pr in 1..=messages {
        stack.github.add_pull_request("acme/shop", pr);
        stack.send(
            "probot",
            &envmgr_tests::pull_request_event(
                "opened",
                pr,
                &format!("feature/echo-{pr}"),
                envmgr_tests::SHA_1,
                "2026-11-28T11:00:00Z",
            ),
        );
    }
    let mut daemon = stack.serve();
    eventually(
        "every echo dead-lettered",
        Duration::from_secs(120),
        || async { stack.dead_letters("probot").await.len() as u64 == messages },
    )
    .await;
    assert!(terminate(&mut daemon).success());

    let requests = stack.runtime.requests();
    assert_eq!(requests.len() as u64, messages, "every echo was sent");
    let mut secrets = vec![
        database_url.clone(),
        DATABASE_PASSWORD.to_string(),
        STRIPE_KEY.to_string(),
        envmgr_tests::fakes::runtime::TOKEN.to_string(),
    ];
    secrets.extend(stack.github.tokens());
    for (_, request) in &requests {
        secrets.push(request["signingKey"]["d"].as_str().expect("d").to_string());
    }
    let mut places = vec![("the logs".to_string(), stack.logs())];
    for item in stack.environment_table().await {
        places.push(("a record".into(), format!("{item:?}")));
    }
    for letter in stack.dead_letters("probot").await {
        places.push(("a dead letter".into(), format!("{letter:?}")));
    }
    for pr in 1..=messages {
        for comment in stack.github.comments("acme/shop", pr) {
            places.push(("a comment".into(), comment));
        }
    }
    for deployment in stack.github.deployments("acme/shop") {
        places.push(("a deployment".into(), format!("{:?}", deployment.statuses)));
    }
    for file in [
        "envmgr.db",
        "envmgr.db-wal",
        "recordings.db",
        "recordings.db-wal",
    ] {
        let bytes = std::fs::read(stack.dir.join("data").join(file)).unwrap_or_default();
        places.push((file.into(), String::from_utf8_lossy(&bytes).into_owned()));
    }
    let reasons = places
        .iter()
        .filter(|(_, text)| text.contains(REDACTED))
        .count();
    assert!(reasons > 0, "the echoes reached envmgr's texts");
    for secret in &secrets {
        let forms = Encoder::forms(secret, 12);
        for (place, text) in &places {
            for form in forms.iter().chain([secret]) {
                assert!(
                    !text.contains(form.as_str()),
                    "a secret leaked into {place} as `{form}`"
                );
            }
        }
    }
}
