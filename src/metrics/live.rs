//! The calls in progress on this server: who owns them, which flow, since
//! when, the step they are in, the queue and agent. No caller number:
//! the table is for operators' and businesses' dashboards, and a number
//! there would be personal data outside the store's reach.

use std::collections::HashMap;
use std::sync::Mutex;

use serde::Serialize;

use crate::store::CallRecord;

/// Live calls at most (beyond, new ones are not listed; the server's own
/// call cap is far lower).
const MAX_LIVE: usize = 100_000;

/// One live call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct LiveCall {
    /// Our id for the call (as in the CDR).
    pub call_id: String,
    /// The tenant.
    pub tenant: String,
    /// The flow it runs.
    pub flow: String,
    /// The number the caller dialled (the business's).
    pub called: String,
    /// When the INVITE came, ms since the epoch.
    pub start_ms: i64,
    /// When it was answered, ms since the epoch.
    pub answer_ms: Option<i64>,
    /// The flow step it is in now (empty before the first).
    pub step: String,
    /// The queue it waits in or came through.
    pub queue: Option<String>,
    /// The agent it is bridged to.
    pub agent: Option<String>,
}

/// The table.
#[derive(Debug, Default)]
pub struct LiveCalls {
    calls: Mutex<HashMap<String, LiveCall>>,
}

impl LiveCalls {
    /// A call's first CDR row: listed. False when it was listed already
    /// (a row written again) or the table is full.
    pub fn start(&self, c: &CallRecord) -> bool {
        let Ok(mut m) = self.calls.lock() else {
            return false;
        };
        if m.contains_key(&c.call_id) || m.len() >= MAX_LIVE {
            return false;
        }
        m.insert(
            c.call_id.clone(),
            LiveCall {
                call_id: c.call_id.clone(),
                tenant: c.tenant.clone(),
                flow: c.flow.clone(),
                called: c.called.clone(),
                start_ms: c.start_ms,
                answer_ms: c.answer_ms,
                step: String::new(),
                queue: None,
                agent: None,
            },
        );
        true
    }

    /// Its last row: no longer listed. False when it was not.
    pub fn end(&self, call_id: &str) -> bool {
        self.calls
            .lock()
            .map(|mut m| m.remove(call_id).is_some())
            .unwrap_or(false)
    }

    /// It entered a step.
    pub fn step(&self, call_id: &str, step: &str) {
        if let Ok(mut m) = self.calls.lock()
            && let Some(c) = m.get_mut(call_id)
        {
            c.step.clear();
            c.step.push_str(step);
        }
    }

    /// It joined a queue (`queue`) or was bridged to an agent (`agent`;
    /// `Some("")` when the bridge ended).
    pub fn queue(&self, call_id: &str, queue: Option<&str>, agent: Option<&str>) {
        if let Ok(mut m) = self.calls.lock()
            && let Some(c) = m.get_mut(call_id)
        {
            if let Some(q) = queue {
                c.queue = Some(q.to_owned());
            }
            match agent {
                Some("") => c.agent = None,
                Some(a) => c.agent = Some(a.to_owned()),
                None => {}
            }
        }
    }

    /// The calls of `tenant` (None: all), oldest first.
    pub fn list(&self, tenant: Option<&str>) -> Vec<LiveCall> {
        let mut v: Vec<LiveCall> = self
            .calls
            .lock()
            .map(|m| {
                m.values()
                    .filter(|c| tenant.is_none_or(|t| c.tenant == t))
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        v.sort_by(|a, b| (a.start_ms, &a.call_id).cmp(&(b.start_ms, &b.call_id)));
        v
    }

    /// One call, if live.
    pub fn get(&self, call_id: &str) -> Option<LiveCall> {
        self.calls.lock().ok()?.get(call_id).cloned()
    }

    /// How many.
    pub fn len(&self) -> usize {
        self.calls.lock().map(|m| m.len()).unwrap_or(0)
    }

    /// None live.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
