//! The signing keys of each project, opened from their sealed form and cached for a few
//! seconds: opening on every delivery would waste the hot path, caching for long would keep
//! signing with a rotated-out secret on other nodes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use meetwire_core::sealing::SealingKey;
use meetwire_store::{Store, StoreError};

/// How long an opened key set is reused.
const TTL: Duration = Duration::from_secs(5);

/// What signing a project's deliveries needs.
pub struct SigningKeys {
    /// The active secret (signs `X-Webhook-Signature`).
    pub active: Vec<u8>,
    /// Every secret still in its overlap window, active first (each signs `webhook-signature`).
    pub all: Vec<Vec<u8>>,
    pub standard_webhooks: bool,
}

pub struct KeyCache {
    store: Arc<dyn Store>,
    sealing: Arc<SealingKey>,
    cached: Mutex<HashMap<String, (Instant, Arc<SigningKeys>)>>,
}

impl KeyCache {
    pub fn new(store: Arc<dyn Store>, sealing: Arc<SealingKey>) -> Self {
        KeyCache {
            store,
            sealing,
            cached: Mutex::new(HashMap::new()),
        }
    }

    pub async fn get(&self, project_id: &str) -> Result<Arc<SigningKeys>, StoreError> {
        if let Some(keys) = self.lookup(project_id) {
            return Ok(keys);
        }
        let sealed = self.store.webhook_secrets(project_id).await?;
        let settings = self.store.project_settings(project_id).await?;
        let all = sealed
            .iter()
            .map(|s| self.sealing.open(&s.sealed))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let active = all
            .first()
            .cloned()
            .ok_or_else(|| StoreError::Corrupt(format!("project {project_id} has no secret")))?;
        let keys = Arc::new(SigningKeys {
            active,
            all,
            standard_webhooks: settings.standard_webhooks,
        });
        if let Ok(mut cached) = self.cached.lock() {
            cached.insert(project_id.to_owned(), (Instant::now(), keys.clone()));
        }
        Ok(keys)
    }

    fn lookup(&self, project_id: &str) -> Option<Arc<SigningKeys>> {
        let cached = self.cached.lock().ok()?;
        let (at, keys) = cached.get(project_id)?;
        (at.elapsed() < TTL).then(|| keys.clone())
    }

    /// Forgets a project's keys (after a rotation or a settings change on this node).
    pub fn invalidate(&self, project_id: &str) {
        if let Ok(mut cached) = self.cached.lock() {
            cached.remove(project_id);
        }
    }
}
