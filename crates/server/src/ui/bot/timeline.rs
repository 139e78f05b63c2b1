//! The meeting drawn as a timeline: one lane for the bot's state, one per participant with
//! their presence and, thicker, when they spoke. Built here as plain shapes in SVG user units,
//! so the template only writes them out and the page needs no script to draw it.

use meetwire_core::time::Timestamp;
use meetwire_store::StoredRecord;
use serde_json::Value;

/// Drawing width in SVG units, and the part kept for lane names on the left.
const WIDTH: f64 = 1000.0;
const LABELS: f64 = 150.0;
const LANE: f64 = 28.0;
const TOP: f64 = 24.0;

pub struct Bar {
    pub x: String,
    pub y: String,
    pub w: String,
    pub h: String,
    pub class: &'static str,
    pub title: String,
}

pub struct Label {
    pub y: String,
    pub text: String,
}

pub struct Tick {
    pub x: String,
    pub text: String,
    /// Where the label sits on its tick (the last one ends there, inside the drawing).
    pub anchor: &'static str,
}

pub struct Timeline {
    pub height: String,
    pub bars: Vec<Bar>,
    pub labels: Vec<Label>,
    pub ticks: Vec<Tick>,
}

fn text(v: &Value, key: &str) -> String {
    v[key].as_str().unwrap_or_default().to_owned()
}

/// The class a state is drawn with.
fn state_class(state: &str) -> &'static str {
    match state {
        "fatal_error" => "tl-bad",
        "ended" | "data_deleted" => "tl-done",
        s if s.starts_with("joined") => "tl-live",
        _ => "tl-wait",
    }
}

struct Scale {
    start: Timestamp,
    span_ms: f64,
}

impl Scale {
    fn x(&self, t: &Timestamp) -> f64 {
        let ms = (*t - self.start).num_milliseconds() as f64;
        LABELS + (ms / self.span_ms).clamp(0.0, 1.0) * (WIDTH - LABELS)
    }
}

fn n(v: f64) -> String {
    format!("{v:.1}")
}

/// Draws the state events and participant events of a bot, from the first to `end`.
pub fn build(states: &[StoredRecord], people: &[StoredRecord], end: Timestamp) -> Option<Timeline> {
    let start = states.iter().chain(people).map(|r| r.created_at).min()?;
    let end = end.max(start + chrono::Duration::seconds(1));
    let scale = Scale {
        start,
        span_ms: (end - start).num_milliseconds() as f64,
    };
    let mut bars = Vec::new();
    let mut labels = vec![Label {
        y: n(TOP + LANE / 2.0 + 4.0),
        text: "Bot".into(),
    }];
    for (i, event) in states.iter().enumerate() {
        let until = states.get(i + 1).map_or(end, |next| next.created_at);
        let state = text(&event.payload, "new_state");
        let x = scale.x(&event.created_at);
        bars.push(Bar {
            x: n(x),
            y: n(TOP + 4.0),
            w: n((scale.x(&until) - x).max(1.0)),
            h: n(LANE - 8.0),
            class: state_class(&state),
            title: format!("{state} from {}", event.created_at.format("%H:%M:%S")),
        });
    }
    // Participants in the order they first appear, each with an open join and speech.
    let mut lanes: Vec<(String, Option<Timestamp>, Option<Timestamp>)> = Vec::new();
    for event in people {
        let name = text(&event.payload, "participant_name");
        let lane = match lanes.iter().position(|(n, _, _)| *n == name) {
            Some(i) => i,
            None => {
                lanes.push((name.clone(), None, None));
                labels.push(Label {
                    y: n(TOP + LANE * lanes.len() as f64 + LANE / 2.0 + 4.0),
                    text: name.clone(),
                });
                lanes.len() - 1
            }
        };
        let y = TOP + LANE * (lane + 1) as f64;
        let at = event.created_at;
        let (_, joined, speaking) = &mut lanes[lane];
        let mut close =
            |from: Timestamp, class: &'static str, top: f64, height: f64, what: &str| {
                let x = scale.x(&from);
                bars.push(Bar {
                    x: n(x),
                    y: n(y + top),
                    w: n((scale.x(&at) - x).max(1.0)),
                    h: n(height),
                    class,
                    title: format!(
                        "{name} {what} {}–{}",
                        from.format("%H:%M:%S"),
                        at.format("%H:%M:%S")
                    ),
                });
            };
        match event.payload["event_type"].as_str() {
            Some("join") => *joined = Some(at),
            Some("leave") => {
                if let Some(from) = joined.take() {
                    close(from, "tl-present", 10.0, 8.0, "present");
                }
            }
            Some("speech_start") => *speaking = Some(at),
            Some("speech_stop") => {
                if let Some(from) = speaking.take() {
                    close(from, "tl-speech", 5.0, 18.0, "spoke");
                }
            }
            _ => {}
        }
    }
    // Who is still there (or still speaking) is drawn up to the end.
    for (lane, (name, joined, speaking)) in lanes.iter().enumerate() {
        let y = TOP + LANE * (lane + 1) as f64;
        for (from, class, top, height) in [
            (joined, "tl-present", 10.0, 8.0),
            (speaking, "tl-speech", 5.0, 18.0),
        ] {
            if let Some(from) = from {
                let x = scale.x(from);
                bars.push(Bar {
                    x: n(x),
                    y: n(y + top),
                    w: n((scale.x(&end) - x).max(1.0)),
                    h: n(height),
                    class,
                    title: format!("{name} from {}", from.format("%H:%M:%S")),
                });
            }
        }
    }
    let ticks = (0..=4)
        .map(|i| {
            let at =
                start + chrono::Duration::milliseconds((scale.span_ms * i as f64 / 4.0) as i64);
            Tick {
                x: n(scale.x(&at)),
                text: at.format("%H:%M:%S").to_string(),
                anchor: if i == 4 { "end" } else { "middle" },
            }
        })
        .collect();
    Some(Timeline {
        height: n(TOP + LANE * (lanes.len() + 1) as f64 + 8.0),
        bars,
        labels,
        ticks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use meetwire_core::time::from_micros;
    use serde_json::json;

    fn rec(seconds: i64, payload: Value) -> StoredRecord {
        StoredRecord {
            seq: seconds,
            payload,
            created_at: from_micros(seconds * 1_000_000),
        }
    }

    #[test]
    fn draws_states_presence_and_speech_within_the_frame() {
        let states = [
            rec(0, json!({"new_state": "joining"})),
            rec(2, json!({"new_state": "joined_recording"})),
            rec(10, json!({"new_state": "ended"})),
        ];
        let people = [
            rec(
                3,
                json!({"participant_name": "<b>Ann</b>", "event_type": "join"}),
            ),
            rec(
                4,
                json!({"participant_name": "<b>Ann</b>", "event_type": "speech_start"}),
            ),
            rec(
                6,
                json!({"participant_name": "<b>Ann</b>", "event_type": "speech_stop"}),
            ),
        ];
        let t = build(&states, &people, from_micros(10_000_000)).unwrap();
        assert_eq!(t.labels.len(), 2);
        assert_eq!(t.labels[1].text, "<b>Ann</b>");
        let classes: Vec<_> = t.bars.iter().map(|b| b.class).collect();
        assert_eq!(
            classes,
            ["tl-wait", "tl-live", "tl-done", "tl-speech", "tl-present"]
        );
        for bar in &t.bars {
            let x: f64 = bar.x.parse().unwrap();
            let w: f64 = bar.w.parse().unwrap();
            assert!(x >= LABELS && x + w <= WIDTH + 1.0, "{} {}", bar.x, bar.w);
        }
        assert!(build(&[], &[], from_micros(0)).is_none());
    }
}
