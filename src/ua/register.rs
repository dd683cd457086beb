//! REGISTER requests: digest authentication through [`super::Admission`],
//! then the [`super::registrar::Registrar`], then the 200 OK that lists the
//! agent's contacts (RFC 3261 §10.3 step 8).

use std::time::Instant;

use sip::message::{HeaderName, Request};
use sip::transaction::TxId;
use sip::transport::Flow;

use super::{Action, Core};

impl Core {
    pub(super) fn handle_register(&mut self, now: Instant, tx: TxId, flow: Flow, req: Request) {
        let wall = self.wall(now);
        let agent = match self.admission.authenticate_agent(wall, flow.remote, &req) {
            Ok(a) => a,
            Err(r) => {
                if self.peer_log.allow(now, flow.remote.ip()) {
                    tracing::info!(remote = %flow.remote, status = %r.status, why = %r.why, "REGISTER refused");
                }
                self.respond(now, tx, &req, r.status, r.reason, &r.headers);
                return;
            }
        };
        match self.registrar.register(wall, &agent, &req, flow) {
            Ok(done) => {
                self.stats.registrations += 1;
                let mut headers: Vec<(HeaderName, String)> = done
                    .contacts
                    .iter()
                    .map(|(c, left)| (HeaderName::Contact, format!("<{c}>;expires={left}")))
                    .collect();
                for p in &done.path {
                    headers.push((HeaderName::Path, p.clone()));
                }
                headers.push((HeaderName::Date, httpdate(wall)));
                self.respond(now, tx, &req, sip::message::StatusCode::OK, "OK", &headers);
                if done.changed {
                    tracing::info!(tenant = %agent.tenant_id, extension = %agent.extension, remote = %flow.remote, transport = %flow.transport, contacts = done.contacts.len(), "agent registration changed");
                    let bindings = self.registrar.all_bindings(&agent).to_vec();
                    self.actions.push_back(Action::Bindings(agent, bindings));
                }
            }
            Err(r) => {
                if self.peer_log.allow(now, flow.remote.ip()) {
                    tracing::info!(remote = %flow.remote, status = %r.status, reason = r.reason, "REGISTER refused by the registrar");
                }
                self.respond(now, tx, &req, r.status, r.reason, &r.headers);
            }
        }
    }
}

/// RFC 7231 IMF-fixdate (SIP's Date header, RFC 3261 §20.17).
fn httpdate(t: std::time::SystemTime) -> String {
    let ts = jiff::Timestamp::try_from(t).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    ts.strftime("%a, %d %b %Y %H:%M:%S GMT").to_string()
}
