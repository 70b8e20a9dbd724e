//! Shared pieces of cni-run and the conformance suite.
