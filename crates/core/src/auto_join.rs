//! A calendar's `auto_join` rule: which of its events get a bot without anyone asking, and
//! what that bot is called. Pure, so the store applies it inside a sync's transaction and the
//! API checks it with the same code.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::bot_fields::{check_bot_name, metadata, DEFAULT_BOT_NAME};

/// Most entries in `attendees`.
pub const MAX_MATCHES: usize = 100;

/// Send a bot to every event that has a meeting link, or with `attendees` only to events whose
/// organiser or an attendee is one of these addresses (`ann@example.com`) or domains
/// (`@example.com`), compared without case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AutoJoinRule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bot_name: Option<String>,
    /// Copied to each bot's `metadata` (an object of strings).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attendees: Vec<String>,
}

impl AutoJoinRule {
    pub fn bot_name(&self) -> &str {
        self.bot_name.as_deref().unwrap_or(DEFAULT_BOT_NAME)
    }

    /// Reads a rule from the API's JSON; why it is refused, naming the field.
    pub fn from_json(value: Value) -> Result<AutoJoinRule, String> {
        let mut rule: AutoJoinRule =
            serde_json::from_value(value).map_err(|e| format!("auto_join: {e}"))?;
        if let Some(name) = &rule.bot_name {
            check_bot_name(name, "auto_join.bot_name")?;
        }
        if let Some(given) = rule.metadata.take() {
            rule.metadata = metadata(Value::Object(given), "auto_join.metadata")?;
        }
        if rule.attendees.len() > MAX_MATCHES {
            return Err(format!(
                "auto_join.attendees may list at most {MAX_MATCHES} addresses or domains"
            ));
        }
        for entry in &mut rule.attendees {
            let trimmed = entry.trim().to_ascii_lowercase();
            let (local, domain) = trimmed.split_once('@').unwrap_or(("", ""));
            if domain.is_empty() || domain.contains('@') || local.contains(char::is_whitespace) {
                return Err(format!(
                    "auto_join.attendees entries are addresses (ann@example.com) or domains \
                     (@example.com): {entry}"
                ));
            }
            *entry = trimmed;
        }
        Ok(rule)
    }

    /// Whether an event with this organiser and these attendees (the API's attendee objects,
    /// each with an `email`) gets a bot.
    pub fn matches(&self, organizer: Option<&str>, attendees: &Value) -> bool {
        if self.attendees.is_empty() {
            return true;
        }
        let listed = attendees
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|a| a.get("email").and_then(Value::as_str));
        organizer
            .into_iter()
            .chain(listed)
            .any(|address| self.names(address))
    }

    fn names(&self, address: &str) -> bool {
        let address = address.trim().to_ascii_lowercase();
        self.attendees.iter().any(|entry| {
            if entry.starts_with('@') {
                address.ends_with(entry.as_str())
            } else {
                address == *entry
            }
        })
    }
}

/// Whether a meeting URL is one of the sandbox's simulated meetings (its scheme, in any case).
pub fn is_sandbox_meeting(meeting_url: &str) -> bool {
    meeting_url
        .get(..10)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("sandbox://"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_empty_rule_takes_every_event() {
        let rule = AutoJoinRule::from_json(json!({})).unwrap();
        assert!(rule.matches(None, &json!([])));
    }

    #[test]
    fn addresses_and_domains_match_the_organiser_or_an_attendee_without_case() {
        let rule =
            AutoJoinRule::from_json(json!({"attendees": ["Ann@Example.com", "@sales.test"]}))
                .unwrap();
        assert_eq!(rule.attendees, ["ann@example.com", "@sales.test"]);
        assert!(rule.matches(Some("ANN@example.com"), &json!([])));
        assert!(rule.matches(None, &json!([{"email": "bo@sales.test", "name": "Bo"}])));
        assert!(!rule.matches(Some("bo@example.com"), &json!([{"email": "x@other.test"}])));
        assert!(
            !rule.matches(None, &json!([{"email": "x@notsales.test"}])),
            "a domain matches that domain exactly"
        );
        assert!(!rule.matches(None, &json!("garbage")));
    }

    #[test]
    fn bad_rules_are_refused_naming_the_field() {
        for (body, names) in [
            (json!({"bot_name": ""}), "auto_join.bot_name"),
            (json!({"bot_name": "x".repeat(256)}), "auto_join.bot_name"),
            (json!({"metadata": {"a": 1}}), "auto_join.metadata"),
            (json!({"attendees": ["nobody"]}), "auto_join.attendees"),
            (json!({"attendees": ["a@"]}), "auto_join.attendees"),
            (json!({"attendees": ["a b@x.test"]}), "auto_join.attendees"),
            (json!({"attendees": "a@x.test"}), "auto_join"),
            (json!({"when": "always"}), "unknown field `when`"),
            (json!(true), "auto_join"),
        ] {
            let error = AutoJoinRule::from_json(body.clone()).unwrap_err();
            assert!(error.contains(names), "{body}: {error}");
        }
    }
}
