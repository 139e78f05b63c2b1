//! Google Calendar (API v3): the events list with recurring events expanded into their instances
//! (`singleEvents`), read in full over the sync window and then incrementally with the
//! `nextSyncToken` Google gives on the last page; a refused token (410) starts over in full.
//! Cancelled events and cancelled instances are deletions.

use chrono::{DateTime, NaiveDate};
use meetwire_core::calendar::find_meeting_url;
use meetwire_core::time::Timestamp;
use meetwire_store::SyncedEvent;
use serde_json::{json, Value};
use url::Url;

use super::ical::Window;
use super::provider::{
    incremental_or_full, response_status, Item, Next, OAuthCredentials, Pages, ProviderClient,
    ProviderError, Read,
};

const WHAT: &str = "Google Calendar";
const PAGE_SIZE: &str = "250";

pub async fn read(
    client: &ProviderClient,
    credentials: &OAuthCredentials,
    stored_cursor: Option<&str>,
    window: Window,
    at: Timestamp,
) -> Result<Read, ProviderError> {
    let urls = &client.urls;
    let token = client
        .access_token("Google", &urls.google_token, credentials, None)
        .await?;
    let calendar = credentials.platform_uuid.as_deref().unwrap_or("primary");
    let pages = Pages {
        what: WHAT,
        access_token: &token.access_token,
        prefer: &[],
        items: "items",
        item_of,
        next: &next,
    };
    let list = |extra: Vec<(&'static str, String)>| {
        let pages = &pages;
        async move {
            let mut url = events_url(&urls.google_api, calendar)?;
            url.query_pairs_mut()
                .append_pair("singleEvents", "true")
                .append_pair("showDeleted", "true")
                .append_pair("maxResults", PAGE_SIZE)
                .extend_pairs(extra);
            pages.read(client, url, &window).await
        }
    };
    let reading = incremental_or_full(
        stored_cursor,
        at,
        |sync_token| list(vec![("syncToken", sync_token)]),
        || {
            list(vec![
                ("timeMin", window.start.to_rfc3339()),
                ("timeMax", window.end.to_rfc3339()),
            ])
        },
    )
    .await?;
    Ok(Read::new(reading, token, credentials))
}

/// `{api}/calendar/v3/calendars/{calendar}/events`, the calendar id percent-encoded.
fn events_url(api: &Url, calendar: &str) -> Result<Url, ProviderError> {
    let mut url = api.clone();
    url.path_segments_mut()
        .map_err(|_| ProviderError::Refused(format!("{api} cannot be a Google API base URL")))?
        .pop_if_empty()
        .extend(["calendar", "v3", "calendars", calendar, "events"]);
    Ok(url)
}

/// The list's next page (its first URL with `pageToken`), or the sync token of the last.
fn next(page: &Value, first: &Url) -> Result<Next, ProviderError> {
    if let Some(token) = page["nextPageToken"].as_str() {
        let mut url = first.clone();
        url.query_pairs_mut().append_pair("pageToken", token);
        return Ok(Next::Page(url));
    }
    let sync_token = page["nextSyncToken"].as_str().ok_or_else(|| {
        ProviderError::Refused(format!("{WHAT} gave neither a next page nor a sync token"))
    })?;
    Ok(Next::Done(sync_token.to_owned()))
}

/// An item of an events list.
fn item_of(item: &Value) -> Item {
    let Some(id) = item["id"].as_str().filter(|id| !id.is_empty()) else {
        return Item::Ignored;
    };
    if item["status"] == "cancelled" {
        return Item::Gone(id.to_owned());
    }
    let (Some(start_time), Some(end_time)) = (time_of(&item["start"]), time_of(&item["end"]))
    else {
        return Item::Ignored;
    };
    let video_links = item["conferenceData"]["entryPoints"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|entry| entry["entryPointType"] == "video")
        .filter_map(|entry| entry["uri"].as_str());
    let texts = video_links.chain(
        ["hangoutLink", "location", "description"]
            .into_iter()
            .filter_map(|key| item[key].as_str()),
    );
    Item::Present(SyncedEvent {
        provider_id: id.to_owned(),
        start_time,
        end_time,
        name: item["summary"].as_str().map(str::to_owned),
        meeting_url: find_meeting_url(texts),
        attendees: attendees(item),
        organizer: item["organizer"]["email"].as_str().map(str::to_owned),
        ical_uid: item["iCalUID"].as_str().map(str::to_owned),
        raw: item.clone(),
    })
}

/// `{"dateTime": "2026-12-08T10:00:00+01:00"}`, or `{"date": "2026-12-08"}` for an all-day
/// event (read as midnight UTC, as all-day events of iCalendar feeds are).
fn time_of(value: &Value) -> Option<Timestamp> {
    if let Some(text) = value["dateTime"].as_str() {
        return DateTime::parse_from_rfc3339(text).ok().map(|t| t.to_utc());
    }
    let day = NaiveDate::parse_from_str(value["date"].as_str()?, "%Y-%m-%d").ok()?;
    Some(day.and_hms_opt(0, 0, 0)?.and_utc())
}

fn attendees(item: &Value) -> Value {
    item["attendees"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| {
            json!({
                "email": a["email"],
                "name": a["displayName"],
                "response_status": a["responseStatus"].as_str().map(response_status),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn present(item: Value) -> SyncedEvent {
        match item_of(&item) {
            Item::Present(event) => event,
            other => panic!("not an event: {other:?}"),
        }
    }

    #[test]
    fn an_event_with_its_conference_link_times_and_people() {
        let event = present(json!({
            "id": "ev1", "status": "confirmed", "summary": "Standup",
            "start": {"dateTime": "2026-12-08T10:00:00+01:00", "timeZone": "Europe/Paris"},
            "end": {"dateTime": "2026-12-08T10:30:00+01:00"},
            "location": "https://zoom.us/j/111",
            "conferenceData": {"entryPoints": [
                {"entryPointType": "phone", "uri": "tel:+1-555"},
                {"entryPointType": "video", "uri": "https://meet.google.com/abc-defg-hij"}
            ]},
            "attendees": [{"email": "ann@example.com", "displayName": "Ann",
                           "responseStatus": "needsAction"}],
            "organizer": {"email": "bob@example.com"},
            "iCalUID": "ev1@google.com"
        }));
        assert_eq!(event.start_time.to_rfc3339(), "2026-12-08T09:00:00+00:00");
        assert_eq!(event.end_time.to_rfc3339(), "2026-12-08T09:30:00+00:00");
        assert_eq!(
            event.meeting_url.as_deref(),
            Some("https://meet.google.com/abc-defg-hij")
        );
        assert_eq!(event.attendees[0]["response_status"], "needs-action");
        assert_eq!(event.organizer.as_deref(), Some("bob@example.com"));
        assert_eq!(event.ical_uid.as_deref(), Some("ev1@google.com"));
        assert_eq!(event.raw["summary"], "Standup");
    }

    #[test]
    fn cancelled_items_are_deletions_and_broken_ones_are_skipped() {
        let gone = json!({"id": "ev1_20261208T100000Z", "status": "cancelled"});
        assert_eq!(item_of(&gone), Item::Gone("ev1_20261208T100000Z".into()));
        assert_eq!(item_of(&json!({"status": "confirmed"})), Item::Ignored);
        let no_times = json!({"id": "x", "start": {"dateTime": "tomorrow"}, "end": {}});
        assert_eq!(item_of(&no_times), Item::Ignored);
        let all_day = present(json!({
            "id": "d", "start": {"date": "2026-12-24"}, "end": {"date": "2026-12-25"},
            "description": "see sandbox://standup?speed=50"
        }));
        assert_eq!(all_day.start_time.to_rfc3339(), "2026-12-24T00:00:00+00:00");
        assert_eq!(
            all_day.meeting_url.as_deref(),
            Some("sandbox://standup?speed=50")
        );
    }

    #[test]
    fn the_calendar_id_is_one_path_segment() {
        let api = Url::parse("http://127.0.0.1:9/google/").unwrap();
        let url = events_url(&api, "team/a b@group.calendar.google.com").unwrap();
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:9/google/calendar/v3/calendars/team%2Fa%20b@group.calendar.google.com/events"
        );
    }
}
