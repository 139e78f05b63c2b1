//! The fields a user sets on every bot — its name and its metadata — checked by one set of
//! rules, whether the bot comes from the API or from a calendar's `auto_join` rule.

use serde_json::{Map, Value};

/// The name of a bot nobody named.
pub const DEFAULT_BOT_NAME: &str = "Meeting Bot";
/// Longest bot name.
pub const MAX_BOT_NAME_CHARS: usize = 255;

/// A bot name given as `field`: 1 to `MAX_BOT_NAME_CHARS` characters, not only spaces.
pub fn check_bot_name(name: &str, field: &str) -> Result<(), String> {
    if name.trim().is_empty() || name.chars().count() > MAX_BOT_NAME_CHARS {
        return Err(format!(
            "{field} must be 1 to {MAX_BOT_NAME_CHARS} characters"
        ));
    }
    Ok(())
}

/// Metadata given as `field`: an object whose values are strings (`null` for none).
pub fn metadata(value: Value, field: &str) -> Result<Option<Map<String, Value>>, String> {
    match value {
        Value::Null => Ok(None),
        Value::Object(map) if map.values().all(Value::is_string) => Ok(Some(map)),
        _ => Err(format!(
            "{field} must be an object whose values are strings"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_and_metadata_are_refused_naming_the_field() {
        assert!(check_bot_name("Notes", "bot_name").is_ok());
        for bad in ["", "   ", &"x".repeat(256)] {
            let error = check_bot_name(bad, "auto_join.bot_name").unwrap_err();
            assert_eq!(error, "auto_join.bot_name must be 1 to 255 characters");
        }
        assert_eq!(metadata(json!(null), "metadata"), Ok(None));
        assert_eq!(
            metadata(json!({"a": "b"}), "metadata").unwrap().unwrap()["a"],
            "b"
        );
        for bad in [json!({"a": 1}), json!(["a"]), json!("a")] {
            assert_eq!(
                metadata(bad, "metadata").unwrap_err(),
                "metadata must be an object whose values are strings"
            );
        }
    }
}
