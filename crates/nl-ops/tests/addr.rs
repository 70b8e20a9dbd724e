#![allow(clippy::unwrap_used)]
//! Addresses against `ip -j addr`.

use cni_testkit::Ns;

#[test]
fn addresses_per_link_both_families() {
    cni_testkit::need_root!("addresses_per_link_both_families");
    let ns = Ns::new("addr");
    ns.veth("eth0", "eth1", None);
    ns.ip(&["addr", "add", "10.3.0.2/24", "dev", "eth0"]);
    ns.ip(&["addr", "add", "fd00:3::2/64", "dev", "eth0", "nodad"]);
    ns.ip(&["addr", "add", "10.4.0.2/16", "dev", "eth1"]);
    let mut s = ns.inside(nl_ops::Socket::new).expect("netlink socket");
    let idx = ns.ifindex("eth0");
    let mut got: Vec<String> = s
        .addresses(Some(idx))
        .unwrap()
        .iter()
        .map(|a| a.addr.to_string())
        .collect();
    got.sort();
    assert_eq!(got, vec!["10.3.0.2/24", "fd00:3::2/64"]);
    let j = ns.ip_json(&["addr", "show", "dev", "eth0"]);
    for a in j[0]["addr_info"].as_array().unwrap() {
        let s = format!("{}/{}", a["local"].as_str().unwrap(), a["prefixlen"]);
        assert!(got.contains(&s), "{s} not in {got:?}");
    }
    let all = s.addresses(None).unwrap();
    assert!(all
        .iter()
        .any(|a| a.addr.to_string() == "10.4.0.2/16" && a.index == ns.ifindex("eth1")));
    assert!(all
        .iter()
        .any(|a| a.addr.to_string() == "127.0.0.1/8" && a.scope == 254));
}
