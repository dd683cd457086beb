//! The one error type of the `sip` crate.

use crate::message::StatusCode;

/// Everything that can go wrong in the `sip` crate.
///
/// Errors caused by a peer's bytes say which status code answers them on the
/// wire ([`Error::status_code`]), so a transport can reply 400/505/513 without
/// knowing the details.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The message is larger than the configured cap.
    #[error("message of {size} bytes exceeds the limit of {limit}")]
    MessageTooLarge {
        /// Bytes seen so far.
        size: usize,
        /// The configured cap.
        limit: usize,
    },
    /// More header lines than allowed.
    #[error("more than {limit} header fields")]
    TooManyHeaders {
        /// The configured cap.
        limit: usize,
    },
    /// One header line is longer than allowed.
    #[error("a header line exceeds {limit} bytes")]
    HeaderLineTooLong {
        /// The configured cap.
        limit: usize,
    },
    /// More Via values than allowed.
    #[error("more than {limit} Via values")]
    TooManyVias {
        /// The configured cap.
        limit: usize,
    },
    /// The header section never ended (no empty line).
    #[error("incomplete message: header section not terminated")]
    Incomplete,
    /// The first line is neither a request line nor a status line.
    #[error("malformed start line")]
    MalformedStartLine,
    /// The SIP version is not SIP/2.0 (RFC 3261 §8.2.2: 505).
    #[error("unsupported SIP version")]
    UnsupportedVersion,
    /// A header line is not `name: value`.
    #[error("malformed header line {line}")]
    MalformedHeaderLine {
        /// 1-based line number within the message.
        line: usize,
    },
    /// A header field's value does not follow its grammar.
    #[error("malformed {header} header")]
    MalformedHeader {
        /// The header name, as defined in RFC 3261 §20.
        header: &'static str,
    },
    /// A mandatory header is missing (RFC 3261 §8.1.1).
    #[error("missing {header} header")]
    MissingHeader {
        /// The header name.
        header: &'static str,
    },
    /// The URI does not follow RFC 3261 §25.1.
    #[error("malformed URI")]
    MalformedUri,
    /// Content-Length disagrees with the bytes present.
    #[error("Content-Length {declared} but {present} body bytes present")]
    BodyLengthMismatch {
        /// Content-Length value.
        declared: usize,
        /// Bytes actually present after the header section.
        present: usize,
    },
    /// A stream message carries no Content-Length (RFC 3261 §18.3: mandatory).
    #[error("Content-Length is mandatory on stream transports")]
    MissingContentLength,
    /// Digest authentication failed to parse or verify.
    #[error("digest authentication: {0}")]
    Digest(&'static str),
    /// The SDP body does not follow RFC 4566.
    #[error("malformed SDP: {0}")]
    MalformedSdp(&'static str),
    /// The transaction does not exist (any more).
    #[error("unknown transaction")]
    UnknownTransaction,
    /// The transaction table is full.
    #[error("more than {limit} transactions")]
    TooManyTransactions {
        /// The configured cap.
        limit: usize,
    },
    /// The dialog does not exist (any more).
    #[error("unknown dialog")]
    UnknownDialog,
    /// An IO error from a transport (kept as text so the enum stays `Clone`).
    #[error("transport IO: {0}")]
    Io(String),
    /// A listener could not be opened.
    #[error("cannot listen on {transport} {addr}: {reason}{hint}")]
    Bind {
        /// `udp`, `tcp` or `tls`.
        transport: &'static str,
        /// The address asked for.
        addr: std::net::SocketAddr,
        /// The system's words.
        reason: String,
        /// What to do about it, when known (empty otherwise).
        hint: &'static str,
    },
}

impl Error {
    /// The status code that answers this error on the wire, if a response is
    /// possible at all.
    pub fn status_code(&self) -> Option<StatusCode> {
        match self {
            Error::MessageTooLarge { .. } => Some(StatusCode::MESSAGE_TOO_LARGE),
            Error::UnsupportedVersion => Some(StatusCode::VERSION_NOT_SUPPORTED),
            Error::TooManyHeaders { .. }
            | Error::HeaderLineTooLong { .. }
            | Error::TooManyVias { .. }
            | Error::MalformedHeaderLine { .. }
            | Error::MalformedHeader { .. }
            | Error::MissingHeader { .. }
            | Error::MalformedUri
            | Error::BodyLengthMismatch { .. }
            | Error::MissingContentLength
            | Error::MalformedSdp(_) => Some(StatusCode::BAD_REQUEST),
            Error::TooManyTransactions { .. } => Some(StatusCode::SERVICE_UNAVAILABLE),
            Error::UnknownTransaction | Error::UnknownDialog => {
                Some(StatusCode::CALL_DOES_NOT_EXIST)
            }
            Error::Incomplete
            | Error::MalformedStartLine
            | Error::Digest(_)
            | Error::Io(_)
            | Error::Bind { .. } => None,
        }
    }

    /// A short reason phrase for a 400 that tells the peer what was wrong.
    pub fn reason_phrase(&self) -> String {
        match self {
            Error::MissingHeader { header } => format!("Missing {header} Header"),
            Error::MalformedHeader { header } => format!("Malformed {header} Header"),
            Error::MalformedUri => "Malformed Request-URI".to_owned(),
            Error::BodyLengthMismatch { .. } => "Content-Length Mismatch".to_owned(),
            Error::MissingContentLength => "Missing Content-Length".to_owned(),
            Error::MalformedHeaderLine { .. } => "Malformed Header Line".to_owned(),
            Error::TooManyHeaders { .. } => "Too Many Headers".to_owned(),
            Error::HeaderLineTooLong { .. } => "Header Line Too Long".to_owned(),
            Error::TooManyVias { .. } => "Too Many Via Values".to_owned(),
            Error::MalformedSdp(_) => "Malformed SDP Body".to_owned(),
            other => other
                .status_code()
                .map(|s| s.canonical_reason().to_owned())
                .unwrap_or_else(|| "Bad Request".to_owned()),
        }
    }
}

/// Result alias of the `sip` crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Error {
        Error::Io(e.to_string())
    }
}
