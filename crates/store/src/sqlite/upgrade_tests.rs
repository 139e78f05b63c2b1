//! A database written before keys were made from rows (migration 0008) keeps its deliveries'
//! keys: receivers already hold them, and a retry or resend must carry the same one.

use std::borrow::Cow;

use super::*;

/// Migrations up to and including `version`.
fn migrations_up_to(version: i64) -> sqlx::migrate::Migrator {
    let migrations: Vec<_> = MIGRATOR
        .iter()
        .filter(|m| m.version <= version)
        .cloned()
        .collect();
    sqlx::migrate::Migrator {
        migrations: Cow::Owned(migrations),
        ..sqlx::migrate::Migrator::DEFAULT
    }
}

const OLD_PENDING: &str = "0189c1a2-7b3e-4f00-8a11-5d7e2c3b4a59";
const OLD_DELIVERED: &str = "0189c1a2-7b3e-4f00-9b22-6e8f3d4c5b6a";

/// A database at migration 0007 with two deliveries (one pending in its stream, one
/// delivered) and a third row deleted, so that the sequence is ahead of the rows.
async fn old_database(dir: &Path) {
    let options = SqliteConnectOptions::from_str("sqlite://")
        .unwrap()
        .filename(dir.join(DATABASE_FILE))
        .create_if_missing(true);
    let pool = SqlitePool::connect_with(options).await.unwrap();
    migrations_up_to(7).run(&pool).await.unwrap();
    for (seq, key, status, next) in [
        (1, OLD_DELIVERED, "success", None),
        (2, OLD_PENDING, "pending", Some(0_i64)),
        (3, "0189c1a2-7b3e-4f00-9b22-000000000003", "success", None),
    ] {
        sqlx::query(
            "INSERT INTO deliveries (seq, idempotency_key, project_id, subscription_id, bot_id, \
             trigger, body, stream, status, max_attempts, next_attempt_at, created_at) \
             VALUES (?, ?, 'proj_1', 'webhook_1', 'bot_1', 1, ?, 'webhook_1:bot_1', ?, 4, ?, 0)",
        )
        .bind(seq)
        .bind(key)
        .bind(format!(r#"{{"idempotency_key":"{key}"}}"#))
        .bind(status)
        .bind(next)
        .execute(&pool)
        .await
        .unwrap();
    }
    sqlx::query("DELETE FROM deliveries WHERE seq = 3")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
}

#[tokio::test]
async fn deliveries_stored_before_keep_their_keys_and_no_row_number_is_reused() {
    let dir = tempfile::tempdir().unwrap();
    old_database(dir.path()).await;
    let store = SqliteStore::open(dir.path(), StoreOptions::default())
        .await
        .unwrap();

    let delivered = store.get_delivery("proj_1", OLD_DELIVERED).await.unwrap();
    assert_eq!(delivered.summary.idempotency_key, OLD_DELIVERED);
    assert_eq!(delivered.payload["idempotency_key"], OLD_DELIVERED);
    assert!(matches!(
        store.get_delivery("proj_2", OLD_DELIVERED).await,
        Err(StoreError::NotFound)
    ));
    let page = PageRequest {
        after: None,
        limit: 10,
    };
    let listed = store
        .list_deliveries("proj_1", &DeliveryFilter::default(), page)
        .await
        .unwrap();
    let keys: Vec<_> = listed
        .items
        .iter()
        .map(|d| d.idempotency_key.as_str())
        .collect();
    assert_eq!(keys, [OLD_PENDING, OLD_DELIVERED]);

    let lease_until = now() + chrono::Duration::seconds(30);
    let claimed = store.claim_deliveries(10, lease_until).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].idempotency_key, OLD_PENDING);
    assert_eq!(
        claimed[0].body,
        format!(r#"{{"idempotency_key":"{OLD_PENDING}"}}"#)
    );

    // The stream survives the move from names to columns: the pending row is in it.
    let in_stream: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM deliveries WHERE subscription_id = 'webhook_1' \
         AND bot_id = 'bot_1' AND status = 'pending' AND ordered = 1",
    )
    .fetch_one(&store.reader)
    .await
    .unwrap();
    assert_eq!(in_stream, 1);
    // Row 3 was used once: the next row is 4, whose key is made, not stored.
    let next: i64 = sqlx::query_scalar(
        "INSERT INTO deliveries (project_id, subscription_id, trigger, body, status, \
         max_attempts, created_at) VALUES ('proj_1', 'webhook_1', 1, '{}', 'failure', 4, 0) \
         RETURNING seq",
    )
    .fetch_one(&store.writer)
    .await
    .unwrap();
    assert_eq!(next, 4);
    let made = store.keys.key(4);
    assert_eq!(
        store
            .get_delivery("proj_1", &made)
            .await
            .unwrap()
            .summary
            .idempotency_key,
        made
    );
}

#[tokio::test]
async fn each_database_has_its_own_key_secret_and_keeps_it() {
    let (one, two) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let first = SqliteStore::open(one.path(), StoreOptions::default())
        .await
        .unwrap();
    let second = SqliteStore::open(two.path(), StoreOptions::default())
        .await
        .unwrap();
    let key = first.keys.key(1);
    assert_ne!(key, second.keys.key(1));
    drop(first);
    let reopened = SqliteStore::open(one.path(), StoreOptions::default())
        .await
        .unwrap();
    assert_eq!(
        reopened.keys.key(1),
        key,
        "the secret is kept with the data"
    );
}
