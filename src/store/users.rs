//! Console users as stored: tenant, role, an Argon2id password hash (PHC
//! string; never the password), the TOTP secret once MFA is set up, the
//! last TOTP step accepted (a code works once), and login sessions (the
//! token's SHA-256 only, with an expiry).

use sqlx::Row;

use super::{Store, StoreError};

/// One user.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct UserRow {
    /// Login name.
    pub username: String,
    /// Tenant; empty for a platform operator.
    pub tenant: String,
    /// Role (as API keys' roles).
    pub role: String,
    /// May read recordings.
    pub recordings: bool,
    /// Argon2id PHC string.
    #[serde(skip)]
    pub password_hash: String,
    /// Base32 TOTP secret (None: no MFA yet).
    #[serde(skip)]
    pub totp_secret: Option<String>,
    /// The last TOTP step accepted.
    #[serde(skip)]
    pub totp_last_step: Option<i64>,
    /// Made, ms since the epoch.
    pub created_ms: i64,
}

/// One login session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    /// Public id (the part of the token before its secret).
    pub session_id: String,
    /// Whose.
    pub username: String,
    /// Hex SHA-256 of the token's secret.
    pub secret_sha256: String,
    /// Made.
    pub created_ms: i64,
    /// Not valid from then on.
    pub expires_ms: i64,
}

const USER_SELECT: &str = "SELECT username, tenant, role, recordings, password_hash, totp_secret, totp_last_step, created_ms FROM users";

fn user(r: &sqlx::any::AnyRow) -> Result<UserRow, sqlx::Error> {
    Ok(UserRow {
        username: r.try_get(0)?,
        tenant: r.try_get(1)?,
        role: r.try_get(2)?,
        recordings: r.try_get::<i64, _>(3)? != 0,
        password_hash: r.try_get(4)?,
        totp_secret: r.try_get(5)?,
        totp_last_step: r.try_get(6)?,
        created_ms: r.try_get(7)?,
    })
}

impl Store {
    /// Adds a user, or replaces its tenant, role, password and MFA.
    pub async fn put_user(&self, u: &UserRow) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO users (username, tenant, role, recordings, password_hash, totp_secret, totp_last_step, created_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (username) DO UPDATE SET tenant = excluded.tenant, role = excluded.role,
                recordings = excluded.recordings, password_hash = excluded.password_hash,
                totp_secret = excluded.totp_secret, totp_last_step = excluded.totp_last_step",
        )
        .bind(&u.username)
        .bind(&u.tenant)
        .bind(&u.role)
        .bind(i64::from(u.recordings))
        .bind(&u.password_hash)
        .bind(u.totp_secret.clone())
        .bind(u.totp_last_step)
        .bind(u.created_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// One user.
    pub async fn user(&self, username: &str) -> Result<Option<UserRow>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{USER_SELECT} WHERE username = $1"
        )))
        .bind(username)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(user).transpose()?)
    }

    /// Every user, by name.
    pub async fn users(&self) -> Result<Vec<UserRow>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{USER_SELECT} ORDER BY username"
        )))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(user)
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    /// Removes a user and its sessions; false if there was none.
    pub async fn remove_user(&self, username: &str) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let n = sqlx::query("DELETE FROM users WHERE username = $1")
            .bind(username)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        sqlx::query("DELETE FROM sessions WHERE username = $1")
            .bind(username)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(n > 0)
    }

    /// Records that TOTP step `step` was used, if it is later than the
    /// last one (a code is accepted once): true when it was.
    pub async fn use_totp_step(&self, username: &str, step: i64) -> Result<bool, StoreError> {
        let n = sqlx::query(
            "UPDATE users SET totp_last_step = $2
             WHERE username = $1 AND (totp_last_step IS NULL OR totp_last_step < $2)",
        )
        .bind(username)
        .bind(step)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n > 0)
    }

    /// Stores a session (expired ones of every user are dropped).
    pub async fn put_session(&self, s: &SessionRow) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM sessions WHERE expires_ms <= $1")
            .bind(s.created_ms)
            .execute(&self.pool)
            .await?;
        sqlx::query(
            "INSERT INTO sessions (session_id, username, secret_sha256, created_ms, expires_ms)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(&s.session_id)
        .bind(&s.username)
        .bind(&s.secret_sha256)
        .bind(s.created_ms)
        .bind(s.expires_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// One session by id.
    pub async fn session(&self, id: &str) -> Result<Option<SessionRow>, StoreError> {
        let row = sqlx::query(
            "SELECT session_id, username, secret_sha256, created_ms, expires_ms FROM sessions WHERE session_id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row
            .map(|r| {
                Ok::<_, sqlx::Error>(SessionRow {
                    session_id: r.try_get(0)?,
                    username: r.try_get(1)?,
                    secret_sha256: r.try_get(2)?,
                    created_ms: r.try_get(3)?,
                    expires_ms: r.try_get(4)?,
                })
            })
            .transpose()?)
    }

    /// Ends a session.
    pub async fn drop_session(&self, id: &str) -> Result<bool, StoreError> {
        let n = sqlx::query("DELETE FROM sessions WHERE session_id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?
            .rows_affected();
        Ok(n > 0)
    }

    /// Ends every session of a user (a new password, `users remove`).
    pub async fn drop_sessions_of(&self, username: &str) -> Result<u64, StoreError> {
        Ok(sqlx::query("DELETE FROM sessions WHERE username = $1")
            .bind(username)
            .execute(&self.pool)
            .await?
            .rows_affected())
    }
}
