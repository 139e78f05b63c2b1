//! Microsoft Graph: the delta of a calendar view over the sync window (occurrences and
//! exceptions of recurring events come as events of their own), paged by `@odata.nextLink`; the
//! last page's `@odata.deltaLink` is the next sync's start, and a refused one (410) starts over
//! in full. Removed items (`@removed`) and cancelled events are deletions. Graph's links are
//! followed only on the configured Graph origin.

use chrono::{DateTime, NaiveDateTime, TimeZone};
use meetwire_core::calendar::find_meeting_url;
use meetwire_core::time::Timestamp;
use meetwire_store::SyncedEvent;
use serde_json::{json, Value};
use url::Url;

use super::ical::{named_zone, Window};
use super::provider::{
    incremental_or_full, response_status, Item, Next, OAuthCredentials, Pages, ProviderClient,
    ProviderError, Read,
};

const WHAT: &str = "Microsoft Graph";
/// Read access to the user's calendars, and a refresh token in return.
const SCOPE: &str = "offline_access https://graph.microsoft.com/Calendars.Read";
/// Times in UTC, and pages of a size Graph allows.
const PREFER: [&str; 2] = ["odata.maxpagesize=100", "outlook.timezone=\"UTC\""];

pub async fn read(
    client: &ProviderClient,
    credentials: &OAuthCredentials,
    stored_cursor: Option<&str>,
    window: Window,
    at: Timestamp,
) -> Result<Read, ProviderError> {
    let urls = &client.urls;
    let token = client
        .access_token("Microsoft", &urls.microsoft_token, credentials, Some(SCOPE))
        .await?;
    let graph = &urls.microsoft_graph;
    let next = |page: &Value, _: &Url| next(client, page);
    let pages = Pages {
        what: WHAT,
        access_token: &token.access_token,
        prefer: &PREFER,
        items: "value",
        item_of,
        next: &next,
    };
    let pages = &pages;
    let reading = incremental_or_full(
        stored_cursor,
        at,
        |delta_link| async move {
            let url = client.own_link(WHAT, graph, &delta_link)?;
            pages.read(client, url, &window).await
        },
        || async move {
            let url = view_delta_url(graph, credentials.platform_uuid.as_deref(), &window)?;
            pages.read(client, url, &window).await
        },
    )
    .await?;
    Ok(Read::new(reading, token, credentials))
}

/// The next page's link, or the delta link of the last; either only on Graph's own origin.
fn next(client: &ProviderClient, page: &Value) -> Result<Next, ProviderError> {
    let graph = &client.urls.microsoft_graph;
    if let Some(link) = page["@odata.nextLink"].as_str() {
        return Ok(Next::Page(client.own_link(WHAT, graph, link)?));
    }
    let delta = page["@odata.deltaLink"].as_str().ok_or_else(|| {
        ProviderError::Refused(format!("{WHAT} gave neither a next page nor a delta link"))
    })?;
    client.own_link(WHAT, graph, delta)?;
    Ok(Next::Done(delta.to_owned()))
}

/// `{graph}/v1.0/me/calendarView/delta` (or `me/calendars/{id}/calendarView/delta`) over the
/// window.
fn view_delta_url(
    graph: &Url,
    calendar: Option<&str>,
    window: &Window,
) -> Result<Url, ProviderError> {
    let mut url = graph.clone();
    {
        let mut path = url.path_segments_mut().map_err(|_| {
            ProviderError::Refused(format!("{graph} cannot be a Microsoft Graph base URL"))
        })?;
        path.pop_if_empty().extend(["v1.0", "me"]);
        if let Some(calendar) = calendar {
            path.extend(["calendars", calendar]);
        }
        path.extend(["calendarView", "delta"]);
    }
    let utc = |t: &Timestamp| t.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    url.query_pairs_mut()
        .append_pair("startDateTime", &utc(&window.start))
        .append_pair("endDateTime", &utc(&window.end));
    Ok(url)
}

/// An item of a calendar view's delta.
fn item_of(item: &Value) -> Item {
    let Some(id) = item["id"].as_str().filter(|id| !id.is_empty()) else {
        return Item::Ignored;
    };
    if item.get("@removed").is_some() || item["isCancelled"] == true {
        return Item::Gone(id.to_owned());
    }
    if item["type"] == "seriesMaster" {
        return Item::Ignored;
    }
    let (Some(start_time), Some(end_time)) = (time_of(&item["start"]), time_of(&item["end"]))
    else {
        return Item::Ignored;
    };
    let texts = [
        &item["onlineMeeting"]["joinUrl"],
        &item["location"]["displayName"],
        &item["body"]["content"],
        &item["bodyPreview"],
    ];
    let email = |who: &Value| who["emailAddress"]["address"].as_str().map(str::to_owned);
    Item::Present(SyncedEvent {
        provider_id: id.to_owned(),
        start_time,
        end_time,
        name: item["subject"].as_str().map(str::to_owned),
        meeting_url: find_meeting_url(texts.into_iter().filter_map(Value::as_str)),
        attendees: attendees(item),
        organizer: email(&item["organizer"]),
        ical_uid: item["iCalUId"].as_str().map(str::to_owned),
        raw: item.clone(),
    })
}

/// `{"dateTime": "2026-12-08T10:00:00.0000000", "timeZone": "UTC"}`: a wall time in the named
/// zone (UTC, as asked for, or an IANA or Windows zone name).
fn time_of(value: &Value) -> Option<Timestamp> {
    let text = value["dateTime"].as_str()?;
    if let Ok(instant) = DateTime::parse_from_rfc3339(text) {
        return Some(instant.to_utc());
    }
    let naive = NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f").ok()?;
    let zone = value["timeZone"].as_str().filter(|z| !z.is_empty());
    Some(
        named_zone(zone.unwrap_or("UTC"))?
            .from_local_datetime(&naive)
            .earliest()?
            .to_utc(),
    )
}

fn attendees(item: &Value) -> Value {
    item["attendees"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|a| {
            json!({
                "email": a["emailAddress"]["address"],
                "name": a["emailAddress"]["name"],
                "response_status": a["status"]["response"].as_str().map(response_status),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    #[test]
    fn an_occurrence_with_its_teams_link_and_people() {
        let Item::Present(event) = item_of(&json!({
            "id": "AAMk1", "subject": "Weekly", "type": "occurrence",
            "start": {"dateTime": "2026-12-08T10:00:00.0000000", "timeZone": "UTC"},
            "end": {"dateTime": "2026-12-08T10:30:00.0000000", "timeZone": "UTC"},
            "onlineMeeting": {"joinUrl": "https://teams.microsoft.com/l/meetup-join/19%3ameeting_x"},
            "location": {"displayName": "Room 1"},
            "attendees": [{"emailAddress": {"address": "ann@example.com", "name": "Ann"},
                           "status": {"response": "tentativelyAccepted"}}],
            "organizer": {"emailAddress": {"address": "bob@example.com", "name": "Bob"}},
            "iCalUId": "040000008200E0"
        })) else {
            panic!("not an event");
        };
        assert_eq!(event.start_time.to_rfc3339(), "2026-12-08T10:00:00+00:00");
        assert!(event
            .meeting_url
            .unwrap()
            .starts_with("https://teams.microsoft.com/"));
        assert_eq!(event.attendees[0]["response_status"], "tentative");
        assert_eq!(event.organizer.as_deref(), Some("bob@example.com"));
    }

    #[test]
    fn removed_cancelled_and_master_items() {
        let removed = json!({"id": "a", "@removed": {"reason": "deleted"}});
        assert_eq!(item_of(&removed), Item::Gone("a".into()));
        let cancelled = json!({"id": "b", "isCancelled": true});
        assert_eq!(item_of(&cancelled), Item::Gone("b".into()));
        assert_eq!(
            item_of(&json!({"id": "c", "type": "seriesMaster"})),
            Item::Ignored
        );
    }

    #[test]
    fn wall_times_in_windows_and_iana_zones() {
        let windows = json!({"dateTime": "2026-07-01T09:00:00.0000000",
                             "timeZone": "W. Europe Standard Time"});
        assert_eq!(
            time_of(&windows).unwrap().to_rfc3339(),
            "2026-07-01T07:00:00+00:00"
        );
        let iana = json!({"dateTime": "2026-12-01T09:00:00", "timeZone": "America/New_York"});
        assert_eq!(
            time_of(&iana).unwrap().to_rfc3339(),
            "2026-12-01T14:00:00+00:00"
        );
        assert_eq!(time_of(&json!({"dateTime": "soon"})), None);
    }

    #[test]
    fn the_view_url_names_the_calendar_and_window() {
        let graph = Url::parse("http://127.0.0.1:9").unwrap();
        let window = Window {
            start: Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap(),
            end: Utc.with_ymd_and_hms(2026, 12, 29, 0, 0, 0).unwrap(),
        };
        let url = view_delta_url(&graph, Some("AAM/x"), &window).unwrap();
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:9/v1.0/me/calendars/AAM%2Fx/calendarView/delta\
             ?startDateTime=2026-12-01T00%3A00%3A00Z&endDateTime=2026-12-29T00%3A00%3A00Z"
        );
    }
}
