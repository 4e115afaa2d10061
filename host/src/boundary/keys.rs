//! The `keys` import: a report-signing key pair per environment (the private
//! half sealed, stored only encrypted) and the verification of a status
//! report's signature.

use crate::bindings::envmgr::environments::keys::*;
use crate::bindings::json::{Ciphertext, Recordable};
use crate::boundary::Session;
use crate::calls::requests::others::{GenerateKey, VerifyReport};
use crate::capabilities::keys::*;
use crate::capabilities::{CapResult, ErrorCode, error};

impl Host for Session {
    async fn generate(
        &mut self,
        app_id: String,
        environment_id: String,
        request_version: String,
    ) -> wasmtime::Result<CapResult<SigningKey>> {
        let named = |name: &str, value: &str| {
            (!value.is_empty() && value.len() <= 256)
                .then_some(())
                .ok_or_else(|| error(ErrorCode::Invalid, format!("{name}: 1 to 256 bytes")))
        };
        if let Err(refused) = named("app-id", &app_id)
            .and(named("environment-id", &environment_id))
            .and(named("request-version", &request_version))
        {
            return Ok(Err(refused));
        }
        // The mock host is reproducible: its keys follow from what they are
        // for. Everywhere else they are random.
        let pair = if self.backends.clock.is_some() {
            KeyPair::reproducible(&environment_id, &request_version)
        } else {
            KeyPair::generate()
        };
        let pair = match pair {
            Ok(pair) => pair,
            Err(e) => return Ok(Err(error(ErrorCode::Unavailable, e.to_string()))),
        };
        let context = key_context(&app_id, &environment_id, &request_version);
        let plaintext = pair.private_jwk.expose().to_string();
        // KMS gets the plaintext: nothing it answers may quote it back.
        self.redactor.add(&plaintext);
        let b = self.backends.clone();
        let encrypted = self
            .invoke(
                self.describe(&GenerateKey {
                    app_id: &app_id,
                    environment_id: &environment_id,
                    request_version: &request_version,
                }),
                async move { b.kms.encrypt(&plaintext, &context).await.map(Ciphertext) },
            )
            .await;
        match encrypted {
            Ok(Ciphertext(ciphertext)) => {
                let private_key =
                    self.seal(format!("signing-key:{environment_id}"), pair.private_jwk)?;
                Ok(Ok(SigningKey {
                    public_jwk: pair.public_jwk,
                    private_key,
                    ciphertext,
                }))
            }
            Err(failed) => Ok(Err(failed)),
        }
    }

    async fn verify_report(
        &mut self,
        jws: String,
        public_jwk: String,
    ) -> wasmtime::Result<CapResult<String>> {
        let described = self.describe(&VerifyReport {
            jws: &jws,
            public_jwk: &public_jwk,
        });
        Ok(self
            .invoke(described, async move {
                verify_report(&jws, &public_jwk)
                    .map(Claims)
                    .map_err(|why| error(ErrorCode::Invalid, format!("status report: {why}")))
            })
            .await
            .map(|Claims(claims)| claims))
    }
}

/// A report's claims: the runtime's text, which reaches the record and the
/// pull request, so no secret of the process or the message may be in it.
struct Claims(String);

impl Recordable for Claims {
    fn record(&self) -> serde_json::Value {
        self.0.clone().into()
    }
    fn replayed(value: &serde_json::Value) -> Option<Self> {
        value.as_str().map(|claims| Claims(claims.to_string()))
    }
}

impl crate::redact::Scrub for Claims {
    fn scrub(self, redactor: &crate::redact::Redactor) -> Self {
        Claims(redactor.scrub_value(&self.0))
    }
}
