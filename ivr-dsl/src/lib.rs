//! The IVR language of Dhwani: lexer, parser, diagnostics, checker, compiled
//! flow, and a sans-IO interpreter with a simulator.
//!
//! Not built yet: this crate is a placeholder until the IVR language issue
//! lands. It will own no IO: prompts, digits and time reach the interpreter
//! as events from the server's call task.
