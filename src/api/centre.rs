//! The contact centre over the API: each queue's figures (read from the
//! store's timelines, so every node's calls count, as `dhwani queues
//! show`), and agent state changes (log in, log out, pause with a reason,
//! unpause), queued in the store for every node to apply within a second,
//! as `dhwani agents state` does.

use axum::extract::Path as UrlPath;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::{Caller, Permission};
use super::problem::{ApiJson, ApiQuery, Problem};
use super::routes::{Problems, St, now_ms, require, scope};

/// One queue's figures.
#[derive(Debug, Serialize, ToSchema)]
pub struct QueueFigures {
    /// Tenant.
    pub tenant: String,
    /// The queue.
    pub queue: String,
    /// Callers in it now.
    pub waiting: u64,
    /// The longest of their waits, seconds.
    pub longest_wait_secs: f64,
    /// Callers who reached an agent.
    pub answered: u64,
    /// Of them, within the queue's service level.
    pub answered_in_service_level: u64,
    /// Callers who hung up while waiting.
    pub abandoned: u64,
    /// Callers sent to `on overflow`.
    pub overflowed: u64,
    /// Callers who left with a key.
    pub left_by_key: u64,
    /// Mean wait of the answered, seconds.
    pub mean_wait_secs: f64,
    /// Answered in the service level / (answered + abandoned), percent.
    pub service_level_pct: f64,
}

/// Which queues, since when.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct QueueParams {
    /// Only this tenant (a tenant key may name only its own).
    pub tenant: Option<String>,
    /// Calls since, ms since the epoch (default: the last 24 hours).
    pub since_ms: Option<i64>,
}

/// Each queue's figures (configured queues with no calls too).
#[utoipa::path(get, path = "/v1/queues", params(super::routes::PageParams, QueueParams), responses(
    (status = 200, body = super::routes::Page<QueueFigures>), Problems))]
pub async fn queues(
    axum::extract::State(s): St,
    c: Caller,
    ApiQuery(q): ApiQuery<QueueParams>,
    super::problem::ApiQuery(page): super::problem::ApiQuery<super::routes::PageParams>,
) -> Result<axum::Json<super::routes::Page<QueueFigures>>, Problem> {
    require(&c, Permission::Agents)?;
    let tenant = scope(&c, q.tenant.as_deref())?;
    let now = now_ms();
    let since = q.since_ms.unwrap_or(now - 24 * 3600 * 1000);
    let mut out = Vec::new();
    for t in &s.config.tenants {
        if !c.sees(&t.id) || tenant.as_ref().is_some_and(|x| *x != t.id) {
            continue;
        }
        let rows = s.store.queue_events(&t.id, since).await?;
        let level = |name: &str| {
            t.queues
                .iter()
                .find(|q| q.name == name)
                .map_or(20, |q| q.service_level_secs)
        };
        let mut all = crate::store::agents::figures(&rows, now, level);
        for q in &t.queues {
            all.entry(q.name.clone()).or_default();
        }
        for (name, f) in all {
            out.push(QueueFigures {
                tenant: t.id.clone(),
                queue: name,
                waiting: f.waiting,
                longest_wait_secs: f.longest_wait_secs,
                answered: f.answered,
                answered_in_service_level: f.answered_in_service_level,
                abandoned: f.abandoned,
                overflowed: f.overflowed,
                left_by_key: f.left_by_key,
                mean_wait_secs: f.mean_wait_secs,
                service_level_pct: f.service_level_pct,
            });
        }
    }
    Ok(axum::Json(super::routes::paginate(out, &page)?))
}

/// A state change.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum StateChange {
    /// Log in (available once the phone is registered).
    Login,
    /// Log out.
    Logout,
    /// Pause (with a reason).
    Pause,
    /// Unpause.
    Unpause,
}

/// An agent state change to ask.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentState {
    /// What.
    pub state: StateChange,
    /// Why (shown in `dhwani agents list` and the agent's events).
    #[schema(max_length = 200)]
    pub reason: Option<String>,
    /// The tenant (platform operators only).
    pub tenant: Option<String>,
}

/// The agent's extension in a path.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct Extension {
    /// The agent's extension.
    #[param(pattern = "^[0-9]{2,16}$")]
    pub extension: String,
}

/// The change asked (applied by every node within a second).
#[derive(Debug, Serialize, ToSchema)]
pub struct StateAsked {
    /// Tenant.
    pub tenant: String,
    /// The agent.
    pub extension: String,
    /// `login`, `logout`, `pause`, `unpause`.
    pub state: &'static str,
}

/// Changes an agent's state: every node applies it within a second.
#[utoipa::path(post, path = "/v1/agents/{extension}/state", params(Extension),
    request_body = AgentState, responses((status = 202, body = StateAsked), Problems))]
pub async fn agent_state(
    axum::extract::State(s): St,
    c: Caller,
    UrlPath(Extension { extension }): UrlPath<Extension>,
    ApiJson(body): ApiJson<AgentState>,
) -> Result<(axum::http::StatusCode, axum::Json<StateAsked>), Problem> {
    require(&c, Permission::AgentState)?;
    let tenant = scope(&c, body.tenant.as_deref())?
        .ok_or_else(|| Problem::bad_request("tenant: name the tenant"))?;
    let member = s
        .config
        .tenants
        .iter()
        .filter(|t| t.id == tenant)
        .any(|t| t.queues.iter().any(|q| q.members.contains(&extension)));
    if !member {
        return Err(Problem::not_found("no such agent in this tenant's queues"));
    }
    let state = match body.state {
        StateChange::Login => "login",
        StateChange::Logout => "logout",
        StateChange::Pause => "pause",
        StateChange::Unpause => "unpause",
    };
    let reason: String = body.reason.unwrap_or_default().chars().take(200).collect();
    let reason = if reason.trim().is_empty() && state == "pause" {
        format!("paused by {}", c.actor())
    } else {
        reason
    };
    crate::privacy::Audit::new(&s.config.data_dir)
        .append_async(
            &c.actor(),
            "agents.state",
            &format!("tenant {tenant} agent {extension} {state}"),
        )
        .await?;
    s.store
        .put_agent_command(&crate::store::agents::AgentCommandRow {
            tenant: tenant.clone(),
            extension: extension.clone(),
            command: state.into(),
            reason,
            at_ms: now_ms(),
            id: String::new(),
            origin: "api".into(),
        })
        .await?;
    Ok((
        axum::http::StatusCode::ACCEPTED,
        axum::Json(StateAsked {
            tenant,
            extension,
            state,
        }),
    ))
}
