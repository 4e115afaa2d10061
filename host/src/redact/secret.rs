//! Plaintext only the host may read.

use std::fmt;

/// Plaintext only the host may read. Debug output is redacted, so a secret
/// cannot reach a log line by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(plaintext: impl Into<String>) -> Self {
        Self(plaintext.into())
    }

    /// The plaintext, for the backend that must send it (the runtime call).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// A secret a dependency hands back (a decrypted value, a minted token) is
/// not redacted, which would break it: it is made known to the message's
/// redactor the moment it arrives, before any later answer is scrubbed (a
/// started call may answer while another is still on its way, long before
/// the guest takes this one and it is sealed).
impl super::Scrub for Secret {
    fn scrub(self, redactor: &super::Redactor) -> Self {
        redactor.add(self.expose());
        self
    }
}
