//! The token bucket, in one place: how the reference turns rate and burst
//! into the kernel's TBF, and the bucket this plugin installs.
//!
//! Where the reference's bucket works, ours is the same qdisc, number for
//! number. Where it cannot work, ours is the nearest one that does, and the
//! log says so (warning): a bucket that cannot hold one full frame is raised
//! to hold one (else every full-size packet is dropped), and one beyond the
//! 2^32 scheduler ticks the kernel's TBF can express is capped there (the
//! reference wraps it around to an arbitrary size). An operator's
//! `maxBurstMs` caps the bucket at that much time at the rate.

use cni_core::{CniError, CniResult};
pub use nl_ops::qdisc::Psched;
use nl_ops::qdisc::Tbf;

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

/// Why the installed bucket differs from the configured one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Adjusted {
    /// Raised to hold one full frame.
    ToFrame { frame: u32 },
    /// Capped at the largest bucket the kernel's TBF can express.
    ToKernelMax,
    /// Capped by the operator's `maxBurstMs`.
    ToMaxBurst { ms: u64 },
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

/// The bytes a buffer of `ticks` holds at `rate`, as the kernel's TBF
/// counts them (its largest packet).
pub fn bytes_of(rate: u64, ticks: u64, psched: Psched) -> u64 {
    f64_to_u64((ticks as f64 / psched.ticks_per_us * rate as f64 / USEC_PER_SEC).floor())
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
    if ref_ticks <= u64::from(u32::MAX) && bytes_of(rate, ref_ticks, psched) == 0 {
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
        },
        burst,
        adjusted: None,
    };
    let frame64 = u64::from(frame);
    let holds_frame = |ticks: u64| bytes_of(rate, ticks, psched) >= frame64;
    let fits = ref_ticks <= u64::from(u32::MAX) && limit(rate, burst) <= u64::from(u32::MAX);
    let capped = max_burst_ms.map(|ms| (ms, rate.saturating_mul(ms) / 1000));
    if fits && holds_frame(ref_ticks) && capped.is_none_or(|(_, cap)| burst <= cap) {
        return Ok(reference);
    }

    let mut adjusted;
    let mut ticks;
    match capped {
        Some((ms, cap)) if burst > cap => {
            adjusted = Adjusted::ToMaxBurst { ms };
            ticks = reference_ticks(rate, cap, psched);
        }
        _ => {
            adjusted = Adjusted::ToKernelMax;
            ticks = ref_ticks;
        }
    }
    if !holds_frame(ticks) {
        adjusted = Adjusted::ToFrame { frame };
        ticks = ticks_for(rate, frame64, psched);
    }
    if ticks > u64::from(u32::MAX) {
        adjusted = Adjusted::ToKernelMax;
        ticks = u64::from(u32::MAX);
    }
    let held = bytes_of(rate, ticks, psched);
    Ok(Bucket {
        tbf: Tbf {
            rate,
            buffer: saturate_u32(ticks),
            limit: saturate_u32(limit(rate, held)),
            burst: None,
        },
        burst: held,
        adjusted: Some(adjusted),
    })
}

impl Bucket {
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
        // The seed document's example at MTU 512: 15 B/s with 57 bytes.
        let frame = 512 + ETH_HLEN;
        let got = bucket("egress", limit_(123, 456), frame, P, None).unwrap();
        assert_eq!(got.adjusted, Some(Adjusted::ToFrame { frame }));
        assert!(got.burst >= u64::from(frame), "{got:?}");
        assert!(got.burst < u64::from(frame) + 2, "{got:?}");
        // tc reads it back in whole microseconds: still a frame.
        assert!(tc_burst(15, got.tbf.buffer) >= u64::from(frame), "{got:?}");
        assert_eq!(got.tbf.rate, 15);
        assert_eq!(u64::from(got.tbf.limit), got.burst);
        // Upstream's integration test: 200 bits at MTU 512, 1 Mbit/s.
        let got = bucket("ingress", limit_(1_000_000, 200), frame, P, None).unwrap();
        assert!(bytes_of(125_000, u64::from(got.tbf.buffer), P) >= u64::from(frame));
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
        assert!(b(10_000_000, 1_000_000).explain("ingress", "veth1", l).is_none());
    }
}
