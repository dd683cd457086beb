//! Recordings over the API: the list of a tenant's recordings (ids,
//! channels, key, size; audited like `dhwani recordings list`) and one
//! recording decrypted as a WAV stream, for keys with the recordings
//! permission and tenants whose key the server holds. The audio is
//! decrypted on a blocking thread in constant memory and streamed as it
//! verifies; the read is in the audit log, with its reason, before the
//! first byte is sent.

use std::io::{BufReader, Write};

use axum::extract::Path as UrlPath;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::auth::{Caller, Permission};
use super::problem::{ApiQuery, Problem};
use super::routes::{Problems, St, reason, require, scope};
use crate::privacy::Audit;
use crate::privacy::layout::{EXTENSION, stored};

/// One recording.
#[derive(Debug, Serialize, ToSchema)]
pub struct ApiRecording {
    /// Its id (`CALL-call` for a call recording, `CALL-msg-N` for a
    /// message).
    pub recording_id: String,
    /// Tenant.
    pub tenant: String,
    /// The call it belongs to.
    pub call_id: String,
    /// 1 or 2 (caller left, other side right).
    pub channels: u16,
    /// Samples per second.
    pub sample_rate: u32,
    /// The key it is sealed under.
    pub key_id: String,
    /// `kek` (the server holds the key) or `public-key` (write-only).
    pub key_mode: &'static str,
    /// Encrypted file size.
    pub bytes: u64,
}

/// Which recordings.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RecordingParams {
    /// Only this tenant (a tenant key may name only its own).
    pub tenant: Option<String>,
    /// Only this call's.
    pub call_id: Option<String>,
}

/// The tenant's recordings (audited: the `Dhwani-Reason` header is kept).
#[utoipa::path(get, path = "/v1/recordings", params(super::routes::PageParams, RecordingParams,
    ("Dhwani-Reason" = Option<String>, Header, description = "why (kept in the audit log)")),
    responses((status = 200, body = super::routes::Page<ApiRecording>), Problems))]
pub async fn list(
    axum::extract::State(s): St,
    c: Caller,
    headers: HeaderMap,
    ApiQuery(q): ApiQuery<RecordingParams>,
    super::problem::ApiQuery(page): super::problem::ApiQuery<super::routes::PageParams>,
) -> Result<axum::Json<super::routes::Page<ApiRecording>>, Problem> {
    require(&c, Permission::Recordings)?;
    let tenant = scope(&c, q.tenant.as_deref())?;
    let data_dir = s.config.data_dir.clone();
    let call = q.call_id.clone();
    let seen: Vec<String> = s
        .registry
        .tenants()
        .iter()
        .filter(|t| c.sees(&t.id) && tenant.as_ref().is_none_or(|x| **x == *t.id))
        .map(|t| t.id.to_string())
        .collect();
    let found = tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        for t in &seen {
            for f in stored(&data_dir, Some(t)) {
                let Ok(mut file) = std::fs::File::open(&f) else {
                    continue;
                };
                let Ok((h, _)) = recordings::stream::read_header(&mut file) else {
                    continue;
                };
                if h.tenant != *t || call.as_ref().is_some_and(|c| *c != h.call_id) {
                    continue;
                }
                out.push(ApiRecording {
                    recording_id: f
                        .file_stem()
                        .map(|s| s.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                    tenant: h.tenant.clone(),
                    call_id: h.call_id.clone(),
                    channels: h.channels.into(),
                    sample_rate: h.sample_rate,
                    key_id: h.key_id.clone(),
                    key_mode: match h.key_mode {
                        recordings::header::KeyMode::Kek => "kek",
                        recordings::header::KeyMode::PublicKey => "public-key",
                    },
                    bytes: std::fs::metadata(&f).map(|m| m.len()).unwrap_or(0),
                });
            }
        }
        out
    })
    .await
    .map_err(Problem::internal)?;
    let found = super::routes::paginate(found, &page)?;
    let ids: Vec<&str> = found
        .items
        .iter()
        .map(|r| r.recording_id.as_str())
        .collect();
    Audit::new(&s.config.data_dir)
        .append_async(
            &c.actor(),
            "api.recordings.list",
            &format!(
                "tenant {}; {} recordings: {}; reason: {}",
                tenant.as_deref().unwrap_or("any"),
                ids.len(),
                ids.iter().take(100).copied().collect::<Vec<_>>().join(" "),
                reason(&headers).as_deref().unwrap_or("none given")
            ),
        )
        .await?;
    Ok(axum::Json(found))
}

/// Forwards what the decryption writes to the response body.
struct ChunkSender(tokio::sync::mpsc::Sender<Result<bytes::Bytes, std::io::Error>>);

impl Write for ChunkSender {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .blocking_send(Ok(bytes::Bytes::copy_from_slice(buf)))
            .map_err(|_| std::io::Error::other("the client went away"))?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn valid_id(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// One recording, decrypted, as `audio/wav` (the recordings permission,
/// and a tenant whose key the server holds; audited with the
/// `Dhwani-Reason` header). A recording cut short by a crash yields its
/// audio up to the cut.
#[utoipa::path(get, path = "/v1/recordings/{id}/audio", params(
    ("id" = String, Path, description = "the recording's id"),
    ("Dhwani-Reason" = Option<String>, Header, description = "why (kept in the audit log)")),
    responses((status = 200, content_type = "audio/wav", body = Vec<u8>),
        (status = 409, description = "the tenant records write-only: the server cannot decrypt", body = Problem, content_type = "application/problem+json"),
        Problems))]
pub async fn audio(
    axum::extract::State(s): St,
    c: Caller,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
) -> Result<Response, Problem> {
    require(&c, Permission::Recordings)?;
    if !c.recordings {
        return Err(Problem::forbidden(
            "this key may not read recordings (make one with --recordings)",
        ));
    }
    let missing = || Problem::not_found("no such recording");
    if !valid_id(&id) {
        return Err(missing());
    }
    // Only in the folders of tenants this key sees.
    let file = s
        .registry
        .tenants()
        .iter()
        .filter(|t| c.sees(&t.id))
        .map(|t| {
            s.config
                .data_dir
                .join("recordings")
                .join(&*t.id)
                .join(format!("{id}.{EXTENSION}"))
        })
        .find(|p| p.is_file())
        .ok_or_else(missing)?;
    let mut f = std::fs::File::open(&file).map_err(|_| missing())?;
    let (h, _) = recordings::stream::read_header(&mut f).map_err(|_| missing())?;
    if !c.sees(&h.tenant) {
        return Err(missing());
    }
    if h.key_mode == recordings::header::KeyMode::PublicKey {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            "this tenant records write-only (public-key mode): only the business's private key decrypts it",
        ));
    }
    let Some(key) = crate::privacy::keys::find(&s.config.data_dir, &h.tenant, &h.key_id) else {
        return Err(Problem::new(
            StatusCode::CONFLICT,
            "the key this recording is sealed under is not on this server",
        ));
    };
    Audit::new(&s.config.data_dir)
        .append_async(
            &c.actor(),
            "recording.decrypt",
            &crate::privacy::recording_subject(&id, reason(&headers).as_deref()),
        )
        .await?;
    let (tx, mut rx) = tokio::sync::mpsc::channel(16);
    let kek = key.kek().clone();
    tokio::task::spawn_blocking(move || {
        let Ok(input) = std::fs::File::open(&file) else {
            return;
        };
        let out = std::io::BufWriter::with_capacity(64 * 1024, ChunkSender(tx.clone()));
        let r = recordings::stream::decrypt_sized(
            BufReader::new(input),
            |h| recordings::keys::unwrap_kek(&kek, h),
            out,
        );
        if let Err(e) = r {
            tracing::warn!(recording = %file.display(), error = %e, "recording served up to where it stops verifying");
        }
    });
    let body = axum::body::Body::from_stream(futures::stream::poll_fn(move |cx| rx.poll_recv(cx)));
    Ok((
        [
            (header::CONTENT_TYPE, "audio/wav"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response())
}
