//! `dhwani queues show`: each queue's figures from the store's timelines
//! (so every node's calls count, and nothing needs the server running):
//! callers waiting now and the longest wait, answered, abandoned,
//! overflowed, the service level and the average wait.

use std::process::ExitCode;

use clap::Subcommand;

use crate::config::Config;

/// `dhwani queues ...`
#[derive(Debug, Subcommand)]
pub enum QueuesCommand {
    /// Figures per queue.
    Show {
        /// The tenant.
        #[arg(long)]
        tenant: String,
        /// Only this queue.
        queue: Option<String>,
        /// Calls since: an age (30m, 2h, 7d), a date or a time.
        #[arg(long, default_value = "24h")]
        since: String,
        /// JSON, for scripts.
        #[arg(long)]
        json: bool,
    },
}

pub use crate::store::agents::{Figures, figures};

/// Runs a `queues` subcommand.
pub fn run(cmd: QueuesCommand, cfg: &Config) -> anyhow::Result<ExitCode> {
    let QueuesCommand::Show {
        tenant,
        queue,
        since,
        json,
    } = cmd;
    let t = cfg
        .tenants
        .iter()
        .find(|t| t.id == tenant)
        .ok_or_else(|| anyhow::anyhow!("no tenant `{tenant}` in the config"))?;
    let now = jiff::Timestamp::now();
    let since_ms = crate::cli::calls::parse_since(&since, now).map_err(anyhow::Error::msg)?;
    let rt = crate::cli::privacy::runtime()?;
    let rows = rt.block_on(async {
        let store = crate::privacy::open_store(&cfg.store.url, &cfg.data_dir).await?;
        let rows = store.queue_events(&tenant, since_ms).await;
        store.close().await;
        rows
    })?;
    let level = |name: &str| {
        t.queues
            .iter()
            .find(|q| q.name == name)
            .map_or(20, |q| q.service_level_secs)
    };
    let mut all = figures(&rows, now.as_millisecond(), level);
    // Configured queues with no calls yet are shown too.
    for q in &t.queues {
        all.entry(q.name.clone()).or_default();
    }
    if let Some(q) = &queue {
        all.retain(|name, _| name == q);
    }
    if json {
        for (name, f) in &all {
            let mut v = serde_json::to_value(f)?;
            v["queue"] = serde_json::Value::String(name.clone());
            println!("{v}");
        }
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{:<16} {:>7} {:>9} {:>8} {:>9} {:>10} {:>9} {:>8}",
        "QUEUE",
        "WAITING",
        "LONGEST",
        "ANSWERED",
        "ABANDONED",
        "OVERFLOWED",
        "MEAN WAIT",
        "SERVICE"
    );
    for (name, f) in &all {
        println!(
            "{:<16} {:>7} {:>8.0}s {:>8} {:>9} {:>10} {:>5} {:>8.1}s {:>7.0}%",
            name,
            f.waiting,
            f.longest_wait_secs,
            f.answered,
            f.abandoned,
            f.overflowed,
            f.left_by_key,
            f.mean_wait_secs,
            f.service_level_pct
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::agents::QueueEventRow;

    fn row(call: &str, at: i64, detail: &str, end: Option<i64>) -> QueueEventRow {
        QueueEventRow {
            call_id: call.into(),
            at_ms: at,
            detail: detail.into(),
            end_ms: end,
        }
    }

    #[test]
    fn answered_abandoned_overflowed_and_waiting_callers_are_told_apart() {
        let rows = vec![
            row(
                "a",
                0,
                r#"{"event":"joined","name":"support"}"#,
                Some(90_000),
            ),
            row(
                "a",
                5_000,
                r#"{"event":"bridged","name":"support","wait_secs":5.0}"#,
                Some(90_000),
            ),
            row(
                "b",
                0,
                r#"{"event":"joined","name":"support"}"#,
                Some(60_000),
            ),
            row(
                "b",
                40_000,
                r#"{"event":"bridged","name":"support","wait_secs":40.0}"#,
                Some(60_000),
            ),
            row(
                "c",
                0,
                r#"{"event":"joined","name":"support"}"#,
                Some(10_000),
            ),
            row(
                "d",
                0,
                r#"{"event":"joined","name":"support"}"#,
                Some(30_000),
            ),
            row(
                "d",
                30_000,
                r#"{"event":"overflow","name":"support","why":"max wait"}"#,
                Some(30_000),
            ),
            row("e", 100_000, r#"{"event":"joined","name":"support"}"#, None),
            row("f", 0, r#"{"event":"joined","name":"sales"}"#, None),
            row(
                "g",
                0,
                r#"{"event":"joined","name":"support"}"#,
                Some(5_000),
            ),
            row(
                "g",
                5_000,
                r#"{"event":"left","name":"support","key":"0"}"#,
                Some(5_000),
            ),
        ];
        let all = figures(&rows, 130_000, |_| 20);
        let s = &all["support"];
        assert_eq!(
            (
                s.answered,
                s.answered_in_service_level,
                s.abandoned,
                s.overflowed,
                s.waiting
            ),
            (2, 1, 1, 1, 1)
        );
        assert_eq!(s.longest_wait_secs, 30.0);
        assert_eq!(s.mean_wait_secs, 22.5);
        assert!(
            (s.service_level_pct - 100.0 / 3.0).abs() < 1e-9,
            "{}",
            s.service_level_pct
        );
        assert_eq!(all["sales"].waiting, 1);
        assert_eq!(s.left_by_key, 1);
    }
}
