//! Sealing of secrets at rest (webhook secrets): XChaCha20-Poly1305 with a random 24-byte nonce
//! stored in front of the ciphertext. A copied database is useless without the key, and a
//! tampered row fails to open instead of signing with a wrong secret.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use chacha20poly1305::aead::{Aead, AeadCore, KeyInit, OsRng};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

const NONCE_LEN: usize = 24;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SealError {
    #[error("the secret key must be 32 bytes of standard base64")]
    BadKey,
    #[error("a sealed secret could not be opened (wrong key or corrupt data)")]
    Open,
    #[error("sealing failed")]
    Seal,
}

/// The key that seals and opens secrets at rest.
#[derive(Clone)]
pub struct SealingKey(XChaCha20Poly1305);

impl std::fmt::Debug for SealingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealingKey(**redacted**)")
    }
}

impl SealingKey {
    /// A fresh random key, and its base64 form to keep.
    pub fn generate() -> (Self, String) {
        let key = XChaCha20Poly1305::generate_key(&mut OsRng);
        (
            SealingKey(XChaCha20Poly1305::new(&key)),
            STANDARD.encode(key),
        )
    }

    /// A key from its base64 form (`MEETWIRE_SECRET_KEY` or the key file).
    pub fn from_base64(text: &str) -> Result<Self, SealError> {
        let bytes = STANDARD
            .decode(text.trim())
            .map_err(|_| SealError::BadKey)?;
        XChaCha20Poly1305::new_from_slice(&bytes)
            .map(SealingKey)
            .map_err(|_| SealError::BadKey)
    }

    pub fn seal(&self, plaintext: &[u8]) -> Result<Vec<u8>, SealError> {
        let nonce = XChaCha20Poly1305::generate_nonce(&mut OsRng);
        let mut sealed = nonce.to_vec();
        sealed.extend(
            self.0
                .encrypt(&nonce, plaintext)
                .map_err(|_| SealError::Seal)?,
        );
        Ok(sealed)
    }

    pub fn open(&self, sealed: &[u8]) -> Result<Vec<u8>, SealError> {
        if sealed.len() < NONCE_LEN {
            return Err(SealError::Open);
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        self.0
            .decrypt(XNonce::from_slice(nonce), ciphertext)
            .map_err(|_| SealError::Open)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seals_and_opens_and_detects_tampering() {
        let (key, text) = SealingKey::generate();
        let sealed = key.seal(b"webhook secret").unwrap();
        assert_eq!(key.open(&sealed).unwrap(), b"webhook secret");
        assert_ne!(
            key.seal(b"webhook secret").unwrap(),
            sealed,
            "nonces differ"
        );
        let mut tampered = sealed.clone();
        *tampered.last_mut().unwrap() ^= 1;
        assert_eq!(key.open(&tampered), Err(SealError::Open));
        let (other, _) = SealingKey::generate();
        assert_eq!(other.open(&sealed), Err(SealError::Open));
        assert!(SealingKey::from_base64(&text)
            .unwrap()
            .open(&sealed)
            .is_ok());
        assert_eq!(
            SealingKey::from_base64("c2hvcnQ=").unwrap_err(),
            SealError::BadKey
        );
        assert!(!format!("{key:?}").contains(&text));
    }
}
