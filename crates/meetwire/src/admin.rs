//! `meetwire admin …`: credentials created straight in the database, so they work whether or
//! not a server is running on it (SQLite's lock makes the two writers take turns).

use std::io::BufRead;
use std::path::Path;

use meetwire_core::signing::WebhookSecret;
use meetwire_server::ui::password;
use meetwire_server::ui::setup::check_email;
use meetwire_store::{StoreError, StoreOptions};
use serde_json::json;

use crate::cli::AdminCommand;
use crate::settings::{
    open_existing_store, open_store, sealing_key, storage_settings, write_private, SettingsError,
    Storage, KEY_FILE,
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
        AdminCommand::Backup { to, storage } => {
            let storage = storage_settings(&storage)?;
            let store = open_existing_store(&storage, StoreOptions::default()).await?;
            // A signal abandons the backup: its partial file goes, and nothing is published.
            tokio::select! {
                written = store.backup(&to) => written?,
                () = crate::serve::shutdown_signal() => {
                    return Err(SettingsError::Invalid(format!(
                        "interrupted: no backup was written to {}",
                        to.display()
                    )));
                }
            }
            println!("backup written to {}", to.display());
            println!(
                "the key that seals webhook secrets is not in it: keep MEETWIRE_SECRET_KEY or {} \
                 apart, a restore needs it",
                storage.data_dir.join(KEY_FILE).display()
            );
        }
        AdminCommand::Restore {
            from,
            key_file,
            storage,
        } => {
            let storage = storage_settings(&storage)?;
            restore(&from, key_file.as_deref(), &storage).await?;
            println!(
                "restored {} into {}; start `meetwire serve` on it",
                from.display(),
                storage.data_dir.display()
            );
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

/// Restores `from` into the configured (new or empty) data directory, with the key that opens
/// its webhook secrets: `key_file`'s, or MEETWIRE_SECRET_KEY. If the key does not open them,
/// nothing restored is left behind.
async fn restore(
    from: &Path,
    key_file: Option<&Path>,
    storage: &Storage,
) -> Result<(), SettingsError> {
    if storage.database_url.is_some() {
        return Err(SettingsError::Invalid(
            "restore writes a data directory; a PostgreSQL database is restored with its own \
             tools"
                .into(),
        ));
    }
    let dir = &storage.data_dir;
    let existed = dir.exists();
    meetwire_store::sqlite::restore(from, dir)?;
    let opened = async {
        if let Some(key_file) = key_file {
            let text = std::fs::read_to_string(key_file)
                .map_err(|e| SettingsError::Key(format!("{}: {e}", key_file.display())))?;
            let path = dir.join(KEY_FILE);
            write_private(&path, &text)
                .map_err(|e| SettingsError::Key(format!("{}: {e}", path.display())))?;
        }
        let store = open_store(storage, StoreOptions::default()).await?;
        sealing_key(storage, store.as_ref()).await.map(|_| ())
    }
    .await;
    if opened.is_err() {
        let removed = if existed {
            std::fs::read_dir(dir).and_then(|entries| {
                entries.flatten().try_for_each(|entry| {
                    let path = entry.path();
                    if path.is_dir() {
                        std::fs::remove_dir_all(path)
                    } else {
                        std::fs::remove_file(path)
                    }
                })
            })
        } else {
            std::fs::remove_dir_all(dir)
        };
        if let Err(e) = removed {
            tracing::warn!(error = %e, dir = %dir.display(), "could not remove the failed restore");
        }
    }
    opened
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
