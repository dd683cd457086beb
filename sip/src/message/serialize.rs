//! Writing messages to the wire, and building responses to requests
//! (RFC 3261 §8.2.6).

use std::fmt::Write as _;

use bytes::{BufMut, Bytes, BytesMut};

use super::{HeaderName, Headers, Message, Request, Response, StatusCode};

fn put_headers(out: &mut BytesMut, headers: &Headers, body_len: usize) {
    for h in headers.iter() {
        if h.name == HeaderName::ContentLength {
            continue;
        }
        out.put_slice(h.name.as_bytes());
        out.put_slice(b": ");
        out.put_slice(&h.value);
        out.put_slice(b"\r\n");
    }
    // Content-Length is always written and always true (§18.3 / §20.14).
    // Writing into BytesMut cannot fail.
    let _ = write!(out, "Content-Length: {body_len}\r\n\r\n");
}

impl Request {
    /// Appends the wire form to `out`.
    pub fn encode(&self, out: &mut BytesMut) {
        out.reserve(256 + self.body.len() + self.headers.len() * 48);
        out.put_slice(self.method.as_bytes());
        out.put_u8(b' ');
        out.put_slice(self.uri.as_bytes());
        out.put_slice(b" SIP/2.0\r\n");
        put_headers(out, &self.headers, self.body.len());
        out.put_slice(&self.body);
    }
    /// The wire form.
    pub fn to_bytes(&self) -> Bytes {
        let mut b = BytesMut::new();
        self.encode(&mut b);
        b.freeze()
    }
}

impl Response {
    /// Appends the wire form to `out`.
    pub fn encode(&self, out: &mut BytesMut) {
        out.reserve(256 + self.body.len() + self.headers.len() * 48);
        out.put_slice(b"SIP/2.0 ");
        let _ = write!(out, "{} ", self.status);
        out.put_slice(&self.reason);
        out.put_slice(b"\r\n");
        put_headers(out, &self.headers, self.body.len());
        out.put_slice(&self.body);
    }
    /// The wire form.
    pub fn to_bytes(&self) -> Bytes {
        let mut b = BytesMut::new();
        self.encode(&mut b);
        b.freeze()
    }
}

impl Message {
    /// Appends the wire form to `out`.
    pub fn encode(&self, out: &mut BytesMut) {
        match self {
            Message::Request(r) => r.encode(out),
            Message::Response(r) => r.encode(out),
        }
    }
    /// The wire form.
    pub fn to_bytes(&self) -> Bytes {
        match self {
            Message::Request(r) => r.to_bytes(),
            Message::Response(r) => r.to_bytes(),
        }
    }
}

/// Builds a response to a request as RFC 3261 §8.2.6.2 says: Via, From,
/// Call-ID and CSeq copied, To copied with our tag added when it had none.
#[derive(Debug, Clone)]
pub struct ResponseBuilder {
    response: Response,
}

impl ResponseBuilder {
    /// Starts a response to `req` with the canonical reason phrase.
    pub fn new(req: &Request, status: StatusCode) -> ResponseBuilder {
        let mut headers = Headers::with_capacity(12);
        for h in req.headers.iter() {
            match h.name {
                HeaderName::Via | HeaderName::From | HeaderName::CallId | HeaderName::CSeq => {
                    headers.push(h.name.clone(), h.value.clone())
                }
                HeaderName::To => headers.push(HeaderName::To, h.value.clone()),
                // §12.1.1: a UAS copies Record-Route into 2xx/1xx of a dialog-creating request.
                HeaderName::RecordRoute if status.as_u16() > 100 && status.as_u16() < 300 => {
                    headers.push(HeaderName::RecordRoute, h.value.clone())
                }
                _ => {}
            }
        }
        ResponseBuilder {
            response: Response {
                status,
                reason: Bytes::from_static(status.canonical_reason().as_bytes()),
                headers,
                body: Bytes::new(),
            },
        }
    }

    /// Replaces the reason phrase.
    pub fn reason(mut self, reason: impl Into<String>) -> ResponseBuilder {
        let r: String = reason.into();
        // Never let a caller-supplied reason break the status line.
        let clean: String = r.chars().filter(|c| *c != '\r' && *c != '\n').collect();
        self.response.reason = Bytes::from(clean);
        self
    }

    /// Adds `;tag=...` to To when it carries no tag yet (§8.2.6.2).
    pub fn to_tag(mut self, tag: &[u8]) -> ResponseBuilder {
        if let Some(h) = self.response.headers.first_mut(&HeaderName::To) {
            let has_tag = crate::header::NameAddr::parse(&h.value)
                .map(|na| na.tag().is_some())
                .unwrap_or(true);
            if !has_tag {
                let mut v = BytesMut::with_capacity(h.value.len() + 5 + tag.len());
                v.put_slice(&h.value);
                v.put_slice(b";tag=");
                v.put_slice(tag);
                h.value = v.freeze();
            }
        }
        self
    }

    /// Appends a header.
    pub fn header(mut self, name: HeaderName, value: impl Into<Bytes>) -> ResponseBuilder {
        self.response.headers.push(name, value);
        self
    }

    /// Sets the body and its Content-Type.
    pub fn body(mut self, content_type: &'static str, body: impl Into<Bytes>) -> ResponseBuilder {
        self.response.headers.push(
            HeaderName::ContentType,
            Bytes::from_static(content_type.as_bytes()),
        );
        self.response.body = body.into();
        self
    }

    /// The finished response.
    pub fn build(self) -> Response {
        self.response
    }
}
