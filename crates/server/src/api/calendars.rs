//! `/api/v1/calendars…` and `/api/v1/calendar_events`: connect a calendar (its credentials
//! sealed at rest and never shown again, a patch merging new fields into them), read its state
//! and events, sync it now.

use axum::extract::{OriginalUri, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use chrono::DateTime;
use meetwire_core::auto_join::AutoJoinRule;
use meetwire_core::calendar::{CalendarStatus, Platform};
use meetwire_core::time::{rest_timestamp, Timestamp};
use meetwire_store::{
    Calendar, CalendarEvent, CalendarEventFilter, CalendarFilter, CalendarPatch, NewCalendar,
    StoreError,
};
use serde::Deserialize;
use serde_json::{json, Value};

use super::auth::Project;
use super::bots::metadata;
use super::error::{ApiError, ApiResult};
use super::json::ApiJson;
use super::pagination::{page_body, query_params, PageBody, QueryParams};
use super::path::ApiPath;
use crate::app::AppState;
use crate::calendar::provider::OAuthCredentials;
use crate::calendar::Credentials;

/// Every credential field any platform takes, so one a platform does not take is named.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateBody {
    platform: String,
    #[serde(default)]
    ical_url: Option<String>,
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    client_secret: Option<String>,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default)]
    platform_uuid: Option<String>,
    #[serde(default)]
    deduplication_key: Option<String>,
    #[serde(default)]
    metadata: Option<Value>,
    #[serde(default)]
    auto_join: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchBody {
    #[serde(default)]
    ical_url: Option<String>,
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    client_secret: Option<String>,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default)]
    platform_uuid: Option<String>,
    #[serde(default)]
    metadata: Option<Value>,
    /// Absent: unchanged; `null`: auto-join off; an object: the new rule.
    #[serde(default, deserialize_with = "present")]
    auto_join: Option<Value>,
}

/// A field that was given, `null` included (serde reads a plain `Option` null as absent).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

/// An `auto_join` value: `null` for none, else a rule checked by the one reader of rules.
fn auto_join_rule(value: Value) -> ApiResult<Option<AutoJoinRule>> {
    match value {
        Value::Null => Ok(None),
        rule => AutoJoinRule::from_json(rule)
            .map(Some)
            .map_err(ApiError::BadRequest),
    }
}

pub fn view(c: &Calendar) -> Value {
    let status = CalendarStatus::new(
        c.state,
        c.connection_failure
            .as_ref()
            .map(|(e, at)| (e.as_str(), at)),
        c.last_successful_sync_at.as_ref(),
        c.last_attempted_sync_at.as_ref(),
    );
    json!({
        "id": c.id,
        "platform": c.platform.code(),
        "deduplication_key": c.deduplication_key,
        "metadata": c.metadata,
        "state": status.state,
        "connection_failure_data": status.connection_failure_data,
        "last_successful_sync_at": status.last_successful_sync_at,
        "last_attempted_sync_at": status.last_attempted_sync_at,
        "auto_join": c.auto_join,
        "created_at": rest_timestamp(&c.created_at),
        "updated_at": rest_timestamp(&c.updated_at),
    })
}

fn event_view(e: &CalendarEvent) -> Value {
    json!({
        "id": e.id,
        "calendar_id": e.calendar_id,
        "start_time": rest_timestamp(&e.start_time),
        "end_time": rest_timestamp(&e.end_time),
        "name": e.name,
        "meeting_url": e.meeting_url,
        "attendees": e.attendees,
        "is_deleted": e.is_deleted,
        "ical_uid": e.ical_uid,
        "raw": e.raw,
        "created_at": rest_timestamp(&e.created_at),
        "updated_at": rest_timestamp(&e.updated_at),
    })
}

/// A feed URL under the webhook destinations' rules, named as the field it came in.
fn ical_url(state: &AppState, url: &str) -> ApiResult<String> {
    state
        .config
        .delivery
        .policy
        .check_new_url_as(url, "ical_url")
        .map_err(ApiError::BadRequest)?;
    Ok(url.to_owned())
}

/// The credential fields a create or a patch gave.
struct CredentialFields<'a> {
    ical_url: Option<&'a str>,
    client_id: Option<&'a str>,
    client_secret: Option<&'a str>,
    refresh_token: Option<&'a str>,
    platform_uuid: Option<&'a str>,
}

/// The credential fields of a create's or a patch's body (the same names in both).
macro_rules! credential_fields {
    ($body:expr) => {
        CredentialFields {
            ical_url: $body.ical_url.as_deref(),
            client_id: $body.client_id.as_deref(),
            client_secret: $body.client_secret.as_deref(),
            refresh_token: $body.refresh_token.as_deref(),
            platform_uuid: $body.platform_uuid.as_deref(),
        }
    };
}

impl CredentialFields<'_> {
    fn oauth(&self) -> [(&'static str, Option<&str>); 4] {
        [
            ("client_id", self.client_id),
            ("client_secret", self.client_secret),
            ("refresh_token", self.refresh_token),
            ("platform_uuid", self.platform_uuid),
        ]
    }

    fn any(&self) -> bool {
        self.ical_url.is_some() || self.oauth().iter().any(|(_, v)| v.is_some())
    }
}

/// Longest credential field accepted.
const MAX_CREDENTIAL_CHARS: usize = 4096;

/// The credentials of a `platform` calendar: the fields given, the rest (on a patch) from
/// `current`. A field the platform does not take is refused by name, as is a missing one.
fn credentials(
    state: &AppState,
    platform: Platform,
    given: &CredentialFields<'_>,
    current: Option<Credentials>,
) -> ApiResult<Credentials> {
    for (name, value) in given.oauth().iter().chain([&("ical_url", given.ical_url)]) {
        if value.is_some_and(|v| v.trim().is_empty() || v.chars().count() > MAX_CREDENTIAL_CHARS) {
            return Err(ApiError::BadRequest(format!(
                "{name} must be between 1 and {MAX_CREDENTIAL_CHARS} characters"
            )));
        }
    }
    let fields = Fields { platform, given };
    match platform {
        Platform::Ical => fields.ical(state, current),
        Platform::Google => fields.oauth(current).map(Credentials::Google),
        Platform::Microsoft => fields.oauth(current).map(Credentials::Microsoft),
    }
}

/// The fields given for one platform's credentials, and the errors that name them.
struct Fields<'a> {
    platform: Platform,
    given: &'a CredentialFields<'a>,
}

impl Fields<'_> {
    fn not_taken(&self, name: &str) -> ApiError {
        ApiError::BadRequest(format!(
            "{name} is not a credential of a {} calendar",
            self.platform.code()
        ))
    }

    fn required(&self, name: &str) -> ApiError {
        ApiError::BadRequest(format!(
            "{name} is required for a {} calendar",
            self.platform.code()
        ))
    }

    fn ical(&self, state: &AppState, current: Option<Credentials>) -> ApiResult<Credentials> {
        if let Some((name, _)) = self.given.oauth().iter().find(|(_, v)| v.is_some()) {
            return Err(self.not_taken(name));
        }
        let url = match (self.given.ical_url, &current) {
            (Some(url), _) => url,
            (None, Some(Credentials::Ical { ical_url })) => ical_url.as_str(),
            (None, _) => return Err(self.required("ical_url")),
        };
        Ok(Credentials::Ical {
            ical_url: ical_url(state, url)?,
        })
    }

    fn oauth(&self, current: Option<Credentials>) -> ApiResult<OAuthCredentials> {
        if self.given.ical_url.is_some() {
            return Err(self.not_taken("ical_url"));
        }
        let current = match current {
            Some(Credentials::Google(oauth) | Credentials::Microsoft(oauth)) => Some(oauth),
            _ => None,
        };
        let field = |name: &str, value: Option<&str>, kept: Option<&String>| {
            value
                .map(str::to_owned)
                .or_else(|| kept.cloned())
                .ok_or_else(|| self.required(name))
        };
        let given = self.given;
        Ok(OAuthCredentials {
            client_id: field(
                "client_id",
                given.client_id,
                current.as_ref().map(|c| &c.client_id),
            )?,
            client_secret: field(
                "client_secret",
                given.client_secret,
                current.as_ref().map(|c| &c.client_secret),
            )?,
            refresh_token: field(
                "refresh_token",
                given.refresh_token,
                current.as_ref().map(|c| &c.refresh_token),
            )?,
            platform_uuid: given
                .platform_uuid
                .map(str::to_owned)
                .or_else(|| current.and_then(|c| c.platform_uuid)),
        })
    }
}

fn seal(state: &AppState, credentials: &Credentials) -> ApiResult<Vec<u8>> {
    credentials.seal(&state.sealing).map_err(|e| {
        tracing::error!(error = %e, "cannot seal calendar credentials");
        ApiError::Internal
    })
}

pub async fn create(
    State(state): State<AppState>,
    Project(project): Project,
    ApiJson(body): ApiJson<CreateBody>,
) -> ApiResult<impl IntoResponse> {
    let platform: Platform = body
        .platform
        .parse()
        .map_err(|_| ApiError::BadRequest(format!("Invalid platform: {}", body.platform)))?;
    let credentials = credentials(&state, platform, &credential_fields!(body), None)?;
    let new = NewCalendar {
        platform: credentials.platform(),
        sealed_credentials: seal(&state, &credentials)?,
        deduplication_key: body.deduplication_key,
        metadata: metadata(body.metadata)?.unwrap_or_default(),
        auto_join: auto_join_rule(body.auto_join.unwrap_or(Value::Null))?,
    };
    let calendar = match state.store.create_calendar(&project, new).await {
        Err(StoreError::Conflict(message)) => return Err(ApiError::BadRequest(message)),
        other => other?,
    };
    state.calendar_wake.notify_one();
    Ok((StatusCode::CREATED, Json(view(&calendar))))
}

pub async fn list(
    State(state): State<AppState>,
    Project(project): Project,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> ApiResult<Json<PageBody<Value>>> {
    let params = query_params(&uri);
    let filter = CalendarFilter {
        deduplication_key: params.get("deduplication_key").cloned(),
    };
    let page = state
        .store
        .list_calendars(&project, &filter, params.page()?)
        .await?;
    Ok(Json(page_body(page, &uri, &headers, |c| view(&c))))
}

pub async fn get(
    State(state): State<AppState>,
    Project(project): Project,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<Json<Value>> {
    Ok(Json(view(&state.store.get_calendar(&project, &id).await?)))
}

pub async fn patch(
    State(state): State<AppState>,
    Project(project): Project,
    ApiPath(id): ApiPath<String>,
    ApiJson(body): ApiJson<PatchBody>,
) -> ApiResult<Json<Value>> {
    let current = state.store.get_calendar(&project, &id).await?;
    let given = credential_fields!(body);
    let sealed_credentials = if given.any() {
        let sealed = state.store.calendar_credentials(&project, &id).await?;
        let stored = Credentials::open(&sealed, &state.sealing).map_err(|e| {
            tracing::error!(error = %e, "cannot open calendar credentials");
            ApiError::Internal
        })?;
        let merged = credentials(&state, current.platform, &given, Some(stored))?;
        Some(seal(&state, &merged)?)
    } else {
        None
    };
    let patch = CalendarPatch {
        metadata: metadata(body.metadata)?,
        sealed_credentials,
        auto_join: body.auto_join.map(auto_join_rule).transpose()?,
    };
    let calendar = state.store.patch_calendar(&project, &id, patch).await?;
    state.calendar_wake.notify_one();
    Ok(Json(view(&calendar)))
}

pub async fn delete(
    State(state): State<AppState>,
    Project(project): Project,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<StatusCode> {
    state.store.delete_calendar(&project, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Queues a sync now; answers once it is queued (the sync itself runs in the background).
pub async fn sync(
    State(state): State<AppState>,
    Project(project): Project,
    ApiPath(id): ApiPath<String>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let calendar = state.store.request_calendar_sync(&project, &id).await?;
    state.calendar_wake.notify_one();
    Ok((StatusCode::ACCEPTED, Json(view(&calendar))))
}

fn time_param(params: &QueryParams, name: &str) -> ApiResult<Option<Timestamp>> {
    params
        .get(name)
        .map(|text| {
            DateTime::parse_from_rfc3339(text)
                .map(|t| t.to_utc())
                .map_err(|_| {
                    ApiError::BadRequest(format!("{name} is not an ISO 8601 time: {text}"))
                })
        })
        .transpose()
}

pub async fn events(
    State(state): State<AppState>,
    Project(project): Project,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> ApiResult<Json<PageBody<Value>>> {
    let params = query_params(&uri);
    let filter = CalendarEventFilter {
        calendar_id: params.get("calendar_id").cloned(),
        calendar_deduplication_key: params.get("calendar_deduplication_key").cloned(),
        updated_after: time_param(&params, "updated_after")?,
        start_time_gte: time_param(&params, "start_time_gte")?,
        end_time_lte: time_param(&params, "end_time_lte")?,
    };
    let page = state
        .store
        .list_calendar_events(&project, &filter, params.page()?)
        .await?;
    Ok(Json(page_body(page, &uri, &headers, |e| event_view(&e))))
}
