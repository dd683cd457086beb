//! The IVR language of Dhwani: lexer, parser, diagnostics, checker, compiled
//! flow, and a sans-IO interpreter with a simulator.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod ast;
pub mod check;
pub mod compile;
pub mod diag;
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
pub use flow::Flow;
