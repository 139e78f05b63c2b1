//! The web UI's users, their project memberships, their sessions and the first-run setup
//! codes. Session tokens and setup codes are stored as SHA-256 hex only, like API keys; each
//! check-then-write runs in one `BEGIN IMMEDIATE` transaction so two sign-ups racing for a
//! fresh instance cannot both win.

use meetwire_core::ids::{new_id, new_token, IdKind};
use meetwire_core::time::{from_micros, now};
use sqlx::{Row, SqliteConnection, SqlitePool};

use super::credentials::hash_credential;
use crate::error::{Result, StoreError};
use crate::model::{NewSession, ProjectSummary, SessionInfo, UserCredentials};

async fn insert_user(
    conn: &mut SqliteConnection,
    email: &str,
    password_hash: &str,
    project_id: &str,
) -> Result<String> {
    let taken: Option<i64> = sqlx::query_scalar("SELECT 1 FROM users WHERE email = ?")
        .bind(email)
        .fetch_optional(&mut *conn)
        .await?;
    if taken.is_some() {
        return Err(StoreError::Conflict(format!(
            "a user with the email {email} exists"
        )));
    }
    let id = new_id(IdKind::User);
    let at = now().timestamp_micros();
    sqlx::query("INSERT INTO users (id, email, password_hash, created_at) VALUES (?, ?, ?, ?)")
        .bind(&id)
        .bind(email)
        .bind(password_hash)
        .bind(at)
        .execute(&mut *conn)
        .await?;
    sqlx::query("INSERT INTO project_members (user_id, project_id, created_at) VALUES (?, ?, ?)")
        .bind(&id)
        .bind(project_id)
        .bind(at)
        .execute(&mut *conn)
        .await?;
    Ok(id)
}

pub(super) async fn create_user(
    pool: &SqlitePool,
    email: &str,
    password_hash: &str,
    project_id: &str,
) -> Result<String> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let exists: Option<i64> = sqlx::query_scalar("SELECT 1 FROM projects WHERE id = ?")
        .bind(project_id)
        .fetch_optional(&mut *tx)
        .await?;
    if exists.is_none() {
        return Err(StoreError::NotFound);
    }
    let id = insert_user(&mut tx, email, password_hash, project_id).await?;
    tx.commit().await?;
    Ok(id)
}

pub(super) async fn sign_up_first_user(
    pool: &SqlitePool,
    setup_code: &str,
    email: &str,
    password_hash: &str,
) -> Result<String> {
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let any_user: Option<i64> = sqlx::query_scalar("SELECT 1 FROM users LIMIT 1")
        .fetch_optional(&mut *tx)
        .await?;
    if any_user.is_some() {
        return Err(StoreError::Conflict(
            "This instance is already set up; sign in instead.".into(),
        ));
    }
    let known: Option<i64> = sqlx::query_scalar("SELECT 1 FROM setup_codes WHERE code_hash = ?")
        .bind(hash_credential(setup_code))
        .fetch_optional(&mut *tx)
        .await?;
    if known.is_none() {
        return Err(StoreError::Invalid(
            "That setup code is not the one the server printed.".into(),
        ));
    }
    let first_project: Option<String> =
        sqlx::query_scalar("SELECT id FROM projects ORDER BY created_at, rowid LIMIT 1")
            .fetch_optional(&mut *tx)
            .await?;
    let Some(project_id) = first_project else {
        return Err(StoreError::Invalid("There is no project yet.".into()));
    };
    let id = insert_user(&mut tx, email, password_hash, &project_id).await?;
    sqlx::query("DELETE FROM setup_codes")
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(id)
}

pub(super) async fn any_user(pool: &SqlitePool) -> Result<bool> {
    let found: Option<i64> = sqlx::query_scalar("SELECT 1 FROM users LIMIT 1")
        .fetch_optional(pool)
        .await?;
    Ok(found.is_some())
}

pub(super) async fn add_setup_code(pool: &SqlitePool, code: &str) -> Result<()> {
    sqlx::query("INSERT INTO setup_codes (code_hash, created_at) VALUES (?, ?)")
        .bind(hash_credential(code))
        .bind(now().timestamp_micros())
        .execute(pool)
        .await?;
    Ok(())
}

pub(super) async fn user_by_email(
    pool: &SqlitePool,
    email: &str,
) -> Result<Option<UserCredentials>> {
    let row = sqlx::query("SELECT id, email, password_hash FROM users WHERE email = ?")
        .bind(email)
        .fetch_optional(pool)
        .await?;
    row.map(|row| {
        Ok(UserCredentials {
            id: row.try_get("id")?,
            email: row.try_get("email")?,
            password_hash: row.try_get("password_hash")?,
        })
    })
    .transpose()
}

pub(super) async fn user_projects(pool: &SqlitePool, user_id: &str) -> Result<Vec<ProjectSummary>> {
    let rows = sqlx::query(
        "SELECT p.id, p.name FROM project_members m JOIN projects p ON p.id = m.project_id \
         WHERE m.user_id = ? ORDER BY p.created_at, p.id",
    )
    .bind(user_id)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(ProjectSummary {
                id: row.try_get("id")?,
                name: row.try_get("name")?,
            })
        })
        .collect()
}

pub(super) async fn create_session(pool: &SqlitePool, user_id: &str) -> Result<NewSession> {
    let session = NewSession {
        token: new_token(),
        csrf_token: new_token(),
    };
    let at = now().timestamp_micros();
    sqlx::query(
        "INSERT INTO sessions (token_hash, user_id, csrf_token, created_at, last_seen_at) \
         VALUES (?, ?, ?, ?, ?)",
    )
    .bind(hash_credential(&session.token))
    .bind(user_id)
    .bind(&session.csrf_token)
    .bind(at)
    .bind(at)
    .execute(pool)
    .await?;
    Ok(session)
}

pub(super) async fn session(
    pool: &SqlitePool,
    token: &str,
    seen_since: i64,
) -> Result<Option<SessionInfo>> {
    let row = sqlx::query(
        "SELECT s.user_id, u.email, s.csrf_token, s.last_seen_at FROM sessions s \
         JOIN users u ON u.id = s.user_id \
         WHERE s.token_hash = ? AND s.revoked_at IS NULL AND s.last_seen_at >= ?",
    )
    .bind(hash_credential(token))
    .bind(seen_since)
    .fetch_optional(pool)
    .await?;
    row.map(|row| {
        Ok(SessionInfo {
            user_id: row.try_get("user_id")?,
            email: row.try_get("email")?,
            csrf_token: row.try_get("csrf_token")?,
            last_seen_at: from_micros(row.try_get("last_seen_at")?),
        })
    })
    .transpose()
}

pub(super) async fn touch_session(pool: &SqlitePool, token: &str) -> Result<()> {
    sqlx::query("UPDATE sessions SET last_seen_at = ? WHERE token_hash = ? AND revoked_at IS NULL")
        .bind(now().timestamp_micros())
        .bind(hash_credential(token))
        .execute(pool)
        .await?;
    Ok(())
}

pub(super) async fn revoke_session(pool: &SqlitePool, token: &str) -> Result<()> {
    sqlx::query("UPDATE sessions SET revoked_at = ? WHERE token_hash = ? AND revoked_at IS NULL")
        .bind(now().timestamp_micros())
        .bind(hash_credential(token))
        .execute(pool)
        .await?;
    Ok(())
}

pub(super) async fn create_sign_in_link(
    pool: &SqlitePool,
    user_id: &str,
    expires_at: i64,
) -> Result<String> {
    let token = new_token();
    sqlx::query("INSERT INTO sign_in_links (token_hash, user_id, expires_at) VALUES (?, ?, ?)")
        .bind(hash_credential(&token))
        .bind(user_id)
        .bind(expires_at)
        .execute(pool)
        .await?;
    Ok(token)
}

pub(super) async fn use_sign_in_link(pool: &SqlitePool, token: &str) -> Result<Option<String>> {
    let at = now().timestamp_micros();
    Ok(sqlx::query_scalar(
        "UPDATE sign_in_links SET used_at = ? \
         WHERE token_hash = ? AND used_at IS NULL AND expires_at > ? RETURNING user_id",
    )
    .bind(at)
    .bind(hash_credential(token))
    .bind(at)
    .fetch_optional(pool)
    .await?)
}

pub(super) async fn add_project_member(
    pool: &SqlitePool,
    user_id: &str,
    project_id: &str,
) -> Result<()> {
    sqlx::query(
        "INSERT OR IGNORE INTO project_members (user_id, project_id, created_at) VALUES (?, ?, ?)",
    )
    .bind(user_id)
    .bind(project_id)
    .bind(now().timestamp_micros())
    .execute(pool)
    .await?;
    Ok(())
}
