//! Calendars: what a calendar's sealed credentials hold, reading its events from the provider
//! (an iCalendar feed, Google Calendar, Microsoft Graph), and the loop that syncs due calendars
//! and stores each result with the webhooks it owes.

pub mod feed;
pub mod google;
pub mod ical;
pub mod microsoft;
pub mod provider;
pub mod sync;

use meetwire_core::calendar::Platform;
use meetwire_core::sealing::SealingKey;
use serde::{Deserialize, Serialize};

use provider::OAuthCredentials;

/// What a calendar needs to read its provider, stored sealed (never returned by the API).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "platform", rename_all = "snake_case")]
pub enum Credentials {
    Ical { ical_url: String },
    Google(OAuthCredentials),
    Microsoft(OAuthCredentials),
}

impl Credentials {
    pub fn platform(&self) -> Platform {
        match self {
            Credentials::Ical { .. } => Platform::Ical,
            Credentials::Google(_) => Platform::Google,
            Credentials::Microsoft(_) => Platform::Microsoft,
        }
    }

    /// The same credentials with the refresh token the provider rotated them to.
    pub fn with_refresh_token(&self, refresh_token: &str) -> Credentials {
        let renewed = |oauth: &OAuthCredentials| OAuthCredentials {
            refresh_token: refresh_token.to_owned(),
            ..oauth.clone()
        };
        match self {
            Credentials::Google(oauth) => Credentials::Google(renewed(oauth)),
            Credentials::Microsoft(oauth) => Credentials::Microsoft(renewed(oauth)),
            Credentials::Ical { .. } => self.clone(),
        }
    }

    pub fn seal(&self, key: &SealingKey) -> Result<Vec<u8>, String> {
        let text = serde_json::to_vec(self).map_err(|e| e.to_string())?;
        key.seal(&text).map_err(|e| e.to_string())
    }

    pub fn open(sealed: &[u8], key: &SealingKey) -> Result<Credentials, String> {
        let text = key.open(sealed).map_err(|e| e.to_string())?;
        serde_json::from_slice(&text).map_err(|e| e.to_string())
    }
}
