//! An exclusive lock per network namespace, for plugins that change one
//! namespace from parallel invocations.

use std::fs::File;
use std::path::Path;

use crate::error::CniResult;

/// Held until dropped.
#[derive(Debug)]
pub struct NsLock {
    _file: File,
}

impl NsLock {
    /// Locks `/run/cni-rs/locks/<plugin>-<key of netns path>` with flock,
    /// blocking. Never touches the netns path itself.
    pub fn acquire(plugin: &str, netns: &Path) -> CniResult<NsLock> {
        let _ = (plugin, netns);
        todo!("cni-core helper")
    }
}
