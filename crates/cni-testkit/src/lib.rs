//! The one test kit of the workspace, for the plugins' root tests, nl-ops's
//! and cni-core's tests, the conformance suite and the bench: it drives the
//! kernel only through `ip` and `tc` and the plugins only as processes, so
//! it depends on none of the crates it tests.

pub mod goodput;
pub mod kernel;
pub mod log_file;
pub mod ns;
pub mod ping;
pub mod plugin;
pub mod pod;
pub mod run_dir;
pub mod skip;
pub mod state;
pub mod tcx;

/// The plugins of this project, as their binaries are named: the suite and
/// the bench run each of them (scripts name them once in scripts/lib/common.sh).
pub const PLUGINS: [&str; 2] = ["sbr", "bandwidth"];

pub use goodput::SHAPED;
pub use ns::Ns;
pub use skip::{path_or_skip, program_or_skip, root_or_skip, skip};
