//! A small `log` backend: stderr by default (never stdout), or an appended
//! file created 0600 that must not be a symlink.

use std::path::Path;

use crate::error::CniResult;

/// Installs the logger once; later calls only change the level.
pub fn init(plugin: &str, level: Option<&str>, file: Option<&Path>) -> CniResult<()> {
    let _ = (plugin, level, file);
    todo!("cni-core helper")
}
