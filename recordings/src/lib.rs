//! Encrypted call recordings: the on-disk format (chunked AEAD stream),
//! per-recording data keys wrapped by tenant keys, the retention sweeper,
//! legal hold and erasure.
//!
//! Not built yet: this crate is a placeholder until the recordings issue
//! lands. Files and clocks will be handed in by the server.
