//! Tenants and numbers provisioned through the admin API, as stored.
//!
//! The config file stays the source of the tenants it names; the admin
//! API adds tenants of its own (an id, a name, a call limit, suspended or
//! not) and numbers, for its tenants and for the config's. At every start
//! (server and CLI alike) [`Store::merge_provisioned`] adds them to the
//! config read from the file, so everything that reads `config.tenants`
//! sees them; the running server also applies each change at once
//! (`api::tenants`).

use sqlx::Row;

use super::{Store, StoreError};
use crate::config::{Config, TenantConfig};

/// A tenant made through the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantRow {
    /// Id (the config's rules: 1-64 letters, digits, `-`, `_`).
    pub id: String,
    /// Display name.
    pub name: String,
    /// Most calls at once.
    pub max_calls: usize,
    /// New calls refused (503) while set.
    pub suspended: bool,
    /// Made, ms since the epoch.
    pub created_ms: i64,
}

/// A number given to a tenant through the API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumberRow {
    /// The number as given (digits, an optional leading `+`).
    pub number: String,
    /// Its tenant.
    pub tenant: String,
    /// Added, ms since the epoch.
    pub added_ms: i64,
}

/// Where an API-made tenant's flows live: `DATA_DIR/tenants/ID/flows`.
pub fn flows_dir(data_dir: &std::path::Path, tenant: &str) -> std::path::PathBuf {
    data_dir.join("tenants").join(tenant).join("flows")
}

/// The config entry of an API-made tenant: its flows in the data
/// directory, every other setting its default.
pub fn tenant_config(row: &TenantRow, data_dir: &std::path::Path) -> TenantConfig {
    let mut table = toml::Table::new();
    table.insert("id".into(), row.id.clone().into());
    table.insert("numbers".into(), toml::Value::Array(Vec::new()));
    table.insert(
        "flows_dir".into(),
        flows_dir(data_dir, &row.id)
            .to_string_lossy()
            .into_owned()
            .into(),
    );
    let mut t: TenantConfig = table
        .try_into()
        .unwrap_or_else(|e| unreachable!("a tenant of defaults parses: {e}"));
    t.name = row.name.clone();
    t.max_calls = row.max_calls;
    t.suspended = row.suspended;
    t.provisioned = true;
    t
}

fn tenant_from_row(r: &sqlx::any::AnyRow) -> Result<TenantRow, sqlx::Error> {
    Ok(TenantRow {
        id: r.try_get(0)?,
        name: r.try_get(1)?,
        max_calls: usize::try_from(r.try_get::<i64, _>(2)?).unwrap_or(0),
        suspended: r.try_get::<i64, _>(3)? != 0,
        created_ms: r.try_get(4)?,
    })
}

impl Store {
    /// Every API-made tenant, by id.
    pub async fn provisioned_tenants(&self) -> Result<Vec<TenantRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, name, max_calls, suspended, created_ms FROM provisioned_tenants ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(tenant_from_row)
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    /// Stores a new tenant; false when the id is taken.
    pub async fn put_provisioned_tenant(&self, t: &TenantRow) -> Result<bool, StoreError> {
        let n = sqlx::query(
            "INSERT INTO provisioned_tenants (id, name, max_calls, suspended, created_ms, updated_ms)
             VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT (id) DO NOTHING",
        )
        .bind(&t.id)
        .bind(&t.name)
        .bind(i64::try_from(t.max_calls).unwrap_or(i64::MAX))
        .bind(i64::from(t.suspended))
        .bind(t.created_ms)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    /// Changes an API-made tenant's name, limit or suspension; false when
    /// there is no such tenant.
    pub async fn update_provisioned_tenant(
        &self,
        t: &TenantRow,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        let n = sqlx::query(
            "UPDATE provisioned_tenants SET name = $2, max_calls = $3, suspended = $4, updated_ms = $5
             WHERE id = $1",
        )
        .bind(&t.id)
        .bind(&t.name)
        .bind(i64::try_from(t.max_calls).unwrap_or(i64::MAX))
        .bind(i64::from(t.suspended))
        .bind(now_ms)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n == 1)
    }

    /// Every API-given number.
    pub async fn provisioned_numbers(&self) -> Result<Vec<NumberRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT number, tenant, added_ms FROM provisioned_numbers ORDER BY tenant, number",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(NumberRow {
                    number: r.try_get(0)?,
                    tenant: r.try_get(1)?,
                    added_ms: r.try_get(2)?,
                })
            })
            .collect::<Result<_, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    /// Gives a number to a tenant; false when the store has it already
    /// (with or without a leading `+`).
    pub async fn add_provisioned_number(&self, n: &NumberRow) -> Result<bool, StoreError> {
        let added = sqlx::query(
            "INSERT INTO provisioned_numbers (number_key, number, tenant, added_ms)
             VALUES ($1, $2, $3, $4) ON CONFLICT (number_key) DO NOTHING",
        )
        .bind(n.number.trim_start_matches('+'))
        .bind(&n.number)
        .bind(&n.tenant)
        .bind(n.added_ms)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(added == 1)
    }

    /// Takes a number from its tenant; false when that tenant had no such
    /// API-given number.
    pub async fn remove_provisioned_number(
        &self,
        tenant: &str,
        number: &str,
    ) -> Result<bool, StoreError> {
        let n =
            sqlx::query("DELETE FROM provisioned_numbers WHERE number_key = $1 AND tenant = $2")
                .bind(number.trim_start_matches('+'))
                .bind(tenant)
                .execute(&self.pool)
                .await?
                .rows_affected();
        Ok(n == 1)
    }

    /// Adds the API-made tenants and numbers to `config` (read from its
    /// file). A stored tenant whose id the file names too is left out (the
    /// file wins; logged); a number the file gives to a tenant already, or
    /// whose tenant is gone, is left out. Calling it twice adds nothing
    /// the second time.
    pub async fn merge_provisioned(&self, config: &mut Config) -> Result<(), StoreError> {
        for row in self.provisioned_tenants().await? {
            match config.tenants.iter().find(|t| t.id == row.id) {
                Some(t) if !t.provisioned => {
                    tracing::warn!(tenant = %row.id, "a tenant made through the API has the id of one in the config file: the file's is used");
                }
                Some(_) => {}
                None => config.tenants.push(tenant_config(&row, &config.data_dir)),
            }
        }
        for n in self.provisioned_numbers().await? {
            let owned = config.tenants.iter().any(|t| {
                t.numbers
                    .iter()
                    .any(|m| m.trim_start_matches('+') == n.number.trim_start_matches('+'))
            });
            if owned {
                continue;
            }
            if let Some(t) = config.tenants.iter_mut().find(|t| t.id == n.tenant) {
                t.numbers.push(n.number);
            }
        }
        Ok(())
    }
}
