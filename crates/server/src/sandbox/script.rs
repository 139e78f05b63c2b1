//! Sandbox meetings: the script format, the built-in scenarios, and `sandbox://NAME?speed=N`
//! meeting URLs. A script is a list of steps, each a runner record (without its `id`, which the
//! sandbox assigns so that a replay after a restart stores nothing twice) and the delay before it.
//!
//! ```json
//! {"steps": [{"after_ms": 500, "record": {"kind": "bot_event", "event_type": "joined_meeting"}},
//!            {"after_ms": 2000, "record": {"kind": "utterance", "speaker_name": "Ann",
//!             "speaker_uuid": "7", "duration_ms": 1500, "transcript": "Hello"}}],
//!  "repeat_from": 1}
//! ```
//! `timestamp_ms` may be left out of records (the sandbox uses the time it posts them);
//! `repeat_from` loops the steps from that index until the bot is told to leave.

use meetwire_core::record::RunnerRecord;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

/// Most steps a custom script may have.
pub const MAX_STEPS: usize = 10_000;
/// Fastest allowed time compression.
pub const MAX_SPEED: f64 = 10_000.0;
/// Slowest allowed: a thousandth of real time (a meeting slower than that is a mistake in the
/// URL, not a test of anything).
pub const MIN_SPEED: f64 = 0.001;
/// Longest meeting URL accepted (real meeting links are far shorter).
pub const MAX_MEETING_URL_LEN: usize = 2048;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Script {
    pub steps: Vec<Step>,
    #[serde(default)]
    pub repeat_from: Option<usize>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Step {
    #[serde(default)]
    pub after_ms: u64,
    pub record: Map<String, Value>,
}

impl Step {
    /// The runner record this step posts, with its id and (if absent) its timestamp.
    pub fn to_record(&self, id: &str, timestamp_ms: i64) -> Result<RunnerRecord, String> {
        let mut record = self.record.clone();
        record.insert("id".into(), Value::String(id.to_owned()));
        let timed = matches!(
            record.get("kind").and_then(Value::as_str),
            Some("utterance" | "chat_message" | "participant_event")
        );
        if timed && !record.contains_key("timestamp_ms") {
            record.insert("timestamp_ms".into(), Value::from(timestamp_ms));
        }
        serde_json::from_value(Value::Object(record)).map_err(|e| e.to_string())
    }
}

impl Script {
    /// Checks every step's record and the loop index, so a bad script is refused at creation.
    pub fn validate(&self) -> Result<(), String> {
        if self.steps.is_empty() || self.steps.len() > MAX_STEPS {
            return Err(format!("sandbox_script must have 1 to {MAX_STEPS} steps"));
        }
        for (i, step) in self.steps.iter().enumerate() {
            step.to_record("check", 0)
                .map_err(|e| format!("sandbox_script step {i}: {e}"))?;
        }
        if self.repeat_from.is_some_and(|r| r >= self.steps.len()) {
            return Err("sandbox_script repeat_from must index a step".into());
        }
        Ok(())
    }
}

/// A sandbox meeting as its bot's meeting URL describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct SandboxMeeting {
    pub scenario: String,
    pub speed: f64,
    pub script: Script,
}

/// The names of the built-in scenarios.
pub const SCENARIOS: &[&str] = &["standup", "denied", "crash", "long"];

impl SandboxMeeting {
    /// `Some` for a `sandbox://` URL, `None` for a real meeting link, or why the URL is refused.
    pub fn from_meeting_url(url: &str, custom: Option<&Value>) -> Result<Option<Self>, String> {
        if url.chars().count() > MAX_MEETING_URL_LEN {
            return Err(format!(
                "meeting_url must be at most {MAX_MEETING_URL_LEN} characters"
            ));
        }
        let parsed = url::Url::parse(url).map_err(|_| format!("Invalid meeting_url: {url}"))?;
        match parsed.scheme() {
            "sandbox" => {}
            "https" | "http" if parsed.host_str().is_some() => {
                return match custom {
                    Some(_) => Err("sandbox_script needs a meeting_url of sandbox://custom".into()),
                    None => Ok(None),
                };
            }
            _ => {
                return Err(format!(
                    "meeting_url must be an https:// meeting link or a sandbox:// scenario: {url}"
                ))
            }
        }
        let scenario = parsed.host_str().unwrap_or("").to_owned();
        let mut speed = 1.0;
        for (key, value) in parsed.query_pairs() {
            match key.as_ref() {
                "speed" => {
                    speed = value
                        .parse::<f64>()
                        .ok()
                        .filter(|s| (MIN_SPEED..=MAX_SPEED).contains(s))
                        .ok_or_else(|| {
                            format!(
                                "sandbox speed must be a number from {MIN_SPEED} to {MAX_SPEED}"
                            )
                        })?;
                }
                other => return Err(format!("Unknown sandbox URL parameter: {other}")),
            }
        }
        let script = match (scenario.as_str(), custom) {
            ("custom", Some(script)) => {
                let script: Script = serde_json::from_value(script.clone())
                    .map_err(|e| format!("Invalid sandbox_script: {e}"))?;
                script.validate()?;
                script
            }
            ("custom", None) => return Err("sandbox://custom needs a sandbox_script".into()),
            (_, Some(_)) => {
                return Err("sandbox_script needs a meeting_url of sandbox://custom".into())
            }
            (name, None) => scenario_script(name).ok_or_else(|| {
                format!(
                    "Unknown sandbox scenario: {name} (known: {}, custom)",
                    SCENARIOS.join(", ")
                )
            })?,
        };
        Ok(Some(SandboxMeeting {
            scenario,
            speed,
            script,
        }))
    }
}

fn step(after_ms: u64, record: Value) -> Step {
    let record = match record {
        Value::Object(map) => map,
        _ => Map::new(),
    };
    Step { after_ms, record }
}

fn event(after_ms: u64, event_type: &str) -> Step {
    step(
        after_ms,
        json!({"kind": "bot_event", "event_type": event_type}),
    )
}

fn event_with(after_ms: u64, event_type: &str, sub_type: &str) -> Step {
    step(
        after_ms,
        json!({"kind": "bot_event", "event_type": event_type, "event_sub_type": sub_type}),
    )
}

/// A meeting participant of the scenarios.
struct Person {
    name: &'static str,
    uuid: &'static str,
    host: bool,
}

const BOT: Person = Person {
    name: "Meeting Bot",
    uuid: "1",
    host: false,
};
const ALICE: Person = Person {
    name: "Alice Host",
    uuid: "100",
    host: true,
};
const BOB: Person = Person {
    name: "Bob",
    uuid: "101",
    host: false,
};
const CAROL: Person = Person {
    name: "Carol Zoë",
    uuid: "102",
    host: false,
};

fn participant(after_ms: u64, who: &Person, event_type: &str) -> Step {
    step(
        after_ms,
        json!({"kind": "participant_event", "participant_name": who.name,
               "participant_uuid": who.uuid, "participant_user_uuid": format!("user-{}", who.uuid),
               "participant_is_host": who.host, "is_bot": who.uuid == BOT.uuid,
               "event_type": event_type}),
    )
}

fn say(after_ms: u64, who: &Person, text: &str, duration_ms: u64) -> Step {
    step(
        after_ms,
        json!({"kind": "utterance", "speaker_name": who.name, "speaker_uuid": who.uuid,
               "speaker_user_uuid": format!("user-{}", who.uuid), "speaker_is_host": who.host,
               "duration_ms": duration_ms, "transcript": text}),
    )
}

fn chat(after_ms: u64, who: &Person, text: &str) -> Step {
    step(
        after_ms,
        json!({"kind": "chat_message", "to": "everyone", "text": text, "sender_name": who.name,
               "sender_uuid": who.uuid, "sender_user_uuid": format!("user-{}", who.uuid)}),
    )
}

fn log(after_ms: u64, level: &str, entry_type: &str, message: &str) -> Step {
    step(
        after_ms,
        json!({"kind": "log", "level": level, "entry_type": entry_type, "message": message}),
    )
}

fn joined_and_recording() -> Vec<Step> {
    vec![
        event(1500, "joined_meeting"),
        participant(100, &BOT, "join"),
        event(500, "recording_permission_granted"),
    ]
}

/// The script of a built-in scenario.
pub fn scenario_script(name: &str) -> Option<Script> {
    let mut steps = Vec::new();
    let mut repeat_from = None;
    match name {
        "standup" => {
            steps.push(event(500, "put_in_waiting_room"));
            steps.extend(joined_and_recording());
            steps.extend([
                participant(300, &ALICE, "join"),
                participant(400, &BOB, "join"),
                participant(400, &CAROL, "join"),
                participant(500, &ALICE, "speech_start"),
                step(
                    2000,
                    json!({"kind": "utterance", "speaker_name": ALICE.name,
                           "speaker_uuid": ALICE.uuid, "speaker_user_uuid": "user-100",
                           "speaker_is_host": true, "duration_ms": 1800,
                           "transcript": "Good morning, let's start the standup.",
                           "words": [{"word": "Good", "start_ms": 0, "end_ms": 300},
                                     {"word": "morning,", "start_ms": 300, "end_ms": 800},
                                     {"word": "let's", "start_ms": 900, "end_ms": 1100},
                                     {"word": "start", "start_ms": 1100, "end_ms": 1300},
                                     {"word": "the", "start_ms": 1300, "end_ms": 1400},
                                     {"word": "standup.", "start_ms": 1400, "end_ms": 1800}]}),
                ),
                participant(100, &ALICE, "speech_stop"),
                chat(700, &BOB, "Morning! I'll go first."),
                participant(500, &BOB, "speech_start"),
                participant(1500, &CAROL, "speech_start"),
                say(500, &BOB, "Yesterday I finished the retry logic.", 2200),
                participant(100, &BOB, "speech_stop"),
                say(
                    1200,
                    &CAROL,
                    "Sorry to cut in — \"retries\" worked for me too.",
                    1900,
                ),
                participant(100, &CAROL, "speech_stop"),
                log(
                    300,
                    "info",
                    "uncategorized",
                    "Sandbox: transcription running",
                ),
                participant(800, &CAROL, "leave"),
                say(700, &ALICE, "Thanks everyone, see you tomorrow.", 1500),
                event(1500, "meeting_ended"),
                event(2000, "post_processing_completed"),
            ]);
        }
        "denied" => {
            steps.push(event(500, "put_in_waiting_room"));
            steps.push(log(
                2000,
                "warning",
                "uncategorized",
                "Host denied the request to join",
            ));
            steps.push(event_with(
                500,
                "could_not_join_meeting",
                "request_to_join_denied",
            ));
        }
        "crash" => {
            steps.extend(joined_and_recording());
            steps.extend([
                participant(300, &ALICE, "join"),
                say(1500, &ALICE, "Can everyone hear me?", 1200),
                log(
                    800,
                    "error",
                    "uncategorized",
                    "Sandbox: the meeting process crashed",
                ),
                event_with(200, "fatal_error", "process_terminated"),
            ]);
        }
        "long" => {
            steps.extend(joined_and_recording());
            steps.extend([
                participant(300, &ALICE, "join"),
                participant(300, &BOB, "join"),
            ]);
            repeat_from = Some(steps.len());
            steps.extend([
                participant(500, &ALICE, "speech_start"),
                say(2000, &ALICE, "Here is another point on the agenda.", 1800),
                participant(100, &ALICE, "speech_stop"),
                chat(1000, &BOB, "Noted."),
                participant(500, &BOB, "speech_start"),
                say(1500, &BOB, "Agreed, let's keep going.", 1400),
                participant(100, &BOB, "speech_stop"),
            ]);
        }
        _ => return None,
    }
    Some(Script { steps, repeat_from })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_scenarios_are_valid_scripts() {
        for name in SCENARIOS {
            let script = scenario_script(name).unwrap();
            script.validate().unwrap();
        }
        assert!(scenario_script("nope").is_none());
    }

    #[test]
    fn urls_pick_scenario_and_speed() {
        let m = SandboxMeeting::from_meeting_url("sandbox://standup?speed=20", None)
            .unwrap()
            .unwrap();
        assert_eq!((m.scenario.as_str(), m.speed), ("standup", 20.0));
        assert_eq!(
            SandboxMeeting::from_meeting_url("https://zoom.us/j/123", None).unwrap(),
            None
        );
        for bad in [
            "sandbox://nope",
            "sandbox://standup?speed=0",
            "sandbox://standup?speed=abc",
            "sandbox://standup?speed=1e-300",
            "sandbox://standup?speed=0.0009",
            "sandbox://standup?pace=2",
            "sandbox://custom",
            "ftp://x",
            "not a url",
        ] {
            assert!(
                SandboxMeeting::from_meeting_url(bad, None).is_err(),
                "{bad}"
            );
        }
        let longest = format!("https://zoom.us/j/{}", "9".repeat(MAX_MEETING_URL_LEN - 18));
        assert_eq!(SandboxMeeting::from_meeting_url(&longest, None), Ok(None));
        assert_eq!(
            SandboxMeeting::from_meeting_url(&format!("{longest}9"), None).unwrap_err(),
            "meeting_url must be at most 2048 characters"
        );
    }

    #[test]
    fn custom_scripts_are_checked() {
        let good = json!({"steps": [{"after_ms": 1, "record": {"kind": "bot_event", "event_type": "joined_meeting"}}]});
        assert!(SandboxMeeting::from_meeting_url("sandbox://custom", Some(&good)).is_ok());
        let bad_record =
            json!({"steps": [{"record": {"kind": "bot_event", "event_type": "dancing"}}]});
        assert!(SandboxMeeting::from_meeting_url("sandbox://custom", Some(&bad_record)).is_err());
        let bad_loop = json!({"steps": [{"record": {"kind": "log", "level": "info", "message": "m"}}], "repeat_from": 3});
        assert!(SandboxMeeting::from_meeting_url("sandbox://custom", Some(&bad_loop)).is_err());
        assert!(
            SandboxMeeting::from_meeting_url("https://meet.google.com/x", Some(&good)).is_err()
        );
    }
}
