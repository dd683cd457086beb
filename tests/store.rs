//! The store against both real databases: the same records written to
//! SQLite and to a throwaway PostgreSQL read back identically, and the
//! queries of `calls list` filter the same way on both.

mod common;

use dhwani::store::writer::Record;
use dhwani::store::{CallFilter, CallRecord, Event, Store};

fn call(n: i64, tenant: &str, caller: &str) -> CallRecord {
    CallRecord {
        call_id: format!("c{n:03}"),
        sip_call_id: format!("sip-{n}@127.0.0.1"),
        tenant: tenant.into(),
        flow: "Acme Support".into(),
        flow_version: "abc123".into(),
        caller: caller.into(),
        called: "1000".into(),
        start_ms: 1_764_000_000_000 + n * 1000,
        answer_ms: Some(1_764_000_000_000 + n * 1000 + 20),
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
        timing: (n % 3 == 0).then_some(dhwani::store::FrameTiming {
            frames: 1500 + n,
            late_2ms: 40,
            late_5ms: 9,
            late_10ms: 2,
            late_20ms: 1,
            skipped_frames: 0,
        }),
        path: Vec::new(),
    }
}

fn records() -> Vec<Record> {
    let mut out = Vec::new();
    for n in 0..20 {
        let tenant = if n % 2 == 0 { "acme" } else { "sunrise" };
        let caller = format!("+9198{:08}", n % 5);
        let mut c = call(n, tenant, &caller);
        out.push(Record::Call(Box::new(c.clone())));
        for seq in 0..5 {
            out.push(Record::Event(Event {
                call_id: c.call_id.clone(),
                tenant: tenant.into(),
                seq,
                at_ms: c.start_ms + seq * 250,
                offset_ms: seq * 250,
                step: if seq == 0 {
                    String::new()
                } else {
                    "main_menu".into()
                },
                kind: ["sip", "step", "prompt", "digits", "branch"][seq as usize].into(),
                detail: format!(r#"{{"n":{n},"text":"caf\u00e9 ‘quoted’ \"x\""}}"#),
            }));
        }
        // The CDR completes the row (an upsert).
        c.end_ms = Some(c.start_ms + 5000);
        c.duration_ms = Some(4980);
        c.hangup_by = Some("caller".into());
        c.hangup_cause = Some("BYE from caller".into());
        c.outcome = Some("caller hung up".into());
        c.recording_id = (n % 3 == 0).then(|| format!("r{n}"));
        out.push(Record::Call(Box::new(c)));
    }
    out
}

async fn dump(store: &Store) -> (Vec<CallRecord>, Vec<Vec<Event>>, Vec<usize>) {
    let all = store
        .list_calls(&CallFilter {
            limit: 1000,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut events = Vec::new();
    for c in &all {
        events.push(store.events(&c.call_id).await.unwrap());
    }
    let filtered = [
        CallFilter {
            tenant: Some("acme".into()),
            limit: 1000,
            ..Default::default()
        },
        CallFilter {
            caller: Some("+919800000002".into()),
            limit: 1000,
            ..Default::default()
        },
        CallFilter {
            since_ms: Some(1_764_000_000_000 + 15_000),
            limit: 1000,
            ..Default::default()
        },
        CallFilter {
            tenant: Some("sunrise".into()),
            limit: 3,
            ..Default::default()
        },
    ];
    let mut counts = Vec::new();
    for f in &filtered {
        counts.push(store.list_calls(f).await.unwrap().len());
    }
    (all, events, counts)
}

async fn write_and_dump(store: Store) -> (Vec<CallRecord>, Vec<Vec<Event>>, Vec<usize>) {
    let (log, task) =
        dhwani::store::writer::start(store.clone(), std::time::Duration::from_millis(50));
    for r in records() {
        log.send(r);
    }
    drop(log);
    task.await.unwrap();
    // Writing the same records again changes nothing (idempotent upserts).
    store.write(&records()).await.unwrap();
    let d = dump(&store).await;
    store.close().await;
    d
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_and_postgres_store_the_same_log_and_cdrs() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = dhwani::privacy::open_store("", dir.path()).await.unwrap();
    let pg = common::pg::TempPostgres::start();
    let postgres = dhwani::privacy::open_store(&pg.url, dir.path())
        .await
        .unwrap();
    let a = write_and_dump(sqlite).await;
    let b = write_and_dump(postgres).await;
    assert_eq!(a.0.len(), 20);
    assert_eq!(a.1.iter().map(Vec::len).sum::<usize>(), 100);
    assert_eq!(a.2, vec![10, 4, 5, 3], "filters on SQLite");
    let first = a.0.iter().find(|c| c.call_id == "c000").unwrap();
    assert_eq!(first.hangup_by.as_deref(), Some("caller"));
    assert_eq!(first.recording_id.as_deref(), Some("r0"));
    assert_eq!(
        first.timing.map(|t| (t.frames, t.late_10ms, t.late_20ms)),
        Some((1500, 2, 1)),
        "the frame timing columns round-trip"
    );
    let c1 = a.0.iter().find(|c| c.call_id == "c001").unwrap();
    assert_eq!(c1.timing, None);
    assert_eq!(a, b, "SQLite and PostgreSQL disagree");
    // Reopening migrates nothing and keeps the data.
    let again = dhwani::privacy::open_store("", dir.path()).await.unwrap();
    assert_eq!(
        again
            .call("sip-3@127.0.0.1")
            .await
            .unwrap()
            .unwrap()
            .call_id,
        "c003"
    );
}

#[tokio::test]
async fn a_store_from_a_newer_dhwani_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let s = dhwani::privacy::open_store("", dir.path()).await.unwrap();
    s.write(&[]).await.unwrap();
    s.close().await;
    let url = format!("sqlite://{}", dir.path().join("dhwani.db").display());
    let raw = dhwani::privacy::open_store(&url, dir.path()).await.unwrap();
    raw.exec_for_tests("INSERT INTO dhwani_schema (version) VALUES (99)")
        .await;
    raw.close().await;
    let err = dhwani::privacy::open_store("", dir.path())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("schema version 99"), "{err}");
}

#[tokio::test]
async fn an_unreachable_postgres_is_a_named_error() {
    let port = common::free_tcp_port();
    let url = format!("postgres://dhwani:secret@127.0.0.1:{port}/x?connect_timeout=2");
    let dir = tempfile::tempdir().unwrap();
    let err = dhwani::privacy::open_store(&url, dir.path())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("cannot open the store"), "{err}");
    assert!(!err.contains("secret"), "password leaked: {err}");
}

/// A writer far behind drops timeline events (counted), never blocks the
/// sender, and never drops a CDR row (issue 13 point 7).
#[tokio::test(flavor = "current_thread")]
async fn a_full_event_queue_drops_and_counts_events_but_keeps_every_cdr() {
    let dir = tempfile::tempdir().unwrap();
    let store = dhwani::privacy::open_store("", dir.path()).await.unwrap();
    let (log, task) = dhwani::store::writer::start_with_capacity(
        store.clone(),
        std::time::Duration::from_millis(50),
        10,
    );
    // On one thread the writer cannot run while we send: the queue fills.
    for n in 0..20 {
        log.send(Record::Call(Box::new(call(n, "acme", "+919800000001"))));
    }
    for seq in 0..1000 {
        log.send(Record::Event(Event {
            call_id: "c000".into(),
            tenant: "acme".into(),
            seq,
            at_ms: 1_764_000_000_000 + seq,
            offset_ms: seq,
            step: "main".into(),
            kind: "dtmf".into(),
            detail: "{}".into(),
        }));
    }
    assert_eq!(log.dropped(), 990, "all but the queue's ten were dropped");
    drop(log);
    task.await.unwrap();
    let calls = store.list_calls(&CallFilter::default()).await.unwrap();
    assert_eq!(calls.len(), 20, "every CDR row written");
    let events = store.events("c000").await.unwrap();
    assert_eq!(events.len(), 10);
    store.close().await;
}

/// The pseudonym re-key's statements on both databases: every stored
/// pseudonym of the tenant (and only of it) is rewritten, numbers still in
/// clear are left, and the new fingerprint is recorded.
async fn rekey_and_dump(store: Store) -> (Vec<CallRecord>, Vec<String>, Option<String>) {
    let mut a = call(1, "acme", "anon-aaaa");
    a.end_ms = Some(a.start_ms + 5);
    let b = call(2, "acme", "+919800000001");
    let c = call(3, "sunrise", "anon-cccc");
    store
        .write(&[
            Record::Call(Box::new(a)),
            Record::Call(Box::new(b)),
            Record::Call(Box::new(c)),
        ])
        .await
        .unwrap();
    store.withdraw_consent("acme", "anon-w1", 1).await.unwrap();
    store
        .withdraw_consent("sunrise", "anon-w2", 1)
        .await
        .unwrap();
    store
        .place_hold(&dhwani::store::HoldRow {
            hold_id: "hold-1".into(),
            tenant: "acme".into(),
            scope: "number".into(),
            target: "anon-h1,anon-h2".into(),
            reason: "case".into(),
            placed_ms: 1,
        })
        .await
        .unwrap();
    assert_eq!(store.pseudonym_fingerprint("acme").await.unwrap(), None);
    let counts = store
        .rekey_pseudonyms("acme", "fp-2", |p| format!("{p}-2"))
        .await
        .unwrap();
    assert_eq!(counts, (1, 1, 1));
    let again = store
        .rekey_pseudonyms("acme", "fp-3", |p| format!("{p}-3"))
        .await
        .unwrap();
    assert_eq!(again, (1, 1, 1));
    let mut calls = store.tenant_calls("acme").await.unwrap();
    calls.extend(store.tenant_calls("sunrise").await.unwrap());
    let holds = store.holds().await.unwrap();
    assert!(
        store
            .consent_withdrawn("acme", "anon-w1-2-3")
            .await
            .unwrap()
    );
    assert!(!store.consent_withdrawn("acme", "anon-w1").await.unwrap());
    assert!(store.consent_withdrawn("sunrise", "anon-w2").await.unwrap());
    assert!(store.lift_hold("hold-1").await.unwrap());
    assert!(
        store.holds().await.unwrap().is_empty(),
        "a lifted hold leaves no row"
    );
    let fp = store.pseudonym_fingerprint("acme").await.unwrap();
    store.close().await;
    (calls, holds.into_iter().map(|h| h.target).collect(), fp)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pseudonym_rekey_rewrites_the_same_rows_on_sqlite_and_postgres() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = dhwani::privacy::open_store("", dir.path()).await.unwrap();
    let pg = common::pg::TempPostgres::start();
    let postgres = dhwani::privacy::open_store(&pg.url, dir.path())
        .await
        .unwrap();
    let a = rekey_and_dump(sqlite).await;
    let b = rekey_and_dump(postgres).await;
    let callers: Vec<&str> = a.0.iter().map(|c| c.caller.as_str()).collect();
    assert_eq!(callers, ["anon-aaaa-2-3", "+919800000001", "anon-cccc"]);
    assert_eq!(a.1, ["anon-h1-2-3,anon-h2-2-3"]);
    assert_eq!(a.2.as_deref(), Some("fp-3"));
    assert_eq!(a, b, "SQLite and PostgreSQL disagree");
}

/// Claims on agents between two nodes: what each node sees, on one store.
async fn claims_between_two_nodes(store: Store) -> Vec<String> {
    use dhwani::store::claims::ClaimRow;
    let claim = |node: &str, state: &str, until: i64| ClaimRow {
        tenant: "acme".into(),
        extension: "1001".into(),
        node: node.into(),
        state: state.into(),
        lease_until_ms: until,
    };
    let mut seen: Vec<String> = Vec::new();
    let note = |seen: &mut Vec<String>, what: &str, v: bool| seen.push(format!("{what}={v}"));
    // Node a rings 1001 (lease until 10 000); b is refused, a may renew.
    note(
        &mut seen,
        "a rings",
        store
            .claim_agent(&claim("a", "ringing", 10_000), 1_000)
            .await
            .unwrap(),
    );
    note(
        &mut seen,
        "b rings",
        store
            .claim_agent(&claim("b", "ringing", 10_500), 1_500)
            .await
            .unwrap(),
    );
    note(
        &mut seen,
        "a talks",
        store
            .claim_agent(&claim("a", "on-call", 11_000), 2_000)
            .await
            .unwrap(),
    );
    // a's heartbeat renews its claim; b is still refused after 11 000.
    assert_eq!(store.renew_node("a", 0, 20_000).await.unwrap(), 1);
    note(
        &mut seen,
        "b at 12000",
        store
            .claim_agent(&claim("b", "ringing", 22_000), 12_000)
            .await
            .unwrap(),
    );
    // a's release by b does nothing.
    store.release_agent("acme", "1001", "b").await.unwrap();
    note(
        &mut seen,
        "b at 13000",
        store
            .claim_agent(&claim("b", "ringing", 23_000), 13_000)
            .await
            .unwrap(),
    );
    // a dies: no heartbeat; once its lease has run out, b gets the agent.
    note(
        &mut seen,
        "b at 20001",
        store
            .claim_agent(&claim("b", "ringing", 30_000), 20_001)
            .await
            .unwrap(),
    );
    let held = store.claims(20_002).await.unwrap();
    seen.push(format!(
        "{:?}",
        held.iter()
            .map(|c| (&c.node[..], &c.state[..]))
            .collect::<Vec<_>>()
    ));
    // a restarts: its old claims are void, and it holds none; b's stays.
    assert_eq!(store.clear_claims("a").await.unwrap(), 0);
    note(
        &mut seen,
        "a again",
        store
            .claim_agent(&claim("a", "ringing", 31_000), 21_000)
            .await
            .unwrap(),
    );
    // b releases: free for a.
    store.release_agent("acme", "1001", "b").await.unwrap();
    note(
        &mut seen,
        "a after release",
        store
            .claim_agent(&claim("a", "ringing", 31_000), 21_000)
            .await
            .unwrap(),
    );
    assert_eq!(store.clear_claims("a").await.unwrap(), 1);
    seen.push(format!("{:?}", store.node_lease("a").await.unwrap()));
    store.close().await;
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_claims_are_refused_to_a_second_node_until_released_or_the_lease_runs_out() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = dhwani::privacy::open_store("", dir.path()).await.unwrap();
    let pg = common::pg::TempPostgres::start();
    let postgres = dhwani::privacy::open_store(&pg.url, dir.path())
        .await
        .unwrap();
    let a = claims_between_two_nodes(sqlite).await;
    let b = claims_between_two_nodes(postgres).await;
    assert_eq!(
        a,
        [
            "a rings=true",
            "b rings=false",
            "a talks=true",
            "b at 12000=false",
            "b at 13000=false",
            "b at 20001=true",
            "[(\"b\", \"ringing\")]",
            "a again=false",
            "a after release=true",
            "Some(20000)",
        ]
    );
    assert_eq!(a, b, "SQLite and PostgreSQL disagree");
}

/// Issue 14, point 5: after an erasure SQLite keeps no copy of a deleted
/// row in its files (secure_delete, then the WAL checkpointed and
/// truncated), and says when another process's open read kept the
/// checkpoint from completing; PostgreSQL never claims it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrub_reports_what_each_database_can_guarantee_about_deleted_rows() {
    use sqlx::Connection;
    let dir = tempfile::tempdir().unwrap();
    let store = dhwani::privacy::open_store("", dir.path()).await.unwrap();
    let number = "+919811122233";
    let mut c = call(1, "acme", number);
    c.outcome = Some(format!("said {number}"));
    store.write(&[Record::Call(Box::new(c))]).await.unwrap();
    let files = |d: &std::path::Path| -> Vec<u8> {
        let mut all = Vec::new();
        for f in ["dhwani.db", "dhwani.db-wal"] {
            all.extend(std::fs::read(d.join(f)).unwrap_or_default());
        }
        all
    };
    let holds = |b: &[u8]| b.windows(number.len()).any(|w| w == number.as_bytes());
    assert!(holds(&files(dir.path())), "the number is stored before");
    // Another process reads (its snapshot uses the WAL): the checkpoint
    // cannot complete, and the report says so.
    let url = format!("sqlite://{}", dir.path().join("dhwani.db").display());
    sqlx::any::install_default_drivers();
    let mut reader = sqlx::AnyConnection::connect(&url).await.unwrap();
    sqlx::query("BEGIN").execute(&mut reader).await.unwrap();
    sqlx::query("SELECT COUNT(*) FROM calls")
        .fetch_one(&mut reader)
        .await
        .unwrap();
    store.delete_call("c001").await.unwrap();
    let blocked = store.scrub().await.unwrap();
    assert!(!blocked.complete, "{blocked:?}");
    assert!(
        blocked.note.contains("could not be checkpointed"),
        "{blocked:?}"
    );
    sqlx::query("COMMIT").execute(&mut reader).await.unwrap();
    reader.close().await.unwrap();
    // The reader is gone: complete, and no byte of the number is left in
    // the database file or its WAL.
    let done = store.scrub().await.unwrap();
    assert!(done.complete, "{done:?}");
    assert!(
        !holds(&files(dir.path())),
        "a deleted row's bytes are still on disk"
    );
    store.close().await;
    // PostgreSQL: VACUUM runs, and the report does not claim the bytes gone.
    let pg = common::pg::TempPostgres::start();
    let postgres = dhwani::privacy::open_store(&pg.url, dir.path())
        .await
        .unwrap();
    let r = postgres.scrub().await.unwrap();
    assert!(
        !r.complete && r.note.contains("does not overwrite"),
        "{r:?}"
    );
    postgres.close().await;
}

/// Issue 14, point 7: usage is counted once per call as it ends (a CDR
/// written again does not count twice), the same on both databases, and
/// deleting the calls leaves it.
type Usage = (
    Vec<dhwani::store::usage::UsageRow>,
    Vec<dhwani::store::usage::StepRow>,
    Vec<dhwani::store::usage::ChoiceRow>,
);

async fn usage_of(store: Store) -> Usage {
    use dhwani::store::StepVisit;
    let visit = |step: &str, ms: i64, choice: Option<&str>| StepVisit {
        step: step.into(),
        ms,
        choice: choice.map(str::to_owned),
    };
    let ended = |n: i64, outcome: &str| {
        let mut c = call(n, "acme", "+919800000001");
        c.end_ms = Some(c.start_ms + 60_000);
        c.duration_ms = Some(59_000);
        c.outcome = Some(outcome.into());
        // menu (pressed 2) -> support; menu came back once by timeout.
        c.path = vec![
            visit("menu", 4_000, Some("timeout")),
            visit("menu", 3_000, Some("2")),
            visit("support", 50_000, None),
        ];
        c.hangup_by = Some(if n == 1 { "dhwani" } else { "caller" }.into());
        c
    };
    let start = call(1, "acme", "+919800000001");
    let mut queued = ended(2, "queued: support");
    queued.queue = Some("support".into());
    queued.wait_ms = Some(12_000);
    queued.talk_ms = Some(40_000);
    let batch = vec![
        Record::Call(Box::new(start)),
        Record::Call(Box::new(ended(1, "transferred: +919812345678"))),
        Record::Call(Box::new(ended(1, "transferred: +919812345678"))),
        Record::Call(Box::new(queued)),
    ];
    store.write(&batch).await.unwrap();
    store.delete_call("c001").await.unwrap();
    store.delete_call("c002").await.unwrap();
    let rows = store.usage(Some("acme"), "", "").await.unwrap();
    let (steps, choices) = store.usage_steps(Some("acme"), "", "").await.unwrap();
    store.close().await;
    (rows, steps, choices)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_is_counted_once_per_call_and_outlives_the_calls_on_both_databases() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = dhwani::privacy::open_store("", dir.path()).await.unwrap();
    let pg = common::pg::TempPostgres::start();
    let postgres = dhwani::privacy::open_store(&pg.url, dir.path())
        .await
        .unwrap();
    let a = usage_of(sqlite).await;
    let b = usage_of(postgres).await;
    let kinds: Vec<(&str, i64, i64, i64)> =
        a.0.iter()
            .map(|r| (r.outcome.as_str(), r.calls, r.agent_answered, r.wait_ms))
            .collect();
    assert_eq!(kinds, [("queued", 1, 1, 12_000), ("transferred", 1, 0, 0)]);
    assert!(a.0.iter().all(|r| r.day == "2025-11-24"), "{a:?}");
    // Per step, two calls (the CDR written twice counted once): menu
    // visited 4 times for 14 s, support twice, the caller left in it once.
    let steps: Vec<(&str, i64, i64, i64)> =
        a.1.iter()
            .map(|r| (r.step.as_str(), r.entered, r.dropped, r.time_ms))
            .collect();
    assert_eq!(steps, [("menu", 4, 0, 14_000), ("support", 2, 1, 100_000)]);
    let choices: Vec<(&str, &str, i64)> =
        a.2.iter()
            .map(|r| (r.step.as_str(), r.choice.as_str(), r.chosen))
            .collect();
    assert_eq!(choices, [("menu", "2", 2), ("menu", "timeout", 2)]);
    assert_eq!(a, b, "SQLite and PostgreSQL disagree");
}

/// The webhook outbox on one store, as seen by two nodes: what is
/// enqueued for which webhook, what is due, who wins a claim, retries,
/// dead letters and deletion with the timeline. Event ids are random, so
/// the result names rows by call, webhook and type.
async fn outbox_between_two_nodes(store: Store) -> Vec<String> {
    use dhwani::store::outbox::{Attempt, OutboxFilter};
    let cfg = dhwani::config::Config::parse(
        r#"[[tenants]]
id = "acme"
numbers = ["1000"]
flows_dir = "f"
[[tenants.webhooks]]
name = "crm"
url = "https://crm.example.in/hook"
[[tenants.webhooks]]
name = "steps"
url = "https://crm.example.in/steps"
events = ["step.entered", "call.ended"]

[[tenants]]
id = "sunrise"
numbers = ["2000"]
flows_dir = "f"
"#,
        "test",
    )
    .unwrap();
    store.set_webhooks(&cfg.tenants);
    let mut seen = Vec::new();
    // Two calls of acme and one of sunrise: start, timeline, end.
    for (n, tenant) in [(0, "acme"), (1, "sunrise"), (2, "acme")] {
        let c = call(n, tenant, "+919800000001");
        let mut batch = vec![Record::Call(Box::new(c.clone()))];
        for (seq, (kind, detail)) in [
            ("sip", r#"{"event":"answered"}"#),
            ("step", r#"{"name":"menu"}"#),
            ("digits", r#"{"digits":"****","result":"ok","attempt":"1"}"#),
            ("consent", r#"{"granted":"yes","answer":"1"}"#),
            ("recording", r#"{"event":"saved","id":"r1","seconds":2.5}"#),
        ]
        .into_iter()
        .enumerate()
        {
            batch.push(Record::Event(Event {
                call_id: c.call_id.clone(),
                tenant: tenant.into(),
                seq: seq as i64,
                at_ms: c.start_ms + 100 * seq as i64,
                offset_ms: 100 * seq as i64,
                step: "menu".into(),
                kind: kind.into(),
                detail: detail.into(),
            }));
        }
        let mut end = c.clone();
        end.end_ms = Some(c.start_ms + 5000);
        end.duration_ms = Some(4980);
        end.outcome = Some("hangup: done".into());
        batch.push(Record::Call(Box::new(end.clone())));
        store.write(&batch).await.unwrap();
        // The same CDR written again reports nothing more.
        store.write(&[Record::Call(Box::new(end))]).await.unwrap();
    }
    let all = |s: Option<&str>| OutboxFilter {
        tenant: None,
        state: s.map(str::to_owned),
        call_id: None,
        limit: 1000,
    };
    let mut rows = store.webhook_rows(&all(None)).await.unwrap();
    rows.sort_by_key(|r| (r.call_id.clone(), r.hook.clone(), r.ord));
    for r in &rows {
        seen.push(format!("{} {} {}", r.call_id, r.hook, r.kind));
    }
    // The body: version, type, the call, the caller's number for the
    // business, signed later.
    let ended = rows
        .iter()
        .find(|r| r.kind == "call.ended" && r.hook == "crm")
        .unwrap();
    let body: serde_json::Value = serde_json::from_str(&ended.body).unwrap();
    seen.push(format!(
        "body v{} {} {} from {} outcome {}",
        body["version"],
        body["type"],
        body["call_id"],
        body["data"]["cdr"]["caller"],
        body["data"]["cdr"]["outcome"]
    ));
    assert_eq!(body["id"], ended.event_id.as_str());

    let now = 2_000_000_000_000;
    let due = store.due_webhooks("acme", now, 100).await.unwrap();
    let names = |rows: &[dhwani::store::outbox::OutboxRow]| {
        let mut v: Vec<String> = rows
            .iter()
            .map(|r| format!("{} {} {}", r.call_id, r.hook, r.kind))
            .collect();
        v.sort();
        v.join(", ")
    };
    seen.push(format!("due: {}", names(&due)));
    assert!(
        store
            .due_webhooks("sunrise", now, 100)
            .await
            .unwrap()
            .is_empty()
    );
    // Both nodes claim every due row at once: each row goes to one.
    let (sa, sb) = (store.clone(), store.clone());
    let (got_a, got_b) = tokio::join!(
        sa.claim_due_webhooks("acme", "a", (now, now + 60_000), 100),
        sb.claim_due_webhooks("acme", "b", (now, now + 60_000), 100),
    );
    let (got_a, got_b) = (got_a.unwrap(), got_b.unwrap());
    let key = |r: &dhwani::store::outbox::OutboxRow| (r.event_id.clone(), r.hook.clone());
    let mut both: Vec<_> = got_a.iter().chain(&got_b).map(key).collect();
    both.sort();
    let mut want: Vec<_> = due.iter().map(key).collect();
    want.sort();
    assert_eq!(both, want, "each due row claimed by exactly one node");
    let a: Vec<bool> = due
        .iter()
        .map(|r| got_a.iter().any(|g| key(g) == key(r)))
        .collect();
    assert!(got_a.iter().all(|r| r.claim_node.as_deref() == Some("a")));
    assert!(got_b.iter().all(|r| r.claim_node.as_deref() == Some("b")));
    // Claimed rows are not due to anyone.
    assert!(
        store
            .due_webhooks("acme", now, 100)
            .await
            .unwrap()
            .is_empty()
    );
    // The winners record: c000 crm delivered, c000 steps failed (again
    // at now+1000), c002 crm failed for good (dead), c002 steps released.
    let holder = |i: usize| if a[i] { "a" } else { "b" };
    for (i, r) in due.iter().enumerate() {
        let att = match (r.call_id.as_str(), r.hook.as_str()) {
            ("c000", "crm") => Some(Attempt::Delivered { status: 204 }),
            ("c000", "steps") => Some(Attempt::Failed {
                status: Some(503),
                error: "HTTP 503".into(),
                next_ms: Some(now + 1000),
            }),
            ("c002", "crm") => Some(Attempt::Failed {
                status: None,
                error: "timed out".into(),
                next_ms: None,
            }),
            _ => None,
        };
        // A node that does not hold the row cannot record for it.
        let other = if a[i] { "b" } else { "a" };
        if let Some(att) = &att {
            store.webhook_attempted(r, other, now, att).await.unwrap();
            store
                .webhook_attempted(r, holder(i), now, att)
                .await
                .unwrap();
        } else {
            store.release_webhook(r, holder(i), now).await.unwrap();
        }
    }
    let due = store.due_webhooks("acme", now, 100).await.unwrap();
    seen.push(format!("due after: {}", names(&due)));
    let due = store.due_webhooks("acme", now + 1000, 100).await.unwrap();
    seen.push(format!("due at +1 s: {}", names(&due)));
    // A claim that lapsed (its node died) is taken over; the dead
    // node's late record changes nothing.
    let r = due
        .iter()
        .find(|r| r.hook == "steps" && r.call_id == "c000")
        .unwrap();
    assert!(
        store
            .claim_webhook(r, "b", now + 1000, now + 2000)
            .await
            .unwrap()
    );
    assert!(
        !store
            .claim_webhook(r, "a", now + 1500, now + 60_000)
            .await
            .unwrap()
    );
    assert!(
        store
            .claim_webhook(r, "a", now + 2001, now + 60_000)
            .await
            .unwrap()
    );
    store
        .webhook_attempted(r, "b", now + 2002, &Attempt::Delivered { status: 200 })
        .await
        .unwrap();
    store
        .webhook_attempted(
            r,
            "a",
            now + 2003,
            &Attempt::Failed {
                status: Some(500),
                error: "HTTP 500".into(),
                next_ms: Some(now + 5000),
            },
        )
        .await
        .unwrap();
    let again = store.webhook_event(&r.event_id).await.unwrap();
    seen.push(format!(
        "taken over: {} attempts {} status {:?}",
        again[0].state, again[0].attempts, again[0].last_status
    ));
    // The dead one is sent again on request.
    let dead = store.webhook_rows(&all(Some("dead"))).await.unwrap();
    seen.push(format!("dead: {}", names(&dead)));
    assert_eq!(
        store
            .retry_webhook(&dead[0].event_id, None, false, now)
            .await
            .unwrap(),
        1
    );
    assert!(
        store
            .webhook_rows(&all(Some("dead")))
            .await
            .unwrap()
            .is_empty()
    );
    // Delivered rows are left alone unless asked.
    let delivered = store.webhook_rows(&all(Some("delivered"))).await.unwrap();
    assert_eq!(
        store
            .retry_webhook(&delivered[0].event_id, None, false, now)
            .await
            .unwrap(),
        0
    );
    // A restarted node drops its claims.
    store
        .claim_webhook(&dead[0], "a", now, now + 60_000)
        .await
        .unwrap();
    assert_eq!(store.clear_webhook_claims("a").await.unwrap(), 1);
    // A consent withdrawal is reported once, by pseudonym.
    store
        .withdraw_consent("acme", "anon-abc", now)
        .await
        .unwrap();
    store
        .withdraw_consent("acme", "anon-abc", now)
        .await
        .unwrap();
    store
        .withdraw_consent("sunrise", "anon-abc", now)
        .await
        .unwrap();
    let w: Vec<_> = store
        .webhook_rows(&all(None))
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.kind == "consent.withdrawn")
        .collect();
    assert_eq!(w.len(), 1, "{w:?}");
    let body: serde_json::Value = serde_json::from_str(&w[0].body).unwrap();
    seen.push(format!(
        "withdrawn: {} {} call {}",
        w[0].hook, body["data"]["caller"], body["call_id"]
    ));
    // A call's timeline deleted (erasure, retention): its rows go.
    store.delete_events("c000").await.unwrap();
    let left = store.webhook_rows(&all(None)).await.unwrap();
    assert!(left.iter().all(|r| r.call_id != "c000"), "{left:?}");
    seen.push(format!("left: {}", left.len()));
    store.close().await;
    seen
}

/// Issue 15, point 3: the outbox behaves the same on both databases.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webhook_outbox_orders_claims_retries_and_forgets_the_same_on_both_databases() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = dhwani::privacy::open_store("", dir.path()).await.unwrap();
    let pg = common::pg::TempPostgres::start();
    let postgres = dhwani::privacy::open_store(&pg.url, dir.path())
        .await
        .unwrap();
    let a = outbox_between_two_nodes(sqlite).await;
    let b = outbox_between_two_nodes(postgres).await;
    let per_call = |c: &str| {
        [
            format!("{c} crm call.started"),
            format!("{c} crm call.answered"),
            format!("{c} crm digits.collected"),
            format!("{c} crm consent.given"),
            format!("{c} crm recording.ready"),
            format!("{c} crm call.ended"),
            format!("{c} steps step.entered"),
            format!("{c} steps call.ended"),
        ]
    };
    let mut expect: Vec<String> = per_call("c000")
        .into_iter()
        .chain(per_call("c002"))
        .collect();
    expect.extend([
        "body v1 \"call.ended\" \"c000\" from \"+919800000001\" outcome \"hangup: done\"".into(),
        "due: c000 crm call.started, c000 steps step.entered, c002 crm call.started, c002 steps step.entered".into(),
        "due after: c000 crm call.answered, c002 crm call.answered, c002 steps step.entered".into(),
        "due at +1 s: c000 crm call.answered, c000 steps step.entered, c002 crm call.answered, c002 steps step.entered".into(),
        "taken over: pending attempts 2 status Some(500)".into(),
        "dead: c002 crm call.started".into(),
        "withdrawn: crm \"anon-abc\" call null".into(),
        "left: 9".into(),
    ]);
    assert_eq!(a, expect);
    assert_eq!(a, b, "SQLite and PostgreSQL disagree");
}

/// Raw rows as the database holds them (first column, as text).
async fn raw(url: &str, sql: &str) -> Vec<String> {
    use sqlx::{Connection, Row};
    sqlx::any::install_default_drivers();
    let mut c = sqlx::AnyConnection::connect(url).await.unwrap();
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_all(&mut c)
        .await
        .unwrap();
    let out = rows
        .iter()
        .map(|r| {
            r.try_get::<Option<String>, _>(0)
                .unwrap()
                .unwrap_or_default()
        })
        .collect();
    c.close().await.unwrap();
    out
}

/// Issue 14, point 5, on one database: a call's caller, timeline details
/// and webhook bodies are stored sealed (no byte of the number or the
/// digits in the rows), read back in clear through the store, found by
/// number; once the call's key is destroyed, a copy of the sealed rows
/// (what a dead tuple, a WAL segment or a backup keeps) opens no more.
async fn sealing_on(store: Store, url: &str) -> Vec<String> {
    let number = "+919876501234";
    let digits = "739154";
    let cfg = dhwani::config::Config::parse(
        r#"[[tenants]]
id = "acme"
numbers = ["1000"]
flows_dir = "f"
[[tenants.webhooks]]
name = "crm"
url = "https://crm.example.in/hook"
events = ["call.started", "digits.collected"]
"#,
        "test",
    )
    .unwrap();
    store.set_webhooks(&cfg.tenants);
    let c = call(7, "acme", number);
    let other = call(8, "acme", "+919800000009");
    let mut batch = vec![
        Record::Call(Box::new(c.clone())),
        Record::Call(Box::new(other.clone())),
    ];
    for (seq, (kind, detail)) in [
        (
            "digits",
            format!(r#"{{"digits":"{digits}","result":"ok","attempt":"1"}}"#),
        ),
        ("custom", format!(r#"{{"account":"{digits}"}}"#)),
    ]
    .into_iter()
    .enumerate()
    {
        batch.push(Record::Event(Event {
            call_id: c.call_id.clone(),
            tenant: "acme".into(),
            seq: seq as i64,
            at_ms: c.start_ms + seq as i64,
            offset_ms: seq as i64,
            step: "menu".into(),
            kind: kind.into(),
            detail,
        }));
    }
    store.write(&batch).await.unwrap();
    let mut seen = Vec::new();
    // As stored: sealed, no number, no digits.
    let callers = raw(url, "SELECT caller FROM calls ORDER BY call_id").await;
    let details = raw(url, "SELECT detail FROM call_events ORDER BY seq").await;
    let bodies = raw(url, "SELECT body FROM webhook_outbox ORDER BY ord").await;
    assert_eq!((callers.len(), details.len()), (2, 2));
    assert!(!bodies.is_empty(), "webhook rows were made");
    for v in callers.iter().chain(&details).chain(&bodies) {
        assert!(v.starts_with("s1:"), "not sealed: {v}");
        assert!(!v.contains(number) && !v.contains(digits), "{v}");
    }
    let refs = raw(url, "SELECT caller_ref FROM calls ORDER BY call_id").await;
    assert!(refs.iter().all(|r| r.starts_with("anon-")), "{refs:?}");
    // Through the store: in clear, and found by number.
    let found = store
        .list_calls(&CallFilter {
            caller: Some(number.into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].caller, number);
    assert_eq!(
        store.calls_from("acme", number).await.unwrap().len(),
        0,
        "the number itself is no longer stored"
    );
    let events = store.events(&c.call_id).await.unwrap();
    assert!(events[0].detail.contains(digits), "{events:?}");
    let rows = store
        .webhook_rows(&dhwani::store::outbox::OutboxFilter::default())
        .await
        .unwrap();
    assert!(
        rows.iter().any(|r| r.body.contains(number)),
        "the deliverer reads the body in clear"
    );
    seen.push(format!("{} {}", found[0].caller, events.len()));
    // The key destroyed: the rows (left in place here, as a database copy
    // would keep them) no longer open; the other call is untouched.
    assert!(store.shred_call_key(&c.call_id).await.unwrap());
    assert!(!store.shred_call_key(&c.call_id).await.unwrap(), "once");
    let gone = store.call(&c.call_id).await.unwrap().unwrap();
    assert!(!gone.caller.contains(number), "{gone:?}");
    assert!(gone.caller.contains("sealed"), "{gone:?}");
    for e in store.events(&c.call_id).await.unwrap() {
        assert!(!e.detail.contains(digits), "{e:?}");
    }
    let kept = store.call(&other.call_id).await.unwrap().unwrap();
    assert_eq!(kept.caller, "+919800000009");
    seen.push(gone.caller.clone());
    // The retention sweep's path: the timeline deleted and the CDR
    // pseudonymised leave the key of no use, and it goes.
    store.delete_events(&other.call_id).await.unwrap();
    store.delete_webhooks_of(&other.call_id).await.unwrap();
    assert_eq!(
        raw(url, "SELECT call_id FROM call_keys").await,
        vec![other.call_id.clone()],
        "the CDR is still sealed under it"
    );
    store
        .pseudonymise_call(&other.call_id, "anon-1234")
        .await
        .unwrap();
    assert!(raw(url, "SELECT call_id FROM call_keys").await.is_empty());
    let p = store.call(&other.call_id).await.unwrap().unwrap();
    seen.push(p.caller);
    store.close().await;
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_calls_personal_fields_are_sealed_under_its_key_and_unreadable_once_it_is_destroyed() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = dhwani::privacy::open_store("", dir.path()).await.unwrap();
    let url = format!("sqlite://{}", dir.path().join("dhwani.db").display());
    let a = sealing_on(sqlite, &url).await;
    let pg = common::pg::TempPostgres::start();
    let postgres = dhwani::privacy::open_store(&pg.url, dir.path())
        .await
        .unwrap();
    let b = sealing_on(postgres, &pg.url).await;
    assert_eq!(a, b);
}

async fn provisioning(store: Store) -> Vec<String> {
    use dhwani::store::provisioning::{NumberRow, TenantRow};
    let tenant = |id: &str| TenantRow {
        id: id.into(),
        name: format!("{id} Ltd"),
        max_calls: 7,
        suspended: false,
        created_ms: 1,
    };
    let number = |n: &str, t: &str| NumberRow {
        number: n.into(),
        tenant: t.into(),
        added_ms: 2,
    };
    let mut out = Vec::new();
    out.push(format!(
        "b={}",
        store.put_provisioned_tenant(&tenant("b")).await.unwrap()
    ));
    out.push(format!(
        "b again={}",
        store.put_provisioned_tenant(&tenant("b")).await.unwrap()
    ));
    // The config file's id: stored, but the file's tenant is used.
    store.put_provisioned_tenant(&tenant("a")).await.unwrap();
    for (n, t) in [
        ("1000", "b"),
        ("2000", "b"),
        ("3000", "ghost"),
        ("+4000", "a"),
    ] {
        out.push(format!(
            "{n}->{t}={}",
            store.add_provisioned_number(&number(n, t)).await.unwrap()
        ));
    }
    out.push(format!(
        "4000 again={}",
        store
            .add_provisioned_number(&number("4000", "b"))
            .await
            .unwrap()
    ));
    let mut changed = tenant("b");
    changed.suspended = true;
    changed.max_calls = 3;
    out.push(format!(
        "update={}",
        store.update_provisioned_tenant(&changed, 5).await.unwrap()
    ));
    out.push(format!(
        "update ghost={}",
        store
            .update_provisioned_tenant(&tenant("ghost"), 5)
            .await
            .unwrap()
    ));
    out.push(format!(
        "remove 2000 from a={}",
        store.remove_provisioned_number("a", "2000").await.unwrap()
    ));
    out.push(format!(
        "remove +2000 from b={}",
        store.remove_provisioned_number("b", "+2000").await.unwrap()
    ));
    let mut cfg = dhwani::config::Config::parse(
        "[[tenants]]\nid = \"a\"\nnumbers = [\"1000\"]\nflows_dir = \"f\"\n",
        "test",
    )
    .unwrap();
    cfg.data_dir = "/data".into();
    store.merge_provisioned(&mut cfg).await.unwrap();
    let once: Vec<String> = cfg
        .tenants
        .iter()
        .map(|t| {
            format!(
                "{} provisioned={} max={} suspended={} numbers={:?} flows={}",
                t.id,
                t.provisioned,
                t.max_calls,
                t.suspended,
                t.numbers,
                t.flows_dir.display()
            )
        })
        .collect();
    store.merge_provisioned(&mut cfg).await.unwrap();
    assert_eq!(cfg.tenants.len(), 2, "a second merge adds nothing");
    assert_eq!(
        cfg.tenants[0].numbers.len(),
        2,
        "a second merge adds nothing"
    );
    out.extend(once);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provisioned_tenants_and_numbers_join_the_config_once_and_the_file_wins() {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = dhwani::privacy::open_store("", dir.path()).await.unwrap();
    let pg = common::pg::TempPostgres::start();
    let postgres = dhwani::privacy::open_store(&pg.url, dir.path())
        .await
        .unwrap();
    let a = provisioning(sqlite).await;
    let b = provisioning(postgres).await;
    assert_eq!(
        a,
        [
            "b=true",
            "b again=false",
            "1000->b=true",
            "2000->b=true",
            "3000->ghost=true",
            "+4000->a=true",
            "4000 again=false",
            "update=true",
            "update ghost=false",
            "remove 2000 from a=false",
            "remove +2000 from b=true",
            // 1000 is the file's (a's), 3000's tenant is gone.
            "a provisioned=false max=100 suspended=false numbers=[\"1000\", \"+4000\"] flows=f",
            "b provisioned=true max=3 suspended=true numbers=[] flows=/data/tenants/b/flows",
        ]
    );
    assert_eq!(a, b, "SQLite and PostgreSQL disagree");
}
