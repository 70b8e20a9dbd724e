//! The runtime side of CNI with libcni's semantics: running plugins,
//! loading network lists, the result cache, list ADD/CHECK/DEL/GC/STATUS,
//! and cni-run's command line. cni-run and the conformance suite use it.

pub mod cache;
pub mod cli;
pub mod conflist;
pub mod exec;
pub mod runtime;
