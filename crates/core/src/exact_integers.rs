//! Integer literals read as Python (and so Attendee) reads them, found in the raw JSON text.
//!
//! Python keeps a JSON integer of any size exact. We parse into 64-bit integers, and a literal
//! beyond them silently becomes a float: `123456789012345678901234567890` would be delivered as
//! `1.2345678901234568e+29`, other data than the client sent. And serde_json reads `-0` as the
//! float `-0.0` where Python reads the integer `0`. The parsed value cannot tell either from a
//! literal written as a float, so this reads the text: too-large integers are refused (the API
//! answers 400 instead of changing the data) and `-0` is rewritten `0`, as Python reads it.

use std::borrow::Cow;
use std::ops::Range;

/// An integer literal outside both `i64` and `u64`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the integer {0} is outside the 64-bit range and would not be kept exactly")]
pub struct InexactInteger(pub String);

/// `json` with every integer literal as Python reads it: the text itself, or a copy with each
/// `-0` made `0` (the same length: the sign becomes a space). `json` should be valid JSON;
/// on other text the answer is meaningless but harmless (parsing it fails anyway).
pub fn as_python_reads(json: &[u8]) -> Result<Cow<'_, [u8]>, InexactInteger> {
    let mut text = Cow::Borrowed(json);
    for literal in integer_literals(json) {
        let digits = &json[literal.clone()];
        if digits == b"-0" {
            text.to_mut()[literal.start] = b' ';
        } else if !fits_64_bits(digits) {
            return Err(InexactInteger(String::from_utf8_lossy(digits).into_owned()));
        }
    }
    Ok(text)
}

/// Where the integer literals (numbers without a fraction or exponent) outside strings are.
fn integer_literals(json: &[u8]) -> impl Iterator<Item = Range<usize>> + '_ {
    let mut i = 0;
    std::iter::from_fn(move || {
        while i < json.len() {
            match json[i] {
                b'"' => i = after_string(json, i + 1),
                b'-' | b'0'..=b'9' => {
                    let start = i;
                    i = json[i..]
                        .iter()
                        .position(|b| !matches!(b, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E'))
                        .map_or(json.len(), |n| start + n);
                    let number = &json[start..i];
                    if !number.iter().any(|b| matches!(b, b'.' | b'e' | b'E')) {
                        return Some(start..i);
                    }
                }
                _ => i += 1,
            }
        }
        None
    })
}

/// The index just past the string whose contents start at `i`.
fn after_string(json: &[u8], mut i: usize) -> usize {
    while i < json.len() {
        match json[i] {
            b'\\' => i += 2,
            b'"' => return i + 1,
            _ => i += 1,
        }
    }
    json.len()
}

fn fits_64_bits(digits: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(digits) else {
        return true;
    };
    text.parse::<i64>().is_ok() || text.parse::<u64>().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(json: &str) -> Result<String, InexactInteger> {
        as_python_reads(json.as_bytes()).map(|t| String::from_utf8(t.into_owned()).unwrap())
    }

    #[test]
    fn integers_within_64_bits_and_floats_of_any_size_are_kept_as_written() {
        for json in [
            r#"{"a":0,"b":-1,"c":9223372036854775807,"d":-9223372036854775808}"#,
            r#"[18446744073709551615, 1.5, -0.0, 1e400, 123456789012345678901234567890.0]"#,
            r#"[1E+29, 2e-5, 12345678901234567890123e0, -0e0, -0.5]"#,
            r#"{"text":"99999999999999999999999","k\"99999999999999999999":"\\", "-0": "-0"}"#,
            "[]",
        ] {
            let kept = as_python_reads(json.as_bytes()).unwrap();
            assert!(matches!(kept, Cow::Borrowed(_)), "{json}");
        }
    }

    #[test]
    fn the_first_integer_beyond_64_bits_is_named() {
        let inexact = |json: &str| read(json).unwrap_err().0;
        assert_eq!(
            inexact(r#"{"n":123456789012345678901234567890}"#),
            "123456789012345678901234567890"
        );
        assert_eq!(
            inexact(r#"[1,"2",18446744073709551616]"#),
            "18446744073709551616"
        );
        assert_eq!(
            inexact(r#"{"a":{"b":[-9223372036854775809]}}"#),
            "-9223372036854775809"
        );
        assert_eq!(
            inexact(r#"{"s":"\\","n":100000000000000000000}"#),
            "100000000000000000000"
        );
    }

    #[test]
    fn minus_zero_is_read_as_the_integer_zero() {
        assert_eq!(
            read(r#"{"z":-0,"s":"-0","f":-0.0,"l":[-0]}"#).unwrap(),
            r#"{"z": 0,"s":"-0","f":-0.0,"l":[ 0]}"#
        );
        let value: serde_json::Value =
            serde_json::from_slice(&as_python_reads(b"[-0]").unwrap()).unwrap();
        assert_eq!(value, serde_json::json!([0]));
        assert!(value[0].is_u64(), "an integer, as Python reads it");
    }
}
