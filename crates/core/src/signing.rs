//! Webhook secrets and signatures.
//!
//! Receivers written for Attendee check `X-Webhook-Signature` = base64(HMAC-SHA256(secret,
//! canonical body)), so we must produce exactly that. We also emit the Standard Webhooks
//! `webhook-signature` (`v1,` + HMAC over `"{id}.{timestamp}.{body}"`), which adds replay
//! protection. Both use the same 32-byte project secret. The verifiers mirror what receivers do,
//! so our own tests and tools check signatures the same way; they compare MACs in constant time.

use std::fmt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::digest::core_api::BlockSizeUser;
use hmac::digest::KeyInit;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use crate::canonical::canonical_json;

type HmacSha256 = Hmac<Sha256>;

/// Prefix Standard Webhooks tools use for base64-encoded secrets.
const WHSEC_PREFIX: &str = "whsec_";

/// Length of an HMAC-SHA256 tag.
const MAC_LEN: usize = 32;

/// Why a secret string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("webhook secret is empty")]
    Empty,
    #[error("webhook secret is not valid standard base64: {0}")]
    Base64(#[from] base64::DecodeError),
    #[error("webhook secret must decode to exactly {expected} bytes, got {actual}")]
    WrongLength { expected: usize, actual: usize },
}

/// A project's 32-byte signing secret. `Debug` is redacted so it never reaches logs.
#[derive(Clone)]
pub struct WebhookSecret([u8; 32]);

impl WebhookSecret {
    /// Length of the raw secret in bytes (what Attendee uses).
    pub const LEN: usize = 32;

    /// A fresh secret from the operating system's CSPRNG.
    pub fn generate() -> Self {
        use rand::RngCore as _;
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        Self(bytes)
    }

    /// A secret from a slice, if it is exactly 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        <[u8; 32]>::try_from(bytes).ok().map(Self::from_bytes)
    }

    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Standard base64 with padding (44 chars), the form Attendee shows.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }

    /// `whsec_` + base64, the form Standard Webhooks libraries expect.
    pub fn to_whsec(&self) -> String {
        format!("{WHSEC_PREFIX}{}", self.to_base64())
    }

    /// Accepts `to_base64()` or `to_whsec()` output; anything not exactly 32 bytes is an error.
    /// Surrounding whitespace is not trimmed: that is the caller's decision.
    pub fn parse(s: &str) -> Result<Self, SecretError> {
        let bytes = decode_whsec(s)?;
        let array: [u8; 32] =
            bytes
                .as_slice()
                .try_into()
                .map_err(|_| SecretError::WrongLength {
                    expected: Self::LEN,
                    actual: bytes.len(),
                })?;
        Ok(Self(array))
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(**redacted**)")
    }
}

/// Decodes a Standard Webhooks secret of any length (`whsec_` prefix optional); their reference
/// secrets are 24 bytes, so this does not insist on 32.
pub fn decode_whsec(s: &str) -> Result<Vec<u8>, SecretError> {
    let b64 = s.strip_prefix(WHSEC_PREFIX).unwrap_or(s);
    if b64.is_empty() {
        return Err(SecretError::Empty);
    }
    Ok(STANDARD.decode(b64)?)
}

/// The `X-Webhook-Signature` value: base64(HMAC-SHA256(key, canonical_body)).
pub fn attendee_signature(key: &[u8], canonical_body: &[u8]) -> String {
    let mut mac = new_mac(key);
    mac.update(canonical_body);
    STANDARD.encode(mac.finalize().into_bytes())
}

/// The `webhook-signature` value: `v1,` + base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}")).
pub fn standard_webhooks_signature(
    key: &[u8],
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
) -> String {
    let mac = standard_webhooks_mac(key, msg_id, timestamp, body);
    format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
}

/// How an `X-Webhook-Signature` check went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttendeeCheck {
    /// The MAC of the body exactly as received matched (meetwire sends canonical bodies).
    RawBody,
    /// The raw body did not match, but its canonical re-serialisation did (Attendee's way).
    Recanonicalised,
    /// No match, or the header is not the base64 of a 32-byte MAC.
    Mismatch,
    /// The raw body did not match and is not JSON, so it could not be re-canonicalised.
    NotJson,
}

impl AttendeeCheck {
    pub fn is_valid(self) -> bool {
        matches!(self, Self::RawBody | Self::Recanonicalised)
    }
}

/// Verifies `X-Webhook-Signature` as either kind of receiver would: over the raw body, then over
/// the canonical form of the parsed body. Comparisons are constant time.
pub fn verify_attendee(key: &[u8], body: &[u8], header: &str) -> AttendeeCheck {
    let expected = match STANDARD.decode(header.trim()) {
        Ok(mac) if mac.len() == MAC_LEN => mac,
        _ => return AttendeeCheck::Mismatch,
    };
    let mut mac = new_mac(key);
    mac.update(body);
    if mac.verify_slice(&expected).is_ok() {
        return AttendeeCheck::RawBody;
    }
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
        return AttendeeCheck::NotJson;
    };
    let mut mac = new_mac(key);
    mac.update(canonical_json(&value).as_bytes());
    if mac.verify_slice(&expected).is_ok() {
        AttendeeCheck::Recanonicalised
    } else {
        AttendeeCheck::Mismatch
    }
}

/// Verifies a `webhook-signature` header, which may list several space-separated `v1,<sig>`
/// entries (key rotation). True if any `v1` entry matches any key; other versions are ignored.
/// Timestamp tolerance is the caller's policy and is not checked here.
pub fn verify_standard_webhooks(
    keys: &[&[u8]],
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
    header: &str,
) -> bool {
    let signatures: Vec<Vec<u8>> = header
        .split_ascii_whitespace()
        .filter_map(|entry| entry.split_once(','))
        .filter(|(version, _)| *version == "v1")
        .filter_map(|(_, sig)| STANDARD.decode(sig).ok())
        .collect();
    if signatures.is_empty() {
        return false;
    }
    keys.iter().any(|key| {
        let mac = standard_webhooks_mac(key, msg_id, timestamp, body);
        signatures
            .iter()
            .any(|sig| mac.clone().verify_slice(sig).is_ok())
    })
}

/// HMAC state after `"{id}.{timestamp}.{body}"`, fed in parts to avoid copying the body.
fn standard_webhooks_mac(key: &[u8], msg_id: &str, timestamp: i64, body: &[u8]) -> HmacSha256 {
    let mut mac = new_mac(key);
    mac.update(msg_id.as_bytes());
    mac.update(b".");
    // `MacWriter` never fails, so the `fmt::Result` carries no information.
    let _ = fmt::Write::write_fmt(&mut MacWriter(&mut mac), format_args!("{timestamp}"));
    mac.update(b".");
    mac.update(body);
    mac
}

/// HMAC-SHA256 keyed with `key` of any length, without a fallible constructor: RFC 2104 hashes
/// keys longer than the block and zero-pads the rest, so we build that block ourselves.
fn new_mac(key: &[u8]) -> HmacSha256 {
    let mut block = hmac::digest::Key::<HmacSha256>::default();
    debug_assert_eq!(block.len(), Sha256::block_size());
    if key.len() > block.len() {
        let digest = Sha256::digest(key);
        block[..digest.len()].copy_from_slice(&digest);
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    <HmacSha256 as KeyInit>::new(&block)
}

/// Lets `write!` feed formatted text straight into a MAC.
struct MacWriter<'a>(&'a mut HmacSha256);

impl fmt::Write for MacWriter<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.0.update(s.as_bytes());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn raw_mac(key: &[u8], data: &[u8]) -> String {
        let mut mac = new_mac(key);
        mac.update(data);
        hex(&mac.finalize().into_bytes())
    }

    #[test]
    fn new_mac_matches_rfc_4231() {
        // Test case 2: short key.
        assert_eq!(
            raw_mac(b"Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // Test case 6: key longer than the block, which must be hashed first.
        assert_eq!(
            raw_mac(
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            ),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn new_mac_agrees_with_hmac_crate_at_every_key_length() {
        for len in 0..=130 {
            let key: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
            let Ok(mut reference) = <HmacSha256 as Mac>::new_from_slice(&key) else {
                panic!("hmac rejected a {len}-byte key");
            };
            reference.update(b"body");
            let mut ours = new_mac(&key);
            ours.update(b"body");
            assert_eq!(
                ours.finalize().into_bytes(),
                reference.finalize().into_bytes(),
                "key length {len}"
            );
        }
    }

    #[test]
    fn generated_secrets_differ_and_round_trip() {
        let a = WebhookSecret::generate();
        let b = WebhookSecret::generate();
        assert_ne!(a.as_bytes(), b.as_bytes());
        assert_eq!(a.to_base64().len(), 44);
        assert!(a.to_whsec().starts_with("whsec_"));
        let parsed = WebhookSecret::parse(&a.to_whsec()).map(|s| *s.as_bytes());
        assert_eq!(parsed, Ok(*a.as_bytes()));
    }
}
