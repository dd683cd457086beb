//! Admin API keys as stored: an id, the tenant it belongs to (empty for
//! a platform operator's key), its role, whether it may read recordings,
//! and the SHA-256 of its secret (the secret itself is shown once, when
//! the key is made, and never stored). A revoked key keeps its row (the
//! audit log names key ids) with the time it was revoked.

use sqlx::Row;

use super::{Store, StoreError};

/// One key.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ApiKeyRow {
    /// Public id (the part of the key before its secret).
    pub key_id: String,
    /// The tenant; empty for a platform operator's key.
    pub tenant: String,
    /// `platform-operator`, `tenant-admin`, `supervisor`, `agent`,
    /// `auditor`.
    pub role: String,
    /// May read (decrypt) recordings.
    pub recordings: bool,
    /// Hex SHA-256 of the secret.
    #[serde(skip)]
    pub secret_sha256: String,
    /// What it is for (free text from its maker).
    pub label: String,
    /// When it was made, ms since the epoch.
    pub created_ms: i64,
    /// When it was revoked.
    pub revoked_ms: Option<i64>,
}

const SELECT: &str = "SELECT key_id, tenant, role, recordings, secret_sha256, label, created_ms, revoked_ms FROM api_keys";

fn from_row(r: &sqlx::any::AnyRow) -> Result<ApiKeyRow, sqlx::Error> {
    Ok(ApiKeyRow {
        key_id: r.try_get(0)?,
        tenant: r.try_get(1)?,
        role: r.try_get(2)?,
        recordings: r.try_get::<i64, _>(3)? != 0,
        secret_sha256: r.try_get(4)?,
        label: r.try_get(5)?,
        created_ms: r.try_get(6)?,
        revoked_ms: r.try_get(7)?,
    })
}

impl Store {
    /// Stores a new key.
    pub async fn put_api_key(&self, k: &ApiKeyRow) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO api_keys (key_id, tenant, role, recordings, secret_sha256, label, created_ms, revoked_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&k.key_id)
        .bind(&k.tenant)
        .bind(&k.role)
        .bind(i64::from(k.recordings))
        .bind(&k.secret_sha256)
        .bind(&k.label)
        .bind(k.created_ms)
        .bind(k.revoked_ms)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// One key by id (revoked ones too).
    pub async fn api_key(&self, key_id: &str) -> Result<Option<ApiKeyRow>, StoreError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!("{SELECT} WHERE key_id = $1")))
            .bind(key_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.as_ref().map(from_row).transpose()?)
    }

    /// Keys of one tenant (None: every key), oldest first.
    pub async fn api_keys(&self, tenant: Option<&str>) -> Result<Vec<ApiKeyRow>, StoreError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "{SELECT} WHERE ($1 = '*' OR tenant = $1) ORDER BY created_ms, key_id"
        )))
        .bind(tenant.unwrap_or("*"))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(from_row)
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    /// Revokes a key now; false when there is no such key or it was
    /// revoked already.
    pub async fn revoke_api_key(&self, key_id: &str, now_ms: i64) -> Result<bool, StoreError> {
        let n = sqlx::query(
            "UPDATE api_keys SET revoked_ms = $2 WHERE key_id = $1 AND revoked_ms IS NULL",
        )
        .bind(key_id)
        .bind(now_ms)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n > 0)
    }
}
