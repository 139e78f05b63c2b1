//! `meetwire admin …`: credentials created straight in the database, so they work whether or
//! not a server is running on it (SQLite's lock makes the two writers take turns).

use meetwire_core::signing::WebhookSecret;
use meetwire_store::StoreOptions;
use serde_json::json;

use crate::cli::AdminCommand;
use crate::settings::{
    open_existing_store, open_store, sealing_key, storage_settings, SettingsError,
};

pub async fn run(command: AdminCommand) -> Result<(), SettingsError> {
    match command {
        AdminCommand::CreateProject {
            name,
            json,
            storage,
        } => {
            let storage = storage_settings(&storage)?;
            let store = open_store(&storage, StoreOptions::default()).await?;
            let key = sealing_key(&storage, store.as_ref()).await?;
            let secret = WebhookSecret::generate();
            let sealed = key
                .seal(secret.as_bytes())
                .map_err(|e| SettingsError::Key(e.to_string()))?;
            let created = store.create_project(&name, sealed).await?;
            if json {
                println!(
                    "{}",
                    json!({"project_id": created.project_id, "api_key": created.api_key,
                           "webhook_secret": secret.to_base64()})
                );
            } else {
                println!("project:        {}", created.project_id);
                println!(
                    "API key:        {}  (shown once; stored hashed)",
                    created.api_key
                );
                println!("webhook secret: {}", secret.to_base64());
            }
        }
        AdminCommand::CreateApiKey {
            project,
            json,
            storage,
        } => {
            let storage = storage_settings(&storage)?;
            let store = open_existing_store(&storage, StoreOptions::default()).await?;
            let api_key = store.create_api_key(&project).await.map_err(|e| match e {
                meetwire_store::StoreError::NotFound => {
                    SettingsError::Invalid(format!("no project {project}"))
                }
                other => other.into(),
            })?;
            if json {
                println!("{}", json!({ "api_key": api_key }));
            } else {
                println!("API key: {api_key}  (shown once; stored hashed)");
            }
        }
        AdminCommand::CreateRunnerToken {
            name,
            json,
            storage,
        } => {
            if name.trim().is_empty() {
                return Err(SettingsError::Invalid("--name must not be empty".into()));
            }
            let storage = storage_settings(&storage)?;
            let store = open_existing_store(&storage, StoreOptions::default()).await?;
            let token = store.create_runner_token(&name).await?;
            if json {
                println!("{}", json!({ "runner_token": token }));
            } else {
                println!("runner token: {token}  (shown once; stored hashed)");
            }
        }
    }
    Ok(())
}
