//! The privacy paths: legal holds (list, place, lift), a caller's rights
//! that need no files (erasure, consent withdrawal), and the lists of
//! privacy requests and grievances. Each change is an audit-log entry
//! naming the key, written before the answer; numbers are never echoed
//! back or logged, only their pseudonyms.

use axum::extract::Path as UrlPath;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::{Caller, Permission};
use super::problem::{ApiJson, ApiQuery, Problem};
use super::routes::{Problems, St, now_ms, require, scope};
use crate::privacy::{Audit, pseudonyms};

/// A legal hold.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiHold {
    /// Id (`hold-...`).
    pub hold_id: String,
    /// Tenant.
    pub tenant: String,
    /// `call`, `number` or `tenant`.
    pub scope: String,
    /// The call id, or the number's pseudonyms, or empty.
    pub target: String,
    /// Why.
    pub reason: String,
    /// Placed, ms since the epoch.
    pub placed_ms: i64,
}

/// A hold to place.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PlaceHold {
    /// The tenant (platform operators only).
    pub tenant: Option<String>,
    /// What it covers.
    pub covers: HoldCovers,
    /// Why (a case, an order).
    #[schema(min_length = 1, max_length = 500, pattern = "\\S")]
    pub reason: String,
}

/// What a hold covers.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(tag = "scope", rename_all = "lowercase")]
pub enum HoldCovers {
    /// One call.
    Call {
        /// Its id.
        call_id: String,
    },
    /// Every call from a number (stored by pseudonym).
    Number {
        /// The number.
        #[schema(pattern = "^\\+?[0-9]{1,32}$")]
        number: String,
    },
    /// Everything of the tenant.
    Tenant,
}

/// `tenant` and whether to list open items only.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Only this tenant (a tenant key may name only its own).
    pub tenant: Option<String>,
    /// Only those still open.
    pub open: Option<bool>,
}

fn tenant_known(s: &super::ApiState, tenant: &str) -> Result<(), Problem> {
    if s.registry.index_of(tenant).is_some() {
        Ok(())
    } else {
        Err(Problem::forbidden(format!(
            "this key sees no tenant {tenant}"
        )))
    }
}

/// A tenant for a change: the key's own, or the one a platform operator
/// names (required then).
fn one_tenant(s: &super::ApiState, c: &Caller, asked: Option<&str>) -> Result<String, Problem> {
    let t = scope(c, asked)?.ok_or_else(|| Problem::bad_request("tenant: name the tenant"))?;
    tenant_known(s, &t)?;
    Ok(t)
}

fn valid_number(n: &str) -> Result<(), Problem> {
    let digits = n.strip_prefix('+').unwrap_or(n);
    if (1..=32).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(Problem::bad_request(
            "number: digits with an optional leading + (at most 32)",
        ))
    }
}

/// Standing holds of the tenants this key sees.
#[utoipa::path(get, path = "/v1/holds", params(super::routes::PageParams, ListParams), responses(
    (status = 200, body = super::routes::Page<ApiHold>), Problems))]
pub async fn list_holds(
    axum::extract::State(s): St,
    c: Caller,
    ApiQuery(q): ApiQuery<ListParams>,
    super::problem::ApiQuery(page): super::problem::ApiQuery<super::routes::PageParams>,
) -> Result<axum::Json<super::routes::Page<ApiHold>>, Problem> {
    require(&c, Permission::Audit)?;
    let tenant = scope(&c, q.tenant.as_deref())?;
    let holds = s.store.holds().await?;
    Ok(axum::Json(super::routes::paginate(
        holds
            .into_iter()
            .filter(|h| c.sees(&h.tenant) && tenant.as_ref().is_none_or(|t| *t == h.tenant))
            .map(|h| ApiHold {
                hold_id: h.hold_id,
                tenant: h.tenant,
                scope: h.scope,
                target: h.target,
                reason: h.reason,
                placed_ms: h.placed_ms,
            })
            .collect(),
        &page,
    )?))
}

/// Places a legal hold: what it covers is kept past its retention and
/// through erasures until the hold is lifted.
#[utoipa::path(post, path = "/v1/holds", request_body = PlaceHold, responses(
    (status = 201, body = ApiHold), Problems))]
pub async fn place_hold(
    axum::extract::State(s): St,
    c: Caller,
    ApiJson(body): ApiJson<PlaceHold>,
) -> Result<(axum::http::StatusCode, axum::Json<ApiHold>), Problem> {
    require(&c, Permission::Holds)?;
    let tenant = one_tenant(&s, &c, body.tenant.as_deref())?;
    let reason = body.reason.trim();
    if reason.is_empty() || reason.chars().count() > 500 {
        return Err(Problem::bad_request(
            "reason: say why (1 to 500 characters)",
        ));
    }
    let (scope, target, subject) = match &body.covers {
        HoldCovers::Call { call_id: id } => {
            // Only a call of this tenant.
            let call = s.store.call(id).await?.filter(|r| r.tenant == tenant);
            let Some(call) = call else {
                return Err(Problem::not_found("no such call"));
            };
            (
                "call",
                call.call_id.clone(),
                format!("call {}", call.call_id),
            )
        }
        HoldCovers::Number { number: n } => {
            valid_number(n)?;
            let key = pseudonyms::current(&s.store, &s.config.data_dir, &tenant).await?;
            (
                "number",
                key.all(n).join(","),
                format!("number {}", key.pseudonym(n)),
            )
        }
        HoldCovers::Tenant => ("tenant", String::new(), "tenant".to_owned()),
    };
    let row = crate::store::HoldRow {
        hold_id: format!("hold-{:08x}", rand::random::<u32>()),
        tenant: tenant.clone(),
        scope: scope.into(),
        target,
        reason: reason.to_owned(),
        placed_ms: now_ms(),
    };
    Audit::new(&s.config.data_dir)
        .append_async(
            &c.actor(),
            "hold.place",
            &format!("{} tenant {tenant} {subject}", row.hold_id),
        )
        .await?;
    s.store.place_hold(&row).await?;
    Ok((
        axum::http::StatusCode::CREATED,
        axum::Json(ApiHold {
            hold_id: row.hold_id,
            tenant: row.tenant,
            scope: row.scope,
            target: row.target,
            reason: row.reason,
            placed_ms: row.placed_ms,
        }),
    ))
}

/// Lifts a hold.
#[utoipa::path(delete, path = "/v1/holds/{id}", params(("id" = String, Path, description = "the hold's id")),
    responses((status = 204), Problems))]
pub async fn lift_hold(
    axum::extract::State(s): St,
    c: Caller,
    UrlPath(id): UrlPath<String>,
) -> Result<axum::http::StatusCode, Problem> {
    require(&c, Permission::Holds)?;
    let missing = || Problem::not_found("no standing hold with that id");
    let holds = s.store.holds().await?;
    let Some(h) = holds.iter().find(|h| h.hold_id == id && c.sees(&h.tenant)) else {
        return Err(missing());
    };
    Audit::new(&s.config.data_dir)
        .append_async(&c.actor(), "hold.lift", &h.hold_id)
        .await?;
    if s.store.lift_hold(&h.hold_id).await? {
        Ok(axum::http::StatusCode::NO_CONTENT)
    } else {
        Err(missing())
    }
}

/// A caller, by number.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Subject {
    /// The tenant (platform operators only).
    pub tenant: Option<String>,
    /// The caller's number.
    #[schema(pattern = "^\\+?[0-9]{1,32}$")]
    pub number: String,
}

/// Everything the tenant holds about a caller.
#[derive(Debug, Serialize, ToSchema)]
pub struct Export {
    /// The caller's pseudonym at the tenant.
    pub subject: String,
    /// The document: per call its CDR, timeline, webhook events and
    /// recording ids.
    #[schema(value_type = Object)]
    pub export: serde_json::Value,
}

/// The caller's data (DPDP Act §11, the right of access), as JSON: every
/// call's CDR and timeline, its webhook events, its recordings' ids (read
/// them through `/v1/recordings/{id}/audio`). Audited with the reason.
#[utoipa::path(post, path = "/v1/privacy/export", request_body = Subject, params(
    ("Dhwani-Reason" = Option<String>, Header, description = "why (kept in the audit log)")),
    responses((status = 200, body = Export), Problems))]
pub async fn export(
    axum::extract::State(s): St,
    c: Caller,
    headers: axum::http::HeaderMap,
    ApiJson(body): ApiJson<Subject>,
) -> Result<axum::Json<Export>, Problem> {
    require(&c, Permission::Rights)?;
    let tenant = one_tenant(&s, &c, body.tenant.as_deref())?;
    valid_number(&body.number)?;
    let key = pseudonyms::current(&s.store, &s.config.data_dir, &tenant).await?;
    let subject = key.pseudonym(&body.number);
    let doc = crate::privacy::export_json(&s.store, &s.config, &tenant, &body.number).await?;
    let calls = doc["calls"].as_array().map_or(0, Vec::len);
    Audit::new(&s.config.data_dir)
        .append_async(
            &c.actor(),
            "privacy.export",
            &format!(
                "tenant {tenant} number {subject}; {calls} calls; reason: {}",
                super::routes::reason(&headers)
                    .as_deref()
                    .unwrap_or("none given")
            ),
        )
        .await?;
    Ok(axum::Json(Export {
        subject,
        export: doc,
    }))
}

/// What an erasure did and kept.
#[derive(Debug, Serialize, ToSchema)]
pub struct Erased {
    /// The caller's pseudonym at the tenant (never the number).
    pub subject: String,
    /// The report: calls erased, events deleted, recordings and call keys
    /// shredded, CDRs pseudonymised, calls kept under a hold, whether the
    /// database keeps copies.
    #[schema(value_type = Object)]
    pub erased: serde_json::Value,
}

/// Erases what the tenant holds about a number (DPDP Act §12): its
/// calls' recordings and data keys are destroyed, timelines deleted,
/// CDRs kept with the number pseudonymised; held calls are kept whole.
#[utoipa::path(post, path = "/v1/privacy/erase", request_body = Subject, responses(
    (status = 200, body = Erased), Problems))]
pub async fn erase(
    axum::extract::State(s): St,
    c: Caller,
    ApiJson(body): ApiJson<Subject>,
) -> Result<axum::Json<Erased>, Problem> {
    require(&c, Permission::Rights)?;
    let tenant = one_tenant(&s, &c, body.tenant.as_deref())?;
    valid_number(&body.number)?;
    let key = pseudonyms::current(&s.store, &s.config.data_dir, &tenant).await?;
    let subject = key.pseudonym(&body.number);
    let r = crate::privacy::erase(&s.store, &s.config, &tenant, &body.number).await?;
    Audit::new(&s.config.data_dir)
        .append_async(
            &c.actor(),
            "privacy.erase",
            &format!("tenant {tenant} number {subject}"),
        )
        .await?;
    Ok(axum::Json(Erased {
        subject,
        erased: serde_json::to_value(&r).map_err(Problem::internal)?,
    }))
}

/// A consent withdrawal registered.
#[derive(Debug, Serialize, ToSchema)]
pub struct Withdrawn {
    /// The caller's pseudonym at the tenant.
    pub subject: String,
    /// When, ms since the epoch.
    pub at_ms: i64,
}

/// Registers a number's withdrawal of recording consent: later calls from
/// it to the tenant are not recorded.
#[utoipa::path(post, path = "/v1/privacy/withdraw-consent", request_body = Subject, responses(
    (status = 200, body = Withdrawn), Problems))]
pub async fn withdraw_consent(
    axum::extract::State(s): St,
    c: Caller,
    ApiJson(body): ApiJson<Subject>,
) -> Result<axum::Json<Withdrawn>, Problem> {
    require(&c, Permission::Rights)?;
    let tenant = one_tenant(&s, &c, body.tenant.as_deref())?;
    valid_number(&body.number)?;
    let key = pseudonyms::current(&s.store, &s.config.data_dir, &tenant).await?;
    let subject = key.pseudonym(&body.number);
    let at_ms = now_ms();
    s.store.withdraw_consent(&tenant, &subject, at_ms).await?;
    Audit::new(&s.config.data_dir)
        .append_async(
            &c.actor(),
            "consent.withdraw",
            &format!("tenant {tenant} number {subject}"),
        )
        .await?;
    Ok(axum::Json(Withdrawn { subject, at_ms }))
}

/// A data principal's request (as `dhwani privacy requests list`).
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiRequest {
    /// `R` + 8 digits.
    pub request_id: String,
    /// Tenant.
    pub tenant: String,
    /// `access`, `correction`, `erasure`, `consent-withdrawal`, `nomination`.
    pub kind: String,
    /// The caller, by pseudonym.
    pub subject: String,
    /// The nominee who made it, by pseudonym (empty: the caller).
    pub nominee: String,
    /// Opened, ms since the epoch.
    pub opened_ms: i64,
    /// Due (30 days after).
    pub due_ms: i64,
    /// Closed.
    pub closed_ms: Option<i64>,
    /// What was done.
    pub outcome: Option<String>,
}

/// Privacy requests, oldest first.
#[utoipa::path(get, path = "/v1/privacy/requests", params(super::routes::PageParams, ListParams), responses(
    (status = 200, body = super::routes::Page<ApiRequest>), Problems))]
pub async fn requests(
    axum::extract::State(s): St,
    c: Caller,
    ApiQuery(q): ApiQuery<ListParams>,
    super::problem::ApiQuery(page): super::problem::ApiQuery<super::routes::PageParams>,
) -> Result<axum::Json<super::routes::Page<ApiRequest>>, Problem> {
    require(&c, Permission::Audit)?;
    let tenant = scope(&c, q.tenant.as_deref())?;
    let rows = s
        .store
        .requests(tenant.as_deref(), q.open.unwrap_or(false))
        .await?;
    Ok(axum::Json(super::routes::paginate(
        rows.into_iter()
            .filter(|r| c.sees(&r.tenant))
            .map(|r| ApiRequest {
                request_id: r.request_id,
                tenant: r.tenant,
                kind: r.kind,
                subject: r.subject,
                nominee: r.nominee,
                opened_ms: r.opened_ms,
                due_ms: r.due_ms,
                closed_ms: r.closed_ms,
                outcome: r.outcome,
            })
            .collect(),
        &page,
    )?))
}

/// A grievance (as `dhwani grievance list`).
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiGrievance {
    /// `G` + 8 digits.
    pub grievance_id: String,
    /// Tenant.
    pub tenant: String,
    /// The caller, by pseudonym (empty: not known).
    pub subject: String,
    /// Its category.
    pub category: String,
    /// `phone` or `cli`.
    pub channel: String,
    /// The call it was lodged in.
    pub call_id: Option<String>,
    /// The message the caller left.
    pub recording_id: Option<String>,
    /// Opened, ms since the epoch.
    pub opened_ms: i64,
    /// Acknowledgement due (24 h).
    pub ack_due_ms: i64,
    /// Acknowledged.
    pub acked_ms: Option<i64>,
    /// Resolution due (30 days).
    pub resolve_due_ms: i64,
    /// Resolved.
    pub resolved_ms: Option<i64>,
    /// How.
    pub resolution: Option<String>,
}

/// Grievances, oldest first.
#[utoipa::path(get, path = "/v1/grievances", params(super::routes::PageParams, ListParams), responses(
    (status = 200, body = super::routes::Page<ApiGrievance>), Problems))]
pub async fn grievances(
    axum::extract::State(s): St,
    c: Caller,
    ApiQuery(q): ApiQuery<ListParams>,
    super::problem::ApiQuery(page): super::problem::ApiQuery<super::routes::PageParams>,
) -> Result<axum::Json<super::routes::Page<ApiGrievance>>, Problem> {
    require(&c, Permission::Audit)?;
    let tenant = scope(&c, q.tenant.as_deref())?;
    let rows = s
        .store
        .grievances(tenant.as_deref(), q.open.unwrap_or(false))
        .await?;
    Ok(axum::Json(super::routes::paginate(
        rows.into_iter()
            .filter(|g| c.sees(&g.tenant))
            .map(|g| ApiGrievance {
                grievance_id: g.grievance_id,
                tenant: g.tenant,
                subject: g.subject,
                category: g.category,
                channel: g.channel,
                call_id: g.call_id,
                recording_id: g.recording_id,
                opened_ms: g.opened_ms,
                ack_due_ms: g.ack_due_ms,
                acked_ms: g.acked_ms,
                resolve_due_ms: g.resolve_due_ms,
                resolved_ms: g.resolved_ms,
                resolution: g.resolution,
            })
            .collect(),
        &page,
    )?))
}

/// A tenant's retention periods.
#[derive(Debug, Serialize, ToSchema)]
pub struct Retention {
    /// Tenant.
    pub tenant: String,
    /// Call recordings are crypto-shredded after this many days.
    pub recordings_days: u64,
    /// Timelines (interaction logs) are deleted after this many days
    /// (TRAI/DoT: 180 to 365); the CDR's number is pseudonymised then.
    pub interaction_log_days: u64,
    /// CDRs are deleted after this many days.
    pub cdr_days: u64,
    /// Standing legal holds that keep data past these.
    pub holds: usize,
}

/// The retention periods of the tenants this key sees (from the config;
/// the server applies them hourly).
#[utoipa::path(get, path = "/v1/retention", params(super::routes::PageParams, ListParams), responses(
    (status = 200, body = super::routes::Page<Retention>), Problems))]
pub async fn retention(
    axum::extract::State(s): St,
    c: Caller,
    ApiQuery(q): ApiQuery<ListParams>,
    super::problem::ApiQuery(page): super::problem::ApiQuery<super::routes::PageParams>,
) -> Result<axum::Json<super::routes::Page<Retention>>, Problem> {
    require(&c, Permission::Audit)?;
    let tenant = scope(&c, q.tenant.as_deref())?;
    let holds = s.store.holds().await?;
    Ok(axum::Json(super::routes::paginate(
        s.registry
            .tenants()
            .iter()
            .filter(|t| c.sees(&t.id) && tenant.as_ref().is_none_or(|x| **x == *t.id))
            .map(|t| {
                // A tenant made through the API keeps the default policy.
                let r = s
                    .config
                    .tenants
                    .iter()
                    .find(|c| *c.id == *t.id)
                    .map(|c| c.retention)
                    .unwrap_or_default();
                Retention {
                    tenant: t.id.to_string(),
                    recordings_days: r.recordings_days,
                    interaction_log_days: r.interaction_log_days,
                    cdr_days: r.cdr_days,
                    holds: holds.iter().filter(|h| *h.tenant == *t.id).count(),
                }
            })
            .collect(),
        &page,
    )?))
}
