//! The plugin runtime, once, for every plugin of this project: the
//! dispatcher that reads the runtime's environment, the plan/step engine,
//! locks (on a namespace, or one of a bounded set of slot files), logging
//! and the one-shot allocator.
//!
//! The spec itself (types, conversions, versions, the configuration, errors
//! and their codes) is `cni-spec`, and namespace entry is `cni-netns`; both
//! are re-exported here at the paths they always had (`cni_core::conf`,
//! `cni_core::netns::NetNs`, ...), so a plugin needs this one crate.

pub mod alloc;
pub mod dispatch;
pub mod lock;
pub mod logging;
mod nofollow;
pub mod plan;

pub use cni_netns as netns;
pub use cni_spec::{conf, error, names, types, version};

pub use conf::NetConf;
pub use dispatch::{run, run_with, run_with_args, Command, Plugin, Request};
pub use error::{CniError, CniResult, Code};
pub use lock::Lock;
pub use netns::NetNs;
pub use types::{Attachment, Dns, Interface, IpConfig, NetResult, Route};
