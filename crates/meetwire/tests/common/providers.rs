//! Fake Google Calendar and Microsoft Graph servers on loopback for the provider suites: each
//! serves its provider's OAuth token endpoint (a form POST of a refresh token) and its events
//! API in the documented wire format — Google's `calendar/v3/calendars/{id}/events` with
//! `pageToken`/`nextPageToken`/`nextSyncToken`/`syncToken`, Graph's `calendarView/delta` with
//! `@odata.nextLink`/`@odata.deltaLink` — and keeps a calendar a test edits through the shared
//! handle (add, move, cancel, delete events; grant and revoke refresh tokens; throttle the next
//! requests; refuse every sync token issued so far). Pages are small (3 events) so paging is
//! always exercised. Every request is recorded ([`Seen`]) so a test can assert what kind of
//! sync the server really made.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, Uri};
use axum::response::Response;
use axum::Router;
use chrono::{DateTime, Duration as Span, Utc};
use serde_json::{json, Value};

use super::receiver::{first_header, header_pairs};

/// Events per page, whatever the client asks for (both providers may send fewer).
const PAGE_SIZE: usize = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Google,
    Microsoft,
}

impl Kind {
    /// The `platform` of the calendar API.
    pub fn platform(self) -> &'static str {
        match self {
            Kind::Google => "google",
            Kind::Microsoft => "microsoft",
        }
    }
}

/// Where an event carries its meeting link.
#[derive(Debug, Clone, PartialEq)]
pub enum Link {
    None,
    /// Google `conferenceData.entryPoints[video]`, Graph `onlineMeeting.joinUrl`.
    Conference(String),
    /// In the location text.
    Location(String),
    /// In the description (Google) or HTML body (Graph).
    Description(String),
}

/// An event in the fake calendar, rendered in each provider's format.
#[derive(Debug, Clone)]
pub struct Meeting {
    pub id: String,
    pub name: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub all_day: bool,
    pub link: Link,
    pub attendees: Vec<String>,
    pub organizer: String,
    /// An instance of a recurring event: its series' id and the instance's original start.
    pub series: Option<(String, DateTime<Utc>)>,
    /// A modified instance (Graph `type: exception`).
    pub exception: bool,
    /// A cancelled instance still listed (Google `status: cancelled`, Graph `isCancelled`).
    pub cancelled: bool,
}

impl Meeting {
    pub fn new(id: &str, name: &str, start: DateTime<Utc>, minutes: i64) -> Meeting {
        Meeting {
            id: id.to_owned(),
            name: name.to_owned(),
            start,
            end: start + Span::minutes(minutes),
            all_day: false,
            link: Link::None,
            attendees: Vec::new(),
            organizer: "org@example.com".to_owned(),
            series: None,
            exception: false,
            cancelled: false,
        }
    }

    /// An all-day event on `start`'s (UTC) date.
    pub fn all_day(id: &str, name: &str, start: DateTime<Utc>) -> Meeting {
        let midnight = start.date_naive().and_hms_opt(0, 0, 0).unwrap().and_utc();
        Meeting {
            all_day: true,
            end: midnight + Span::days(1),
            ..Meeting::new(id, name, midnight, 0)
        }
    }

    pub fn link(mut self, link: Link) -> Meeting {
        self.link = link;
        self
    }

    pub fn attendee(mut self, email: &str) -> Meeting {
        self.attendees.push(email.to_owned());
        self
    }

    /// An instance of `series` whose original start is this meeting's start.
    pub fn instance_of(mut self, series: &str) -> Meeting {
        self.series = Some((series.to_owned(), self.start));
        self
    }

    /// Moved to `start`, keeping its length (an exception when an instance).
    pub fn moved(mut self, start: DateTime<Utc>) -> Meeting {
        let length = self.end - self.start;
        self.start = start;
        self.end = start + length;
        self.exception |= self.series.is_some();
        self
    }

    pub fn renamed(mut self, name: &str) -> Meeting {
        self.name = name.to_owned();
        self.exception |= self.series.is_some();
        self
    }

    pub fn cancelled(mut self) -> Meeting {
        self.cancelled = true;
        self
    }

    pub fn ical_uid(&self) -> String {
        let id = self.series.as_ref().map_or(&self.id, |(series, _)| series);
        format!("{id}@fake.test")
    }
}

/// What a sync request asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sync {
    /// Everything in a time window (Google without `syncToken`, Graph's first delta round).
    Full,
    /// The changes since a token (Google `syncToken`, Graph `$deltatoken`).
    Incremental,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Token,
    Events,
    Other,
}

/// One request as the fake got it, and how it answered.
#[derive(Debug, Clone)]
pub struct Seen {
    pub at: Instant,
    pub endpoint: Endpoint,
    pub method: String,
    /// The path as sent (not decoded).
    pub path: String,
    pub query: Vec<(String, String)>,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
    /// The form fields of a token request.
    pub form: Vec<(String, String)>,
    pub status: u16,
    /// For an events request: what it asked for (a later page has its first page's kind).
    pub sync: Option<Sync>,
    /// A later page of a sync (`pageToken`, `$skiptoken`).
    pub later_page: bool,
    /// The calendar named in the path, decoded (`None`: Graph's `/me/calendarView`).
    pub calendar: Option<String>,
}

fn find<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

impl Seen {
    pub fn query(&self, name: &str) -> Option<&str> {
        find(&self.query, name)
    }

    pub fn form(&self, name: &str) -> Option<&str> {
        find(&self.form, name)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        first_header(&self.headers, name)
    }

    /// Every value of a header (`Prefer` may come several times), joined by `, `.
    pub fn header_all(&self, name: &str) -> String {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .filter(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// A first page of a sync answered 200.
    pub fn is_sync(&self, kind: Sync) -> bool {
        self.endpoint == Endpoint::Events
            && self.sync == Some(kind)
            && !self.later_page
            && self.status == 200
    }
}

struct Entry {
    meeting: Meeting,
    version: u64,
    deleted: bool,
    updated: DateTime<Utc>,
}

struct Page {
    items: Vec<Value>,
    sync: Sync,
    /// The token the last page hands out.
    next_token: String,
}

struct Fake {
    kind: Kind,
    base: String,
    client_id: String,
    client_secret: String,
    /// Refresh token → its grant; a revoked grant's tokens are refused.
    refresh_tokens: HashMap<String, u64>,
    /// Access token → its grant.
    access_tokens: HashMap<String, u64>,
    revoked: Vec<u64>,
    grants: u64,
    issued: u64,
    events: BTreeMap<String, Entry>,
    version: u64,
    /// Sync tokens of an older epoch are refused (410).
    epoch: u64,
    pages: HashMap<String, Page>,
    page_count: u64,
    /// Statuses the next events requests get instead of an answer.
    failures: VecDeque<u16>,
    /// The origin `@odata.nextLink`s point to (Graph), when not this server's.
    next_link_origin: Option<String>,
    seen: Vec<Seen>,
}

/// A running fake provider, stopped when dropped.
pub struct Provider {
    pub kind: Kind,
    /// `http://127.0.0.1:PORT`
    pub base: String,
    pub client_id: String,
    pub client_secret: String,
    state: Arc<Mutex<Fake>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Provider {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Provider {
    pub async fn start(kind: Kind) -> Provider {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind fake provider");
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (client_id, client_secret) = match kind {
            Kind::Google => (
                "1234-fake.apps.googleusercontent.com".to_owned(),
                "GOCSPX-fake-secret".to_owned(),
            ),
            Kind::Microsoft => (
                "00000000-1111-2222-3333-444444444444".to_owned(),
                "ms~fake.secret".to_owned(),
            ),
        };
        let state = Arc::new(Mutex::new(Fake {
            kind,
            base: base.clone(),
            client_id: client_id.clone(),
            client_secret: client_secret.clone(),
            refresh_tokens: HashMap::new(),
            access_tokens: HashMap::new(),
            revoked: Vec::new(),
            grants: 0,
            issued: 0,
            events: BTreeMap::new(),
            version: 0,
            epoch: 0,
            pages: HashMap::new(),
            page_count: 0,
            failures: VecDeque::new(),
            next_link_origin: None,
            seen: Vec::new(),
        }));
        let app = Router::new().fallback(handle).with_state(state.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Provider {
            kind,
            base,
            client_id,
            client_secret,
            state,
            task,
        }
    }

    fn with<T>(&self, f: impl FnOnce(&mut Fake) -> T) -> T {
        f(&mut self.state.lock().unwrap())
    }

    /// The server flags that point meetwire at this fake.
    pub fn flags(&self) -> Vec<String> {
        match self.kind {
            Kind::Google => vec![
                "--google-token-url".into(),
                format!("{}/token", self.base),
                "--google-api-url".into(),
                self.base.clone(),
            ],
            Kind::Microsoft => vec![
                "--microsoft-token-url".into(),
                format!("{}/common/oauth2/v2.0/token", self.base),
                "--microsoft-graph-url".into(),
                self.base.clone(),
            ],
        }
    }

    /// A `POST /api/v1/calendars` body for this provider with `refresh_token`.
    pub fn calendar_body(&self, refresh_token: &str, platform_uuid: Option<&str>) -> Value {
        let mut body = json!({
            "platform": self.kind.platform(),
            "client_id": self.client_id,
            "client_secret": self.client_secret,
            "refresh_token": refresh_token,
        });
        if let Some(uuid) = platform_uuid {
            body["platform_uuid"] = json!(uuid);
        }
        body
    }

    /// An event id in the provider's style for `name`.
    pub fn event_id(&self, name: &str) -> String {
        match self.kind {
            Kind::Google => format!("{name}4q1v7k0s"),
            Kind::Microsoft => format!("AAMkAGI2-{name}-AAA="),
        }
    }

    /// The id of the instance of `series` originally at `original_start`.
    pub fn instance_id(&self, series: &str, original_start: DateTime<Utc>) -> String {
        match self.kind {
            Kind::Google => format!("{series}_{}", original_start.format("%Y%m%dT%H%M%SZ")),
            Kind::Microsoft => format!(
                "{}-{}=",
                series.trim_end_matches('='),
                original_start.format("%Y%m%d")
            ),
        }
    }

    /// Makes `refresh_token` valid (a new grant).
    pub fn grant(&self, refresh_token: &str) {
        self.with(|f| {
            f.grants += 1;
            f.refresh_tokens.insert(refresh_token.to_owned(), f.grants);
        });
    }

    /// Revokes the grant of `refresh_token`: it and the tokens it was rotated into get
    /// `invalid_grant` from now on. Access tokens already given keep working until they
    /// expire, as self-contained ones do (so a sync already under way ends normally).
    pub fn revoke(&self, refresh_token: &str) {
        self.with(|f| {
            let grant = f.refresh_tokens[refresh_token];
            f.revoked.push(grant);
        });
    }

    /// Several changes at once: no sync sees some of them without the others.
    pub fn edit(&self, f: impl FnOnce(&mut Edit)) {
        self.with(|fake| f(&mut Edit(fake)))
    }

    /// Adds or replaces an event.
    pub fn put(&self, meeting: Meeting) {
        self.edit(|e| e.put(meeting))
    }

    /// The event `id` as the calendar holds it now.
    pub fn meeting(&self, id: &str) -> Meeting {
        self.with(|f| f.events[id].meeting.clone())
    }

    /// The events that exist now, neither deleted nor cancelled: what a client should show.
    pub fn live(&self) -> Vec<Meeting> {
        self.with(|f| {
            f.events
                .values()
                .filter(|e| !e.deleted && !e.meeting.cancelled)
                .map(|e| e.meeting.clone())
                .collect()
        })
    }

    /// The next events requests are answered with these statuses (429 with `Retry-After: 1`,
    /// 503 without), one each, in order.
    pub fn throttle(&self, statuses: &[u16]) {
        self.with(|f| f.failures.extend(statuses));
    }

    /// Points Graph's `@odata.nextLink`s at another origin.
    pub fn send_next_links_to(&self, origin: &str) {
        self.with(|f| f.next_link_origin = Some(origin.to_owned()));
    }

    /// Every request so far, in arrival order.
    pub fn seen(&self) -> Vec<Seen> {
        self.with(|f| f.seen.clone())
    }

    /// The number of requests so far, to look at later ones with [`Provider::since`].
    pub fn mark(&self) -> usize {
        self.with(|f| f.seen.len())
    }

    pub fn since(&self, mark: usize) -> Vec<Seen> {
        self.with(|f| f.seen[mark..].to_vec())
    }

    pub fn events_since(&self, mark: usize) -> Vec<Seen> {
        self.since(mark)
            .into_iter()
            .filter(|s| s.endpoint == Endpoint::Events)
            .collect()
    }

    pub fn tokens_since(&self, mark: usize) -> Vec<Seen> {
        self.since(mark)
            .into_iter()
            .filter(|s| s.endpoint == Endpoint::Token)
            .collect()
    }

    /// Waits until a request after `mark` satisfies `done`; returns it.
    pub async fn wait_seen(&self, mark: usize, what: &str, done: impl Fn(&Seen) -> bool) -> Seen {
        let start = Instant::now();
        loop {
            if let Some(found) = self.since(mark).into_iter().find(|s| done(s)) {
                return found;
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "the fake {:?} never saw {what}; it saw:\n{}",
                self.kind,
                self.since(mark)
                    .iter()
                    .map(|s| format!("{} {} {:?} -> {}", s.method, s.path, s.query, s.status))
                    .collect::<Vec<_>>()
                    .join("\n")
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Asserts `seen` is a well-formed first page of a full sync of this provider.
    pub fn assert_full_request(&self, seen: &Seen) {
        assert!(seen.is_sync(Sync::Full), "{seen:?}");
        let now = Utc::now();
        let time = |name: &str| -> DateTime<Utc> {
            let text = seen
                .query(name)
                .unwrap_or_else(|| panic!("no {name} in {seen:?}"));
            DateTime::parse_from_rfc3339(text)
                .unwrap_or_else(|_| panic!("{name} is not RFC 3339: {text}"))
                .to_utc()
        };
        let (from, to) = match self.kind {
            Kind::Google => {
                assert_eq!(seen.query("singleEvents"), Some("true"), "{seen:?}");
                assert_eq!(seen.query("showDeleted"), Some("true"), "{seen:?}");
                assert_eq!(seen.query("maxResults"), Some("250"), "{seen:?}");
                assert_eq!(seen.query("syncToken"), None, "{seen:?}");
                (time("timeMin"), time("timeMax"))
            }
            Kind::Microsoft => {
                let prefer = seen.header_all("prefer");
                assert!(prefer.contains("odata.maxpagesize="), "{seen:?}");
                (time("startDateTime"), time("endDateTime"))
            }
        };
        assert!(
            from <= now && from >= now - Span::days(7),
            "window starts at {from}"
        );
        assert!(to >= now + Span::days(7), "window ends at {to}");
    }

    /// Asserts `seen` is a request of an incremental sync (any page) of this provider.
    pub fn assert_incremental_request(&self, seen: &Seen) {
        assert_eq!(seen.endpoint, Endpoint::Events, "{seen:?}");
        assert_eq!(seen.sync, Some(Sync::Incremental), "{seen:?}");
        match self.kind {
            Kind::Google => {
                assert_eq!(seen.query("singleEvents"), Some("true"), "{seen:?}");
                assert_eq!(seen.query("showDeleted"), Some("true"), "{seen:?}");
                if !seen.later_page {
                    assert!(seen.query("syncToken").is_some(), "{seen:?}");
                }
                assert_eq!(seen.query("timeMin"), None, "{seen:?}");
                assert_eq!(seen.query("timeMax"), None, "{seen:?}");
            }
            Kind::Microsoft => {
                if !seen.later_page {
                    assert!(seen.query("$deltatoken").is_some(), "{seen:?}");
                }
            }
        }
    }
}

/// Changes to the fake calendar, made under one lock ([`Provider::edit`]).
pub struct Edit<'a>(&'a mut Fake);

impl Edit<'_> {
    pub fn put(&mut self, meeting: Meeting) {
        let f = &mut *self.0;
        f.version += 1;
        let entry = Entry {
            meeting,
            version: f.version,
            deleted: false,
            updated: Utc::now(),
        };
        f.events.insert(entry.meeting.id.clone(), entry);
    }

    pub fn delete(&mut self, id: &str) {
        let f = &mut *self.0;
        f.version += 1;
        let version = f.version;
        let entry = f.events.get_mut(id).expect("no such event");
        entry.deleted = true;
        entry.version = version;
        entry.updated = Utc::now();
    }

    pub fn expire_sync_tokens(&mut self) {
        let f = &mut *self.0;
        f.epoch += 1;
        f.events.retain(|_, e| !e.deleted);
    }
}

// ---- The HTTP side. ----

/// A path segment as sent, decoded.
fn percent_decode(text: &str) -> String {
    percent_encoding::percent_decode_str(text)
        .decode_utf8_lossy()
        .into_owned()
}

fn pairs(text: &str) -> Vec<(String, String)> {
    url::form_urlencoded::parse(text.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

struct Answer {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: Value,
}

fn answer(status: u16, body: Value) -> Answer {
    Answer {
        status,
        headers: Vec::new(),
        body,
    }
}

async fn handle(
    State(state): State<Arc<Mutex<Fake>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let headers = header_pairs(&headers);
    let mut seen = Seen {
        at: Instant::now(),
        endpoint: Endpoint::Other,
        method: method.to_string(),
        path: uri.path().to_owned(),
        query: pairs(uri.query().unwrap_or("")),
        headers,
        form: Vec::new(),
        status: 0,
        sync: None,
        later_page: false,
        calendar: None,
    };
    let answer = {
        let mut fake = state.lock().unwrap();
        let answer = fake.answer(&method, &mut seen, &body);
        seen.status = answer.status;
        fake.seen.push(seen);
        answer
    };
    let mut response = Response::builder()
        .status(answer.status)
        .header("content-type", "application/json; charset=UTF-8");
    for (name, value) in &answer.headers {
        response = response.header(*name, value.as_str());
    }
    response.body(Body::from(answer.body.to_string())).unwrap()
}

impl Fake {
    fn answer(&mut self, method: &Method, seen: &mut Seen, body: &[u8]) -> Answer {
        let path = seen.path.clone();
        if method == Method::POST && path.ends_with("/token") {
            seen.endpoint = Endpoint::Token;
            return self.token(seen, body);
        }
        if method != Method::GET {
            return answer(405, json!({"error": "method not allowed"}));
        }
        let calendar = match self.kind {
            Kind::Google => path
                .strip_prefix("/calendar/v3/calendars/")
                .and_then(|rest| rest.strip_suffix("/events"))
                .map(|id| Some(percent_decode(id))),
            Kind::Microsoft => {
                if path == "/v1.0/me/calendarView/delta" {
                    Some(None)
                } else {
                    path.strip_prefix("/v1.0/me/calendars/")
                        .and_then(|rest| rest.strip_suffix("/calendarView/delta"))
                        .map(|id| Some(percent_decode(id)))
                }
            }
        };
        let Some(calendar) = calendar else {
            return answer(404, json!({"error": {"code": 404, "message": "Not Found"}}));
        };
        seen.endpoint = Endpoint::Events;
        seen.calendar = calendar;
        self.events(seen)
    }

    fn token(&mut self, seen: &mut Seen, body: &[u8]) -> Answer {
        let form_type = seen
            .header("content-type")
            .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded"));
        seen.form = pairs(&String::from_utf8_lossy(body));
        let field = |name: &str| find(&seen.form, name).map(str::to_owned);
        if !form_type {
            return answer(
                400,
                json!({"error": "invalid_request", "error_description": "Expected a form body."}),
            );
        }
        if field("grant_type").as_deref() != Some("refresh_token") {
            return answer(
                400,
                json!({"error": "unsupported_grant_type", "error_description": "Invalid grant_type."}),
            );
        }
        if field("client_id").as_deref() != Some(self.client_id.as_str())
            || field("client_secret").as_deref() != Some(self.client_secret.as_str())
        {
            return answer(
                401,
                json!({"error": "invalid_client", "error_description": "Unauthorized client or wrong secret."}),
            );
        }
        if self.kind == Kind::Microsoft && field("scope").is_none_or(|s| s.trim().is_empty()) {
            return answer(
                400,
                json!({"error": "invalid_request",
                       "error_description": "AADSTS900144: The request body must contain the following parameter: 'scope'."}),
            );
        }
        let grant = field("refresh_token")
            .and_then(|t| self.refresh_tokens.get(&t).copied())
            .filter(|g| !self.revoked.contains(g));
        let Some(grant) = grant else {
            let description = match self.kind {
                Kind::Google => "Token has been expired or revoked.",
                Kind::Microsoft => {
                    "AADSTS70008: The provided authorization code or refresh token has expired due to inactivity."
                }
            };
            return answer(
                400,
                json!({"error": "invalid_grant", "error_description": description}),
            );
        };
        self.issued += 1;
        let access = format!("at-{}-{}", grant, self.issued);
        self.access_tokens.insert(access.clone(), grant);
        match self.kind {
            Kind::Google => answer(
                200,
                json!({"access_token": access, "expires_in": 3599, "scope": "https://www.googleapis.com/auth/calendar.readonly",
                       "token_type": "Bearer"}),
            ),
            Kind::Microsoft => {
                // Microsoft rotates refresh tokens; the old one stays valid too.
                let rotated = format!("{}.r{}", field("refresh_token").unwrap(), self.issued);
                self.refresh_tokens.insert(rotated.clone(), grant);
                answer(
                    200,
                    json!({"token_type": "Bearer", "scope": "Calendars.Read offline_access",
                           "expires_in": 3599, "ext_expires_in": 3599,
                           "access_token": access, "refresh_token": rotated}),
                )
            }
        }
    }

    fn error_body(
        &self,
        status: u16,
        google_reason: &str,
        graph_code: &str,
        message: &str,
    ) -> Value {
        match self.kind {
            Kind::Google => json!({"error": {"code": status, "message": message,
                "errors": [{"domain": "global", "reason": google_reason, "message": message}]}}),
            Kind::Microsoft => json!({"error": {"code": graph_code, "message": message,
                "innerError": {"date": Utc::now().to_rfc3339(), "request-id": "fake"}}}),
        }
    }

    fn events(&mut self, seen: &mut Seen) -> Answer {
        let bearer = seen
            .header("authorization")
            .and_then(|h| h.strip_prefix("Bearer "))
            .map(str::to_owned);
        if !bearer.is_some_and(|t| self.access_tokens.contains_key(&t)) {
            let body = self.error_body(
                401,
                "authError",
                "InvalidAuthenticationToken",
                "Request had invalid authentication credentials.",
            );
            return Answer {
                status: 401,
                headers: vec![("www-authenticate", "Bearer realm=\"fake\"".into())],
                body,
            };
        }
        let (page_key, token_key) = match self.kind {
            Kind::Google => ("pageToken", "syncToken"),
            Kind::Microsoft => ("$skiptoken", "$deltatoken"),
        };
        // Classify first, so a throttled request is recorded with what it asked for.
        if let Some(page) = seen.query(page_key).map(str::to_owned) {
            seen.later_page = true;
            seen.sync = self.pages.get(&page).map(|p| p.sync);
        } else if seen.query(token_key).is_some() {
            seen.sync = Some(Sync::Incremental);
        } else {
            seen.sync = Some(Sync::Full);
        }
        if let Some(status) = self.failures.pop_front() {
            let (reason, code, message) = match status {
                429 => (
                    "rateLimitExceeded",
                    "TooManyRequests",
                    "Rate Limit Exceeded",
                ),
                _ => ("backendError", "ServiceNotAvailable", "Backend Error"),
            };
            let headers = if status == 429 {
                vec![("retry-after", "1".to_owned())]
            } else {
                Vec::new()
            };
            return Answer {
                status,
                headers,
                body: self.error_body(status, reason, code, message),
            };
        }
        let page = if let Some(token) = seen.query(page_key) {
            match self.pages.remove(token) {
                Some(page) => page,
                None => {
                    return answer(
                        400,
                        self.error_body(400, "invalid", "BadRequest", "Invalid page token."),
                    )
                }
            }
        } else if let Some(token) = seen.query(token_key) {
            let since = token
                .split('-')
                .collect::<Vec<_>>()
                .get(1..3)
                .and_then(|p| Some((p[0].parse::<u64>().ok()?, p[1].parse::<u64>().ok()?)));
            match since {
                Some((epoch, version)) if epoch == self.epoch => self.incremental(version),
                _ => {
                    let body = match self.kind {
                        Kind::Google => self.error_body(
                            410,
                            "fullSyncRequired",
                            "",
                            "Sync token is no longer valid, a full sync is required.",
                        ),
                        Kind::Microsoft => json!({"error": {"code": "syncStateNotFound",
                            "message": "The sync state generation is not found. Resync is required."}}),
                    };
                    return answer(410, body);
                }
            }
        } else {
            let window = match self.kind {
                Kind::Google => ("timeMin", "timeMax"),
                Kind::Microsoft => ("startDateTime", "endDateTime"),
            };
            let parse = |name: &str| {
                seen.query(name)
                    .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                    .map(|t| t.to_utc())
            };
            let (Some(from), Some(to)) = (parse(window.0), parse(window.1)) else {
                return answer(
                    400,
                    self.error_body(
                        400,
                        "badRequest",
                        "ErrorInvalidParameter",
                        "Missing or invalid time window.",
                    ),
                );
            };
            self.full(from, to)
        };
        self.serve_page(seen, page)
    }

    fn render(&self, entry: &Entry) -> Value {
        match self.kind {
            Kind::Google => google_event(entry),
            Kind::Microsoft => graph_event(entry),
        }
    }

    fn sync_token(&self) -> String {
        match self.kind {
            Kind::Google => format!("st-{}-{}", self.epoch, self.version),
            Kind::Microsoft => format!("dt-{}-{}", self.epoch, self.version),
        }
    }

    fn full(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Page {
        let mut entries: Vec<&Entry> = self
            .events
            .values()
            // Graph's first round lists what exists; Google with showDeleted also lists
            // deleted events it still remembers, as `cancelled` stubs.
            .filter(|e| !e.deleted || self.kind == Kind::Google)
            .filter(|e| e.meeting.end > from && e.meeting.start < to)
            .collect();
        entries.sort_by(|a, b| {
            (a.meeting.start, &a.meeting.id).cmp(&(b.meeting.start, &b.meeting.id))
        });
        Page {
            items: entries.into_iter().map(|e| self.render(e)).collect(),
            sync: Sync::Full,
            next_token: self.sync_token(),
        }
    }

    fn incremental(&self, since: u64) -> Page {
        let mut entries: Vec<&Entry> = self.events.values().filter(|e| e.version > since).collect();
        entries.sort_by_key(|e| e.version);
        Page {
            items: entries.into_iter().map(|e| self.render(e)).collect(),
            sync: Sync::Incremental,
            next_token: self.sync_token(),
        }
    }

    fn serve_page(&mut self, seen: &Seen, mut page: Page) -> Answer {
        let asked = match self.kind {
            Kind::Google => seen.query("maxResults").and_then(|n| n.parse().ok()),
            Kind::Microsoft => Some(seen.header_all("prefer")).and_then(|p| {
                p.split([',', ';'])
                    .find_map(|part| part.trim().strip_prefix("odata.maxpagesize="))
                    .and_then(|n| n.trim().parse().ok())
            }),
        };
        let size = asked.unwrap_or(PAGE_SIZE).clamp(1, PAGE_SIZE);
        let rest = page.items.split_off(size.min(page.items.len()));
        let items = std::mem::take(&mut page.items);
        let more = if rest.is_empty() {
            None
        } else {
            self.page_count += 1;
            let key = format!("pg-{}-{}", self.epoch, self.page_count);
            self.pages.insert(
                key.clone(),
                Page {
                    items: rest,
                    sync: page.sync,
                    next_token: page.next_token.clone(),
                },
            );
            Some(key)
        };
        let body = match self.kind {
            Kind::Google => {
                let mut body = json!({
                    "kind": "calendar#events",
                    "etag": format!("\"p{}\"", self.version),
                    "summary": "Team",
                    "updated": Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                    "timeZone": "UTC",
                    "accessRole": "owner",
                    "defaultReminders": [],
                    "items": items,
                });
                match more {
                    Some(key) => body["nextPageToken"] = json!(key),
                    None => body["nextSyncToken"] = json!(page.next_token),
                }
                body
            }
            Kind::Microsoft => {
                let prefix = match &seen.calendar {
                    None => "/v1.0/me".to_owned(),
                    Some(id) => format!(
                        "/v1.0/me/calendars/{}",
                        percent_encoding::utf8_percent_encode(
                            id,
                            percent_encoding::NON_ALPHANUMERIC
                        )
                    ),
                };
                let mut body = json!({
                    "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#Collection(event)",
                    "value": items,
                });
                match more {
                    Some(key) => {
                        let origin = self.next_link_origin.as_deref().unwrap_or(&self.base);
                        body["@odata.nextLink"] = json!(format!(
                            "{origin}{prefix}/calendarView/delta?$skiptoken={key}"
                        ));
                    }
                    None => {
                        body["@odata.deltaLink"] = json!(format!(
                            "{}{prefix}/calendarView/delta?$deltatoken={}",
                            self.base, page.next_token
                        ))
                    }
                }
                body
            }
        };
        answer(200, body)
    }
}

// ---- Each provider's event format. ----

fn name_of(email: &str) -> String {
    let local = email.split('@').next().unwrap_or(email);
    let mut chars = local.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// Google's times: a date for all-day events, else the time in the calendar's zone (a fixed
/// +01:00 here, so the client must read the offset).
fn google_time(t: DateTime<Utc>, all_day: bool) -> Value {
    if all_day {
        json!({"date": t.format("%Y-%m-%d").to_string()})
    } else {
        let local = t + Span::hours(1);
        json!({"dateTime": local.format("%Y-%m-%dT%H:%M:%S+01:00").to_string(),
               "timeZone": "Africa/Lagos"})
    }
}

fn google_event(entry: &Entry) -> Value {
    let m = &entry.meeting;
    let etag = format!("\"{}\"", 3_000_000_000u64 + entry.version);
    let mut event = if entry.deleted || m.cancelled {
        json!({"kind": "calendar#event", "etag": etag, "id": m.id, "status": "cancelled"})
    } else {
        let mut event = json!({
            "kind": "calendar#event",
            "etag": etag,
            "id": m.id,
            "status": "confirmed",
            "htmlLink": format!("https://www.google.com/calendar/event?eid={}", m.id),
            "created": "2026-01-05T09:00:00.000Z",
            "updated": entry.updated.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "summary": m.name,
            "creator": {"email": m.organizer},
            "organizer": {"email": m.organizer, "displayName": name_of(&m.organizer)},
            "start": google_time(m.start, m.all_day),
            "end": google_time(m.end, m.all_day),
            "iCalUID": m.ical_uid(),
            "sequence": 0,
            "reminders": {"useDefault": true},
            "eventType": "default",
        });
        if !m.attendees.is_empty() {
            event["attendees"] = m
                .attendees
                .iter()
                .map(|a| json!({"email": a, "displayName": name_of(a), "responseStatus": "accepted"}))
                .collect();
        }
        match &m.link {
            Link::None => {}
            Link::Conference(url) => {
                event["conferenceData"] = json!({
                    "entryPoints": [
                        {"entryPointType": "video", "uri": url, "label": url},
                        {"entryPointType": "phone", "uri": "tel:+1-555-0100", "label": "+1 555-0100", "pin": "123"},
                    ],
                    "conferenceSolution": {"key": {"type": "addOn"}, "name": "Sandbox"},
                    "conferenceId": "fake-conference",
                })
            }
            Link::Location(url) => event["location"] = json!(format!("Room 4, {url}")),
            Link::Description(url) => {
                event["description"] = json!(format!("Agenda<br>Join: <a href=\"{url}\">{url}</a>"))
            }
        }
        event
    };
    if let Some((series, original)) = &m.series {
        event["recurringEventId"] = json!(series);
        event["originalStartTime"] = google_time(*original, m.all_day);
    }
    event
}

fn graph_time(t: DateTime<Utc>) -> Value {
    json!({"dateTime": format!("{}.0000000", t.format("%Y-%m-%dT%H:%M:%S")), "timeZone": "UTC"})
}

fn graph_event(entry: &Entry) -> Value {
    let m = &entry.meeting;
    if entry.deleted {
        return json!({"@odata.type": "#microsoft.graph.event", "id": m.id,
                      "@removed": {"reason": "deleted"}});
    }
    let (kind, master, original) = match &m.series {
        None => ("singleInstance", Value::Null, Value::Null),
        Some((series, original)) => (
            if m.exception {
                "exception"
            } else {
                "occurrence"
            },
            json!(series),
            json!(original.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
        ),
    };
    let (location, body, preview, online) = match &m.link {
        Link::None => (
            "Room 4".to_owned(),
            "<p>Agenda</p>".to_owned(),
            "Agenda".to_owned(),
            None,
        ),
        Link::Conference(url) => (
            "Microsoft Teams Meeting".to_owned(),
            "<p>Agenda</p>".to_owned(),
            "Agenda".to_owned(),
            Some(url.clone()),
        ),
        Link::Location(url) => (
            format!("Room 4 / {url}"),
            "<p>Agenda</p>".to_owned(),
            "Agenda".to_owned(),
            None,
        ),
        Link::Description(url) => (
            "Room 4".to_owned(),
            format!("<p>Agenda</p><p>Join: <a href=\"{url}\">{url}</a></p>"),
            format!("Agenda\r\nJoin: {url}"),
            None,
        ),
    };
    let subject = if m.cancelled {
        format!("Canceled: {}", m.name)
    } else {
        m.name.clone()
    };
    let attendees: Vec<Value> = m
        .attendees
        .iter()
        .map(|a| {
            json!({
                "type": "required",
                "status": {"response": "accepted", "time": "2026-01-05T09:00:00Z"},
                "emailAddress": {"name": name_of(a), "address": a},
            })
        })
        .collect();
    let mut event = json!({
        "@odata.type": "#microsoft.graph.event",
        "@odata.etag": format!("W/\"DwAAABYAAAB{}\"", entry.version),
        "id": m.id,
        "createdDateTime": "2026-01-05T09:00:00.0000000Z",
        "lastModifiedDateTime": entry.updated.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        "changeKey": format!("DwAAABYAAAB{}", entry.version),
        "categories": [],
        "originalStartTimeZone": "UTC",
        "originalEndTimeZone": "UTC",
        "iCalUId": m.ical_uid(),
        "reminderMinutesBeforeStart": 15,
        "isReminderOn": true,
        "hasAttachments": false,
        "subject": subject,
        "bodyPreview": preview,
        "importance": "normal",
        "sensitivity": "normal",
        "isAllDay": m.all_day,
        "isCancelled": m.cancelled,
        "isOrganizer": false,
        "responseRequested": true,
        "seriesMasterId": master,
        "originalStart": original,
        "showAs": "busy",
        "type": kind,
    });
    let more = json!({
        "webLink": format!("https://outlook.office365.com/owa/?itemid={}", percent_encoding::utf8_percent_encode(&m.id, percent_encoding::NON_ALPHANUMERIC)),
        "onlineMeetingUrl": null,
        "isOnlineMeeting": online.is_some(),
        "onlineMeetingProvider": if online.is_some() { "teamsForBusiness" } else { "unknown" },
        "responseStatus": {"response": "accepted", "time": "2026-01-05T09:00:00Z"},
        "body": {"contentType": "html",
                 "content": format!("<html><head><meta http-equiv=\"Content-Type\" content=\"text/html; charset=utf-8\"></head><body>{body}</body></html>")},
        "start": graph_time(m.start),
        "end": graph_time(m.end),
        "location": {"displayName": location, "locationType": "default", "uniqueIdType": "unknown"},
        "locations": [{"displayName": location, "locationType": "default"}],
        "recurrence": null,
        "attendees": attendees,
        "organizer": {"emailAddress": {"name": name_of(&m.organizer), "address": m.organizer}},
        "onlineMeeting": online.map(|url| json!({"joinUrl": url})),
    });
    for (key, value) in more.as_object().unwrap() {
        event[key] = value.clone();
    }
    event
}
