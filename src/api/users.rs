//! Console users: passwords hashed with Argon2id (the `argon2` crate's
//! defaults, OWASP's recommended m=19 MiB, t=2, p=1), TOTP second factors
//! (RFC 6238: SHA-1, 6 digits, 30 s steps, one step of skew, each step
//! accepted once), and login sessions whose token (`dhs_<id>_<secret>`)
//! is a Bearer credential like an API key, valid for [`SESSION_SECS`].
//!
//! `POST /v1/login` counts failures per source address (as key checks do:
//! 429 after `http.auth_max_failures`) and per username from every
//! address (a username with [`USER_MAX_FAILURES`] failures in the window
//! is refused for [`USER_LOCKOUT`] from everywhere); an unknown username
//! costs the same Argon2 verification as a known one.

use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::{Caller, Role};
use super::problem::{ApiJson, Problem};
use super::routes::{St, now_ms};
use crate::store::users::{SessionRow, UserRow};

/// How long a login lasts.
pub const SESSION_SECS: i64 = 12 * 3600;
/// Failures of one username (from any address) that lock it.
pub const USER_MAX_FAILURES: u32 = 20;
/// For this long.
pub const USER_LOCKOUT: Duration = Duration::from_secs(300);

/// The Argon2id hash (PHC string) of a password.
pub fn hash_password(password: &str) -> Result<String, String> {
    let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>()).map_err(|e| e.to_string())?;
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// Does `password` match the PHC string `hash`?
pub fn password_matches(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| {
        argon2::Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// A hash no password matches, verified for unknown usernames so that
/// they take as long as known ones.
fn dummy_hash() -> &'static str {
    static H: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    H.get_or_init(|| hash_password(&hex::encode(rand::random::<[u8; 16]>())).unwrap_or_default())
}

/// A new TOTP secret (160 bits, base32).
pub fn new_totp_secret() -> String {
    totp_rs::Secret::from(rand::random::<[u8; 20]>()).to_base32()
}

fn totp(secret: &str) -> Option<totp_rs::Totp> {
    let s = totp_rs::Secret::try_from_base32(secret).ok()?;
    totp_rs::Builder::new().with_secret(s).build().ok()
}

/// The step a code is valid for now (±1 step), if it is.
pub fn totp_step(secret: &str, code: &str, unix_secs: u64) -> Option<u64> {
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    totp(secret)?.check(code, unix_secs)
}

/// The current code of `secret` (tests, and `dhwani users mfa --show`).
pub fn totp_code(secret: &str, unix_secs: u64) -> Option<String> {
    Some(totp(secret)?.generate(unix_secs).to_string())
}

/// The `otpauth://` URI an authenticator app scans.
pub fn otpauth_uri(username: &str, secret: &str) -> String {
    let enc: String = username
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect();
    format!(
        "otpauth://totp/Dhwani:{enc}?secret={secret}&issuer=Dhwani&algorithm=SHA1&digits=6&period=30"
    )
}

/// A username: 1-64 of `[a-z0-9._@-]`.
pub fn valid_username(u: &str) -> bool {
    (1..=64).contains(&u.len())
        && u.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._@-".contains(&b))
}

/// The id and secret of a presented session token.
pub fn split_session(token: &str) -> Option<(&str, &str)> {
    let rest = token.strip_prefix("dhs_")?;
    let (id, secret) = rest.split_once('_')?;
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    (hex(id, 16) && hex(secret, 64)).then_some((id, secret))
}

/// The caller a session token stands for, if it checks out now.
pub async fn session_caller(
    store: &crate::store::Store,
    token: &str,
) -> Result<Option<Caller>, crate::store::StoreError> {
    let Some((id, secret)) = split_session(token) else {
        return Ok(None);
    };
    let Some(s) = store.session(id).await? else {
        return Ok(None);
    };
    if !super::auth::secret_matches(secret, &s.secret_sha256) || s.expires_ms <= now_ms() {
        return Ok(None);
    }
    let Some(u) = store.user(&s.username).await? else {
        return Ok(None);
    };
    let Some(role) = Role::parse(&u.role) else {
        return Ok(None);
    };
    Ok(Some(Caller {
        key_id: s.session_id,
        user: Some(u.username),
        tenant: (!u.tenant.is_empty()).then_some(u.tenant),
        role,
        recordings: u.recordings && role != Role::Auditor,
    }))
}

/// A login.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Login {
    /// The username.
    #[schema(max_length = 64)]
    pub username: String,
    /// The password.
    #[schema(max_length = 1024)]
    pub password: String,
    /// The authenticator's current 6-digit code (users with MFA).
    pub totp: Option<String>,
}

/// A session.
#[derive(Debug, Serialize, ToSchema)]
pub struct Session {
    /// Send as `Authorization: Bearer TOKEN`.
    pub token: String,
    /// Not valid from then on, ms since the epoch.
    pub expires_ms: i64,
    /// Who.
    pub username: String,
    /// Its role.
    pub role: String,
    /// Its tenant (none for a platform operator).
    pub tenant: Option<String>,
}

fn refused() -> Problem {
    Problem::unauthorized_login()
}

/// Logs a user in: password (Argon2id) and, when the user has set up
/// MFA, the authenticator's code. Failures count per address and per
/// username (429 when either is locked).
#[utoipa::path(post, path = "/v1/login", request_body = Login, security(()),
    responses((status = 200, body = Session), super::routes::Problems))]
pub async fn login(
    axum::extract::State(s): St,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<std::net::SocketAddr>,
    ApiJson(body): ApiJson<Login>,
) -> Result<axum::Json<Session>, Problem> {
    let ip = peer.ip();
    let now = Instant::now();
    if s.failures.locked(ip, now) || s.user_failures.locked(body.username.clone(), now) {
        return Err(Problem::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too many failed logins from this address or for this user; try again later",
        ));
    }
    let user = if valid_username(&body.username) && body.password.len() <= 1024 {
        s.store.user(&body.username).await?
    } else {
        None
    };
    let hash = user
        .as_ref()
        .map_or_else(|| dummy_hash().to_owned(), |u| u.password_hash.clone());
    let password = body.password.clone();
    let password_ok = tokio::task::spawn_blocking(move || password_matches(&hash, &password))
        .await
        .map_err(Problem::internal)?;
    let unix = (now_ms() / 1000).max(0) as u64;
    let ok = match (&user, password_ok) {
        (Some(u), true) => match &u.totp_secret {
            None => true,
            Some(secret) => match body
                .totp
                .as_deref()
                .and_then(|c| totp_step(secret, c, unix))
            {
                // A code works once: its step must be later than the last.
                Some(step) => s.store.use_totp_step(&u.username, step as i64).await?,
                None => false,
            },
        },
        _ => false,
    };
    let Some(u) = user.filter(|_| ok) else {
        let by_address = s.failures.fail(ip, now);
        let by_user = s.user_failures.fail(body.username.clone(), now);
        if by_address == super::auth::Failed::LockedOut {
            tracing::warn!(target: "security", event = "login_lockout", source = %ip, "address locked out of logins after repeated failures");
        } else if by_user == super::auth::Failed::LockedOut {
            tracing::warn!(target: "security", event = "login_username_locked", source = %ip, "a username was locked after repeated failed logins from several addresses");
        } else {
            tracing::info!(target: "security", event = "login_failure", source = %ip, "failed login");
        }
        return Err(refused());
    };
    let id = hex::encode(rand::random::<[u8; 8]>());
    let secret = hex::encode(rand::random::<[u8; 32]>());
    let created = now_ms();
    let row = SessionRow {
        session_id: id.clone(),
        username: u.username.clone(),
        secret_sha256: super::auth::hash(&secret),
        created_ms: created,
        expires_ms: created + SESSION_SECS * 1000,
    };
    s.store.put_session(&row).await?;
    crate::privacy::Audit::new(&s.config.data_dir)
        .append_async(
            &format!("user:{}", u.username),
            "login",
            &format!("session {id} from {ip}"),
        )
        .await?;
    Ok(axum::Json(Session {
        token: format!("dhs_{id}_{secret}"),
        expires_ms: row.expires_ms,
        username: u.username,
        role: u.role,
        tenant: (!u.tenant.is_empty()).then_some(u.tenant),
    }))
}

/// Ends the session the request is made with.
#[utoipa::path(post, path = "/v1/logout", responses((status = 204), super::routes::Problems))]
pub async fn logout(axum::extract::State(s): St, c: Caller) -> Result<StatusCode, Problem> {
    if c.user.is_none() {
        return Err(Problem::forbidden(
            "this is an API key, not a session (revoke keys with `dhwani apikeys revoke`)",
        ));
    }
    s.store.drop_session(&c.key_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A user row for `dhwani users add` (the password hashed here).
pub fn user_row(
    username: &str,
    tenant: Option<&str>,
    role: Role,
    recordings: bool,
    password: &str,
    totp_secret: Option<String>,
) -> Result<UserRow, String> {
    Ok(UserRow {
        username: username.to_owned(),
        tenant: tenant.unwrap_or_default().to_owned(),
        role: role.name().to_owned(),
        recordings,
        password_hash: hash_password(password)?,
        totp_secret,
        totp_last_step: None,
        created_ms: now_ms(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_matches_its_hash_only() {
        let h = hash_password("correct horse battery staple").expect("hash");
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(password_matches(&h, "correct horse battery staple"));
        assert!(!password_matches(&h, "correct horse battery stapler"));
        assert!(!password_matches("not a hash", "x"));
        assert!(!password_matches(dummy_hash(), ""));
    }

    #[test]
    fn totp_codes_follow_rfc_6238_and_their_step() {
        // RFC 6238 appendix B's SHA-1 secret ("12345678901234567890"): at
        // 59 s the 8-digit code is 94287082, so the 6-digit one is 287082.
        let secret = totp_rs::Secret::from(b"12345678901234567890".to_vec()).to_base32();
        assert_eq!(totp_code(&secret, 59).as_deref(), Some("287082"));
        assert_eq!(totp_step(&secret, "287082", 59), Some(1));
        // One step of skew either way, not two.
        assert_eq!(totp_step(&secret, "287082", 80), Some(1));
        assert_eq!(totp_step(&secret, "287082", 125), None);
        assert_eq!(totp_step(&secret, "28708", 59), None);
        assert_eq!(totp_step(&secret, "2870820", 59), None);
        let fresh = new_totp_secret();
        let code = totp_code(&fresh, 1_000_000).expect("code");
        assert!(totp_step(&fresh, &code, 1_000_000).is_some());
        assert!(otpauth_uri("a b", &fresh).starts_with("otpauth://totp/Dhwani:a%20b?secret="));
    }

    #[test]
    fn session_tokens_have_one_shape() {
        let t = format!("dhs_{}_{}", "a".repeat(16), "b".repeat(64));
        assert!(split_session(&t).is_some());
        assert!(split_session(&t.replace("dhs_", "dhk_")).is_none());
        assert!(split_session(&format!("{t}0")).is_none());
        assert!(valid_username("asha@acme") && !valid_username("Asha") && !valid_username(""));
    }
}
