//! `meetwire verify`: checks a saved webhook body (and its headers) against a project secret.
//!
//! When a receiver rejects a delivery, the first question is "was it signed with the secret I
//! have?". This answers it offline, the way receivers check: `X-Webhook-Signature` over the raw
//! body or its canonical re-serialisation (Attendee's method), and the Standard Webhooks
//! `webhook-signature` over `id.timestamp.body`. The checks live here and `listen` reuses them,
//! so both tools always agree.
//!
//! Exit status: 0 when every signature given is valid, 1 when one is not, 2 on usage errors.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use meetwire_core::signing::{
    decode_whsec, verify_attendee, verify_standard_webhooks, AttendeeCheck, SecretError,
    WebhookSecret,
};
use meetwire_core::time::now;

/// A Standard Webhooks timestamp further than this from now is refused by receivers (their
/// libraries' default), as `listen` does.
pub const TIMESTAMP_TOLERANCE_SECS: i64 = 5 * 60;

/// The verdict of the first secret that verifies, else the first secret's.
pub fn by_any_key(keys: &[Vec<u8>], check: impl Fn(&[u8]) -> Verdict) -> Verdict {
    let mut first = None;
    for key in keys {
        let verdict = check(key);
        if matches!(verdict, Verdict::Valid(_)) {
            return verdict;
        }
        first.get_or_insert(verdict);
    }
    first.unwrap_or(Verdict::Absent)
}

/// The `--secret` flag of `listen` and `verify`.
#[derive(Args, Clone)]
pub struct Secrets {
    /// The project's webhook secret: base64 (as the API shows it) or `whsec_…`. Repeat it (or
    /// separate with commas) while a secret rotates: a signature by any of them is valid.
    #[arg(
        long = "secret",
        env = "MEETWIRE_WEBHOOK_SECRET",
        hide_env_values = true,
        required = true,
        value_delimiter = ','
    )]
    pub texts: Vec<String>,
}

impl Secrets {
    /// Each secret's bytes.
    pub fn keys(&self) -> Result<Vec<Vec<u8>>, SecretError> {
        self.texts.iter().map(|text| parse_secret(text)).collect()
    }
}

#[derive(Args, Clone)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub secrets: Secrets,
    /// File holding the request body exactly as received; `-` reads standard input.
    #[arg(long)]
    pub body: PathBuf,
    /// The `X-Webhook-Signature` value.
    #[arg(long)]
    pub signature: Option<String>,
    /// The `webhook-id` value (Standard Webhooks).
    #[arg(long)]
    pub webhook_id: Option<String>,
    /// The `webhook-timestamp` value, Unix seconds (Standard Webhooks).
    #[arg(long, allow_negative_numbers = true)]
    pub webhook_timestamp: Option<i64>,
    /// The `webhook-signature` value, e.g. `v1,abc…` (Standard Webhooks).
    #[arg(long)]
    pub webhook_signature: Option<String>,
    /// File of raw `Name: value` header lines (a request dump) to take the signature headers
    /// from; names are case-insensitive, and flags given explicitly win over it.
    #[arg(long)]
    pub headers: Option<PathBuf>,
}

/// A mistake in how `verify` was called (exit status 2).
#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    #[error("--secret: {0}")]
    Secret(#[from] SecretError),
    #[error("cannot read {what} {path}: {source}")]
    Read {
        what: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("--body and --headers cannot both be read from standard input")]
    BothStdin,
    #[error(
        "no signature to check: give --signature, the three --webhook-* values, or --headers \
         with X-Webhook-Signature or webhook-signature"
    )]
    NothingToCheck,
    #[error("a Standard Webhooks check needs webhook-id, webhook-timestamp and webhook-signature; missing: {0}")]
    Incomplete(String),
}

/// The outcome of one signature check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// It matched; the text says how.
    Valid(&'static str),
    /// It did not; the text says why.
    Invalid(String),
    /// The request carried no such signature.
    Absent,
}

impl Verdict {
    /// `valid`, `invalid` or `absent`, as `listen --json` reports it.
    pub fn label(&self) -> &'static str {
        match self {
            Verdict::Valid(_) => "valid",
            Verdict::Invalid(_) => "invalid",
            Verdict::Absent => "absent",
        }
    }

    /// ✓, ✗ or – for one-line output.
    pub fn mark(&self) -> &'static str {
        match self {
            Verdict::Valid(_) => "✓",
            Verdict::Invalid(_) => "✗",
            Verdict::Absent => "–",
        }
    }

    pub fn is_invalid(&self) -> bool {
        matches!(self, Verdict::Invalid(_))
    }

    /// `valid (how)`, `invalid (why)` or `absent`.
    pub fn describe(&self) -> String {
        match self {
            Verdict::Valid(how) => format!("valid ({how})"),
            Verdict::Invalid(why) => format!("invalid ({why})"),
            Verdict::Absent => "absent".into(),
        }
    }
}

/// Reads a secret as the API shows it (base64 of 32 bytes) or in `whsec_` form; the latter may
/// have any length, as other Standard Webhooks tools' secrets do. Surrounding whitespace (a
/// newline from a file or environment variable) is ignored.
pub fn parse_secret(text: &str) -> Result<Vec<u8>, SecretError> {
    let text = text.trim();
    if text.starts_with("whsec_") {
        decode_whsec(text)
    } else {
        WebhookSecret::parse(text).map(|secret| secret.as_bytes().to_vec())
    }
}

/// Checks an `X-Webhook-Signature` value the way either kind of receiver would.
pub fn check_attendee(key: &[u8], body: &[u8], header: &str) -> Verdict {
    match verify_attendee(key, body, header) {
        AttendeeCheck::RawBody => Verdict::Valid("HMAC of the body as received"),
        AttendeeCheck::Recanonicalised => Verdict::Valid("HMAC of the re-canonicalised body"),
        AttendeeCheck::Mismatch => {
            Verdict::Invalid("matches neither the raw body nor its canonical form".into())
        }
        AttendeeCheck::NotJson => {
            Verdict::Invalid("does not match the raw body, which is not JSON".into())
        }
    }
}

/// The three Standard Webhooks headers, each possibly missing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StandardHeaders {
    pub id: Option<String>,
    pub timestamp: Option<String>,
    pub signature: Option<String>,
}

impl StandardHeaders {
    /// How far `webhook-timestamp` lies from `now` (`"N s in the past"` or `"… in the future"`)
    /// when that is beyond what receivers accept; `None` within it, or without a timestamp.
    pub fn staleness(&self, now: i64) -> Option<String> {
        let t = self.unix_timestamp()?;
        if now.abs_diff(t) <= TIMESTAMP_TOLERANCE_SECS.unsigned_abs() {
            return None;
        }
        Some(if t <= now {
            format!("{} s in the past", now.abs_diff(t))
        } else {
            format!("{} s in the future", t.abs_diff(now))
        })
    }

    fn is_empty(&self) -> bool {
        self.id.is_none() && self.timestamp.is_none() && self.signature.is_none()
    }

    /// The names of the headers that are missing, if some but not all are present.
    fn missing(&self) -> Option<String> {
        let missing: Vec<&str> = [
            ("webhook-id", self.id.is_none()),
            ("webhook-timestamp", self.timestamp.is_none()),
            ("webhook-signature", self.signature.is_none()),
        ]
        .into_iter()
        .filter_map(|(name, absent)| absent.then_some(name))
        .collect();
        (!missing.is_empty() && !self.is_empty()).then(|| missing.join(", "))
    }

    /// The timestamp as Unix seconds, if present and an integer.
    pub fn unix_timestamp(&self) -> Option<i64> {
        self.timestamp
            .as_deref()
            .and_then(|t| t.trim().parse().ok())
    }

    /// `Absent` without any of the headers; `Invalid` when one is missing, the timestamp is not
    /// an integer or no `v1` signature matches. The timestamp's age is not judged here.
    pub fn check(&self, key: &[u8], body: &[u8]) -> Verdict {
        if self.is_empty() {
            return Verdict::Absent;
        }
        if let Some(missing) = self.missing() {
            return Verdict::Invalid(format!("missing {missing}"));
        }
        let (Some(id), Some(signature)) = (&self.id, &self.signature) else {
            return Verdict::Invalid("missing headers".into());
        };
        let Some(timestamp) = self.unix_timestamp() else {
            return Verdict::Invalid("webhook-timestamp is not Unix seconds".into());
        };
        if verify_standard_webhooks(&[key], id, timestamp, body, signature) {
            Verdict::Valid("v1 signature of id.timestamp.body")
        } else {
            Verdict::Invalid("no v1 signature matches id.timestamp.body".into())
        }
    }
}

/// The signature headers found in a request dump.
#[derive(Debug, Default, PartialEq, Eq)]
struct DumpedHeaders {
    attendee: Option<String>,
    standard: StandardHeaders,
}

/// Picks the signature headers out of raw `Name: value` lines. Lines without a colon (such as
/// a request line) are skipped; a blank line after the headers ends them, so a dump that goes
/// on with the body works too.
fn parse_header_dump(text: &str) -> DumpedHeaders {
    let mut found = DumpedHeaders::default();
    let mut seen_any = false;
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            if seen_any {
                break;
            }
            continue;
        }
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        seen_any = true;
        let value = Some(value.trim().to_owned());
        match name.trim().to_ascii_lowercase().as_str() {
            "x-webhook-signature" => found.attendee = value,
            "webhook-id" => found.standard.id = value,
            "webhook-timestamp" => found.standard.timestamp = value,
            "webhook-signature" => found.standard.signature = value,
            _ => {}
        }
    }
    found
}

fn is_stdin(path: &Path) -> bool {
    path.as_os_str() == "-"
}

fn read_input(what: &'static str, path: &Path) -> Result<Vec<u8>, UsageError> {
    let read = if is_stdin(path) {
        let mut bytes = Vec::new();
        std::io::stdin().read_to_end(&mut bytes).map(|_| bytes)
    } else {
        std::fs::read(path)
    };
    read.map_err(|source| UsageError::Read {
        what,
        path: path.to_owned(),
        source,
    })
}

/// What to check: the headers file, overridden by the flags given.
fn signatures(args: &VerifyArgs) -> Result<DumpedHeaders, UsageError> {
    let mut found = match &args.headers {
        Some(path) => parse_header_dump(&String::from_utf8_lossy(&read_input("headers", path)?)),
        None => DumpedHeaders::default(),
    };
    let standard = &mut found.standard;
    if let Some(signature) = &args.signature {
        found.attendee = Some(signature.clone());
    }
    if let Some(id) = &args.webhook_id {
        standard.id = Some(id.clone());
    }
    if let Some(timestamp) = args.webhook_timestamp {
        standard.timestamp = Some(timestamp.to_string());
    }
    if let Some(signature) = &args.webhook_signature {
        standard.signature = Some(signature.clone());
    }
    if found.attendee.is_none() && found.standard.is_empty() {
        return Err(UsageError::NothingToCheck);
    }
    if let Some(missing) = found.standard.missing() {
        return Err(UsageError::Incomplete(missing));
    }
    Ok(found)
}

/// Every check made, as `(what was checked, verdict)`.
type Checks = Vec<(String, Verdict)>;

/// What `verify` found: a line about the body, each signature's verdict, and a note on the
/// Standard Webhooks timestamp when receivers would refuse it as stale.
struct Findings {
    header: String,
    checks: Checks,
    stale_note: Option<String>,
}

fn check_all(args: &VerifyArgs) -> Result<Findings, UsageError> {
    if args.headers.as_deref().is_some_and(is_stdin) && is_stdin(&args.body) {
        return Err(UsageError::BothStdin);
    }
    let keys = args.secrets.keys()?;
    let found = signatures(args)?;
    let body = read_input("body", &args.body)?;
    let source = if is_stdin(&args.body) {
        "standard input".to_owned()
    } else {
        args.body.display().to_string()
    };
    let mut checks = Vec::new();
    if let Some(header) = &found.attendee {
        checks.push((
            "X-Webhook-Signature".to_owned(),
            by_any_key(&keys, |key| check_attendee(key, &body, header)),
        ));
    }
    let standard = &found.standard;
    if !standard.is_empty() {
        let what = format!(
            "webhook-signature (webhook-id {}, webhook-timestamp {})",
            standard.id.as_deref().unwrap_or("-"),
            standard.timestamp.as_deref().unwrap_or("-")
        );
        checks.push((what, by_any_key(&keys, |key| standard.check(key, &body))));
    }
    let stale_note = standard.staleness(now().timestamp()).map(|distance| {
        format!(
            "note: webhook-timestamp is {distance}; a receiver enforcing the usual \
             {TIMESTAMP_TOLERANCE_SECS} s tolerance (against replays) would refuse it"
        )
    });
    Ok(Findings {
        header: format!("body: {source} ({} bytes)", body.len()),
        checks,
        stale_note,
    })
}

/// Runs the command and returns its exit status (printing errors itself, since usage errors
/// have their own status).
pub fn main(args: VerifyArgs) -> ExitCode {
    let Findings {
        header,
        checks,
        stale_note,
    } = match check_all(&args) {
        Ok(done) => done,
        Err(e) => {
            eprintln!("meetwire verify: {e}");
            return ExitCode::from(2);
        }
    };
    println!("{header}");
    for (what, verdict) in &checks {
        println!("{what}: {}", verdict.describe());
    }
    if let Some(note) = stale_note {
        println!("{note}");
    }
    if checks.iter().any(|(_, verdict)| verdict.is_invalid()) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use meetwire_core::signing::{attendee_signature, standard_webhooks_signature};

    #[test]
    fn header_dumps_are_read_case_insensitively_up_to_the_body() {
        let dump = "POST /hook HTTP/1.1\r\nHost: 127.0.0.1:9000\r\nx-webhook-SIGNATURE: abc=\r\n\
                    Webhook-Id: msg_1\r\nwebhook-timestamp:  12 \r\nWEBHOOK-SIGNATURE: v1,x\r\n\
                    \r\nwebhook-id: in-body\r\n";
        let found = parse_header_dump(dump);
        assert_eq!(found.attendee.as_deref(), Some("abc="));
        assert_eq!(found.standard.id.as_deref(), Some("msg_1"));
        assert_eq!(found.standard.unix_timestamp(), Some(12));
        assert_eq!(found.standard.signature.as_deref(), Some("v1,x"));
    }

    #[test]
    fn secrets_in_both_forms_and_other_whsec_lengths() {
        let secret = WebhookSecret::generate();
        assert_eq!(
            parse_secret(&secret.to_base64()).ok(),
            Some(secret.as_bytes().to_vec())
        );
        assert_eq!(
            parse_secret(&format!("{}\n", secret.to_whsec())).ok(),
            Some(secret.as_bytes().to_vec())
        );
        assert_eq!(
            parse_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").map(|k| k.len()),
            Ok(24)
        );
        assert!(parse_secret("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_err());
        assert!(parse_secret("").is_err());
    }

    #[test]
    fn staleness_is_beyond_the_tolerance_either_way() {
        let at = |t: i64| StandardHeaders {
            id: None,
            timestamp: Some(t.to_string()),
            signature: None,
        };
        let now = 1_700_000_000;
        assert_eq!(at(now - 300).staleness(now), None);
        assert_eq!(at(now + 300).staleness(now), None);
        assert_eq!(at(now - 301).staleness(now).unwrap(), "301 s in the past");
        assert_eq!(at(now + 301).staleness(now).unwrap(), "301 s in the future");
        let far = at(i64::MIN).staleness(now).unwrap();
        assert!(far.ends_with("s in the past"), "{far}");
    }

    #[test]
    fn standard_headers_verdicts() {
        let key = [7u8; 32];
        let body = br#"{"a":1}"#;
        let good = StandardHeaders {
            id: Some("msg".into()),
            timestamp: Some("1700000000".into()),
            signature: Some(standard_webhooks_signature(
                &key,
                "msg",
                1_700_000_000,
                body,
            )),
        };
        assert!(matches!(good.check(&key, body), Verdict::Valid(_)));
        assert!(good.check(&key, br#"{"a":2}"#).is_invalid());
        assert_eq!(
            StandardHeaders::default().check(&key, body),
            Verdict::Absent
        );
        let partial = StandardHeaders {
            id: None,
            ..good.clone()
        };
        assert_eq!(
            partial.check(&key, body),
            Verdict::Invalid("missing webhook-id".into())
        );
        let bad_time = StandardHeaders {
            timestamp: Some("soon".into()),
            ..good
        };
        assert!(bad_time.check(&key, body).is_invalid());
    }

    #[test]
    fn attendee_verdicts_say_how() {
        let key = [1u8; 32];
        let canonical = br#"{"a":1,"b":"x"}"#;
        let sig = attendee_signature(&key, canonical);
        assert_eq!(
            check_attendee(&key, canonical, &sig),
            Verdict::Valid("HMAC of the body as received")
        );
        assert_eq!(
            check_attendee(&key, br#"{"b": "x", "a": 1}"#, &sig),
            Verdict::Valid("HMAC of the re-canonicalised body")
        );
        assert!(check_attendee(&key, b"not json", &sig).is_invalid());
        assert!(check_attendee(&key, br#"{"a":2}"#, &sig).is_invalid());
    }
}
