//! Projects, API keys and runner tokens. Keys and tokens are stored as SHA-256 hex only: a
//! leaked database does not leak working credentials.

use meetwire_core::ids::{new_id, new_token, IdKind};
use meetwire_core::time::{from_micros, now};
use sha2::{Digest, Sha256};
use sqlx::Row;
use sqlx::SqlitePool;

use crate::error::{Result, StoreError};
use crate::model::{ApiKeyInfo, CreatedProject, ProjectSettings, SealedSecret};

/// SHA-256 hex of a credential, the only form stored.
pub(crate) fn hash_credential(secret: &str) -> String {
    let digest = Sha256::digest(secret.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

pub(super) async fn create_project(
    pool: &SqlitePool,
    name: &str,
    sealed_secret: Vec<u8>,
) -> Result<CreatedProject> {
    let project_id = new_id(IdKind::Project);
    let api_key = new_token();
    let at = now().timestamp_micros();
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    sqlx::query("INSERT INTO projects (id, name, created_at) VALUES (?, ?, ?)")
        .bind(&project_id)
        .bind(name)
        .bind(at)
        .execute(&mut *tx)
        .await?;
    insert_api_key(&mut tx, &project_id, &api_key).await?;
    sqlx::query("INSERT INTO webhook_secrets (project_id, sealed, created_at) VALUES (?, ?, ?)")
        .bind(&project_id)
        .bind(sealed_secret)
        .bind(at)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(CreatedProject {
        project_id,
        api_key,
    })
}

/// How many of a key's first characters are kept in clear, to tell keys apart in a list.
const KEY_PREFIX_LEN: usize = 8;

async fn insert_api_key(
    conn: &mut sqlx::SqliteConnection,
    project_id: &str,
    key: &str,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO api_keys (key_hash, project_id, created_at, id, prefix) \
         VALUES (?, ?, ?, ?, ?)",
    )
    .bind(hash_credential(key))
    .bind(project_id)
    .bind(now().timestamp_micros())
    .bind(new_id(IdKind::ApiKey))
    .bind(key.get(..KEY_PREFIX_LEN))
    .execute(conn)
    .await?;
    Ok(())
}

/// A project's enabled API keys, oldest first.
pub(super) async fn list_api_keys(pool: &SqlitePool, project_id: &str) -> Result<Vec<ApiKeyInfo>> {
    let rows = sqlx::query(
        "SELECT id, prefix, created_at, last_used_at FROM api_keys \
         WHERE project_id = ? AND disabled = 0 ORDER BY created_at, id",
    )
    .bind(project_id)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(ApiKeyInfo {
                id: row.try_get("id")?,
                prefix: row.try_get("prefix")?,
                created_at: from_micros(row.try_get("created_at")?),
                last_used_at: row
                    .try_get::<Option<i64>, _>("last_used_at")?
                    .map(from_micros),
            })
        })
        .collect()
}

pub(super) async fn revoke_api_key(pool: &SqlitePool, project_id: &str, id: &str) -> Result<()> {
    let done = sqlx::query(
        "UPDATE api_keys SET disabled = 1 WHERE project_id = ? AND id = ? AND disabled = 0",
    )
    .bind(project_id)
    .bind(id)
    .execute(pool)
    .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

pub(super) async fn touch_api_key(pool: &SqlitePool, key: &str) -> Result<()> {
    sqlx::query("UPDATE api_keys SET last_used_at = ? WHERE key_hash = ?")
        .bind(now().timestamp_micros())
        .bind(hash_credential(key))
        .execute(pool)
        .await?;
    Ok(())
}

pub(super) async fn create_api_key(pool: &SqlitePool, project_id: &str) -> Result<String> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let exists: Option<i64> = sqlx::query_scalar("SELECT 1 FROM projects WHERE id = ?")
        .bind(project_id)
        .fetch_optional(&mut *tx)
        .await?;
    if exists.is_none() {
        return Err(StoreError::NotFound);
    }
    let key = new_token();
    insert_api_key(&mut tx, project_id, &key).await?;
    tx.commit().await?;
    Ok(key)
}

pub(super) async fn authenticate_api_key(pool: &SqlitePool, key: &str) -> Result<Option<String>> {
    Ok(
        sqlx::query_scalar("SELECT project_id FROM api_keys WHERE key_hash = ? AND disabled = 0")
            .bind(hash_credential(key))
            .fetch_optional(pool)
            .await?,
    )
}

pub(super) async fn create_runner_token(pool: &SqlitePool, name: &str) -> Result<String> {
    let token = new_token();
    sqlx::query("INSERT INTO runner_tokens (token_hash, name, created_at) VALUES (?, ?, ?)")
        .bind(hash_credential(&token))
        .bind(name)
        .bind(now().timestamp_micros())
        .execute(pool)
        .await?;
    Ok(token)
}

pub(super) async fn authenticate_runner(pool: &SqlitePool, token: &str) -> Result<Option<String>> {
    let name: Option<String> =
        sqlx::query_scalar("SELECT name FROM runner_tokens WHERE token_hash = ?")
            .bind(hash_credential(token))
            .fetch_optional(pool)
            .await?;
    // Namespaced so an external runner can never pose as the built-in sandbox runner.
    Ok(name.map(|n| format!("runner:{n}")))
}

pub(super) async fn project_count(pool: &SqlitePool) -> Result<i64> {
    Ok(sqlx::query_scalar("SELECT COUNT(*) FROM projects")
        .fetch_one(pool)
        .await?)
}

pub(super) async fn newest_sealed_secret(pool: &SqlitePool) -> Result<Option<Vec<u8>>> {
    Ok(
        sqlx::query_scalar("SELECT sealed FROM webhook_secrets ORDER BY id DESC LIMIT 1")
            .fetch_optional(pool)
            .await?,
    )
}

pub(super) async fn webhook_secrets(
    pool: &SqlitePool,
    project_id: &str,
) -> Result<Vec<SealedSecret>> {
    let rows = sqlx::query(
        "SELECT sealed, created_at, expires_at FROM webhook_secrets \
         WHERE project_id = ? AND (expires_at IS NULL OR expires_at > ?) ORDER BY id DESC",
    )
    .bind(project_id)
    .bind(now().timestamp_micros())
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(SealedSecret {
                sealed: row.try_get("sealed")?,
                created_at: from_micros(row.try_get("created_at")?),
                expires_at: row
                    .try_get::<Option<i64>, _>("expires_at")?
                    .map(from_micros),
            })
        })
        .collect()
}

/// Most retired secrets that still sign beside the active one: each adds a signature to every
/// delivery's `webhook-signature` header, so rotating again and again within the overlap must
/// not grow it without bound.
const MAX_RETIRING: i64 = 4;

/// Makes `sealed` the active secret; the previous active one keeps signing until `overlap_until`
/// (older retired ones beyond the newest [`MAX_RETIRING`] stop at once).
pub(super) async fn rotate_webhook_secret(
    pool: &SqlitePool,
    project_id: &str,
    sealed: Vec<u8>,
    overlap_until: i64,
) -> Result<()> {
    let at = now().timestamp_micros();
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let retired = sqlx::query(
        "UPDATE webhook_secrets SET expires_at = ? WHERE project_id = ? AND expires_at IS NULL",
    )
    .bind(overlap_until)
    .bind(project_id)
    .execute(&mut *tx)
    .await?;
    if retired.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    // Secrets retired earlier stop at the latest when this overlap ends.
    sqlx::query(
        "UPDATE webhook_secrets SET expires_at = MIN(expires_at, ?) \
         WHERE project_id = ? AND expires_at IS NOT NULL",
    )
    .bind(overlap_until)
    .bind(project_id)
    .execute(&mut *tx)
    .await?;
    sqlx::query("INSERT INTO webhook_secrets (project_id, sealed, created_at) VALUES (?, ?, ?)")
        .bind(project_id)
        .bind(sealed)
        .bind(at)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "UPDATE webhook_secrets SET expires_at = ? WHERE project_id = ? AND expires_at > ? \
         AND id NOT IN (SELECT id FROM webhook_secrets WHERE project_id = ? \
                        AND expires_at > ? ORDER BY id DESC LIMIT ?)",
    )
    .bind(at)
    .bind(project_id)
    .bind(at)
    .bind(project_id)
    .bind(at)
    .bind(MAX_RETIRING)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(())
}

pub(super) async fn project_settings(
    pool: &SqlitePool,
    project_id: &str,
) -> Result<ProjectSettings> {
    let standard: Option<bool> =
        sqlx::query_scalar("SELECT standard_webhooks FROM projects WHERE id = ?")
            .bind(project_id)
            .fetch_optional(pool)
            .await?;
    standard
        .map(|standard_webhooks| ProjectSettings { standard_webhooks })
        .ok_or(StoreError::NotFound)
}

pub(super) async fn update_project_settings(
    pool: &SqlitePool,
    project_id: &str,
    settings: ProjectSettings,
) -> Result<ProjectSettings> {
    let done = sqlx::query("UPDATE projects SET standard_webhooks = ? WHERE id = ?")
        .bind(settings.standard_webhooks)
        .bind(project_id)
        .execute(pool)
        .await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(settings)
}

#[cfg(test)]
mod tests {
    #[test]
    fn hash_is_sha256_hex() {
        assert_eq!(
            super::hash_credential("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
