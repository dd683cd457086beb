//! The API's routes and their OpenAPI description. Every `/v1/` handler
//! takes a checked [`Caller`], asks for a [`Permission`], and sees only
//! the caller's tenant: another tenant's call id answers exactly as an id
//! that does not exist, and a `tenant` parameter naming another tenant is
//! refused the same way whether that tenant exists or not.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{ConnectInfo, FromRequestParts, MatchedPath, Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, OpenApi, ToSchema};

use super::ApiState;
use super::auth::{self, Caller, Permission};
use super::problem::{ApiQuery, Problem};
use crate::metrics::live::LiveCall;

pub(super) type St = State<Arc<ApiState>>;

/// The OpenAPI document (3.1), generated from the handlers below.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Dhwani admin API",
        description = "Tenants, calls, agents, flows and the audit log of a Dhwani server. Every /v1/ path needs `Authorization: Bearer dhk_...` (a key from `dhwani apikeys add`); errors are RFC 9457 problem documents.",
        license(name = "Apache-2.0")
    ),
    paths(
        health, ready, metrics, whoami, super::tenants::list, super::tenants::get_one,
        super::tenants::create, super::tenants::change, super::tenants::numbers,
        super::tenants::add_number, super::tenants::remove_number, super::keys::list,
        super::keys::create, super::keys::revoke, live_calls, list_calls, call, agents,
        super::flows::check_flow, super::flows::list_flows, super::flows::deploy_flow,
        super::flows::remove_flow, super::flows::test_flow, audit_verify,
        super::recordings::list, super::recordings::audio,
        super::rights::list_holds, super::rights::place_hold, super::rights::lift_hold,
        super::rights::erase, super::rights::withdraw_consent, super::rights::export, super::rights::retention,
        super::rights::requests, super::rights::grievances,
        super::users::login, super::users::logout,
        super::centre::queues, super::centre::agent_state
    ),
    components(schemas(
        Problem, LiveCall, Health, Ready, WhoAmI, super::tenants::TenantInfo,
        super::tenants::NumberInfo, super::tenants::NewTenant, super::tenants::TenantChange,
        super::tenants::NewNumber, super::keys::ApiKeyInfo, super::keys::NewKey,
        super::keys::MadeKey, super::auth::Role, LiveCalls, CallPage,
        ApiCall, CallDetail, TimelineEvent, ApiAgent, super::flows::CheckFlow,
        super::flows::FlowCheck, super::flows::FlowDiagnostic, super::flows::LiveFlow,
        super::flows::DeployFlow, super::flows::Deployed, super::flows::TestFlow,
        super::flows::FlowTests, super::flows::CaseOutcome,
        AuditVerify, super::recordings::ApiRecording, super::rights::ApiHold,
        super::rights::PlaceHold, super::rights::HoldCovers, super::rights::Subject, super::rights::Erased, super::rights::Export, super::rights::Retention,
        super::rights::Withdrawn, super::rights::ApiRequest, super::rights::ApiGrievance,
        super::users::Login, super::users::Session, super::centre::QueueFigures,
        super::centre::StateChange, super::centre::AgentState, super::centre::StateAsked
    )),
    modifiers(&BearerAuth),
    security(("api_key" = []))
)]
pub struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("dhk_<id>_<secret>")
                    .build(),
            ),
        );
    }
}

/// The problems every `/v1/` path may answer with (RFC 9457 documents):
/// 400 bad input, 401 no valid key, 403 not this key's, 404 none such,
/// 408 too slow, 413 too large, 429 locked out after failed key checks.
pub struct Problems;

impl utoipa::IntoResponses for Problems {
    fn responses() -> std::collections::BTreeMap<
        String,
        utoipa::openapi::RefOr<utoipa::openapi::response::Response>,
    > {
        use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
        [
            ("400", "bad input: the field is named"),
            ("401", "no valid API key"),
            ("403", "the key's role or tenant may not"),
            ("404", "no such resource (or not this tenant's)"),
            (
                "408",
                "the request took longer than http.request_timeout_secs",
            ),
            ("413", "the body is larger than http.max_body_bytes"),
            ("415", "the body is not sent as application/json"),
            ("429", "this address failed too many key checks; try later"),
        ]
        .into_iter()
        .map(|(code, what)| {
            let content = ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("Problem")))
                .build();
            let r = ResponseBuilder::new()
                .description(what)
                .content("application/problem+json", content)
                .build();
            (code.to_owned(), r.into())
        })
        .collect()
    }
}

/// The router with every route, the body cap, the request timeout and
/// the request counter.
pub fn router(state: Arc<ApiState>) -> Router {
    let http = &state.config.http;
    let body_cap = http.max_body_bytes;
    let timeout = Duration::from_secs(http.request_timeout_secs);
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .route("/v1/whoami", get(whoami))
        .route("/v1/login", post(super::users::login))
        .route("/v1/logout", post(super::users::logout))
        .route(
            "/v1/tenants",
            get(super::tenants::list).post(super::tenants::create),
        )
        .route(
            "/v1/tenants/{tenant}",
            get(super::tenants::get_one).patch(super::tenants::change),
        )
        .route(
            "/v1/tenants/{tenant}/numbers",
            get(super::tenants::numbers).post(super::tenants::add_number),
        )
        .route("/v1/keys", get(super::keys::list).post(super::keys::create))
        .route(
            "/v1/keys/{key_id}",
            axum::routing::delete(super::keys::revoke),
        )
        .route(
            "/v1/tenants/{tenant}/numbers/{number}",
            axum::routing::delete(super::tenants::remove_number),
        )
        .route("/v1/calls/live", get(live_calls))
        .route("/v1/calls", get(list_calls))
        .route("/v1/calls/{id}", get(call))
        .route("/v1/agents", get(agents))
        .route(
            "/v1/agents/{extension}/state",
            post(super::centre::agent_state),
        )
        .route("/v1/queues", get(super::centre::queues))
        .route("/v1/flows/check", post(super::flows::check_flow))
        .route("/v1/flows/test", post(super::flows::test_flow))
        .route("/v1/flows", get(super::flows::list_flows))
        .route(
            "/v1/flows/{file}",
            axum::routing::put(super::flows::deploy_flow).delete(super::flows::remove_flow),
        )
        .route("/v1/audit/verify", get(audit_verify))
        .route("/v1/recordings", get(super::recordings::list))
        .route("/v1/recordings/{id}/audio", get(super::recordings::audio))
        .route(
            "/v1/holds",
            get(super::rights::list_holds).post(super::rights::place_hold),
        )
        .route(
            "/v1/holds/{id}",
            axum::routing::delete(super::rights::lift_hold),
        )
        .route("/v1/privacy/erase", post(super::rights::erase))
        .route("/v1/privacy/export", post(super::rights::export))
        .route("/v1/retention", get(super::rights::retention))
        .route(
            "/v1/privacy/withdraw-consent",
            post(super::rights::withdraw_consent),
        )
        .route("/v1/privacy/requests", get(super::rights::requests))
        .route("/v1/grievances", get(super::rights::grievances))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::extract::DefaultBodyLimit::max(body_cap))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            timeout,
        ))
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state),
            count_requests,
        ))
        .with_state(state)
}

async fn count_requests(
    State(state): St,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let res = next.run(req).await;
    state.metrics.http_request(&route, res.status().as_u16());
    res
}

async fn not_found() -> Problem {
    Problem::not_found("no such resource; the API's paths are listed at /openapi.json")
}

async fn method_not_allowed() -> Problem {
    Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "this path does not take that method; see /openapi.json",
    )
}

impl FromRequestParts<Arc<ApiState>> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &Arc<ApiState>,
    ) -> Result<Caller, Problem> {
        let ip = parts
            .extensions
            .get::<ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0.ip())
            .unwrap_or(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED));
        let now = Instant::now();
        if state.failures.locked(ip, now) {
            return Err(Problem::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too many failed API-key checks from this address; try again later",
            ));
        }
        let presented = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        let checked = match presented {
            Some(p) if p.starts_with("dhs_") => {
                super::users::session_caller(&state.store, p).await?
            }
            Some(p) => match auth::split_key(p) {
                Some((id, secret)) => state
                    .store
                    .api_key(id)
                    .await?
                    .and_then(|row| auth::matches(&row, secret)),
                None => None,
            },
            None => None,
        };
        match checked {
            Some(c) => Ok(c),
            // No key at all is no guess: 401, not counted.
            None if presented.is_none() => Err(Problem::unauthorized()),
            None => {
                let what = "a wrong or revoked key";
                match state.failures.fail(ip, now) {
                    auth::Failed::LockedOut => {
                        tracing::warn!(target: "security", event = "api_auth_lockout", source = %ip, lockout_secs = state.config.http.auth_lockout_secs, "address locked out of the admin API after repeated failed key checks");
                    }
                    auth::Failed::Counted => {
                        tracing::info!(target: "security", event = "api_auth_failure", source = %ip, what, "admin API request with {what}");
                    }
                }
                Err(Problem::unauthorized())
            }
        }
    }
}

pub(super) fn require(c: &Caller, p: Permission) -> Result<(), Problem> {
    if p.allowed(c.role) {
        Ok(())
    } else {
        Err(Problem::forbidden(format!(
            "a key of role {} may not do this",
            c.role.name()
        )))
    }
}

/// The tenant a request is about: the key's own, or for a platform
/// operator the `tenant` asked (None: every tenant).
pub(super) fn scope(c: &Caller, asked: Option<&str>) -> Result<Option<String>, Problem> {
    match (&c.tenant, asked) {
        (Some(own), None) => Ok(Some(own.clone())),
        (Some(own), Some(a)) if a == own => Ok(Some(own.clone())),
        (Some(own), Some(_)) => Err(Problem::forbidden(format!(
            "this key belongs to tenant {own} and sees no other"
        ))),
        (None, a) if c.role == auth::Role::PlatformOperator => Ok(a.map(str::to_owned)),
        (None, _) => Err(Problem::forbidden("this key belongs to no tenant")),
    }
}

/// Why callers' data is read, from the `Dhwani-Reason` header (kept in
/// the audit log with the read).
pub(super) fn reason(headers: &HeaderMap) -> Option<String> {
    headers
        .get("dhwani-reason")
        .and_then(|v| v.to_str().ok())
        .map(|s| s.chars().take(200).collect())
}

/// Paging through a list: at most `limit` items from `cursor` on.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// At most this many (1 to 500, default 100).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
    /// The `next_cursor` of the page before.
    #[param(pattern = "^[0-9]{1,9}$")]
    pub cursor: Option<String>,
}

/// One page of a list.
#[derive(Debug, Serialize, ToSchema)]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// Pass as `cursor` for the next page (none on the last).
    pub next_cursor: Option<String>,
}

/// The page `p` asks of `items`.
pub(super) fn paginate<T>(items: Vec<T>, p: &PageParams) -> Result<Page<T>, Problem> {
    let limit = p.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(Problem::bad_request("limit: must be 1 to 500"));
    }
    let from = match p.cursor.as_deref() {
        None => 0,
        Some(c) if (1..=9).contains(&c.len()) && c.bytes().all(|b| b.is_ascii_digit()) => {
            c.parse::<usize>().unwrap_or(usize::MAX)
        }
        Some(_) => {
            return Err(Problem::bad_request(
                "cursor: not a cursor this API gave (use next_cursor as it is)",
            ));
        }
    };
    let total = items.len();
    let end = from.saturating_add(limit as usize);
    let items: Vec<T> = items.into_iter().skip(from).take(limit as usize).collect();
    Ok(Page {
        items,
        next_cursor: (end < total).then(|| end.to_string()),
    })
}

/// `/health`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// Always `alive`.
    pub status: &'static str,
}

/// The process is alive.
#[utoipa::path(get, path = "/health", security(()), responses((status = 200, body = Health)))]
async fn health() -> axum::Json<Health> {
    axum::Json(Health { status: "alive" })
}

/// `/ready`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Ready {
    /// Takes calls now.
    pub ready: bool,
    /// The SIP transports are bound.
    pub transports_bound: bool,
    /// The store answered a query.
    pub store_reachable: bool,
    /// Shutting down (no new calls).
    pub draining: bool,
}

/// Ready for calls: transports bound, store reachable, not draining (503
/// otherwise, with the same body).
#[utoipa::path(get, path = "/ready", security(()), responses(
    (status = 200, body = Ready), (status = 503, body = Ready)))]
async fn ready(State(s): St) -> Response {
    let store_reachable = tokio::time::timeout(Duration::from_secs(2), s.store.ping())
        .await
        .is_ok_and(|r| r.is_ok());
    let r = Ready {
        transports_bound: s.transports_bound.load(Ordering::Relaxed),
        store_reachable,
        draining: s.draining.load(Ordering::Relaxed),
        ready: false,
    };
    let r = Ready {
        ready: r.transports_bound && r.store_reachable && !r.draining,
        ..r
    };
    let status = if r.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(r)).into_response()
}

/// Prometheus metrics (text exposition format).
#[utoipa::path(get, path = "/metrics", security(()), responses(
    (status = 200, content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8", body = String)))]
async fn metrics(State(s): St) -> Response {
    let text = s.metrics.encode();
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

async fn openapi() -> Response {
    match ApiDoc::openapi().to_json() {
        Ok(j) => ([(header::CONTENT_TYPE, "application/json")], j).into_response(),
        Err(e) => Problem::internal(e).into_response(),
    }
}

/// The key a request was made with.
#[derive(Debug, Serialize, ToSchema)]
pub struct WhoAmI {
    /// Its id (a session's id for a logged-in user).
    pub key_id: String,
    /// The user, for a session.
    pub user: Option<String>,
    /// Its tenant (none for a platform operator).
    pub tenant: Option<String>,
    /// Its role.
    pub role: String,
    /// May read recordings.
    pub recordings: bool,
}

/// Who this key is.
#[utoipa::path(get, path = "/v1/whoami", responses(
    (status = 200, body = WhoAmI), Problems))]
async fn whoami(c: Caller) -> axum::Json<WhoAmI> {
    axum::Json(WhoAmI {
        key_id: c.key_id.clone(),
        user: c.user.clone(),
        tenant: c.tenant.clone(),
        role: c.role.name().into(),
        recordings: c.recordings,
    })
}

/// `tenant` (platform operators only: one tenant, else all).
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct TenantParam {
    /// Only this tenant (a tenant key may name only its own).
    pub tenant: Option<String>,
}

/// Live calls.
#[derive(Debug, Serialize, ToSchema)]
pub struct LiveCalls {
    /// When this was read, ms since the epoch.
    pub now_ms: i64,
    /// The calls, oldest first.
    pub items: Vec<LiveCall>,
    /// Pass as `cursor` for the next page (none on the last).
    pub next_cursor: Option<String>,
}

/// Calls in progress: tenant, flow, current step, queue and agent (no
/// caller numbers).
#[utoipa::path(get, path = "/v1/calls/live", params(TenantParam, PageParams), responses(
    (status = 200, body = LiveCalls), Problems))]
async fn live_calls(
    State(s): St,
    c: Caller,
    ApiQuery(q): ApiQuery<TenantParam>,
    ApiQuery(page): ApiQuery<PageParams>,
) -> Result<axum::Json<LiveCalls>, Problem> {
    require(&c, Permission::LiveCalls)?;
    let tenant = scope(&c, q.tenant.as_deref())?;
    let p = paginate(s.metrics.live.list(tenant.as_deref()), &page)?;
    Ok(axum::Json(LiveCalls {
        now_ms: now_ms(),
        items: p.items,
        next_cursor: p.next_cursor,
    }))
}

pub(super) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A past or live call's CDR.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiCall {
    /// Our id.
    pub call_id: String,
    /// The SIP Call-ID.
    pub sip_call_id: String,
    /// Tenant.
    pub tenant: String,
    /// Flow name and version.
    pub flow: String,
    /// Flow version.
    pub flow_version: String,
    /// The caller's number (personal data: every read is audited).
    pub caller: String,
    /// The number dialled.
    pub called: String,
    /// INVITE, answer and end times, ms since the epoch.
    pub start_ms: i64,
    /// Answered at.
    pub answer_ms: Option<i64>,
    /// Ended at (none while live).
    pub end_ms: Option<i64>,
    /// Length, ms.
    pub duration_ms: Option<i64>,
    /// Who hung up: caller, dhwani, system.
    pub hangup_by: Option<String>,
    /// Why.
    pub hangup_cause: Option<String>,
    /// How the flow ended.
    pub outcome: Option<String>,
    /// The queue it came through.
    pub queue: Option<String>,
    /// The agent who took it.
    pub agent: Option<String>,
    /// Seconds waited in the queue, ms.
    pub wait_ms: Option<i64>,
    /// Talk time with the agent, ms.
    pub talk_ms: Option<i64>,
    /// The call's recording id.
    pub recording_id: Option<String>,
}

impl From<crate::store::CallRecord> for ApiCall {
    fn from(c: crate::store::CallRecord) -> ApiCall {
        ApiCall {
            call_id: c.call_id,
            sip_call_id: c.sip_call_id,
            tenant: c.tenant,
            flow: c.flow,
            flow_version: c.flow_version,
            caller: c.caller,
            called: c.called,
            start_ms: c.start_ms,
            answer_ms: c.answer_ms,
            end_ms: c.end_ms,
            duration_ms: c.duration_ms,
            hangup_by: c.hangup_by,
            hangup_cause: c.hangup_cause,
            outcome: c.outcome,
            queue: c.queue,
            agent: c.agent,
            wait_ms: c.wait_ms,
            talk_ms: c.talk_ms,
            recording_id: c.recording_id,
        }
    }
}

/// Paging through calls.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CallsParams {
    /// Only this tenant (a tenant key may name only its own).
    pub tenant: Option<String>,
    /// At most this many (1 to 500, default 50).
    #[param(minimum = 1, maximum = 500)]
    pub limit: Option<i64>,
    /// The `next_cursor` of the page before.
    #[param(pattern = "^[0-9]{1,18}_[0-9A-Za-z-]{1,64}$")]
    pub cursor: Option<String>,
    /// Only calls that started at or after this, ms since the epoch.
    pub since_ms: Option<i64>,
}

/// One page of calls, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct CallPage {
    /// The calls.
    pub items: Vec<ApiCall>,
    /// Pass as `cursor` for the next page (none on the last).
    pub next_cursor: Option<String>,
}

/// A cursor: the last call of a page, `START-MS_CALL-ID`.
fn parse_cursor(s: &str) -> Option<(i64, String)> {
    let (ms, id) = s.split_once('_')?;
    let ok = (1..=18).contains(&ms.len())
        && ms.bytes().all(|b| b.is_ascii_digit())
        && (1..=64).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    ok.then(|| Some((ms.parse().ok()?, id.to_owned())))
        .flatten()
}

fn make_cursor(ms: i64, id: &str) -> String {
    format!("{ms}_{id}")
}

/// Past and live calls' CDRs, newest first (audited: the `Dhwani-Reason`
/// header is kept with the read).
#[utoipa::path(get, path = "/v1/calls", params(CallsParams,
    ("Dhwani-Reason" = Option<String>, Header, description = "why the data is read (kept in the audit log)")),
    responses((status = 200, body = CallPage), Problems))]
async fn list_calls(
    State(s): St,
    c: Caller,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<CallsParams>,
) -> Result<axum::Json<CallPage>, Problem> {
    require(&c, Permission::ReadCalls)?;
    let tenant = scope(&c, q.tenant.as_deref())?;
    let limit = q.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(Problem::bad_request("limit: must be 1 to 500"));
    }
    let before = match q.cursor.as_deref() {
        Some(cur) => Some(parse_cursor(cur).ok_or_else(|| {
            Problem::bad_request("cursor: not a cursor this API gave (use next_cursor as it is)")
        })?),
        None => None,
    };
    let calls = s
        .store
        .list_calls(&crate::store::CallFilter {
            tenant: tenant.clone(),
            caller: None,
            since_ms: q.since_ms,
            limit: limit + 1,
            before,
        })
        .await?;
    let more = calls.len() as i64 > limit;
    let calls: Vec<_> = calls.into_iter().take(limit as usize).collect();
    let what = format!(
        "tenant {} limit {limit}",
        tenant.as_deref().unwrap_or("any")
    );
    crate::privacy::audit_read_by(
        &c.actor(),
        &s.store,
        &s.config,
        ("api.calls.list", &what),
        &calls,
        reason(&headers).as_deref(),
    )
    .await?;
    let next_cursor = more
        .then(|| calls.last().map(|l| make_cursor(l.start_ms, &l.call_id)))
        .flatten();
    Ok(axum::Json(CallPage {
        items: calls.into_iter().map(ApiCall::from).collect(),
        next_cursor,
    }))
}

/// One timeline event.
#[derive(Debug, Serialize, ToSchema)]
pub struct TimelineEvent {
    /// Order within the call.
    pub seq: i64,
    /// When, ms since the epoch.
    pub at_ms: i64,
    /// When, ms since the call started.
    pub offset_ms: i64,
    /// The flow step.
    pub step: String,
    /// What: step, prompt, digits, branch, dtmf, sip, queue, ...
    pub kind: String,
    /// Details (a JSON object).
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
}

/// A call with its timeline.
#[derive(Debug, Serialize, ToSchema)]
pub struct CallDetail {
    /// The CDR.
    pub call: ApiCall,
    /// Live now: its step, queue and agent.
    pub live: Option<LiveCall>,
    /// Every event, in order.
    pub timeline: Vec<TimelineEvent>,
}

/// One call's CDR and timeline (audited, like `/v1/calls`).
#[utoipa::path(get, path = "/v1/calls/{id}", params(
    ("id" = String, Path, description = "our call id or its SIP Call-ID"),
    ("Dhwani-Reason" = Option<String>, Header, description = "why the data is read")),
    responses((status = 200, body = CallDetail), Problems))]
async fn call(
    State(s): St,
    c: Caller,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
) -> Result<axum::Json<CallDetail>, Problem> {
    require(&c, Permission::ReadCalls)?;
    let missing = || Problem::not_found("no such call");
    if id.len() > 256 {
        return Err(missing());
    }
    let found = s.store.call(&id).await?.filter(|r| c.sees(&r.tenant));
    let Some(record) = found else {
        return Err(missing());
    };
    crate::privacy::audit_read_by(
        &c.actor(),
        &s.store,
        &s.config,
        ("api.calls.show", "one call"),
        std::slice::from_ref(&record),
        reason(&headers).as_deref(),
    )
    .await?;
    let events = s.store.events(&record.call_id).await?;
    let live = s.metrics.live.get(&record.call_id);
    Ok(axum::Json(CallDetail {
        call: ApiCall::from(record),
        live,
        timeline: events
            .into_iter()
            .map(|e| TimelineEvent {
                seq: e.seq,
                at_ms: e.at_ms,
                offset_ms: e.offset_ms,
                step: e.step,
                kind: e.kind,
                detail: serde_json::from_str(&e.detail)
                    .unwrap_or(serde_json::Value::String(e.detail)),
            })
            .collect(),
    }))
}

/// An agent (never its credentials).
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiAgent {
    /// Tenant.
    pub tenant: String,
    /// Extension.
    pub extension: String,
    /// Display name.
    pub name: String,
    /// Skills, as stored (`NAME:LEVEL,...`).
    pub skills: String,
    /// May listen, whisper and barge.
    pub supervisor: bool,
    /// The last state recorded (available, paused, ...), and why.
    pub state: Option<String>,
    /// The reason of that state.
    pub reason: Option<String>,
    /// When it changed, ms since the epoch.
    pub since_ms: Option<i64>,
}

/// Agents of the CLI's and API's directory (`dhwani agents add`), with
/// their last recorded state.
#[utoipa::path(get, path = "/v1/agents", params(super::routes::PageParams, TenantParam), responses(
    (status = 200, body = super::routes::Page<ApiAgent>), Problems))]
async fn agents(
    State(s): St,
    c: Caller,
    ApiQuery(q): ApiQuery<TenantParam>,
    super::problem::ApiQuery(page): super::problem::ApiQuery<super::routes::PageParams>,
) -> Result<axum::Json<super::routes::Page<ApiAgent>>, Problem> {
    require(&c, Permission::Agents)?;
    let tenant = scope(&c, q.tenant.as_deref())?;
    let rows = s.store.agents(tenant.as_deref()).await?;
    let states = s.store.latest_agent_events(tenant.as_deref()).await?;
    Ok(axum::Json(super::routes::paginate(
        rows.into_iter()
            .filter(|a| c.sees(&a.tenant))
            .map(|a| {
                let st = states
                    .iter()
                    .find(|e| e.tenant == a.tenant && e.extension == a.extension);
                ApiAgent {
                    state: st.map(|e| e.to_state.clone()),
                    reason: st.map(|e| e.reason.clone()).filter(|r| !r.is_empty()),
                    since_ms: st.map(|e| e.at_ms),
                    tenant: a.tenant,
                    extension: a.extension,
                    name: a.name,
                    skills: a.skills,
                    supervisor: a.supervisor,
                }
            })
            .collect(),
        &page,
    )?))
}

/// The audit log's verification.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditVerify {
    /// The chain and its anchor hold.
    pub ok: bool,
    /// Entries checked.
    pub entries: Option<u64>,
    /// What is broken.
    pub broken: Option<String>,
}

/// Verifies the hash-chained audit log (as `dhwani privacy audit verify`).
#[utoipa::path(get, path = "/v1/audit/verify", responses(
    (status = 200, body = AuditVerify), Problems))]
async fn audit_verify(State(s): St, c: Caller) -> Result<axum::Json<AuditVerify>, Problem> {
    require(&c, Permission::Audit)?;
    let dir = s.config.data_dir.clone();
    let r = tokio::task::spawn_blocking(move || crate::privacy::Audit::new(&dir).verify())
        .await
        .map_err(Problem::internal)??;
    Ok(axum::Json(match r {
        Ok(n) => AuditVerify {
            ok: true,
            entries: Some(n),
            broken: None,
        },
        Err(b) => AuditVerify {
            ok: false,
            entries: None,
            broken: Some(b.to_string()),
        },
    }))
}
