//! `dhwani users add|mfa|passwd|list|remove`: console users who log in to
//! the admin API (`POST /v1/login`) with a password (kept as an Argon2id
//! hash) and a TOTP code. Passwords are generated and printed once unless
//! `--password-stdin`; MFA is set up at `add` (the `otpauth://` URI for an
//! authenticator app is printed once) unless `--no-mfa`. Every change is
//! an audit-log entry; a new password or a removal ends the user's
//! sessions.

use std::io::BufRead;
use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;

use crate::api::auth::Role;
use crate::api::users::{new_totp_secret, otpauth_uri, user_row, valid_username};
use crate::config::Config;

/// `dhwani users ...`
#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Add a user (password printed once; MFA set up unless --no-mfa).
    Add {
        /// Login name: 1-64 of a-z 0-9 . _ @ -.
        username: String,
        /// The tenant (omit for a platform operator).
        #[arg(long)]
        tenant: Option<String>,
        /// platform-operator, tenant-admin, supervisor, agent or auditor.
        #[arg(long)]
        role: String,
        /// May also read (decrypt) recordings.
        #[arg(long)]
        recordings: bool,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
        /// No second factor (not for operators and tenant admins).
        #[arg(long)]
        no_mfa: bool,
    },
    /// A new TOTP secret (the old one stops working); prints its URI.
    Mfa {
        /// The user.
        username: String,
    },
    /// A new password (generated and printed, unless --password-stdin);
    /// ends the user's sessions.
    Passwd {
        /// The user.
        username: String,
        /// Read the password from the first line of standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Users (never their secrets).
    List,
    /// Remove a user and end its sessions.
    Remove {
        /// The user.
        username: String,
    },
}

fn password(from_stdin: bool) -> anyhow::Result<(String, bool)> {
    if from_stdin {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        let p = line.trim_end_matches(['\n', '\r']).to_owned();
        anyhow::ensure!(
            p.chars().count() >= 12,
            "a password has at least 12 characters"
        );
        anyhow::ensure!(p.len() <= 1024, "a password has at most 1024 bytes");
        Ok((p, false))
    } else {
        Ok((hex::encode(rand::random::<[u8; 12]>()), true))
    }
}

/// Runs a `users` subcommand.
pub fn run(cmd: UsersCommand, cfg: &Config) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    rt.block_on(async {
        let store = crate::privacy::open_store(&cfg.store.url, &cfg.data_dir).await?;
        let audit = crate::privacy::Audit::new(&cfg.data_dir);
        let actor = crate::privacy::cli_actor();
        let code = match cmd {
            UsersCommand::Add {
                username,
                tenant,
                role,
                recordings,
                password_stdin,
                no_mfa,
            } => {
                anyhow::ensure!(
                    valid_username(&username),
                    "`{username}`: a username is 1-64 of a-z 0-9 . _ @ -"
                );
                let Some(role) = Role::parse(&role) else {
                    anyhow::bail!("--role: `{role}` is not a role");
                };
                match (&tenant, role) {
                    (Some(_), Role::PlatformOperator) => {
                        anyhow::bail!("--tenant: a platform operator belongs to no tenant")
                    }
                    (None, r) if r != Role::PlatformOperator && r != Role::Auditor => {
                        anyhow::bail!("--tenant: a {} belongs to one tenant; name it", r.name())
                    }
                    _ => {}
                }
                if let Some(t) = &tenant
                    && !cfg.tenants.iter().any(|c| &c.id == t)
                {
                    anyhow::bail!("--tenant: no tenant `{t}` in the config");
                }
                anyhow::ensure!(
                    !(no_mfa && matches!(role, Role::PlatformOperator | Role::TenantAdmin)),
                    "--no-mfa: operators and tenant admins log in with a second factor"
                );
                anyhow::ensure!(
                    store.user(&username).await?.is_none(),
                    "user `{username}` exists (dhwani users passwd / mfa / remove)"
                );
                let (pw, generated) = password(password_stdin)?;
                let secret = (!no_mfa).then(new_totp_secret);
                let row = user_row(
                    &username,
                    tenant.as_deref(),
                    role,
                    recordings,
                    &pw,
                    secret.clone(),
                )
                .map_err(anyhow::Error::msg)?;
                store.put_user(&row).await?;
                audit.append(
                    &actor,
                    "users.add",
                    &format!(
                        "user {username} tenant {} role {}{}{}",
                        tenant.as_deref().unwrap_or("(platform)"),
                        role.name(),
                        if recordings { " with recordings" } else { "" },
                        if no_mfa { " without MFA" } else { "" }
                    ),
                )?;
                if generated {
                    println!("password: {pw}");
                }
                if let Some(s) = secret {
                    println!("totp: {}", otpauth_uri(&username, &s));
                }
                eprintln!("user {username} added; the lines above are shown once");
                ExitCode::SUCCESS
            }
            UsersCommand::Mfa { username } => {
                let Some(mut u) = store.user(&username).await? else {
                    anyhow::bail!("no user `{username}`");
                };
                let s = new_totp_secret();
                u.totp_secret = Some(s.clone());
                u.totp_last_step = None;
                store.put_user(&u).await?;
                store.drop_sessions_of(&username).await?;
                audit.append(&actor, "users.mfa", &format!("user {username}"))?;
                println!("totp: {}", otpauth_uri(&username, &s));
                ExitCode::SUCCESS
            }
            UsersCommand::Passwd {
                username,
                password_stdin,
            } => {
                let Some(mut u) = store.user(&username).await? else {
                    anyhow::bail!("no user `{username}`");
                };
                let (pw, generated) = password(password_stdin)?;
                u.password_hash =
                    crate::api::users::hash_password(&pw).map_err(anyhow::Error::msg)?;
                store.put_user(&u).await?;
                let ended = store.drop_sessions_of(&username).await?;
                audit.append(&actor, "users.passwd", &format!("user {username}"))?;
                if generated {
                    println!("password: {pw}");
                }
                eprintln!("password changed; {ended} session(s) ended");
                ExitCode::SUCCESS
            }
            UsersCommand::List => {
                for u in store.users().await? {
                    println!(
                        "{:<24} {:<10} {:<17} {}{}",
                        u.username,
                        if u.tenant.is_empty() {
                            "(platform)"
                        } else {
                            &u.tenant
                        },
                        u.role,
                        if u.totp_secret.is_some() {
                            "mfa "
                        } else {
                            "no-mfa "
                        },
                        if u.recordings { "recordings" } else { "" }
                    );
                }
                ExitCode::SUCCESS
            }
            UsersCommand::Remove { username } => {
                if store.remove_user(&username).await? {
                    audit.append(&actor, "users.remove", &format!("user {username}"))?;
                    println!("user {username} removed");
                    ExitCode::SUCCESS
                } else {
                    eprintln!("no user `{username}`");
                    ExitCode::FAILURE
                }
            }
        };
        store.close().await;
        Ok(code)
    })
}
