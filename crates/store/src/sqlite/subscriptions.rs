//! Webhook subscriptions: project-level and bot-level, with the contract's limits and
//! duplicate rules checked inside the writing transaction (and backed by unique indexes).

use meetwire_core::ids::{new_id, IdKind};
use meetwire_core::time::{from_micros, now};
use meetwire_core::trigger::Trigger;
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqliteConnection, SqlitePool};

use crate::error::{Result, StoreError};
use crate::model::{
    NewSubscription, Page, PageRequest, StoreOptions, Subscription, SubscriptionPatch,
};
use crate::page;

const COLUMNS: &str =
    "seq, id, project_id, bot_id, url, triggers, is_active, disabled_reason, created_at, updated_at";

/// Triggers as a bit set over Attendee's integers.
pub(super) fn trigger_mask(triggers: &[Trigger]) -> i64 {
    triggers.iter().fold(0, |m, t| m | (1 << t.as_int()))
}

fn triggers_of(mask: i64) -> Vec<Trigger> {
    Trigger::ALL
        .iter()
        .copied()
        .filter(|t| mask & (1 << t.as_int()) != 0)
        .collect()
}

fn from_row(row: &SqliteRow) -> Result<Subscription> {
    Ok(Subscription {
        id: row.try_get("id")?,
        project_id: row.try_get("project_id")?,
        bot_id: row.try_get("bot_id")?,
        url: row.try_get("url")?,
        triggers: triggers_of(row.try_get("triggers")?),
        is_active: row.try_get("is_active")?,
        disabled_reason: row.try_get("disabled_reason")?,
        created_at: from_micros(row.try_get("created_at")?),
        updated_at: from_micros(row.try_get("updated_at")?),
    })
}

fn duplicate_message(bot_id: Option<&str>) -> &'static str {
    if bot_id.is_some() {
        "URL already subscribed for this bot"
    } else {
        "URL already subscribed"
    }
}

/// Whether `url` is already subscribed in this scope (other than by `except`).
async fn url_taken(
    conn: &mut SqliteConnection,
    project_id: &str,
    bot_id: Option<&str>,
    url: &str,
    except: Option<&str>,
) -> Result<bool> {
    let found: Option<i64> = sqlx::query_scalar(
        "SELECT 1 FROM webhook_subscriptions WHERE project_id = ? AND bot_id IS ? AND url = ? \
         AND id IS NOT ?",
    )
    .bind(project_id)
    .bind(bot_id)
    .bind(url)
    .bind(except)
    .fetch_optional(conn)
    .await?;
    Ok(found.is_some())
}

/// Inserts a subscription on a connection inside a write transaction.
pub(super) async fn insert(
    conn: &mut SqliteConnection,
    project_id: &str,
    bot_id: Option<&str>,
    new: &NewSubscription,
    options: &StoreOptions,
) -> Result<Subscription> {
    let count: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM webhook_subscriptions WHERE project_id = ? AND bot_id IS ?",
    )
    .bind(project_id)
    .bind(bot_id)
    .fetch_one(&mut *conn)
    .await?;
    let (limit, message) = match bot_id {
        Some(_) => (
            options.webhooks_per_bot,
            "You have reached the maximum number of webhooks for a single bot",
        ),
        None => (
            options.webhooks_per_project,
            "You have reached the maximum number of webhooks",
        ),
    };
    if url_taken(conn, project_id, bot_id, &new.url, None).await? {
        return Err(StoreError::Invalid(duplicate_message(bot_id).into()));
    }
    if count >= i64::from(limit) {
        return Err(StoreError::Invalid(message.into()));
    }
    let at = now().timestamp_micros();
    let sql = format!(
        "INSERT INTO webhook_subscriptions (id, project_id, bot_id, url, triggers, is_active, \
         created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING {COLUMNS}"
    );
    let row = sqlx::query(&sql)
        .bind(new_id(IdKind::Webhook))
        .bind(project_id)
        .bind(bot_id)
        .bind(&new.url)
        .bind(trigger_mask(&new.triggers))
        .bind(new.is_active)
        .bind(at)
        .bind(at)
        .fetch_one(conn)
        .await?;
    from_row(&row)
}

pub(super) async fn create(
    pool: &SqlitePool,
    project_id: &str,
    new: &NewSubscription,
    options: &StoreOptions,
) -> Result<Subscription> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let sub = insert(&mut tx, project_id, None, new, options).await?;
    tx.commit().await?;
    Ok(sub)
}

async fn fetch(conn: &mut SqliteConnection, project_id: &str, id: &str) -> Result<Subscription> {
    let sql =
        format!("SELECT {COLUMNS} FROM webhook_subscriptions WHERE id = ? AND project_id = ?");
    let row = sqlx::query(&sql)
        .bind(id)
        .bind(project_id)
        .fetch_optional(conn)
        .await?
        .ok_or(StoreError::NotFound)?;
    from_row(&row)
}

pub(super) async fn get(pool: &SqlitePool, project_id: &str, id: &str) -> Result<Subscription> {
    let mut conn = pool.acquire().await?;
    fetch(&mut conn, project_id, id).await
}

/// Project-level subscriptions, or a bot's when `bot_id` is given; oldest first.
pub(super) async fn list(
    pool: &SqlitePool,
    project_id: &str,
    bot_id: Option<&str>,
    page: PageRequest,
) -> Result<Page<Subscription>> {
    let (condition, order) = page::seq_bounds(&page, false);
    let sql = format!(
        "SELECT {COLUMNS} FROM webhook_subscriptions WHERE project_id = ? AND bot_id IS ? \
         AND {condition} ORDER BY {order} LIMIT ?"
    );
    let rows = sqlx::query(&sql)
        .bind(project_id)
        .bind(bot_id)
        .bind(page::seq_start(&page, false))
        .bind(i64::from(page.limit) + 1)
        .fetch_all(pool)
        .await?;
    let mut subs = Vec::with_capacity(rows.len());
    for row in &rows {
        subs.push((row.try_get::<i64, _>("seq")?, from_row(row)?));
    }
    let page = page::finish(subs, &page, |(seq, _)| *seq);
    Ok(Page {
        items: page.items.into_iter().map(|(_, s)| s).collect(),
        next: page.next,
        previous: page.previous,
    })
}

pub(super) async fn update(
    pool: &SqlitePool,
    project_id: &str,
    id: &str,
    patch: &SubscriptionPatch,
) -> Result<Subscription> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let current = fetch(&mut tx, project_id, id).await?;
    if let Some(url) = &patch.url {
        let scope = current.bot_id.as_deref();
        if url_taken(&mut tx, project_id, scope, url, Some(id)).await? {
            return Err(StoreError::Invalid(duplicate_message(scope).into()));
        }
    }
    sqlx::query(
        "UPDATE webhook_subscriptions SET url = COALESCE(?, url), \
         triggers = COALESCE(?, triggers), is_active = COALESCE(?, is_active), \
         disabled_reason = CASE WHEN ? THEN NULL ELSE disabled_reason END, updated_at = ? \
         WHERE id = ?",
    )
    .bind(patch.url.as_deref())
    .bind(patch.triggers.as_deref().map(trigger_mask))
    .bind(patch.is_active)
    .bind(patch.is_active == Some(true))
    .bind(now().timestamp_micros())
    .bind(id)
    .execute(&mut *tx)
    .await?;
    let sub = fetch(&mut tx, project_id, id).await?;
    tx.commit().await?;
    Ok(sub)
}

pub(super) async fn delete(pool: &SqlitePool, project_id: &str, id: &str) -> Result<()> {
    let done = sqlx::query("DELETE FROM webhook_subscriptions WHERE id = ? AND project_id = ?")
        .bind(id)
        .bind(project_id)
        .execute(pool)
        .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trigger_masks_round_trip() {
        let all = Trigger::ALL.to_vec();
        assert_eq!(triggers_of(trigger_mask(&all)), all);
        let some = vec![Trigger::BotStateChange, Trigger::ParticipantSpeechStartStop];
        assert_eq!(triggers_of(trigger_mask(&some)), some);
        assert_eq!(trigger_mask(&[]), 0);
    }
}
