//! tr
