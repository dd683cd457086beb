//! Who may call, and where a call goes: the hook the core asks for every
//! new INVITE before it spends anything on it. The server's implementation
//! ([`crate::tenants::gate::Gate`]) checks the trunk (source network, digest) and
//! routes the dialled number to a tenant's flow.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use sip::message::{HeaderName, Request, StatusCode};

use super::ids::{RecordId, SipCallId};

/// A call let in.
#[derive(Debug, Clone)]
pub struct Admitted {
    /// Tenant index (for the per-tenant call count).
    pub tenant: usize,
    /// Tenant id.
    pub tenant_id: Arc<str>,
    /// The tenant's concurrent-call limit.
    pub max_calls: usize,
    /// The flow, as live when the INVITE arrived.
    pub flow: Arc<ivr_dsl::Flow>,
    /// Caller's number (From user).
    pub caller: String,
    /// Number dialled (Request-URI user).
    pub called: String,
    /// The trunk it came in on.
    pub trunk: String,
    /// An agent's feature code (`*21`...): the agent, authenticated, and
    /// what it asks. The call plays the flow's confirmation.
    pub feature: Option<(AgentRef, Feature)>,
}

/// What an agent's feature code asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Feature {
    /// `*21`: take calls.
    LogIn,
    /// `*22`: stop taking calls.
    LogOut,
    /// `*23`: pause.
    Pause,
    /// `*24`: back from a pause.
    Unpause,
    /// `*31EXT` listen, `*32EXT` whisper, `*33EXT` barge: join the call
    /// agent `EXT` is on (a supervisor's phone only).
    Supervise {
        /// How.
        mode: SuperviseMode,
        /// The agent's extension.
        target: String,
    },
    /// Any other code: a short prompt and a hang-up.
    Unknown,
}

/// How a supervisor joins an agent's call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SuperviseMode {
    /// Hears caller and agent; heard by neither.
    Listen,
    /// Hears both; heard by the agent only.
    Whisper,
    /// A three-way call: hears both, heard by both.
    Barge,
}

impl SuperviseMode {
    /// For the log and the timeline.
    pub fn name(self) -> &'static str {
        match self {
            SuperviseMode::Listen => "listen",
            SuperviseMode::Whisper => "whisper",
            SuperviseMode::Barge => "barge",
        }
    }
}

impl Feature {
    /// The code dialled (`21` of `*21`, `311001` of `*311001`).
    pub fn from_code(code: &str) -> Feature {
        match code {
            "21" => return Feature::LogIn,
            "22" => return Feature::LogOut,
            "23" => return Feature::Pause,
            "24" => return Feature::Unpause,
            _ => {}
        }
        let mode = match code.get(..2) {
            Some("31") => SuperviseMode::Listen,
            Some("32") => SuperviseMode::Whisper,
            Some("33") => SuperviseMode::Barge,
            _ => return Feature::Unknown,
        };
        let target = &code[2..];
        if (2..=16).contains(&target.len()) && target.bytes().all(|b| b.is_ascii_digit()) {
            Feature::Supervise {
                mode,
                target: target.to_owned(),
            }
        } else {
            Feature::Unknown
        }
    }
}

/// A call refused before it began.
#[derive(Debug, Clone)]
pub struct Refusal {
    /// 403, 404, 401...
    pub status: StatusCode,
    /// Reason phrase.
    pub reason: &'static str,
    /// Extra headers (a digest challenge).
    pub headers: Vec<(HeaderName, String)>,
    /// For the log.
    pub why: String,
}

/// An agent whose REGISTER authenticated.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AgentRef {
    /// Tenant index.
    pub tenant: usize,
    /// Tenant id.
    pub tenant_id: Arc<str>,
    /// Extension.
    pub extension: String,
}

/// Decides on new INVITEs and REGISTERs.
pub trait Admission: Send {
    /// Admit or refuse `invite` from `source` at wall-clock `now`.
    fn admit(
        &mut self,
        now: SystemTime,
        source: SocketAddr,
        invite: &Request,
    ) -> Result<Admitted, Refusal>;

    /// Authenticate a REGISTER: the agent its address of record names, if
    /// the digest credentials are that agent's. The default knows no
    /// agents.
    fn authenticate_agent(
        &mut self,
        now: SystemTime,
        source: SocketAddr,
        register: &Request,
    ) -> Result<AgentRef, Refusal> {
        let _ = (now, source, register);
        Err(Refusal {
            status: StatusCode::FORBIDDEN,
            reason: "Forbidden",
            headers: vec![],
            why: "no agents here".into(),
        })
    }
}

/// Who ended a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Party {
    /// The caller (BYE, CANCEL).
    Caller,
    /// We did: the flow hung up, or an operator (drain).
    Dhwani,
    /// Nobody chose to: media timeout, no ACK, the call cap.
    System,
    /// The agent the caller was bridged to.
    Agent,
}

impl Party {
    /// `caller`, `dhwani` or `system`.
    pub fn name(self) -> &'static str {
        match self {
            Party::Caller => "caller",
            Party::Dhwani => "dhwani",
            Party::System => "system",
            Party::Agent => "agent",
        }
    }
}

/// What the CDR of a call needs from the SIP side.
#[derive(Debug, Clone)]
pub struct CallInfo {
    /// Our id (unique, sortable by time).
    pub record_id: RecordId,
    /// SIP Call-ID.
    pub sip_call_id: SipCallId,
    /// Who and where.
    pub admitted: Admitted,
    /// INVITE arrived.
    pub invited_at: SystemTime,
    /// 200 OK sent.
    pub answered_at: Option<SystemTime>,
}

#[cfg(test)]
mod tests {
    use super::{Feature, SuperviseMode};

    #[test]
    fn supervisor_codes_name_a_mode_and_an_extension_and_nothing_else_passes() {
        assert_eq!(
            Feature::from_code("311001"),
            Feature::Supervise {
                mode: SuperviseMode::Listen,
                target: "1001".into()
            }
        );
        assert_eq!(
            Feature::from_code("32555"),
            Feature::Supervise {
                mode: SuperviseMode::Whisper,
                target: "555".into()
            }
        );
        assert!(matches!(
            Feature::from_code("3342"),
            Feature::Supervise {
                mode: SuperviseMode::Barge,
                ..
            }
        ));
        for bad in [
            "31",
            "313",
            "31abc",
            "3112345678901234567",
            "34100",
            "30",
            "2",
        ] {
            assert_eq!(Feature::from_code(bad), Feature::Unknown, "{bad}");
        }
        assert_eq!(Feature::from_code("23"), Feature::Pause);
    }
}
