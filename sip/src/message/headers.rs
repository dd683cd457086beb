//! Header fields: names (full and compact, case-insensitive), verbatim values,
//! and typed accessors for the headers the core needs.

use bytes::Bytes;

use crate::header::{
    CSeq, Challenge, Contacts, Credentials, MediaType, NameAddr, Via, parse_u32, split_commas, trim,
};
use crate::{Error, Result};

macro_rules! header_names {
    ($($variant:ident => $full:expr $(, $compact:expr)?;)*) => {
        /// A header field name. Known names are matched case-insensitively,
        /// with their RFC 3261 §7.3.3 compact forms; others keep their bytes.
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum HeaderName {
            $(
                #[doc = $full]
                $variant,
            )*
            /// Any other header, as received.
            Other(Bytes),
        }

        impl HeaderName {
            /// Maps a received name.
            pub fn from_bytes(name: Bytes) -> HeaderName {
                if name.len() == 1 {
                    let c = name.first().map(u8::to_ascii_lowercase);
                    $($(
                        if c == Some($compact) { return HeaderName::$variant; }
                    )?)*
                    return HeaderName::Other(name);
                }
                $(
                    if name.len() == $full.len() && name.eq_ignore_ascii_case($full.as_bytes()) {
                        return HeaderName::$variant;
                    }
                )*
                HeaderName::Other(name)
            }

            /// The canonical (full) name we write on the wire.
            pub fn as_bytes(&self) -> &[u8] {
                match self {
                    $(HeaderName::$variant => $full.as_bytes(),)*
                    HeaderName::Other(b) => b,
                }
            }
        }
    };
}

header_names! {
    Via => "Via", b'v';
    From => "From", b'f';
    To => "To", b't';
    CallId => "Call-ID", b'i';
    CSeq => "CSeq";
    Contact => "Contact", b'm';
    MaxForwards => "Max-Forwards";
    Route => "Route";
    RecordRoute => "Record-Route";
    ContentType => "Content-Type", b'c';
    ContentLength => "Content-Length", b'l';
    ContentEncoding => "Content-Encoding", b'e';
    ContentDisposition => "Content-Disposition";
    Allow => "Allow";
    Supported => "Supported", b'k';
    Require => "Require";
    ProxyRequire => "Proxy-Require";
    Unsupported => "Unsupported";
    Expires => "Expires";
    MinExpires => "Min-Expires";
    Authorization => "Authorization";
    WwwAuthenticate => "WWW-Authenticate";
    ProxyAuthorization => "Proxy-Authorization";
    ProxyAuthenticate => "Proxy-Authenticate";
    Accept => "Accept";
    AcceptEncoding => "Accept-Encoding";
    AcceptLanguage => "Accept-Language";
    UserAgent => "User-Agent";
    Server => "Server";
    Warning => "Warning";
    RetryAfter => "Retry-After";
    Subject => "Subject", b's';
    Event => "Event", b'o';
    AllowEvents => "Allow-Events", b'u';
    ReferTo => "Refer-To", b'r';
    SessionExpires => "Session-Expires", b'x';
    Timestamp => "Timestamp";
    Date => "Date";
    Path => "Path";
    SubscriptionState => "Subscription-State";
    ReferredBy => "Referred-By", b'b';
    Replaces => "Replaces";
}

impl std::fmt::Display for HeaderName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&String::from_utf8_lossy(self.as_bytes()))
    }
}

/// One header field line (after unfolding): name and verbatim value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The name.
    pub name: HeaderName,
    /// The value, trimmed of surrounding whitespace, folding replaced by SP.
    pub value: Bytes,
}

/// The header fields of a message, in wire order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(Vec<Header>);

impl Headers {
    /// An empty list.
    pub fn new() -> Headers {
        Headers(Vec::new())
    }
    /// An empty list with room for `n` fields.
    pub fn with_capacity(n: usize) -> Headers {
        Headers(Vec::with_capacity(n))
    }
    /// Appends a field.
    pub fn push(&mut self, name: HeaderName, value: impl Into<Bytes>) {
        self.0.push(Header {
            name,
            value: value.into(),
        });
    }
    /// Inserts a field before all others.
    pub fn push_front(&mut self, name: HeaderName, value: impl Into<Bytes>) {
        self.0.insert(
            0,
            Header {
                name,
                value: value.into(),
            },
        );
    }
    /// Removes every field with this name.
    pub fn remove(&mut self, name: &HeaderName) {
        self.0.retain(|h| &h.name != name);
    }
    /// Replaces every field with this name by one field.
    pub fn set(&mut self, name: HeaderName, value: impl Into<Bytes>) {
        let value = value.into();
        if let Some(pos) = self.0.iter().position(|h| h.name == name) {
            self.0.retain({
                let mut seen = 0usize;
                let name = name.clone();
                move |h| {
                    if h.name == name {
                        seen += 1;
                        seen == 1
                    } else {
                        true
                    }
                }
            });
            if let Some(h) = self.0.get_mut(pos) {
                h.value = value;
            }
        } else {
            self.push(name, value);
        }
    }
    /// The first value of a field.
    pub fn get(&self, name: &HeaderName) -> Option<&Bytes> {
        self.0.iter().find(|h| &h.name == name).map(|h| &h.value)
    }
    /// Every value (line) of a field.
    pub fn get_all<'a>(&'a self, name: &'a HeaderName) -> impl Iterator<Item = &'a Bytes> + 'a {
        self.0
            .iter()
            .filter(move |h| &h.name == name)
            .map(|h| &h.value)
    }
    /// All fields.
    pub fn iter(&self) -> impl Iterator<Item = &Header> {
        self.0.iter()
    }
    /// Number of field lines.
    pub fn len(&self) -> usize {
        self.0.len()
    }
    /// No fields at all.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// Mutable access to the first field of this name.
    pub fn first_mut(&mut self, name: &HeaderName) -> Option<&mut Header> {
        self.0.iter_mut().find(|h| &h.name == name)
    }

    /// A single-valued field: present exactly once.
    fn single<'a>(&'a self, name: &'a HeaderName, label: &'static str) -> Result<&'a Bytes> {
        let mut it = self.get_all(name);
        let first = it.next().ok_or(Error::MissingHeader { header: label })?;
        if it.next().is_some() {
            return Err(Error::MalformedHeader { header: label });
        }
        Ok(first)
    }

    /// Every Via value, top first (comma-separated values split).
    pub fn vias(&self) -> Result<Vec<Via>> {
        let mut out = Vec::new();
        for line in self.get_all(&HeaderName::Via) {
            for v in split_commas(line) {
                out.push(Via::parse(&v)?);
            }
        }
        Ok(out)
    }
    /// The topmost Via value.
    pub fn top_via(&self) -> Result<Via> {
        let line = self
            .get(&HeaderName::Via)
            .ok_or(Error::MissingHeader { header: "Via" })?;
        let first = split_commas(line)
            .next()
            .ok_or(Error::MalformedHeader { header: "Via" })?;
        Via::parse(&first)
    }
    /// The From value.
    pub fn from(&self) -> Result<NameAddr> {
        NameAddr::parse(self.single(&HeaderName::From, "From")?)
            .map_err(|_| Error::MalformedHeader { header: "From" })
    }
    /// The To value.
    pub fn to(&self) -> Result<NameAddr> {
        NameAddr::parse(self.single(&HeaderName::To, "To")?)
            .map_err(|_| Error::MalformedHeader { header: "To" })
    }
    /// The Call-ID value (RFC 3261 §25.1: `word ["@" word]`, no whitespace).
    pub fn call_id(&self) -> Result<Bytes> {
        let v = trim(self.single(&HeaderName::CallId, "Call-ID")?);
        let ok = !v.is_empty()
            && v.iter().all(|&c| c.is_ascii_graphic())
            && v.iter().filter(|&&c| c == b'@').count() <= 1;
        if ok {
            Ok(v)
        } else {
            Err(Error::MalformedHeader { header: "Call-ID" })
        }
    }
    /// The CSeq value.
    pub fn cseq(&self) -> Result<CSeq> {
        CSeq::parse(self.single(&HeaderName::CSeq, "CSeq")?)
    }
    /// Max-Forwards, if present (at most once, 0..=255).
    pub fn max_forwards(&self) -> Result<Option<u32>> {
        let bad = Error::MalformedHeader {
            header: "Max-Forwards",
        };
        let mut it = self.get_all(&HeaderName::MaxForwards);
        let Some(v) = it.next() else { return Ok(None) };
        if it.next().is_some() {
            return Err(bad);
        }
        parse_u32(v).filter(|&n| n <= 255).map(Some).ok_or(bad)
    }
    /// Content-Length, if present. Several different values are an error.
    pub fn content_length(&self) -> Result<Option<usize>> {
        let mut found: Option<usize> = None;
        for v in self.get_all(&HeaderName::ContentLength) {
            let n = parse_u32(v).ok_or(Error::MalformedHeader {
                header: "Content-Length",
            })? as usize;
            if found.is_some_and(|f| f != n) {
                return Err(Error::MalformedHeader {
                    header: "Content-Length",
                });
            }
            found = Some(n);
        }
        Ok(found)
    }
    /// Content-Type, if present.
    pub fn content_type(&self) -> Result<Option<MediaType>> {
        self.get(&HeaderName::ContentType)
            .map(MediaType::parse)
            .transpose()
    }
    /// Contact values (`*` or a list of name-addrs).
    pub fn contacts(&self) -> Result<Contacts> {
        Contacts::parse(self.get_all(&HeaderName::Contact))
    }
    /// Route values, top first.
    pub fn routes(&self) -> Result<Vec<NameAddr>> {
        self.name_addr_list(&HeaderName::Route, "Route")
    }
    /// Record-Route values, top first.
    pub fn record_routes(&self) -> Result<Vec<NameAddr>> {
        self.name_addr_list(&HeaderName::RecordRoute, "Record-Route")
    }
    fn name_addr_list(&self, name: &HeaderName, label: &'static str) -> Result<Vec<NameAddr>> {
        let mut out = Vec::new();
        for line in self.get_all(name) {
            for v in split_commas(line) {
                out.push(
                    NameAddr::parse(&v).map_err(|_| Error::MalformedHeader { header: label })?,
                );
            }
        }
        Ok(out)
    }
    /// Option tags or methods of a token-list header (Allow, Supported,
    /// Require, Proxy-Require, Unsupported).
    pub fn tokens(&self, name: &HeaderName) -> Vec<Bytes> {
        self.get_all(name)
            .flat_map(split_commas)
            .filter(|t| !t.is_empty())
            .collect()
    }
    /// Expires, if present.
    pub fn expires(&self) -> Result<Option<u32>> {
        self.get(&HeaderName::Expires)
            .map(|v| parse_u32(v).ok_or(Error::MalformedHeader { header: "Expires" }))
            .transpose()
    }
    /// Authorization (or Proxy-Authorization) credentials, if present.
    pub fn credentials(&self, name: &HeaderName) -> Result<Option<Credentials>> {
        self.get(name).map(Credentials::parse).transpose()
    }
    /// WWW-Authenticate (or Proxy-Authenticate) challenge, if present.
    pub fn challenge(&self, name: &HeaderName) -> Result<Option<Challenge>> {
        self.get(name).map(Challenge::parse).transpose()
    }
}
