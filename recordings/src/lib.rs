//! Recordings encrypted at rest and the privacy machinery around them: the
//! file format (`FORMAT.md`), a chunked AEAD writer that loses at most the
//! chunk in progress when killed, a streaming reader and verifier with a
//! distinct error for each kind of damage, data-key wrapping (to a
//! server-held KEK, or to the tenant's public key), the retention sweeper
//! with legal holds, caller-number pseudonyms, and the hash-chained audit
//! log.
//!
//! This crate does no IO of its own beyond the `Read`/`Write` it is given,
//! reads no clock (time is an input) and holds no global state. The store,
//! the CLI and the wiring of the media tap into [`stream::Writer`] live in
//! the server.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod audit;
pub mod error;
pub mod file;
pub mod header;
pub mod keys;
pub mod retention;
pub mod stream;

pub use error::Error;

#[cfg(test)]
mod tests;
