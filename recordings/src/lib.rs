//! Recordings encrypted at rest: the file format (`FORMAT.md`), a chunked
//! AEAD writer that loses at most the chunk in progress when killed, a
//! streaming reader and verifier with a distinct error for each kind of
//! damage, and data-key wrapping.
//!
//! This crate does no IO of its own beyond the `Read`/`Write` it is given,
//! reads no clock and holds no global state; retention, legal hold and the
//! DPDP rights come next (see the recordings issue), as does the wiring of
//! the media tap into [`stream::Writer`].
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod error;
pub mod header;
pub mod keys;
pub mod stream;

pub use error::Error;

#[cfg(test)]
mod tests;
