//! CNI sbr plugin: source based routing for one interface of a container,
//! as a chained plugin. config -> pure plan from one snapshot -> apply.

pub mod apply;
pub mod config;
pub mod plan;
pub mod snapshot;
