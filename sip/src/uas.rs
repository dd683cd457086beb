//! The checks a UAS makes before acting on a request (RFC 3261 §8.2), in the
//! order the RFC gives: method (§8.2.1), header inspection (§8.2.2: 416,
//! 483, 420), content (§8.2.3: 415). A request that fails one of them gets
//! the [`Rejection`] as its response. Merged-request detection (482,
//! §8.2.2.2) needs transaction state and lives in the transaction layer.

use bytes::Bytes;

use crate::header::MediaType;
use crate::message::{HeaderName, Method, Request, Response, ResponseBuilder, StatusCode};
use crate::uri::Scheme;

/// What this UAS implements.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Methods we answer (Allow). Anything else we know gets 405.
    pub allow: Vec<Method>,
    /// Option tags we support (Supported); anything else in Require gets 420.
    pub supported: Vec<&'static str>,
    /// Body types we accept, per method (`application/sdp` for INVITE).
    pub accept: Vec<(Method, &'static str)>,
}

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            allow: vec![
                Method::Invite,
                Method::Ack,
                Method::Bye,
                Method::Cancel,
                Method::Options,
                Method::Info,
            ],
            supported: vec![],
            accept: vec![
                (Method::Invite, "application/sdp"),
                (Method::Ack, "application/sdp"),
                (Method::Options, "application/sdp"),
                (Method::Info, "application/dtmf-relay"),
                (Method::Info, "application/dtmf"),
            ],
        }
    }
}

impl Policy {
    /// The Allow header value.
    pub fn allow_header(&self) -> String {
        self.allow
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    }
    /// The Accept header value for a method (all types when none given).
    pub fn accept_header(&self, method: Option<&Method>) -> String {
        let mut v: Vec<&str> = self
            .accept
            .iter()
            .filter(|(m, _)| method.is_none_or(|want| m == want))
            .map(|(_, t)| *t)
            .collect();
        v.dedup();
        v.join(", ")
    }
    /// The Supported header value.
    pub fn supported_header(&self) -> String {
        self.supported.join(", ")
    }
}

/// Why a request is refused, ready to become a response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The status.
    pub status: StatusCode,
    /// A reason phrase that says what was wrong.
    pub reason: String,
    /// Extra headers the RFC asks for (Allow, Unsupported, Accept).
    pub headers: Vec<(HeaderName, String)>,
}

impl Rejection {
    fn new(status: StatusCode, reason: impl Into<String>) -> Rejection {
        Rejection {
            status,
            reason: reason.into(),
            headers: Vec::new(),
        }
    }
    /// The response to `req`, with `to_tag` added to To.
    pub fn to_response(&self, req: &Request, to_tag: &[u8]) -> Response {
        let mut b = ResponseBuilder::new(req, self.status)
            .reason(self.reason.clone())
            .to_tag(to_tag);
        for (n, v) in &self.headers {
            b = b.header(n.clone(), Bytes::from(v.clone()));
        }
        b.build()
    }
}

/// Runs the §8.2 checks. `Ok(())` means the request may be processed.
pub fn check_request(req: &Request, policy: &Policy) -> Result<(), Rejection> {
    if let Err(e) = req.validate() {
        return Err(Rejection::new(StatusCode::BAD_REQUEST, e.reason_phrase()));
    }
    // §8.2.1: method inspection.
    if !policy.allow.contains(&req.method) {
        let status = match req.method {
            Method::Other(_) => StatusCode::NOT_IMPLEMENTED,
            _ => StatusCode::METHOD_NOT_ALLOWED,
        };
        let mut r = Rejection::new(status, status.canonical_reason());
        r.headers.push((HeaderName::Allow, policy.allow_header()));
        return Err(r);
    }
    // §8.2.2.1: Request-URI scheme.
    if matches!(req.uri.scheme, Scheme::Other(_)) {
        return Err(Rejection::new(
            StatusCode::UNSUPPORTED_URI_SCHEME,
            "Unsupported URI Scheme",
        ));
    }
    // A B2BUA cannot forward a request that has no hops left (§16.3 step 3);
    // OPTIONS with Max-Forwards 0 is a ping of this hop and is answered (§11).
    if req.method != Method::Options
        && req.method != Method::Ack
        && let Ok(Some(0)) = req.headers.max_forwards()
    {
        return Err(Rejection::new(StatusCode::TOO_MANY_HOPS, "Too Many Hops"));
    }
    // §8.2.2.3: Require. Not applied to ACK and CANCEL.
    if req.method != Method::Ack && req.method != Method::Cancel {
        let unsupported: Vec<String> = req
            .headers
            .tokens(&HeaderName::Require)
            .iter()
            .filter(|t| {
                !policy
                    .supported
                    .iter()
                    .any(|s| t.eq_ignore_ascii_case(s.as_bytes()))
            })
            .map(|t| String::from_utf8_lossy(t).into_owned())
            .collect();
        if !unsupported.is_empty() {
            let mut r = Rejection::new(StatusCode::BAD_EXTENSION, "Bad Extension");
            r.headers
                .push((HeaderName::Unsupported, unsupported.join(", ")));
            return Err(r);
        }
    }
    // §8.2.3: content processing.
    if !req.body.is_empty() && req.method != Method::Cancel && req.method != Method::Bye {
        let accept_415 = || {
            let mut r =
                Rejection::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "Unsupported Media Type");
            r.headers
                .push((HeaderName::Accept, policy.accept_header(Some(&req.method))));
            r.headers
                .push((HeaderName::AcceptEncoding, "identity".to_owned()));
            r
        };
        if let Some(enc) = req.headers.get(&HeaderName::ContentEncoding)
            && !enc.eq_ignore_ascii_case(b"identity")
        {
            return Err(accept_415());
        }
        let ok = match req.headers.content_type() {
            // §7.4.1: a body without Content-Type is taken as application/sdp
            // only by lenient peers; we refuse it.
            Ok(None) => false,
            Ok(Some(mt)) => accepts(policy, &req.method, &mt),
            Err(_) => false,
        };
        if !ok {
            return Err(accept_415());
        }
    }
    Ok(())
}

fn accepts(policy: &Policy, method: &Method, mt: &MediaType) -> bool {
    policy
        .accept
        .iter()
        .any(|(m, t)| m == method && t.split_once('/').is_some_and(|(k, s)| mt.is(k, s)))
}
