//! Errors of the crate's APIs. Mistakes in a flow are not errors but
//! [`Diagnostic`](crate::Diagnostic)s, so that all of them can be reported
//! at once; an `Error` says why a whole operation could not go on.

use std::path::PathBuf;

/// Why loading, testing or fetching could not go on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file could not be read.
    #[error("{}: {message}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        message: String,
    },
    /// A `.ivrtest` file is malformed.
    #[error("{location}: {message}")]
    TestScript {
        /// `file:line:column`.
        location: String,
        /// What is wrong and how to write it.
        message: String,
    },
    /// The flow has errors; `rendered` holds its diagnostics.
    #[error("the flow has {errors} error(s)")]
    InvalidFlow {
        /// How many.
        errors: usize,
        /// The diagnostics as text.
        rendered: String,
    },
    /// A `fetch` URL is not allowed for this tenant.
    #[error("fetch to `{url}` refused: {reason}")]
    FetchDenied {
        /// The URL.
        url: String,
        /// Why.
        reason: &'static str,
    },
}
