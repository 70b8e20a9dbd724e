//! Everything that changes the kernel goes through here: a small synchronous
//! rtnetlink socket and typed operations on links, addresses, routes, rules,
//! qdiscs and filters. No async runtime: `setns` is per thread.

pub mod addr;
pub mod error;
pub mod filter;
pub mod gen_stats;
pub mod link;
pub mod nsid;
pub mod qdisc;
mod raw;
pub mod route;
pub mod rule;
pub mod socket;

pub use error::{Error, Result};
pub use socket::Socket;
