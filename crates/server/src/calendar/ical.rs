//! iCalendar feeds (RFC 5545), the "secret address" Google, Outlook and Apple publish: parsed
//! with the `icalendar` crate, recurring events expanded with `rrule` over a window, exceptions
//! (EXDATE, overridden and cancelled instances) applied. Hostile input is bounded: the feed's
//! size is capped where it is fetched, each event expands to at most [`MAX_INSTANCES`]
//! occurrences (and `rrule` gives up on a rule that matches nothing for too long), and a feed
//! yields at most [`MAX_EVENTS`] events.

use std::collections::HashMap;

use chrono::{DateTime, Duration, FixedOffset, NaiveDate, NaiveDateTime, TimeZone, Utc};
use icalendar::parser::{read_calendar, unfold, Component, Property};
use meetwire_core::calendar::find_meeting_url;
use meetwire_core::time::Timestamp;
use meetwire_store::SyncedEvent;
use serde_json::{json, Map, Value};
use windows_timezones::WindowsTimezone;

/// Occurrences of one recurring event kept within the window.
pub const MAX_INSTANCES: u16 = 500;
/// Events (occurrences included) kept from one feed.
pub const MAX_EVENTS: usize = 10_000;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IcalError {
    #[error("not an iCalendar feed: {0}")]
    NotCalendar(String),
}

/// The span of time whose occurrences are kept.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub start: Timestamp,
    pub end: Timestamp,
}

impl Window {
    /// Whether an event from `start` to `end` lies (partly) in the window.
    pub fn overlaps(&self, start: &Timestamp, end: &Timestamp) -> bool {
        *start < self.end && *end > self.start
    }
}

/// A start or end as written: an instant, or a day (all-day events).
#[derive(Debug, Clone, Copy, PartialEq)]
struct When {
    at: Timestamp,
    /// The IANA zone it was written in, kept so recurrences follow its daylight saving.
    zone: Option<chrono_tz::Tz>,
    all_day: bool,
}

fn param<'a>(prop: &'a Property<'_>, key: &str) -> Option<&'a str> {
    prop.params
        .iter()
        .find(|p| p.key.as_str().eq_ignore_ascii_case(key))
        .and_then(|p| p.val.as_ref())
        .map(|v| v.as_str().trim_matches('"'))
}

/// The zone a TZID names: an IANA name; a Windows name (Outlook's `W. Europe Standard Time`),
/// through CLDR's table; or a name that ends in an IANA one
/// (`/mozilla.org/20050126_1/America/New_York`).
pub(super) fn named_zone(tzid: &str) -> Option<chrono_tz::Tz> {
    let tzid = tzid.trim();
    if let Ok(tz) = tzid.parse() {
        return Some(tz);
    }
    if let Ok(windows) = tzid.parse::<WindowsTimezone>() {
        return Some(windows.into());
    }
    tzid.match_indices('/')
        .find_map(|(i, _)| tzid[i + 1..].parse().ok())
}

/// The feed's own VTIMEZONE definitions, for TZIDs that name no known zone (an Exchange
/// "Customized Time Zone", say): each read as its standard time's UTC offset, all year. Daylight
/// saving is lost for those, which is better than reading their times as UTC.
#[derive(Default)]
struct CustomZones(HashMap<String, FixedOffset>);

impl CustomZones {
    fn read(calendar: &[Component<'_>]) -> CustomZones {
        let zones = calendar
            .iter()
            .filter(|c| c.name.as_str().eq_ignore_ascii_case("VTIMEZONE"))
            .filter_map(|zone| {
                let tzid = text(zone, "TZID")?;
                let standard = zone
                    .components
                    .iter()
                    .find(|c| c.name.as_str().eq_ignore_ascii_case("STANDARD"))
                    .or_else(|| zone.components.first())?;
                let offset = parse_offset(&text(standard, "TZOFFSETTO")?)?;
                Some((tzid, offset))
            })
            .collect();
        CustomZones(zones)
    }
}

/// `+0100`, `-0530`, `+013000`: a UTC offset.
fn parse_offset(text: &str) -> Option<FixedOffset> {
    let text = text.trim();
    let (sign, digits) = match text.split_at_checked(1)? {
        ("+", rest) => (1, rest),
        ("-", rest) => (-1, rest),
        _ => return None,
    };
    if !matches!(digits.len(), 4 | 6) || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let part =
        |range: std::ops::Range<usize>| digits.get(range).and_then(|d| d.parse::<i32>().ok());
    let seconds = part(0..2)? * 3600 + part(2..4)? * 60 + part(4..6).unwrap_or(0);
    FixedOffset::east_opt(sign * seconds)
}

/// One date or date-time value of `prop` (`text` may be one item of a comma list).
fn parse_when(prop: &Property<'_>, text: &str, custom: &CustomZones) -> Option<When> {
    let text = text.trim();
    if param(prop, "VALUE").is_some_and(|v| v.eq_ignore_ascii_case("DATE")) || text.len() == 8 {
        let day = NaiveDate::parse_from_str(text, "%Y%m%d").ok()?;
        return Some(When {
            at: day.and_hms_opt(0, 0, 0)?.and_utc(),
            zone: None,
            all_day: true,
        });
    }
    if let Some(utc) = text.strip_suffix('Z') {
        let naive = NaiveDateTime::parse_from_str(utc, "%Y%m%dT%H%M%S").ok()?;
        return Some(When {
            at: naive.and_utc(),
            zone: None,
            all_day: false,
        });
    }
    let naive = NaiveDateTime::parse_from_str(text, "%Y%m%dT%H%M%S").ok()?;
    let tzid = param(prop, "TZID");
    let zone = tzid.and_then(named_zone);
    let at = match (zone, tzid.and_then(|t| custom.0.get(t))) {
        (Some(tz), _) => tz
            .from_local_datetime(&naive)
            .earliest()?
            .with_timezone(&Utc),
        (None, Some(offset)) => offset
            .from_local_datetime(&naive)
            .single()?
            .with_timezone(&Utc),
        // An unknown zone without a definition: its times are read as UTC.
        (None, None) => naive.and_utc(),
    };
    Some(When {
        at,
        zone,
        all_day: false,
    })
}

/// `PT1H30M`, `P1D`, `-PT15M`…: an iCalendar duration.
fn parse_duration(text: &str) -> Option<Duration> {
    let (sign, rest) = match text.strip_prefix('-') {
        Some(rest) => (-1, rest),
        None => (1, text.strip_prefix('+').unwrap_or(text)),
    };
    let rest = rest.strip_prefix('P')?;
    let mut total = 0i64;
    let mut number = String::new();
    let mut in_time = false;
    for c in rest.chars() {
        match c {
            'T' => in_time = true,
            '0'..='9' => number.push(c),
            unit => {
                let n: i64 = number.parse().ok()?;
                number.clear();
                total += n * match (unit, in_time) {
                    ('W', false) => 7 * 86_400,
                    ('D', false) => 86_400,
                    ('H', true) => 3_600,
                    ('M', true) => 60,
                    ('S', true) => 1,
                    _ => return None,
                };
            }
        }
    }
    number.is_empty().then(|| Duration::seconds(sign * total))
}

fn utc_text(t: &Timestamp) -> String {
    t.format("%Y%m%dT%H%M%SZ").to_string()
}

/// One VEVENT's properties, read once.
struct Vevent<'c> {
    component: &'c Component<'c>,
    custom: &'c CustomZones,
    uid: String,
    start: When,
    end: Timestamp,
    recurrence_id: Option<Timestamp>,
    cancelled: bool,
}

impl<'c> Vevent<'c> {
    fn read(component: &'c Component<'c>, custom: &'c CustomZones) -> Option<Vevent<'c>> {
        let start_prop = component.find_prop("DTSTART")?;
        let start = parse_when(start_prop, start_prop.val.as_str(), custom)?;
        let end = match (
            component.find_prop("DTEND"),
            component.find_prop("DURATION"),
        ) {
            (Some(end), _) => parse_when(end, end.val.as_str(), custom)?.at,
            (None, Some(duration)) => start.at + parse_duration(duration.val.as_str())?,
            (None, None) if start.all_day => start.at + Duration::days(1),
            (None, None) => start.at,
        };
        Some(Vevent {
            component,
            custom,
            uid: text(component, "UID").unwrap_or_default(),
            start,
            end: end.max(start.at),
            recurrence_id: component
                .find_prop("RECURRENCE-ID")
                .and_then(|p| parse_when(p, p.val.as_str(), custom))
                .map(|w| w.at),
            cancelled: text(component, "STATUS")
                .is_some_and(|s| s.eq_ignore_ascii_case("CANCELLED")),
        })
    }

    fn props<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'s Property<'c>> + 's {
        self.component
            .properties
            .iter()
            .filter(move |p| p.name.as_str().eq_ignore_ascii_case(name))
    }

    fn is_recurring(&self) -> bool {
        self.props("RRULE").next().is_some() || self.props("RDATE").next().is_some()
    }

    /// Every instant a list property (`EXDATE`, `RDATE`) names.
    fn instants(&self, name: &str) -> Vec<Timestamp> {
        self.props(name)
            .flat_map(|p| {
                p.val
                    .as_str()
                    .split(',')
                    .filter_map(|item| parse_when(p, item, self.custom).map(|w| w.at))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// The starts of its occurrences that overlap `window`, at most [`MAX_INSTANCES`].
    fn occurrences(&self, window: Window) -> Vec<Timestamp> {
        let length = self.end - self.start.at;
        if !self.is_recurring() {
            return vec![self.start.at];
        }
        let mut rule = match self.start.zone {
            Some(tz) => format!(
                "DTSTART;TZID={}:{}",
                tz.name(),
                self.start.at.with_timezone(&tz).format("%Y%m%dT%H%M%S")
            ),
            None => format!("DTSTART:{}", utc_text(&self.start.at)),
        };
        for rrule in self.props("RRULE") {
            rule.push_str(&format!("\nRRULE:{}", rrule.val.as_str()));
        }
        for (name, instants) in [
            ("RDATE", self.instants("RDATE")),
            ("EXDATE", self.instants("EXDATE")),
        ] {
            if !instants.is_empty() {
                let list: Vec<String> = instants.iter().map(utc_text).collect();
                rule.push_str(&format!("\n{name}:{}", list.join(",")));
            }
        }
        let Ok(set) = rule.parse::<rrule::RRuleSet>() else {
            // A rule rrule cannot read: keep the first occurrence rather than lose the event.
            return vec![self.start.at];
        };
        let tz = rrule::Tz::UTC;
        set.after((window.start - length).with_timezone(&tz))
            .before(window.end.with_timezone(&tz))
            .all(MAX_INSTANCES)
            .dates
            .into_iter()
            .map(|d| d.with_timezone(&Utc))
            .collect()
    }
}

fn text(component: &Component<'_>, name: &str) -> Option<String> {
    component
        .find_prop(name)
        .map(|p| p.val.clone().unescape_text().as_str().to_owned())
}

/// An ATTENDEE's or ORGANIZER's address without its `mailto:`.
fn email<'a>(property: &'a Property<'_>) -> &'a str {
    let address = property.val.as_str();
    address
        .get(..7)
        .filter(|scheme| scheme.eq_ignore_ascii_case("mailto:"))
        .map_or(address, |_| &address[7..])
}

fn organizer(component: &Component<'_>) -> Option<String> {
    component
        .find_prop("ORGANIZER")
        .map(|p| email(p).to_owned())
        .filter(|address| !address.is_empty())
}

fn attendees(component: &Component<'_>) -> Value {
    component
        .properties
        .iter()
        .filter(|p| p.name.as_str().eq_ignore_ascii_case("ATTENDEE"))
        .map(|p| {
            json!({
                "email": email(p),
                "name": param(p, "CN"),
                "response_status": param(p, "PARTSTAT").map(str::to_ascii_lowercase),
            })
        })
        .collect()
}

/// The VEVENT's own properties as the API's `raw` (one value per name, the first).
fn raw(component: &Component<'_>) -> Value {
    let mut map = Map::new();
    for prop in &component.properties {
        map.entry(prop.name.as_str().to_ascii_uppercase())
            .or_insert_with(|| Value::String(prop.val.clone().unescape_text().as_str().to_owned()));
    }
    Value::Object(map)
}

fn synced(
    vevent: &Vevent<'_>,
    provider_id: String,
    start: Timestamp,
    end: Timestamp,
) -> SyncedEvent {
    let c = vevent.component;
    let texts = [
        text(c, "URL"),
        text(c, "X-GOOGLE-CONFERENCE"),
        text(c, "LOCATION"),
        text(c, "DESCRIPTION"),
    ];
    SyncedEvent {
        provider_id,
        start_time: start,
        end_time: end,
        name: text(c, "SUMMARY"),
        meeting_url: find_meeting_url(texts.iter().flatten().map(String::as_str)),
        attendees: attendees(c),
        organizer: organizer(c),
        ical_uid: Some(vevent.uid.clone()).filter(|u| !u.is_empty()),
        raw: raw(c),
    }
}

/// Deepest component nesting a feed may have (a calendar holds events holding alarms).
const MAX_NESTING: usize = 8;

fn nesting_depth(unfolded: &str) -> usize {
    let mut depth = 0usize;
    let mut deepest = 0;
    for line in unfolded.lines() {
        if line.starts_with("BEGIN:") {
            depth += 1;
            deepest = deepest.max(depth);
        } else if line.starts_with("END:") {
            depth = depth.saturating_sub(1);
        }
    }
    deepest
}

fn instance_id(uid: &str, original_start: &Timestamp) -> String {
    format!("{uid}/{}", utc_text(original_start))
}

/// The events of a feed that overlap `window`: single events, and each occurrence of a
/// recurring one (its provider id is the UID and the occurrence's original start), with
/// EXDATEs removed and overridden occurrences replaced; cancelled ones are left out.
pub fn events_in(feed: &str, window: Window) -> Result<Vec<SyncedEvent>, IcalError> {
    let unfolded = unfold(feed);
    if nesting_depth(&unfolded) > MAX_NESTING {
        // The parser recurses once per level: a deep enough file would overflow the stack.
        return Err(IcalError::NotCalendar(
            "components nested too deeply".into(),
        ));
    }
    let calendar = read_calendar(&unfolded).map_err(|e| {
        IcalError::NotCalendar(
            e.lines()
                .next()
                .unwrap_or("unreadable")
                .chars()
                .take(200)
                .collect(),
        )
    })?;
    if !feed.trim_start().starts_with("BEGIN:VCALENDAR") {
        return Err(IcalError::NotCalendar(
            "it does not begin with BEGIN:VCALENDAR".into(),
        ));
    }
    let custom = CustomZones::read(&calendar.components);
    let vevents: Vec<Vevent<'_>> = calendar
        .components
        .iter()
        .filter(|c| c.name.as_str().eq_ignore_ascii_case("VEVENT"))
        .filter_map(|c| Vevent::read(c, &custom))
        .collect();
    // Overridden occurrences, by UID and original start.
    let overrides: HashMap<(String, DateTime<Utc>), &Vevent<'_>> = vevents
        .iter()
        .filter_map(|v| {
            v.recurrence_id
                .map(|original| ((v.uid.clone(), original), v))
        })
        .collect();
    let mut events = Vec::new();
    for vevent in vevents.iter().filter(|v| v.recurrence_id.is_none()) {
        if !vevent.is_recurring() {
            if !vevent.cancelled && window.overlaps(&vevent.start.at, &vevent.end) {
                events.push(synced(
                    vevent,
                    vevent.uid.clone(),
                    vevent.start.at,
                    vevent.end,
                ));
            }
            continue;
        }
        let length = vevent.end - vevent.start.at;
        for original in vevent.occurrences(window) {
            let id = instance_id(&vevent.uid, &original);
            let (source, start, end) = match overrides.get(&(vevent.uid.clone(), original)) {
                Some(changed) => (*changed, changed.start.at, changed.end),
                None => (vevent, original, original + length),
            };
            if !source.cancelled && window.overlaps(&start, &end) {
                events.push(synced(source, id, start, end));
            }
        }
        if events.len() >= MAX_EVENTS {
            break;
        }
    }
    events.truncate(MAX_EVENTS);
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window() -> Window {
        Window {
            start: Utc.with_ymd_and_hms(2025, 3, 1, 0, 0, 0).unwrap(),
            end: Utc.with_ymd_and_hms(2025, 4, 30, 0, 0, 0).unwrap(),
        }
    }

    fn feed(events: &str) -> String {
        format!("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n{events}END:VCALENDAR\r\n")
    }

    #[test]
    fn a_single_event_with_its_link_attendees_and_raw_properties() {
        let text = feed(
            "BEGIN:VEVENT\r\nUID:one@example.com\r\nDTSTART:20250310T090000Z\r\n\
             DTEND:20250310T093000Z\r\nSUMMARY:Standup\\, daily\r\n\
             DESCRIPTION:Join: https://us02web.zoom.us/j/123?pwd=x\\nThanks\r\n\
             ATTENDEE;CN=Ann;PARTSTAT=ACCEPTED:mailto:ann@example.com\r\nEND:VEVENT\r\n",
        );
        let events = events_in(&text, window()).unwrap();
        assert_eq!(events.len(), 1);
        let e = &events[0];
        assert_eq!(e.provider_id, "one@example.com");
        assert_eq!(e.name.as_deref(), Some("Standup, daily"));
        assert_eq!(
            e.meeting_url.as_deref(),
            Some("https://us02web.zoom.us/j/123?pwd=x")
        );
        assert_eq!(e.end_time - e.start_time, Duration::minutes(30));
        assert_eq!(e.attendees[0]["email"], "ann@example.com");
        assert_eq!(e.attendees[0]["name"], "Ann");
        assert_eq!(e.attendees[0]["response_status"], "accepted");
        assert_eq!(e.raw["UID"], "one@example.com");
    }

    #[test]
    fn recurrences_follow_their_zone_skip_exdates_and_take_overrides() {
        // Weekly at 09:00 Berlin across the end of winter time (30 March 2025).
        let text = feed(
            "BEGIN:VEVENT\r\nUID:weekly\r\nDTSTART;TZID=Europe/Berlin:20250317T090000\r\n\
             DURATION:PT1H\r\nRRULE:FREQ=WEEKLY;COUNT=5\r\n\
             EXDATE;TZID=Europe/Berlin:20250324T090000\r\nSUMMARY:Weekly\r\nEND:VEVENT\r\n\
             BEGIN:VEVENT\r\nUID:weekly\r\nRECURRENCE-ID;TZID=Europe/Berlin:20250407T090000\r\n\
             DTSTART;TZID=Europe/Berlin:20250407T150000\r\nDTEND;TZID=Europe/Berlin:20250407T153000\r\n\
             SUMMARY:Weekly (moved)\r\nEND:VEVENT\r\n\
             BEGIN:VEVENT\r\nUID:weekly\r\nRECURRENCE-ID;TZID=Europe/Berlin:20250414T090000\r\n\
             DTSTART;TZID=Europe/Berlin:20250414T090000\r\nSTATUS:CANCELLED\r\nEND:VEVENT\r\n",
        );
        let events = events_in(&text, window()).unwrap();
        let starts: Vec<String> = events
            .iter()
            .map(|e| e.start_time.format("%m-%d %H:%M").to_string())
            .collect();
        // 17 Mar (UTC+1), 31 Mar (UTC+2: still 09:00 local), 7 Apr moved to 15:00 local.
        assert_eq!(starts, ["03-17 08:00", "03-31 07:00", "04-07 13:00"]);
        assert_eq!(events[2].name.as_deref(), Some("Weekly (moved)"));
        assert_eq!(
            events[2].end_time - events[2].start_time,
            Duration::minutes(30)
        );
        assert_eq!(events[0].provider_id, "weekly/20250317T080000Z");
        assert_eq!(
            events[2].provider_id, "weekly/20250407T070000Z",
            "keyed by its original start"
        );
    }

    #[test]
    fn outlook_windows_zones_mozilla_names_and_custom_definitions_are_read() {
        // Weekly 09:00 in Outlook's name for Berlin: daylight saving followed like an IANA zone.
        let text = feed(
            "BEGIN:VTIMEZONE\r\nTZID:Customized Time Zone\r\nBEGIN:STANDARD\r\n\
             DTSTART:16010101T000000\r\nTZOFFSETFROM:+0600\r\nTZOFFSETTO:+0530\r\n\
             END:STANDARD\r\nEND:VTIMEZONE\r\n\
             BEGIN:VEVENT\r\nUID:outlook\r\nDTSTART;TZID=W. Europe Standard Time:20250324T090000\r\n\
             DURATION:PT1H\r\nRRULE:FREQ=WEEKLY;COUNT=2\r\nEND:VEVENT\r\n\
             BEGIN:VEVENT\r\nUID:mozilla\r\n\
             DTSTART;TZID=/mozilla.org/20050126_1/America/New_York:20250320T090000\r\n\
             DURATION:PT1H\r\nEND:VEVENT\r\n\
             BEGIN:VEVENT\r\nUID:custom\r\nDTSTART;TZID=Customized Time Zone:20250320T090000\r\n\
             DURATION:PT1H\r\nEND:VEVENT\r\n\
             BEGIN:VEVENT\r\nUID:unknown\r\nDTSTART;TZID=Nowhere Standard Time:20250320T090000\r\n\
             DURATION:PT1H\r\nEND:VEVENT\r\n",
        );
        let events = events_in(&text, window()).unwrap();
        let start = |uid: &str| -> Vec<String> {
            events
                .iter()
                .filter(|e| e.ical_uid.as_deref() == Some(uid))
                .map(|e| e.start_time.format("%m-%d %H:%M").to_string())
                .collect()
        };
        assert_eq!(start("outlook"), ["03-24 08:00", "03-31 07:00"]);
        assert_eq!(start("mozilla"), ["03-20 13:00"]);
        assert_eq!(
            start("custom"),
            ["03-20 03:30"],
            "the definition's standard offset"
        );
        assert_eq!(
            start("unknown"),
            ["03-20 09:00"],
            "no definition: read as UTC"
        );
    }

    #[test]
    fn utc_offsets_are_read_as_written() {
        assert_eq!(parse_offset("+0100"), FixedOffset::east_opt(3600));
        assert_eq!(parse_offset("-0530"), FixedOffset::east_opt(-19_800));
        assert_eq!(parse_offset("+013015"), FixedOffset::east_opt(5415));
        for bad in ["0100", "+01", "+01:00", "+2500x", "", "-"] {
            assert_eq!(parse_offset(bad), None, "{bad}");
        }
    }

    #[test]
    fn all_day_events_are_kept_and_cancelled_ones_left_out() {
        let text = feed(
            "BEGIN:VEVENT\r\nUID:holiday\r\nDTSTART;VALUE=DATE:20250401\r\nSUMMARY:Off\r\nEND:VEVENT\r\n\
             BEGIN:VEVENT\r\nUID:gone\r\nDTSTART:20250402T100000Z\r\nSTATUS:CANCELLED\r\nEND:VEVENT\r\n",
        );
        let events = events_in(&text, window()).unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].end_time - events[0].start_time, Duration::days(1));
    }

    #[test]
    fn hostile_feeds_are_bounded_or_refused() {
        let endless = feed(
            "BEGIN:VEVENT\r\nUID:storm\r\nDTSTART:20250302T000000Z\r\nRRULE:FREQ=SECONDLY\r\nEND:VEVENT\r\n",
        );
        let events = events_in(&endless, window()).unwrap();
        assert_eq!(events.len(), usize::from(MAX_INSTANCES));
        let never = feed(
            "BEGIN:VEVENT\r\nUID:never\r\nDTSTART:20250301T000000Z\r\n\
             RRULE:FREQ=YEARLY;BYMONTH=2;BYMONTHDAY=30\r\nEND:VEVENT\r\n",
        );
        assert!(events_in(&never, window()).unwrap().is_empty());
        let long_line = feed(&format!(
            "BEGIN:VEVENT\r\nUID:x\r\nDTSTART:20250310T090000Z\r\nSUMMARY:{}\r\nEND:VEVENT\r\n",
            "a".repeat(200_000)
        ));
        assert_eq!(events_in(&long_line, window()).unwrap().len(), 1);
        let nested = format!(
            "{}{}",
            "BEGIN:VEVENT\r\n".repeat(100_000),
            "END:VEVENT\r\n".repeat(100_000)
        );
        assert!(matches!(
            events_in(&feed(&nested), window()),
            Err(IcalError::NotCalendar(m)) if m.contains("nested")
        ));
        assert!(matches!(
            events_in("<html>nope</html>", window()),
            Err(IcalError::NotCalendar(_))
        ));
        assert!(matches!(
            events_in("", window()),
            Err(IcalError::NotCalendar(_))
        ));
    }

    #[test]
    fn durations_read_as_written() {
        assert_eq!(parse_duration("PT1H30M"), Some(Duration::minutes(90)));
        assert_eq!(parse_duration("P1W"), Some(Duration::days(7)));
        assert_eq!(parse_duration("-PT15M"), Some(Duration::minutes(-15)));
        assert_eq!(parse_duration("P1DT2H"), Some(Duration::hours(26)));
        assert_eq!(parse_duration("1H"), None);
        assert_eq!(parse_duration("PT5"), None);
    }
}
