//! Signatures must match Attendee (and Standard Webhooks) byte for byte, so they are checked
//! against the contract's vectors, kept in `tests/data/signature-vectors.json` with the Python
//! script that derives them (see `tests/data/README.md`).

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use meetwire_core::canonical::canonical_json;
use meetwire_core::signing::{
    attendee_signature, decode_whsec, standard_webhooks_signature, verify_attendee,
    verify_standard_webhooks, AttendeeCheck, SecretError, WebhookSecret,
};
use serde::Deserialize;

const VECTORS_PATH: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/data/signature-vectors.json"
);
const VECTORS_CHECK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/check_vectors.py");

#[derive(Deserialize)]
struct Vector {
    name: String,
    secret_base64: String,
    payload: serde_json::Value,
    body_as_attendee_sends_it: String,
    canonical: String,
    x_webhook_signature: String,
}

fn vectors() -> Vec<Vector> {
    let text = std::fs::read_to_string(VECTORS_PATH)
        .unwrap_or_else(|e| panic!("cannot read {VECTORS_PATH}: {e}"));
    let vectors: Vec<Vector> =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("bad {VECTORS_PATH}: {e}"));
    assert!(!vectors.is_empty(), "no vectors in {VECTORS_PATH}");
    vectors
}

fn secret(v: &Vector) -> WebhookSecret {
    WebhookSecret::parse(&v.secret_base64).unwrap_or_else(|e| panic!("{}: bad secret: {e}", v.name))
}

/// The vectors themselves are checked against Python's `json` and `hmac`, so a hand edit that
/// agreed with our code but not with Attendee's would be caught. Python is required, as for the
/// canonical-JSON property test: without it this fails rather than passing silently.
#[test]
fn vectors_agree_with_python() {
    let output = std::process::Command::new("python3")
        .arg(VECTORS_CHECK)
        .output()
        .unwrap_or_else(|e| panic!("python3 is required to check {VECTORS_PATH}: {e}"));
    assert!(
        output.status.success(),
        "{VECTORS_CHECK} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn canonical_form_matches_vectors() {
    for v in vectors() {
        assert_eq!(
            canonical_json(&v.payload),
            v.canonical,
            "vector {:?}",
            v.name
        );
    }
}

#[test]
fn attendee_signature_matches_vectors() {
    for v in vectors() {
        let key = secret(&v);
        let sig = attendee_signature(key.as_bytes(), canonical_json(&v.payload).as_bytes());
        assert_eq!(sig, v.x_webhook_signature, "vector {:?}", v.name);
    }
}

#[test]
fn attendee_bodies_verify_by_recanonicalising() {
    for v in vectors() {
        let key = secret(&v);
        let check = verify_attendee(
            key.as_bytes(),
            v.body_as_attendee_sends_it.as_bytes(),
            &v.x_webhook_signature,
        );
        assert_eq!(check, AttendeeCheck::Recanonicalised, "vector {:?}", v.name);
    }
}

#[test]
fn canonical_bodies_verify_raw() {
    for v in vectors() {
        let key = secret(&v);
        let check = verify_attendee(
            key.as_bytes(),
            v.canonical.as_bytes(),
            &v.x_webhook_signature,
        );
        assert_eq!(check, AttendeeCheck::RawBody, "vector {:?}", v.name);
        assert!(check.is_valid());
    }
}

#[test]
fn tampered_attendee_body_or_signature_fails() {
    for v in vectors() {
        let key = secret(&v);
        let tampered = v
            .canonical
            .replacen("\"bot", "\"Bot", 1)
            .replacen("cal", "Cal", 1);
        assert_ne!(tampered, v.canonical);
        assert_eq!(
            verify_attendee(key.as_bytes(), tampered.as_bytes(), &v.x_webhook_signature),
            AttendeeCheck::Mismatch,
            "vector {:?}",
            v.name
        );

        let mut mac = STANDARD
            .decode(&v.x_webhook_signature)
            .unwrap_or_else(|e| panic!("{}: {e}", v.name));
        mac[0] ^= 1;
        let check = verify_attendee(
            key.as_bytes(),
            v.canonical.as_bytes(),
            &STANDARD.encode(mac),
        );
        assert_eq!(check, AttendeeCheck::Mismatch, "vector {:?}", v.name);
        assert!(!check.is_valid());

        let wrong_key = [0x55; 32];
        let check = verify_attendee(&wrong_key, v.canonical.as_bytes(), &v.x_webhook_signature);
        assert_eq!(check, AttendeeCheck::Mismatch, "vector {:?}", v.name);
    }
}

#[test]
fn attendee_check_reports_non_json_and_bad_headers() {
    let key = [7u8; 32];
    let body = b"not json";
    let good = attendee_signature(&key, body);
    assert_eq!(verify_attendee(&key, body, &good), AttendeeCheck::RawBody);
    assert_eq!(
        verify_attendee(&key, b"not json!", &good),
        AttendeeCheck::NotJson
    );
    assert_eq!(
        verify_attendee(&key, body, "***not base64***"),
        AttendeeCheck::Mismatch
    );
    assert_eq!(verify_attendee(&key, body, ""), AttendeeCheck::Mismatch);
}

struct SwVector {
    secret: &'static str,
    id: &'static str,
    timestamp: i64,
    body: &'static str,
    signature: &'static str,
}

/// The reference vectors from the Standard Webhooks libraries (24-byte secrets).
const SW_VECTORS: [SwVector; 2] = [
    SwVector {
        secret: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        id: "msg_p5jXN8AQM9LWM0D4loKWxJek",
        timestamp: 1614265330,
        body: r#"{"test": 2432232314}"#,
        signature: "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
    },
    SwVector {
        secret: "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
        id: "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
        timestamp: 1649367553,
        body: r#"{"email":"test@example.com","username":"test_user"}"#,
        signature: "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=",
    },
];

fn sw_key(v: &SwVector) -> Vec<u8> {
    decode_whsec(v.secret).unwrap_or_else(|e| panic!("{}: {e}", v.secret))
}

#[test]
fn standard_webhooks_reference_vectors() {
    for v in &SW_VECTORS {
        let key = sw_key(v);
        assert_eq!(key.len(), 24);
        let sig = standard_webhooks_signature(&key, v.id, v.timestamp, v.body.as_bytes());
        assert_eq!(sig, v.signature, "msg {}", v.id);
        assert!(verify_standard_webhooks(
            &[&key],
            v.id,
            v.timestamp,
            v.body.as_bytes(),
            v.signature
        ));
    }
}

#[test]
fn standard_webhooks_rejects_tampering() {
    let v = &SW_VECTORS[0];
    let key = sw_key(v);
    let body = v.body.as_bytes();
    let ok = |id: &str, ts: i64, body: &[u8], header: &str| {
        verify_standard_webhooks(&[&key], id, ts, body, header)
    };
    assert!(ok(v.id, v.timestamp, body, v.signature));
    assert!(!ok(
        v.id,
        v.timestamp,
        br#"{"test": 2432232315}"#,
        v.signature
    ));
    assert!(!ok(v.id, v.timestamp + 1, body, v.signature));
    assert!(!ok("msg_other", v.timestamp, body, v.signature));
    assert!(!ok(
        v.id,
        v.timestamp,
        body,
        &v.signature.replace("g0h", "g0i")
    ));
    // Right MAC under another version tag, or no version tag, does not count.
    assert!(!ok(
        v.id,
        v.timestamp,
        body,
        &v.signature.replace("v1,", "v2,")
    ));
    assert!(!ok(v.id, v.timestamp, body, &v.signature["v1,".len()..]));
    assert!(!ok(v.id, v.timestamp, body, ""));
    assert!(!verify_standard_webhooks(
        &[],
        v.id,
        v.timestamp,
        body,
        v.signature
    ));
    assert!(!verify_standard_webhooks(
        &[&[1u8; 24]],
        v.id,
        v.timestamp,
        body,
        v.signature
    ));
}

#[test]
fn standard_webhooks_key_rotation() {
    let old = WebhookSecret::generate();
    let new = WebhookSecret::generate();
    let (id, ts, body) = ("msg_rotation", 1_700_000_000, br#"{"a":1}"#.as_slice());
    let sig_old = standard_webhooks_signature(old.as_bytes(), id, ts, body);
    let sig_new = standard_webhooks_signature(new.as_bytes(), id, ts, body);
    let header = format!("v1a,ignored {sig_old}  {sig_new}");
    let other = WebhookSecret::generate();

    for key in [old.as_bytes(), new.as_bytes()] {
        assert!(verify_standard_webhooks(&[key], id, ts, body, &header));
        assert!(verify_standard_webhooks(
            &[other.as_bytes(), key],
            id,
            ts,
            body,
            &header
        ));
    }
    assert!(!verify_standard_webhooks(
        &[other.as_bytes()],
        id,
        ts,
        body,
        &header
    ));
    // Each single-signature header verifies only with its own key.
    assert!(verify_standard_webhooks(
        &[new.as_bytes()],
        id,
        ts,
        body,
        &sig_new
    ));
    assert!(!verify_standard_webhooks(
        &[old.as_bytes()],
        id,
        ts,
        body,
        &sig_new
    ));
}

#[test]
fn secret_round_trips_through_both_forms() {
    let s = WebhookSecret::from_bytes(core::array::from_fn(|i| i as u8));
    assert_eq!(
        s.to_base64(),
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
    );
    assert_eq!(
        s.to_whsec(),
        "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
    );
    for text in [s.to_base64(), s.to_whsec()] {
        let parsed = WebhookSecret::parse(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
        assert_eq!(parsed.as_bytes(), s.as_bytes());
    }
    assert_eq!(decode_whsec(&s.to_whsec()), Ok(s.as_bytes().to_vec()));
}

#[test]
fn secret_parse_rejects_bad_input() {
    assert_eq!(
        WebhookSecret::parse("").map(|_| ()),
        Err(SecretError::Empty)
    );
    assert_eq!(
        WebhookSecret::parse("whsec_").map(|_| ()),
        Err(SecretError::Empty)
    );
    assert!(matches!(
        WebhookSecret::parse("not base64!"),
        Err(SecretError::Base64(_))
    ));
    // Missing padding and URL-safe alphabet are not the standard form.
    assert!(matches!(
        WebhookSecret::parse("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"),
        Err(SecretError::Base64(_))
    ));
    assert!(matches!(
        WebhookSecret::parse("_-_-AwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="),
        Err(SecretError::Base64(_))
    ));
    assert!(matches!(
        WebhookSecret::parse(" AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="),
        Err(SecretError::Base64(_))
    ));
    // The 24-byte Standard Webhooks reference secret is valid whsec but not a project secret.
    let err = WebhookSecret::parse(SW_VECTORS[0].secret).map(|_| ());
    assert_eq!(
        err,
        Err(SecretError::WrongLength {
            expected: 32,
            actual: 24
        })
    );
    let long = STANDARD.encode([0u8; 33]);
    assert_eq!(
        WebhookSecret::parse(&long).map(|_| ()),
        Err(SecretError::WrongLength {
            expected: 32,
            actual: 33
        })
    );
    let msg = SecretError::WrongLength {
        expected: 32,
        actual: 24,
    }
    .to_string();
    assert!(msg.contains("32") && msg.contains("24"), "{msg}");
    assert_eq!(decode_whsec("whsec_"), Err(SecretError::Empty));
}

#[test]
fn debug_redacts_the_secret() {
    let s = WebhookSecret::from_bytes([0xab; 32]);
    let shown = format!("{s:?} {s:#?}");
    assert_eq!(format!("{s:?}"), "WebhookSecret(**redacted**)");
    assert!(!shown.contains(&s.to_base64()));
    assert!(!shown.to_lowercase().contains("ab, "), "{shown}");
    assert!(!shown.contains("171"), "{shown}");
}
