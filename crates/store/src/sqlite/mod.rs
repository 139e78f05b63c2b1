//! The embedded SQLite store: one file in WAL mode, two writer connections — the hot path's own
//! (`direct`: events, outbox, claims, results) and one for everything else (SQLite has one
//! writer at a time anyway; the rare writes of the second wait for the first's lock) — and a
//! small pool of readers that never block them. Writes start with `BEGIN IMMEDIATE`
//! so a read-then-write transaction holds the database's write lock from its first statement:
//! that lock, not anything in this process, is what serialises two events on one bot, even
//! when another process (an admin command) writes to the same file.

mod backup;
mod bots;
mod calendar_bots;
mod calendars;
mod checkpoint;
mod committer;
mod credentials;
mod dashboard;
mod deliveries;
mod direct;
mod gathered_log;
mod liveness;
mod outbox;
mod records;
mod retention;
mod rows;
mod space;
mod subscriptions;
mod syncer;
mod users;

use std::future::Future;
use std::path::Path;
use std::str::FromStr;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use meetwire_core::delivery_key::DeliveryKeyCipher;
use meetwire_core::record::RecordKind;
use meetwire_core::time::{now, Timestamp};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;
use tokio::sync::Notify;

use committer::{Committer, Wake};
use direct::{immediate, HotWriter};
use syncer::Syncer;

use crate::error::{Result, StoreError};
use crate::handoff::HandOff;
use crate::model::*;
use crate::Store;

/// How long a write waits for another connection (or process) holding the write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

pub use backup::restore;

/// The database file's name inside the data directory.
pub const DATABASE_FILE: &str = "meetwire.sqlite3";

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

/// meetwire's storage in one SQLite file.
#[derive(Clone)]
pub struct SqliteStore {
    writer: SqlitePool,
    hot: HotWriter,
    reader: SqlitePool,
    committer: Committer,
    options: StoreOptions,
    wake: Wake,
    keys: DeliveryKeyCipher,
    /// This process's node, alive while the store is (`liveness`).
    registration: Arc<liveness::Registration>,
}

impl SqliteStore {
    /// Opens (creating and migrating if needed) the database in `data_dir`.
    pub async fn open(data_dir: &Path, store_options: StoreOptions) -> Result<Self> {
        std::fs::create_dir_all(data_dir).map_err(|e| {
            crate::StoreError::Invalid(format!("cannot create {}: {e}", data_dir.display()))
        })?;
        let path = data_dir.join(DATABASE_FILE);
        let options = SqliteConnectOptions::from_str("sqlite://")?
            .filename(&path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL: a commit is on disk (the WAL fsynced) before the API acknowledges it.
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        // Writers leave checkpoints to the checkpointer, so no commit waits for one. Pages of
        // 4 KiB, the kernel's page (set for a new file; SQLite's default too): each log frame
        // is then one whole page-cache page. 1 KiB pages wrote less log but cost more: every
        // frame a partial kernel page, and 2.4× the frames per event (12 vs 5 measured, one
        // event per request) — server CPU per event ~225 → ~190 µs. BENCHMARKS.md has both.
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(
                options
                    .clone()
                    .pragma("page_size", "4096")
                    .pragma("wal_autocheckpoint", "0")
                    .pragma("journal_size_limit", "134217728"),
            )
            .await?;
        MIGRATOR.run(&writer).await?;
        let restart_log = Arc::new(AtomicBool::new(false));
        let hot = HotWriter::open(&path, restart_log.clone())?;
        let checkpointer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await?;
        tokio::spawn(checkpoint::run(checkpointer, restart_log));
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options.read_only(true))
            .await?;
        if store_options.ordering {
            deliveries::join_streams(&writer).await?;
        }
        let newest_seq = deliveries::newest_delivery_seq(&mut *writer.acquire().await?).await?;
        let keys = delivery_keys(&writer).await?;
        let registration = Arc::new(liveness::register(&writer, data_dir).await?);
        liveness::take_over_dead(&writer, data_dir).await?;
        let wake = Wake {
            syncer: Syncer::start(data_dir.join(format!("{DATABASE_FILE}-wal")), newest_seq),
            handoff: Arc::new(HandOff::new(keys, registration.node.clone())),
            owed: Arc::new(Notify::new()),
            space: Arc::new(space::DiskSpace::new(data_dir.to_owned())),
        };
        liveness::watch(writer.clone(), data_dir.to_owned(), wake.owed.clone());
        let committer = Committer::start(hot.clone(), store_options.clone(), wake.clone());
        Ok(SqliteStore {
            writer,
            hot,
            reader,
            committer,
            options: store_options,
            wake,
            keys,
            registration,
        })
    }

    /// Tells the dispatcher of deliveries a write of the second writer committed, up to
    /// `newest_seq` (committed at `synchronous = FULL`, so they need no fsync of the syncer's).
    fn deliveries_written(&self, newest_seq: Option<i64>) {
        if let Some(seq) = newest_seq {
            self.wake.syncer.note_durable(seq);
            self.wake.owed.notify_one();
        }
    }

    /// Runs a write of the second writer (`synchronous = FULL`: fsynced at COMMIT). It counts
    /// only while the log is intact: after a failed fsync, the syncer's or this writer's own, a
    /// later fsync can succeed without the pages the failure lost, and recovery after a power
    /// loss would drop this commit with them. So this writer's failed writes are latched like
    /// the syncer's, and after one nothing more is written (a write that raced the failure is
    /// still not answered as done).
    async fn full_write<T>(&self, write: impl Future<Output = Result<T>>) -> Result<T> {
        if let Some(failure) = self.wake.syncer.failure() {
            return Err(StoreError::CommitFailed(failure));
        }
        let result = write.await;
        if let Err(e) = &result {
            self.wake.space.note(e);
            if lost_write(e) {
                self.wake.syncer.fail(&e.to_string());
            }
        }
        match self.wake.syncer.failure() {
            Some(failure) => Err(StoreError::CommitFailed(failure)),
            None => result,
        }
    }
}

/// The installation's secret that delivery keys are made with (`meetwire_core::delivery_key`).
async fn delivery_keys(pool: &SqlitePool) -> Result<DeliveryKeyCipher> {
    let secret: Vec<u8> =
        sqlx::query_scalar("SELECT delivery_key_secret FROM installation WHERE id = 1")
            .fetch_one(pool)
            .await?;
    let secret = secret
        .try_into()
        .map_err(|_| StoreError::Corrupt("installation's delivery key secret".into()))?;
    Ok(DeliveryKeyCipher::new(secret))
}

/// Whether a write failed because the disk did not take it (the log may now miss pages). The
/// second writer's work runs through sqlx and, for event records, through rusqlite on the
/// same connection (`with_direct`), so both error types are read.
fn lost_write(e: &StoreError) -> bool {
    let code = match e {
        StoreError::Database(sqlx::Error::Database(db)) => {
            db.code().and_then(|code| code.parse::<i32>().ok())
        }
        StoreError::Sqlite(rusqlite::Error::SqliteFailure(failure, _)) => {
            Some(failure.extended_code)
        }
        _ => None,
    };
    use rusqlite::ffi::{SQLITE_IOERR_DIR_FSYNC, SQLITE_IOERR_FSYNC, SQLITE_IOERR_WRITE};
    matches!(
        code,
        Some(SQLITE_IOERR_WRITE | SQLITE_IOERR_FSYNC | SQLITE_IOERR_DIR_FSYNC)
    )
}

#[async_trait]
impl Store for SqliteStore {
    async fn create_project(&self, name: &str, sealed_secret: Vec<u8>) -> Result<CreatedProject> {
        self.full_write(credentials::create_project(
            &self.writer,
            name,
            sealed_secret,
        ))
        .await
    }

    async fn project_count(&self) -> Result<i64> {
        credentials::project_count(&self.reader).await
    }

    async fn newest_sealed_secret(&self) -> Result<Option<Vec<u8>>> {
        credentials::newest_sealed_secret(&self.reader).await
    }

    async fn backup(&self, to: &Path) -> Result<()> {
        backup::write(&self.reader, to).await
    }

    async fn webhook_secrets(&self, project_id: &str) -> Result<Vec<SealedSecret>> {
        credentials::webhook_secrets(&self.reader, project_id).await
    }

    async fn create_api_key(&self, project_id: &str) -> Result<String> {
        self.full_write(credentials::create_api_key(&self.writer, project_id))
            .await
    }

    async fn authenticate_api_key(&self, key: &str) -> Result<Option<String>> {
        credentials::authenticate_api_key(&self.reader, key).await
    }

    async fn create_runner_token(&self, name: &str) -> Result<String> {
        self.full_write(credentials::create_runner_token(&self.writer, name))
            .await
    }

    async fn authenticate_runner(&self, token: &str) -> Result<Option<String>> {
        credentials::authenticate_runner(&self.reader, token).await
    }

    async fn list_api_keys(&self, project_id: &str) -> Result<Vec<ApiKeyInfo>> {
        credentials::list_api_keys(&self.reader, project_id).await
    }

    async fn revoke_api_key(&self, project_id: &str, key_id: &str) -> Result<()> {
        self.full_write(credentials::revoke_api_key(
            &self.writer,
            project_id,
            key_id,
        ))
        .await
    }

    async fn touch_api_key(&self, key: &str) -> Result<()> {
        self.full_write(credentials::touch_api_key(&self.writer, key))
            .await
    }

    async fn create_user(
        &self,
        email: &str,
        password_hash: &str,
        project_id: &str,
    ) -> Result<String> {
        self.full_write(users::create_user(
            &self.writer,
            email,
            password_hash,
            project_id,
        ))
        .await
    }

    async fn sign_up_first_user(
        &self,
        setup_code: &str,
        email: &str,
        password_hash: &str,
    ) -> Result<String> {
        self.full_write(users::sign_up_first_user(
            &self.writer,
            setup_code,
            email,
            password_hash,
        ))
        .await
    }

    async fn any_user(&self) -> Result<bool> {
        users::any_user(&self.reader).await
    }

    async fn add_setup_code(&self, code: &str) -> Result<()> {
        self.full_write(users::add_setup_code(&self.writer, code))
            .await
    }

    async fn user_by_email(&self, email: &str) -> Result<Option<UserCredentials>> {
        users::user_by_email(&self.reader, email).await
    }

    async fn add_project_member(&self, user_id: &str, project_id: &str) -> Result<()> {
        self.full_write(users::add_project_member(&self.writer, user_id, project_id))
            .await
    }

    async fn user_projects(&self, user_id: &str) -> Result<Vec<ProjectSummary>> {
        users::user_projects(&self.reader, user_id).await
    }

    async fn create_session(&self, user_id: &str) -> Result<NewSession> {
        self.full_write(users::create_session(&self.writer, user_id))
            .await
    }

    async fn session(&self, token: &str, seen_since: Timestamp) -> Result<Option<SessionInfo>> {
        users::session(&self.reader, token, seen_since.timestamp_micros()).await
    }

    async fn touch_session(&self, token: &str) -> Result<()> {
        self.full_write(users::touch_session(&self.writer, token))
            .await
    }

    async fn revoke_session(&self, token: &str) -> Result<()> {
        self.full_write(users::revoke_session(&self.writer, token))
            .await
    }

    async fn create_sign_in_link(&self, user_id: &str, expires_at: Timestamp) -> Result<String> {
        self.full_write(users::create_sign_in_link(
            &self.writer,
            user_id,
            expires_at.timestamp_micros(),
        ))
        .await
    }

    async fn use_sign_in_link(&self, token: &str) -> Result<Option<String>> {
        self.full_write(users::use_sign_in_link(&self.writer, token))
            .await
    }

    async fn create_bot(&self, project_id: &str, bot: NewBot) -> Result<Bot> {
        let (bot, newest_seq) = self
            .full_write(bots::create(&self.writer, project_id, bot, &self.options))
            .await?;
        // Committed at `synchronous = FULL`: its rows need no fsync of the syncer's.
        self.wake.syncer.note_durable(newest_seq);
        self.wake.owed.notify_one();
        Ok(bot)
    }

    async fn get_bot(&self, project_id: &str, bot_id: &str) -> Result<Bot> {
        bots::get(&self.reader, Actor::Project(project_id), bot_id).await
    }

    async fn list_bots(
        &self,
        project_id: &str,
        filter: &BotFilter,
        page: PageRequest,
    ) -> Result<Page<Bot>> {
        bots::list(&self.reader, project_id, filter, page).await
    }

    async fn patch_bot(&self, project_id: &str, bot_id: &str, patch: BotPatch) -> Result<Bot> {
        self.full_write(bots::patch(
            &self.writer,
            &self.keys,
            project_id,
            bot_id,
            patch,
        ))
        .await
    }

    async fn delete_bot(&self, project_id: &str, bot_id: &str) -> Result<()> {
        self.full_write(bots::delete(&self.writer, &self.keys, project_id, bot_id))
            .await
    }

    async fn record(
        &self,
        actor: Actor<'_>,
        bot_id: &str,
        inputs: Vec<BotInput>,
        cursor: Option<serde_json::Value>,
    ) -> Result<BatchOutcome> {
        self.committer.submit(actor, bot_id, inputs, cursor).await
    }

    async fn list_records(
        &self,
        project_id: &str,
        bot_id: &str,
        kind: RecordKind,
        page: PageRequest,
    ) -> Result<Page<StoredRecord>> {
        records::list(&self.reader, project_id, bot_id, kind, page).await
    }

    async fn claim_bot(&self, runner: &str, sandbox: bool) -> Result<Option<Bot>> {
        self.full_write(bots::claim(&self.writer, runner, sandbox))
            .await
    }

    async fn runner_bots(&self, runner: &str) -> Result<Vec<Bot>> {
        bots::held_by(&self.reader, runner).await
    }

    async fn heartbeat(&self, runner: &str, bot_id: &str) -> Result<Bot> {
        self.full_write(bots::heartbeat(&self.writer, runner, bot_id))
            .await
    }

    async fn silent_bots(&self, cutoff: Timestamp) -> Result<Vec<Bot>> {
        bots::silent(&self.reader, cutoff).await
    }

    async fn scheduled_bots(&self, until: Timestamp) -> Result<Vec<Bot>> {
        bots::scheduled(&self.reader, until).await
    }

    async fn rotate_webhook_secret(
        &self,
        project_id: &str,
        sealed_secret: Vec<u8>,
        overlap_until: Timestamp,
    ) -> Result<()> {
        let until = overlap_until.timestamp_micros();
        self.full_write(credentials::rotate_webhook_secret(
            &self.writer,
            project_id,
            sealed_secret,
            until,
        ))
        .await
    }

    async fn project_settings(&self, project_id: &str) -> Result<ProjectSettings> {
        credentials::project_settings(&self.reader, project_id).await
    }

    async fn update_project_settings(
        &self,
        project_id: &str,
        settings: ProjectSettings,
    ) -> Result<ProjectSettings> {
        self.full_write(credentials::update_project_settings(
            &self.writer,
            project_id,
            settings,
        ))
        .await
    }

    async fn create_subscription(
        &self,
        project_id: &str,
        new: NewSubscription,
    ) -> Result<Subscription> {
        self.full_write(subscriptions::create(
            &self.writer,
            project_id,
            &new,
            &self.options,
        ))
        .await
    }

    async fn list_subscriptions(
        &self,
        project_id: &str,
        bot_id: Option<&str>,
        page: PageRequest,
    ) -> Result<Page<Subscription>> {
        subscriptions::list(&self.reader, project_id, bot_id, page).await
    }

    async fn get_subscription(&self, project_id: &str, id: &str) -> Result<Subscription> {
        subscriptions::get(&self.reader, project_id, id).await
    }

    async fn update_subscription(
        &self,
        project_id: &str,
        id: &str,
        patch: SubscriptionPatch,
    ) -> Result<Subscription> {
        self.full_write(subscriptions::update(&self.writer, project_id, id, &patch))
            .await
    }

    async fn delete_subscription(&self, project_id: &str, id: &str) -> Result<()> {
        self.full_write(subscriptions::delete(&self.writer, project_id, id))
            .await
    }

    async fn claim_deliveries(
        &self,
        limit: u32,
        lease_until: Timestamp,
    ) -> Result<Vec<ClaimedDelivery>> {
        deliveries::claim(
            &self.hot,
            &self.wake.syncer,
            self.registration.node.claim_token(),
            self.keys,
            limit,
            lease_until,
        )
        .await
    }

    async fn release_deliveries(&self, claims: &[(i64, String, Timestamp)]) -> Result<()> {
        deliveries::release(&self.hot, claims).await
    }

    fn durability_failure(&self) -> Option<String> {
        self.wake.syncer.failure()
    }

    fn disk_full(&self) -> Option<String> {
        self.wake.space.full()
    }

    async fn record_attempts(&self, results: Arc<[AttemptResult]>) -> Result<usize> {
        // A retry is due soon: the dispatcher, asleep until its next known due time, must
        // look again.
        let retrying = results
            .iter()
            .any(|r| matches!(r.outcome, AttemptOutcome::Retry { .. }));
        let claims = self.wake.handoff.begin();
        let (claims, made_due) = deliveries::record_results(&self.hot, results, claims).await;
        // Results can free waiting deliveries (ordering): hand over the ones claimed for the
        // dispatcher once their events are durable, and wake it for the others. The results
        // themselves need not be durable first: if a crash loses one, its delivery is tried
        // again (at least once) and the stream behind it waits for that try again.
        let mut freed = 0;
        if let Some(claims) = claims {
            freed = claims.claimed.len();
            match &made_due {
                Ok(_) => {
                    let newest = claims.claimed.iter().map(|d| d.seq).max().unwrap_or(0);
                    self.wake
                        .syncer
                        .when_rows_durable(newest, Box::new(move |synced| claims.settle(&synced)))
                }
                Err(_) => claims.abandon(),
            }
        }
        let made_due = made_due?;
        if made_due > 0 || retrying {
            self.wake.owed.notify_one();
        }
        Ok(freed + made_due)
    }

    async fn next_due_delivery(&self) -> Result<Option<Timestamp>> {
        deliveries::next_due(&self.reader).await
    }

    async fn delivery_stats(&self) -> Result<DeliveryStats> {
        deliveries::stats(&self.reader).await
    }

    async fn expire_bot_data(&self, after: i64, before: Timestamp) -> Result<Swept> {
        let before = before.timestamp_micros();
        self.hot
            .run(move |db| immediate(db, |db| retention::expire_bot_data(db, after, before)))
            .await
    }

    async fn sweep_finished_deliveries(
        &self,
        after: i64,
        before: Timestamp,
        limit: u32,
    ) -> Result<Swept> {
        let before = before.timestamp_micros();
        self.hot
            .run(move |db| immediate(db, |db| retention::sweep(db, after, before, limit)))
            .await
    }

    fn deliveries_owed(&self) -> Arc<Notify> {
        self.wake.owed.clone()
    }

    fn handoff(&self) -> Arc<HandOff> {
        self.wake.handoff.clone()
    }

    async fn list_deliveries(
        &self,
        project_id: &str,
        filter: &DeliveryFilter,
        page: PageRequest,
    ) -> Result<Page<DeliverySummary>> {
        deliveries::list(&self.reader, &self.keys, project_id, filter, page).await
    }

    async fn get_delivery(&self, project_id: &str, key: &str) -> Result<DeliveryDetail> {
        deliveries::get(&self.reader, &self.keys, project_id, key).await
    }

    async fn resend_delivery(&self, project_id: &str, key: &str) -> Result<()> {
        self.full_write(deliveries::resend(
            &self.writer,
            &self.keys,
            project_id,
            key,
            &self.options,
        ))
        .await?;
        self.wake.owed.notify_one();
        Ok(())
    }

    async fn resend_failed_deliveries(
        &self,
        project_id: &str,
        filter: &DeliveryFilter,
        since: Timestamp,
    ) -> Result<u64> {
        let resend =
            deliveries::resend_failed(&self.writer, project_id, filter, since, &self.options);
        let n = self.full_write(resend).await?;
        self.wake.owed.notify_one();
        Ok(n)
    }

    async fn delivery_dashboard(
        &self,
        project_id: &str,
        now: Timestamp,
    ) -> Result<DeliveryDashboard> {
        dashboard::dashboard(&self.reader, project_id, now).await
    }

    async fn create_calendar(&self, project_id: &str, new: NewCalendar) -> Result<Calendar> {
        self.full_write(calendars::create(&self.writer, project_id, new, now()))
            .await
    }

    async fn get_calendar(&self, project_id: &str, id: &str) -> Result<Calendar> {
        calendars::get(&self.reader, project_id, id).await
    }

    async fn calendar_credentials(&self, project_id: &str, id: &str) -> Result<Vec<u8>> {
        calendars::credentials(&self.reader, project_id, id).await
    }

    async fn list_calendars(
        &self,
        project_id: &str,
        filter: &CalendarFilter,
        page: PageRequest,
    ) -> Result<Page<Calendar>> {
        calendars::list(&self.reader, project_id, filter, page).await
    }

    async fn patch_calendar(
        &self,
        project_id: &str,
        id: &str,
        patch: CalendarPatch,
    ) -> Result<Calendar> {
        self.full_write(calendars::patch(&self.writer, project_id, id, patch, now()))
            .await
    }

    async fn delete_calendar(&self, project_id: &str, id: &str) -> Result<()> {
        let newest_seq = self
            .full_write(calendars::delete(
                &self.writer,
                project_id,
                id,
                &self.options,
            ))
            .await?;
        self.deliveries_written(newest_seq);
        Ok(())
    }

    async fn request_calendar_sync(&self, project_id: &str, id: &str) -> Result<Calendar> {
        self.full_write(calendars::request_sync(&self.writer, project_id, id, now()))
            .await
    }

    async fn claim_calendar_sync(&self, lease_until: Timestamp) -> Result<Option<CalendarToSync>> {
        self.full_write(calendars::claim(
            &self.writer,
            self.registration.node.claim_token(),
            now(),
            lease_until,
        ))
        .await
    }

    async fn finish_calendar_sync(
        &self,
        claimed: &CalendarToSync,
        outcome: &SyncOutcome,
        next_sync_at: Timestamp,
    ) -> Result<SyncReport> {
        let (report, newest_seq) = self
            .full_write(calendars::finish(
                &self.writer,
                &self.keys,
                claimed,
                outcome,
                now(),
                next_sync_at,
                &self.options,
            ))
            .await?;
        self.deliveries_written(newest_seq);
        Ok(report)
    }

    async fn list_calendar_events(
        &self,
        project_id: &str,
        filter: &CalendarEventFilter,
        page: PageRequest,
    ) -> Result<Page<CalendarEvent>> {
        calendars::list_events(&self.reader, project_id, filter, page).await
    }

    async fn get_calendar_event(&self, project_id: &str, id: &str) -> Result<CalendarEvent> {
        calendars::get_event(&self.reader, project_id, id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use meetwire_core::trigger::Trigger;

    fn subscription(url: &str) -> NewSubscription {
        NewSubscription {
            url: url.to_owned(),
            triggers: vec![Trigger::BotStateChange],
            is_active: true,
        }
    }

    #[tokio::test]
    async fn after_a_failed_fsync_no_write_of_the_second_writer_is_answered_as_done() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(dir.path(), StoreOptions::default())
            .await
            .unwrap();
        let project = store.create_project("p", vec![1, 2, 3]).await.unwrap();
        store
            .create_subscription(&project.project_id, subscription("https://a.example.com/"))
            .await
            .unwrap();
        store.wake.syncer.fail("fsync of the log failed: EIO");
        let refused = store
            .create_subscription(&project.project_id, subscription("https://b.example.com/"))
            .await;
        assert!(
            matches!(&refused, Err(StoreError::CommitFailed(m)) if m.contains("EIO")),
            "{refused:?}"
        );
        assert!(store.create_api_key(&project.project_id).await.is_err());
        // Refused before writing: nothing of it is in the database.
        let page = PageRequest {
            after: None,
            limit: 10,
        };
        let stored = store
            .list_subscriptions(&project.project_id, None, page)
            .await
            .unwrap();
        assert_eq!(stored.items.len(), 1);
    }

    #[test]
    fn io_failures_of_either_error_type_count_as_lost_writes() {
        let fsync = rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_IOERR_FSYNC);
        assert!(lost_write(&StoreError::Sqlite(
            rusqlite::Error::SqliteFailure(fsync, None)
        )));
        let busy = rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY);
        assert!(!lost_write(&StoreError::Sqlite(
            rusqlite::Error::SqliteFailure(busy, None)
        )));
        assert!(!lost_write(&StoreError::NotFound));
    }
}

#[cfg(test)]
mod upgrade_tests;
