//! Webhook throughput (issue 15): `cargo bench --bench webhooks [-- CALLS]`.
//!
//! For SQLite and for a throwaway PostgreSQL (`tests/common/pg.rs`): CALLS
//! calls (default 2,000) are written as the server's log writer writes
//! them (a start row and a CDR per call, in batches of 100 calls), which
//! puts three events per call in the outbox (started, answered, ended) in
//! the same transactions; then the deliverer (`server::webhooks`, as the
//! server runs it) sends them to an HTTPS receiver on loopback (keep-alive,
//! answers 200 at once) with the tenant's concurrency at 4 (the default)
//! and at 16. Printed: events written a second, events delivered a second,
//! and the process's CPU per delivered event (the receiver's TLS is in the
//! same process, so this is an upper bound). Bounded: each delivery run
//! gives up after 120 s.

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use dhwani::store::CallRecord;
use dhwani::store::writer::Record;
use tokio::io::AsyncWriteExt;

fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    ticks / 100.0
}

async fn receiver(
    listener: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    count: Arc<AtomicUsize>,
) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            return;
        };
        let (acceptor, count) = (acceptor.clone(), Arc::clone(&count));
        tokio::spawn(async move {
            let Ok(mut tls) = acceptor.accept(tcp).await else {
                return;
            };
            while common::https::read_request(&mut tls).await.is_some() {
                count.fetch_add(1, Ordering::Relaxed);
                let ok = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}";
                if tls.write_all(ok).await.is_err() {
                    return;
                }
            }
        });
    }
}

fn call(n: usize) -> CallRecord {
    let start = 1_796_000_000_000 + n as i64 * 10;
    CallRecord {
        call_id: format!("bench{n:07}"),
        sip_call_id: format!("bench-{n}@127.0.0.1"),
        tenant: "acme".into(),
        flow: "Bench".into(),
        flow_version: "v".into(),
        caller: format!("+9198{:08}", n),
        called: "1000".into(),
        start_ms: start,
        answer_ms: Some(start + 20),
        end_ms: None,
        duration_ms: None,
        hangup_by: None,
        hangup_cause: None,
        outcome: None,
        recording_id: None,
        queue: None,
        agent: None,
        wait_ms: None,
        talk_ms: None,
        timing: None,
        path: Vec::new(),
    }
}

async fn run(
    url: &str,
    label: &str,
    calls: usize,
    concurrency: usize,
    port: u16,
    ca: &std::path::Path,
    count: &Arc<AtomicUsize>,
) {
    let dir = tempfile::tempdir().unwrap();
    let store = dhwani::privacy::open_store(url, dir.path()).await.unwrap();
    if !url.is_empty() {
        store.exec_for_tests("DELETE FROM webhook_outbox").await;
        store.exec_for_tests("DELETE FROM calls").await;
    }
    let cfg = dhwani::config::Config::parse(
        &format!(
            r#"[[tenants]]
id = "acme"
numbers = ["1000"]
flows_dir = "f"
fetch_private_networks = ["127.0.0.1/32"]
fetch_ca_file = "{ca}"
webhook_max_concurrent = {concurrency}
webhook_max_per_sec = 1000000
[[tenants.webhooks]]
url = "https://localhost:{port}/hook"
"#,
            ca = ca.display()
        ),
        "bench",
    )
    .unwrap();
    store.set_webhooks(&cfg.tenants);
    // Written as the log writer writes: starts and CDRs, 100 calls a batch.
    let t0 = Instant::now();
    for chunk in (0..calls).collect::<Vec<_>>().chunks(100) {
        let mut batch = Vec::new();
        for &n in chunk {
            let c = call(n);
            let mut end = c.clone();
            end.end_ms = Some(c.start_ms + 60_000);
            end.duration_ms = Some(59_980);
            end.outcome = Some("hangup: done".into());
            batch.push(Record::Call(Box::new(c)));
            batch.push(Record::Call(Box::new(end)));
        }
        store.write(&batch).await.unwrap();
    }
    let written = t0.elapsed();
    let events = calls * 3;
    let sender = dhwani::tenants::webhooks::Sender::new(&cfg.tenants[0], dir.path(), dir.path())
        .unwrap()
        .unwrap();
    let senders: HashMap<String, Arc<_>> = [("acme".to_owned(), Arc::new(sender))].into();
    count.store(0, Ordering::Relaxed);
    let stop = tokio_util::sync::CancellationToken::new();
    let (cpu0, t1) = (cpu_secs(), Instant::now());
    let task = dhwani::server::webhooks::start(
        store.clone(),
        "bench".into(),
        senders,
        stop.clone(),
        std::sync::Arc::new(dhwani::metrics::Metrics::new()),
    );
    while count.load(Ordering::Relaxed) < events && t1.elapsed() < Duration::from_secs(120) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let (took, cpu) = (t1.elapsed(), cpu_secs() - cpu0);
    let delivered = count.load(Ordering::Relaxed);
    stop.cancel();
    let _ = task.await;
    store.close().await;
    println!(
        "| {label} | {concurrency} | {events} | {:.0} | {delivered} | {:.0} | {:.2} ms |",
        events as f64 / written.as_secs_f64(),
        delivered as f64 / took.as_secs_f64(),
        cpu * 1000.0 / delivered.max(1) as f64,
    );
}

fn main() {
    let calls: usize = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .and_then(|a| a.parse().ok())
        .unwrap_or(2000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (ca_pem, chain, key) = common::https::certificates(&["localhost"]);
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, ca_pem).unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let port = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(receiver(
            listener,
            common::https::acceptor(chain, key),
            Arc::clone(&count),
        ));
        port
    });
    let pg = common::pg::TempPostgres::start();
    println!(
        "| database | concurrency | events | written / s | delivered | delivered / s | CPU per event |"
    );
    println!("|---|---|---|---|---|---|---|");
    for concurrency in [4, 16] {
        rt.block_on(run("", "SQLite", calls, concurrency, port, &ca, &count));
        rt.block_on(run(
            &pg.url,
            "PostgreSQL",
            calls,
            concurrency,
            port,
            &ca,
            &count,
        ));
    }
}
