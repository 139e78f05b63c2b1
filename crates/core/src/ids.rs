//! Public object ids (`bot_…`, `proj_…`): a prefix that says what the object is, then 16 random
//! alphanumerics, as Attendee's ids look. Receivers store these, so the shape is part of the contract.

use rand::distributions::Alphanumeric;
use rand::Rng;

/// The kinds of object that have a prefixed public id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdKind {
    Project,
    Bot,
    Calendar,
    CalendarEvent,
    Webhook,
    ChatMessage,
    ParticipantEvent,
    BotLog,
    ApiKey,
    User,
    Node,
}

impl IdKind {
    pub const fn prefix(self) -> &'static str {
        match self {
            IdKind::Project => "proj_",
            IdKind::Bot => "bot_",
            IdKind::Calendar => "cal_",
            IdKind::CalendarEvent => "evt_",
            IdKind::Webhook => "webhook_",
            IdKind::ChatMessage => "msg_",
            IdKind::ParticipantEvent => "pe_",
            IdKind::BotLog => "log_",
            IdKind::ApiKey => "key_",
            IdKind::User => "user_",
            IdKind::Node => "node_",
        }
    }
}

const RANDOM_LEN: usize = 16;

/// A fresh random id of the given kind.
pub fn new_id(kind: IdKind) -> String {
    let prefix = kind.prefix();
    let mut id = String::with_capacity(prefix.len() + RANDOM_LEN);
    id.push_str(prefix);
    id.extend(
        rand::thread_rng()
            .sample_iter(&Alphanumeric)
            .take(RANDOM_LEN)
            .map(char::from),
    );
    id
}

/// Whether `id` has the shape of an id of `kind`; used to answer 404 early for garbage ids.
pub fn is_valid_id(kind: IdKind, id: &str) -> bool {
    id.strip_prefix(kind.prefix()).is_some_and(|rest| {
        rest.len() == RANDOM_LEN && rest.bytes().all(|b| b.is_ascii_alphanumeric())
    })
}

/// A random opaque token (API keys, runner tokens): 40 alphanumerics, ~238 bits.
pub fn new_token() -> String {
    rand::thread_rng()
        .sample_iter(&Alphanumeric)
        .take(40)
        .map(char::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_have_prefix_and_length() {
        for kind in [
            IdKind::Project,
            IdKind::Bot,
            IdKind::Calendar,
            IdKind::Webhook,
            IdKind::ChatMessage,
            IdKind::ParticipantEvent,
            IdKind::BotLog,
            IdKind::ApiKey,
            IdKind::User,
            IdKind::Node,
        ] {
            let id = new_id(kind);
            assert!(is_valid_id(kind, &id), "{id}");
            assert_eq!(id.len(), kind.prefix().len() + 16);
        }
        assert!(!is_valid_id(IdKind::Bot, "bot_short"));
        assert!(!is_valid_id(IdKind::Bot, "proj_abcdefghijklmnop"));
        assert!(!is_valid_id(IdKind::Bot, "bot_abcdefghijklmn-p"));
        assert_ne!(new_id(IdKind::Bot), new_id(IdKind::Bot));
    }

    #[test]
    fn tokens_are_long_and_distinct() {
        let t = new_token();
        assert_eq!(t.len(), 40);
        assert_ne!(t, new_token());
    }
}
