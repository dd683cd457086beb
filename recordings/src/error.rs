//! Errors of the recordings crate: each failure a reader can meet has its
//! own variant, so `dhwani recordings verify` can say exactly what is wrong.

/// What went wrong with a recording.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Not a Dhwani recording at all.
    #[error("not a Dhwani recording (bad magic)")]
    NotARecording,
    /// A format version this build does not read.
    #[error("unsupported recording format version {0}")]
    UnsupportedVersion(u16),
    /// The header is malformed or cut short.
    #[error("corrupt recording header: {0}")]
    CorruptHeader(&'static str),
    /// The key does not open this recording (wrong key, or the wrapped
    /// data key was altered).
    #[error("wrong key: key `{key_id}` does not open this recording")]
    WrongKey {
        /// The key id the header names.
        key_id: String,
    },
    /// No key was given or found for this recording.
    #[error("no key to open this recording: {0}")]
    MissingKey(String),
    /// The recording belongs to another tenant than the caller expected.
    #[error("recording belongs to tenant `{found}`, not `{expected}`")]
    WrongTenant {
        /// Expected tenant.
        expected: String,
        /// Tenant in the header.
        found: String,
    },
    /// A chunk fails authentication: altered bytes.
    #[error("tampered: chunk {chunk} (at {seconds:.1} s) fails authentication")]
    Tampered {
        /// Chunk index.
        chunk: u64,
        /// Where in the audio it starts.
        seconds: f64,
    },
    /// A chunk authenticates, but at another position: chunks reordered.
    #[error("tampered: chunk {found_at} is chunk {belongs_at} moved (chunks reordered)")]
    Reordered {
        /// Where it was found.
        found_at: u64,
        /// Where it belongs.
        belongs_at: u64,
    },
    /// The recording stops before its final chunk (the writer was killed
    /// or the file cut); everything before verified.
    #[error("truncated at {seconds:.1} s: {chunks} chunks intact, no final chunk")]
    Truncated {
        /// Intact chunks.
        chunks: u64,
        /// Audio intact, in seconds.
        seconds: f64,
    },
    /// Bytes after the final chunk.
    #[error("tampered: data after the final chunk")]
    TrailingData,
    /// Reading or writing failed.
    #[error("i/o: {0}")]
    Io(String),
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Error {
        Error::Io(e.to_string())
    }
}
