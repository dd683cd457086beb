//! One answered call: the task that runs the tenant's flow against the
//! call's media and writes its timeline and CDR ([`task`]).

pub mod task;
