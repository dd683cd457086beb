//! Flows over the API: check a flow's text (the checker's diagnostics as
//! JSON), run its `.ivrtest` cases in the simulator, list the live flows,
//! deploy one (checked, written atomically into the tenant's flows
//! directory, loaded; refused and rolled back if the load refuses it),
//! and remove one. Includes are read only from inside the tenant's flows
//! directory. Deploys and removals are audit-log entries.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::extract::Path as UrlPath;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::{Caller, Permission};
use super::problem::{ApiJson, Problem};
use super::routes::{Problems, St, require, scope};

/// A flow to check.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CheckFlow {
    /// The file name it would have (`support.ivr`); includes are looked
    /// up next to it in the tenant's flows directory.
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = "^[^./\\\\\\x00][^/\\\\\\x00]*$"
    )]
    pub name: String,
    /// Its text.
    pub source: String,
    /// The tenant (platform operators only; a tenant key checks against
    /// its own).
    pub tenant: Option<String>,
}

/// One finding.
#[derive(Debug, Serialize, ToSchema)]
pub struct FlowDiagnostic {
    /// `error` or `warning`.
    pub severity: &'static str,
    /// Stable code (`E012`; `M001` for media, `W100` for a queue or
    /// feature the tenant lacks).
    pub code: String,
    /// What is wrong.
    pub message: String,
    /// `file:line:column`.
    pub location: String,
    /// Line, from 1.
    pub line: usize,
    /// Column, from 1.
    pub column: usize,
    /// How to fix it.
    pub hint: Option<String>,
}

/// The checker's verdict.
#[derive(Debug, Serialize, ToSchema)]
pub struct FlowCheck {
    /// No errors: the flow would load.
    pub ok: bool,
    /// The flow's name.
    pub flow: Option<String>,
    /// Its version (content hash).
    pub version: Option<String>,
    /// Errors and warnings, in order.
    pub diagnostics: Vec<FlowDiagnostic>,
}

/// Reads includes only from inside one directory (a tenant's flows).
struct Confined {
    root: PathBuf,
}

impl Confined {
    fn inside(&self, p: &Path) -> Option<PathBuf> {
        let root = self.root.canonicalize().ok()?;
        let real = p.canonicalize().ok()?;
        real.starts_with(&root).then_some(real)
    }
}

impl ivr_dsl::Host for Confined {
    fn read(&self, path: &Path) -> std::io::Result<String> {
        let real = self
            .inside(path)
            .ok_or_else(|| std::io::Error::other("not a file in the tenant's flows directory"))?;
        ivr_dsl::FsHost.read(&real)
    }

    fn prompt_exists(&self, path: &Path) -> bool {
        self.inside(path)
            .is_some_and(|p| ivr_dsl::FsHost.prompt_exists(&p))
    }
}

/// A flow file name: `NAME.ivr`, no directories, not hidden.
fn valid_name(name: &str) -> Result<(), Problem> {
    let ok = !name.is_empty()
        && name.chars().count() <= 128
        && !name.contains(['/', '\\', '\0'])
        && !name.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(Problem::bad_request(
            "name: a file name such as support.ivr (no directories)",
        ))
    }
}

/// The tenant a flow request is about, with its index and flows folder.
fn tenant_of(
    s: &super::ApiState,
    c: &Caller,
    asked: Option<&str>,
) -> Result<(usize, String, PathBuf, Vec<crate::config::QueueConfig>), Problem> {
    let tenant = scope(c, asked)?.ok_or_else(|| Problem::bad_request("tenant: name the tenant"))?;
    let Some(i) = s.registry.index_of(&tenant) else {
        return Err(Problem::forbidden(format!(
            "this key sees no tenant {tenant}"
        )));
    };
    let Some(t) = s.registry.tenant(i) else {
        return Err(Problem::forbidden(format!(
            "this key sees no tenant {tenant}"
        )));
    };
    Ok((i, tenant, t.flows_dir.clone(), t.queues.clone()))
}

/// Checks `source` as `dir/name`: language, media, the tenant's queues.
fn check_source(
    dir: &Path,
    name: &str,
    source: &str,
    queues: &[crate::config::QueueConfig],
) -> (FlowCheck, Option<Arc<ivr_dsl::flow::Flow>>) {
    let path = dir.join(name);
    let loaded = ivr_dsl::load_str(
        &path,
        source,
        &Confined {
            root: dir.to_owned(),
        },
    );
    let mut diagnostics: Vec<FlowDiagnostic> = loaded
        .diagnostics
        .iter()
        .map(|d| {
            let (line, column) = loaded
                .sources
                .get(d.span.file)
                .map_or((0, 0), |f| f.line_col(d.span.start as usize));
            FlowDiagnostic {
                severity: if d.is_error() { "error" } else { "warning" },
                code: d.code.to_owned(),
                message: d.message.clone(),
                location: loaded.sources.location(d.span),
                line,
                column,
                hint: d.hint.clone(),
            }
        })
        .collect();
    let mut ok = !loaded.has_errors();
    if let Some(flow) = &loaded.flow {
        let tts = media::tts::EspeakNg::find();
        for p in crate::tenants::flowmedia::check(
            flow,
            tts.as_ref().map(|e| e as &dyn media::tts::Engine),
        ) {
            ok = false;
            diagnostics.push(FlowDiagnostic {
                severity: "error",
                code: "M001".into(),
                message: p.to_string(),
                location: name.to_owned(),
                line: 0,
                column: 0,
                hint: None,
            });
        }
        for w in crate::tenants::flowmedia::not_yet_available(flow, Some(queues)) {
            diagnostics.push(FlowDiagnostic {
                severity: "warning",
                code: "W100".into(),
                message: w,
                location: name.to_owned(),
                line: 0,
                column: 0,
                hint: None,
            });
        }
    }
    let check = FlowCheck {
        ok,
        flow: loaded.flow.as_ref().map(|f| f.name.clone()),
        version: loaded.flow.as_ref().map(|f| f.version.to_string()),
        diagnostics,
    };
    let flow = if ok { loaded.flow } else { None };
    (check, flow)
}

/// Checks a flow as `dhwani flow check` does (language, prompts and
/// speech, the tenant's queues), without deploying it.
#[utoipa::path(post, path = "/v1/flows/check", request_body = CheckFlow, responses(
    (status = 200, body = FlowCheck), Problems))]
pub async fn check_flow(
    axum::extract::State(s): St,
    c: Caller,
    ApiJson(body): ApiJson<CheckFlow>,
) -> Result<axum::Json<FlowCheck>, Problem> {
    require(&c, Permission::Flows)?;
    valid_name(&body.name)?;
    let (_, _, dir, queues) = tenant_of(&s, &c, body.tenant.as_deref())?;
    let check = tokio::task::spawn_blocking(move || {
        check_source(&dir, &body.name, &body.source, &queues).0
    })
    .await
    .map_err(Problem::internal)?;
    Ok(axum::Json(check))
}

/// A live flow.
#[derive(Debug, Serialize, ToSchema)]
pub struct LiveFlow {
    /// Tenant.
    pub tenant: String,
    /// Its file name.
    pub file: String,
    /// Its name.
    pub name: String,
    /// Its version (content hash).
    pub version: String,
    /// The numbers it answers.
    pub numbers: Vec<String>,
}

/// A flow's file name in a path.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct FlowName {
    /// The flow's file name, e.g. `support.ivr` (`file` of `/v1/flows`).
    #[param(max_length = 128, pattern = "^[^./\\\\\\x00][^/\\\\\\x00]*\\.ivr$")]
    pub file: String,
}

/// `tenant` (platform operators only).
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct FlowsParams {
    /// Only this tenant (a tenant key may name only its own).
    pub tenant: Option<String>,
}

/// The flows live now.
#[utoipa::path(get, path = "/v1/flows", params(super::routes::PageParams, FlowsParams), responses(
    (status = 200, body = super::routes::Page<LiveFlow>), Problems))]
pub async fn list_flows(
    axum::extract::State(s): St,
    c: Caller,
    super::problem::ApiQuery(q): super::problem::ApiQuery<FlowsParams>,
    super::problem::ApiQuery(page): super::problem::ApiQuery<super::routes::PageParams>,
) -> Result<axum::Json<super::routes::Page<LiveFlow>>, Problem> {
    require(&c, Permission::Flows)?;
    let tenant = scope(&c, q.tenant.as_deref())?;
    let mut out = Vec::new();
    for (i, t) in s.registry.tenants().iter().enumerate() {
        if !c.sees(&t.id) || tenant.as_ref().is_some_and(|x| **x != *t.id) {
            continue;
        }
        for (file, flow) in s.registry.live_flows(i) {
            out.push(LiveFlow {
                tenant: t.id.to_string(),
                file: file
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                name: flow.name.clone(),
                version: flow.version.to_string(),
                numbers: flow.numbers.clone(),
            });
        }
    }
    Ok(axum::Json(super::routes::paginate(out, &page)?))
}

/// A flow to deploy.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeployFlow {
    /// Its text.
    pub source: String,
    /// The tenant (platform operators only).
    pub tenant: Option<String>,
}

/// What a deploy did.
#[derive(Debug, Serialize, ToSchema)]
pub struct Deployed {
    /// Live now (false: nothing changed; the previous version, if any,
    /// stays live).
    pub deployed: bool,
    /// The checker's verdict.
    pub check: FlowCheck,
    /// Why the server refused to load it, when it passed the check (a
    /// number another flow of the tenant answers, ...).
    pub refused: Option<String>,
}

/// Appends to the audit log as the caller (off the async workers).
pub(super) async fn audit(
    s: &super::ApiState,
    c: &Caller,
    action: &str,
    subject: &str,
) -> Result<(), Problem> {
    crate::privacy::Audit::new(&s.config.data_dir)
        .append_async(&c.actor(), action, subject)
        .await
        .map_err(Problem::from)
}

/// Writes `text` to `path` atomically (a hidden temporary beside it, then
/// a rename), or removes `path` for None.
fn put_file(path: &Path, text: Option<&str>) -> std::io::Result<()> {
    match text {
        Some(t) => {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let tmp = path.with_file_name(format!(".{name}.deploying"));
            std::fs::write(&tmp, t)?;
            std::fs::rename(&tmp, path)
        }
        None => match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        },
    }
}

/// Deploys a flow: checked as `/v1/flows/check` does, written into the
/// tenant's flows directory, and loaded at once (the next call gets it).
/// If the server refuses to load it, the previous file is put back.
#[utoipa::path(put, path = "/v1/flows/{file}", params(FlowName),
    request_body = DeployFlow, responses((status = 200, body = Deployed), Problems))]
pub async fn deploy_flow(
    axum::extract::State(s): St,
    c: Caller,
    UrlPath(FlowName { file: name }): UrlPath<FlowName>,
    ApiJson(body): ApiJson<DeployFlow>,
) -> Result<axum::Json<Deployed>, Problem> {
    require(&c, Permission::Flows)?;
    valid_name(&name)?;
    if !name.ends_with(".ivr") {
        return Err(Problem::bad_request("name: a flow file ends in .ivr"));
    }
    let (_, tenant, dir, queues) = tenant_of(&s, &c, body.tenant.as_deref())?;
    // One deploy at a time: the reload sees every file as written.
    let _one = s.deploys.lock().await;
    let state = Arc::clone(&s);
    let subject = format!("tenant {tenant} file {name}");
    let result = tokio::task::spawn_blocking(move || -> Result<Deployed, Problem> {
        let (check, flow) = check_source(&dir, &name, &body.source, &queues);
        if flow.is_none() {
            return Ok(Deployed {
                deployed: false,
                check,
                refused: None,
            });
        }
        let path = dir.join(&name);
        let before = std::fs::read_to_string(&path).ok();
        put_file(&path, Some(&body.source)).map_err(Problem::internal)?;
        let report = state.registry.reload();
        let why = report
            .refused
            .iter()
            .find(|(t, f, _)| *t == tenant && *f == path)
            .map(|(_, _, why)| why.clone());
        if let Some(why) = why {
            put_file(&path, before.as_deref()).map_err(Problem::internal)?;
            state.registry.reload();
            return Ok(Deployed {
                deployed: false,
                check,
                refused: Some(why),
            });
        }
        Ok(Deployed {
            deployed: true,
            check,
            refused: None,
        })
    })
    .await
    .map_err(Problem::internal)??;
    if result.deployed {
        let version = result.check.version.clone().unwrap_or_default();
        audit(
            &s,
            &c,
            "flow.deploy",
            &format!("{subject} version {version}"),
        )
        .await?;
        tracing::info!(%subject, %version, "flow deployed through the API");
    }
    Ok(axum::Json(result))
}

/// Removes a flow file; its numbers stop answering with it at once.
#[utoipa::path(delete, path = "/v1/flows/{file}", params(FlowName, FlowsParams),
    responses((status = 204), Problems))]
pub async fn remove_flow(
    axum::extract::State(s): St,
    c: Caller,
    UrlPath(FlowName { file: name }): UrlPath<FlowName>,
    super::problem::ApiQuery(q): super::problem::ApiQuery<FlowsParams>,
) -> Result<axum::http::StatusCode, Problem> {
    require(&c, Permission::Flows)?;
    valid_name(&name)?;
    let (_, tenant, dir, _) = tenant_of(&s, &c, q.tenant.as_deref())?;
    let path = dir.join(&name);
    if !path.is_file() {
        return Err(Problem::not_found("no such flow file"));
    }
    let _one = s.deploys.lock().await;
    audit(
        &s,
        &c,
        "flow.remove",
        &format!("tenant {tenant} file {name}"),
    )
    .await?;
    let state = Arc::clone(&s);
    tokio::task::spawn_blocking(move || {
        put_file(&path, None)?;
        state.registry.reload();
        Ok::<_, std::io::Error>(())
    })
    .await
    .map_err(Problem::internal)?
    .map_err(Problem::internal)?;
    Ok(axum::http::StatusCode::NO_CONTENT)
}

/// A flow and its `.ivrtest` cases.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TestFlow {
    /// The flow's file name.
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = "^[^./\\\\\\x00][^/\\\\\\x00]*$"
    )]
    pub name: String,
    /// The flow's text.
    pub source: String,
    /// The `.ivrtest` text (its `flow` line is ignored: the cases run
    /// against `source`).
    pub tests: String,
    /// The tenant (platform operators only).
    pub tenant: Option<String>,
}

/// One case's outcome.
#[derive(Debug, Serialize, ToSchema)]
pub struct CaseOutcome {
    /// The case's name.
    pub name: String,
    /// Passed.
    pub passed: bool,
    /// Why not.
    pub failure: Option<String>,
}

/// What the cases did.
#[derive(Debug, Serialize, ToSchema)]
pub struct FlowTests {
    /// The flow loaded and every case passed.
    pub ok: bool,
    /// The flow's check.
    pub check: FlowCheck,
    /// A malformed test file: where and why.
    pub test_error: Option<String>,
    /// Each case.
    pub cases: Vec<CaseOutcome>,
}

impl FlowTests {
    /// No case ran: the flow failed its check, or the test file is bad.
    fn not_run(check: FlowCheck, test_error: Option<String>) -> FlowTests {
        FlowTests {
            ok: false,
            check,
            test_error,
            cases: Vec::new(),
        }
    }
}

/// Cases per request at most.
const MAX_CASES: usize = 200;

/// Runs a flow's `.ivrtest` cases in the simulator (fake time, no calls,
/// no network).
#[utoipa::path(post, path = "/v1/flows/test", request_body = TestFlow, responses(
    (status = 200, body = FlowTests), Problems))]
pub async fn test_flow(
    axum::extract::State(s): St,
    c: Caller,
    ApiJson(body): ApiJson<TestFlow>,
) -> Result<axum::Json<FlowTests>, Problem> {
    require(&c, Permission::Flows)?;
    valid_name(&body.name)?;
    let (_, _, dir, queues) = tenant_of(&s, &c, body.tenant.as_deref())?;
    let out = tokio::task::spawn_blocking(move || {
        let (check, flow) = check_source(&dir, &body.name, &body.source, &queues);
        let Some(flow) = flow else {
            return FlowTests::not_run(check, None);
        };
        let test_path = dir.join(&body.name).with_extension("ivrtest");
        let tf = match ivr_dsl::sim::script::parse(&test_path, &body.tests) {
            Ok(tf) => tf,
            Err(e) => {
                return FlowTests::not_run(check, Some(e.to_string()));
            }
        };
        if tf.cases.len() > MAX_CASES {
            return FlowTests::not_run(
                check,
                Some(format!("more than {MAX_CASES} cases: split the file")),
            );
        }
        let cases: Vec<CaseOutcome> = tf
            .cases
            .iter()
            .map(|case| {
                let r = ivr_dsl::sim::script::run_case(&flow, case, &dir, tf.allow.as_ref());
                CaseOutcome {
                    name: r.name,
                    passed: r.failure.is_none(),
                    failure: r.failure,
                }
            })
            .collect();
        FlowTests {
            ok: cases.iter().all(|c| c.passed),
            check,
            test_error: None,
            cases,
        }
    })
    .await
    .map_err(Problem::internal)?;
    Ok(axum::Json(out))
}
