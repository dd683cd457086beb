use super::*;
use crate::store::{CallRecord, Event, FrameTiming};

fn call(id: &str, end: bool) -> CallRecord {
    CallRecord {
        call_id: id.into(),
        sip_call_id: format!("sip-{id}"),
        tenant: "acme".into(),
        flow: "Support".into(),
        flow_version: "v1".into(),
        caller: "+919800000001".into(),
        called: "1000".into(),
        start_ms: 1_000,
        answer_ms: Some(1_040),
        end_ms: end.then_some(9_000),
        duration_ms: end.then_some(8_000),
        hangup_by: end.then(|| "caller".into()),
        hangup_cause: end.then(|| "BYE".into()),
        outcome: end.then(|| "caller hung up".into()),
        recording_id: None,
        queue: None,
        agent: None,
        wait_ms: None,
        talk_ms: None,
        timing: end.then_some(FrameTiming {
            frames: 400,
            late_2ms: 7,
            late_5ms: 3,
            late_10ms: 1,
            late_20ms: 0,
            skipped_frames: 2,
        }),
        path: Vec::new(),
    }
}

fn event(id: &str, kind: &str, detail: serde_json::Value) -> Record {
    Record::Event(Event {
        call_id: id.into(),
        tenant: "acme".into(),
        kind: kind.into(),
        detail: detail.to_string(),
        ..Default::default()
    })
}

fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[test]
fn a_call_moves_the_live_table_and_the_counters_from_its_log_records() {
    let m = Metrics::new();
    m.tenants(["acme", "other"]);
    m.observe(&Record::Call(Box::new(call("c1", false))));
    m.observe(&event("c1", "step", serde_json::json!({"name": "menu"})));
    m.observe(&event(
        "c1",
        "dtmf",
        serde_json::json!({"source": "rfc4733"}),
    ));
    m.observe(&event(
        "c1",
        "queue",
        serde_json::json!({"name": "support", "event": "joined"}),
    ));
    m.observe(&event(
        "c1",
        "queue",
        serde_json::json!({"name": "support", "event": "bridged", "agent": "1001"}),
    ));
    let live = m.live.list(Some("acme"));
    assert_eq!(live.len(), 1);
    assert_eq!(live[0].step, "menu");
    assert_eq!(live[0].queue.as_deref(), Some("support"));
    assert_eq!(live[0].agent.as_deref(), Some("1001"));
    assert!(m.live.list(Some("other")).is_empty());
    let text = m.encode();
    assert_eq!(
        value(&text, "dhwani_calls_active{tenant=\"acme\"}"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(&text, "dhwani_calls_active{tenant=\"other\"}"),
        Some(0.0),
        "{text}"
    );
    assert_eq!(
        value(&text, "dhwani_call_setup_seconds_count"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(&text, "dhwani_dtmf_total{name=\"rfc4733\"}"),
        Some(1.0),
        "{text}"
    );
    // The same first row again (the writer may see it twice) counts once.
    m.observe(&Record::Call(Box::new(call("c1", false))));
    m.observe(&Record::Call(Box::new(call("c1", true))));
    let text = m.encode();
    assert!(m.live.is_empty());
    assert_eq!(
        value(&text, "dhwani_calls_active{tenant=\"acme\"}"),
        Some(0.0),
        "{text}"
    );
    assert_eq!(
        value(
            &text,
            "dhwani_calls_total{tenant=\"acme\",outcome=\"caller_hung_up\"}"
        ),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(&text, "dhwani_call_attempts_total{tenant=\"acme\"}"),
        Some(1.0),
        "{text}"
    );
    assert!(!text.contains("+9198"), "no number in the metrics: {text}");
}

#[test]
fn media_counters_move_while_a_call_runs_and_count_each_packet_once() {
    let m = Metrics::new();
    let mut reported = crate::metrics::MediaTally::default();
    let at = |received: u64, frames: u64, late_5ms: u64| crate::metrics::MediaTally {
        received,
        sent: received * 2,
        lost: received / 10,
        frames,
        late_2ms: late_5ms + 1,
        late_5ms,
        late_10ms: 0,
        late_20ms: 0,
        skipped_frames: 0,
    };
    // Five seconds in: the call's totals so far.
    m.media_progress(at(250, 250, 3), &mut reported);
    let text = m.encode();
    assert_eq!(
        value(&text, "dhwani_rtp_packets_total{direction=\"in\"}"),
        Some(250.0),
        "{text}"
    );
    assert_eq!(value(&text, "dhwani_frames_total"), Some(250.0), "{text}");
    assert_eq!(
        value(&text, "dhwani_frames_late_total{over_ms=\"5\"}"),
        Some(3.0),
        "{text}"
    );
    // At its end: only what moved since is added.
    m.media_progress(at(400, 401, 4), &mut reported);
    m.media_progress(at(400, 401, 4), &mut reported);
    let text = m.encode();
    assert_eq!(
        value(&text, "dhwani_rtp_packets_total{direction=\"in\"}"),
        Some(400.0),
        "{text}"
    );
    assert_eq!(
        value(&text, "dhwani_rtp_packets_total{direction=\"out\"}"),
        Some(800.0),
        "{text}"
    );
    assert_eq!(
        value(&text, "dhwani_rtp_lost_frames_total"),
        Some(40.0),
        "{text}"
    );
    assert_eq!(value(&text, "dhwani_frames_total"), Some(401.0), "{text}");
    assert_eq!(
        value(&text, "dhwani_frames_late_total{over_ms=\"2\"}"),
        Some(5.0),
        "{text}"
    );
    assert_eq!(reported, at(400, 401, 4));
}

#[test]
fn an_unanswered_call_is_an_attempt_and_an_outcome_but_never_live() {
    let m = Metrics::new();
    let mut c = call("c2", true);
    c.answer_ms = None;
    c.outcome = Some("not answered".into());
    m.observe(&Record::Call(Box::new(c)));
    let text = m.encode();
    assert!(m.live.is_empty());
    assert_eq!(
        value(&text, "dhwani_call_attempts_total{tenant=\"acme\"}"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(
            &text,
            "dhwani_calls_total{tenant=\"acme\",outcome=\"not_answered\"}"
        ),
        Some(1.0),
        "{text}"
    );
    // Not a negative gauge.
    assert_ne!(
        value(&text, "dhwani_calls_active{tenant=\"acme\"}"),
        Some(-1.0),
        "{text}"
    );
}

#[test]
fn labels_from_timeline_details_are_bounded_to_plain_names() {
    assert_eq!(bounded_name("rfc4733"), "rfc4733");
    assert_eq!(bounded_name("in band"), "in_band");
    assert_eq!(bounded_name("+919800000001"), "other");
    assert_eq!(bounded_name(&"a".repeat(40)), "other");
    assert_eq!(bounded_name("Robert'); DROP"), "other");
    assert_eq!(outcome_class(Some("hangup: done")), "completed");
    assert_eq!(outcome_class(Some("error: fetch failed")), "error");
    assert_eq!(outcome_class(Some("something new")), "other");
}

#[test]
fn copied_counters_move_by_their_difference() {
    let m = Metrics::new();
    let f = SipFigures {
        malformed: 5,
        bans: 1,
        ..SipFigures::default()
    };
    m.sip(f, &[("acme".into(), "available", 2)]);
    m.sip(
        SipFigures { malformed: 8, ..f },
        &[("acme".into(), "paused", 1)],
    );
    let text = m.encode();
    assert_eq!(
        value(&text, "dhwani_sip_malformed_total"),
        Some(8.0),
        "{text}"
    );
    assert_eq!(
        value(&text, "dhwani_sip_flood_bans_total"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(&text, "dhwani_agents{tenant=\"acme\",state=\"paused\"}"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        value(&text, "dhwani_agents{tenant=\"acme\",state=\"available\"}"),
        None,
        "{text}"
    );
}

/// Every series the Grafana dashboard (deploy/grafana-dashboard.json)
/// queries is one this registry serves (a renamed metric breaks this).
#[test]
fn the_grafana_dashboard_queries_only_metrics_that_exist() {
    let m = Metrics::new();
    m.tenants(["acme"]);
    m.observe(&Record::Call(Box::new(call("c1", false))));
    m.observe(&event("c1", "dtmf", serde_json::json!({"source": "info"})));
    m.observe(&event(
        "c1",
        "error",
        serde_json::json!({"recording": "failed"}),
    ));
    m.observe(&event(
        "c1",
        "fetch",
        serde_json::json!({"event": "answer", "outcome": "ok"}),
    ));
    m.observe(&Record::Call(Box::new(call("c1", true))));
    m.media_progress(
        crate::metrics::MediaTally {
            received: 10,
            sent: 10,
            lost: 1,
            ..Default::default()
        },
        &mut crate::metrics::MediaTally::default(),
    );
    m.jitter_at_end(0.002);
    m.recording_written(320);
    m.webhook("delivered");
    m.security_event("flood_ban");
    m.http_request("/metrics", 200);
    m.sip(SipFigures::default(), &[("acme".into(), "available", 1)]);
    m.store(StoreFigures::default());
    m.store_batch(std::time::Duration::from_millis(3));
    let text = m.encode();
    let served: std::collections::HashSet<&str> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .collect();
    let dashboard: serde_json::Value =
        serde_json::from_str(include_str!("../../deploy/grafana-dashboard.json")).expect("JSON");
    let mut queried = Vec::new();
    for p in dashboard["panels"].as_array().expect("panels") {
        for t in p["targets"].as_array().expect("targets") {
            let expr = t["expr"].as_str().expect("expr");
            let mut rest = expr;
            while let Some(i) = rest.find("dhwani_") {
                let name: String = rest[i..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                rest = &rest[i + name.len()..];
                queried.push(name);
            }
        }
    }
    assert!(queried.len() > 20, "{queried:?}");
    for q in &queried {
        assert!(
            served.contains(q.as_str()),
            "the dashboard queries {q}, which /metrics does not serve:\n{text}"
        );
    }
}
