//! Errors as RFC 9457 problem details (`application/problem+json`), and
//! the JSON and query extractors whose rejections become them (naming the
//! field that was wrong).

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// A problem document.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem (`about:blank` when the status
    /// says it all).
    #[serde(rename = "type")]
    pub kind: String,
    /// Short, the same for every problem of the kind.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What went wrong this time, and what to do.
    pub detail: String,
}

impl Problem {
    /// A problem with `status` and `detail`.
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Problem {
        Problem {
            kind: "about:blank".into(),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail: detail.into(),
        }
    }

    /// 400.
    pub fn bad_request(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::BAD_REQUEST, detail)
    }

    /// 401: no key, or a key that does not check out (the same answer
    /// for both, and for a key of a revoked or unknown id).
    pub fn unauthorized() -> Problem {
        Problem::new(
            StatusCode::UNAUTHORIZED,
            "send a valid API key as `Authorization: Bearer dhk_...` (make one with `dhwani apikeys add`)",
        )
    }

    /// 401 for a login: the same answer for an unknown user, a wrong
    /// password and a wrong or reused code.
    pub fn unauthorized_login() -> Problem {
        Problem::new(
            StatusCode::UNAUTHORIZED,
            "wrong username, password or authenticator code",
        )
    }

    /// 403.
    pub fn forbidden(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::FORBIDDEN, detail)
    }

    /// 404.
    pub fn not_found(detail: impl Into<String>) -> Problem {
        Problem::new(StatusCode::NOT_FOUND, detail)
    }

    /// 500 (the cause is logged, not shown).
    pub fn internal(e: impl std::fmt::Display) -> Problem {
        tracing::error!(error = %e, "admin API request failed");
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the server could not answer this request; its log says why",
        )
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let body = serde_json::to_vec(&self).unwrap_or_default();
        (
            status,
            [(axum::http::header::CONTENT_TYPE, "application/problem+json")],
            body,
        )
            .into_response()
    }
}

impl From<crate::store::StoreError> for Problem {
    fn from(e: crate::store::StoreError) -> Problem {
        Problem::internal(e)
    }
}

impl From<crate::privacy::PrivacyError> for Problem {
    fn from(e: crate::privacy::PrivacyError) -> Problem {
        Problem::internal(e)
    }
}

/// `Json<T>` whose rejection is a problem: 400 naming the field, 413 for
/// a body over the cap, 415 without a JSON content type.
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Problem> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(ApiJson(v)),
            Err(r) => Err(json_problem(&r)),
        }
    }
}

fn json_problem(r: &JsonRejection) -> Problem {
    // A body that parses but has a wrong type or an unknown field is as
    // bad a request as one that does not parse (axum says 422).
    let status = match r.status() {
        StatusCode::UNPROCESSABLE_ENTITY => StatusCode::BAD_REQUEST,
        s => s,
    };
    let detail = match r {
        JsonRejection::MissingJsonContentType(_) => {
            "send the body as JSON with `Content-Type: application/json`".to_owned()
        }
        _ if status == StatusCode::PAYLOAD_TOO_LARGE => {
            "the body is larger than http.max_body_bytes".to_owned()
        }
        other => other.body_text(),
    };
    Problem::new(status, detail)
}

/// `Query<T>` whose rejection is a 400 problem naming the parameter.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = Problem;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, Problem> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(ApiQuery(v)),
            Err(r) => Err(query_problem(&r)),
        }
    }
}

fn query_problem(r: &QueryRejection) -> Problem {
    Problem::bad_request(r.body_text())
}
