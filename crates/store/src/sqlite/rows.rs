//! Reading bot rows into domain types: the one place that knows the column layout.

use meetwire_core::time::from_micros;
use serde_json::Value;
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

use crate::error::{Result, StoreError};
use crate::model::Bot;

/// The columns every bot query selects, in the order [`bot_from_row`] reads them.
pub(super) const BOT_COLUMNS: &str = "id, project_id, meeting_url, bot_name, metadata, \
    deduplication_key, join_at, state, recording_state, transcription_state, is_sandbox, \
    sandbox_script, runner, runner_cursor, calendar_event_id, created_at, updated_at, seq";

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

fn parse_code<T: std::str::FromStr>(row: &SqliteRow, column: &str) -> Result<T>
where
    T::Err: std::fmt::Display,
{
    let code: String = row.try_get(column)?;
    code.parse().map_err(|e| corrupt(column, e))
}

fn parse_json(text: Option<String>, column: &str) -> Result<Option<Value>> {
    text.map(|t| serde_json::from_str(&t).map_err(|e| corrupt(column, e)))
        .transpose()
}

pub(super) fn bot_from_row(row: &SqliteRow) -> Result<Bot> {
    let metadata = match parse_json(row.try_get("metadata")?, "metadata")? {
        Some(Value::Object(map)) => Some(map),
        Some(Value::Null) => None,
        other => return Err(corrupt("metadata", format!("{other:?}"))),
    };
    Ok(Bot {
        id: row.try_get("id")?,
        project_id: row.try_get("project_id")?,
        meeting_url: row.try_get("meeting_url")?,
        bot_name: row.try_get("bot_name")?,
        metadata,
        deduplication_key: row.try_get("deduplication_key")?,
        join_at: row.try_get::<Option<i64>, _>("join_at")?.map(from_micros),
        state: parse_code(row, "state")?,
        recording_state: parse_code(row, "recording_state")?,
        transcription_state: parse_code(row, "transcription_state")?,
        is_sandbox: row.try_get("is_sandbox")?,
        sandbox_script: parse_json(row.try_get("sandbox_script")?, "sandbox_script")?,
        runner: row.try_get("runner")?,
        runner_cursor: parse_json(row.try_get("runner_cursor")?, "runner_cursor")?,
        calendar_event_id: row.try_get("calendar_event_id")?,
        created_at: from_micros(row.try_get("created_at")?),
        updated_at: from_micros(row.try_get("updated_at")?),
    })
}
