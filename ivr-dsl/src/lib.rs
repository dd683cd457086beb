//! The IVR language of Dhwani: lexer, parser, diagnostics, checker,
//! compiled flows, a sans-IO interpreter, and a simulator for flow tests.
//!
//! This crate owns the language and nothing else: it reads files only
//! through the [`Host`] trait, never reads a clock (time is passed in), and
//! never plays audio, collects digits or makes HTTP requests. The server's
//! call task (or the simulator) does those things when the interpreter asks
//! for them with an [`interp::Output`], and reports back with an
//! [`interp::Input`]. The reference for flow authors is `docs/ivr-dsl.md`.
//!
//! ```text
//! text ──lexer──► tokens ──parser──► ast ──compile──► Flow ──check──► Loaded
//!                                                      │
//!                     Interpreter::start(Arc<Flow>, CallContext, now)
//!                     handle_input(now, Input) / poll_output() / poll_timeout()
//! ```
//!
//! A call driven by hand:
//!
//! ```
//! use std::path::Path;
//! use std::time::{Duration, Instant};
//! use ivr_dsl::interp::{CallContext, Input, Interpreter, Output, Playable};
//!
//! struct NoFiles;
//! impl ivr_dsl::Host for NoFiles {
//!     fn read(&self, _: &Path) -> std::io::Result<String> { Err(std::io::Error::other("no includes")) }
//!     fn prompt_exists(&self, _: &Path) -> bool { true }
//! }
//!
//! let src = "flow \"Hello\"\n\nstep main\n  gather into n, digits 1, timeout 5s\n    say \"Press a key.\"\n    on timeout -> bye\n  say \"You pressed {n}.\"\n  goto bye\n\nstep bye\n  hangup\n";
//! let loaded = ivr_dsl::load_str(Path::new("hello.ivr"), src, &NoFiles);
//! assert!(!loaded.has_errors(), "{}", loaded.render());
//! let flow = loaded.flow.expect("a flow without errors");
//!
//! let ctx = CallContext {
//!     call_id: "c1".into(),
//!     caller: "+919800000000".into(),
//!     called: "1000".into(),
//!     start_time: jiff::Timestamp::UNIX_EPOCH,
//! };
//! let mut now = Instant::now();
//! let mut call = Interpreter::start(flow, ctx, now);
//! let mut heard = Vec::new();
//! // The driver loop: drain outputs, then feed the next input.
//! let script = [Input::PromptFinished, Input::Digit('7'), Input::PromptFinished];
//! for input in script {
//!     while let Some(out) = call.poll_output() {
//!         if let Output::Play { prompts, .. } = out {
//!             for p in prompts {
//!                 if let Playable::Say { text, .. } = p { heard.push(text); }
//!             }
//!         }
//!     }
//!     now += Duration::from_millis(500);
//!     call.handle_input(now, input);
//! }
//! assert_eq!(heard, ["Press a key.", "You pressed 7."]);
//! assert!(call.is_ended());
//! ```
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod allow;
pub mod ast;
pub mod check;
pub mod compile;
pub mod diag;
mod error;
pub mod flow;
#[doc(hidden)]
pub mod fuzzing;
pub mod interp;
pub mod lexer;
pub mod parser;
pub mod sim;
pub mod source;
pub mod value;
pub mod verbs;

pub use compile::{FsHost, Host, Loaded, load, load_str};
pub use diag::{Diagnostic, Severity};
pub use error::Error;
pub use flow::Flow;
