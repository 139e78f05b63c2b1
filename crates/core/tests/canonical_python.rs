//! `canonical_json` must equal Python's
//! `json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":"))` byte for byte,
//! so random JSON values are checked against a real Python. Values are generated in batches and
//! sent to a single `python3` process per batch, because spawning Python per case is too slow.
//! Python is required: without it the test fails rather than silently passing.

use std::io::Write as _;
use std::process::{Command, Stdio};

use meetwire_core::canonical::canonical_json;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{json, Value};

const BATCH: usize = 500;

const PYTHON_CANONICALISER: &str = r#"
import json, sys
out = sys.stdout.buffer
for line in sys.stdin.buffer:
    obj = json.loads(line)
    text = json.dumps(obj, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    out.write(text.encode("utf-8") + b"\n")
"#;

/// Canonicalises each value with Python in one process, one JSON document per line.
fn python_canonical(values: &[Value]) -> Vec<String> {
    // serde_json escapes newlines inside strings, so each document is one line.
    let texts: Vec<String> = values
        .iter()
        .map(|v| serde_json::to_string(v).expect("serialise input"))
        .collect();
    python_canonical_texts(&texts)
}

/// Canonicalises each JSON text (one line each) with Python in one process.
fn python_canonical_texts(texts: &[String]) -> Vec<String> {
    let mut input = String::new();
    for text in texts {
        input.push_str(text);
        input.push('\n');
    }
    let mut child = Command::new("python3")
        .args(["-c", PYTHON_CANONICALISER])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "python3 is required by this test (it is the reference implementation of \
                 Attendee's canonical JSON) but could not be started: {e}. Install python3."
            )
        });
    let mut stdin = child.stdin.take().expect("python stdin");
    // Write from another thread so a full stdout pipe cannot deadlock us.
    let writer = std::thread::spawn(move || stdin.write_all(input.as_bytes()));
    let output = child.wait_with_output().expect("wait for python3");
    writer
        .join()
        .expect("stdin writer thread")
        .expect("write to python3");
    assert!(
        output.status.success(),
        "python3 failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout).expect("python3 printed non-UTF-8");
    // Canonical output escapes newlines, so '\n' only separates documents.
    let lines: Vec<String> = stdout.lines().map(str::to_owned).collect();
    assert_eq!(
        lines.len(),
        texts.len(),
        "python3 printed a wrong number of lines"
    );
    lines
}

fn assert_matches_python(values: &[Value]) {
    let expected = python_canonical(values);
    for (i, (value, want)) in values.iter().zip(&expected).enumerate() {
        let got = canonical_json(value);
        assert!(
            got == *want,
            "mismatch for value #{i}\n  input:  {}\n  python: {want}\n  ours:   {got}",
            serde_json::to_string(value).unwrap_or_default()
        );
    }
}

fn arb_char() -> impl Strategy<Value = char> {
    prop_oneof![
        3 => any::<char>(),
        3 => proptest::char::range('\0', '\x7f'),
        2 => proptest::sample::select(vec![
            '"', '\\', '/', '\n', '\r', '\t', '\u{8}', '\u{c}', '\0', '\u{1b}', '\u{1f}',
            '\u{7f}', '\u{80}', '\u{9f}', 'é', '—', '\u{2028}', '\u{2029}', '\u{e000}',
            '\u{feff}', '\u{fffd}', '\u{ffff}', '😀', '👍', '\u{10ffff}',
        ]),
    ]
}

fn arb_string() -> impl Strategy<Value = String> {
    proptest::collection::vec(arb_char(), 0..12).prop_map(String::from_iter)
}

/// Keys from a small alphabet collide and share prefixes, which is where ordering bugs hide.
fn arb_key() -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::sample::select(vec![
            "", "a", "A", "ab", "b", "_", "é", "\u{ff61}", "😀", "a😀"
        ])
        .prop_map(str::to_owned),
        arb_string(),
    ]
}

fn arb_f64() -> impl Strategy<Value = f64> {
    use proptest::num::f64 as f;
    prop_oneof![
        // Random bit patterns: every exponent, including subnormals and negative zero.
        3 => f::POSITIVE | f::NEGATIVE | f::NORMAL | f::SUBNORMAL | f::ZERO,
        // Short decimals around the fixed/scientific switch-over points (1e-4 and 1e16).
        3 => (-99_999i64..100_000, -12i32..22).prop_map(|(m, e)| {
            format!("{m}e{e}").parse::<f64>().expect("decimal literal")
        }),
        // Integral floats, which Python prints as `123.0` up to 1e16.
        1 => any::<i64>().prop_map(|i| i as f64),
        1 => (0i32..20, 1u32..10).prop_map(|(e, d)| f64::from(d) * 10f64.powi(e)),
        1 => proptest::sample::select(vec![
            0.0, -0.0, 1e16, 1e-4, 1e-5, 9999999999999998.0, 9.999999999999999e-5, 5e-324,
            f64::MAX, f64::MIN, f64::MIN_POSITIVE, 0.1, 0.3, 2.0 / 3.0, 1e22, 1e23,
        ]),
    ]
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        1 => Just(Value::Null),
        1 => any::<bool>().prop_map(Value::Bool),
        1 => any::<i64>().prop_map(Value::from),
        1 => any::<u64>().prop_map(Value::from),
        1 => (-1000i64..1000).prop_map(Value::from),
        3 => arb_f64().prop_map(Value::from),
        3 => arb_string().prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            proptest::collection::vec((arb_key(), inner), 0..8)
                .prop_map(|entries| Value::Object(entries.into_iter().collect())),
        ]
    })
}

fn generate(runner: &mut TestRunner, n: usize) -> Vec<Value> {
    let strategy = arb_json();
    (0..n)
        .map(|_| {
            strategy
                .new_tree(runner)
                .expect("generate a JSON value")
                .current()
        })
        .collect()
}

/// Hand-picked values whose Python form is known (see `hand_examples` below).
fn float_examples() -> Vec<(f64, &'static str)> {
    vec![
        (1e16, "1e+16"),
        (1e-5, "1e-05"),
        (0.0001, "0.0001"),
        (1e22, "1e+22"),
        (5e-324, "5e-324"),
        (1.7976931348623157e308, "1.7976931348623157e+308"),
        (-0.0, "-0.0"),
        (0.0, "0.0"),
        (100.0, "100.0"),
        (1.0, "1.0"),
        (1234567890123456.0, "1234567890123456.0"),
        (12345678901234567.0, "1.2345678901234568e+16"),
        (-2.5e-7, "-2.5e-07"),
        (123456789.125, "123456789.125"),
        (1.5e16, "1.5e+16"),
        (0.1, "0.1"),
        (9.999999999999999e-5, "9.999999999999999e-05"),
        (9999999999999998.0, "9999999999999998.0"),
        (1e100, "1e+100"),
        (-1.5e-300, "-1.5e-300"),
    ]
}

#[test]
fn hand_examples() {
    for (f, want) in float_examples() {
        assert_eq!(canonical_json(&json!(f)), want, "float {f:e}");
    }
    assert_eq!(canonical_json(&json!(u64::MAX)), "18446744073709551615");
    assert_eq!(canonical_json(&json!(i64::MIN)), "-9223372036854775808");
    assert_eq!(
        canonical_json(
            &json!({"b": [1, {"d": null, "c": "\u{7}/é"}], "a": true, "😀": {}, "\u{ff61}": []})
        ),
        "{\"a\":true,\"b\":[1,{\"c\":\"\\u0007/é\",\"d\":null}],\"\u{ff61}\":[],\"😀\":{}}"
    );
}

#[test]
fn hand_examples_agree_with_python() {
    let mut values: Vec<Value> = float_examples()
        .into_iter()
        .map(|(f, _)| json!(f))
        .collect();
    values.push(json!({"\u{ff61}": 1, "😀": 2, "a": {"\u{1f}": "\u{7f}\u{2028}", "": "\"\\"}}));
    values.push(json!([u64::MAX, i64::MIN, 0, -1, "\u{0}\u{8}\u{c}\n\r\t"]));
    assert_matches_python(&values);
}

#[test]
fn deterministic_batch_agrees_with_python() {
    let mut runner = TestRunner::deterministic();
    assert_matches_python(&generate(&mut runner, BATCH));
}

#[test]
fn random_batch_agrees_with_python() {
    // A fresh seed each run widens coverage over time; failures print the offending input.
    let mut runner = TestRunner::new(Config::default());
    assert_matches_python(&generate(&mut runner, BATCH));
}

/// Numbers as a runner writes them, with more digits than needed: parsed here and by Python,
/// both must land on the same double (correctly rounded), or the receiver gets other data than
/// the runner sent.
#[test]
fn numbers_parsed_from_text_agree_with_python() {
    let mut texts: Vec<String> = [
        "0.012053200609833413",
        "9007199254740993.0",
        "2.2250738585072011e-308",
        "1.00000000000000011102230246251565404236316680908203125",
        "0.30000000000000004441",
        "4.9406564584124654e-324",
        "1.7976931348623157e308",
    ]
    .iter()
    .map(|n| format!("[{n}]"))
    .collect();
    let mut runner = TestRunner::new(Config::default());
    let digits = proptest::string::string_regex("-?[1-9]\\.[0-9]{16,22}e-?[0-9]{1,3}")
        .expect("a number pattern");
    for _ in 0..BATCH {
        let number = digits.new_tree(&mut runner).expect("a number").current();
        if number.parse::<f64>().is_ok_and(f64::is_finite) {
            texts.push(format!("[{number}]"));
        }
    }
    let expected = python_canonical_texts(&texts);
    for (text, want) in texts.iter().zip(&expected) {
        let value: Value = serde_json::from_str(text).expect("a JSON number");
        assert_eq!(&canonical_json(&value), want, "parsed from {text}");
    }
}
