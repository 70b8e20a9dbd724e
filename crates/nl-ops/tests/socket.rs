#![allow(clippy::unwrap_used)]
//! Sockets bound to another namespace through cni-core's scoped switch.

use cni_netns::NetNs;
use cni_testkit::Ns;
use nl_ops::Socket;

#[test]
fn in_netns_socket_stays_in_its_namespace() {
    cni_testkit::need_root!("in_netns_socket_stays_in_its_namespace");
    let host = Ns::new("sock-host");
    let cont = Ns::new("sock-cont");
    host.veth("vsockh0", "vsockc0", Some(&cont));
    let before = NetNs::current().unwrap();
    let hns = NetNs::open(&host.path()).unwrap();
    let cns = NetNs::open(&cont.path()).unwrap();
    let mut hs = Socket::in_netns(&hns).unwrap();
    let mut cs = Socket::in_netns(&cns).unwrap();
    // This thread is back where it was.
    let after = NetNs::current().unwrap();
    let ino = |n: &NetNs| {
        std::fs::metadata(format!(
            "/proc/self/fd/{}",
            std::os::fd::AsRawFd::as_raw_fd(n.fd())
        ))
        .map(|m| std::os::unix::fs::MetadataExt::ino(&m))
        .unwrap()
    };
    assert_eq!(ino(&before), ino(&after));

    // Each socket sees and changes only its own namespace.
    let c = cs.link_by_name("vsockc0").unwrap().unwrap();
    assert!(hs.link_by_name("vsockc0").unwrap().is_none());
    let h = hs.link_by_name("vsockh0").unwrap().unwrap();
    assert!(cs.link_by_name("vsockh0").unwrap().is_none());
    cs.set_link_mtu(c.index, 1400).unwrap();
    hs.set_link_up(h.index, true).unwrap();
    assert_eq!(cont.ip_json(&["link", "show", "dev", "vsockc0"])[0]["mtu"], 1400);
    assert!(host.ip_json(&["link", "show", "dev", "vsockh0"])[0]["flags"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f == "UP"));
    // Nothing leaked into the namespace the test runs in.
    let mut here = Socket::new().unwrap();
    assert!(here.link_by_name("vsockc0").unwrap().is_none());
    assert!(here.link_by_name("vsockh0").unwrap().is_none());
}
