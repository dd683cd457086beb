//! Tenants and their numbers through the API: every key reads its own
//! tenant; a platform operator makes tenants, changes the ones it made,
//! and gives and takes numbers (`store::provisioning` keeps them).
//!
//! A new tenant is live when the answer comes back: its recording and
//! pseudonym keys are made in the data directory (as at a first start),
//! the server's reloader has taken them, and its flows directory
//! (`DATA_DIR/tenants/ID/flows`) exists for `PUT /v1/flows/{file}`. A
//! number given or taken routes (or stops routing) as soon as the answer
//! comes back. Tenants of the config file keep the settings of the file;
//! only their numbers can be added to here.

use axum::extract::{Path as UrlPath, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::{Caller, Permission};
use super::flows::audit;
use super::problem::{ApiJson, Problem};
use super::routes::{Page, PageParams, Problems, St, now_ms, require};
use crate::store::provisioning::{NumberRow, TenantRow};
use crate::tenants::Tenant;

/// A number a tenant owns.
#[derive(Debug, Serialize, ToSchema)]
pub struct NumberInfo {
    /// The number.
    pub number: String,
    /// The flow it answers with (none when no live flow answers it).
    pub flow: Option<String>,
    /// That flow's version.
    pub version: Option<String>,
}

/// A tenant.
#[derive(Debug, Serialize, ToSchema)]
pub struct TenantInfo {
    /// Id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Its numbers and their live flows.
    pub numbers: Vec<NumberInfo>,
    /// Concurrent calls at most.
    pub max_calls: usize,
    /// New calls refused (503) while set.
    pub suspended: bool,
    /// Made through this API (else by the config file).
    pub provisioned: bool,
    /// Its queues.
    pub queues: Vec<String>,
    /// Answered calls in progress now.
    pub live_calls: usize,
}

fn info(s: &super::ApiState, t: &Tenant) -> TenantInfo {
    let live = s.metrics.live.list(Some(&t.id));
    TenantInfo {
        id: t.id.to_string(),
        name: t.name.clone(),
        numbers: t.numbers.iter().map(|n| number_info(s, n)).collect(),
        max_calls: t.max_calls,
        suspended: t.suspended,
        provisioned: t.provisioned,
        queues: t.queues.iter().map(|q| q.name.clone()).collect(),
        live_calls: live.len(),
    }
}

fn number_info(s: &super::ApiState, n: &str) -> NumberInfo {
    let r = s.registry.route(n);
    NumberInfo {
        number: n.to_owned(),
        flow: r.as_ref().map(|r| r.flow.name.clone()),
        version: r.as_ref().map(|r| r.flow.version.to_string()),
    }
}

/// `{tenant}` in a path.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct TenantPath {
    /// The tenant's id.
    pub tenant: String,
}

/// `{tenant}` and `{number}` in a path.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct NumberPath {
    /// The tenant's id.
    pub tenant: String,
    /// The number (digits, an optional leading `+`).
    pub number: String,
}

/// The tenant `id` as this caller may see it: another tenant's answers
/// exactly as one that does not exist.
fn seen(
    s: &super::ApiState,
    c: &Caller,
    id: &str,
) -> Result<(usize, std::sync::Arc<Tenant>), Problem> {
    let missing = || Problem::not_found("no such tenant");
    if !c.sees(id) {
        return Err(missing());
    }
    let i = s.registry.index_of(id).ok_or_else(missing)?;
    Ok((i, s.registry.tenant(i).ok_or_else(missing)?))
}

/// The tenants this key sees (a tenant key: its own).
#[utoipa::path(get, path = "/v1/tenants", params(PageParams), responses(
    (status = 200, body = Page<TenantInfo>), Problems))]
pub async fn list(
    State(s): St,
    c: Caller,
    super::problem::ApiQuery(page): super::problem::ApiQuery<PageParams>,
) -> Result<axum::Json<Page<TenantInfo>>, Problem> {
    require(&c, Permission::Tenants)?;
    let out = s
        .registry
        .tenants()
        .iter()
        .filter(|t| c.sees(&t.id))
        .map(|t| info(&s, t))
        .collect();
    Ok(axum::Json(super::routes::paginate(out, &page)?))
}

/// One tenant.
#[utoipa::path(get, path = "/v1/tenants/{tenant}", params(TenantPath), responses(
    (status = 200, body = TenantInfo), Problems))]
pub async fn get_one(
    State(s): St,
    c: Caller,
    UrlPath(p): UrlPath<TenantPath>,
) -> Result<axum::Json<TenantInfo>, Problem> {
    require(&c, Permission::Tenants)?;
    let (_, t) = seen(&s, &c, &p.tenant)?;
    Ok(axum::Json(info(&s, &t)))
}

/// A tenant to make.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewTenant {
    /// Id: 1-64 letters, digits, `-` or `_` (used in the store, the logs
    /// and the data directory; never changes).
    pub id: String,
    /// Display name (at most 200 characters, no control characters).
    #[serde(default)]
    #[schema(max_length = 200, pattern = r"^[^\u0000-\u001f\u007f-\u009f]*$")]
    pub name: String,
    /// Most calls at once (default 100).
    #[serde(default = "default_max_calls", deserialize_with = "whole")]
    #[schema(minimum = 1, maximum = 100000)]
    pub max_calls: usize,
    /// Numbers it owns from the start (each owned by no other tenant).
    #[serde(default)]
    pub numbers: Vec<String>,
}

fn default_max_calls() -> usize {
    100
}

/// A count from JSON: JSON Schema's `integer` is any number without a
/// fraction, so `5.0` is one too.
fn whole<'de, D: serde::Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    let n = serde_json::Number::deserialize(d)?;
    n.as_u64()
        .or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f <= u32::MAX as f64)
                .map(|f| f as u64)
        })
        .and_then(|v| usize::try_from(v).ok())
        .ok_or_else(|| serde::de::Error::custom(format!("`{n}` is not a whole number")))
}

fn whole_or_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<usize>, D::Error> {
    #[derive(Deserialize)]
    struct W(#[serde(deserialize_with = "whole")] usize);
    Ok(Option::<W>::deserialize(d)?.map(|W(n)| n))
}

const MAX_CALLS_CAP: usize = 100_000;
const MAX_NUMBERS: usize = 1_000;

fn check_max_calls(n: usize) -> Result<(), Problem> {
    if n == 0 || n > MAX_CALLS_CAP {
        return Err(Problem::bad_request(format!(
            "max_calls: give 1 to {MAX_CALLS_CAP} (suspend a tenant with `suspended`)"
        )));
    }
    Ok(())
}

fn check_name(n: &str) -> Result<(), Problem> {
    if n.chars().count() > 200 || n.chars().any(char::is_control) {
        return Err(Problem::bad_request(
            "name: at most 200 characters, no control characters",
        ));
    }
    Ok(())
}

fn conflict(detail: impl Into<String>) -> Problem {
    Problem::new(StatusCode::CONFLICT, detail)
}

fn check_number(s: &super::ApiState, n: &str) -> Result<(), Problem> {
    if !crate::config::valid_number(n) {
        return Err(Problem::bad_request(format!(
            "numbers: `{}` is not a number (1-32 digits with an optional leading +)",
            n.chars().take(40).collect::<String>()
        )));
    }
    if s.registry.owner(n).is_some() {
        return Err(conflict(format!("number {n} is owned already")));
    }
    Ok(())
}

/// Asks the server's reloader to take new keys and flows, and waits for
/// it (5 s at most).
async fn reload(s: &super::ApiState) {
    let Some(tx) = s.reload.get() else {
        let reg = std::sync::Arc::clone(&s.registry);
        let _ = tokio::task::spawn_blocking(move || reg.reload()).await;
        return;
    };
    let (done, wait) = tokio::sync::oneshot::channel();
    if tx.send(Some(done)).await.is_ok() {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), wait).await;
    }
}

/// Makes a tenant (platform operators). It is live when this answers:
/// keys made, flows directory ready, its numbers routed once a flow of
/// its answers them.
#[utoipa::path(post, path = "/v1/tenants", request_body = NewTenant, responses(
    (status = 201, body = TenantInfo), Problems))]
pub async fn create(
    State(s): St,
    c: Caller,
    ApiJson(body): ApiJson<NewTenant>,
) -> Result<(StatusCode, axum::Json<TenantInfo>), Problem> {
    require(&c, Permission::Provision)?;
    if !crate::config::valid_tenant_id(&body.id) {
        return Err(Problem::bad_request("id: use 1-64 letters, digits, - or _"));
    }
    check_name(&body.name)?;
    check_max_calls(body.max_calls)?;
    if body.numbers.len() > MAX_NUMBERS {
        return Err(Problem::bad_request(format!(
            "numbers: at most {MAX_NUMBERS} at once"
        )));
    }
    let _one = s.deploys.lock().await;
    if s.registry.index_of(&body.id).is_some() {
        return Err(conflict(format!("tenant {} exists", body.id)));
    }
    let mut numbers: Vec<String> = Vec::new();
    for n in &body.numbers {
        check_number(&s, n)?;
        if numbers
            .iter()
            .any(|m| m.trim_start_matches('+') == n.trim_start_matches('+'))
        {
            return Err(Problem::bad_request(format!("numbers: {n} is given twice")));
        }
        numbers.push(n.clone());
    }
    let row = TenantRow {
        id: body.id.clone(),
        name: body.name.clone(),
        max_calls: body.max_calls,
        suspended: false,
        created_ms: now_ms(),
    };
    // Keys and the flows folder first: a tenant in the store always has
    // them (a start after a crash here finds the keys and makes no new
    // ones).
    let data_dir = s.config.data_dir.clone();
    let id = row.id.clone();
    tokio::task::spawn_blocking(move || -> Result<(), Problem> {
        std::fs::create_dir_all(crate::store::provisioning::flows_dir(&data_dir, &id))
            .map_err(Problem::internal)?;
        let is_new = std::env::var_os(crate::privacy::keys::env_var(&id)).is_none()
            && !crate::privacy::keys::key_path(&data_dir, &id).exists();
        let kek = crate::privacy::keys::load_or_create(&data_dir, &id).map_err(Problem::from)?;
        crate::privacy::pseudonyms::ensure(&data_dir, &id, &kek, is_new).map_err(Problem::from)?;
        Ok(())
    })
    .await
    .map_err(Problem::internal)??;
    if !s.store.put_provisioned_tenant(&row).await? {
        return Err(conflict(format!("tenant {} exists", body.id)));
    }
    let at = now_ms();
    for n in &numbers {
        let given = NumberRow {
            number: n.clone(),
            tenant: row.id.clone(),
            added_ms: at,
        };
        if !s.store.add_provisioned_number(&given).await? {
            return Err(conflict(format!("number {n} is owned already")));
        }
    }
    let mut cfg = crate::store::provisioning::tenant_config(&row, &s.config.data_dir);
    cfg.numbers = numbers;
    let tenant = Tenant::new(&cfg, &s.config_dir, &s.config.data_dir).map_err(Problem::internal)?;
    if s.registry.add(tenant).is_none() {
        return Err(conflict(format!(
            "tenant {} or one of its numbers exists",
            row.id
        )));
    }
    s.metrics.tenants([row.id.as_str()]);
    audit(
        &s,
        &c,
        "tenants.create",
        &format!(
            "tenant {} max_calls {} numbers {}",
            row.id,
            row.max_calls,
            cfg.numbers.len()
        ),
    )
    .await?;
    reload(&s).await;
    tracing::info!(tenant = %row.id, "tenant made through the admin API");
    let (_, t) = seen(&s, &c, &row.id)?;
    Ok((StatusCode::CREATED, axum::Json(info(&s, &t))))
}

/// Changes to a tenant made through the API (each field optional).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantChange {
    /// Display name (at most 200 characters, no control characters).
    #[schema(max_length = 200, pattern = r"^[^\u0000-\u001f\u007f-\u009f]*$")]
    pub name: Option<String>,
    /// Most calls at once.
    #[serde(default, deserialize_with = "whole_or_null")]
    #[schema(minimum = 1, maximum = 100000)]
    pub max_calls: Option<usize>,
    /// Refuse new calls (503) while set; calls in progress go on.
    pub suspended: Option<bool>,
}

/// Changes a tenant this API made (platform operators): name, call
/// limit, suspension. Effective for the next call; a config file's
/// tenant is changed in its file.
#[utoipa::path(patch, path = "/v1/tenants/{tenant}", params(TenantPath),
    request_body = TenantChange, responses((status = 200, body = TenantInfo), Problems))]
pub async fn change(
    State(s): St,
    c: Caller,
    UrlPath(p): UrlPath<TenantPath>,
    ApiJson(body): ApiJson<TenantChange>,
) -> Result<axum::Json<TenantInfo>, Problem> {
    require(&c, Permission::Provision)?;
    if let Some(n) = &body.name {
        check_name(n)?;
    }
    if let Some(m) = body.max_calls {
        check_max_calls(m)?;
    }
    let _one = s.deploys.lock().await;
    let (i, t) = seen(&s, &c, &p.tenant)?;
    if !t.provisioned {
        return Err(conflict(format!(
            "tenant {} is set up by the config file: change it there",
            t.id
        )));
    }
    let row = TenantRow {
        id: t.id.to_string(),
        name: body.name.clone().unwrap_or_else(|| t.name.clone()),
        max_calls: body.max_calls.unwrap_or(t.max_calls),
        suspended: body.suspended.unwrap_or(t.suspended),
        created_ms: 0,
    };
    if !s.store.update_provisioned_tenant(&row, now_ms()).await? {
        return Err(Problem::not_found("no such tenant"));
    }
    let _ = s.registry.change(i, |_, t| {
        t.name = row.name.clone();
        t.max_calls = row.max_calls;
        t.suspended = row.suspended;
        Ok::<(), ()>(())
    });
    audit(
        &s,
        &c,
        "tenants.change",
        &format!(
            "tenant {} max_calls {} suspended {}",
            row.id, row.max_calls, row.suspended
        ),
    )
    .await?;
    let (_, t) = seen(&s, &c, &p.tenant)?;
    Ok(axum::Json(info(&s, &t)))
}

/// A tenant's numbers and the flows that answer them.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/numbers", params(TenantPath, PageParams),
    responses((status = 200, body = Page<NumberInfo>), Problems))]
pub async fn numbers(
    State(s): St,
    c: Caller,
    UrlPath(p): UrlPath<TenantPath>,
    super::problem::ApiQuery(page): super::problem::ApiQuery<PageParams>,
) -> Result<axum::Json<Page<NumberInfo>>, Problem> {
    require(&c, Permission::Tenants)?;
    let (_, t) = seen(&s, &c, &p.tenant)?;
    let out = t.numbers.iter().map(|n| number_info(&s, n)).collect();
    Ok(axum::Json(super::routes::paginate(out, &page)?))
}

/// A number to give.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewNumber {
    /// The number (digits, an optional leading `+`), owned by no tenant.
    pub number: String,
}

/// Gives a number to a tenant (platform operators). A live flow of the
/// tenant naming it answers it from now on; a flow refused earlier for
/// naming it is loaded again.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/numbers", params(TenantPath),
    request_body = NewNumber, responses((status = 201, body = NumberInfo), Problems))]
pub async fn add_number(
    State(s): St,
    c: Caller,
    UrlPath(p): UrlPath<TenantPath>,
    ApiJson(body): ApiJson<NewNumber>,
) -> Result<(StatusCode, axum::Json<NumberInfo>), Problem> {
    require(&c, Permission::Provision)?;
    let _one = s.deploys.lock().await;
    let (i, t) = seen(&s, &c, &p.tenant)?;
    check_number(&s, &body.number)?;
    if t.numbers.len() >= MAX_NUMBERS * 10 {
        return Err(conflict(format!(
            "tenant {} has {} numbers, the most one tenant may have",
            t.id,
            MAX_NUMBERS * 10
        )));
    }
    let row = NumberRow {
        number: body.number.clone(),
        tenant: t.id.to_string(),
        added_ms: now_ms(),
    };
    if !s.store.add_provisioned_number(&row).await? {
        return Err(conflict(format!("number {} is owned already", body.number)));
    }
    let _ = s.registry.change(i, |_, t| {
        t.numbers.push(body.number.clone());
        Ok::<(), ()>(())
    });
    audit(
        &s,
        &c,
        "tenants.number.add",
        &format!("tenant {} number {}", t.id, body.number),
    )
    .await?;
    reload(&s).await;
    Ok((
        StatusCode::CREATED,
        axum::Json(number_info(&s, &body.number)),
    ))
}

/// Takes a number given through the API from its tenant (platform
/// operators): calls to it get 404 from now on; calls in progress go on.
/// A number of the config file is taken out in the file.
#[utoipa::path(delete, path = "/v1/tenants/{tenant}/numbers/{number}", params(NumberPath),
    responses((status = 204, description = "Taken"), Problems))]
pub async fn remove_number(
    State(s): St,
    c: Caller,
    UrlPath(p): UrlPath<NumberPath>,
) -> Result<StatusCode, Problem> {
    require(&c, Permission::Provision)?;
    let _one = s.deploys.lock().await;
    let (i, t) = seen(&s, &c, &p.tenant)?;
    if !t.owns(&p.number) {
        return Err(Problem::not_found("this tenant has no such number"));
    }
    if !s.store.remove_provisioned_number(&t.id, &p.number).await? {
        return Err(conflict(format!(
            "number {} is given by the config file: take it out there",
            p.number
        )));
    }
    let key = p.number.trim_start_matches('+').to_owned();
    let _ = s.registry.change(i, |_, t| {
        t.numbers.retain(|n| n.trim_start_matches('+') != key);
        Ok::<(), ()>(())
    });
    audit(
        &s,
        &c,
        "tenants.number.remove",
        &format!("tenant {} number {}", t.id, p.number),
    )
    .await?;
    reload(&s).await;
    Ok(StatusCode::NO_CONTENT)
}
