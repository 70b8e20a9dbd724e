//! The black-box conformance suite; cni-run's logic is in cni-runtime.

pub mod suite;
