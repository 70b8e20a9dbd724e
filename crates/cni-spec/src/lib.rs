//! The CNI specification as plain data, for every crate of this project:
//! spec types of 0.1.0 to 1.1.0 and the conversions between them, version
//! negotiation, the network configuration, the spec's name rules, and typed
//! errors with their spec codes. No I/O beyond what a caller hands in, and
//! no unsafe code: what touches the kernel lives in cni-netns, nl-ops and
//! the plugin runtime (cni-core).

#![forbid(unsafe_code)]

pub mod conf;
pub mod error;
mod go_keys;
pub mod names;
pub mod types;
pub mod version;

pub use conf::NetConf;
pub use error::{CniError, CniResult, Code};
pub use types::{Attachment, Dns, Interface, IpConfig, NetResult, Route};
