//! The token bucket, in one place: how the reference turns rate and burst
//! into the kernel's TBF, and the bucket this plugin installs.
//!
//! Where the reference's bucket works, ours is the same qdisc, number for
//! number. Where it cannot work, ours is the nearest one that does, and the
//! log says so (warning): a bucket that cannot hold one full frame is raised
//! to hold one (else every full-size packet is dropped), and one beyond the
//! 2^32 scheduler ticks the kernel's TBF can express is capped there (the
//! reference wraps it around to an arbitrary size). Where no bucket given as
//! time passes a full frame (the kernel counts at most 4.29 s of it for the
//! largest packet: below about 2.8 kbit/s at MTU 1500), the bucket is given
//! in bytes, as tc gives it. An operator's `maxBurstMs` caps the bucket at
//! that much time at the rate.

use cni_core::{CniError, CniResult};
pub use nl_ops::qdisc::Psched;
use nl_ops::qdisc::{Peak, Tbf};

/// The reference's fixed queueing latency: the queue holds what the rate
/// drains in this time, on top of the bucket.
pub const LATENCY_US: u64 = 25_000;
/// The root TBF's handle, `1:`, as the reference makes it: the shape DEL
/// and CHECK know as this plugin's.
pub const TBF_HANDLE: u32 = 0x0001_0000;
/// An Ethernet header: what a full frame adds to the MTU on the wire the
/// qdisc measures.
pub const ETH_HLEN: u32 = 14;

const USEC_PER_SEC: f64 = 1_000_000.0;

/// One direction's limits, as configured (bits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// Bits per second, at least 8.
    pub rate_bits: u64,
    /// Bits; fewer than 2^32 - 1 bytes.
    pub burst_bits: u64,
}

impl Limit {
    pub fn rate_bytes(&self) -> u64 {
        self.rate_bits / 8
    }

    pub fn burst_bytes(&self) -> u64 {
        self.burst_bits / 8
    }
}

/// What queues behind the bucket. The TBF's own child is a byte FIFO of
/// `limit` bytes: what it holds waits there while the bucket is empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Discipline {
    /// The FIFO bounded by [`bounded_limit`]: about 25 ms of rate.
    Bounded,
    /// fq_codel under the TBF: its own limit (in packets) is the queue's;
    /// the TBF's limit is the bounded FIFO's, as if fq_codel gave way.
    FqCodel,
    /// The reference's FIFO: 25 ms of rate plus the whole bucket, so a
    /// bucket of 512 MB (containerd's burst) is a queue of seconds.
    Reference,
}

/// The largest GSO packet as the qdisc counts it (64 KiB of payload and the
/// headers of each of its segments), with room to spare: 72 KiB.
pub const GSO_MAX: u64 = 73_728;

/// The rate of the peak bucket (100 Gbit/s): far above any link a pod is
/// shaped on, so it never holds a burst back in practice; it is there for
/// the size of its bucket.
pub const PEAK_RATE: u64 = 12_500_000_000;

/// Room in the bounded FIFO beyond its full frames, for small packets: a
/// bulk flow fills the FIFO with full frames only, so a ping, a DNS query,
/// a SYN or an ACK still finds room behind them instead of being dropped
/// with the bulk (a FIFO of exactly two frames at 1 Mbit/s lost 9 to 27 %
/// of pings). Less than a frame, so it holds no more bulk.
pub const SMALL_PACKETS: u64 = 512;

/// A bucket above this (1 MiB) must drain through split GSO packets, whose
/// frames reach the FIFO at once: behind two frames TCP loses most of each
/// and a full bucket passed at about 24 Mbit/s (containerd's 34 MB at
/// 1 Mbit/s took over 8 s, so the pod ran unshaped that long); behind
/// [`LARGE_BUCKET_FRAMES`] it drained in 2 s. Smaller buckets drain in
/// well under a second either way.
pub const LARGE_BUCKET: u64 = 1 << 20;

/// The fewest full frames the FIFO holds behind a [`LARGE_BUCKET`] (four
/// still left the pod unshaped for over 8 s in the containerd case).
pub const LARGE_BUCKET_FRAMES: u64 = 8;

/// The bounded FIFO: as many full frames as the rate drains in 25 ms, at
/// least two (one can wait while the other leaves) or, behind a
/// [`LARGE_BUCKET`], [`LARGE_BUCKET_FRAMES`], and [`SMALL_PACKETS`].
pub fn bounded_limit(rate: u64, burst: u64, frame: u32) -> u64 {
    let frame = u64::from(frame).max(1);
    let drain = rate.saturating_mul(LATENCY_US) / 1_000_000;
    let least = if burst > LARGE_BUCKET {
        LARGE_BUCKET_FRAMES
    } else {
        2
    };
    (drain / frame).max(least).saturating_mul(frame) + SMALL_PACKETS
}

/// The shapes our earlier releases installed, which CHECK accepts on pods
/// made by them and ADD converges: the FIFO holding a whole GSO packet
/// without a peak bucket, and 25 ms of rate (at least two frames, no room
/// for small packets) with one.
pub fn earlier_bounded(rate: u64, burst: u64, frame: u32) -> [(u64, Option<Peak>); 2] {
    let fifo = (rate.saturating_mul(LATENCY_US) / 1_000_000).max(2 * u64::from(frame));
    [
        (fifo.max(burst.min(GSO_MAX)), None),
        (fifo, split_peak(fifo, rate, burst, frame)),
    ]
}

/// The peak bucket that bounds the packets a TBF lets through to one frame,
/// when its bucket `burst` would let GSO packets larger than the bounded
/// FIFO through whole. The TBF segments a GSO packet only when it is larger
/// than its largest packet, which follows the bucket: with a bucket of
/// 64 KiB, whole 64 KiB packets reach a FIFO of 25 ms of rate (31250 bytes
/// at 10 Mbit/s), which drops every one of them (TCP then crawls at a few
/// kbit/s), and the TBF waits for the tokens of a whole one before it sends
/// anything (52 ms at 10 Mbit/s, whatever queue is behind it). A peak bucket
/// of one frame at [`PEAK_RATE`] makes the TBF's largest packet one frame:
/// it segments GSO packets itself. While the bucket has tokens a split
/// packet's frames reach the FIFO at once and those beyond it are dropped:
/// TCP recovers within microseconds on a veth, so a burst still passes at
/// tens of times the rate (77 Mbit/s to 0.9 Gbit/s at 1 Mbit/s), not at
/// line rate.
pub fn peak(rate: u64, burst: u64, frame: u32) -> Option<Peak> {
    split_peak(bounded_limit(rate, burst, frame), rate, burst, frame)
}

fn split_peak(fifo: u64, rate: u64, burst: u64, frame: u32) -> Option<Peak> {
    (burst.min(GSO_MAX) > fifo && rate < PEAK_RATE).then(|| Peak {
        rate: PEAK_RATE,
        mtu: kernel_buffer_ticks(PEAK_RATE, frame),
        burst: Some(frame),
    })
}

/// The TBF's limit and peak bucket for our bounded queues (fq_codel's and
/// the FIFO's alike): the bounded FIFO, with the TBF splitting GSO packets
/// where its bucket would pass larger ones whole.
pub fn bounded(rate: u64, burst: u64, frame: u32) -> (u64, Option<Peak>) {
    (bounded_limit(rate, burst, frame), peak(rate, burst, frame))
}

/// Why the installed bucket differs from the configured one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Adjusted {
    /// Raised to hold one full frame.
    ToFrame { frame: u32 },
    /// Capped at the largest bucket the kernel's TBF can express.
    ToKernelMax,
    /// Capped by the operator's `maxBurstMs`.
    ToMaxBurst { ms: u64 },
    /// The reference's bucket, with only the queue limit (25 ms of rate
    /// plus the bucket: `limit` bytes) saturated at the kernel's u32.
    LimitSaturated { limit: u64 },
    /// Given in bytes (TCA_TBF_BURST): at this rate a bucket given as time
    /// passes no packet larger than `max_packet` bytes, less than a frame.
    InBytes { frame: u32, max_packet: u64 },
}

/// The TBF to install for one direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bucket {
    pub tbf: Tbf,
    /// What the bucket holds, in bytes.
    pub burst: u64,
    /// Set when `tbf` is not what the reference computes.
    pub adjusted: Option<Adjusted>,
}

/// The reference's buffer: the burst's time at the rate, truncated to whole
/// microseconds, then to whole ticks. Unwrapped, where the reference wraps.
pub fn reference_ticks(rate: u64, burst: u64, psched: Psched) -> u64 {
    if rate == 0 {
        return u64::MAX;
    }
    let us = (burst as f64 * USEC_PER_SEC / rate as f64).trunc();
    f64_to_u64(us * psched.ticks_per_us)
}

/// Go's conversion of a float into a u32 on amd64: through an i64, then
/// its low 32 bits.
#[allow(clippy::cast_possible_truncation)]
fn go_u32(v: f64) -> u32 {
    f64_to_i64(v) as u32
}

#[allow(clippy::cast_possible_truncation)]
fn f64_to_i64(v: f64) -> i64 {
    v as i64
}

/// The TBF the reference installs for `l`, number for number, wrapped
/// where it wraps (containerd's burst: buffer and limit past 2^32). CHECK
/// accepts it on pods the reference made before an in-place upgrade.
pub fn reference_tbf(l: Limit, psched: Psched) -> Tbf {
    let rate = l.rate_bytes();
    // Validated below 2^32 - 1 bytes: the reference's own cast keeps it.
    let burst = saturate_u32(l.burst_bytes());
    let us = go_u32(f64::from(burst) * USEC_PER_SEC / rate as f64);
    let drain = go_u32(rate as f64 * LATENCY_US as f64 / USEC_PER_SEC);
    Tbf {
        rate,
        buffer: go_u32(f64::from(us) * psched.ticks_per_us),
        limit: drain.wrapping_add(burst),
        burst: None,
        peak: None,
    }
}

/// The bytes a buffer of `ticks` holds at `rate`: the bucket's size. The
/// largest packet it passes is `max_packet`, which is less from 4.29 s on.
pub fn bytes_of(rate: u64, ticks: u64, psched: Psched) -> u64 {
    f64_to_u64((ticks as f64 / psched.ticks_per_us * rate as f64 / USEC_PER_SEC).floor())
}

/// The kernel's scheduler tick, fixed since Linux 2.6.31: 64 ns
/// (`PSCHED_SHIFT`; /proc/net/psched says the same).
const PSCHED_SHIFT: u32 = 6;
const NSEC_PER_SEC: u64 = 1_000_000_000;

/// The kernel's fixed-point rate (`psched_ratecfg_precompute`): the time of
/// `len` bytes is `(len * mult) >> shift` ns, mult as large as fits 32 bits.
#[derive(Debug, Clone, Copy)]
struct Ratecfg {
    rate: u64,
    mult: u32,
    shift: u32,
}

impl Ratecfg {
    fn new(rate: u64) -> Ratecfg {
        let mut r = Ratecfg {
            rate,
            mult: 1,
            shift: 0,
        };
        let mut factor = NSEC_PER_SEC;
        // No rate, no loop (the kernel's mult stays 1).
        while let Some(mult) = factor.checked_div(rate) {
            r.mult = wrap_u32(mult);
            if r.mult & (1 << 31) != 0 || factor & (1 << 63) != 0 {
                break;
            }
            factor <<= 1;
            r.shift += 1;
        }
        r
    }

    /// `psched_l2t_ns`: the time `len` bytes take.
    fn l2t_ns(&self, len: u32) -> u64 {
        (u64::from(len) * u64::from(self.mult)) >> self.shift
    }

    /// `psched_ns_t2l`: the bytes `ns` hold (u64 arithmetic, as the kernel's).
    fn t2l(&self, ns: u64) -> u64 {
        ns.wrapping_mul(self.rate) / NSEC_PER_SEC
    }
}

/// The kernel's cast of a u64 into a u32 field: the low 32 bits.
#[allow(clippy::cast_possible_truncation)]
fn wrap_u32(v: u64) -> u32 {
    v as u32
}

/// The largest packet a TBF given as time (`buffer` ticks, no
/// TCA_TBF_BURST) passes at `rate`: sch_tbf.c counts the buffer at most
/// 2^32 - 1 ns (4.29 s) for it, though the bucket itself is not capped, and
/// drops every larger packet.
pub fn max_packet(rate: u64, buffer: u32) -> u64 {
    let ns = (u64::from(buffer) << PSCHED_SHIFT).min(u64::from(u32::MAX));
    Ratecfg::new(rate).t2l(ns).min(u64::from(u32::MAX))
}

/// The buffer the kernel dumps for a TBF given as `burst` bytes at `rate`:
/// the bytes' time in its fixed-point rate, in ticks, wrapped into the dump's
/// u32 (beyond 2^32 ticks only the dump wraps, not the bucket). CHECK
/// compares with it: the bytes themselves are never dumped.
pub fn kernel_buffer_ticks(rate: u64, burst: u32) -> u32 {
    wrap_u32(Ratecfg::new(rate).l2t_ns(burst) >> PSCHED_SHIFT)
}

/// The most bytes a bucket given in bytes can hold at `rate` with its
/// buffer still dumped unwrapped (2^32 - 1 ticks).
fn kernel_max_burst(rate: u64) -> u64 {
    let r = Ratecfg::new(rate);
    let ns_limit = 1u128 << (32 + PSCHED_SHIFT + r.shift);
    let most = (ns_limit - 1) / u128::from(r.mult.max(1));
    u64::try_from(most).unwrap_or(u64::MAX).min(u64::from(u32::MAX))
}

/// The fewest ticks that hold `bytes` at `rate`, and a microsecond and a
/// tick to spare: for the kernel's fixed-point rate, and so that tools that
/// read the bucket in whole microseconds (tc) see it hold them too.
fn ticks_for(rate: u64, bytes: u64, psched: Psched) -> u64 {
    let exact = bytes as f64 * USEC_PER_SEC * psched.ticks_per_us / rate as f64;
    f64_to_u64(exact.ceil() + psched.ticks_per_us.ceil()) + 1
}

/// Truncates toward zero, saturating at the ends, as Go's conversion does
/// for values in range.
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
fn f64_to_u64(v: f64) -> u64 {
    v as u64
}

fn saturate_u32(v: u64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

/// The queue limit: what the rate drains in 25 ms, truncated, plus the
/// bucket (saturated at the kernel's u32 where the reference wraps).
fn limit(rate: u64, burst: u64) -> u64 {
    rate.saturating_mul(LATENCY_US) / 1_000_000 + burst
}

/// The bucket to install for `l` on a link whose frames are `frame` bytes
/// (MTU plus Ethernet header). `name` is "ingress" or "egress", for
/// messages. Refused (code 7) only where the reference is refused too: a
/// bucket that holds not one byte (the kernel says "invalid argument").
pub fn bucket(
    name: &str,
    l: Limit,
    frame: u32,
    psched: Psched,
    max_burst_ms: Option<u64>,
) -> CniResult<Bucket> {
    let rate = l.rate_bytes();
    let burst = l.burst_bytes();
    let ref_ticks = reference_ticks(rate, burst, psched);
    let in_range = |ticks: u64| u32::try_from(ticks).ok();
    if in_range(ref_ticks).is_some_and(|t| max_packet(rate, t) == 0) {
        return Err(CniError::invalid_config(format!(
            "invalid {name} limits: {name}Burst of {} bits drains in under a microsecond at {name}Rate {} bit/s, \
             a bucket the kernel's tbf refuses (so does the reference's)",
            l.burst_bits, l.rate_bits
        )));
    }
    let reference = Bucket {
        tbf: Tbf {
            rate,
            buffer: saturate_u32(ref_ticks),
            limit: saturate_u32(limit(rate, burst)),
            burst: None,
            peak: None,
        },
        burst,
        adjusted: None,
    };
    let frame64 = u64::from(frame);
    // A buffer the kernel takes as it is, passing full frames.
    let passes_frame = |ticks: u64| in_range(ticks).filter(|t| max_packet(rate, *t) >= frame64);
    let capped = max_burst_ms
        .map(|ms| (ms, rate.saturating_mul(ms) / 1000))
        .filter(|(_, cap)| burst > *cap);
    if capped.is_none() && passes_frame(ref_ticks).is_some() {
        let queue = limit(rate, burst);
        if queue <= u64::from(u32::MAX) {
            return Ok(reference);
        }
        return Ok(Bucket {
            adjusted: Some(Adjusted::LimitSaturated { limit: queue }),
            ..reference
        });
    }

    // The bucket's bytes as asked, after the operator's cap.
    let mut want = burst;
    let mut adjusted;
    let mut ticks;
    match capped {
        Some((ms, cap)) => {
            adjusted = Adjusted::ToMaxBurst { ms };
            ticks = reference_ticks(rate, cap, psched);
            want = cap;
        }
        None => {
            adjusted = Adjusted::ToKernelMax;
            ticks = ref_ticks;
        }
    }
    if ticks > u64::from(u32::MAX) {
        adjusted = Adjusted::ToKernelMax;
        ticks = u64::from(u32::MAX);
    }
    if bytes_of(rate, ticks, psched) < frame64 {
        adjusted = Adjusted::ToFrame { frame };
        ticks = ticks_for(rate, frame64, psched);
    }
    if let Some(buffer) = passes_frame(ticks) {
        let held = bytes_of(rate, ticks, psched);
        return Ok(Bucket {
            tbf: Tbf {
                rate,
                buffer,
                limit: saturate_u32(limit(rate, held)),
                burst: None,
                peak: None,
            },
            burst: held,
            adjusted: Some(adjusted),
        });
    }
    // No bucket given as time passes a frame at this rate: given in bytes,
    // what was asked within what the kernel dumps unwrapped, and at least a
    // frame (below 5.5 B/s a frame's time is more than 2^32 ticks: then
    // only the dumped buffer wraps).
    let bytes = saturate_u32(want.min(kernel_max_burst(rate)).max(frame64));
    Ok(Bucket {
        tbf: Tbf {
            rate,
            buffer: kernel_buffer_ticks(rate, bytes),
            limit: saturate_u32(limit(rate, u64::from(bytes))),
            burst: Some(bytes),
            peak: None,
        },
        burst: u64::from(bytes),
        adjusted: Some(Adjusted::InBytes {
            frame,
            max_packet: max_packet(rate, u32::MAX),
        }),
    })
}

impl Bucket {
    /// The bucket with the queue of `discipline` behind it, on a link whose
    /// frames are `frame` bytes.
    pub fn queued(self, discipline: Discipline, frame: u32) -> Bucket {
        match discipline {
            Discipline::Reference => self,
            Discipline::Bounded | Discipline::FqCodel => {
                let (limit, peak) = bounded(self.tbf.rate, self.burst, frame);
                Bucket {
                    tbf: Tbf {
                        limit: saturate_u32(limit),
                        peak,
                        ..self.tbf
                    },
                    // The reference's limit, saturated, is not installed.
                    adjusted: self
                        .adjusted
                        .filter(|a| !matches!(a, Adjusted::LimitSaturated { .. })),
                    ..self
                }
            }
        }
    }

    /// The warning (or, for the operator's own cap, the note) the log gets
    /// when the bucket is not the configured one.
    pub fn explain(&self, name: &str, dev: &str, l: Limit) -> Option<(log::Level, String)> {
        let asked = format!(
            "{name}Burst of {} bits ({} bytes) at {name}Rate {} bit/s",
            l.burst_bits,
            l.burst_bytes(),
            l.rate_bits
        );
        let held = self.burst;
        Some(match self.adjusted? {
            Adjusted::ToFrame { frame } => (
                log::Level::Warn,
                format!(
                    "{asked} cannot hold one full frame of {frame} bytes on {dev}: every full-size \
                     packet would be dropped; the bucket on {dev} holds {held} bytes instead"
                ),
            ),
            Adjusted::ToKernelMax => (
                log::Level::Warn,
                format!(
                    "{asked} is more than the kernel's tbf can hold (2^32 scheduler ticks): the \
                     bucket on {dev} holds {held} bytes, the most it can, instead of wrapping around"
                ),
            ),
            Adjusted::LimitSaturated { limit } => (
                log::Level::Warn,
                format!(
                    "{asked}: the queue limit on {dev} (25 ms of rate plus the bucket, {limit} bytes) is \
                     saturated at 2^32-1 bytes (the reference wraps it); the bucket is the reference's, \
                     {held} bytes"
                ),
            ),
            Adjusted::InBytes { frame, max_packet } => (
                log::Level::Warn,
                format!(
                    "{asked}: at this rate the kernel's tbf passes no packet larger than {max_packet} bytes \
                     through a bucket given as time, as the reference gives it (it counts at most 4.29 s \
                     of the bucket: rate x 4.29 s), so every full-size frame of {frame} bytes on {dev} \
                     would be dropped; the bucket on {dev} is given in bytes instead (as tc does) and \
                     holds {held} bytes"
                ),
            ),
            Adjusted::ToMaxBurst { ms } => (
                log::Level::Info,
                format!("{asked} is capped by maxBurstMs {ms}: the bucket on {dev} holds {held} bytes"),
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cni_core::Code;

    fn limit_(rate_bits: u64, burst_bits: u64) -> Limit {
        Limit {
            rate_bits,
            burst_bits,
        }
    }

    const P: Psched = Psched { ticks_per_us: 15.625 };
    const FRAME: u32 = 1514;

    fn b(rate_bits: u64, burst_bits: u64) -> Bucket {
        bucket("ingress", limit_(rate_bits, burst_bits), FRAME, P, None).unwrap()
    }

    /// tc's reading of a buffer (whole microseconds, then bytes).
    fn tc_burst(rate: u64, ticks: u32) -> u64 {
        let us = (f64::from(ticks) / P.ticks_per_us).trunc();
        f64_to_u64(rate as f64 * us / USEC_PER_SEC)
    }

    #[test]
    fn valid_buckets_are_the_references_number_for_number() {
        // Values the reference produced on this kernel (tc -j qdisc show):
        // rate, burst, limit.
        for (rate_bits, burst_bits, shown) in [
            (10_000_000, 1_000_000, 125_000),
            (100_000_000, 12_000_000, 1_500_000),
            (40_000_000_000, 64_000_000, 8_000_000),
            (999_999_937, 777_777, 96_999),
        ] {
            let got = b(rate_bits, burst_bits);
            assert_eq!(got.adjusted, None, "{rate_bits} {burst_bits}");
            let rate = rate_bits / 8;
            let burst = burst_bits / 8;
            assert_eq!(got.tbf.rate, rate);
            assert_eq!(u64::from(got.tbf.buffer), reference_ticks(rate, burst, P));
            assert_eq!(u64::from(got.tbf.limit), rate * 25_000 / 1_000_000 + burst);
            assert_eq!(tc_burst(rate, got.tbf.buffer), shown);
        }
        // 100 Mbit/s: 12.5 MB/s, 25 ms of it is 312500 B.
        let got = b(100_000_000, 12_000_000);
        assert_eq!((got.tbf.rate, got.tbf.limit), (12_500_000, 312_500 + 1_500_000));
        assert_eq!(got.tbf.buffer, 1_875_000);
    }

    #[test]
    fn a_bucket_below_one_frame_is_raised_to_hold_one() {
        // 200 bits at MTU 512 and 1 Mbit/s: 25 bytes, raised, given as time.
        let frame = 512 + ETH_HLEN;
        let got = bucket("ingress", limit_(1_000_000, 200), frame, P, None).unwrap();
        assert_eq!(got.adjusted, Some(Adjusted::ToFrame { frame }));
        assert_eq!(got.tbf.burst, None);
        assert!(got.burst >= u64::from(frame), "{got:?}");
        assert!(got.burst < u64::from(frame) + 2 * 125, "{got:?}");
        assert!(max_packet(125_000, got.tbf.buffer) >= u64::from(frame), "{got:?}");
        // tc reads it back in whole microseconds: still a frame.
        assert!(tc_burst(125_000, got.tbf.buffer) >= u64::from(frame), "{got:?}");
        assert_eq!(u64::from(got.tbf.limit), 3_125 + got.burst);
        // One byte short of a frame, and a frame that truncation to whole
        // microseconds leaves a little short: both raised.
        for burst_bytes in [1513, 1514] {
            let got = b(1_000_000_000, burst_bytes * 8);
            assert!(got.burst >= 1514, "{burst_bytes}: {got:?}");
            assert_eq!(got.adjusted, Some(Adjusted::ToFrame { frame: FRAME }));
        }
        // 1600 bytes at 125 MB/s: 12.8 us, truncated to 12, hold 1496 bytes.
        assert_eq!(
            b(1_000_000_000, 1600 * 8).adjusted,
            Some(Adjusted::ToFrame { frame: FRAME })
        );
        // A bucket that holds the frame already is left alone.
        assert_eq!(b(1_000_000_000, 2000 * 8).adjusted, None);
    }

    /// The largest packet of a bucket given as time, as this kernel (6.18)
    /// logged it ("sch_tbf: burst N is lower than device ... mtu") when the
    /// reference (`/usr/lib/cni/bandwidth`, which sends the buffer alone)
    /// installed these buckets in a throwaway namespace: rate B/s, buffer
    /// ticks as dumped, largest packet.
    #[test]
    fn the_largest_packet_of_a_bucket_given_as_time_is_the_kernels() {
        for (rate, buffer, largest) in [
            // The seed example (123 bit/s, 456 bits): 3.8 s, under the cap.
            (15, 59_375_000, 57),
            // Upstream's 800 bit/s with 200 bits.
            (100, 3_906_250, 25),
            // 800 bit/s with 80000 bits: 100 s of bucket, 4.29 s counted.
            (100, 1_562_500_000, 429),
            (125_000, 12_500, 100),
            // The seed example raised to a frame by time (35 s): 4.29 s.
            (15, 547_916_684, 64),
        ] {
            assert_eq!(max_packet(rate, buffer), largest, "{rate} B/s {buffer} ticks");
        }
        // The kernel's own largest: 4294967295 ns of rate.
        assert_eq!(max_packet(1_000_000, u32::MAX), 4_294_967);
    }

    /// Measured on this kernel (6.18): `tc qdisc add dev D root tbf rate
    /// R*8bit burst B limit B` (tc sends the burst in bytes, TCA_TBF_BURST)
    /// in a throwaway namespace, then the buffer of the qdisc's netlink dump
    /// (TCA_TBF_PARMS, read with a raw RTM_GETQDISC): rate B/s, bytes,
    /// buffer ticks. The last four wrap past 2^32 ticks in the dump.
    #[test]
    fn the_buffer_of_a_bucket_in_bytes_is_the_kernels_to_the_tick() {
        for (rate, burst, dumped) in [
            (15, 526, 547_916_666),
            (100, 526, 82_187_500),
            (100, 527, 82_343_750),
            (100, 1514, 236_562_500),
            (100, 10_000, 1_562_500_000),
            (125, 526, 65_750_000),
            (352, 1514, 67_205_255),
            (999, 100_000, 1_564_064_064),
            (3, 1514, 3_590_449_368),
            (6, 1514, 3_942_708_332),
            (7, 65_549, 285_844_033),
            (1, 1514, 2_181_413_520),
            (5, 1514, 436_282_704),
            (1, u32::MAX, 4_279_342_296),
        ] {
            assert_eq!(kernel_buffer_ticks(rate, burst), dumped, "{rate} B/s {burst} B");
        }
    }

    /// Issue 11's cases at low rates: no bucket given as time passes a
    /// frame, so the bucket goes in bytes, and only there.
    #[test]
    fn below_rate_times_4_29_s_a_frame_the_bucket_is_given_in_bytes() {
        let f512 = 512 + ETH_HLEN;
        for (rate_bits, burst_bits, frame, bytes, max) in [
            // The seed document's example: 15 B/s, 57 bytes, MTU 512.
            (123, 456, f512, 526, 64),
            // Upstream's integration test: 100 B/s, 25 bytes, MTU 512.
            (800, 200, f512, 526, 429),
            // The reference's own bucket of 10000 bytes passes 429.
            (800, 80_000, FRAME, 10_000, 429),
            // containerd's burst: capped at 2^32 ticks (274.9 s), as above the line.
            (800, u64::from(u32::MAX), FRAME, 27_487, 429),
            // 1 B/s: a frame takes 1514 s, more than 2^32 ticks.
            (8, 80, FRAME, 1514, 4),
        ] {
            let got = bucket("egress", limit_(rate_bits, burst_bits), frame, P, None).unwrap();
            let rate = rate_bits / 8;
            let want = Adjusted::InBytes {
                frame,
                max_packet: max,
            };
            assert_eq!(got.adjusted, Some(want), "{rate_bits} {burst_bits}");
            assert_eq!(got.tbf.burst, Some(bytes));
            assert_eq!(got.burst, u64::from(bytes));
            assert_eq!(got.tbf.buffer, kernel_buffer_ticks(rate, bytes));
            assert_eq!(
                u64::from(got.tbf.limit),
                rate * 25_000 / 1_000_000 + u64::from(bytes)
            );
        }
        assert_eq!(kernel_max_burst(100), 27_487);
        assert_eq!(kernel_buffer_ticks(100, 27_487), 4_294_843_750);
        assert!(Ratecfg::new(100).l2t_ns(27_488) >> PSCHED_SHIFT > u64::from(u32::MAX));
        // maxBurstMs below a frame: a frame, in bytes.
        let got = bucket("egress", limit_(800, 80_000), FRAME, P, Some(20)).unwrap();
        assert_eq!(got.tbf.burst, Some(1514));
        // Just above the line (353 B/s: 1516 bytes in 4.29 s), as time.
        let got = b(2824, 80);
        assert_eq!(got.adjusted, Some(Adjusted::ToFrame { frame: FRAME }));
        assert_eq!(got.tbf.burst, None);
        assert!(max_packet(353, got.tbf.buffer) >= 1514);
        // And the reference's own bucket where it passes a frame: as time.
        assert_eq!(b(8000, 80_000).adjusted, None);
        assert_eq!(b(8000, 80_000).tbf.burst, None);
    }

    #[test]
    fn a_bucket_beyond_the_kernels_range_is_capped_not_wrapped() {
        // containerd's burst (2^32 - 1 bits) at 10 Mbit/s: 429 s of rate.
        let got = b(10_000_000, u64::from(u32::MAX));
        assert_eq!(got.adjusted, Some(Adjusted::ToKernelMax));
        assert_eq!(got.tbf.buffer, u32::MAX);
        // 2^32 ticks of 64 ns: 274.88 s at 1.25 MB/s.
        assert_eq!(got.burst, 343_597_383);
        assert_eq!(u64::from(got.tbf.limit), 31_250 + 343_597_383);
        // CRI-O's (2^32 - 1) * 8 - 1 bits at 100 Mbit/s.
        let got = b(100_000_000, u64::from(u32::MAX) * 8 - 1);
        assert_eq!(got.tbf.buffer, u32::MAX);
        // Just within range: the reference's own bucket.
        let got = b(20_000_000, 5_000_000_000);
        assert_eq!(got.adjusted, None);
    }

    /// CRI-O's burst, 2^32 - 2 bytes, at 1 Gbit/s: 34.4 s, a buffer within
    /// range; only the queue limit passes 2^32 - 1 bytes.
    #[test]
    fn a_limit_beyond_u32_alone_is_saturated_and_the_bucket_kept() {
        let l = limit_(1_000_000_000, u64::from(u32::MAX) * 8 - 1);
        let got = b(l.rate_bits, l.burst_bits);
        let queue = 3_125_000 + 4_294_967_294;
        assert_eq!(got.adjusted, Some(Adjusted::LimitSaturated { limit: queue }));
        assert_eq!(got.burst, 4_294_967_294);
        assert_eq!(got.tbf.rate, 125_000_000);
        // 34359738 us, in ticks: the reference's buffer.
        assert_eq!(got.tbf.buffer, 536_870_906);
        assert_eq!(
            u64::from(got.tbf.buffer),
            reference_ticks(125_000_000, 4_294_967_294, P)
        );
        assert_eq!((got.tbf.limit, got.tbf.burst), (u32::MAX, None));
        let (level, msg) = got.explain("egress", "bwp0", l).unwrap();
        assert_eq!(level, log::Level::Warn);
        assert!(
            msg.contains("the queue limit on bwp0 (25 ms of rate plus the bucket, 4298092294 bytes) is saturated at 2^32-1 bytes (the reference wraps it)"),
            "{msg}"
        );
        assert!(
            msg.ends_with("the bucket is the reference's, 4294967294 bytes"),
            "{msg}"
        );
        assert!(!msg.contains("more than the kernel's tbf can hold"), "{msg}");
    }

    #[test]
    fn max_burst_ms_caps_the_bucket_but_not_below_a_frame() {
        let got = bucket(
            "egress",
            limit_(20_000_000, u64::from(u32::MAX)),
            FRAME,
            P,
            Some(20),
        )
        .unwrap();
        assert_eq!(got.adjusted, Some(Adjusted::ToMaxBurst { ms: 20 }));
        // 2.5 MB/s for 20 ms: 50 kB.
        assert!(got.burst.abs_diff(50_000) <= 3, "{got:?}");
        // A bucket within the cap stays the reference's.
        let got = bucket("egress", limit_(20_000_000, 80_000), FRAME, P, Some(20)).unwrap();
        assert_eq!(got.adjusted, None);
        // At 1 Mbit/s 1 ms is 125 bytes: the frame wins.
        let got = bucket("egress", limit_(1_000_000, 1_000_000), FRAME, P, Some(1)).unwrap();
        assert_eq!(got.adjusted, Some(Adjusted::ToFrame { frame: FRAME }));
        assert!(got.burst >= 1514);
    }

    #[test]
    fn buckets_the_kernel_refuses_are_code_7_naming_the_values() {
        // 1 Tbit/s with 160000 bits: 0.16 us, no tick; rate 2^64 - 1 too.
        for (rate, burst) in [(1_000_000_000_000, 160_000), (u64::MAX, 160_000)] {
            let e = bucket("ingress", limit_(rate, burst), FRAME, P, None).unwrap_err();
            assert_eq!(e.code, Code::InvalidConfig);
            assert!(
                e.msg.contains(&format!("ingressBurst of {burst} bits")),
                "{}",
                e.msg
            );
            assert!(e.msg.contains(&format!("ingressRate {rate} bit/s")), "{}", e.msg);
        }
        // 100 Gbit/s with a frame's worth: 0.12 us, refused by the reference
        // too, though a raised bucket would fit.
        assert!(bucket("ingress", limit_(100_000_000_000, 1514 * 8), FRAME, P, None).is_err());
    }

    #[test]
    fn explanations_name_device_values_and_outcome() {
        let l = limit_(10_000_000, u64::from(u32::MAX));
        let got = b(l.rate_bits, l.burst_bits);
        let (level, msg) = got.explain("ingress", "veth1", l).unwrap();
        assert_eq!(level, log::Level::Warn);
        assert!(msg.contains("ingressBurst of 4294967295 bits"), "{msg}");
        assert!(msg.contains("holds 343597383 bytes"), "{msg}");
        let l = limit_(123, 456);
        let got = bucket("egress", l, 526, P, None).unwrap();
        let (level, msg) = got.explain("egress", "bwp0", l).unwrap();
        assert_eq!(level, log::Level::Warn);
        for part in [
            "egressBurst of 456 bits (57 bytes) at egressRate 123 bit/s",
            "larger than 64 bytes",
            "rate x 4.29 s",
            "full-size frame of 526 bytes on bwp0",
            "given in bytes instead",
            "holds 526 bytes",
        ] {
            assert!(msg.contains(part), "{part:?} in {msg}");
        }
        assert!(b(10_000_000, 1_000_000).explain("ingress", "veth1", l).is_none());
    }

    /// The bounded FIFO holds the whole frames of 25 ms of rate (at least
    /// two) and 512 bytes for small packets; a peak bucket of one frame
    /// makes the TBF split GSO packets wherever its bucket would pass larger
    /// ones, in front of fq_codel and the FIFO alike.
    #[test]
    fn the_bounded_queue_holds_25_ms_of_frames_room_for_pings_and_splits_gso_packets() {
        use Discipline::{Bounded, FqCodel};
        for (rate_bits, burst_bytes, fifo, split) in [
            // containerd's burst at 10 Mbit/s: 31250 B is 20 frames.
            (10_000_000, 536_870_911, 20 * 1514 + 512, true),
            // At 1 Gbit/s 25 ms is 3125000 B, more than any GSO packet.
            (1_000_000_000, 536_870_911, 2064 * 1514 + 512, false),
            // 100 Mbit/s: 312500 B, whole GSO packets fit.
            (100_000_000, 536_870_911, 206 * 1514 + 512, false),
            // A bucket of 2000 B: two frames hold what it passes.
            (1_000_000, 2000, 3540, false),
            (100_000, 2000, 3540, false),
            // 512 kbit static burst (64000 B) at 1 Mbit/s: two frames and
            // the room for small packets, split.
            (1_000_000, 64_000, 3540, true),
            // One byte short of a third frame in 25 ms: still two.
            (1_453_432, 64_000, 3540, true),
            (1_453_440, 64_000, 3 * 1514 + 512, true),
            // containerd's burst (and any above 1 MiB) at 1 Mbit/s: eight
            // frames, up to the rate that drains eight in 25 ms.
            (1_000_000, 536_870_911, 8 * 1514 + 512, true),
            (1_000_000, LARGE_BUCKET + 1, 8 * 1514 + 512, true),
            (1_000_000, LARGE_BUCKET, 3540, true),
            (3_875_840, 536_870_911, 8 * 1514 + 512, true),
            (4_360_320, 536_870_911, 9 * 1514 + 512, true),
        ] {
            let rate = rate_bits / 8;
            assert_eq!(
                bounded_limit(rate, burst_bytes, FRAME),
                fifo,
                "{rate_bits} {burst_bytes}"
            );
            let least = if burst_bytes > LARGE_BUCKET { 8 } else { 2 };
            assert!(
                bounded_limit(rate, burst_bytes, FRAME) - SMALL_PACKETS
                    <= (rate * 25 / 1000).max(least * 1514)
            );
            let p = peak(rate, burst_bytes, FRAME);
            assert_eq!(p.is_some(), split, "{rate_bits} {burst_bytes}");
            assert_eq!(bounded(rate, burst_bytes, FRAME), (fifo, p));
            if let Some(p) = p {
                assert!(p.rate > rate);
                assert_eq!(p.burst, Some(FRAME));
                // 1514 B at 100 Gbit/s: 121 ns, one tick as the kernel dumps it.
                assert_eq!(p.mtu, kernel_buffer_ticks(PEAK_RATE, FRAME));
                assert_eq!(p.mtu, 1);
            }
        }
        // Our earlier limits: a whole GSO packet without a peak bucket, and
        // 25 ms of rate (no room for small packets) with one where it split.
        let [whole, split] = earlier_bounded(1_250_000, 536_870_911, FRAME);
        assert_eq!(whole, (73_728, None));
        assert_eq!((split.0, split.1.is_some()), (31_250, true));
        assert_eq!(earlier_bounded(125_000, 64_000, FRAME)[0], (64_000, None));
        assert_eq!(
            earlier_bounded(125_000, 2000, FRAME),
            [(3125, None), (3125, None)]
        );
        // Installed: the bucket stays, the limit is bounded, the saturated
        // reference limit is no longer a warning.
        let l = limit_(10_000_000, u64::from(u32::MAX));
        let got = b(l.rate_bits, l.burst_bits).queued(Bounded, FRAME);
        assert_eq!((got.tbf.buffer, got.tbf.limit), (u32::MAX, 30_792));
        assert_eq!(got.tbf.peak, peak(1_250_000, got.burst, FRAME));
        assert!(got.tbf.peak.is_some());
        assert_eq!(got.adjusted, Some(Adjusted::ToKernelMax));
        let l = limit_(1_000_000, u64::from(u32::MAX));
        let fifo = b(l.rate_bits, l.burst_bits).queued(Bounded, FRAME);
        assert_eq!((fifo.tbf.limit, fifo.tbf.peak.is_some()), (8 * 1514 + 512, true));
        let aqm = b(l.rate_bits, l.burst_bits).queued(FqCodel, FRAME);
        assert_eq!(aqm.tbf, fifo.tbf);
        let l = limit_(1_000_000_000, u64::from(u32::MAX) * 8 - 1);
        let got = b(l.rate_bits, l.burst_bits).queued(Bounded, FRAME);
        assert_eq!(
            (got.tbf.limit, got.tbf.peak, got.adjusted),
            (3_125_408, None, None)
        );
        // queue: reference is the reference's TBF, no peak bucket.
        let same = b(10_000_000, u64::from(u32::MAX));
        assert_eq!(same.queued(Discipline::Reference, FRAME), same);
        assert_eq!(same.tbf.peak, None);
    }

    /// The reference's numbers (v1.1.1; the root test `ownership` checks
    /// them against `/usr/lib/cni/bandwidth`): rate B/s, buffer ticks,
    /// limit B. containerd's burst: 429.5 s of bucket at 10 Mbit/s wraps
    /// its ticks; at 1 Mbit/s the microseconds still fit a u32, the ticks not.
    #[test]
    fn the_references_tbf_is_its_numbers_wrapped_where_it_wraps() {
        for (rate_bits, burst_bits, want) in [
            (10_000_000, 1_000_000, (1_250_000, 1_562_500, 156_250)),
            (10_000_000, 4_294_967_295, (1_250_000, 2_415_919_079, 536_902_161)),
            (1_000_000, 4_294_967_295, (125_000, 2_684_354_435, 536_874_036)),
        ] {
            let t = reference_tbf(limit_(rate_bits, burst_bits), P);
            assert_eq!((t.rate, t.buffer, t.limit), want, "{rate_bits} {burst_bits}");
        }
    }
}
