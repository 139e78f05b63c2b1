//! The calendar sync loop: claims the calendar whose sync has been due longest (a lease in the
//! database, so several processes on one database never sync a calendar twice at once), reads
//! its provider, and stores the result with its webhooks in one transaction. A provider that
//! refuses the credentials disconnects the calendar; throttling and server errors only delay
//! the next try.

use std::time::Duration;

use chrono::Duration as Span;
use meetwire_core::time::{now, Timestamp};
use meetwire_store::{CalendarToSync, SyncOutcome};
use tokio::sync::watch;

use super::feed::{FeedClient, FetchError};
use super::ical::{events_in, Window};
use super::provider::ProviderClient;
use super::{google, microsoft, Credentials};
use crate::app::AppState;
use crate::sandbox::script::SandboxMeeting;

/// How long one sync may take before another process may claim the calendar again.
const LEASE: Span = Span::minutes(5);
/// The wait before trying again after a transient failure (at most the sync interval).
const RETRY_AFTER_TRANSIENT: Span = Span::seconds(60);
/// A disconnected calendar is tried again this rarely; new credentials or a sync request try
/// it at once.
const RETRY_DISCONNECTED: Span = Span::hours(24);
/// The events kept: from a day ago to four weeks ahead.
const WINDOW_BEFORE: Span = Span::days(1);
const WINDOW_AFTER: Span = Span::days(28);

/// The HTTP clients of the providers: feeds under the SSRF guard, APIs at configured URLs.
struct Clients {
    feeds: FeedClient,
    apis: ProviderClient,
}

pub async fn run(state: AppState, mut stop: watch::Receiver<bool>) {
    let clients = FeedClient::new(state.config.delivery.policy.clone().into()).and_then(|feeds| {
        ProviderClient::new(state.config.calendar_providers.clone())
            .map(|apis| Clients { feeds, apis })
    });
    let clients = match clients {
        Ok(clients) => clients,
        Err(e) => {
            tracing::error!(error = %e, "calendar sync cannot start its HTTP client");
            return;
        }
    };
    loop {
        match state.store.claim_calendar_sync(now() + LEASE).await {
            Ok(Some(claimed)) => {
                sync_one(&state, &clients, claimed).await;
                continue;
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "cannot claim a calendar to sync"),
        }
        tokio::select! {
            _ = tokio::time::sleep(state.config.poll_interval) => {}
            _ = state.calendar_wake.notified() => {}
            _ = stop.wait_for(|stopping| *stopping) => return,
        }
    }
}

/// What the provider says now.
async fn read_provider(
    state: &AppState,
    clients: &Clients,
    claimed: &CalendarToSync,
) -> SyncOutcome {
    let credentials = match Credentials::open(&claimed.sealed_credentials, &state.sealing) {
        Ok(credentials) => credentials,
        Err(e) => return SyncOutcome::Transient(format!("credentials cannot be opened: {e}")),
    };
    let at = now();
    let window = Window {
        start: at - WINDOW_BEFORE,
        end: at + WINDOW_AFTER,
    };
    let cursor = claimed.sync_token.as_deref();
    let read = match &credentials {
        Credentials::Google(oauth) => google::read(&clients.apis, oauth, cursor, window, at).await,
        Credentials::Microsoft(oauth) => {
            microsoft::read(&clients.apis, oauth, cursor, window, at).await
        }
        Credentials::Ical { ical_url } => {
            return match clients.feeds.fetch(ical_url).await {
                Ok(text) => match events_in(&text, window) {
                    Ok(events) => SyncOutcome::Synced {
                        events,
                        deleted: Vec::new(),
                        complete: true,
                        sync_token: None,
                        renewed_credentials: None,
                    },
                    Err(e) => SyncOutcome::AuthFailed(e.to_string()),
                },
                Err(FetchError::Refused(reason)) => SyncOutcome::AuthFailed(reason),
                Err(FetchError::Transient(reason)) => SyncOutcome::Transient(reason),
            }
        }
    };
    match read {
        // A rotated refresh token is sealed in place of the old one (if sealing fails, the old
        // one is kept: it still works until it expires).
        Ok(read) => {
            let renewed = read.renewed_refresh_token.as_deref().and_then(|token| {
                credentials
                    .with_refresh_token(token)
                    .seal(&state.sealing)
                    .ok()
            });
            read.into_outcome(renewed)
        }
        Err(e) => e.into_outcome(),
    }
}

fn next_sync(state: &AppState, outcome: &SyncOutcome, at: Timestamp) -> Timestamp {
    let interval = Span::from_std(state.config.calendar_sync_interval).unwrap_or(Span::minutes(5));
    at + match outcome {
        SyncOutcome::Synced { .. } => interval,
        SyncOutcome::AuthFailed(_) => RETRY_DISCONNECTED,
        SyncOutcome::Transient(_) => RETRY_AFTER_TRANSIENT.min(interval),
    }
}

/// A `sandbox://` link the sandbox cannot run (an unknown scenario, a bad speed) is not a
/// meeting a bot could join, so the event is kept without it.
fn joinable_links_only(outcome: &mut SyncOutcome) {
    if let SyncOutcome::Synced { events, .. } = outcome {
        for event in events {
            if let Some(url) = &event.meeting_url {
                if SandboxMeeting::from_meeting_url(url, None).is_err() {
                    event.meeting_url = None;
                }
            }
        }
    }
}

async fn sync_one(state: &AppState, clients: &Clients, claimed: CalendarToSync) {
    let mut outcome = read_provider(state, clients, &claimed).await;
    joinable_links_only(&mut outcome);
    if let SyncOutcome::Transient(reason) | SyncOutcome::AuthFailed(reason) = &outcome {
        tracing::info!(calendar = %claimed.calendar.id, reason = %reason, "calendar sync failed");
    }
    let next = next_sync(state, &outcome, now());
    // The result is retried while the claim lasts: losing it would only mean syncing again.
    for pause in [0u64, 100, 500, 2_000] {
        tokio::time::sleep(Duration::from_millis(pause)).await;
        match state
            .store
            .finish_calendar_sync(&claimed, &outcome, next)
            .await
        {
            Ok(report) => {
                tracing::debug!(calendar = %claimed.calendar.id, ?report, "calendar synced");
                if report.bots_created > 0 {
                    state.wake_runners();
                }
                return;
            }
            Err(e) => {
                tracing::warn!(calendar = %claimed.calendar.id, error = %e, "cannot store a calendar sync")
            }
        }
    }
}
