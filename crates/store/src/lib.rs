//! Storage of meetwire behind one trait, so the server does not care which database it runs on.
//!
//! Every rule that must hold across concurrent requests or several processes (a bot's state
//! changes serialise, a runner id is stored once, a deduplication key is unique among active
//! bots) is enforced by the database itself — transactions, row locks and unique indexes — never
//! only by a lock in this process, so that several nodes can later share one database.

pub mod error;
pub mod handoff;
pub mod model;
pub mod node;
mod page;
pub mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;
use meetwire_core::record::RecordKind;
use meetwire_core::time::Timestamp;
use tokio::sync::Notify;

pub use error::{Result, StoreError};
pub use model::*;

/// Everything meetwire keeps.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Creates a project, its first API key and its webhook secret (sealed by the caller).
    async fn create_project(&self, name: &str, sealed_secret: Vec<u8>) -> Result<CreatedProject>;
    /// How many projects exist (the first start creates one when there are none).
    async fn project_count(&self) -> Result<i64>;
    /// The newest sealed webhook secret of any project, if any is stored: lets a starting
    /// process check that its key opens what the database holds.
    async fn newest_sealed_secret(&self) -> Result<Option<Vec<u8>>>;
    /// Writes a consistent copy of the whole database, as of one moment, to `to` while writes
    /// go on. `to` must not exist; the copy is on disk when this returns, and a failure leaves
    /// no file behind. The key that seals webhook secrets is not in it.
    async fn backup(&self, to: &std::path::Path) -> Result<()>;
    /// Why writes are being refused for want of disk space, if the last write that failed did
    /// for that reason and the disk still has no room (readiness).
    fn disk_full(&self) -> Option<String>;
    /// A project's webhook secrets that still sign, newest (the active one) first.
    async fn webhook_secrets(&self, project_id: &str) -> Result<Vec<SealedSecret>>;
    /// Adds an API key to a project; the key is returned in clear once.
    async fn create_api_key(&self, project_id: &str) -> Result<String>;
    /// The project an API key belongs to, if the key is known and enabled.
    async fn authenticate_api_key(&self, key: &str) -> Result<Option<String>>;
    /// A project's enabled API keys (id, prefix, created, last used), oldest first.
    async fn list_api_keys(&self, project_id: &str) -> Result<Vec<ApiKeyInfo>>;
    /// Disables one of the project's API keys by its id; `NotFound` for another project's
    /// key or one already revoked.
    async fn revoke_api_key(&self, project_id: &str, key_id: &str) -> Result<()>;
    /// Records that `key` was just used (callers throttle this: it is a write).
    async fn touch_api_key(&self, key: &str) -> Result<()>;
    /// Creates a runner token (operator-wide); returned in clear once.
    async fn create_runner_token(&self, name: &str) -> Result<String>;
    /// The runner a token belongs to.
    async fn authenticate_runner(&self, token: &str) -> Result<Option<String>>;

    /// Creates a web UI user (password already hashed) who is a member of `project_id`;
    /// `Conflict` when the email (compared case-insensitively) is taken, `NotFound` for an
    /// unknown project.
    async fn create_user(
        &self,
        email: &str,
        password_hash: &str,
        project_id: &str,
    ) -> Result<String>;
    /// The first sign-up of a fresh instance: succeeds only while no user exists and with a
    /// setup code from [`Store::add_setup_code`]; the user joins the oldest project and every
    /// setup code is deleted, in one transaction (so two racing sign-ups cannot both win).
    async fn sign_up_first_user(
        &self,
        setup_code: &str,
        email: &str,
        password_hash: &str,
    ) -> Result<String>;
    /// Whether any user exists (no more sign-up once one does).
    async fn any_user(&self) -> Result<bool>;
    /// Keeps a first-run setup code (hashed); valid until the first user exists.
    async fn add_setup_code(&self, code: &str) -> Result<()>;
    async fn user_by_email(&self, email: &str) -> Result<Option<UserCredentials>>;
    /// Makes a user a member of a project (again: nothing changes).
    async fn add_project_member(&self, user_id: &str, project_id: &str) -> Result<()>;
    /// The projects a user is a member of, oldest first.
    async fn user_projects(&self, user_id: &str) -> Result<Vec<ProjectSummary>>;
    /// Opens a session; only its token's hash is stored.
    async fn create_session(&self, user_id: &str) -> Result<NewSession>;
    /// The session of `token` if it is not revoked and was last seen at or after `seen_since`.
    async fn session(&self, token: &str, seen_since: Timestamp) -> Result<Option<SessionInfo>>;
    /// Marks a session as seen now (callers throttle this: it is a write).
    async fn touch_session(&self, token: &str) -> Result<()>;
    /// Revokes a session: it is refused from now on, by every node.
    async fn revoke_session(&self, token: &str) -> Result<()>;
    /// A one-time sign-in link's token for a user, valid until `expires_at`.
    async fn create_sign_in_link(&self, user_id: &str, expires_at: Timestamp) -> Result<String>;
    /// The user of a sign-in link, consuming it: a second use, or one after it expired, finds
    /// nothing (decided in one statement, so two uses racing cannot both succeed).
    async fn use_sign_in_link(&self, token: &str) -> Result<Option<String>>;

    /// Creates a bot (and, unless scheduled, its `join_requested` event) in one transaction.
    /// A bot for a calendar event takes the event's link and start as they are in that
    /// transaction; it is refused (invalid, naming why) if the event is not the project's, is
    /// deleted, is over, or has no meeting link.
    async fn create_bot(&self, project_id: &str, bot: NewBot) -> Result<Bot>;
    async fn get_bot(&self, project_id: &str, bot_id: &str) -> Result<Bot>;
    async fn list_bots(
        &self,
        project_id: &str,
        filter: &BotFilter,
        page: PageRequest,
    ) -> Result<Page<Bot>>;
    async fn patch_bot(&self, project_id: &str, bot_id: &str, patch: BotPatch) -> Result<Bot>;
    /// Deletes a bot that never joined (scheduled); others are refused.
    async fn delete_bot(&self, project_id: &str, bot_id: &str) -> Result<()>;

    /// Stores a batch of things that happened to one bot, atomically: either every new record
    /// (and the bot's new state) is stored, or nothing is. Records whose runner id is already
    /// stored are skipped, so a retried batch is harmless. `cursor` is an opaque runner
    /// progress marker kept with the batch.
    async fn record(
        &self,
        actor: Actor<'_>,
        bot_id: &str,
        inputs: Vec<BotInput>,
        cursor: Option<serde_json::Value>,
    ) -> Result<BatchOutcome>;
    /// A bot's records of one kind, oldest first.
    async fn list_records(
        &self,
        project_id: &str,
        bot_id: &str,
        kind: RecordKind,
        page: PageRequest,
    ) -> Result<Page<StoredRecord>>;

    /// Claims one bot that is waiting to join for a runner; `sandbox` picks the built-in
    /// sandbox's bots or the external runners' ones.
    async fn claim_bot(&self, runner: &str, sandbox: bool) -> Result<Option<Bot>>;
    /// Bots this runner holds that are not finished (the sandbox resumes these after a restart).
    async fn runner_bots(&self, runner: &str) -> Result<Vec<Bot>>;
    /// Records the runner's heartbeat and returns the bot as it is now.
    async fn heartbeat(&self, runner: &str, bot_id: &str) -> Result<Bot>;
    /// Claimed, unfinished bots whose runner has been silent since before `cutoff`.
    async fn silent_bots(&self, cutoff: Timestamp) -> Result<Vec<Bot>>;
    /// Scheduled or staged bots whose `join_at` is at or before `until`.
    async fn scheduled_bots(&self, until: Timestamp) -> Result<Vec<Bot>>;

    /// Makes a new secret active; the old one keeps signing until `overlap_until`.
    async fn rotate_webhook_secret(
        &self,
        project_id: &str,
        sealed_secret: Vec<u8>,
        overlap_until: Timestamp,
    ) -> Result<()>;
    async fn project_settings(&self, project_id: &str) -> Result<ProjectSettings>;
    async fn update_project_settings(
        &self,
        project_id: &str,
        settings: ProjectSettings,
    ) -> Result<ProjectSettings>;

    /// Creates a project-level subscription (bot-level ones come with [`NewBot::webhooks`]).
    async fn create_subscription(
        &self,
        project_id: &str,
        new: NewSubscription,
    ) -> Result<Subscription>;
    /// Project-level subscriptions, or one bot's.
    async fn list_subscriptions(
        &self,
        project_id: &str,
        bot_id: Option<&str>,
        page: PageRequest,
    ) -> Result<Page<Subscription>>;
    async fn get_subscription(&self, project_id: &str, id: &str) -> Result<Subscription>;
    async fn update_subscription(
        &self,
        project_id: &str,
        id: &str,
        patch: SubscriptionPatch,
    ) -> Result<Subscription>;
    async fn delete_subscription(&self, project_id: &str, id: &str) -> Result<()>;

    /// Claims up to `limit` due deliveries until `lease_until`.
    async fn claim_deliveries(
        &self,
        limit: u32,
        lease_until: Timestamp,
    ) -> Result<Vec<ClaimedDelivery>>;
    /// Returns claimed deliveries `(seq, claim token, due again at)` unattempted.
    async fn release_deliveries(&self, claims: &[(i64, String, Timestamp)]) -> Result<()>;
    /// Writes attempt results (and the deliveries' next states) in one transaction. Shared, so
    /// that a retried write and the writer thread need no copy of the batch. Returns how many
    /// deliveries waiting behind these in their ordered streams the results freed.
    async fn record_attempts(&self, results: Arc<[AttemptResult]>) -> Result<usize>;
    /// When the earliest pending delivery is due.
    async fn next_due_delivery(&self) -> Result<Option<Timestamp>>;
    async fn delivery_stats(&self) -> Result<DeliveryStats>;
    /// One batch of retention: deletes (with their attempts) the finished deliveries made
    /// before `before` among the next `limit` rows after row `after` that are that old. Pending
    /// deliveries are never deleted. A pass starts at row 0 and goes on from `reached` until a
    /// batch reaches nothing.
    async fn sweep_finished_deliveries(
        &self,
        after: i64,
        before: Timestamp,
        limit: u32,
    ) -> Result<Swept>;
    /// One step of record retention: deletes the recorded data (not the state history) of the
    /// next bot after row `after` that finished before `before` and still has some, with the
    /// deliveries made from it; a bot with such a delivery still pending is passed over.
    async fn expire_bot_data(&self, after: i64, before: Timestamp) -> Result<Swept>;
    /// Notified whenever a commit makes new deliveries owed.
    fn deliveries_owed(&self) -> Arc<Notify>;
    /// Why writes can no longer be made durable (a failed log sync), if they cannot: the
    /// process must restart to recover.
    fn durability_failure(&self) -> Option<String>;
    /// Deliveries claimed for this process's dispatcher as they become due (see `handoff`).
    fn handoff(&self) -> Arc<handoff::HandOff>;

    async fn list_deliveries(
        &self,
        project_id: &str,
        filter: &DeliveryFilter,
        page: PageRequest,
    ) -> Result<Page<DeliverySummary>>;
    async fn get_delivery(&self, project_id: &str, key: &str) -> Result<DeliveryDetail>;
    /// Puts a finished delivery back to pending, same key, fresh attempt budget.
    async fn resend_delivery(&self, project_id: &str, key: &str) -> Result<()>;
    /// Resends every failed delivery matching `filter` created at or after `since`.
    async fn resend_failed_deliveries(
        &self,
        project_id: &str,
        filter: &DeliveryFilter,
        since: Timestamp,
    ) -> Result<u64>;
    /// The project's deliveries over the hour before `now`: attempts per minute by outcome,
    /// event → delivery latency percentiles, the pending count (capped) and the oldest due
    /// delivery, and the failing subscriptions. Reads a bounded number of rows however many
    /// deliveries the project has.
    async fn delivery_dashboard(
        &self,
        project_id: &str,
        now: Timestamp,
    ) -> Result<DeliveryDashboard>;

    /// Creates a calendar, due for its first sync at once; a deduplication key already used
    /// in the project is a conflict naming it.
    async fn create_calendar(&self, project_id: &str, new: NewCalendar) -> Result<Calendar>;
    async fn get_calendar(&self, project_id: &str, id: &str) -> Result<Calendar>;
    /// The calendar's credentials as sealed at rest (a patch merges new fields into them).
    async fn calendar_credentials(&self, project_id: &str, id: &str) -> Result<Vec<u8>>;
    async fn list_calendars(
        &self,
        project_id: &str,
        filter: &CalendarFilter,
        page: PageRequest,
    ) -> Result<Page<Calendar>>;
    /// New credentials make the next sync due at once and start it from scratch (a sync
    /// running with the old ones loses its claim, so its result is dropped); a new
    /// `auto_join` rule makes it due at once too, and that sync applies the rule.
    async fn patch_calendar(
        &self,
        project_id: &str,
        id: &str,
        patch: CalendarPatch,
    ) -> Result<Calendar>;
    /// Deletes the calendar and its events; their deliveries stay in the log. Bots sent to its
    /// events that have not joined are cancelled in the same transaction.
    async fn delete_calendar(&self, project_id: &str, id: &str) -> Result<()>;
    /// Makes the calendar's next sync due now.
    async fn request_calendar_sync(&self, project_id: &str, id: &str) -> Result<Calendar>;
    /// Claims the calendar whose sync has been due longest until `lease_until`, unless a live
    /// claim holds it: one process at a time syncs a calendar.
    async fn claim_calendar_sync(&self, lease_until: Timestamp) -> Result<Option<CalendarToSync>>;
    /// Stores a claimed sync's outcome in one transaction with the webhooks it owes (nothing
    /// if the claim was lost meanwhile); the next sync is due at `next_sync_at`. A good sync
    /// also stores the credentials the provider renewed, if any, moves the waiting bots of
    /// moved events, cancels those of deleted ones and creates the bots of the calendar's
    /// `auto_join` rule, with their webhooks, in that transaction.
    async fn finish_calendar_sync(
        &self,
        claimed: &CalendarToSync,
        outcome: &SyncOutcome,
        next_sync_at: Timestamp,
    ) -> Result<SyncReport>;
    async fn list_calendar_events(
        &self,
        project_id: &str,
        filter: &CalendarEventFilter,
        page: PageRequest,
    ) -> Result<Page<CalendarEvent>>;
    /// One of the project's calendar events, deleted ones included.
    async fn get_calendar_event(&self, project_id: &str, id: &str) -> Result<CalendarEvent>;
}
