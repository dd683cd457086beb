//! Status codes (RFC 3261 §7.2, §21).

/// A three-digit SIP status code (100..=699).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StatusCode(u16);

macro_rules! codes {
    ($($name:ident = $code:expr, $reason:expr;)*) => {
        impl StatusCode {
            $(
                #[doc = concat!(stringify!($code), " ", $reason)]
                pub const $name: StatusCode = StatusCode($code);
            )*
            /// The reason phrase RFC 3261 §21 gives this code.
            pub fn canonical_reason(self) -> &'static str {
                match self.0 {
                    $($code => $reason,)*
                    100..=199 => "Session Progress",
                    200..=299 => "OK",
                    300..=399 => "Redirection",
                    400..=499 => "Client Error",
                    500..=599 => "Server Error",
                    _ => "Global Failure",
                }
            }
        }
    };
}

codes! {
    TRYING = 100, "Trying";
    RINGING = 180, "Ringing";
    SESSION_PROGRESS = 183, "Session Progress";
    OK = 200, "OK";
    ACCEPTED = 202, "Accepted";
    BAD_REQUEST = 400, "Bad Request";
    UNAUTHORIZED = 401, "Unauthorized";
    FORBIDDEN = 403, "Forbidden";
    NOT_FOUND = 404, "Not Found";
    METHOD_NOT_ALLOWED = 405, "Method Not Allowed";
    PROXY_AUTHENTICATION_REQUIRED = 407, "Proxy Authentication Required";
    REQUEST_TIMEOUT = 408, "Request Timeout";
    UNSUPPORTED_MEDIA_TYPE = 415, "Unsupported Media Type";
    UNSUPPORTED_URI_SCHEME = 416, "Unsupported URI Scheme";
    BAD_EXTENSION = 420, "Bad Extension";
    INTERVAL_TOO_BRIEF = 423, "Interval Too Brief";
    TEMPORARILY_UNAVAILABLE = 480, "Temporarily Unavailable";
    CALL_DOES_NOT_EXIST = 481, "Call/Transaction Does Not Exist";
    LOOP_DETECTED = 482, "Loop Detected";
    TOO_MANY_HOPS = 483, "Too Many Hops";
    BUSY_HERE = 486, "Busy Here";
    REQUEST_TERMINATED = 487, "Request Terminated";
    NOT_ACCEPTABLE_HERE = 488, "Not Acceptable Here";
    REQUEST_PENDING = 491, "Request Pending";
    MESSAGE_TOO_LARGE = 513, "Message Too Large";
    SERVER_INTERNAL_ERROR = 500, "Server Internal Error";
    NOT_IMPLEMENTED = 501, "Not Implemented";
    SERVICE_UNAVAILABLE = 503, "Service Unavailable";
    VERSION_NOT_SUPPORTED = 505, "Version Not Supported";
}

impl StatusCode {
    /// Makes a status code from a number in 100..=699.
    pub fn new(code: u16) -> Option<StatusCode> {
        (100..=699).contains(&code).then_some(StatusCode(code))
    }
    /// The number.
    pub fn as_u16(self) -> u16 {
        self.0
    }
    /// 1xx.
    pub fn is_provisional(self) -> bool {
        self.0 < 200
    }
    /// 2xx.
    pub fn is_success(self) -> bool {
        (200..300).contains(&self.0)
    }
    /// 200..=699.
    pub fn is_final(self) -> bool {
        self.0 >= 200
    }
}

impl std::fmt::Display for StatusCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}
