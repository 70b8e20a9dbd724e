#![allow(clippy::unwrap_used)]
//! Links against `ip -j link`, each test in its own namespaces.

use cni_testkit::Ns;

#[test]
fn ifb_create_alias_mtu_up_and_delete() {
    cni_testkit::need_root!("ifb_create_alias_mtu_up_and_delete");
    let ns = Ns::new("link-ifb");
    let mut s = ns.inside(nl_ops::Socket::new).expect("netlink socket");
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
    assert!(ns.try_exec(&["ip", "link", "show", "dev", "ifbtest0"]).is_err());
}

#[test]
fn list_and_lookup_match_ip() {
    cni_testkit::need_root!("list_and_lookup_match_ip");
    let ns = Ns::new("link-list");
    ns.veth("va", "vb", None);
    ns.ip(&["link", "set", "va", "mtu", "1450"]);
    let mut s = ns.inside(nl_ops::Socket::new).expect("netlink socket");
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
    cni_testkit::need_root!("veth_peer_index_and_netnsid_across_namespaces");
    let host = Ns::new("link-host");
    let cont = Ns::new("link-cont");
    host.veth("vhost", "eth0", Some(&cont));
    let mut hs = host.inside(nl_ops::Socket::new).expect("netlink socket");
    let mut cs = cont.inside(nl_ops::Socket::new).expect("netlink socket");
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
    cni_testkit::need_root!("veth_peer_namespace_id_matches_nsid_of");
    let host = Ns::new("nsid-host");
    let ctr = Ns::new("nsid-ctr");
    let other = Ns::new("nsid-other");
    host.veth("vh0", "eth0", Some(&ctr));
    host.veth("vo0", "eth9", Some(&other));
    let mut s = host.inside(nl_ops::Socket::new).expect("netlink socket");
    let vh = s.link_by_name("vh0").unwrap().unwrap();
    let vo = s.link_by_name("vo0").unwrap().unwrap();
    let open = |ns: &Ns| std::fs::File::open(ns.path()).unwrap();
    let (fc, fo) = (open(&ctr), open(&other));
    use std::os::fd::AsFd;
    let id_ctr = s.nsid_of(fc.as_fd()).unwrap();
    let id_other = s.nsid_of(fo.as_fd()).unwrap();
    assert!(id_ctr.is_some() && id_other.is_some());
    assert_ne!(id_ctr, id_other);
    assert_eq!(vh.link_netnsid, id_ctr);
    assert_eq!(vo.link_netnsid, id_other);
}

/// Whether this kernel makes VRF devices (CONFIG_NET_VRF, vrf.ko).
fn kernel_has_vrf(ns: &Ns) -> bool {
    ns.try_exec(&["ip", "link", "add", "probevrf0", "type", "vrf", "table", "4242"])
        .is_ok()
}

/// A VRF with its table and alias, a veth enslaved to it (IFLA_MASTER) and
/// released, and the IPv6 address the kernel drops as the link joins it
/// added again without DAD. Where the kernel has no vrf (this build
/// machine's) only the refusal is checked: the request reaches the kernel
/// as a link of kind vrf and fails as "not supported"; the Debian 6.1 VM
/// (scripts/test-vm) runs sbr's vrf mode end to end.
#[test]
fn vrf_create_enslave_release_and_delete() {
    cni_testkit::need_root!("vrf_create_enslave_release_and_delete");
    let ns = Ns::new("link-vrf");
    let mut s = ns.inside(nl_ops::Socket::new).expect("netlink socket");
    if !kernel_has_vrf(&ns) {
        let e = s.add_vrf("vrftest0", 1234, Some("sbr")).unwrap_err();
        assert_eq!(e.errno(), Some(libc::EOPNOTSUPP), "{e}");
        assert!(e.to_string().contains("add vrf vrftest0"), "{e}");
        // Not a skip (the refusal was checked, and CI runs here): a note,
        // straight to stderr as skips are, so the run shows what did not run.
        let _ = std::io::Write::write_all(
            &mut std::io::stderr().lock(),
            b"note: vrf_create_enslave_release_and_delete: this kernel has no vrf; \
              checked its refusal only (scripts/test-vm runs vrf mode end to end)\n",
        );
        return;
    }
    let v = s.add_vrf("vrftest0", 1234, Some("sbr")).unwrap();
    assert_eq!(
        (v.kind.as_deref(), v.vrf_table, v.alias.as_deref(), v.up),
        (Some("vrf"), Some(1234), Some("sbr"), true)
    );
    let j = ns.ip_json(&["-d", "link", "show", "dev", "vrftest0"]);
    assert_eq!(j[0]["linkinfo"]["info_kind"], "vrf");
    assert_eq!(j[0]["linkinfo"]["info_data"]["table"], 1234);
    assert_eq!(j[0]["ifalias"], "sbr");
    assert!(s.add_vrf("vrftest0", 1235, None).unwrap_err().is_exists());

    ns.veth("va", "vb", None);
    ns.ip(&["link", "set", "va", "up"]);
    ns.ip(&["link", "set", "vb", "up"]);
    ns.ip(&["-6", "addr", "add", "fd00:77::2/64", "dev", "va", "nodad"]);
    let va = ns.ifindex("va");
    assert_eq!(s.link_by_index(va).unwrap().unwrap().master, None);
    s.set_link_master(va, v.index).unwrap();
    assert_eq!(s.link_by_index(va).unwrap().unwrap().master, Some(v.index));
    let j = ns.ip_json(&["link", "show", "dev", "va"]);
    assert_eq!(j[0]["master"], "vrftest0");
    // The kernel dropped the IPv6 address as va joined; it comes back, without DAD.
    let has = |ns: &Ns| {
        let j = ns.ip_json(&["-6", "addr", "show", "dev", "va", "scope", "global"]);
        j[0]["addr_info"].as_array().map_or(Vec::new(), |a| {
            a.iter()
                .map(|x| {
                    (
                        x["local"].as_str().unwrap_or_default().to_string(),
                        x["tentative"].is_null(),
                    )
                })
                .collect::<Vec<_>>()
        })
    };
    assert_eq!(has(&ns), Vec::<(String, bool)>::new());
    s.add_address(va, "fd00:77::2/64".parse().unwrap(), true).unwrap();
    assert_eq!(has(&ns), vec![("fd00:77::2".to_string(), true)]);
    assert!(s
        .add_address(va, "fd00:77::2/64".parse().unwrap(), true)
        .unwrap_err()
        .is_exists());
    // Its subnet route is in the VRF's table now.
    let r = ns.ip_json(&["-6", "route", "show", "table", "1234", "fd00:77::/64"]);
    assert_eq!(r[0]["dev"], "va");

    s.set_link_master(va, 0).unwrap();
    assert_eq!(s.link_by_index(va).unwrap().unwrap().master, None);
    assert!(s.delete_link(v.index).unwrap());
    assert_eq!(s.link_by_name("vrftest0").unwrap(), None);
}
