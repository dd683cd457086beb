//! HTTPS endpoints on loopback for the tests: a throwaway CA and a leaf
//! certificate made for the run (TEST FIXTURES, never real keys), and a
//! request reader for the endpoints the tests write.

use std::sync::Arc;

use tokio::io::AsyncReadExt;

/// A leaf certificate: its chain and key.
pub type Leaf = (
    Vec<rustls_pki_types::CertificateDer<'static>>,
    rustls_pki_types::PrivateKeyDer<'static>,
);

/// TEST FIXTURE: a throwaway CA and a leaf certificate for `names`, made
/// for this run. Returns (CA PEM, leaf chain, leaf key).
pub fn certificates(
    names: &[&str],
) -> (
    String,
    Vec<rustls_pki_types::CertificateDer<'static>>,
    rustls_pki_types::PrivateKeyDer<'static>,
) {
    let (ca, mut leaves) = ca_and_leaves(&[(names, false)]);
    let (chain, key) = leaves.remove(0);
    (ca, chain, key)
}

/// TEST FIXTURE: a throwaway CA and leaves it signed, one per (names,
/// expired): an expired leaf's validity ended in 2020. Returns the CA's
/// PEM and the leaves.
pub fn ca_and_leaves(specs: &[(&[&str], bool)]) -> (String, Vec<Leaf>) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "dhwani test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let leaves = specs
        .iter()
        .map(|(names, expired)| {
            let leaf_key = rcgen::KeyPair::generate().unwrap();
            let mut params = rcgen::CertificateParams::new(
                names.iter().map(|n| n.to_string()).collect::<Vec<_>>(),
            )
            .unwrap();
            if *expired {
                params.not_before = rcgen::date_time_ymd(2019, 1, 1);
                params.not_after = rcgen::date_time_ymd(2020, 1, 1);
            }
            let leaf = params.signed_by(&leaf_key, &issuer).unwrap();
            let key = rustls_pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into());
            (vec![leaf.der().clone()], key)
        })
        .collect();
    (ca.pem(), leaves)
}

/// A TLS acceptor for the chain and key (ring).
pub fn acceptor(
    chain: Vec<rustls_pki_types::CertificateDer<'static>>,
    key: rustls_pki_types::PrivateKeyDer<'static>,
) -> tokio_rustls::TlsAcceptor {
    let cfg = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .unwrap();
    tokio_rustls::TlsAcceptor::from(Arc::new(cfg))
}

/// A request as read.
#[derive(Debug, Clone)]
pub struct Request {
    /// `POST /path`.
    pub line: String,
    /// Headers, names lower-case.
    pub headers: Vec<(String, String)>,
    /// The body (Content-Length bytes).
    pub body: Vec<u8>,
}

impl Request {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The path, without the query.
    pub fn path(&self) -> &str {
        let p = self.line.split_whitespace().nth(1).unwrap_or("/");
        p.split('?').next().unwrap_or(p)
    }
}

/// Reads one request (its head and a Content-Length body of at most
/// 1 MiB); None if the peer went away first.
pub async fn read_request<S: tokio::io::AsyncRead + Unpin>(s: &mut S) -> Option<Request> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        if buf.len() > 64 * 1024 {
            return None;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.lines();
    let line = lines.next().unwrap_or_default().to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0)
        .min(1 << 20);
    let mut body = buf[head_end..].to_vec();
    while body.len() < len {
        match s.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => body.extend_from_slice(&chunk[..n]),
        }
    }
    body.truncate(len);
    Some(Request {
        line,
        headers,
        body,
    })
}
