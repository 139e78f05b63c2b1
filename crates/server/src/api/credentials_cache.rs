//! A short-lived cache of verified credentials. Every API and runner request carries a token;
//! looking each one up in the database put a read on the hot path of every event. A token
//! seen valid in the last 30 seconds is trusted again without one, so a key disabled in the
//! database stops working within that time. Only valid tokens are cached, so guessing costs a
//! lookup every time.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const TTL: Duration = Duration::from_secs(30);
/// Entries kept at most; the cache starts over when full.
const CAPACITY: usize = 10_000;

#[derive(Default)]
pub struct CredentialCache {
    entries: Mutex<HashMap<String, (Instant, String)>>,
}

impl CredentialCache {
    /// Who `token` belongs to, if it was verified recently.
    pub fn get(&self, token: &str) -> Option<String> {
        let entries = self.entries.lock().ok()?;
        let (at, owner) = entries.get(token)?;
        (at.elapsed() < TTL).then(|| owner.clone())
    }

    /// Forgets every verified token (after a key is revoked on this node).
    pub fn clear(&self) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.clear();
        }
    }

    pub fn insert(&self, token: &str, owner: &str) {
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= CAPACITY {
                entries.clear();
            }
            entries.insert(token.to_owned(), (Instant::now(), owner.to_owned()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_verified_tokens() {
        let cache = CredentialCache::default();
        assert_eq!(cache.get("t"), None);
        cache.insert("t", "proj_x");
        assert_eq!(cache.get("t").as_deref(), Some("proj_x"));
        assert_eq!(cache.get("u"), None);
    }
}
