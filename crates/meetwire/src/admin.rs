//! `meetwire admin …`: credentials created straight in the database, so they work whether or
//! not a server is running on it (SQLite's lock makes the two writers take turns).

use std::io::BufRead;

use meetwire_core::signing::WebhookSecret;
use meetwire_server::ui::password;
use meetwire_server::ui::setup::check_email;
use meetwire_store::{StoreError, StoreOptions};
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
        AdminCommand::CreateUser {
            email,
            project,
            password_stdin,
            json,
            storage,
        } => {
            let email = email.trim().to_owned();
            check_email(&email).map_err(|m| SettingsError::Invalid(m.into()))?;
            let password = read_password(password_stdin)?;
            let hash =
                password::hash(&password).map_err(|e| SettingsError::Invalid(e.to_string()))?;
            let storage = storage_settings(&storage)?;
            let store = open_existing_store(&storage, StoreOptions::default()).await?;
            let user_id =
                store
                    .create_user(&email, &hash, &project)
                    .await
                    .map_err(|e| match e {
                        StoreError::NotFound => {
                            SettingsError::Invalid(format!("no project {project}"))
                        }
                        StoreError::Conflict(m) => SettingsError::Invalid(m),
                        other => other.into(),
                    })?;
            if json {
                println!("{}", json!({ "user_id": user_id, "email": email }));
            } else {
                println!("user {user_id} ({email}) can sign in at /login");
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

/// The new user's password: the first line of standard input, or typed twice at a prompt
/// that does not echo it.
fn read_password(from_stdin: bool) -> Result<String, SettingsError> {
    let unreadable =
        |e: std::io::Error| SettingsError::Invalid(format!("cannot read the password: {e}"));
    if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(unreadable)?;
        return Ok(line.trim_end_matches(['\r', '\n']).to_owned());
    }
    let first = rpassword::prompt_password("Password: ").map_err(unreadable)?;
    let again = rpassword::prompt_password("Password again: ").map_err(unreadable)?;
    if first != again {
        return Err(SettingsError::Invalid("the two passwords differ".into()));
    }
    Ok(first)
}
