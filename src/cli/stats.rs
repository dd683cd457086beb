//! `dhwani stats`: the anonymised usage analytics (`store::usage`), per
//! tenant, day, flow and kind of outcome, with rows of fewer than k calls
//! withheld. They outlive erasure and retention, and name no caller.

use std::process::ExitCode;

use clap::Args;

use crate::config::Config;
use crate::store::usage::UsageRow;

/// `dhwani stats` options.
#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Only this tenant.
    #[arg(long)]
    pub tenant: Option<String>,
    /// From this UTC day (YYYY-MM-DD).
    #[arg(long, default_value = "")]
    pub from: String,
    /// To this UTC day, inclusive.
    #[arg(long, default_value = "")]
    pub to: String,
    /// Rows of fewer calls than this have their figures withheld.
    #[arg(long, default_value_t = 5)]
    pub k: i64,
    /// One JSON object per row.
    #[arg(long)]
    pub json: bool,
    /// Per flow step instead: visits, drop-offs, time in the step, and
    /// the menu choices out of it.
    #[arg(long)]
    pub steps: bool,
}

/// `dhwani stats --steps`: the step and choice rows, small ones withheld.
fn steps(args: &StatsArgs, cfg: &Config) -> anyhow::Result<ExitCode> {
    let rt = crate::cli::privacy::runtime()?;
    let (steps, choices) = rt.block_on(async {
        let store = crate::privacy::open_store(&cfg.store.url, &cfg.data_dir).await?;
        let rows = store
            .usage_steps(args.tenant.as_deref(), &args.from, &args.to)
            .await;
        store.close().await;
        rows
    })?;
    let k = args.k;
    if args.json {
        for r in &steps {
            let mut v = serde_json::to_value(r).unwrap_or_default();
            v["kind"] = "step".into();
            v["withheld"] = (r.entered < k).into();
            if r.entered < k {
                for f in ["entered", "dropped", "time_ms"] {
                    v[f] = format!("<{k}").into();
                }
            }
            println!("{v}");
        }
        for r in &choices {
            let mut v = serde_json::to_value(r).unwrap_or_default();
            v["kind"] = "choice".into();
            v["withheld"] = (r.chosen < k).into();
            if r.chosen < k {
                v["chosen"] = format!("<{k}").into();
            }
            println!("{v}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<10} {:<10} {:<20} {:<20} {:>8} {:>8} {:>9}",
        "TENANT", "DAY", "FLOW", "STEP", "VISITS", "DROPPED", "AVG SECS"
    );
    for r in &steps {
        if r.entered < k {
            println!(
                "{:<10} {:<10} {:<20} {:<20} {:>8} (fewer than {k} visits: withheld)",
                r.tenant,
                r.day,
                r.flow,
                r.step,
                format!("<{k}")
            );
        } else {
            println!(
                "{:<10} {:<10} {:<20} {:<20} {:>8} {:>8} {:>9}",
                r.tenant,
                r.day,
                r.flow,
                r.step,
                r.entered,
                r.dropped,
                secs(r.time_ms, r.entered)
            );
        }
    }
    println!();
    println!(
        "{:<10} {:<10} {:<20} {:<20} {:<8} {:>8}",
        "TENANT", "DAY", "FLOW", "STEP", "CHOICE", "TIMES"
    );
    for r in &choices {
        let n = if r.chosen < k {
            format!("<{k} (withheld)")
        } else {
            r.chosen.to_string()
        };
        println!(
            "{:<10} {:<10} {:<20} {:<20} {:<8} {:>8}",
            r.tenant, r.day, r.flow, r.step, r.choice, n
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn valid_day(d: &str) -> bool {
    d.is_empty() || (d.len() == 10 && jiff::civil::Date::strptime("%Y-%m-%d", d).is_ok())
}

fn secs(ms: i64, n: i64) -> String {
    if n == 0 {
        "-".into()
    } else {
        format!("{:.1}", ms as f64 / 1000.0 / n as f64)
    }
}

/// One row as shown: withheld below k.
fn json_row(r: &UsageRow, k: i64) -> serde_json::Value {
    if r.calls < k {
        return serde_json::json!({
            "tenant": r.tenant, "day": r.day, "flow": r.flow, "outcome": r.outcome,
            "withheld": true, "calls": format!("<{k}"),
        });
    }
    let mut v = serde_json::to_value(r).unwrap_or_default();
    v["withheld"] = false.into();
    v
}

/// Runs `dhwani stats`.
pub fn run(args: StatsArgs, cfg: &Config) -> anyhow::Result<ExitCode> {
    for d in [&args.from, &args.to] {
        if !valid_day(d) {
            anyhow::bail!("`{d}` is not a day: write YYYY-MM-DD, e.g. 2026-12-01");
        }
    }
    if args.k < 1 {
        anyhow::bail!("--k must be at least 1");
    }
    if args.steps {
        return steps(&args, cfg);
    }
    let rt = crate::cli::privacy::runtime()?;
    let rows = rt.block_on(async {
        let store = crate::privacy::open_store(&cfg.store.url, &cfg.data_dir).await?;
        let rows = store
            .usage(args.tenant.as_deref(), &args.from, &args.to)
            .await;
        store.close().await;
        rows
    })?;
    if args.json {
        for r in &rows {
            println!("{}", json_row(r, args.k));
        }
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<10} {:<10} {:<20} {:<15} {:>6} {:>8} {:>8} {:>6} {:>6} {:>8} {:>8} {:>8}",
        "TENANT",
        "DAY",
        "FLOW",
        "OUTCOME",
        "CALLS",
        "ANSWERED",
        "AVG SECS",
        "QUEUED",
        "AGENT",
        "AVG WAIT",
        "AVG TALK",
        "RECORDED"
    );
    for r in &rows {
        if r.calls < args.k {
            println!(
                "{:<10} {:<10} {:<20} {:<15} {:>6} (fewer than {} calls: withheld)",
                r.tenant,
                r.day,
                r.flow,
                r.outcome,
                format!("<{}", args.k),
                args.k
            );
            continue;
        }
        println!(
            "{:<10} {:<10} {:<20} {:<15} {:>6} {:>8} {:>8} {:>6} {:>6} {:>8} {:>8} {:>8}",
            r.tenant,
            r.day,
            r.flow,
            r.outcome,
            r.calls,
            r.answered,
            secs(r.duration_ms, r.answered),
            r.queued,
            r.agent_answered,
            secs(r.wait_ms, r.queued),
            secs(r.talk_ms, r.agent_answered),
            r.recorded
        );
    }
    Ok(ExitCode::SUCCESS)
}
