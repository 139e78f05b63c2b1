//! `/api/v1/bots…`: create, list, read, edit, delete, leave, and the bot's records.

use axum::extract::{OriginalUri, State};
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::IntoResponse;
use axum::Json;
use chrono::DateTime;
use meetwire_core::bot_fields::{self, check_bot_name, DEFAULT_BOT_NAME};
use meetwire_core::record::RecordKind;
use meetwire_core::state::BotState;
use meetwire_core::time::{now, Timestamp};
use meetwire_store::{
    Actor, Bot, BotFilter, BotInput, BotMeeting, BotPatch, NewBot, PageRequest, Store, StoredRecord,
};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::auth::Project;
use super::error::{ApiError, ApiResult};
use super::json::ApiJson;
use super::pagination::{page_body, query_params, PageBody, QueryParams};
use super::path::ApiPath;
use super::views;
use super::webhooks::{bot_webhooks, BotWebhookBody};
use crate::app::AppState;
use crate::sandbox::script::SandboxMeeting;

/// How far in the past a `join_at` may be (clock skew) before it is refused.
const JOIN_AT_GRACE_SECONDS: i64 = 60;
const MAX_DEDUP_KEY_LEN: usize = 1024;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateBotBody {
    #[serde(default)]
    meeting_url: Option<String>,
    /// Instead of `meeting_url` and `join_at`: the bot joins this calendar event's meeting at
    /// its start, and follows the event when it moves or is deleted.
    #[serde(default)]
    calendar_event_id: Option<String>,
    #[serde(default)]
    bot_name: Option<String>,
    #[serde(default)]
    metadata: Option<Value>,
    #[serde(default)]
    deduplication_key: Option<String>,
    #[serde(default)]
    join_at: Option<String>,
    #[serde(default)]
    sandbox_script: Option<Value>,
    #[serde(default)]
    webhooks: Option<Vec<BotWebhookBody>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchBotBody {
    #[serde(default)]
    metadata: Option<Value>,
    #[serde(default)]
    join_at: Option<String>,
}

/// `metadata` must be an object of strings (Attendee's rule).
pub(crate) fn metadata(value: Option<Value>) -> ApiResult<Option<Map<String, Value>>> {
    bot_fields::metadata(value.unwrap_or(Value::Null), "metadata").map_err(ApiError::BadRequest)
}

fn join_at(text: Option<&str>, at: &Timestamp) -> ApiResult<Option<Timestamp>> {
    let Some(text) = text else { return Ok(None) };
    let parsed = DateTime::parse_from_rfc3339(text)
        .map_err(|_| ApiError::BadRequest(format!("join_at is not an ISO 8601 time: {text}")))?
        .to_utc();
    if (*at - parsed).num_seconds() > JOIN_AT_GRACE_SECONDS {
        return Err(ApiError::BadRequest(
            "join_at must not be in the past".into(),
        ));
    }
    Ok(Some(parsed))
}

impl CreateBotBody {
    /// A bot with just a meeting URL and a name, as the UI's form makes one.
    pub(crate) fn for_meeting(meeting_url: String, bot_name: Option<String>) -> CreateBotBody {
        CreateBotBody {
            meeting_url: Some(meeting_url),
            calendar_event_id: None,
            bot_name,
            metadata: None,
            deduplication_key: None,
            join_at: None,
            sandbox_script: None,
            webhooks: None,
        }
    }
}

pub async fn create(
    State(state): State<AppState>,
    Project(project): Project,
    ApiJson(body): ApiJson<CreateBotBody>,
) -> ApiResult<impl IntoResponse> {
    let bot = create_bot(&state, &project, body).await?;
    let body = render(state.store.as_ref(), &bot).await?;
    Ok((StatusCode::CREATED, Json(body)))
}

/// Validates and creates a bot, and wakes the runners: the API's and the UI's one path.
pub(crate) async fn create_bot(
    state: &AppState,
    project: &str,
    body: CreateBotBody,
) -> ApiResult<Bot> {
    let at = now();
    let meeting = match (body.meeting_url, body.calendar_event_id) {
        (Some(meeting_url), None) => {
            SandboxMeeting::from_meeting_url(&meeting_url, body.sandbox_script.as_ref())
                .map_err(ApiError::BadRequest)?;
            BotMeeting::Link {
                join_at: join_at(body.join_at.as_deref(), &at)?,
                meeting_url,
            }
        }
        (None, Some(_)) if body.join_at.is_some() => return Err(ApiError::BadRequest(
            "join_at cannot be given with calendar_event_id: the bot joins at the event's start"
                .into(),
        )),
        (None, Some(_)) if body.sandbox_script.is_some() => {
            return Err(ApiError::BadRequest(
                "sandbox_script needs a meeting_url of sandbox://custom".into(),
            ))
        }
        // The store reads the event (its link and start) in the bot's transaction.
        (None, Some(event_id)) => BotMeeting::CalendarEvent(event_id),
        (Some(_), Some(_)) => return Err(ApiError::BadRequest(
            "meeting_url cannot be given with calendar_event_id: the bot joins the event's meeting"
                .into(),
        )),
        (None, None) => {
            return Err(ApiError::BadRequest(
                "meeting_url (or calendar_event_id) is required".into(),
            ))
        }
    };
    let bot_name = body.bot_name.unwrap_or_else(|| DEFAULT_BOT_NAME.to_owned());
    check_bot_name(&bot_name, "bot_name").map_err(ApiError::BadRequest)?;
    if let Some(key) = &body.deduplication_key {
        if key.is_empty() || key.len() > MAX_DEDUP_KEY_LEN {
            return Err(ApiError::BadRequest(format!(
                "deduplication_key must be 1 to {MAX_DEDUP_KEY_LEN} bytes"
            )));
        }
    }
    let new = NewBot {
        meeting,
        bot_name,
        metadata: metadata(body.metadata)?,
        deduplication_key: body.deduplication_key,
        sandbox_script: body.sandbox_script,
        webhooks: bot_webhooks(
            &state.config.delivery.policy,
            body.webhooks.unwrap_or_default(),
        )?,
    };
    let bot = state.store.create_bot(project, new).await?;
    state.wake_runners();
    Ok(bot)
}

/// The bot object with all its events.
async fn render(store: &dyn Store, bot: &Bot) -> ApiResult<Value> {
    let events = all_records(store, &bot.project_id, &bot.id, RecordKind::BotEvent).await?;
    Ok(views::bot(bot, &events))
}

/// The list filters: `meeting_url`, `deduplication_key`, and `states` (repeated or
/// comma-separated).
fn bot_filter(params: &QueryParams) -> ApiResult<BotFilter> {
    let mut filter = BotFilter {
        meeting_url: params.get("meeting_url").cloned(),
        deduplication_key: params.get("deduplication_key").cloned(),
        ..BotFilter::default()
    };
    for code in params
        .all("states")
        .flat_map(|v| v.split(','))
        .filter(|c| !c.is_empty())
    {
        let state = code
            .parse::<BotState>()
            .map_err(|_| ApiError::BadRequest(format!("Invalid state: {code}")))?;
        filter.states.push(state);
    }
    Ok(filter)
}

pub async fn list(
    State(state): State<AppState>,
    Project(project): Project,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> ApiResult<Json<PageBody<Value>>> {
    let params = query_params(&uri);
    let filter = bot_filter(&params)?;
    let page = state
        .store
        .list_bots(&project, &filter, params.page()?)
        .await?;
    let mut rendered = Vec::with_capacity(page.items.len());
    for bot in &page.items {
        rendered.push(render(state.store.as_ref(), bot).await?);
    }
    let page = meetwire_store::Page {
        items: rendered,
        next: page.next,
        previous: page.previous,
    };
    Ok(Json(page_body(page, &uri, &headers, |b| b)))
}

pub async fn get(
    State(state): State<AppState>,
    Project(project): Project,
    ApiPath(bot_id): ApiPath<String>,
) -> ApiResult<Json<Value>> {
    let bot = state.store.get_bot(&project, &bot_id).await?;
    Ok(Json(render(state.store.as_ref(), &bot).await?))
}

pub async fn patch(
    State(state): State<AppState>,
    Project(project): Project,
    ApiPath(bot_id): ApiPath<String>,
    ApiJson(body): ApiJson<PatchBotBody>,
) -> ApiResult<Json<Value>> {
    let patch = BotPatch {
        metadata: metadata(body.metadata)?,
        join_at: join_at(body.join_at.as_deref(), &now())?,
    };
    let bot = state.store.patch_bot(&project, &bot_id, patch).await?;
    Ok(Json(render(state.store.as_ref(), &bot).await?))
}

pub async fn delete(
    State(state): State<AppState>,
    Project(project): Project,
    ApiPath(bot_id): ApiPath<String>,
) -> ApiResult<StatusCode> {
    state.store.delete_bot(&project, &bot_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Deletes an ended or failed bot's recorded data (Attendee's `delete_data`): its transcript,
/// chat messages, participant events and logs, with the webhook deliveries made from them. The
/// bot and its state history stay; it moves to `data_deleted`, sent as a `bot.state_change`.
pub async fn delete_data(
    State(state): State<AppState>,
    Project(project): Project,
    ApiPath(bot_id): ApiPath<String>,
) -> ApiResult<Json<Value>> {
    ask(&state, &project, &bot_id, BotInput::DeleteData).await
}

/// Asks the bot to leave. A runner learns of it from the bot's state (`leaving`); a bot no
/// runner has picked up yet has no one to leave for it, so its exit is recorded at once (the
/// store decides that inside the write, against the bot as it is then).
pub async fn leave(
    State(state): State<AppState>,
    Project(project): Project,
    ApiPath(bot_id): ApiPath<String>,
) -> ApiResult<Json<Value>> {
    ask(&state, &project, &bot_id, BotInput::Leave).await
}

/// Applies a user's request to the bot (decided inside the write) and answers with the bot.
async fn ask(
    state: &AppState,
    project: &str,
    bot_id: &str,
    input: BotInput,
) -> ApiResult<Json<Value>> {
    state
        .store
        .record(Actor::Project(project), bot_id, vec![input], None)
        .await?;
    let bot = state.store.get_bot(project, bot_id).await?;
    Ok(Json(render(state.store.as_ref(), &bot).await?))
}

/// Every record of a kind, oldest first, however many pages that takes.
async fn all_records(
    store: &dyn Store,
    project: &str,
    bot_id: &str,
    kind: RecordKind,
) -> ApiResult<Vec<StoredRecord>> {
    let mut all = Vec::new();
    let mut page = PageRequest {
        after: None,
        limit: 1000,
    };
    loop {
        let got = store.list_records(project, bot_id, kind, page).await?;
        all.extend(got.items);
        match got.next {
            Some(next) => page.after = Some(next),
            None => return Ok(all),
        }
    }
}

/// The transcript: a plain array of every utterance, as in Attendee.
pub async fn transcript(
    State(state): State<AppState>,
    Project(project): Project,
    ApiPath(bot_id): ApiPath<String>,
) -> ApiResult<Json<Vec<Value>>> {
    let all = all_records(
        state.store.as_ref(),
        &project,
        &bot_id,
        RecordKind::Utterance,
    )
    .await?;
    Ok(Json(all.into_iter().map(views::record).collect()))
}

async fn paginated(
    state: &AppState,
    project: &str,
    bot_id: &str,
    kind: RecordKind,
    uri: &Uri,
    headers: &HeaderMap,
) -> ApiResult<Json<PageBody<Value>>> {
    let page = query_params(uri).page()?;
    let page = state
        .store
        .list_records(project, bot_id, kind, page)
        .await?;
    Ok(Json(page_body(page, uri, headers, views::record)))
}

pub async fn chat_messages(
    State(state): State<AppState>,
    Project(project): Project,
    ApiPath(bot_id): ApiPath<String>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> ApiResult<Json<PageBody<Value>>> {
    paginated(
        &state,
        &project,
        &bot_id,
        RecordKind::ChatMessage,
        &uri,
        &headers,
    )
    .await
}

pub async fn participant_events(
    State(state): State<AppState>,
    Project(project): Project,
    ApiPath(bot_id): ApiPath<String>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> ApiResult<Json<PageBody<Value>>> {
    paginated(
        &state,
        &project,
        &bot_id,
        RecordKind::ParticipantEvent,
        &uri,
        &headers,
    )
    .await
}

pub async fn logs(
    State(state): State<AppState>,
    Project(project): Project,
    ApiPath(bot_id): ApiPath<String>,
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
) -> ApiResult<Json<PageBody<Value>>> {
    paginated(&state, &project, &bot_id, RecordKind::Log, &uri, &headers).await
}
