//! What happens after a delivery attempt: success, another try after a wait, or failure. Kept
//! pure (the caller passes the random jitter) so the schedule is tested exactly.

use std::time::Duration;

use crate::time::Timestamp;

/// The shortest wait a `Retry-After` may ask for (unless the operator's maximum is shorter):
/// `Retry-After: 0`, or a date already past, must not turn failures into a tight loop.
pub const MIN_RETRY_AFTER: Duration = Duration::from_secs(1);

/// The waits between attempts: one entry per retry, so `delays.len() + 1` attempts in all.
#[derive(Debug, Clone, PartialEq)]
pub struct RetrySchedule {
    delays: Vec<Duration>,
    /// Relative jitter applied to each wait (0.2 = ±20 %).
    jitter: f64,
    /// The longest wait a `Retry-After` header may ask for.
    max_retry_after: Duration,
}

/// The published promise: up to 3 retries at about 2 s, 8 s and 32 s, ±20 %.
impl Default for RetrySchedule {
    fn default() -> Self {
        RetrySchedule {
            delays: [2, 8, 32].map(Duration::from_secs).to_vec(),
            jitter: 0.2,
            max_retry_after: Duration::from_secs(600),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    #[error(
        "retry schedule must be comma-separated non-negative seconds, e.g. 2,8,32 (got {0:?})"
    )]
    Malformed(String),
    #[error("retry schedule may have at most 100 retries")]
    TooLong,
}

impl RetrySchedule {
    /// Parses `2,8,32` (seconds, fractions allowed, one number per retry; empty = no retries).
    pub fn parse(text: &str) -> Result<Self, ScheduleError> {
        let text = text.trim();
        let malformed = || ScheduleError::Malformed(text.to_owned());
        let seconds = if text.is_empty() {
            Vec::new()
        } else {
            text.split(',')
                .map(|part| part.trim().parse::<f64>().map_err(|_| malformed()))
                .collect::<Result<Vec<_>, _>>()?
        };
        Self::from_seconds(&seconds).map_err(|e| match e {
            ScheduleError::Malformed(_) => malformed(),
            other => other,
        })
    }

    /// The schedule waiting `seconds[i]` before retry `i + 1` (each finite, from 0, below
    /// 10⁸ s; at most 100 retries).
    pub fn from_seconds(seconds: &[f64]) -> Result<Self, ScheduleError> {
        if seconds.len() > 100 {
            return Err(ScheduleError::TooLong);
        }
        let delays = seconds
            .iter()
            .map(|&s| {
                (s.is_finite() && (0.0..1e8).contains(&s))
                    .then(|| Duration::from_secs_f64(s))
                    .ok_or_else(|| ScheduleError::Malformed(s.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(RetrySchedule {
            delays,
            ..Self::default()
        })
    }

    pub fn with_jitter(mut self, jitter: f64) -> Self {
        self.jitter = jitter.clamp(0.0, 1.0);
        self
    }

    pub fn with_max_retry_after(mut self, max: Duration) -> Self {
        self.max_retry_after = max;
        self
    }

    /// Attempts in all (first try plus retries).
    pub fn max_attempts(&self) -> u32 {
        self.delays.len() as u32 + 1
    }

    pub fn delays(&self) -> &[Duration] {
        &self.delays
    }

    /// The wait before the next attempt after `attempts_made` failed attempts, or `None` when
    /// the budget of `max_attempts` is spent. `unit` is a random number in [0, 1) for jitter;
    /// a `Retry-After` from the receiver replaces the scheduled wait, held between
    /// [`MIN_RETRY_AFTER`] and the maximum.
    pub fn next_wait(
        &self,
        attempts_made: u32,
        max_attempts: u32,
        retry_after: Option<Duration>,
        unit: f64,
    ) -> Option<Duration> {
        if attempts_made >= max_attempts {
            return None;
        }
        if let Some(asked) = retry_after {
            let floor = MIN_RETRY_AFTER.min(self.max_retry_after);
            return Some(asked.clamp(floor, self.max_retry_after));
        }
        // A delivery resent after the schedule changed may have more attempts than delays.
        let index = (attempts_made as usize).saturating_sub(1);
        let base = self
            .delays
            .get(index)
            .or(self.delays.last())
            .copied()
            .unwrap_or_default();
        let factor = 1.0 + self.jitter * (2.0 * unit.clamp(0.0, 1.0) - 1.0);
        Some(base.mul_f64(factor))
    }
}

/// Why an attempt failed, as shown in the delivery log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// A non-2xx answer (3xx included: redirects are not followed).
    HttpStatus,
    Timeout,
    Connect,
    /// TLS, protocol or body errors after connecting.
    Transport,
    /// The URL's host resolves to an address the operator has not allowed.
    BlockedAddress,
    Dns,
    InvalidUrl,
    /// The subscription was deleted or deactivated before the attempt.
    SubscriptionInactive,
}

impl FailureKind {
    pub const fn code(self) -> &'static str {
        match self {
            FailureKind::HttpStatus => "http_status",
            FailureKind::Timeout => "timeout",
            FailureKind::Connect => "connect",
            FailureKind::Transport => "transport",
            FailureKind::BlockedAddress => "blocked_address",
            FailureKind::Dns => "dns",
            FailureKind::InvalidUrl => "invalid_url",
            FailureKind::SubscriptionInactive => "subscription_inactive",
        }
    }

    /// Failures that no retry can fix: the delivery fails at once.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            FailureKind::BlockedAddress
                | FailureKind::InvalidUrl
                | FailureKind::SubscriptionInactive
        )
    }
}

/// Statuses whose `Retry-After` header is honoured.
pub fn honours_retry_after(status: u16) -> bool {
    status == 429 || status == 503
}

/// `410 Gone` means the receiver wants no more: the subscription is disabled.
pub fn disables_subscription(status: u16) -> bool {
    status == 410
}

/// Parses `Retry-After`: delay-seconds, or an HTTP date (all three forms HTTP allows), read as
/// the wait from `now` (zero if already past).
pub fn parse_retry_after(value: &str, now: Timestamp) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let date = Timestamp::from(httpdate::parse_http_date(value).ok()?);
    Some((date - now).to_std().unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_is_four_attempts_at_2_8_32_with_jitter() {
        let s = RetrySchedule::default();
        assert_eq!(s.max_attempts(), 4);
        assert_eq!(s.next_wait(1, 4, None, 0.5), Some(Duration::from_secs(2)));
        assert_eq!(s.next_wait(2, 4, None, 0.5), Some(Duration::from_secs(8)));
        assert_eq!(s.next_wait(3, 4, None, 0.5), Some(Duration::from_secs(32)));
        assert_eq!(s.next_wait(4, 4, None, 0.5), None);
        assert_eq!(
            s.next_wait(1, 4, None, 0.0),
            Some(Duration::from_secs_f64(1.6))
        );
        let high = s.next_wait(1, 4, None, 0.999_999).unwrap();
        assert!(high < Duration::from_secs_f64(2.4) && high > Duration::from_secs_f64(2.39));
    }

    #[test]
    fn parse_accepts_fractions_and_refuses_garbage() {
        let s = RetrySchedule::parse("0.1, 0.5,2").unwrap();
        assert_eq!(s.max_attempts(), 4);
        assert_eq!(s.delays()[0], Duration::from_millis(100));
        assert_eq!(RetrySchedule::parse("").unwrap().max_attempts(), 1);
        for bad in ["a", "1,,2", "-1", "1;2", "inf"] {
            assert!(RetrySchedule::parse(bad).is_err(), "{bad}");
        }
        let listed = RetrySchedule::from_seconds(&[0.1, 0.5, 2.0]).unwrap();
        assert_eq!(listed, s, "a list of seconds is the same schedule");
        for bad in [f64::NAN, f64::INFINITY, -1.0, 1e8] {
            assert!(RetrySchedule::from_seconds(&[bad]).is_err(), "{bad}");
        }
        assert_eq!(
            RetrySchedule::from_seconds(&[1.0; 101]),
            Err(ScheduleError::TooLong)
        );
    }

    #[test]
    fn retry_after_replaces_the_wait_within_bounds() {
        let s = RetrySchedule::default().with_max_retry_after(Duration::from_secs(60));
        assert_eq!(
            s.next_wait(1, 4, Some(Duration::from_secs(5)), 0.5),
            Some(Duration::from_secs(5))
        );
        assert_eq!(
            s.next_wait(1, 4, Some(Duration::from_secs(3600)), 0.5),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            s.next_wait(1, 4, Some(Duration::ZERO), 0.5),
            Some(MIN_RETRY_AFTER),
            "Retry-After: 0 is held to the floor"
        );
        let short = RetrySchedule::default().with_max_retry_after(Duration::from_millis(300));
        assert_eq!(
            short.next_wait(1, 4, Some(Duration::ZERO), 0.5),
            Some(Duration::from_millis(300)),
            "the operator's maximum wins over the floor"
        );
        assert_eq!(s.next_wait(4, 4, Some(Duration::from_secs(1)), 0.5), None);
    }

    #[test]
    fn retry_after_is_seconds_or_an_http_date() {
        let now = Timestamp::from(std::time::UNIX_EPOCH + Duration::from_secs(1_445_412_000));
        assert_eq!(parse_retry_after(" 7 ", now), Some(Duration::from_secs(7)));
        for date in [
            "Wed, 21 Oct 2015 07:28:00 GMT",
            "Wednesday, 21-Oct-15 07:28:00 GMT",
            "Wed Oct 21 07:28:00 2015",
        ] {
            assert_eq!(
                parse_retry_after(date, now),
                Some(Duration::from_secs(480)),
                "{date}"
            );
        }
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO),
            "a date already past"
        );
        for bad in ["", "-1", "1.5", "soon", "Wed, 32 Oct 2015 07:28:00 GMT"] {
            assert_eq!(parse_retry_after(bad, now), None, "{bad:?}");
        }
    }

    #[test]
    fn resent_deliveries_beyond_the_schedule_use_the_last_wait() {
        let s = RetrySchedule::parse("1,2").unwrap();
        assert_eq!(s.next_wait(5, 8, None, 0.5), Some(Duration::from_secs(2)));
    }
}
