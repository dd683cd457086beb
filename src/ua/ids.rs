//! The three ids a call has, one type each, so they cannot be mixed up:
//!
//! - [`SipCallId`]: the `Call-ID` header, what the peer and SIP traces show;
//! - [`RecordId`]: ours, naming the call's CDR, timeline and recordings
//!   (`dhwani calls show RECORD_ID`), unique and sortable by time;
//! - [`CallSlot`]: the core's handle of a call in progress, between the UA
//!   core and the call task; never logged or stored.
//!
//! Every log line of a call carries both the SIP Call-ID and the record id
//! (`call_id=` and `record_id=`), so an operator can go from a CDR to the
//! server's log and back.

use std::fmt;

/// The SIP `Call-ID` of a call.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SipCallId(pub String);

/// Our record id of a call.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RecordId(pub String);

/// A call in progress, inside the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallSlot(pub u64);

impl SipCallId {
    /// The header's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl RecordId {
    /// The id's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SipCallId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for RecordId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
