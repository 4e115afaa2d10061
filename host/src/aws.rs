//! What every AWS backend shares: the SDK configuration (standard credential
//! chain and region, optional endpoint) and one mapping of SDK errors onto
//! the contract's error codes.

use aws_sdk_sqs::config::http::HttpResponse;
use aws_sdk_sqs::error::{ProvideErrorMetadata, SdkError};

use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider, future};

use crate::capabilities::{Error, ErrorCode};
use crate::redact::Credentials;

/// `[aws]`: where the SDK clients connect (the config file's section).
#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Aws {
    /// The region; the standard chain (AWS_REGION, profile) when unset.
    pub region: Option<String>,
    /// For moto, LocalStack or a VPC endpoint.
    pub endpoint_url: Option<String>,
}

/// The shared SDK configuration. Every set of credentials the SDK resolves
/// (at start and at each refresh of a role's) is registered in
/// `credentials` until it expires, so no dependency's text carries it back.
pub async fn sdk_config(settings: &Aws, credentials: &Credentials) -> aws_config::SdkConfig {
    let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest());
    if let Some(region) = &settings.region {
        loader = loader.region(aws_config::Region::new(region.clone()));
    }
    if let Some(endpoint) = &settings.endpoint_url {
        loader = loader.endpoint_url(endpoint);
    }
    let config = loader.load().await;
    match config.credentials_provider() {
        Some(inner) => config
            .into_builder()
            .credentials_provider(SharedCredentialsProvider::new(Registering {
                inner,
                credentials: credentials.clone(),
            }))
            .build(),
        None => config,
    }
}

/// The SDK's own provider, telling the redactor what it resolved.
#[derive(Debug)]
struct Registering {
    inner: SharedCredentialsProvider,
    credentials: Credentials,
}

impl ProvideCredentials for Registering {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(async move {
            let resolved = self.inner.provide_credentials().await?;
            let secrets = [Some(resolved.secret_access_key()), resolved.session_token()];
            for secret in secrets.into_iter().flatten() {
                match resolved.expiry() {
                    Some(expiry) => self.credentials.register_until(secret, expiry),
                    None => self.credentials.register(secret),
                }
            }
            Ok(resolved)
        })
    }
}

/// Error codes AWS uses for throttling, across services.
const THROTTLING: [&str; 6] = [
    "ThrottlingException",
    "Throttling",
    "ProvisionedThroughputExceededException",
    "RequestLimitExceeded",
    "TooManyRequestsException",
    "LimitExceededException",
];

/// Map an SDK error: service errors by code and status, everything that did
/// not get an answer (timeouts, connection failures) as `unavailable`.
pub fn capability_error<E>(operation: &str, error: &SdkError<E, HttpResponse>) -> Error
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let (code, message) = match error {
        SdkError::ServiceError(context) => {
            let service = context.err();
            let name = service.code().unwrap_or("Unknown");
            let status = context.raw().status().as_u16();
            let code = if THROTTLING.contains(&name) {
                ErrorCode::Throttled
            } else if status >= 500 {
                ErrorCode::Unavailable
            } else if name.contains("NotFound")
                || name.contains("NonExistent")
                || name == "QueueDoesNotExist"
            {
                ErrorCode::NotFound
            } else if name.contains("AccessDenied")
                || name.contains("Unauthorized")
                || name.contains("InvalidCiphertext")
                || name.contains("IncorrectKey")
                || name.contains("Disabled")
                || name == "UnrecognizedClientException"
                || status == 403
            {
                ErrorCode::Denied
            } else if name.contains("Conflict") || name.contains("InUse") {
                ErrorCode::Conflict
            } else {
                ErrorCode::Invalid
            };
            let detail = service.message().unwrap_or("");
            let message = format!(
                "{operation}: {name} ({status}) {}{}",
                detail.trim_end(),
                missing_hint(name)
            );
            if may_be_the_deployment(code, name) {
                let dependency = match operation.split(' ').next() {
                    Some("dynamodb") => "dynamodb",
                    Some("kms") => "kms",
                    Some("sqs") => "sqs",
                    _ => "aws",
                };
                crate::health::suspect(dependency, message.clone());
            }
            (code, message)
        }
        SdkError::ConstructionFailure(_) => (
            ErrorCode::Invalid,
            format!("{operation}: the request could not be built: {error}"),
        ),
        _ => (
            ErrorCode::Unavailable,
            format!(
                "{operation}: no answer: {}",
                crate::support::error_chain(error)
            ),
        ),
    };
    Error {
        code,
        message: message.trim_end().to_string(),
        retry_after_ms: None,
    }
}

/// What to do about a resource the config names that does not exist.
fn missing_hint(name: &str) -> &'static str {
    match name {
        "ResourceNotFoundException" => {
            " (the table does not exist: `envmgr init` creates the tables the config names)"
        }
        "QueueDoesNotExist" | "AWS.SimpleQueueService.NonExistentQueue" => {
            " (the queue does not exist: `envmgr init` creates the queues the config names)"
        }
        "NotFoundException" => {
            " (the key does not exist: `envmgr init` creates it when `kms.key_id` is an alias)"
        }
        _ => "",
    }
}

/// Whether an error may be the deployment's rather than the message's: a
/// missing table, queue or key, or access refused. Only a probe can tell
/// (access can be refused per item or per key-policy condition); a
/// ciphertext under another key is always the message's.
fn may_be_the_deployment(code: ErrorCode, name: &str) -> bool {
    let the_message = ["InvalidCiphertextException", "IncorrectKeyException"];
    matches!(code, ErrorCode::Denied | ErrorCode::NotFound) && !the_message.contains(&name)
}

/// An SDK error as a plain error, for commands and the queue loop (which
/// report it rather than hand it to the logic).
pub fn operation_failed<E>(operation: &str, error: &SdkError<E, HttpResponse>) -> anyhow::Error
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    anyhow::anyhow!(capability_error(operation, error).message)
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use super::*;

    #[tokio::test]
    async fn each_set_the_sdk_resolves_is_registered_until_it_expires() {
        let credentials = Credentials::default();
        let expires = SystemTime::now() + Duration::from_secs(900);
        let resolved = aws_credential_types::Credentials::new(
            "AKIAROTATEDKEY000001",
            "rotated/secret+access+key/000000000000001",
            Some("FwoGZXIvYXdzEJr//////////wEaDH-session-token-000001".into()),
            Some(expires),
            "a role's refresh",
        );
        let provider = Registering {
            inner: SharedCredentialsProvider::new(resolved),
            credentials: credentials.clone(),
        };
        provider.provide_credentials().await.expect("resolved");
        assert_eq!(credentials.len(), 2, "the secret key and the session token");
        let redactor = crate::redact::Redactor::new(credentials);
        let clean = redactor.scrub(
            "signature mismatch for rotated%2Fsecret%2Baccess%2Bkey%2F000000000000001 \
             and FwoGZXIvYXdzEJr//////////wEaDH-session-token-000001",
        );
        assert!(
            !clean.contains("rotated") && !clean.contains("session-token"),
            "{clean}"
        );
    }
}
