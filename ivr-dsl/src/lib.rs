//! The IVR language of Dhwani: lexer, parser, diagnostics, checker, compiled
//! flow, and a sans-IO interpreter with a simulator.
pub mod ast;
pub mod diag;
pub mod lexer;
pub mod parser;
pub mod source;
