//! Console users as stored: tenant, role, an Argon2id password hash (PHC
//! string; never the password), the TOTP secret once MFA is set up
//! (sealed with ChaCha20-Poly1305 under the MFA key outside the database,
//! `privacy::keys::mfa_key`, bound to the username), the
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
    /// Base32 TOTP secret (None: no MFA yet), in clear here; sealed in
    /// the database.
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

/// The sealed-value context of a user's TOTP secret.
fn totp_context(username: &str) -> String {
    format!("user:{username}")
}

impl Store {
    /// A row as read, its TOTP secret opened.
    fn opened(&self, mut u: UserRow) -> Result<UserRow, StoreError> {
        if let Some(s) = &u.totp_secret
            && super::sealed::is_sealed(s)
        {
            let key = self.sealer.mfa_key(false)?;
            let opened =
                super::sealed::open(&key, &totp_context(&u.username), "totp_secret", s)
                    .ok_or_else(|| {
                        StoreError::Keys(format!(
                            "the TOTP secret of user {} does not open with the MFA key (DATA_DIR/keys/mfa.key or DHWANI_MFA_KEY)",
                            u.username
                        ))
                    })?;
            u.totp_secret = Some(opened);
        }
        Ok(u)
    }

    /// Seals the TOTP secrets stored in clear by an earlier version;
    /// returns how many.
    pub async fn seal_clear_totp_secrets(&self) -> Result<u64, StoreError> {
        let mut n = 0;
        let rows =
            sqlx::query("SELECT username, totp_secret FROM users WHERE totp_secret IS NOT NULL")
                .fetch_all(&self.pool)
                .await?;
        for r in rows {
            let (name, secret): (String, String) = (r.try_get(0)?, r.try_get(1)?);
            if super::sealed::is_sealed(&secret) {
                continue;
            }
            let key = self.sealer.mfa_key(true)?;
            let sealed = super::sealed::seal(&key, &totp_context(&name), "totp_secret", &secret);
            sqlx::query(
                "UPDATE users SET totp_secret = $2 WHERE username = $1 AND totp_secret = $3",
            )
            .bind(&name)
            .bind(&sealed)
            .bind(&secret)
            .execute(&self.pool)
            .await?;
            n += 1;
        }
        Ok(n)
    }

    /// Adds a user, or replaces its tenant, role, password and MFA.
    pub async fn put_user(&self, u: &UserRow) -> Result<(), StoreError> {
        let totp = match &u.totp_secret {
            Some(s) => {
                let key = self.sealer.mfa_key(true)?;
                Some(super::sealed::seal(
                    &key,
                    &totp_context(&u.username),
                    "totp_secret",
                    s,
                ))
            }
            None => None,
        };
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
        .bind(totp)
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
        row.as_ref()
            .map(user)
            .transpose()?
            .map(|u| self.opened(u))
            .transpose()
    }

    /// Every user, by name.
    pub async fn users(&self) -> Result<Vec<UserRow>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{USER_SELECT} ORDER BY username"
        )))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| self.opened(user(r)?)).collect()
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

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::sync::Arc;

    use recordings::keys::Key;

    use super::super::sealed::{BoxFuture, KeySource};
    use super::*;

    /// Only the MFA key, fixed.
    struct MfaOnly;

    impl KeySource for MfaOnly {
        fn current(&self, _: &Path, _: &str, _: bool) -> Result<(String, Key), String> {
            Err("no tenant keys here".into())
        }
        fn find(&self, _: &Path, _: &str, _: &str) -> Option<Key> {
            None
        }
        fn mfa_key(&self, _: &Path, _: bool) -> Result<Key, String> {
            Ok(Key([7; 32]))
        }
        fn pseudonyms<'a>(
            &'a self,
            _: &'a Store,
            _: &'a Path,
            _: &'a str,
            _: &'a str,
        ) -> BoxFuture<'a, Vec<String>> {
            Box::pin(async { Vec::new() })
        }
    }

    fn row(name: &str, secret: &str) -> UserRow {
        UserRow {
            username: name.into(),
            tenant: "t".into(),
            role: "supervisor".into(),
            recordings: false,
            password_hash: "$argon2id$x".into(),
            totp_secret: Some(secret.into()),
            totp_last_step: None,
            created_ms: 1,
        }
    }

    async fn raw_secret(store: &Store, name: &str) -> String {
        sqlx::query("SELECT totp_secret FROM users WHERE username = $1")
            .bind(name)
            .fetch_one(&store.pool)
            .await
            .unwrap()
            .try_get(0)
            .unwrap()
    }

    #[tokio::test]
    async fn totp_secrets_are_sealed_to_their_user_and_clear_ones_of_old_rows_get_sealed() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open("", dir.path())
            .await
            .unwrap()
            .with_key_source(Arc::new(MfaOnly));
        store
            .put_user(&row("asha", "JBSWY3DPEHPK3PXP"))
            .await
            .unwrap();
        let stored = raw_secret(&store, "asha").await;
        assert!(super::super::sealed::is_sealed(&stored), "{stored}");
        assert!(!stored.contains("JBSWY3DPEHPK3PXP"));
        let read = store.user("asha").await.unwrap().unwrap();
        assert_eq!(read.totp_secret.as_deref(), Some("JBSWY3DPEHPK3PXP"));
        // Asha's sealed secret copied onto another user does not open.
        store.put_user(&row("ravi", "x")).await.unwrap();
        sqlx::query("UPDATE users SET totp_secret = $1 WHERE username = 'ravi'")
            .bind(&stored)
            .execute(&store.pool)
            .await
            .unwrap();
        assert!(store.user("ravi").await.is_err());
        // A row in clear (an earlier version's) is sealed once.
        sqlx::query("UPDATE users SET totp_secret = 'GEZDGNBVGY3TQOJQ' WHERE username = 'ravi'")
            .execute(&store.pool)
            .await
            .unwrap();
        assert_eq!(store.seal_clear_totp_secrets().await.unwrap(), 1);
        assert_eq!(store.seal_clear_totp_secrets().await.unwrap(), 0);
        assert!(super::super::sealed::is_sealed(
            &raw_secret(&store, "ravi").await
        ));
        let users = store.users().await.unwrap();
        let ravi = users.iter().find(|u| u.username == "ravi").unwrap();
        assert_eq!(ravi.totp_secret.as_deref(), Some("GEZDGNBVGY3TQOJQ"));
    }
}
