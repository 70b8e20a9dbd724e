//! The plugin's own config: four limits at top level or in
//! `runtimeConfig.bandwidth`, keys matched case-insensitively, and the
//! operator's `maxBurstMs`. Accepted and refused as the reference does.

use cni_core::{CniError, CniResult, NetConf};
use serde::Deserialize;

use crate::tbf::{Discipline, Limit};

/// The four limits as sent (bits per second and bits).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Entry {
    pub ingress_rate: Option<u64>,
    pub ingress_burst: Option<u64>,
    pub egress_rate: Option<u64>,
    pub egress_burst: Option<u64>,
}

impl Entry {
    fn any_present(&self) -> bool {
        self.ingress_rate.is_some()
            || self.ingress_burst.is_some()
            || self.egress_rate.is_some()
            || self.egress_burst.is_some()
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RuntimeConfig {
    bandwidth: Option<Entry>,
}

/// Named fields rather than a flattened `Entry`: case-insensitive matching
/// cannot see through `#[serde(flatten)]`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Fields {
    ingress_rate: Option<u64>,
    ingress_burst: Option<u64>,
    egress_rate: Option<u64>,
    egress_burst: Option<u64>,
    runtime_config: Option<RuntimeConfig>,
    max_burst_ms: Option<u64>,
    /// Any JSON, so a wrong type is refused naming the field.
    queue: Option<serde_json::Value>,
}

/// The queue behind the bucket, as the operator's `queue` field asks (this
/// plugin's own field: the reference ignores it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Queue {
    /// The best this node's kernel has; the default.
    #[default]
    Auto,
    /// A TBF queue bounded to about 25 ms of rate, whatever the bucket.
    Bounded,
    /// The reference's queue: 25 ms of rate plus the whole bucket.
    Reference,
}

impl Queue {
    fn parse(v: Option<&serde_json::Value>) -> CniResult<Queue> {
        match v.map(|v| (v, v.as_str())) {
            None | Some((serde_json::Value::Null, _)) | Some((_, Some("auto"))) => Ok(Queue::Auto),
            Some((_, Some("bounded"))) => Ok(Queue::Bounded),
            Some((_, Some("reference"))) => Ok(Queue::Reference),
            Some((other, _)) => Err(CniError::invalid_config(format!(
                "invalid queue {other}: want \"auto\", \"bounded\" or \"reference\""
            ))),
        }
    }

    /// The discipline installed for this choice on a node whose kernel has
    /// fq_codel or not.
    pub fn discipline(self, fq_codel: bool) -> Discipline {
        match self {
            Queue::Auto if fq_codel => Discipline::FqCodel,
            Queue::Auto | Queue::Bounded => Discipline::Bounded,
            Queue::Reference => Discipline::Reference,
        }
    }
}

/// Validated limits: a direction is `Some` only when both its values are set.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Limits {
    /// Traffic into the container: TBF on the host veth.
    pub ingress: Option<Limit>,
    /// Traffic from the container: TBF on the ifb.
    pub egress: Option<Limit>,
    /// The operator's cap on either bucket, in milliseconds at the rate,
    /// whatever the static config or the runtime asked (beyond the
    /// reference: runtimes send bursts of 2^32 - 1 bits).
    pub max_burst_ms: Option<u64>,
    /// The queue behind the bucket.
    pub queue: Queue,
}

impl Limits {
    pub fn is_empty(&self) -> bool {
        self.ingress.is_none() && self.egress.is_none()
    }

    /// Reads and validates the limits of `conf`.
    pub fn from_conf(conf: &NetConf) -> CniResult<Limits> {
        let fields: Fields = conf.plugin(true)?;
        let mut limits = Limits::from_entry(&select(&fields))?;
        // Zero is unset (no cap), as for the four limits: the reference
        // ignores the field, so it accepts any number there.
        limits.max_burst_ms = fields.max_burst_ms.filter(|ms| *ms > 0);
        limits.queue = Queue::parse(fields.queue.as_ref())?;
        Ok(limits)
    }

    pub fn from_entry(e: &Entry) -> CniResult<Limits> {
        Ok(Limits {
            ingress: direction("ingress", e.ingress_rate, e.ingress_burst)?,
            egress: direction("egress", e.egress_rate, e.egress_burst)?,
            max_burst_ms: None,
            queue: Queue::Auto,
        })
    }
}

/// DEL's question, asked of a config whose limits may no longer validate:
/// could this attachment have shaped ingress (a root TBF on the veth)? Only
/// a readable config that sets egress values and no ingress value says no:
/// an egress-only attachment never made one. A config without limits (a
/// runtime that sends none at DEL) cannot tell, and counts as yes.
pub fn may_shape_ingress(conf: &NetConf) -> bool {
    let Ok(fields) = conf.plugin::<Fields>(true) else {
        return true;
    };
    let e = select(&fields);
    let set = |v: Option<u64>| v.unwrap_or(0) > 0;
    let egress_only =
        (set(e.egress_rate) || set(e.egress_burst)) && !set(e.ingress_rate) && !set(e.ingress_burst);
    !egress_only
}

/// The reference's rule: the static config wins as soon as any of the four
/// stands at top level; runtimeConfig is read only otherwise.
fn select(fields: &Fields) -> Entry {
    let top = Entry {
        ingress_rate: fields.ingress_rate,
        ingress_burst: fields.ingress_burst,
        egress_rate: fields.egress_rate,
        egress_burst: fields.egress_burst,
    };
    if top.any_present() {
        return top;
    }
    fields
        .runtime_config
        .as_ref()
        .and_then(|r| r.bandwidth)
        .unwrap_or_default()
}

/// The reference's refusals, word for word.
pub const RATE_WITHOUT_BURST: &str = "if rate is set, burst must also be set";
pub const BURST_WITHOUT_RATE: &str = "if burst is set, rate must also be set";
pub const BURST_OVER_4GB: &str = "burst cannot be more than 4GB";

/// Zero counts as unset, as in the reference. The messages are the
/// reference's words exactly (tools and tests match them); which field and
/// why is in `details`.
fn direction(name: &str, rate: Option<u64>, burst: Option<u64>) -> CniResult<Option<Limit>> {
    let rate = rate.unwrap_or(0);
    let burst = burst.unwrap_or(0);
    match (rate, burst) {
        (0, 0) => Ok(None),
        (_, 0) => Err(
            CniError::invalid_config(RATE_WITHOUT_BURST)
                .with_details(format!("{name}Rate is {rate} but {name}Burst is not set")),
        ),
        (0, _) => Err(
            CniError::invalid_config(BURST_WITHOUT_RATE)
                .with_details(format!("{name}Burst is {burst} but {name}Rate is not set")),
        ),
        _ if burst / 8 >= u64::from(u32::MAX) => Err(CniError::invalid_config(BURST_OVER_4GB)
            .with_details(format!(
                "{name}Burst of {burst} bits is 2^32 - 1 bytes or more"
            ))),
        // The reference hands the kernel a rate of 0 bytes per second,
        // which it refuses.
        _ if rate < 8 => Err(CniError::invalid_config(format!(
            "invalid {name}Rate of {rate} bit/s: below 8 bit/s, the smallest rate the kernel's tbf takes (1 byte/s)"
        ))),
        _ => Ok(Some(Limit { rate_bits: rate, burst_bits: burst })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cni_core::Code;
    use serde_json::json;

    fn conf(v: serde_json::Value) -> NetConf {
        let mut base = json!({"cniVersion": "1.0.0", "name": "net", "type": "bandwidth"});
        if let (Some(b), serde_json::Value::Object(extra)) = (base.as_object_mut(), v) {
            b.extend(extra);
        }
        NetConf::parse(base.to_string().as_bytes()).unwrap()
    }

    fn limits(v: serde_json::Value) -> CniResult<Limits> {
        Limits::from_conf(&conf(v))
    }

    fn l(rate_bits: u64, burst_bits: u64) -> Option<Limit> {
        Some(Limit {
            rate_bits,
            burst_bits,
        })
    }

    #[test]
    fn top_level_limits() {
        let got =
            limits(json!({"ingressRate": 8000, "ingressBurst": 80, "egressRate": 16000, "egressBurst": 160}))
                .unwrap();
        assert_eq!(
            got,
            Limits {
                ingress: l(8000, 80),
                egress: l(16000, 160),
                max_burst_ms: None,
                queue: Queue::Auto,
            }
        );
    }

    #[test]
    fn no_limits_is_empty() {
        assert!(limits(json!({})).unwrap().is_empty());
        assert!(limits(json!({"ingressRate": 0, "ingressBurst": 0}))
            .unwrap()
            .is_empty());
    }

    #[test]
    fn runtime_config_used_when_no_top_level() {
        let got =
            limits(json!({"runtimeConfig": {"bandwidth": {"egressRate": 1000000, "egressBurst": 100000}}}))
                .unwrap();
        assert_eq!(
            got,
            Limits {
                ingress: None,
                egress: l(1_000_000, 100_000),
                max_burst_ms: None,
                queue: Queue::Auto,
            }
        );
    }

    #[test]
    fn static_config_wins_over_runtime_config() {
        let got = limits(json!({
            "ingressRate": 8000, "ingressBurst": 80,
            "runtimeConfig": {"bandwidth": {"egressRate": 1000000, "egressBurst": 100000}}
        }))
        .unwrap();
        assert_eq!(
            got,
            Limits {
                ingress: l(8000, 80),
                egress: None,
                max_burst_ms: None,
                queue: Queue::Auto,
            }
        );
        // Even a lone zero at top level makes the static config win.
        let got = limits(json!({
            "egressRate": 0,
            "runtimeConfig": {"bandwidth": {"egressRate": 1000000, "egressBurst": 100000}}
        }))
        .unwrap();
        assert!(got.is_empty());
    }

    #[test]
    fn keys_match_case_insensitively() {
        let got = limits(json!({
            "RuntimeConfig": {"bandWidth": {"INGRESSRATE": 8000, "ingressburst": 80}}
        }))
        .unwrap();
        assert_eq!(got.ingress, l(8000, 80));
        let got = limits(json!({"IngressRate": 16000, "ingressBURST": 160})).unwrap();
        assert_eq!(got.ingress, l(16000, 160));
    }

    #[test]
    fn validation_errors_are_code_7() {
        // The reference's words are the whole message; ours say which field.
        let cases = [
            (
                json!({"ingressRate": 8000}),
                RATE_WITHOUT_BURST,
                "ingressRate is 8000 but ingressBurst is not set",
            ),
            (
                json!({"egressBurst": 80}),
                BURST_WITHOUT_RATE,
                "egressBurst is 80 but egressRate is not set",
            ),
            (
                json!({"egressRate": 8000, "egressBurst": 8 * 4_294_967_295u64}),
                BURST_OVER_4GB,
                "egressBurst",
            ),
            (
                json!({"ingressRate": 8000, "ingressBurst": 8 * 4_294_967_296u64}),
                BURST_OVER_4GB,
                "ingressBurst",
            ),
            (
                json!({"runtimeConfig": {"bandwidth": {"ingressRate": 8000}}}),
                RATE_WITHOUT_BURST,
                "ingressBurst",
            ),
            // Ingress is checked first, as the reference does.
            (
                json!({"ingressBurst": 8, "egressRate": 8}),
                BURST_WITHOUT_RATE,
                "ingressRate",
            ),
        ];
        for (v, msg, details) in cases {
            let e = limits(v.clone()).unwrap_err();
            assert_eq!(e.code, Code::InvalidConfig, "{v}");
            assert_eq!(e.msg, msg, "{v}");
            assert!(e.details.contains(details), "{v}: {}", e.details);
        }
        let e = limits(json!({"ingressRate": 7, "ingressBurst": 8000})).unwrap_err();
        assert!(e.msg.contains("below 8 bit/s"), "{}", e.msg);
        // Just below the 4 GB line is accepted.
        assert!(limits(json!({"ingressRate": 8000, "ingressBurst": 8 * 4_294_967_294u64})).is_ok());
        assert!(limits(json!({"ingressRate": 8, "ingressBurst": 8000})).is_ok());
    }

    #[test]
    fn wrong_types_are_errors_not_panics() {
        for v in [
            json!({"ingressRate": "8000", "ingressBurst": 80}),
            json!({"ingressRate": -1, "ingressBurst": 80}),
            json!({"ingressRate": 1.5, "ingressBurst": 80}),
            json!({"ingressRate": 8000, "ingressBurst": [80]}),
            json!({"runtimeConfig": {"bandwidth": "fast"}}),
            json!({"runtimeConfig": {"bandwidth": {"egressRate": true}}}),
            json!({"ingressRate": 18446744073709551616.0, "ingressBurst": 80}),
        ] {
            let e = limits(v.clone()).unwrap_err();
            assert!(matches!(e.code, Code::InvalidConfig | Code::Decode), "{v}: {e:?}");
        }
    }

    #[test]
    fn runtime_sentinels_and_the_documents_example_are_accepted() {
        // containerd: 2^32 - 1 bits; CRI-O: (2^32 - 1) * 8 - 1 bits.
        for burst in [4_294_967_295u64, 4_294_967_295 * 8 - 1] {
            let got = limits(json!({"runtimeConfig": {"bandwidth": {
                "ingressRate": 1_000_000, "ingressBurst": burst,
                "egressRate": 1_000_000, "egressBurst": burst}}}))
            .unwrap();
            assert_eq!(got.ingress, l(1_000_000, burst));
        }
        let got =
            limits(json!({"ingressRate": 123, "ingressBurst": 456, "egressRate": 123, "egressBurst": 456}))
                .unwrap();
        assert_eq!(got.egress, l(123, 456));
        let got = limits(json!({"maxBurstMs": 20, "egressRate": 8000, "egressBurst": 80})).unwrap();
        assert_eq!(got.max_burst_ms, Some(20));
    }

    #[test]
    fn max_burst_ms_zero_is_no_cap() {
        let got = limits(json!({"maxBurstMs": 0, "egressRate": 8000, "egressBurst": 80})).unwrap();
        assert_eq!(got.max_burst_ms, None);
        assert_eq!(got.egress, l(8000, 80));
        assert_eq!(limits(json!({"maxBurstMs": 0})).unwrap(), Limits::default());
        // Still a number: anything else is refused, as for the limits.
        assert!(limits(json!({"maxBurstMs": -1})).is_err());
    }

    #[test]
    fn queue_is_auto_bounded_or_reference_and_nothing_else() {
        let eg = |q: serde_json::Value| limits(json!({"queue": q, "egressRate": 8000, "egressBurst": 80}));
        assert_eq!(limits(json!({})).unwrap().queue, Queue::Auto);
        assert_eq!(eg(json!("auto")).unwrap().queue, Queue::Auto);
        assert_eq!(eg(json!("bounded")).unwrap().queue, Queue::Bounded);
        assert_eq!(eg(json!("reference")).unwrap().queue, Queue::Reference);
        // Matched case-insensitively as a key, as the limits are.
        let got = limits(json!({"Queue": "reference", "egressRate": 8000, "egressBurst": 80})).unwrap();
        assert_eq!(got.queue, Queue::Reference);
        assert_eq!(Queue::Auto.discipline(false), Discipline::Bounded);
        assert_eq!(Queue::Auto.discipline(true), Discipline::FqCodel);
        assert_eq!(Queue::Bounded.discipline(true), Discipline::Bounded);
        assert_eq!(Queue::Reference.discipline(true), Discipline::Reference);
        for bad in [
            json!("fq_codel"),
            json!("Reference"),
            json!(""),
            json!(1),
            json!(["auto"]),
        ] {
            let e = eg(bad.clone()).unwrap_err();
            assert_eq!(e.code, Code::InvalidConfig, "{bad}");
            assert!(e.msg.contains("queue"), "{bad}: {}", e.msg);
        }
    }
}
