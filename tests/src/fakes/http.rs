//! What every fake reads of a request the same way: the credential its
//! `Authorization` header presents, and whether its body is declared JSON.
//! One reading, by the HTTP rules, so the three fakes cannot drift apart on
//! what a well-formed request is.

use axum::http::HeaderMap;
use base64::Engine as _;

/// A credential as the `Authorization` header presents it. The scheme is
/// matched case-insensitively (RFC 9110 §11.1: "It uses a case-insensitive
/// token to identify the authentication scheme").
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credential {
    /// `Bearer <token>` (RFC 6750 §2.1): the Runtime Service, GitHub's JWTs
    /// and installation tokens.
    Bearer(String),
    /// `token <token>`: GitHub's older scheme, still accepted ("Authorizing
    /// API requests" in GitHub's REST docs).
    Token(String),
    /// `Basic base64(user:password)` (RFC 7617 §2): Segment's write key as
    /// the user.
    Basic { user: String, password: String },
}

impl Credential {
    /// The request's credential; None without one or in a scheme no fake
    /// takes.
    pub fn of(headers: &HeaderMap) -> Option<Credential> {
        let value = authorization(headers)?;
        let (scheme, rest) = value.split_once(' ')?;
        let rest = rest.trim_start();
        match scheme.to_ascii_lowercase().as_str() {
            "bearer" => Some(Credential::Bearer(rest.to_string())),
            "token" => Some(Credential::Token(rest.to_string())),
            "basic" => {
                let decoded = base64::engine::general_purpose::STANDARD
                    .decode(rest)
                    .ok()?;
                let text = String::from_utf8(decoded).ok()?;
                let (user, password) = text.split_once(':').unwrap_or((&text, ""));
                Some(Credential::Basic {
                    user: user.to_string(),
                    password: password.to_string(),
                })
            }
            _ => None,
        }
    }

    /// The token of a `Bearer` or `token` credential.
    pub fn token(&self) -> Option<&str> {
        match self {
            Credential::Bearer(token) | Credential::Token(token) => Some(token),
            Credential::Basic { .. } => None,
        }
    }
}

/// The `Authorization` header as sent, for a fake that quotes a request
/// back (as real services do in error messages); empty without one.
pub fn authorization(headers: &HeaderMap) -> Option<&str> {
    headers.get("authorization")?.to_str().ok()
}

/// Whether the body is declared JSON: `Content-Type: application/json`,
/// the media type case-insensitive and parameters such as `charset` allowed
/// (RFC 9110 §8.3.1).
pub fn declares_json(headers: &HeaderMap) -> bool {
    headers
        .get("content-type")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(name, value)| {
                (
                    axum::http::HeaderName::from_static(name),
                    value.parse().unwrap(),
                )
            })
            .collect()
    }

    #[test]
    fn schemes_are_read_whatever_their_case() {
        let of = |value: &str| Credential::of(&headers(&[("authorization", value)]));
        assert_eq!(of("Bearer abc"), Some(Credential::Bearer("abc".into())));
        assert_eq!(of("BEARER abc"), Some(Credential::Bearer("abc".into())));
        assert_eq!(of("token ghs_1"), Some(Credential::Token("ghs_1".into())));
        assert_eq!(
            of("Basic a2V5Og=="),
            Some(Credential::Basic {
                user: "key".into(),
                password: String::new()
            })
        );
        assert_eq!(of("Digest x"), None);
        assert_eq!(of("Bearer"), None);
        assert_eq!(Credential::of(&HeaderMap::new()), None);
    }

    #[test]
    fn json_is_declared_by_its_media_type_alone() {
        let json = |value: &str| declares_json(&headers(&[("content-type", value)]));
        assert!(json("application/json"));
        assert!(json("Application/JSON; charset=utf-8"));
        assert!(!json("application/json-patch+json"));
        assert!(!json("text/plain"));
        assert!(!declares_json(&HeaderMap::new()));
    }
}
