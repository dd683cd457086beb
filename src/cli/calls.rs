//! `dhwani calls list|show`: calls and their timelines from the store
//! (the same `--config`/`--data-dir` as `serve` find it).

use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;

use crate::config::Config;
use crate::store::{CallFilter, CallRecord, Event};

/// `dhwani calls ...`
#[derive(Debug, Subcommand)]
pub enum CallsCommand {
    /// Calls, newest first.
    List {
        /// Only this tenant's calls.
        #[arg(long)]
        tenant: Option<String>,
        /// Only calls from this number.
        #[arg(long = "from", value_name = "NUMBER")]
        from: Option<String>,
        /// Only calls since: a date (2026-11-28), a time
        /// (2026-11-28T10:00:00Z), or an age (30m, 2h, 7d).
        #[arg(long)]
        since: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: i64,
        /// JSON lines, for scripts.
        #[arg(long)]
        json: bool,
    },
    /// Calls in progress now, from the running server's admin API: tenant,
    /// flow, step, queue, agent, how long (no caller numbers).
    Live {
        /// The API (default: from http.listen of the config).
        #[arg(long, value_name = "URL")]
        api: Option<String>,
        /// An API key (a supervisor's, a tenant admin's or an operator's).
        #[arg(long, env = "DHWANI_API_KEY", hide_env_values = true)]
        api_key: String,
        /// Only this tenant (platform operators' keys).
        #[arg(long)]
        tenant: Option<String>,
        /// The API's JSON, for scripts.
        #[arg(long)]
        json: bool,
    },
    /// One call's CDR and timeline: steps, what was heard and pressed.
    Show {
        /// The call id (from `calls list`) or its SIP Call-ID.
        call_id: String,
        /// JSON, for scripts.
        #[arg(long)]
        json: bool,
    },
}

/// Parses `--since`: an age (`30m`, `2h`, `7d`), a date or a timestamp.
pub fn parse_since(s: &str, now: jiff::Timestamp) -> Result<i64, String> {
    let s = s.trim();
    let bad = || {
        format!(
            "`{s}`: use an age (30m, 2h, 7d), a date (2026-11-28) or a time (2026-11-28T10:00:00Z)"
        )
    };
    if let Some(unit) = s.chars().last().filter(|c| "smhd".contains(*c))
        && let Ok(n) = s[..s.len() - 1].parse::<i64>()
    {
        {
            let secs = n * match unit {
                's' => 1,
                'm' => 60,
                'h' => 3600,
                _ => 86_400,
            };
            return Ok(now.as_millisecond() - secs * 1000);
        }
    }
    if let Ok(t) = s.parse::<jiff::Timestamp>() {
        return Ok(t.as_millisecond());
    }
    if let Ok(d) = s.parse::<jiff::civil::Date>() {
        return jiff::tz::TimeZone::UTC
            .to_timestamp(d.to_datetime(jiff::civil::Time::midnight()))
            .map(|t| t.as_millisecond())
            .map_err(|_| bad());
    }
    if let Ok(dt) = s.parse::<jiff::civil::DateTime>() {
        return jiff::tz::TimeZone::UTC
            .to_timestamp(dt)
            .map(|t| t.as_millisecond())
            .map_err(|_| bad());
    }
    Err(bad())
}

fn time(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|_| ms.to_string())
}

fn secs(ms: i64) -> String {
    format!("{}.{:03}s", ms / 1000, ms % 1000)
}

/// Runs a `calls` subcommand.
pub fn run(cmd: CallsCommand, cfg: &Config, reason: Option<&str>) -> anyhow::Result<ExitCode> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    if let CallsCommand::Live {
        api,
        api_key,
        tenant,
        json,
    } = cmd
    {
        return rt.block_on(live(cfg, api, &api_key, tenant.as_deref(), json));
    }
    rt.block_on(async {
        let store = crate::privacy::open_store(&cfg.store.url, &cfg.data_dir).await?;
        let code = match cmd {
            CallsCommand::Live { .. } => anyhow::bail!("calls live reads the API, not the store"),
            CallsCommand::List {
                tenant,
                from,
                since,
                limit,
                json,
            } => {
                let since_ms = since
                    .map(|s| parse_since(&s, jiff::Timestamp::now()))
                    .transpose()
                    .map_err(anyhow::Error::msg)?;
                let what = format!(
                    "tenant {} since {} limit {limit}{}",
                    tenant.as_deref().unwrap_or("any"),
                    since_ms.map_or("any".to_owned(), |m| m.to_string()),
                    if from.is_some() {
                        " from one number"
                    } else {
                        ""
                    }
                );
                let calls = store
                    .list_calls(&CallFilter {
                        tenant,
                        caller: from,
                        since_ms,
                        limit,
                        before: None,
                    })
                    .await?;
                crate::privacy::audit_read(&store, cfg, ("calls.list", &what), &calls, reason)
                    .await?;
                print_list(&calls, json)?;
                ExitCode::SUCCESS
            }
            CallsCommand::Show { call_id, json } => match store.call(&call_id).await? {
                None => {
                    eprintln!("no call `{call_id}` in the store ({})", describe(cfg));
                    ExitCode::FAILURE
                }
                Some(call) => {
                    crate::privacy::audit_read(
                        &store,
                        cfg,
                        ("calls.show", "one call"),
                        std::slice::from_ref(&call),
                        reason,
                    )
                    .await?;
                    let events = store.events(&call.call_id).await?;
                    if json {
                        println!("{}", crate::store::call_json(&call, &events));
                    } else {
                        print!("{}", show_text(&call, &events));
                    }
                    ExitCode::SUCCESS
                }
            },
        };
        store.close().await;
        Ok(code)
    })
}

/// The admin API's base URL from the config (`http.listen`).
pub fn api_url(cfg: &Config) -> anyhow::Result<String> {
    let addr = cfg
        .http
        .addr()
        .map_err(anyhow::Error::msg)?
        .context("http.listen is empty: the server has no admin API; pass --api URL")?;
    let scheme = if cfg.http.tls_cert.is_some() {
        "https"
    } else {
        "http"
    };
    let host = if addr.ip().is_unspecified() {
        match addr {
            std::net::SocketAddr::V4(_) => "127.0.0.1".to_owned(),
            std::net::SocketAddr::V6(_) => "[::1]".to_owned(),
        }
    } else {
        match addr {
            std::net::SocketAddr::V4(a) => a.ip().to_string(),
            std::net::SocketAddr::V6(a) => format!("[{}]", a.ip()),
        }
    };
    Ok(format!("{scheme}://{host}:{}", addr.port()))
}

/// An HTTP client for the admin API (rustls with the system's roots).
pub fn api_client() -> anyhow::Result<reqwest::Client> {
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(c);
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .timeout(std::time::Duration::from_secs(10))
        .build()?)
}

async fn live(
    cfg: &Config,
    api: Option<String>,
    key: &str,
    tenant: Option<&str>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let base = match api {
        Some(a) => a.trim_end_matches('/').to_owned(),
        None => api_url(cfg)?,
    };
    let mut url = format!("{base}/v1/calls/live");
    if let Some(t) = tenant {
        if !t
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            anyhow::bail!("--tenant: `{t}` is not a tenant id");
        }
        url.push_str(&format!("?tenant={t}"));
    }
    let res = api_client()?
        .get(url)
        .bearer_auth(key)
        .send()
        .await
        .with_context(|| {
            format!("cannot reach the admin API at {base} (is the server running?)")
        })?;
    let status = res.status();
    let bytes = res.bytes().await.context("the API's answer was cut off")?;
    let body: serde_json::Value =
        serde_json::from_slice(&bytes).context("the API's answer is not JSON")?;
    if !status.is_success() {
        anyhow::bail!(
            "the API refused: {} {}",
            status.as_u16(),
            body["detail"].as_str().unwrap_or("")
        );
    }
    if json {
        println!("{body}");
        return Ok(ExitCode::SUCCESS);
    }
    let now = body["now_ms"].as_i64().unwrap_or(0);
    let items = body["items"].as_array().cloned().unwrap_or_default();
    println!(
        "{:<28} {:<10} {:<16} {:>8}  {:<16} {:<10} agent",
        "call", "tenant", "flow", "for", "step", "queue"
    );
    for c in &items {
        let since = c["answer_ms"]
            .as_i64()
            .unwrap_or(c["start_ms"].as_i64().unwrap_or(now));
        let secs = (now - since).max(0) / 1000;
        let s = |k: &str| c[k].as_str().unwrap_or("-").to_owned();
        println!(
            "{:<28} {:<10} {:<16} {:>5}:{:02}  {:<16} {:<10} {}",
            s("call_id"),
            s("tenant"),
            s("flow"),
            secs / 60,
            secs % 60,
            s("step"),
            s("queue"),
            s("agent")
        );
    }
    println!(
        "{} live call{}",
        items.len(),
        if items.len() == 1 { "" } else { "s" }
    );
    Ok(ExitCode::SUCCESS)
}

fn describe(cfg: &Config) -> String {
    if cfg.store.url.is_empty() {
        format!("SQLite in {}", cfg.data_dir.display())
    } else {
        crate::store::redact(&cfg.store.url)
    }
}

fn print_list(calls: &[CallRecord], json: bool) -> anyhow::Result<()> {
    if json {
        for c in calls {
            println!("{}", serde_json::to_string(c)?);
        }
        return Ok(());
    }
    println!(
        "{:<28} {:<20} {:<10} {:<16} {:<14} {:>9}  OUTCOME",
        "CALL", "STARTED", "TENANT", "FROM", "TO", "DURATION"
    );
    for c in calls {
        println!(
            "{:<28} {:<20} {:<10} {:<16} {:<14} {:>9}  {}",
            c.call_id,
            time(c.start_ms).trim_end_matches(" UTC"),
            c.tenant,
            c.caller,
            c.called,
            c.duration_ms.map(secs).unwrap_or_else(|| "live".into()),
            c.outcome.as_deref().unwrap_or("in progress"),
        );
    }
    Ok(())
}

/// The readable timeline.
pub fn show_text(c: &CallRecord, events: &[Event]) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(s, "Call {}  (SIP Call-ID {})", c.call_id, c.sip_call_id);
    let _ = writeln!(
        s,
        "  {} -> {}   tenant {}, flow \"{}\" version {}",
        c.caller,
        c.called,
        c.tenant,
        c.flow,
        c.flow_version.get(..12).unwrap_or(&c.flow_version)
    );
    let _ = writeln!(s, "  started  {}", time(c.start_ms));
    if let Some(a) = c.answer_ms {
        let _ = writeln!(s, "  answered after {}", secs(a - c.start_ms));
    }
    if let Some(q) = &c.queue {
        let wait = c.wait_ms.map(secs).unwrap_or_default();
        match (&c.agent, c.talk_ms) {
            (Some(agent), Some(talk)) => {
                let _ = writeln!(
                    s,
                    "  queue {q}: waited {wait}, answered by agent {agent}, talked {}",
                    secs(talk)
                );
            }
            _ => {
                let _ = writeln!(s, "  queue {q}: waited {wait}, no agent answered");
            }
        }
    }
    match (c.end_ms, c.duration_ms) {
        (Some(_), Some(d)) => {
            let _ = writeln!(
                s,
                "  ended after {}: hung up by {} ({})",
                secs(d),
                c.hangup_by.as_deref().unwrap_or("?"),
                c.hangup_cause.as_deref().unwrap_or("?")
            );
        }
        _ => {
            let _ = writeln!(s, "  in progress");
        }
    }
    if let Some(o) = &c.outcome {
        let _ = writeln!(s, "  outcome  {o}");
    }
    if let Some(r) = &c.recording_id {
        let _ = writeln!(s, "  recording {r}");
    }
    if let Some(t) = &c.timing {
        let _ = writeln!(
            s,
            "  audio to the caller: {} frames; late by more than 2/5/10/20 ms: {}/{}/{}/{}; skipped {}",
            t.frames, t.late_2ms, t.late_5ms, t.late_10ms, t.late_20ms, t.skipped_frames
        );
    }
    let _ = writeln!(s, "\nTimeline:");
    for e in events {
        let detail = match serde_json::from_str::<serde_json::Value>(&e.detail) {
            Ok(serde_json::Value::Object(m)) => m
                .iter()
                .map(|(k, v)| match v {
                    serde_json::Value::String(t) => format!("{k}={t:?}"),
                    other => format!("{k}={other}"),
                })
                .collect::<Vec<_>>()
                .join(" "),
            _ => e.detail.clone(),
        };
        let _ = writeln!(
            s,
            "  {:>10}  {:<14} {:<9} {}",
            format!("+{}", secs(e.offset_ms)),
            e.step,
            e.kind,
            detail
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_forms() {
        let now = jiff::Timestamp::from_second(1_800_000_000).unwrap();
        assert_eq!(
            parse_since("2h", now).unwrap(),
            (1_800_000_000 - 7200) * 1000
        );
        assert_eq!(
            parse_since("7d", now).unwrap(),
            (1_800_000_000 - 7 * 86_400) * 1000
        );
        assert_eq!(parse_since("2026-11-28", now).unwrap(), 1_795_824_000_000);
        assert_eq!(
            parse_since("2026-11-28T00:00:01Z", now).unwrap(),
            1_795_824_001_000
        );
        assert!(
            parse_since("yesterday", now)
                .unwrap_err()
                .contains("use an age")
        );
    }
}
