//! Version numbers, negotiation and result conversion between the families
//! (0.1/0.2, 0.3/0.4, 1.x).

use serde_json::Value;

use crate::error::CniResult;
use crate::types::NetResult;

pub const ALL: &[&str] = &["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

impl NetResult {
    /// Parses a result written in `version` (a result with its own
    /// `cniVersion` is read in that one).
    pub fn parse(version: &str, value: &Value) -> CniResult<NetResult> {
        let _ = (version, value);
        todo!("cni-core helper")
    }

    /// The wire form in `version`, as libcni converts.
    pub fn to_json(&self, version: &str) -> CniResult<Value> {
        let _ = version;
        todo!("cni-core helper")
    }
}
