//! A container attachment made by hand, as an interface plugin would have
//! made it: a veth from a host namespace into a container namespace, with
//! an address, a gateway and a default route, and the prevResult that
//! describes it in any CNI version. The suite's cases and the root tests
//! build their pods with it.

use std::sync::Arc;

use serde_json::{json, Value};

use crate::ns::Ns;
use crate::state::State;

#[derive(Debug, Clone)]
pub struct Pod {
    pub host: Arc<Ns>,
    pub ctr: Arc<Ns>,
    pub container_id: String,
    pub ifname: String,
    pub host_veth: String,
    /// `10.250.N.2/24`, its gateway `10.250.N.1` on the host side.
    pub subnet: u8,
}

impl Pod {
    /// A fresh host and container namespace joined by `vh0` / `eth0` on 10.250.0.0/24.
    pub fn new(container_id: &str) -> Result<Pod, String> {
        let host = Arc::new(Ns::try_new("pod")?);
        let ctr = Arc::new(Ns::try_new("pod")?);
        Pod::attach(host, ctr, container_id, "eth0", "vh0", 0)
    }

    /// Adds one more veth between two existing namespaces.
    pub fn attach(
        host: Arc<Ns>,
        ctr: Arc<Ns>,
        container_id: &str,
        ifname: &str,
        host_veth: &str,
        subnet: u8,
    ) -> Result<Pod, String> {
        let pod = Pod {
            host,
            ctr,
            container_id: container_id.to_string(),
            ifname: ifname.to_string(),
            host_veth: host_veth.to_string(),
            subnet,
        };
        let h = &pod.host;
        h.try_ip(&[
            "link",
            "add",
            host_veth,
            "type",
            "veth",
            "peer",
            "name",
            ifname,
            "netns",
            &pod.ctr.name,
        ])?;
        h.try_ip(&["addr", "add", &format!("{}/24", pod.gateway()), "dev", host_veth])?;
        h.try_ip(&["link", "set", host_veth, "up"])?;
        pod.ctr.try_ip(&["addr", "add", &pod.cidr(), "dev", ifname])?;
        pod.ctr.try_ip(&["link", "set", ifname, "up"])?;
        // The kernel adds the IPv6 link-local route once the link is up;
        // wait for it so every run starts from the same state (on the sides
        // that have IPv6 at all: some cases turn it off in the container).
        let (c6, h6) = (ipv6_on(&pod.ctr)?, ipv6_on(&pod.host)?);
        for _ in 0..200 {
            let c = !c6
                || pod
                    .ctr
                    .try_ip(&["-6", "route", "show", "dev", ifname])?
                    .contains("fe80::/64");
            let h = !h6
                || pod
                    .host
                    .try_ip(&["-6", "route", "show", "dev", host_veth])?
                    .contains("fe80::/64");
            if c && h {
                return Ok(pod);
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        Err(format!("no IPv6 link-local route on {ifname} after 1 s"))
    }

    /// Makes this pod's interface the container's default route.
    pub fn default_route(&self) -> Result<(), String> {
        self.ctr
            .try_ip(&[
                "route",
                "add",
                "default",
                "via",
                &self.gateway(),
                "dev",
                &self.ifname,
            ])
            .map(|_| ())
    }

    pub fn addr(&self) -> String {
        format!("10.250.{}.2", self.subnet)
    }

    pub fn cidr(&self) -> String {
        format!("{}/24", self.addr())
    }

    pub fn gateway(&self) -> String {
        format!("10.250.{}.1", self.subnet)
    }

    pub fn netns(&self) -> String {
        self.ctr.path_str()
    }

    /// The CNI environment of a call for this attachment.
    pub fn env(&self, command: &str, cni_path: &str) -> Vec<(String, String)> {
        vec![
            ("CNI_COMMAND".into(), command.into()),
            ("CNI_CONTAINERID".into(), self.container_id.clone()),
            ("CNI_NETNS".into(), self.netns()),
            ("CNI_IFNAME".into(), self.ifname.clone()),
            ("CNI_PATH".into(), cni_path.into()),
        ]
    }

    /// The interface plugin's result for this attachment, written in `version`.
    pub fn prev_result(&self, version: &str) -> Value {
        let route = json!({"dst": "0.0.0.0/0"});
        match version {
            "0.1.0" | "0.2.0" => json!({
                "cniVersion": version,
                "ip4": {"ip": self.cidr(), "gateway": self.gateway(), "routes": [route]},
                "dns": {}
            }),
            _ => {
                let mut ip = json!({"address": self.cidr(), "gateway": self.gateway(), "interface": 1});
                if version.starts_with("0.") {
                    ip["version"] = json!("4");
                }
                json!({
                    "cniVersion": version,
                    "interfaces": [
                        {"name": self.host_veth},
                        {"name": self.ifname, "sandbox": self.netns()}
                    ],
                    "ips": [ip],
                    "routes": [route],
                    "dns": {}
                })
            }
        }
    }

    /// Host then container state.
    pub fn states(&self) -> Result<Vec<State>, String> {
        Ok(vec![State::read(&self.host)?, State::read(&self.ctr)?])
    }
}

/// Whether IPv6 is enabled for new interfaces of `ns`.
fn ipv6_on(ns: &Ns) -> Result<bool, String> {
    let v = ns.try_exec(&["sysctl", "-n", "net.ipv6.conf.default.disable_ipv6"])?;
    Ok(v.trim() == "0")
}
