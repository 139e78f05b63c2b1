//! Failed sign-ins counted per account and per client address over a sliding window; past the
//! limit, sign-in is refused without checking the password (so guessing stops even when the
//! guess is right). Counts are kept in this process: several nodes each apply the limit.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The window failures are counted over.
const WINDOW: Duration = Duration::from_secs(15 * 60);
/// Failures allowed per account and per address within the window.
const PER_ACCOUNT: usize = 5;
const PER_ADDRESS: usize = 20;
/// Keys tracked at most; the oldest half is dropped when full.
const CAPACITY: usize = 100_000;

#[derive(Default)]
pub struct SignInThrottle {
    failures: Mutex<HashMap<String, VecDeque<Instant>>>,
}

fn account_key(email: &str) -> String {
    format!("account:{}", email.trim().to_lowercase())
}

fn address_key(address: &str) -> String {
    format!("address:{address}")
}

impl SignInThrottle {
    /// Whether a sign-in for `email` from `address` must be refused now.
    pub fn blocked(&self, email: &str, address: Option<&str>) -> bool {
        let Ok(mut failures) = self.failures.lock() else {
            return true;
        };
        let mut over = |key: String, limit: usize| {
            failures.get_mut(&key).is_some_and(|times| {
                while times.front().is_some_and(|t| t.elapsed() > WINDOW) {
                    times.pop_front();
                }
                times.len() >= limit
            })
        };
        over(account_key(email), PER_ACCOUNT)
            || address.is_some_and(|a| over(address_key(a), PER_ADDRESS))
    }

    /// Counts a failed sign-in.
    pub fn failed(&self, email: &str, address: Option<&str>) {
        let Ok(mut failures) = self.failures.lock() else {
            return;
        };
        if failures.len() >= CAPACITY {
            failures.retain(|_, times| times.back().is_some_and(|t| t.elapsed() < WINDOW / 2));
        }
        let now = Instant::now();
        failures
            .entry(account_key(email))
            .or_default()
            .push_back(now);
        if let Some(a) = address {
            failures.entry(address_key(a)).or_default().push_back(now);
        }
    }

    /// A successful sign-in forgives the account's failures (not the address's).
    pub fn succeeded(&self, email: &str) {
        if let Ok(mut failures) = self.failures.lock() {
            failures.remove(&account_key(email));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_an_account_after_its_limit_and_forgives_on_success() {
        let t = SignInThrottle::default();
        for _ in 0..PER_ACCOUNT {
            assert!(!t.blocked("A@x.org", Some("1.2.3.4")));
            t.failed("a@x.org ", Some("1.2.3.4"));
        }
        assert!(t.blocked("a@X.org", None));
        assert!(!t.blocked("b@x.org", Some("1.2.3.4")));
        t.succeeded("a@x.org");
        assert!(!t.blocked("a@x.org", None));
    }

    #[test]
    fn blocks_an_address_across_accounts() {
        let t = SignInThrottle::default();
        for i in 0..PER_ADDRESS {
            t.failed(&format!("u{i}@x.org"), Some("5.6.7.8"));
        }
        assert!(t.blocked("new@x.org", Some("5.6.7.8")));
        assert!(!t.blocked("new@x.org", Some("9.9.9.9")));
    }
}
