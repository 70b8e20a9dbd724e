#![allow(clippy::unwrap_used)]
//! Links against `ip -j link`, each test in its own namespaces.

use nl_ops::testutil::{root_or_skip, TestNs};

#[test]
fn ifb_create_alias_mtu_up_and_delete() {
    if !root_or_skip("ifb_create_alias_mtu_up_and_delete") {
        return;
    }
    let ns = TestNs::new("link-ifb");
    let mut s = ns.socket();
    let l = s.add_ifb("ifbtest0", 1400, 32, Some("owner/abc")).unwrap();
    assert_eq!(l.name, "ifbtest0");
    assert_eq!(l.mtu, 1400);
    assert_eq!(l.txqlen, 32);
    assert_eq!(l.alias.as_deref(), Some("owner/abc"));
    assert_eq!(l.kind.as_deref(), Some("ifb"));
    assert!(l.up);
    let j = ns.ip_json(&["-d", "link", "show", "dev", "ifbtest0"]);
    assert_eq!(j[0]["mtu"], 1400);
    assert_eq!(j[0]["txqlen"], 32);
    assert_eq!(j[0]["ifalias"], "owner/abc");
    assert_eq!(j[0]["linkinfo"]["info_kind"], "ifb");
    assert!(j[0]["flags"].as_array().unwrap().iter().any(|f| f == "UP"));
    assert_eq!(ns.ifindex("ifbtest0"), l.index);

    // A second create of the same name says "exists".
    let e = s.add_ifb("ifbtest0", 1400, 32, None).unwrap_err();
    assert!(e.is_exists(), "{e}");
    assert!(e.to_string().contains("add ifb ifbtest0"), "{e}");

    s.set_link_mtu(l.index, 1300).unwrap();
    s.set_link_alias(l.index, "other").unwrap();
    s.set_link_up(l.index, false).unwrap();
    let j = ns.ip_json(&["link", "show", "dev", "ifbtest0"]);
    assert_eq!(j[0]["mtu"], 1300);
    assert_eq!(j[0]["ifalias"], "other");
    assert!(!j[0]["flags"].as_array().unwrap().iter().any(|f| f == "UP"));
    let l2 = s.link_by_index(l.index).unwrap().unwrap();
    assert_eq!((l2.mtu, l2.alias.as_deref(), l2.up), (1300, Some("other"), false));

    assert!(s.delete_link(l.index).unwrap());
    assert!(!s.delete_link(l.index).unwrap());
    assert_eq!(s.link_by_name("ifbtest0").unwrap(), None);
    assert_eq!(s.link_by_index(l.index).unwrap(), None);
    let (ok, _, _) = ns.try_exec(&["ip", "link", "show", "dev", "ifbtest0"]);
    assert!(!ok);
}

#[test]
fn list_and_lookup_match_ip() {
    if !root_or_skip("list_and_lookup_match_ip") {
        return;
    }
    let ns = TestNs::new("link-list");
    ns.veth("va", "vb", None);
    ns.ip(&["link", "set", "va", "mtu", "1450"]);
    let mut s = ns.socket();
    let links = s.links().unwrap();
    let names: Vec<_> = links.iter().map(|l| l.name.as_str()).collect();
    assert!(
        names.contains(&"lo") && names.contains(&"va") && names.contains(&"vb"),
        "{names:?}"
    );
    let va = s.link_by_name("va").unwrap().unwrap();
    let j = ns.ip_json(&["link", "show", "dev", "va"]);
    assert_eq!(va.index, ns.ifindex("va"));
    assert_eq!(va.mtu, 1450);
    assert_eq!(va.kind.as_deref(), Some("veth"));
    assert_eq!(va.mac.as_deref(), j[0]["address"].as_str());
    // Same namespace: the peer index without a netnsid.
    assert_eq!(va.link, Some(ns.ifindex("vb")));
    assert_eq!(va.link_netnsid, None);
    assert_eq!(s.link_by_name("nonexistent0").unwrap(), None);
}

#[test]
fn veth_peer_index_and_netnsid_across_namespaces() {
    if !root_or_skip("veth_peer_index_and_netnsid_across_namespaces") {
        return;
    }
    let host = TestNs::new("link-host");
    let cont = TestNs::new("link-cont");
    host.veth("vhost", "eth0", Some(&cont));
    let mut hs = host.socket();
    let mut cs = cont.socket();
    let eth0 = cs.link_by_name("eth0").unwrap().unwrap();
    let vhost = hs.link_by_name("vhost").unwrap().unwrap();
    // Each side names the other's index, in another namespace.
    assert_eq!(eth0.link, Some(vhost.index));
    assert_eq!(vhost.link, Some(eth0.index));
    assert!(eth0.link_netnsid.is_some());
    let j = cont.ip_json(&["link", "show", "dev", "eth0"]);
    assert_eq!(
        i64::from(eth0.link_netnsid.unwrap()),
        j[0]["link_netnsid"].as_i64().unwrap()
    );
    assert_eq!(u64::from(vhost.index), j[0]["link_index"].as_u64().unwrap());
}

/// A veth's peer namespace, as the namespace that dumps it names it: the
/// same id `nsid_of` gives for that namespace, and another for a third.
#[test]
fn veth_peer_namespace_id_matches_nsid_of() {
    if !root_or_skip("veth_peer_namespace_id_matches_nsid_of") {
        return;
    }
    let host = TestNs::new("nsid-host");
    let ctr = TestNs::new("nsid-ctr");
    let other = TestNs::new("nsid-other");
    host.veth("vh0", "eth0", Some(&ctr));
    host.veth("vo0", "eth9", Some(&other));
    let mut s = host.socket();
    let vh = s.link_by_name("vh0").unwrap().unwrap();
    let vo = s.link_by_name("vo0").unwrap().unwrap();
    let open = |ns: &TestNs| std::fs::File::open(ns.path()).unwrap();
    let (fc, fo) = (open(&ctr), open(&other));
    use std::os::fd::AsFd;
    let id_ctr = s.nsid_of(fc.as_fd()).unwrap();
    let id_other = s.nsid_of(fo.as_fd()).unwrap();
    assert!(id_ctr.is_some() && id_other.is_some());
    assert_ne!(id_ctr, id_other);
    assert_eq!(vh.link_netnsid, id_ctr);
    assert_eq!(vo.link_netnsid, id_other);
}
