//! Signing keys for the runtime's status reports: an Ed25519 key pair per
//! environment request, made here, its private half sealed for the guest and
//! encrypted with KMS for the record; and the check of a report's signature.
//!
//! Ed25519 rather than RSA: a key pair costs microseconds (RSA-2048: tens of
//! milliseconds, on every message), and EdDSA has one algorithm per key
//! type, so a report cannot pick a weaker one.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest as _, Sha256};

use crate::redact::Secret;

/// The `envmgr:scope` of a signing key's encryption context: no secret has
/// it (secrets are `global`, `preview`, `production` or `environment:...`),
/// and the daemon's `kms:Encrypt` permission is limited to it.
pub const SIGNING_KEY_SCOPE: &str = "signing-key";

/// The encryption context of the private key of `environment_id` at
/// `request_version` (the WIT's `keys.signing-key.ciphertext`).
pub fn key_context(
    app_id: &str,
    environment_id: &str,
    request_version: &str,
) -> Vec<(String, String)> {
    vec![
        ("envmgr:app".to_string(), app_id.to_string()),
        ("envmgr:scope".to_string(), SIGNING_KEY_SCOPE.to_string()),
        (
            "envmgr:name".to_string(),
            format!("{environment_id}/{request_version}"),
        ),
    ]
}

/// An Ed25519 key pair as JWKs.
pub struct KeyPair {
    /// `{"kty":"OKP","crv":"Ed25519","x":...}`
    pub public_jwk: String,
    /// The public JWK with `d`, the private key.
    pub private_jwk: Secret,
}

impl KeyPair {
    /// The key pair of a 32-byte seed (RFC 8032's private key).
    pub fn from_seed(seed: &[u8; 32]) -> anyhow::Result<Self> {
        use aws_lc_rs::signature::KeyPair as _;
        let pair = aws_lc_rs::signature::Ed25519KeyPair::from_seed_unchecked(seed)
            .map_err(|e| anyhow::anyhow!("an Ed25519 key from its seed: {e}"))?;
        let x = URL_SAFE_NO_PAD.encode(pair.public_key().as_ref());
        let d = URL_SAFE_NO_PAD.encode(seed);
        Ok(Self {
            public_jwk: serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": x}).to_string(),
            private_jwk: Secret::new(
                serde_json::json!({"kty": "OKP", "crv": "Ed25519", "x": x, "d": d}).to_string(),
            ),
        })
    }

    /// The mock host's key pair for a request: it follows from what it is
    /// for, so a run is reproducible.
    pub fn reproducible(environment_id: &str, request_version: &str) -> anyhow::Result<Self> {
        let seed: [u8; 32] = Sha256::digest(
            format!("envmgr-test-key/{environment_id}/{request_version}").as_bytes(),
        )
        .into();
        Self::from_seed(&seed)
    }

    /// A new key pair from the OS's random source.
    pub fn generate() -> anyhow::Result<Self> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| anyhow::anyhow!("the OS random source: {e}"))?;
        Self::from_seed(&seed)
    }
}

/// A status report as a Runtime Service makes one: `claims` signed with the
/// environment's private key (`private_jwk`, as the create request carried
/// it), a compact JWS with `alg: EdDSA` (docs/runtime-service.md).
pub fn sign_report(private_jwk: &str, claims: &serde_json::Value) -> anyhow::Result<String> {
    let jwk: serde_json::Value = serde_json::from_str(private_jwk)?;
    let seed = jwk["d"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("the JWK has no private key `d`"))?;
    let seed = URL_SAFE_NO_PAD.decode(seed)?;
    let pair = aws_lc_rs::signature::Ed25519KeyPair::from_seed_unchecked(&seed)
        .map_err(|e| anyhow::anyhow!("an Ed25519 key from its seed: {e}"))?;
    let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"EdDSA","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    let signed = format!("{header}.{payload}");
    let signature = URL_SAFE_NO_PAD.encode(pair.sign(signed.as_bytes()).as_ref());
    Ok(format!("{signed}.{signature}"))
}

/// The claims of `jws` if it is a compact JWS signed with EdDSA by the key
/// `public_jwk`. Every other algorithm (`none`, HMAC, RSA, ECDSA) is
/// refused, and the header's key hints (`jku`, `jwk`, `x5u`, `kid`) are
/// never followed: the key is the environment's, from its record.
pub fn verify_report(jws: &str, public_jwk: &str) -> Result<String, String> {
    let jwk: serde_json::Value = serde_json::from_str(public_jwk)
        .map_err(|e| format!("the public key is not a JWK: {e}"))?;
    let x = match (&jwk["kty"], &jwk["crv"], &jwk["x"]) {
        (
            serde_json::Value::String(kty),
            serde_json::Value::String(crv),
            serde_json::Value::String(x),
        ) if kty == "OKP" && crv == "Ed25519" => x.clone(),
        _ => return Err("the public key is not an Ed25519 JWK".to_string()),
    };
    let header = jsonwebtoken::decode_header(jws).map_err(|e| format!("not a compact JWS: {e}"))?;
    if header.alg != jsonwebtoken::Algorithm::EdDSA {
        return Err(format!(
            "signed with {:?}: only EdDSA is accepted",
            header.alg
        ));
    }
    let key = jsonwebtoken::DecodingKey::from_ed_components(&x)
        .map_err(|e| format!("the public key: {e}"))?;
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::EdDSA);
    // The claims are the logic's to judge (expiry against the message's
    // sent time, the sequence number): only the signature is checked here.
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    let data = jsonwebtoken::decode::<serde_json::Value>(jws, &key, &validation)
        .map_err(|e| format!("the signature does not hold: {e}"))?;
    Ok(data.claims.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign(claims: &serde_json::Value, private_jwk: &str, alg: &str) -> String {
        let jwk: serde_json::Value = serde_json::from_str(private_jwk).unwrap();
        let d = URL_SAFE_NO_PAD.decode(jwk["d"].as_str().unwrap()).unwrap();
        let pair = aws_lc_rs::signature::Ed25519KeyPair::from_seed_unchecked(&d).unwrap();
        let header = URL_SAFE_NO_PAD.encode(serde_json::json!({"alg": alg}).to_string());
        let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
        let signed = format!("{header}.{payload}");
        let signature = URL_SAFE_NO_PAD.encode(pair.sign(signed.as_bytes()).as_ref());
        format!("{signed}.{signature}")
    }

    #[test]
    fn a_report_signed_with_the_key_verifies_and_nothing_else_does() {
        let pair = KeyPair::from_seed(&[7; 32]).unwrap();
        let other = KeyPair::from_seed(&[8; 32]).unwrap();
        let claims = serde_json::json!({"sub": "env_1", "state": "ready", "seq": 1});
        let jws = sign(&claims, pair.private_jwk.expose(), "EdDSA");
        let verified = verify_report(&jws, &pair.public_jwk).unwrap();
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&verified).unwrap(),
            claims
        );
        // Another environment's key.
        assert!(verify_report(&jws, &other.public_jwk).is_err());
        // A tampered payload.
        let mut parts: Vec<&str> = jws.split('.').collect();
        let forged = URL_SAFE_NO_PAD
            .encode(serde_json::json!({"sub": "env_1", "state": "failed", "seq": 9}).to_string());
        parts[1] = &forged;
        assert!(verify_report(&parts.join("."), &pair.public_jwk).is_err());
        // `alg: none`, unsigned.
        let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#);
        let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
        let unsigned = format!("{header}.{payload}.");
        let refused = verify_report(&unsigned, &pair.public_jwk).unwrap_err();
        assert!(refused.contains("not a compact JWS") || refused.contains("only EdDSA"));
        // HMAC keyed with the public key (the classic confusion).
        let hs = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(pair.public_jwk.as_bytes()),
        )
        .unwrap();
        assert!(
            verify_report(&hs, &pair.public_jwk)
                .unwrap_err()
                .contains("only EdDSA")
        );
    }

    #[test]
    fn the_private_jwk_holds_the_seed_and_the_public_key() {
        let pair = KeyPair::from_seed(&[1; 32]).unwrap();
        let private: serde_json::Value = serde_json::from_str(pair.private_jwk.expose()).unwrap();
        let public: serde_json::Value = serde_json::from_str(&pair.public_jwk).unwrap();
        assert_eq!(private["x"], public["x"]);
        assert_eq!(
            URL_SAFE_NO_PAD
                .decode(private["d"].as_str().unwrap())
                .unwrap(),
            vec![1; 32]
        );
        assert!(public.get("d").is_none());
    }
}
