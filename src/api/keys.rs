//! API keys through the API: a platform operator lists, makes and revokes
//! any key; a tenant admin those of its own tenant, of its role or a
//! lesser one, with the recordings permission only when it has it. A new
//! key's secret is in the answer once and never again (the store keeps
//! its SHA-256). Another tenant's key id answers as one that does not
//! exist. Every change is in the audit log.

use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::{Caller, Permission, Role, key_scope, make_key};
use super::flows::audit;
use super::problem::{ApiJson, ApiQuery, Problem};
use super::routes::{Page, PageParams, Problems, St, TenantParam, now_ms, require, scope};
use crate::store::api_keys::ApiKeyRow;

/// A key as listed (never its secret or its hash).
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiKeyInfo {
    /// Public id (the part of the key before its secret).
    pub key_id: String,
    /// Its tenant (none: a platform key).
    pub tenant: Option<String>,
    /// Its role.
    pub role: String,
    /// May read recordings.
    pub recordings: bool,
    /// What it is for.
    pub label: String,
    /// Made, ms since the epoch.
    pub created_ms: i64,
    /// Revoked, ms since the epoch.
    pub revoked_ms: Option<i64>,
}

impl From<ApiKeyRow> for ApiKeyInfo {
    fn from(k: ApiKeyRow) -> ApiKeyInfo {
        ApiKeyInfo {
            key_id: k.key_id,
            tenant: (!k.tenant.is_empty()).then_some(k.tenant),
            role: k.role,
            recordings: k.recordings,
            label: k.label,
            created_ms: k.created_ms,
            revoked_ms: k.revoked_ms,
        }
    }
}

/// Keys this caller manages, oldest first.
#[utoipa::path(get, path = "/v1/keys", params(TenantParam, PageParams), responses(
    (status = 200, body = Page<ApiKeyInfo>), Problems))]
pub async fn list(
    State(s): St,
    c: Caller,
    ApiQuery(q): ApiQuery<TenantParam>,
    ApiQuery(page): ApiQuery<PageParams>,
) -> Result<axum::Json<Page<ApiKeyInfo>>, Problem> {
    require(&c, Permission::Keys)?;
    let tenant = scope(&c, q.tenant.as_deref())?;
    let rows = s.store.api_keys(tenant.as_deref()).await?;
    let out = rows
        .into_iter()
        .filter(|k| c.tenant.is_none() || c.tenant.as_deref() == Some(k.tenant.as_str()))
        .map(ApiKeyInfo::from)
        .collect();
    Ok(axum::Json(super::routes::paginate(out, &page)?))
}

/// A key to make.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewKey {
    /// Its tenant (a tenant admin's keys: its own, the default); none for
    /// a platform operator's key or a platform auditor's.
    pub tenant: Option<String>,
    /// Its role.
    pub role: Role,
    /// May read recordings.
    #[serde(default)]
    pub recordings: bool,
    /// What it is for (at most 200 characters, no control characters).
    #[serde(default)]
    #[schema(max_length = 200, pattern = r"^[^\u0000-\u001f\u007f-\u009f]*$")]
    pub label: String,
}

/// A key just made: `key` is shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct MadeKey {
    /// The key to present as `Authorization: Bearer ...`.
    pub key: String,
    /// The key as listed.
    #[serde(flatten)]
    pub info: ApiKeyInfo,
}

/// Makes a key (its secret is in this answer only).
#[utoipa::path(post, path = "/v1/keys", request_body = NewKey, responses(
    (status = 201, body = MadeKey), Problems))]
pub async fn create(
    State(s): St,
    c: Caller,
    ApiJson(body): ApiJson<NewKey>,
) -> Result<(StatusCode, axum::Json<MadeKey>), Problem> {
    require(&c, Permission::Keys)?;
    let role = body.role;
    if body.label.chars().count() > 200 || body.label.chars().any(char::is_control) {
        return Err(Problem::bad_request(
            "label: at most 200 characters, no control characters",
        ));
    }
    // A tenant admin's keys are of its tenant, never above its role or
    // permissions.
    let tenant = match &c.tenant {
        Some(_) => scope(&c, body.tenant.as_deref())?,
        None => body.tenant.clone(),
    };
    if c.role != Role::PlatformOperator {
        if role < c.role {
            return Err(Problem::forbidden(format!(
                "a {} may not make a {} key",
                c.role.name(),
                role.name()
            )));
        }
        if body.recordings && !c.recordings {
            return Err(Problem::forbidden(
                "recordings: this key may not read recordings, so it may not give that permission",
            ));
        }
    }
    key_scope(tenant.as_deref(), role).map_err(|m| Problem::bad_request(format!("tenant: {m}")))?;
    if role == Role::Auditor && body.recordings {
        return Err(Problem::bad_request(
            "recordings: an auditor never reads recordings",
        ));
    }
    if let Some(t) = &tenant
        && s.registry.index_of(t).is_none()
    {
        return Err(Problem::bad_request(format!("tenant: no tenant {t}")));
    }
    let (row, key) = make_key(
        tenant.as_deref(),
        role,
        body.recordings,
        &body.label,
        now_ms(),
    );
    s.store.put_api_key(&row).await?;
    audit(&s, &c, "apikeys.add", &super::auth::made_key_subject(&row)).await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(MadeKey {
            key,
            info: row.into(),
        }),
    ))
}

/// `{key_id}` in a path.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct KeyPath {
    /// The key's id.
    pub key_id: String,
}

/// Revokes a key: it stops working at its next request.
#[utoipa::path(delete, path = "/v1/keys/{key_id}", params(KeyPath), responses(
    (status = 204, description = "Revoked"), Problems))]
pub async fn revoke(
    State(s): St,
    c: Caller,
    UrlPath(p): UrlPath<KeyPath>,
) -> Result<StatusCode, Problem> {
    require(&c, Permission::Keys)?;
    let missing = || Problem::not_found("no such key that is not revoked already");
    let row = s.store.api_key(&p.key_id).await?.ok_or_else(missing)?;
    let mine = match &c.tenant {
        None => true,
        Some(t) => *t == row.tenant,
    };
    if !mine || row.revoked_ms.is_some() {
        return Err(missing());
    }
    if c.user.is_none() && row.key_id == c.key_id {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            "a key does not revoke itself: revoke it with another key or `dhwani apikeys revoke`",
        ));
    }
    if c.role != Role::PlatformOperator && Role::parse(&row.role).is_none_or(|r| r < c.role) {
        return Err(Problem::forbidden(format!(
            "a {} may not revoke a {} key",
            c.role.name(),
            row.role
        )));
    }
    if !s.store.revoke_api_key(&row.key_id, now_ms()).await? {
        return Err(missing());
    }
    audit(&s, &c, "apikeys.revoke", &format!("key {}", row.key_id)).await?;
    Ok(StatusCode::NO_CONTENT)
}
