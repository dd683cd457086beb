//! One answered call: the sans-IO [`core`] (the flow against the media,
//! consent and recording, the hold clock, timeline and CDR) and its thin
//! tokio driver, [`task`].

pub mod cdr;
pub mod core;
pub mod task;
