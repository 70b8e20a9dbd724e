//! The CNI protocol, once, for every plugin of this project: spec types of
//! 0.1.0 to 1.1.0 and the conversions between them, the dispatcher that reads
//! the runtime's environment, typed errors with their spec codes, network
//! namespace entry, locks (on a namespace, or one of a bounded set of slot
//! files) and logging.

pub mod alloc;
pub mod conf;
pub mod dispatch;
pub mod error;
mod go_keys;
pub mod lock;
pub mod logging;
pub mod netns;
mod nofollow;
pub mod plan;
#[cfg(feature = "testutil")]
pub mod testutil;
pub mod types;
pub mod version;

pub use conf::NetConf;
pub use dispatch::{run, run_with, run_with_args, Command, Plugin, Request};
pub use error::{CniError, CniResult, Code};
pub use lock::Lock;
pub use netns::NetNs;
pub use types::{Attachment, Dns, Interface, IpConfig, NetResult, Route};
