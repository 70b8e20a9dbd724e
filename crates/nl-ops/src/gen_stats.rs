//! Qdisc counters (`TCA_STATS2`, the kernel's gen_stats): what a qdisc
//! sent, dropped and holds, read from one dump of every qdisc of the
//! namespace. Read-only: nothing here changes the kernel.

use netlink_packet_route::tc::TcMessage;
use netlink_packet_route::RouteNetlinkMessage;

use crate::error::Result;
use crate::qdisc::{Qdisc, RTM_NEWQDISC};
use crate::raw;
use crate::socket::{RawMsg, Socket};

const TCMSG_LEN: usize = 20;
const TCA_STATS2: u16 = 7;
const TCA_STATS_BASIC: u16 = 1;
const TCA_STATS_QUEUE: u16 = 3;
const TCA_STATS_PKT64: u16 = 8;

/// `struct gnet_stats_basic` and `struct gnet_stats_queue`, widened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub bytes: u64,
    /// From TCA_STATS_PKT64 when the kernel sends it (the basic struct's
    /// 32 bits wrap).
    pub packets: u64,
    /// Packets queued now.
    pub qlen: u32,
    /// Bytes queued now.
    pub backlog: u32,
    pub drops: u32,
    pub requeues: u32,
    /// Times a packet had to wait (for TBF: for tokens).
    pub overlimits: u32,
}

impl Counters {
    /// From the nested TCA_STATS2 blob; what it lacks stays zero.
    fn decode(stats2: &[u8]) -> Counters {
        let mut c = Counters::default();
        let mut pkt64 = None;
        for (k, v) in raw::attrs(stats2) {
            match k {
                TCA_STATS_BASIC if v.len() >= 12 => {
                    c.bytes = raw::u64_at(v, 0);
                    c.packets = u64::from(raw::u32_at(v, 8));
                }
                TCA_STATS_PKT64 if v.len() >= 8 => pkt64 = Some(raw::u64_at(v, 0)),
                TCA_STATS_QUEUE if v.len() >= 20 => {
                    c.qlen = raw::u32_at(v, 0);
                    c.backlog = raw::u32_at(v, 4);
                    c.drops = raw::u32_at(v, 8);
                    c.requeues = raw::u32_at(v, 12);
                    c.overlimits = raw::u32_at(v, 16);
                }
                _ => {}
            }
        }
        if let Some(p) = pkt64 {
            c.packets = p;
        }
        c
    }

    fn from_raw(m: &RawMsg) -> Option<Counters> {
        let p = m.payload.get(TCMSG_LEN..)?;
        raw::attrs(p)
            .find(|(k, _)| *k == TCA_STATS2)
            .map(|(_, v)| Counters::decode(v))
    }
}

/// One qdisc with its counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QdiscStats {
    pub qdisc: Qdisc,
    pub counters: Counters,
}

impl Socket {
    /// Every qdisc of the namespace, with counters, in one dump (the
    /// kernel's builtin noop placeholders left out).
    pub fn all_qdiscs(&mut self) -> Result<Vec<QdiscStats>> {
        let msgs = self.dump(
            RouteNetlinkMessage::GetQueueDiscipline(TcMessage::default()),
            &|| "list qdiscs".to_string(),
        )?;
        Ok(msgs
            .iter()
            .filter(|m| m.kind == RTM_NEWQDISC)
            .filter_map(|m| {
                let qdisc = Qdisc::from_raw(m)?;
                let counters = Counters::from_raw(m).unwrap_or_default();
                Some(QdiscStats { qdisc, counters })
            })
            .filter(|q| q.qdisc.kind != "noop")
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_decode_basic_queue_and_pkt64() {
        let mut basic = Vec::new();
        basic.extend_from_slice(&123_456_789_012u64.to_ne_bytes());
        basic.extend_from_slice(&77u32.to_ne_bytes());
        basic.extend_from_slice(&[0; 4]);
        let queue: Vec<u8> = [3u32, 4500, 9, 1, 42]
            .iter()
            .flat_map(|v| v.to_ne_bytes())
            .collect();
        let mut b = Vec::new();
        raw::put(&mut b, TCA_STATS_BASIC, &basic);
        raw::put(&mut b, TCA_STATS_QUEUE, &queue);
        let c = Counters::decode(&b);
        assert_eq!(
            c,
            Counters {
                bytes: 123_456_789_012,
                packets: 77,
                qlen: 3,
                backlog: 4500,
                drops: 9,
                requeues: 1,
                overlimits: 42,
            }
        );
        // 64-bit packets win over the wrapped 32-bit ones.
        raw::put(&mut b, TCA_STATS_PKT64, &(5u64 << 32).to_ne_bytes());
        assert_eq!(Counters::decode(&b).packets, 5 << 32);
        // Short attributes are ignored, not misread.
        let mut short = Vec::new();
        raw::put(&mut short, TCA_STATS_QUEUE, &[1, 2, 3]);
        assert_eq!(Counters::decode(&short), Counters::default());
    }

    #[test]
    fn counters_found_in_a_qdisc_message() {
        let mut payload = vec![0u8; TCMSG_LEN];
        raw::put(&mut payload, 1, b"tbf\0");
        let mut stats2 = Vec::new();
        raw::put(
            &mut stats2,
            TCA_STATS_QUEUE,
            &[[0u8; 4], [0; 4], 5u32.to_ne_bytes(), [0; 4], [0; 4]].concat(),
        );
        raw::put(&mut payload, TCA_STATS2 | 0x8000, &stats2);
        let m = RawMsg {
            kind: RTM_NEWQDISC,
            payload,
        };
        assert_eq!(Counters::from_raw(&m).map(|c| c.drops), Some(5));
        let q = Qdisc::from_raw(&m).unwrap();
        assert_eq!(q.kind, "tbf");
    }
}
