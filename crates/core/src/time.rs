//! Timestamp formats of the contract. Webhook payloads use Python's `isoformat()` (`+00:00`,
//! microseconds omitted when zero) because Attendee receivers compare them as strings; REST
//! responses and calendar payloads end in `Z`.

use chrono::{DateTime, SecondsFormat, Utc};

pub type Timestamp = DateTime<Utc>;

/// `2025-01-01T12:00:00.123456+00:00`, or `2025-01-01T12:00:00+00:00` when the fraction is zero.
pub fn webhook_timestamp(t: &Timestamp) -> String {
    if t.timestamp_subsec_micros() == 0 {
        t.format("%Y-%m-%dT%H:%M:%S+00:00").to_string()
    } else {
        t.format("%Y-%m-%dT%H:%M:%S%.6f+00:00").to_string()
    }
}

/// `2025-01-01T12:00:00.123456Z` (microseconds, as Attendee's REST API prints them).
pub fn rest_timestamp(t: &Timestamp) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// The current time truncated to microseconds, the precision every stored timestamp has, so
/// that what is returned now equals what is read back later.
pub fn now() -> Timestamp {
    from_micros(Utc::now().timestamp_micros())
}

/// A timestamp from microseconds since the Unix epoch (how storage keeps them).
pub fn from_micros(micros: i64) -> Timestamp {
    DateTime::from_timestamp_micros(micros).unwrap_or(DateTime::UNIX_EPOCH)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_match_the_contract() {
        let t = from_micros(1_735_732_800_123_456);
        assert_eq!(webhook_timestamp(&t), "2025-01-01T12:00:00.123456+00:00");
        assert_eq!(rest_timestamp(&t), "2025-01-01T12:00:00.123456Z");
        let whole = from_micros(1_735_732_800_000_000);
        assert_eq!(webhook_timestamp(&whole), "2025-01-01T12:00:00+00:00");
        let small = from_micros(1_735_732_800_000_010);
        assert_eq!(
            webhook_timestamp(&small),
            "2025-01-01T12:00:00.000010+00:00"
        );
    }
}
