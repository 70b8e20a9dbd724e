//! CNI bandwidth plugin: TBF shaping with an ifb for the container's
//! egress, a drop-in for the reference.
#![cfg_attr(not(test), no_main)]

cni_core::plugin_main!(bandwidth::Bandwidth);
