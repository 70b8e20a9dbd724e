//! Qdiscs: ingress, TBF and the queue under a TBF's class (fq_codel or a
//! byte FIFO). Options are built and decoded by hand, in the kernel's own
//! units: what the bucket is in bytes is the plugin's call.

use std::sync::OnceLock;

use netlink_packet_core::{DefaultNla, NLA_F_NESTED, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE};
use netlink_packet_route::tc::{TcAttribute, TcHandle, TcMessage};
use netlink_packet_route::RouteNetlinkMessage;

use crate::error::{Error, Result};
use crate::raw;
use crate::socket::{RawMsg, Socket};

pub const TC_H_ROOT: u32 = 0xFFFF_FFFF;
pub const TC_H_INGRESS: u32 = 0xFFFF_FFF1;
pub const INGRESS_HANDLE: u32 = 0xFFFF_0000;

/// TBF in the units the kernel takes and dumps (`struct tc_tbf_qopt`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tbf {
    /// Bytes per second.
    pub rate: u64,
    /// The bucket, as time to send it at `rate`, in scheduler ticks
    /// (`/proc/net/psched`).
    pub buffer: u32,
    /// Queue limit in bytes.
    pub limit: u32,
    /// The bucket in bytes (TCA_TBF_BURST), as tc sends it: the kernel then
    /// takes it as the largest packet and derives the bucket's time from
    /// it, ignoring `buffer`. Without it the kernel's largest packet is what
    /// `buffer` drains, counted at most 2^32 - 1 ns. Never dumped: decoded
    /// TBFs have `None`.
    pub burst: Option<u32>,
    /// A second bucket, filled at `peak.rate`: the kernel lets no packet
    /// larger than it through whole (it segments GSO packets to fit).
    pub peak: Option<Peak>,
}

/// The peak-rate bucket of a TBF (`peakrate` and `mtu` of tc_tbf_qopt).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peak {
    /// Bytes per second, above the TBF's rate.
    pub rate: u64,
    /// The bucket, as time at `rate`, in scheduler ticks (as dumped).
    pub mtu: u32,
    /// The bucket in bytes (TCA_TBF_PBURST): the kernel takes it as the
    /// largest packet and derives `mtu` from it. Never dumped.
    pub burst: Option<u32>,
}

impl Tbf {
    /// What the kernel dumps back of this TBF: the byte sizes it takes
    /// (TCA_TBF_BURST, TCA_TBF_PBURST) are never dumped.
    pub fn dumped(&self) -> Tbf {
        Tbf {
            burst: None,
            peak: self.peak.map(|p| Peak { burst: None, ..p }),
            ..*self
        }
    }
}

/// fq_codel's numbers (`TCA_FQ_CODEL_*`), those a plugin sets and checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FqCodel {
    /// Packets queued at most, over all flows.
    pub limit: u32,
    /// The sojourn time CoDel keeps the queue at, in microseconds.
    pub target_us: u32,
    /// CoDel's interval, in microseconds.
    pub interval_us: u32,
    /// Mark ECN-capable packets instead of dropping them.
    pub ecn: bool,
}

/// What a TBF's class queues its packets in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildQueue {
    FqCodel(FqCodel),
    /// A byte FIFO of this many bytes (what a TBF makes by itself).
    Bfifo(u32),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Qdisc {
    pub index: u32,
    pub handle: u32,
    pub parent: u32,
    pub kind: String,
    /// Decoded options when `kind` is "tbf".
    pub tbf: Option<Tbf>,
    /// The shared filter block of an ingress or clsact qdisc
    /// (TCA_INGRESS_BLOCK); `None` when its filters are its link's own.
    pub ingress_block: Option<u32>,
    /// Decoded options when `kind` is "fq_codel".
    pub fq_codel: Option<FqCodel>,
}

const TCA_FQ_CODEL_TARGET: u16 = 1;
const TCA_FQ_CODEL_LIMIT: u16 = 2;
const TCA_FQ_CODEL_INTERVAL: u16 = 3;
const TCA_FQ_CODEL_ECN: u16 = 4;
/// `struct tc_fifo_qopt`: the limit alone.
const TC_FIFO_QOPT_LEN: usize = 4;

const TCA_KIND: u16 = 1;
const TCA_OPTIONS: u16 = 2;
const TCA_INGRESS_BLOCK: u16 = 13;
const TCA_TBF_PARMS: u16 = 1;
const TCA_TBF_RATE64: u16 = 4;
const TCA_TBF_PRATE64: u16 = 5;
const TCA_TBF_BURST: u16 = 6;
const TCA_TBF_PBURST: u16 = 7;
const TCMSG_LEN: usize = 20;
const TC_TBF_QOPT_LEN: usize = 36;

/// The kernel's packet scheduler clock, from `/proc/net/psched`: TBF
/// buckets travel as time in its ticks.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Psched {
    /// Scheduler ticks per microsecond (15.625 on every modern kernel).
    pub ticks_per_us: f64,
}

impl Default for Psched {
    /// What kernels since 2.6.31 report: 1 tick = 64 ns.
    fn default() -> Self {
        Psched { ticks_per_us: 15.625 }
    }
}

impl Psched {
    /// Parses the hex words of `/proc/net/psched` as iproute2 does.
    pub fn parse(text: &str) -> Option<Psched> {
        let mut it = text.split_whitespace().map(|w| u32::from_str_radix(w, 16));
        let mut t2us = f64::from(it.next()?.ok()?);
        let us2t = f64::from(it.next()?.ok()?);
        let clock_res = f64::from(it.next()?.ok()?);
        if us2t == 0.0 {
            return None;
        }
        // Old-binary compatibility: a 1 GHz clock advertises a multiplier
        // of 1000 that really is 1.
        if clock_res == 1e9 {
            t2us = us2t;
        }
        Some(Psched {
            ticks_per_us: t2us / us2t * (clock_res / 1e6),
        })
    }

    /// The running kernel's clock, read once per process; the usual default
    /// when unreadable.
    pub fn read() -> Psched {
        static CLOCK: OnceLock<Psched> = OnceLock::new();
        *CLOCK.get_or_init(|| {
            let text = std::fs::read_to_string("/proc/net/psched").unwrap_or_default();
            Psched::parse(&text).unwrap_or_else(|| {
                log::warn!("cannot read /proc/net/psched, assuming 64 ns ticks");
                Psched::default()
            })
        })
    }
}

impl Tbf {
    /// TCA_OPTIONS of a TBF: tc_tbf_qopt, TCA_TBF_BURST when set and, at
    /// 2^32 B/s and above, TCA_TBF_RATE64 (the u32 rate in the struct then
    /// saturates).
    fn options(&self) -> Vec<u8> {
        let mut qopt = [0u8; TC_TBF_QOPT_LEN];
        // struct tc_ratespec: cell_log u8, linklayer u8, overhead u16,
        // cell_align i16, mpu u16, rate u32. Linklayer stays unspec and no
        // rate table is sent: the kernel then computes transmit times from
        // the rate itself, and the result matches the reference plugin's.
        let rate32 = u32::try_from(self.rate).unwrap_or(u32::MAX);
        qopt[8..12].copy_from_slice(&rate32.to_ne_bytes());
        // peakrate (12..24, its rate at 20) stays zero without a peak;
        // then limit, buffer, mtu.
        if let Some(p) = self.peak {
            let prate32 = u32::try_from(p.rate).unwrap_or(u32::MAX);
            qopt[20..24].copy_from_slice(&prate32.to_ne_bytes());
            qopt[32..36].copy_from_slice(&p.mtu.to_ne_bytes());
        }
        qopt[24..28].copy_from_slice(&self.limit.to_ne_bytes());
        qopt[28..32].copy_from_slice(&self.buffer.to_ne_bytes());
        let mut out = Vec::with_capacity(64);
        raw::put(&mut out, TCA_TBF_PARMS, &qopt);
        // The reference sends only the buffer; the bytes only when asked.
        if let Some(burst) = self.burst {
            raw::put(&mut out, TCA_TBF_BURST, &burst.to_ne_bytes());
        }
        if self.rate > u64::from(u32::MAX) {
            raw::put(&mut out, TCA_TBF_RATE64, &self.rate.to_ne_bytes());
        }
        if let Some(p) = self.peak {
            if let Some(burst) = p.burst {
                raw::put(&mut out, TCA_TBF_PBURST, &burst.to_ne_bytes());
            }
            if p.rate > u64::from(u32::MAX) {
                raw::put(&mut out, TCA_TBF_PRATE64, &p.rate.to_ne_bytes());
            }
        }
        out
    }

    /// Back from the nested TCA_OPTIONS blob of a dump.
    fn decode(options: &[u8]) -> Option<Tbf> {
        let mut rate = None;
        let mut rate64 = None;
        let mut limit = 0;
        let mut buffer = 0;
        let (mut prate, mut prate64, mut mtu) = (0, None, 0);
        for (k, v) in raw::attrs(options) {
            match k {
                TCA_TBF_PARMS if v.len() >= TC_TBF_QOPT_LEN => {
                    rate = Some(u64::from(raw::u32_at(v, 8)));
                    prate = raw::u32_at(v, 20);
                    limit = raw::u32_at(v, 24);
                    buffer = raw::u32_at(v, 28);
                    mtu = raw::u32_at(v, 32);
                }
                TCA_TBF_RATE64 if v.len() >= 8 => rate64 = Some(raw::u64_at(v, 0)),
                TCA_TBF_PRATE64 if v.len() >= 8 => prate64 = Some(raw::u64_at(v, 0)),
                _ => {}
            }
        }
        let peak = prate64
            .or((prate != 0).then_some(u64::from(prate)))
            .map(|rate| Peak {
                rate,
                mtu,
                burst: None,
            });
        Some(Tbf {
            rate: rate64.or(rate)?,
            buffer,
            limit,
            burst: None,
            peak,
        })
    }
}

impl FqCodel {
    fn options(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(32);
        raw::put(&mut out, TCA_FQ_CODEL_TARGET, &self.target_us.to_ne_bytes());
        raw::put(&mut out, TCA_FQ_CODEL_LIMIT, &self.limit.to_ne_bytes());
        raw::put(&mut out, TCA_FQ_CODEL_INTERVAL, &self.interval_us.to_ne_bytes());
        raw::put(&mut out, TCA_FQ_CODEL_ECN, &u32::from(self.ecn).to_ne_bytes());
        out
    }

    /// The kernel keeps times in its CoDel units (1024 ns): a target of
    /// 5000 us dumps as 4999.
    fn decode(options: &[u8]) -> FqCodel {
        let mut f = FqCodel {
            limit: 0,
            target_us: 0,
            interval_us: 0,
            ecn: false,
        };
        for (k, v) in raw::attrs(options) {
            match k {
                TCA_FQ_CODEL_TARGET => f.target_us = raw::u32_at(v, 0),
                TCA_FQ_CODEL_LIMIT => f.limit = raw::u32_at(v, 0),
                TCA_FQ_CODEL_INTERVAL => f.interval_us = raw::u32_at(v, 0),
                TCA_FQ_CODEL_ECN => f.ecn = raw::u32_at(v, 0) != 0,
                _ => {}
            }
        }
        f
    }
}

impl ChildQueue {
    fn kind(&self) -> &'static str {
        match self {
            ChildQueue::FqCodel(_) => "fq_codel",
            ChildQueue::Bfifo(_) => "bfifo",
        }
    }

    /// The options as a nested attribute wants them: fq_codel's are
    /// attributes, a FIFO's a bare struct.
    fn options(&self) -> (u16, Vec<u8>) {
        match self {
            ChildQueue::FqCodel(f) => (TCA_OPTIONS | NLA_F_NESTED, f.options()),
            ChildQueue::Bfifo(limit) => {
                let mut v = vec![0u8; TC_FIFO_QOPT_LEN];
                v.copy_from_slice(&limit.to_ne_bytes());
                (TCA_OPTIONS, v)
            }
        }
    }
}

impl Qdisc {
    pub(crate) fn from_raw(m: &RawMsg) -> Option<Qdisc> {
        let p = &m.payload;
        if p.len() < TCMSG_LEN {
            return None;
        }
        let mut q = Qdisc {
            index: raw::u32_at(p, 4),
            handle: raw::u32_at(p, 8),
            parent: raw::u32_at(p, 12),
            kind: String::new(),
            tbf: None,
            ingress_block: None,
            fq_codel: None,
        };
        let mut options: &[u8] = &[];
        for (k, v) in raw::attrs(&p[TCMSG_LEN..]) {
            match k {
                TCA_KIND => q.kind = raw::c_string(v),
                TCA_OPTIONS => options = v,
                TCA_INGRESS_BLOCK if v.len() >= 4 => {
                    q.ingress_block = Some(raw::u32_at(v, 0)).filter(|b| *b != 0);
                }
                _ => {}
            }
        }
        match q.kind.as_str() {
            "tbf" => q.tbf = Tbf::decode(options),
            "fq_codel" => q.fq_codel = Some(FqCodel::decode(options)),
            _ => {}
        }
        Some(q)
    }
}

fn tc_message(index: u32, handle: u32, parent: u32) -> Result<TcMessage> {
    let index = i32::try_from(index).map_err(|_| Error::Protocol {
        op: "tc".to_string(),
        msg: format!("ifindex {index} out of range"),
    })?;
    let mut m = TcMessage::with_index(index);
    m.header.handle = TcHandle::from(handle);
    m.header.parent = TcHandle::from(parent);
    Ok(m)
}

/// A new `ingress` qdisc on `index`.
pub(crate) fn ingress_message(index: u32) -> Result<TcMessage> {
    let mut m = tc_message(index, INGRESS_HANDLE, TC_H_INGRESS)?;
    m.attributes.push(TcAttribute::Kind("ingress".to_string()));
    m.attributes.push(TcAttribute::Other(DefaultNla::new(
        TCA_OPTIONS | NLA_F_NESTED,
        Vec::new(),
    )));
    Ok(m)
}

impl Socket {
    /// The root and ingress qdiscs of one link, as a dump shows them (the
    /// builtin noop placeholder left out). Two gets instead of a dump: the
    /// kernel does not filter qdisc dumps by link, so a dump costs time in
    /// proportion to every link of the namespace.
    pub fn qdiscs(&mut self, index: u32) -> Result<Vec<Qdisc>> {
        let mut out = Vec::with_capacity(2);
        for parent in [TC_H_ROOT, TC_H_INGRESS] {
            let m = tc_message(index, 0, parent)?;
            let op = || format!("list qdiscs of link {index}");
            let msgs = match self.get_echo(RouteNetlinkMessage::GetQueueDiscipline(m), &op) {
                Ok(msgs) => msgs,
                // No ingress queue was ever made on this link, or the link
                // is gone (a dump then lists nothing either).
                Err(e) if e.is_not_found() => continue,
                Err(e) => return Err(e),
            };
            out.extend(
                msgs.iter()
                    .filter(|m| m.kind == RTM_NEWQDISC)
                    .filter_map(Qdisc::from_raw)
                    .filter(|q| q.index == index && q.kind != "noop"),
            );
        }
        Ok(out)
    }

    /// The qdisc holding the packets of class `class` (e.g. a TBF's `1:1`),
    /// as a get shows it. `None` when there is no such class, or it holds
    /// the queue its qdisc made by itself (hidden, as from a dump).
    pub fn leaf_qdisc(&mut self, index: u32, class: u32) -> Result<Option<Qdisc>> {
        let m = tc_message(index, 0, class)?;
        let op = || format!("get the qdisc of class {} on link {index}", Handle(class));
        let msgs = match self.get_echo(RouteNetlinkMessage::GetQueueDiscipline(m), &op) {
            Ok(msgs) => msgs,
            Err(e) if e.is_not_found() || e.is_invalid() => return Ok(None),
            Err(e) => return Err(e),
        };
        Ok(msgs
            .iter()
            .filter(|m| m.kind == RTM_NEWQDISC)
            .filter_map(Qdisc::from_raw)
            .find(|q| q.index == index))
    }

    /// Puts `queue` under class `class` in place of what is there (the
    /// kernel frees that). `handle` 0 lets the kernel choose one.
    pub fn graft_queue(&mut self, index: u32, class: u32, handle: u32, queue: &ChildQueue) -> Result<()> {
        let mut m = tc_message(index, handle, class)?;
        m.attributes.push(TcAttribute::Kind(queue.kind().to_string()));
        let (kind, options) = queue.options();
        m.attributes
            .push(TcAttribute::Other(DefaultNla::new(kind, options)));
        self.change(
            RouteNetlinkMessage::NewQueueDiscipline(m),
            NLM_F_CREATE | NLM_F_REPLACE,
            &|| {
                let what = match queue {
                    ChildQueue::FqCodel(f) => format!(
                        "fq_codel {} (limit {} packets, target {} us, interval {} us)",
                        Handle(handle),
                        f.limit,
                        f.target_us,
                        f.interval_us
                    ),
                    ChildQueue::Bfifo(limit) => format!("bfifo (limit {limit} B)"),
                };
                format!("put {what} under class {} of link {index}", Handle(class))
            },
        )
    }

    /// Adds a root TBF with `handle`; refused with "file exists" when the
    /// link has a root qdisc of its own (not the kernel's default one).
    pub fn add_root_tbf(&mut self, index: u32, handle: u32, tbf: &Tbf) -> Result<()> {
        self.set_root_tbf(index, handle, tbf, NLM_F_CREATE | NLM_F_EXCL, "add")
    }

    /// Changes the numbers of the root TBF with `handle` in place; fails
    /// when the root qdisc is another one.
    pub fn change_root_tbf(&mut self, index: u32, handle: u32, tbf: &Tbf) -> Result<()> {
        self.set_root_tbf(index, handle, tbf, 0, "change")
    }

    fn set_root_tbf(&mut self, index: u32, handle: u32, tbf: &Tbf, flags: u16, verb: &str) -> Result<()> {
        let mut m = tc_message(index, handle, TC_H_ROOT)?;
        m.attributes.push(TcAttribute::Kind("tbf".to_string()));
        m.attributes.push(TcAttribute::Other(DefaultNla::new(
            TCA_OPTIONS | NLA_F_NESTED,
            tbf.options(),
        )));
        self.change(RouteNetlinkMessage::NewQueueDiscipline(m), flags, &|| {
            let burst = tbf.burst.map(|b| format!(", burst {b} B")).unwrap_or_default();
            format!(
                "{verb} root tbf {} (rate {} B/s, buffer {} ticks, limit {} B{burst}) on link {index}",
                Handle(handle),
                tbf.rate,
                tbf.buffer,
                tbf.limit
            )
        })
    }

    /// Deletes the root qdisc if its handle is `handle`; Ok(false) when the
    /// root holds no such qdisc (gone, or someone else's).
    pub fn delete_root_qdisc(&mut self, index: u32, handle: u32) -> Result<bool> {
        let m = tc_message(index, handle, TC_H_ROOT)?;
        match self.delete_qdisc(m, &|| {
            format!("delete root qdisc {} of link {index}", Handle(handle))
        }) {
            // Another handle at the root: the kernel says "invalid handle".
            Err(e) if e.is_invalid() => {
                let present = self
                    .qdiscs(index)?
                    .iter()
                    .any(|q| q.parent == TC_H_ROOT && q.handle == handle);
                if present {
                    Err(e)
                } else {
                    Ok(false)
                }
            }
            other => other,
        }
    }

    /// Ok(false) when it already existed.
    pub fn add_ingress_qdisc(&mut self, index: u32) -> Result<bool> {
        let m = ingress_message(index)?;
        match self.change(
            RouteNetlinkMessage::NewQueueDiscipline(m),
            NLM_F_CREATE | NLM_F_EXCL,
            &|| format!("add ingress qdisc to link {index}"),
        ) {
            Ok(()) => Ok(true),
            Err(e) if e.is_exists() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Ok(false) when there was none.
    pub fn delete_ingress_qdisc(&mut self, index: u32) -> Result<bool> {
        let m = tc_message(index, INGRESS_HANDLE, TC_H_INGRESS)?;
        match self.delete_qdisc(m, &|| format!("delete ingress qdisc of link {index}")) {
            // Without an ingress qdisc the kernel compares our handle with
            // the placeholder's (0) and answers EINVAL "invalid handle".
            Err(e) if e.is_invalid() => {
                let present = self.qdiscs(index)?.iter().any(|q| q.parent == TC_H_INGRESS);
                if present {
                    Err(e)
                } else {
                    Ok(false)
                }
            }
            other => other,
        }
    }

    fn delete_qdisc(&mut self, m: TcMessage, op: &dyn Fn() -> String) -> Result<bool> {
        match self.change(RouteNetlinkMessage::DelQueueDiscipline(m), 0, op) {
            Ok(()) => Ok(true),
            // ENOENT: nothing there, or only the default qdisc (handle 0).
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }
}

pub(crate) const RTM_NEWQDISC: u16 = 36;

/// A tc handle as tc prints it: `1:`, `ffff:`, `8001:2`.
pub struct Handle(pub u32);

impl std::fmt::Display for Handle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (major, minor) = (self.0 >> 16, self.0 & 0xffff);
        if minor == 0 {
            write!(f, "{major:x}:")
        } else {
            write!(f, "{major:x}:{minor:x}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn psched_of_modern_and_old_kernels() {
        let p = Psched::parse("000003e8 00000040 000f4240 3b9aca00\n").unwrap();
        assert_eq!(p.ticks_per_us, 15.625);
        // clock_res of 1 GHz: t2us is taken from us2t, as iproute2 does.
        let p = Psched::parse("000003e8 00000400 3b9aca00 3b9aca00").unwrap();
        assert_eq!(p.ticks_per_us, 1000.0);
        assert_eq!(Psched::parse("garbage"), None);
        assert_eq!(Psched::parse("1 0 f4240 64"), None);
    }

    #[test]
    fn tbf_options_round_trip() {
        let t = Tbf {
            rate: 125_000,
            buffer: 1_250_000,
            limit: 13_125,
            burst: None,
            peak: None,
        };
        let o = t.options();
        // PARMS(4+36) only: no BURST, no RATE64 below 2^32.
        assert_eq!(o.len(), 40);
        assert_eq!(Tbf::decode(&o), Some(t));
        let parms: Vec<_> = raw::attrs(&o).collect();
        assert_eq!(raw::u32_at(parms[0].1, 28), 1_250_000);
        assert_eq!(raw::u32_at(parms[0].1, 8), 125_000);
        assert_eq!(raw::u32_at(parms[0].1, 24), 13_125);
    }

    #[test]
    fn tbf_rate64() {
        let t = Tbf {
            rate: 6_250_000_000,
            buffer: 2_500,
            limit: 157_250_000,
            burst: None,
            peak: None,
        };
        let o = t.options();
        let a: Vec<_> = raw::attrs(&o).collect();
        assert_eq!(raw::u32_at(a[0].1, 8), u32::MAX);
        assert_eq!(a.len(), 2);
        assert_eq!(a[1].0, TCA_TBF_RATE64);
        assert_eq!(Tbf::decode(&o), Some(t));
    }

    #[test]
    fn tbf_burst_only_when_set() {
        let t = Tbf {
            rate: 15,
            buffer: 547_916_666,
            limit: 526,
            burst: Some(526),
            peak: None,
        };
        let o = t.options();
        let a: Vec<_> = raw::attrs(&o).collect();
        assert_eq!(a.len(), 2);
        assert_eq!((a[1].0, raw::u32_at(a[1].1, 0)), (TCA_TBF_BURST, 526));
        // The kernel never dumps it back.
        assert_eq!(Tbf::decode(&o), Some(Tbf { burst: None, ..t }));
    }

    #[test]
    fn tbf_peak_rate_and_bucket() {
        let t = Tbf {
            rate: 125_000,
            buffer: u32::MAX,
            limit: 3_125,
            burst: None,
            peak: Some(Peak {
                rate: 12_500_000_000,
                mtu: 1,
                burst: Some(1514),
            }),
        };
        let o = t.options();
        let a: Vec<_> = raw::attrs(&o).collect();
        // PARMS, PBURST, PRATE64 (the u32 peak rate saturates).
        assert_eq!(a.len(), 3);
        assert_eq!(raw::u32_at(a[0].1, 20), u32::MAX);
        assert_eq!(raw::u32_at(a[0].1, 32), 1);
        assert_eq!((a[1].0, raw::u32_at(a[1].1, 0)), (TCA_TBF_PBURST, 1514));
        assert_eq!(
            (a[2].0, raw::u64_at(a[2].1, 0)),
            (TCA_TBF_PRATE64, 12_500_000_000)
        );
        assert_eq!(Tbf::decode(&o), Some(t.dumped()));
        assert_eq!(t.dumped().peak.map(|p| p.burst), Some(None));
        // A peak rate within u32: in the struct alone.
        let small = Tbf {
            peak: Some(Peak {
                rate: 1_000_000,
                mtu: 96_875,
                burst: None,
            }),
            ..t
        };
        let o = small.options();
        assert_eq!(raw::attrs(&o).count(), 1);
        assert_eq!(Tbf::decode(&o), Some(small));
    }

    #[test]
    fn fq_codel_options_round_trip() {
        let f = FqCodel {
            limit: 1000,
            target_us: 5000,
            interval_us: 100_000,
            ecn: true,
        };
        let o = f.options();
        assert_eq!(raw::attrs(&o).count(), 4);
        assert_eq!(FqCodel::decode(&o), f);
        let (kind, b) = ChildQueue::Bfifo(3000).options();
        assert_eq!((kind, raw::u32_at(&b, 0), b.len()), (TCA_OPTIONS, 3000, 4));
    }

    #[test]
    fn handles_print_as_tc_does() {
        assert_eq!(Handle(0x1_0000).to_string(), "1:");
        assert_eq!(Handle(0xffff_0000).to_string(), "ffff:");
        assert_eq!(Handle(0x8001_0002).to_string(), "8001:2");
    }
}
