//! Shared pieces of cni-run and the conformance suite: running plugins,
//! loading network lists, libcni's cache and list semantics.

pub mod cache;
pub mod conflist;
pub mod exec;
pub mod runtime;
pub mod suite;
