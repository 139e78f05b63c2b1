//! Canonical JSON, byte for byte as Attendee produces it.
//!
//! Attendee signs `json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":"))`,
//! and receivers verify by re-running that on the parsed body. Our `X-Webhook-Signature` only
//! verifies if we emit the very same bytes, so this module reproduces Python's output exactly:
//! keys sorted by code point at every depth, no whitespace, raw UTF-8, Python's string escapes
//! and Python's `repr` for floats. We sort keys ourselves instead of trusting `serde_json::Map`
//! order, because another crate could unify in `serde_json/preserve_order`.
//!
//! This runs once per delivery, so it writes straight into one `String`.

use std::fmt::Write as _;

use serde_json::{Map, Number, Value};

/// Serialises `value` the way Attendee does before signing (see the module docs).
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::with_capacity(256);
    write_canonical(value, &mut out);
    out
}

/// Appends the canonical form of `value` to `out`, so callers can reuse a buffer.
pub fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(n) => write_number(n, out),
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => write_object(map, out),
    }
}

fn write_object(map: &Map<String, Value>, out: &mut String) {
    out.push('{');
    write_sorted_entries(map.iter(), out);
    out.push('}');
}

/// Writes `key:value` pairs in key order. Rust's `str` order (UTF-8 byte order) equals Python's
/// code point order. The default `Map` (a BTreeMap) is already sorted, so the common case
/// allocates nothing; otherwise a small Vec of references is sorted.
fn write_sorted_entries<'a, I>(entries: I, out: &mut String)
where
    I: Iterator<Item = (&'a String, &'a Value)> + Clone,
{
    if entries.clone().map(|(k, _)| k).is_sorted() {
        write_entries(entries, out);
    } else {
        let mut sorted: Vec<(&String, &Value)> = entries.collect();
        sorted.sort_unstable_by(|a, b| a.0.cmp(b.0));
        write_entries(sorted.into_iter(), out);
    }
}

fn write_entries<'a>(entries: impl Iterator<Item = (&'a String, &'a Value)>, out: &mut String) {
    for (i, (key, value)) in entries.enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_string(key, out);
        out.push(':');
        write_canonical(value, out);
    }
}

fn write_number(n: &Number, out: &mut String) {
    // Writing into a `String` cannot fail, so the `fmt::Result`s below carry no information.
    if let Some(i) = n.as_i64() {
        let _ = write!(out, "{i}");
    } else if let Some(u) = n.as_u64() {
        let _ = write!(out, "{u}");
    } else if let Some(f) = n.as_f64() {
        write_f64(f, out);
    } else {
        // Only reachable with `serde_json/arbitrary_precision`; its text is the best we have.
        let _ = write!(out, "{n}");
    }
}

/// Python's `json` escapes exactly these, with lowercase hex for the `\u00xx` form; everything
/// else (including `/`, DEL and non-ASCII) is written raw.
fn write_string(s: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push('"');
    let mut start = 0;
    for (i, &b) in s.as_bytes().iter().enumerate() {
        let short = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0x00..=0x1f => "",
            _ => continue,
        };
        // `i` indexes an ASCII byte, so both slices fall on char boundaries.
        out.push_str(&s[start..i]);
        if short.is_empty() {
            out.push_str("\\u00");
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0x0f)]));
        } else {
            out.push_str(short);
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
}

/// Python's `float.__repr__`: the shortest digits that round-trip, in fixed notation when the
/// decimal exponent is in `-4..16` (always with a fractional part), otherwise `d.ddde±XX`.
fn write_f64(f: f64, out: &mut String) {
    if !f.is_finite() {
        // `serde_json::Value` cannot hold these; mirror Python (`allow_nan=True`) regardless.
        out.push_str(if f.is_nan() {
            "NaN"
        } else if f > 0.0 {
            "Infinity"
        } else {
            "-Infinity"
        });
        return;
    }
    if f.is_sign_negative() {
        out.push('-');
    }
    let d = ShortestDecimal::of(f.abs());
    let digits = d.digits();
    let exp = d.exp;
    if (-4..0).contains(&exp) {
        out.push_str("0.");
        for _ in 1..exp.unsigned_abs() {
            out.push('0');
        }
        out.push_str(digits);
    } else if (0..16).contains(&exp) {
        let int_len = exp.unsigned_abs() as usize + 1;
        if digits.len() <= int_len {
            out.push_str(digits);
            for _ in digits.len()..int_len {
                out.push('0');
            }
            out.push_str(".0");
        } else {
            let (int, frac) = digits.split_at(int_len);
            out.push_str(int);
            out.push('.');
            out.push_str(frac);
        }
    } else {
        let (first, rest) = digits.split_at(1.min(digits.len()));
        out.push_str(first);
        if !rest.is_empty() {
            out.push('.');
            out.push_str(rest);
        }
        out.push('e');
        out.push(if exp < 0 { '-' } else { '+' });
        let _ = write!(out, "{:02}", exp.unsigned_abs());
    }
}

/// The shortest round-trip digits of a non-negative finite `f64`, with the value
/// `d1.d2d3… × 10^exp`. The digits come from `ryu`, which, like Python's `repr` (David Gay's
/// algorithm), picks the closest of the shortest candidates; Rust's own `{:e}` may pick a
/// different one of equal length (measured: `956090665840206.2` printed as `…206.3`).
struct ShortestDecimal {
    buf: [u8; 32],
    len: usize,
    exp: i32,
}

impl ShortestDecimal {
    fn of(f: f64) -> Self {
        let mut ryu = ryu::Buffer::new();
        let text = ryu.format_finite(f).as_bytes();
        let mut d = ShortestDecimal {
            buf: [0; 32],
            len: 0,
            exp: 0,
        };
        let (mantissa, exponent) = match text.iter().position(|&b| b == b'e') {
            Some(at) => (&text[..at], parse_exponent(&text[at + 1..])),
            None => (text, 0),
        };
        let point = mantissa
            .iter()
            .position(|&b| b == b'.')
            .unwrap_or(mantissa.len());
        let mut first_significant = None;
        for (i, &b) in mantissa.iter().filter(|b| b.is_ascii_digit()).enumerate() {
            if first_significant.is_none() && b != b'0' {
                first_significant = Some(i);
            }
            if first_significant.is_some() && d.len < d.buf.len() {
                d.buf[d.len] = b;
                d.len += 1;
            }
        }
        let Some(first) = first_significant else {
            d.buf[0] = b'0';
            d.len = 1;
            return d;
        };
        while d.len > 1 && d.buf[d.len - 1] == b'0' {
            d.len -= 1;
        }
        d.exp = point as i32 - first as i32 - 1 + exponent;
        d
    }

    fn digits(&self) -> &str {
        // Only ASCII digits were stored.
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or("0")
    }
}

fn parse_exponent(text: &[u8]) -> i32 {
    let (negative, digits) = match text.split_first() {
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        _ => (false, text),
    };
    let value = digits
        .iter()
        .fold(0i32, |acc, b| acc * 10 + i32::from(b - b'0'));
    if negative {
        -value
    } else {
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn float(f: f64) -> String {
        let mut s = String::new();
        write_f64(f, &mut s);
        s
    }

    #[test]
    fn floats_pick_the_closest_shortest_digits() {
        assert_eq!(float(956090665840206.2), "956090665840206.2");
    }

    #[test]
    fn floats_follow_python_repr() {
        let cases = [
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (1.0, "1.0"),
            (0.1, "0.1"),
            (100.0, "100.0"),
            (0.0001, "0.0001"),
            (0.00012, "0.00012"),
            (1e-5, "1e-05"),
            (-2.5e-7, "-2.5e-07"),
            (123456789.125, "123456789.125"),
            (1234567890123456.0, "1234567890123456.0"),
            (1e16, "1e+16"),
            (1.5e16, "1.5e+16"),
            (12345678901234567.0, "1.2345678901234568e+16"),
            (1e22, "1e+22"),
            (5e-324, "5e-324"),
            (f64::MAX, "1.7976931348623157e+308"),
            (f64::MIN_POSITIVE, "2.2250738585072014e-308"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "Infinity"),
            (f64::NEG_INFINITY, "-Infinity"),
        ];
        for (f, want) in cases {
            assert_eq!(float(f), want, "formatting {f:e}");
        }
    }

    #[test]
    fn strings_escape_like_python() {
        let v = json!("a\"b\\c/d\n\r\t\u{8}\u{c}\u{0}\u{1f}\u{7f}é😀\u{2028}");
        assert_eq!(
            canonical_json(&v),
            "\"a\\\"b\\\\c/d\\n\\r\\t\\b\\f\\u0000\\u001f\u{7f}é😀\u{2028}\""
        );
    }

    #[test]
    fn keys_sort_by_code_point_at_every_depth() {
        let v =
            json!({"b": {"z": 1, "a": [ {"y": null, "x": true} ]}, "a": 1, "\u{ff61}": 2, "😀": 3});
        assert_eq!(
            canonical_json(&v),
            "{\"a\":1,\"b\":{\"a\":[{\"x\":true,\"y\":null}],\"z\":1},\"\u{ff61}\":2,\"😀\":3}"
        );
    }

    #[test]
    fn unsorted_entries_are_sorted() {
        // Exercises the path taken when `serde_json/preserve_order` keeps insertion order.
        let (a, b, c) = (Value::from(1), Value::from(2), json!({"y": 1, "x": 2}));
        let (ka, kb, kc) = ("a".to_owned(), "b".to_owned(), "c".to_owned());
        let mut out = String::new();
        write_sorted_entries([(&kc, &c), (&kb, &b), (&ka, &a)].into_iter(), &mut out);
        assert_eq!(out, "\"a\":1,\"b\":2,\"c\":{\"x\":2,\"y\":1}");
    }

    #[test]
    fn integers_stay_integers() {
        let v = json!([0, -1, i64::MIN, u64::MAX, 1.0]);
        assert_eq!(
            canonical_json(&v),
            "[0,-1,-9223372036854775808,18446744073709551615,1.0]"
        );
    }

    #[test]
    fn write_canonical_appends() {
        let mut out = String::from("x=");
        write_canonical(&json!({"k": []}), &mut out);
        assert_eq!(out, "x={\"k\":[]}");
    }
}
