//! Outcomes of the host's services: queues, transfers and `fetch`
//! requests (the interpreter asks with an `Output`, the host answers with
//! an `Input`).

use std::time::{Duration, Instant};

use super::{Interpreter, Outcome, Output, QueueOutcome, ServiceFailure, Wait};
use crate::ast::Method;
use crate::flow::Instr;
use crate::value::Value;

impl Interpreter {
    pub(super) fn queue_done(&mut self, now: Instant, name: String, outcome: QueueOutcome) {
        let event = match outcome {
            QueueOutcome::Answered => "answered",
            QueueOutcome::Overflow => "overflow",
            QueueOutcome::Unavailable => "unavailable",
            QueueOutcome::Key(_) => "left",
        };
        let mut fields = vec![
            ("name".into(), name.clone()),
            ("event".into(), event.into()),
        ];
        if let QueueOutcome::Key(k) = outcome {
            fields.push(("key".into(), k.to_string()));
        }
        self.log("queue", fields);
        if outcome == QueueOutcome::Answered {
            self.finish(Outcome::Queued(name));
            return;
        }
        if let QueueOutcome::Key(k) = outcome {
            let target = match self.flow.instr(self.pc) {
                Some(Instr::Queue(q)) => q.keys.iter().find(|(x, _)| *x == k).map(|(_, s)| *s),
                _ => None,
            };
            match target {
                Some(s) => self.goto(now, s),
                None => self.advance(now),
            }
            return;
        }
        let target = match self.flow.instr(self.pc) {
            Some(Instr::Queue(q)) => q.on_overflow,
            _ => None,
        };
        match target {
            Some(s) => self.goto(now, s),
            None => self.advance(now),
        }
    }

    pub(super) fn transfer_done(
        &mut self,
        now: Instant,
        target: String,
        r: Result<(), ServiceFailure>,
    ) {
        match r {
            Ok(()) => {
                self.log(
                    "transfer",
                    vec![
                        ("target".into(), target.clone()),
                        ("event".into(), "connected".into()),
                    ],
                );
                self.finish(Outcome::Transferred(target));
            }
            Err(e) => {
                self.log(
                    "transfer",
                    vec![
                        ("target".into(), target),
                        ("event".into(), "failed".into()),
                        ("reason".into(), e.reason),
                    ],
                );
                let t = match self.flow.instr(self.pc) {
                    Some(Instr::Transfer { on_failure, .. }) => *on_failure,
                    _ => None,
                };
                match t {
                    Some(s) => self.goto(now, s),
                    None => self.advance(now),
                }
            }
        }
    }

    pub(super) fn start_fetch(&mut self, now: Instant, f: &crate::flow::Fetch) {
        let mut url = self.render(&f.url, now, false);
        let body = match f.method {
            Method::Post => {
                let mut m = serde_json::Map::new();
                for (name, v) in &f.send {
                    m.insert(
                        name.clone(),
                        self.vars
                            .get(v.0 as usize)
                            .cloned()
                            .unwrap_or_default()
                            .to_json(),
                    );
                }
                Some(serde_json::Value::Object(m))
            }
            Method::Get => {
                for (i, (name, v)) in f.send.iter().enumerate() {
                    let value = self.var_text(*v);
                    url.push(if i == 0 && !url.contains('?') {
                        '?'
                    } else {
                        '&'
                    });
                    url.push_str(&percent_encode(name));
                    url.push('=');
                    url.push_str(&percent_encode(&value));
                }
                None
            }
        };
        let shown = if f.send.iter().any(|(_, v)| self.is_sensitive(*v))
            || f.url
                .0
                .iter()
                .any(|p| matches!(p, crate::flow::Piece::Var(v) if self.is_sensitive(*v)))
        {
            self.render(&f.url, now, true)
        } else {
            url.clone()
        };
        self.log(
            "fetch",
            vec![("url".into(), shown), ("event".into(), "started".into())],
        );
        self.out.push_back(Output::Fetch {
            method: f.method,
            url,
            body,
            timeout: f.timeout,
        });
        self.wait = Wait::Fetch {
            deadline: now + f.timeout + Duration::from_secs(1),
        };
    }

    pub(super) fn fetch_done(
        &mut self,
        now: Instant,
        r: Result<serde_json::Value, ServiceFailure>,
    ) {
        let Some(Instr::Fetch(f)) = self.flow.instr(self.pc) else {
            self.fail("fetch result outside a fetch");
            return;
        };
        let f = f.clone();
        let result = r.and_then(|json| {
            let mut values = Vec::new();
            for (name, v) in &f.into {
                match json.get(name) {
                    Some(x) => values.push((*v, Value::from_json(x))),
                    None => {
                        return Err(ServiceFailure::from(format!(
                            "the reply has no field `{name}`"
                        )));
                    }
                }
            }
            Ok(values)
        });
        match result {
            Ok(values) => {
                for (v, x) in values {
                    if let Some(slot) = self.vars.get_mut(v.0 as usize) {
                        *slot = x;
                    }
                }
                self.log("fetch", vec![("event".into(), "done".into())]);
                self.advance(now);
            }
            Err(e) => {
                self.log(
                    "fetch",
                    vec![
                        ("event".into(), "failed".into()),
                        ("reason".into(), e.reason),
                    ],
                );
                match f.on_failure {
                    Some(s) => self.goto(now, s),
                    None => self.advance(now),
                }
            }
        }
    }
}

/// Percent-encodes a query component (RFC 3986 unreserved characters stay).
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
