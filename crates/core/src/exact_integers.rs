//! Integers we cannot carry exactly, found in the raw JSON text.
//!
//! Python (and so Attendee) keeps a JSON integer of any size exact. We parse into 64-bit
//! integers, and a literal beyond them silently becomes a float: `123456789012345678901234567890`
//! would be delivered as `1.2345678901234568e+29`, other data than the client sent. The parsed
//! value cannot tell such a float from one written as a float, so the check reads the text, and
//! the API refuses the body instead of changing it.

/// The first integer literal in `json` outside both `i64` and `u64`, if any. `json` should be
/// valid JSON (parse it first); on other text the answer is meaningless but harmless.
pub fn first_inexact_integer(json: &[u8]) -> Option<&str> {
    let mut i = 0;
    while i < json.len() {
        match json[i] {
            b'"' => i = after_string(json, i + 1),
            b'-' | b'0'..=b'9' => {
                let end = json[i..]
                    .iter()
                    .position(|b| !matches!(b, b'0'..=b'9' | b'-' | b'+' | b'.' | b'e' | b'E'))
                    .map_or(json.len(), |n| i + n);
                let literal = &json[i..end];
                if !fits_64_bits(literal) {
                    return std::str::from_utf8(literal).ok();
                }
                i = end;
            }
            _ => i += 1,
        }
    }
    None
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

/// Whether a number literal is a float (any size is fine: it is a float in Python too) or an
/// integer that parses as `i64` or `u64`.
fn fits_64_bits(literal: &[u8]) -> bool {
    if literal.iter().any(|b| matches!(b, b'.' | b'e' | b'E')) {
        return true;
    }
    let Ok(text) = std::str::from_utf8(literal) else {
        return true;
    };
    text.parse::<i64>().is_ok() || text.parse::<u64>().is_ok()
}

#[cfg(test)]
mod tests {
    use super::first_inexact_integer;

    fn inexact(json: &str) -> Option<&str> {
        first_inexact_integer(json.as_bytes())
    }

    #[test]
    fn integers_within_64_bits_and_floats_of_any_size_pass() {
        for json in [
            r#"{"a":0,"b":-1,"c":9223372036854775807,"d":-9223372036854775808}"#,
            r#"[18446744073709551615, 1.5, -0.0, 1e400, 123456789012345678901234567890.0]"#,
            r#"[1E+29, 2e-5, 12345678901234567890123e0]"#,
            r#"{"text":"99999999999999999999999","k\"99999999999999999999":"\\"}"#,
            "[]",
        ] {
            assert_eq!(inexact(json), None, "{json}");
        }
    }

    #[test]
    fn the_first_integer_beyond_64_bits_is_named() {
        assert_eq!(
            inexact(r#"{"n":123456789012345678901234567890}"#),
            Some("123456789012345678901234567890")
        );
        assert_eq!(
            inexact(r#"[1,"2",18446744073709551616]"#),
            Some("18446744073709551616")
        );
        assert_eq!(
            inexact(r#"{"a":{"b":[-9223372036854775809]}}"#),
            Some("-9223372036854775809")
        );
        assert_eq!(
            inexact(r#"{"s":"\\","n":100000000000000000000}"#),
            Some("100000000000000000000")
        );
    }
}
