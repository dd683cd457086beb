//! The CDR row of a call, assembled in one place: at the start of a call,
//! at its end (by the call core), for a call that never reached its task,
//! and for one whose task failed.

use std::time::SystemTime;

use ivr_dsl::interp::Outcome;

use crate::store::CallRecord;
use crate::ua::{CallInfo, Party};

/// Milliseconds since the Unix epoch.
pub(crate) fn ms(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The CDR row of a call (also written at start, without the end).
pub fn call_record(info: &CallInfo) -> CallRecord {
    CallRecord {
        call_id: info.record_id.to_string(),
        sip_call_id: info.sip_call_id.to_string(),
        tenant: info.admitted.tenant_id.to_string(),
        flow: info.admitted.flow.name.clone(),
        flow_version: info.admitted.flow.version.to_string(),
        caller: info.admitted.caller.clone(),
        called: info.admitted.called.clone(),
        start_ms: ms(info.invited_at),
        answer_ms: info.answered_at.map(ms),
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

/// The CDR of a call that never reached its task (refused after
/// admission, cancelled, never answered), ended at `end`.
pub fn unanswered_record(info: &CallInfo, by: Party, cause: &str, end: SystemTime) -> CallRecord {
    let mut r = call_record(info);
    r.end_ms = Some(ms(end));
    r.duration_ms = Some(0);
    r.hangup_by = Some(by.name().into());
    r.hangup_cause = Some(cause.into());
    r.outcome = Some("not answered".into());
    r
}

/// The CDR of a call whose task failed (panicked), ended at `end`.
pub fn failed_record(info: &CallInfo, end: SystemTime) -> CallRecord {
    let mut r = call_record(info);
    r.end_ms = Some(ms(end));
    r.hangup_by = Some(Party::System.name().into());
    r.hangup_cause = Some("internal error".into());
    r.outcome = Some("error: the call task failed".into());
    r
}

/// How a flow ended, in the words of the CDR and `flow run`.
pub fn outcome_text(o: Option<&Outcome>) -> String {
    match o {
        Some(Outcome::HungUp(r)) => format!("hangup: {r}"),
        Some(Outcome::CallerHungUp) => "caller hung up".into(),
        Some(Outcome::Queued(q)) => format!("queued: {q}"),
        Some(Outcome::Transferred(t)) => format!("transferred: {t}"),
        Some(Outcome::Error(e)) => format!("error: {e}"),
        None => "unfinished".into(),
    }
}
