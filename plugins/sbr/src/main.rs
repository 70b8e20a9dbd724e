//! CNI sbr plugin: source based routing, a drop-in for the reference.
#![cfg_attr(not(test), no_main)]

cni_core::plugin_main!(sbr::Sbr);
