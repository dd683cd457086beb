//! The SIP message model (RFC 3261 §7): requests, responses, header fields and
//! bodies, all views into one shared [`Bytes`] buffer.
//!
//! Header values are kept verbatim as received (zero-copy slices) and parsed
//! into typed values only when asked (see [`crate::header`]). Headers we do not
//! know are forwarded untouched.

mod headers;
mod method;
mod parse;
mod raw_reply;
mod serialize;
mod status;

use bytes::Bytes;

pub use headers::{Header, HeaderName, Headers};
pub use method::Method;
pub use parse::{Limits, parse_datagram, parse_message, scan_headers};
pub use raw_reply::reply_to_raw;
pub use serialize::ResponseBuilder;
pub use status::StatusCode;

use crate::header::{CSeq, NameAddr, Via};
use crate::uri::Uri;
use crate::{Error, Result};

/// A SIP request: `METHOD Request-URI SIP/2.0`, headers, body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The method of the request line.
    pub method: Method,
    /// The Request-URI.
    pub uri: Uri,
    /// Header fields in wire order.
    pub headers: Headers,
    /// The body (exactly Content-Length bytes).
    pub body: Bytes,
}

/// A SIP response: `SIP/2.0 code reason`, headers, body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: StatusCode,
    /// The reason phrase as received (or chosen by us).
    pub reason: Bytes,
    /// Header fields in wire order.
    pub headers: Headers,
    /// The body.
    pub body: Bytes,
}

/// Either kind of SIP message.
// A response is smaller than a request by its URI; boxing would cost an
// allocation per message for nothing, as messages are moved rarely.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A request.
    Request(Request),
    /// A response.
    Response(Response),
}

impl Message {
    /// The header fields of either kind.
    pub fn headers(&self) -> &Headers {
        match self {
            Message::Request(r) => &r.headers,
            Message::Response(r) => &r.headers,
        }
    }
}

/// Typed access to the headers every message needs; shared by requests and
/// responses through [`Headers`].
macro_rules! common_accessors {
    ($t:ty) => {
        impl $t {
            /// The topmost Via value.
            pub fn top_via(&self) -> Result<Via> {
                self.headers.top_via()
            }
            /// The Call-ID value.
            pub fn call_id(&self) -> Result<Bytes> {
                self.headers.call_id()
            }
            /// The CSeq value.
            pub fn cseq(&self) -> Result<CSeq> {
                self.headers.cseq()
            }
            /// The From value.
            pub fn from(&self) -> Result<NameAddr> {
                self.headers.from()
            }
            /// The To value.
            pub fn to(&self) -> Result<NameAddr> {
                self.headers.to()
            }
        }
    };
}
common_accessors!(Request);
common_accessors!(Response);

impl Request {
    /// Checks the headers RFC 3261 §8.1.1 makes mandatory (To, From, CSeq,
    /// Call-ID, Max-Forwards, Via) are present and well-formed, and that the
    /// CSeq method matches the request method. The error names the header, so
    /// a 400 reason phrase can say which.
    pub fn validate(&self) -> Result<()> {
        let via = self.headers.vias()?;
        if via.is_empty() {
            return Err(Error::MissingHeader { header: "Via" });
        }
        self.headers.to()?;
        self.headers.from()?;
        self.headers.call_id()?;
        let cseq = self.headers.cseq()?;
        if cseq.method != self.method {
            return Err(Error::MalformedHeader { header: "CSeq" });
        }
        // Max-Forwards is mandatory for UACs, but RFC 3261 §8.2 does not make a
        // UAS reject its absence; only a malformed value is an error.
        self.headers.max_forwards()?;
        self.headers.content_length()?;
        if let Some(ct) = self.headers.get(&HeaderName::ContentType) {
            crate::header::MediaType::parse(ct).map_err(|_| Error::MalformedHeader {
                header: "Content-Type",
            })?;
        }
        if let Some(v) = self.headers.get(&HeaderName::Expires) {
            crate::header::parse_u32(v).ok_or(Error::MalformedHeader { header: "Expires" })?;
        }
        self.headers.contacts()?;
        Ok(())
    }
}

impl Response {
    /// Checks the headers a response must carry to be matched to a
    /// transaction (Via, From, To, Call-ID, CSeq).
    pub fn validate(&self) -> Result<()> {
        self.headers.top_via()?;
        self.headers.to()?;
        self.headers.from()?;
        self.headers.call_id()?;
        self.headers.cseq()?;
        Ok(())
    }
}
