//! The objects the store reads and writes, in domain types (not rows).

use meetwire_core::auto_join::AutoJoinRule;
use meetwire_core::record::{BotEventRequest, RunnerRecord};
use meetwire_core::state::{BotState, RecordingState, TranscriptionState};
use meetwire_core::time::Timestamp;
use meetwire_core::trigger::Trigger;
use serde_json::{Map, Value};

/// A project just created, with its first API key in clear (shown once, stored hashed).
#[derive(Debug, Clone)]
pub struct CreatedProject {
    pub project_id: String,
    pub api_key: String,
}

/// A webhook secret as stored: sealed bytes that only the server's key opens.
#[derive(Debug, Clone, PartialEq)]
pub struct SealedSecret {
    pub sealed: Vec<u8>,
    pub created_at: Timestamp,
    /// When a rotated-out secret stops signing; `None` for the active secret.
    pub expires_at: Option<Timestamp>,
}

/// A bot as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Bot {
    pub id: String,
    pub project_id: String,
    pub meeting_url: String,
    pub bot_name: String,
    /// `None` when the bot was created without metadata (shown and sent as `null`, as
    /// Attendee does).
    pub metadata: Option<Map<String, Value>>,
    pub deduplication_key: Option<String>,
    pub join_at: Option<Timestamp>,
    pub state: BotState,
    pub recording_state: RecordingState,
    pub transcription_state: TranscriptionState,
    pub is_sandbox: bool,
    pub sandbox_script: Option<Value>,
    pub runner: Option<String>,
    pub runner_cursor: Option<Value>,
    /// The calendar event the bot was sent to: it follows the event's moves and is cancelled
    /// when the event is deleted.
    pub calendar_event_id: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// What a new bot is made of; ids and states are the store's to set.
#[derive(Debug, Clone)]
pub struct NewBot {
    pub meeting: BotMeeting,
    pub bot_name: String,
    pub metadata: Option<Map<String, Value>>,
    pub deduplication_key: Option<String>,
    pub sandbox_script: Option<Value>,
    /// Bot-level webhook subscriptions, created in the bot's transaction.
    pub webhooks: Vec<NewSubscription>,
}

/// Where and when a new bot joins.
#[derive(Debug, Clone)]
pub enum BotMeeting {
    /// A meeting link; a future `join_at` makes the bot `scheduled`, else it is asked to join
    /// at once.
    Link {
        meeting_url: String,
        join_at: Option<Timestamp>,
    },
    /// A calendar event of the project: its meeting link, at its start (at once if it has
    /// started). The store reads the event in the bot's transaction; the bot then follows it.
    CalendarEvent(String),
}

/// A change to a bot's user-editable fields.
#[derive(Debug, Clone, Default)]
pub struct BotPatch {
    pub metadata: Option<Map<String, Value>>,
    pub join_at: Option<Timestamp>,
}

/// Filters of the bot list.
#[derive(Debug, Clone, Default)]
pub struct BotFilter {
    pub meeting_url: Option<String>,
    pub deduplication_key: Option<String>,
    pub states: Vec<BotState>,
    /// The bots sent to one calendar event.
    pub calendar_event_id: Option<String>,
}

/// Who is acting on a bot: the access rule differs.
#[derive(Debug, Clone, Copy)]
pub enum Actor<'a> {
    /// A user of this project (API key).
    Project(&'a str),
    /// The runner that claimed the bot.
    Runner(&'a str),
    /// meetwire itself (scheduler, heartbeat monitor).
    System,
}

/// One thing that happened to a bot.
#[derive(Debug, Clone)]
pub enum BotInput {
    Event(BotEventRequest),
    Record(RunnerRecord),
    /// The user asks the bot to leave; decided against the bot's state inside the write.
    Leave,
    /// The user asks for the bot's recorded data to be deleted (an ended or failed bot): its
    /// transcript, chat messages, participant events and logs go, with the webhook deliveries
    /// made from them; the bot and its state history stay, and it moves to `data_deleted`.
    /// Refused while any of those deliveries is still pending (it is owed to a receiver).
    DeleteData,
}

/// The result of storing a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchOutcome {
    pub stored: usize,
    /// Records whose runner id was already stored (a retried batch): skipped.
    pub duplicates: usize,
    pub state: BotState,
    /// Webhook deliveries the batch made owed.
    pub deliveries: usize,
    /// Those of them due at once that were not handed to this process's dispatcher: it must
    /// claim them from the database.
    pub due_unclaimed: usize,
}

/// A stored record: a state event, utterance, chat message, participant event or log entry.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredRecord {
    pub seq: i64,
    pub payload: Value,
    pub created_at: Timestamp,
}

/// A position in a list, for cursor pagination: rows strictly after (or before) `seq`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    pub after: Option<Cursor>,
    pub limit: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub seq: i64,
    /// Walk backwards (the "previous" link).
    pub backwards: bool,
}

/// One page: items in list order, and the cursors of the neighbouring pages.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<Cursor>,
    pub previous: Option<Cursor>,
}

/// Delivery rules the store applies when it writes the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreOptions {
    /// Attempts in all for a new (or resent) delivery.
    pub max_attempts: u32,
    /// Deliver one bot's events to one subscription in the order they happened.
    pub ordering: bool,
    pub webhooks_per_bot: u32,
    pub webhooks_per_project: u32,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            max_attempts: 4,
            ordering: true,
            webhooks_per_bot: 10,
            webhooks_per_project: 10,
        }
    }
}

/// A subscription to create (its scope — project or bot — is given by the call).
#[derive(Debug, Clone, PartialEq)]
pub struct NewSubscription {
    pub url: String,
    pub triggers: Vec<Trigger>,
    pub is_active: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Subscription {
    pub id: String,
    pub project_id: String,
    /// `Some` for a bot-level subscription.
    pub bot_id: Option<String>,
    pub url: String,
    pub triggers: Vec<Trigger>,
    pub is_active: bool,
    /// Why meetwire deactivated it (e.g. the receiver answered 410 Gone).
    pub disabled_reason: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct SubscriptionPatch {
    pub url: Option<String>,
    pub triggers: Option<Vec<Trigger>>,
    pub is_active: Option<bool>,
}

/// Per-project delivery settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProjectSettings {
    /// Send the Standard Webhooks headers beside Attendee's signature.
    pub standard_webhooks: bool,
}

/// A delivery a dispatcher holds under lease, with what it needs to send it.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimedDelivery {
    pub seq: i64,
    pub claim_token: String,
    pub idempotency_key: String,
    pub project_id: String,
    pub subscription_id: String,
    /// The subscription's URL now, or `None` when it was deleted.
    pub url: Option<String>,
    pub subscription_active: bool,
    pub body: String,
    /// Attempts already made.
    pub attempts: u32,
    pub max_attempts: u32,
    /// When the claim ends: after it, another worker may claim the delivery again, so no
    /// attempt may start that could outlast it.
    pub lease_until: Timestamp,
}

/// Where a delivery goes after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    Success,
    Retry { at: Timestamp },
    Failure,
}

/// One attempt's record, written back by the dispatcher.
#[derive(Debug, Clone, PartialEq)]
pub struct AttemptResult {
    pub seq: i64,
    pub claim_token: String,
    pub attempted_at: Timestamp,
    pub duration_ms: i64,
    pub status_code: Option<u16>,
    pub error_kind: Option<&'static str>,
    pub error_message: Option<String>,
    /// The first 500 characters of the response body.
    pub response_body: Option<String>,
    pub outcome: AttemptOutcome,
    /// Deactivate the subscription, with this reason (410 Gone).
    pub disable_subscription: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryStatus {
    Pending,
    Success,
    Failure,
}

impl DeliveryStatus {
    pub const fn code(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Success => "success",
            DeliveryStatus::Failure => "failure",
        }
    }

    pub fn parse(code: &str) -> Option<Self> {
        [Self::Pending, Self::Success, Self::Failure]
            .into_iter()
            .find(|s| s.code() == code)
    }
}

/// Filters of the delivery log.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DeliveryFilter {
    pub bot_id: Option<String>,
    pub calendar_id: Option<String>,
    pub webhook_id: Option<String>,
    pub status: Option<DeliveryStatus>,
    pub trigger: Option<Trigger>,
}

/// A delivery in the log.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliverySummary {
    pub idempotency_key: String,
    pub webhook_id: String,
    pub url: Option<String>,
    pub bot_id: Option<String>,
    pub calendar_id: Option<String>,
    pub trigger: Trigger,
    pub status: DeliveryStatus,
    pub attempts: u32,
    pub created_at: Timestamp,
    pub last_attempt_at: Option<Timestamp>,
    pub succeeded_at: Option<Timestamp>,
    pub next_attempt_at: Option<Timestamp>,
    pub last_status_code: Option<u16>,
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryAttempt {
    pub attempted_at: Timestamp,
    pub duration_ms: i64,
    pub status_code: Option<u16>,
    pub error_kind: Option<String>,
    pub error_message: Option<String>,
    pub response_body: Option<String>,
}

/// A delivery with its payload and every attempt.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryDetail {
    pub summary: DeliverySummary,
    pub payload: Value,
    pub attempts: Vec<DeliveryAttempt>,
}

/// The outbox at a glance, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryStats {
    pub pending: i64,
    /// The due time of the longest-waiting due delivery.
    pub oldest_due: Option<Timestamp>,
}

/// A project as its members see it in the UI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectSummary {
    pub id: String,
    pub name: String,
}

/// A user of the web UI, with the hash their password is checked against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserCredentials {
    pub id: String,
    pub email: String,
    /// A PHC string (argon2id): the only form a password is kept in.
    pub password_hash: String,
}

/// A session just opened: its token in clear (for the cookie, never stored) and its CSRF token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSession {
    pub token: String,
    pub csrf_token: String,
}

/// A live session, as found by its token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    pub user_id: String,
    pub email: String,
    pub csrf_token: String,
    pub last_seen_at: Timestamp,
}

/// An API key as listed: never the key itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyInfo {
    pub id: String,
    /// The key's first characters; `None` for keys made before prefixes were kept.
    pub prefix: Option<String>,
    pub created_at: Timestamp,
    pub last_used_at: Option<Timestamp>,
}

/// Attempts made in one minute, by outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct MinuteOutcomes {
    /// Minutes since the Unix epoch.
    pub minute: i64,
    pub successes: i64,
    /// Failed attempts with attempts left.
    pub retries: i64,
    /// Failed attempts that ended their delivery.
    pub failures: i64,
}

/// A subscription whose latest attempts failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailingEndpoint {
    pub webhook_id: String,
    pub url: String,
    pub bot_id: Option<String>,
    /// Consecutive failed attempts.
    pub failure_streak: i64,
    pub last_failure: Option<String>,
    pub last_failure_at: Option<Timestamp>,
}

/// A project's deliveries at a glance (the UI's dashboard).
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryDashboard {
    /// One entry per minute of the window that saw attempts, oldest first.
    pub minutes: Vec<MinuteOutcomes>,
    /// Event → first success latency over the window, as the upper bound of the histogram
    /// bucket holding the percentile (milliseconds); `None` without successes.
    pub latency_p50_ms: Option<i64>,
    pub latency_p99_ms: Option<i64>,
    /// Pending deliveries, counted up to [`DeliveryDashboard::PENDING_COUNT_CAP`].
    pub pending: i64,
    /// The due time of the longest-waiting due delivery.
    pub oldest_due: Option<Timestamp>,
    /// Most failing first.
    pub failing: Vec<FailingEndpoint>,
}

impl DeliveryDashboard {
    /// Pending deliveries are counted up to this many ("more than" beyond), so a large
    /// backlog does not make the page slow.
    pub const PENDING_COUNT_CAP: i64 = 10_000;
}

/// A calendar as the API shows it (its credentials are never read back out through this).
#[derive(Debug, Clone, PartialEq)]
pub struct Calendar {
    pub id: String,
    pub project_id: String,
    pub platform: meetwire_core::calendar::Platform,
    pub deduplication_key: Option<String>,
    pub metadata: Map<String, Value>,
    pub state: meetwire_core::calendar::CalendarState,
    /// Why it is disconnected, and since when.
    pub connection_failure: Option<(String, Timestamp)>,
    pub last_successful_sync_at: Option<Timestamp>,
    pub last_attempted_sync_at: Option<Timestamp>,
    /// Which events get a bot by themselves; `None`: only those the user sends one to.
    pub auto_join: Option<AutoJoinRule>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone)]
pub struct NewCalendar {
    pub platform: meetwire_core::calendar::Platform,
    /// The provider credentials, sealed by the caller.
    pub sealed_credentials: Vec<u8>,
    pub deduplication_key: Option<String>,
    pub metadata: Map<String, Value>,
    pub auto_join: Option<AutoJoinRule>,
}

/// What a PATCH may change; new credentials reconnect a disconnected calendar at its next
/// sync, which is made due at once.
#[derive(Debug, Clone, Default)]
pub struct CalendarPatch {
    pub sealed_credentials: Option<Vec<u8>>,
    pub metadata: Option<Map<String, Value>>,
    /// `Some(None)` turns auto-join off; a changed rule is applied by a sync made due at once.
    pub auto_join: Option<Option<AutoJoinRule>>,
}

#[derive(Debug, Clone, Default)]
pub struct CalendarFilter {
    pub deduplication_key: Option<String>,
}

/// A calendar claimed for one sync.
#[derive(Debug, Clone)]
pub struct CalendarToSync {
    pub calendar: Calendar,
    pub sealed_credentials: Vec<u8>,
    /// The provider's incremental sync token from the last good sync, if it gave one.
    pub sync_token: Option<String>,
    pub claim_token: String,
}

/// An event as a provider reported it.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncedEvent {
    /// The provider's id, unique within the calendar.
    pub provider_id: String,
    pub start_time: Timestamp,
    pub end_time: Timestamp,
    pub name: Option<String>,
    pub meeting_url: Option<String>,
    pub attendees: Value,
    /// The organiser's address, which an `auto_join` rule may match.
    pub organizer: Option<String>,
    pub ical_uid: Option<String>,
    pub raw: Value,
}

/// How a sync ended.
#[derive(Debug, Clone)]
pub enum SyncOutcome {
    /// The provider answered: these events exist now, these were deleted. With `complete`
    /// the list is the whole calendar and every stored event not in it is deleted.
    Synced {
        events: Vec<SyncedEvent>,
        deleted: Vec<String>,
        complete: bool,
        sync_token: Option<String>,
        /// Credentials the provider renewed during the sync (a rotated refresh token), sealed;
        /// stored unless the calendar's credentials were changed meanwhile.
        renewed_credentials: Option<Vec<u8>>,
    },
    /// The credentials no longer work: the calendar is disconnected until they change.
    AuthFailed(String),
    /// Throttled, unreachable or a server error: try again later, state unchanged.
    Transient(String),
}

/// What one sync changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SyncReport {
    pub created: usize,
    pub updated: usize,
    pub deleted: usize,
    pub state_changed: bool,
    /// Bots of moved events given the new time or link.
    pub bots_moved: usize,
    /// Bots of deleted events (or events that lost their link) cancelled before joining.
    pub bots_cancelled: usize,
    /// Bots the calendar's `auto_join` rule created.
    pub bots_created: usize,
}

/// A calendar event as the API shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct CalendarEvent {
    pub id: String,
    pub calendar_id: String,
    pub start_time: Timestamp,
    pub end_time: Timestamp,
    pub name: Option<String>,
    pub meeting_url: Option<String>,
    pub attendees: Value,
    pub is_deleted: bool,
    pub ical_uid: Option<String>,
    pub raw: Value,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone, Default)]
pub struct CalendarEventFilter {
    pub calendar_id: Option<String>,
    pub calendar_deduplication_key: Option<String>,
    pub updated_after: Option<Timestamp>,
    pub start_time_gte: Option<Timestamp>,
    pub end_time_lte: Option<Timestamp>,
}

/// What one batch of retention did (`Store::sweep_finished_deliveries`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Swept {
    /// Finished deliveries deleted, with their attempts.
    pub deleted: u64,
    /// The newest row the batch looked at (the next batch starts after it); `None` when there
    /// was nothing old enough, and the pass is over.
    pub reached: Option<i64>,
}
