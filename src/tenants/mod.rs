//! Tenants (the businesses hosted here), their flows, and routing: which
//! tenant and flow answers a dialled number.
//!
//! Each tenant has a flows directory; every `*.ivr` file directly in it is a
//! flow, and the flow's `numbers` setting says which of the tenant's numbers
//! it answers. Flows are checked when loaded (language and media: prompt
//! files decode, `say` has a speech engine). A flow with errors is refused
//! with its diagnostics in the log, and the version already live stays live.
//!
//! Routing reads an immutable snapshot (`Arc<Routes>`) that a reload swaps
//! whole, so a call that started keeps the `Arc<Flow>` it was given while
//! new calls get the new version.

pub mod agents;
pub mod fetch;
pub mod flowmedia;
pub mod gate;
pub mod lockout;
pub mod sip_targets;
pub mod webhooks;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use ivr_dsl::allow::AllowList;
use ivr_dsl::{Flow, FsHost, load};

use crate::config::{BUILTIN_DEMO_FLOWS, Config, TenantConfig};

/// The demo flow and its files, unpacked for the embedded default.
const DEMO_FILES: &[(&str, &[u8])] = &[
    (
        "flows/support.ivr",
        include_bytes!("../../examples/flows/support.ivr"),
    ),
    (
        "flows/support.ivrtest",
        include_bytes!("../../examples/flows/support.ivrtest"),
    ),
    (
        "flows/shared/common.ivr",
        include_bytes!("../../examples/flows/shared/common.ivr"),
    ),
    (
        "prompts/chime.wav",
        include_bytes!("../../examples/prompts/chime.wav"),
    ),
    (
        "prompts/hold-music.wav",
        include_bytes!("../../examples/prompts/hold-music.wav"),
    ),
];

/// One tenant.
#[derive(Debug, Clone)]
pub struct Tenant {
    /// Id.
    pub id: Arc<str>,
    /// Display name.
    pub name: String,
    /// Numbers it owns.
    pub numbers: Vec<String>,
    /// Where its flows are.
    pub flows_dir: PathBuf,
    /// Concurrent-call limit.
    pub max_calls: usize,
    /// New calls refused while set.
    pub suspended: bool,
    /// Made through the admin API, not by the config file.
    pub provisioned: bool,
    /// Hosts its flows may fetch from.
    pub allow: AllowList,
    /// Write-only recordings to this X25519 public key.
    pub recording_public_key: Option<[u8; 32]>,
    /// Its queues.
    pub queues: Vec<crate::config::QueueConfig>,
    /// Its HTTPS client for `fetch` (none without a `fetch_allow`).
    pub fetcher: Option<Arc<fetch::Fetcher>>,
    /// Said when a fetch takes a while (empty: nothing).
    pub fetch_filler: String,
}

/// Where a number goes.
#[derive(Debug, Clone)]
pub struct Route {
    /// Index into [`Registry::tenants`].
    pub tenant: usize,
    /// The flow (the version live when the call arrived).
    pub flow: Arc<Flow>,
}

/// A snapshot of the routing table.
#[derive(Debug, Default)]
pub struct Routes {
    by_number: HashMap<String, Route>,
    /// Live flows of each tenant by file.
    flows: Vec<BTreeMap<PathBuf, Arc<Flow>>>,
    /// Numbers whose only flow was refused (no earlier version is live):
    /// their callers are told the flow is not live, not "no such number".
    not_live: HashMap<String, usize>,
}

/// The tenants and the live routing table.
///
/// Tenants are only ever added (the admin API appends one; a tenant's
/// index never changes while the server runs), and one is changed by
/// swapping its `Arc` for a changed copy.
#[derive(Debug)]
pub struct Registry {
    tenants: RwLock<Arc<Vec<Arc<Tenant>>>>,
    routes: RwLock<Arc<Routes>>,
    tts: Option<media::tts::EspeakNg>,
}

/// What a (re)load did, for logs and `flow deploy`.
#[derive(Debug, Default)]
pub struct LoadReport {
    /// Flows now live: (tenant, file, name, version, changed).
    pub live: Vec<(String, PathBuf, String, String, bool)>,
    /// Refused flows: (tenant, file, rendered diagnostics).
    pub refused: Vec<(String, PathBuf, String)>,
    /// Warnings about live flows: (tenant, file, warning).
    pub warnings: Vec<(String, PathBuf, String)>,
    /// Numbers of refused flows that have no live version: (tenant index,
    /// number).
    pub not_live: Vec<(usize, String)>,
}

fn number_key(n: &str) -> &str {
    n.trim_start_matches('+')
}

/// Unpacks the built-in demo under `data_dir/demo` (files already there
/// are kept: they may have been edited) and returns its flows directory.
pub fn unpack_demo(data_dir: &Path) -> std::io::Result<PathBuf> {
    let root = data_dir.join("demo");
    for (rel, bytes) in DEMO_FILES {
        let p = root.join(rel);
        if !p.exists() {
            if let Some(parent) = p.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(&p, bytes)?;
        }
    }
    Ok(root.join("flows"))
}

/// A tenant's flows directory: `builtin:demo` unpacked, a relative path
/// resolved against the config file's directory.
pub fn flows_dir(t: &TenantConfig, config_dir: &Path, data_dir: &Path) -> std::io::Result<PathBuf> {
    if t.flows_dir == Path::new(BUILTIN_DEMO_FLOWS) {
        unpack_demo(data_dir)
    } else if t.flows_dir.is_relative() {
        Ok(config_dir.join(&t.flows_dir))
    } else {
        Ok(t.flows_dir.clone())
    }
}

/// Why the tenants could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TenantsError {
    /// The embedded demo flows could not be written to the data directory.
    #[error("tenant `{tenant}`: cannot unpack the demo flows: {source}")]
    Unpack {
        /// The tenant.
        tenant: String,
        /// Why.
        source: std::io::Error,
    },
    /// A `fetch_allow` entry is not a host name.
    #[error("tenant `{tenant}`: fetch_allow {source}")]
    FetchAllow {
        /// The tenant.
        tenant: String,
        /// The entry.
        source: ivr_dsl::allow::BadEntry,
    },
    /// The tenant's fetch client cannot be made (its CA file).
    #[error("tenant `{tenant}`: {why}")]
    Fetch {
        /// The tenant.
        tenant: String,
        /// Why.
        why: String,
    },
}

impl Tenant {
    /// The tenant a config entry describes (its flows directory made or
    /// unpacked, its fetch client built).
    pub fn new(
        t: &TenantConfig,
        config_dir: &Path,
        data_dir: &Path,
    ) -> Result<Tenant, TenantsError> {
        let dir = flows_dir(t, config_dir, data_dir).map_err(|source| TenantsError::Unpack {
            tenant: t.id.clone(),
            source,
        })?;
        let allow = AllowList::new(&t.fetch_allow).map_err(|source| TenantsError::FetchAllow {
            tenant: t.id.clone(),
            source,
        })?;
        let fetcher = if allow.is_empty() {
            None
        } else {
            let fail = |why: String| TenantsError::Fetch {
                tenant: t.id.clone(),
                why,
            };
            let ca = match &t.fetch_ca_file {
                Some(p) => {
                    let p = if p.is_relative() {
                        config_dir.join(p)
                    } else {
                        p.clone()
                    };
                    Some(
                        std::fs::read(&p)
                            .map_err(|e| fail(format!("fetch_ca_file {}: {e}", p.display())))?,
                    )
                }
                None => None,
            };
            let nets = t
                .fetch_private_networks
                .iter()
                .filter_map(|n| n.parse().ok())
                .collect();
            Some(Arc::new(
                fetch::Fetcher::new(
                    allow.clone(),
                    nets,
                    ca.as_deref(),
                    (t.fetch_max_concurrent, t.fetch_max_per_sec),
                )
                .map_err(fail)?,
            ))
        };
        Ok(Tenant {
            id: Arc::from(t.id.as_str()),
            name: t.name.clone(),
            numbers: t.numbers.clone(),
            flows_dir: dir,
            max_calls: t.max_calls,
            suspended: t.suspended,
            provisioned: t.provisioned,
            allow,
            recording_public_key: t.public_key(),
            queues: t.queues.clone(),
            fetcher,
            fetch_filler: t.fetch_filler.clone(),
        })
    }

    /// Whether it owns `number` (a leading `+` ignored on both sides).
    pub fn owns(&self, number: &str) -> bool {
        self.numbers
            .iter()
            .any(|m| number_key(m) == number_key(number))
    }
}

impl Registry {
    /// The tenants of `config` (flows not loaded yet: call [`Registry::reload`]).
    pub fn new(config: &Config, config_dir: &Path) -> Result<Registry, TenantsError> {
        let mut tenants = Vec::new();
        for t in &config.tenants {
            tenants.push(Arc::new(Tenant::new(t, config_dir, &config.data_dir)?));
        }
        let n = tenants.len();
        Ok(Registry {
            tenants: RwLock::new(Arc::new(tenants)),
            routes: RwLock::new(Arc::new(Routes {
                by_number: HashMap::new(),
                flows: vec![BTreeMap::new(); n],
                not_live: HashMap::new(),
            })),
            tts: media::tts::EspeakNg::find(),
        })
    }

    /// The tenants now, in config order and then in the order the admin
    /// API added them.
    pub fn tenants(&self) -> Arc<Vec<Arc<Tenant>>> {
        self.tenants
            .read()
            .map(|t| Arc::clone(&t))
            .unwrap_or_default()
    }

    /// The index of the tenant with id `id`.
    pub fn index_of(&self, id: &str) -> Option<usize> {
        self.tenants().iter().position(|t| *t.id == *id)
    }

    /// Adds a tenant (flows not loaded: call [`Registry::reload`]) and
    /// returns its index; None when its id or one of its numbers is taken.
    pub fn add(&self, tenant: Tenant) -> Option<usize> {
        let mut w = self.tenants.write().ok()?;
        let taken = w.iter().any(|t| {
            *t.id == *tenant.id
                || t.numbers.iter().any(|m| {
                    tenant
                        .numbers
                        .iter()
                        .any(|n| number_key(m) == number_key(n))
                })
        });
        if taken {
            return None;
        }
        let mut all = Vec::clone(&w);
        all.push(Arc::new(tenant));
        *w = Arc::new(all);
        Some(w.len() - 1)
    }

    /// Changes tenant `i` (its copy, swapped in whole; calls already
    /// admitted keep what they were given). `change` may refuse with a
    /// reason, and then nothing changes. Flows are not reloaded.
    pub fn change<E>(
        &self,
        i: usize,
        change: impl FnOnce(&[Arc<Tenant>], &mut Tenant) -> Result<(), E>,
    ) -> Option<Result<(), E>> {
        let mut w = self.tenants.write().ok()?;
        let mut t = Tenant::clone(w.get(i)?);
        if let Err(e) = change(&w, &mut t) {
            return Some(Err(e));
        }
        let mut all = Vec::clone(&w);
        all[i] = Arc::new(t);
        *w = Arc::new(all);
        Some(Ok(()))
    }

    /// The tenant that owns `number` (leading `+` ignored), with its index.
    pub fn owner(&self, number: &str) -> Option<(usize, Arc<Tenant>)> {
        self.tenants()
            .iter()
            .enumerate()
            .find(|(_, t)| t.owns(number))
            .map(|(i, t)| (i, Arc::clone(t)))
    }

    /// The route for a dialled number.
    pub fn route(&self, number: &str) -> Option<Route> {
        let routes = self.routes.read().ok()?;
        routes.by_number.get(number_key(number)).cloned()
    }

    /// The tenant of a number whose flow was refused and has no live
    /// version.
    pub fn not_live(&self, number: &str) -> Option<usize> {
        let routes = self.routes.read().ok()?;
        routes.not_live.get(number_key(number)).copied()
    }

    /// One line per tenant for the startup log: flows live, flows
    /// refused (with the first line of why), numbers answered, numbers
    /// whose flow is not live.
    pub fn summary(&self, report: &LoadReport) -> Vec<String> {
        let Ok(routes) = self.routes.read() else {
            return Vec::new();
        };
        self.tenants()
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let live = report.live.iter().filter(|l| *l.0 == *t.id).count();
                let refused: Vec<String> = report
                    .refused
                    .iter()
                    .filter(|r| *r.0 == *t.id)
                    .map(|(_, f, why)| {
                        let name = f.file_name().map_or_else(
                            || f.display().to_string(),
                            |n| n.to_string_lossy().into_owned(),
                        );
                        let first = why.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
                        format!("{name} ({})", first.trim())
                    })
                    .collect();
                let mut answered: Vec<&str> = routes
                    .by_number
                    .iter()
                    .filter(|(_, r)| r.tenant == i)
                    .map(|(n, _)| n.as_str())
                    .collect();
                answered.sort_unstable();
                let mut dead: Vec<&str> = routes
                    .not_live
                    .iter()
                    .filter(|(_, ti)| **ti == i)
                    .map(|(n, _)| n.as_str())
                    .collect();
                dead.sort_unstable();
                let mut line = format!(
                    "tenant {}: {live} flow(s) live, {} refused; numbers answered: {}",
                    t.id,
                    refused.len(),
                    if answered.is_empty() {
                        "none".to_owned()
                    } else {
                        answered.join(", ")
                    }
                );
                if !dead.is_empty() {
                    line.push_str(&format!(
                        "; numbers whose flow is not live (callers get 503): {}",
                        dead.join(", ")
                    ));
                }
                if !refused.is_empty() {
                    line.push_str(&format!("; refused: {}", refused.join("; ")));
                }
                line
            })
            .collect()
    }

    /// A tenant by index.
    pub fn tenant(&self, i: usize) -> Option<Arc<Tenant>> {
        self.tenants().get(i).cloned()
    }

    /// The flows live for tenant `i`, by file.
    pub fn live_flows(&self, i: usize) -> Vec<(PathBuf, Arc<Flow>)> {
        self.routes
            .read()
            .ok()
            .and_then(|r| r.flows.get(i).cloned())
            .map(|m| m.into_iter().collect())
            .unwrap_or_default()
    }

    /// Loads every tenant's flows and swaps the routing table. A flow that
    /// fails keeps its previous version live (if it had one).
    pub fn reload(&self) -> LoadReport {
        let mut report = LoadReport::default();
        let old = self
            .routes
            .read()
            .map(|r| Arc::clone(&r))
            .unwrap_or_default();
        let tenants = self.tenants();
        let mut flows = Vec::with_capacity(tenants.len());
        for (i, t) in tenants.iter().enumerate() {
            let previous = old.flows.get(i).cloned().unwrap_or_default();
            flows.push(self.load_tenant(i, t, &previous, &mut report));
        }
        let mut by_number = HashMap::new();
        for (i, tf) in flows.iter().enumerate() {
            for flow in tf.values() {
                // A number taken from the tenant stops routing at once,
                // even to a version kept live after its new one was
                // refused.
                for n in flow.numbers.iter().filter(|n| tenants[i].owns(n)) {
                    by_number.insert(
                        number_key(n).to_owned(),
                        Route {
                            tenant: i,
                            flow: Arc::clone(flow),
                        },
                    );
                }
            }
        }
        let not_live = report
            .not_live
            .iter()
            .filter(|(_, n)| !by_number.contains_key(number_key(n)))
            .map(|(i, n)| (number_key(n).to_owned(), *i))
            .collect();
        if let Ok(mut w) = self.routes.write() {
            *w = Arc::new(Routes {
                by_number,
                flows,
                not_live,
            });
        }
        report
    }

    fn load_tenant(
        &self,
        index: usize,
        t: &Tenant,
        previous: &BTreeMap<PathBuf, Arc<Flow>>,
        report: &mut LoadReport,
    ) -> BTreeMap<PathBuf, Arc<Flow>> {
        let mut out = BTreeMap::new();
        let mut files: Vec<PathBuf> = match std::fs::read_dir(&t.flows_dir) {
            Ok(d) => d
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "ivr") && p.is_file())
                .collect(),
            Err(e) => {
                report.refused.push((
                    t.id.to_string(),
                    t.flows_dir.clone(),
                    format!("cannot read the flows directory: {e}"),
                ));
                return previous.clone();
            }
        };
        files.sort();
        let mut claimed: HashMap<String, PathBuf> = HashMap::new();
        for file in files {
            let refuse = |report: &mut LoadReport, why: String| {
                report.refused.push((t.id.to_string(), file.clone(), why));
            };
            let loaded = load(&file, &FsHost);
            let Some(flow) = loaded.flow.clone() else {
                refuse(report, loaded.render());
                if let Some(p) = previous.get(&file) {
                    out.insert(file.clone(), Arc::clone(p));
                }
                continue;
            };
            let mut problems = crate::tenants::flowmedia::check(
                &flow,
                self.tts.as_ref().map(|e| e as &dyn media::tts::Engine),
            );
            for n in &flow.numbers {
                if !t.owns(n) {
                    problems.push(format!(
                        "the flow answers {n}, which tenant `{}` does not own (add it to the tenant's numbers)",
                        t.id
                    ));
                } else if let Some(other) = claimed.get(number_key(n)) {
                    problems.push(format!(
                        "number {n} is already answered by {}",
                        other.display()
                    ));
                }
            }
            if !problems.is_empty() {
                refuse(report, problems.join("\n"));
                match previous.get(&file) {
                    Some(p) => {
                        out.insert(file.clone(), Arc::clone(p));
                    }
                    None => {
                        for n in &flow.numbers {
                            if t.owns(n) {
                                report.not_live.push((index, n.clone()));
                            }
                        }
                    }
                }
                continue;
            }
            for n in &flow.numbers {
                claimed.insert(number_key(n).to_owned(), file.clone());
            }
            for w in crate::tenants::flowmedia::not_yet_available(&flow, Some(&t.queues)) {
                tracing::warn!(tenant = %t.id, file = %file.display(), "{w}");
            }
            let changed = previous
                .get(&file)
                .is_none_or(|p| p.version != flow.version);
            let flow = match previous.get(&file) {
                Some(p) if !changed => Arc::clone(p),
                _ => flow,
            };
            report.live.push((
                t.id.to_string(),
                file.clone(),
                flow.name.clone(),
                flow.version.to_string(),
                changed,
            ));
            out.insert(file, flow);
        }
        out
    }
}

/// A fingerprint of everything under the flows directories (names, sizes,
/// modification times), to notice edits.
pub fn fingerprint(reg: &Registry) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for t in reg.tenants().iter() {
        let mut stack = vec![t.flows_dir.clone()];
        let mut seen = 0usize;
        while let Some(dir) = stack.pop() {
            let Ok(rd) = std::fs::read_dir(&dir) else {
                continue;
            };
            let mut entries: Vec<_> = rd.filter_map(Result::ok).collect();
            entries.sort_by_key(|e| e.path());
            for e in entries {
                seen += 1;
                if seen > 10_000 {
                    break;
                }
                let p = e.path();
                let Ok(m) = e.metadata() else { continue };
                if m.is_dir() {
                    stack.push(p);
                    continue;
                }
                p.hash(&mut h);
                m.len().hash(&mut h);
                m.modified()
                    .ok()
                    .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
                    .hash(&mut h);
            }
        }
    }
    h.finish()
}

/// Logs a load report: new versions (`flow live` at startup, `flow
/// deployed` after), refused flows with their diagnostics as errors.
pub fn log_report(report: &LoadReport, startup: bool) {
    for (tenant, file, name, version, changed) in &report.live {
        if startup {
            tracing::info!(tenant, file = %file.display(), flow = %name, version, "flow live");
        } else if *changed {
            tracing::info!(tenant, file = %file.display(), flow = %name, version, "flow deployed");
        }
    }
    for (tenant, file, w) in &report.warnings {
        tracing::warn!(tenant, file = %file.display(), "{w}");
    }
    for (tenant, file, why) in &report.refused {
        tracing::error!(tenant, file = %file.display(), "flow refused; the previous version (if any) stays live:\n{why}");
    }
}
