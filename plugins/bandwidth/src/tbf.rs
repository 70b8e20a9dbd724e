//! Token bucket maths, computed exactly as the reference plugin computes it so
//! that `tc qdisc show` reads the same for the same config.

pub use nl_ops::qdisc::Psched;
use nl_ops::qdisc::Tbf;

/// The reference's fixed queueing latency: the queue holds what the rate
/// drains in this time, on top of the bucket.
pub const LATENCY_US: u64 = 25_000;

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

    /// The qdisc values: rate/8 B/s, burst/8 B, limit = what 25 ms drain plus
    /// the bucket, saturated at the kernel's u32 where the reference wraps.
    pub fn tbf(&self) -> Tbf {
        let rate = self.rate_bytes();
        let burst = self.burst_bytes();
        // rate x 25 ms, truncated: the reference's float maths is exact here.
        let queued = rate.saturating_mul(LATENCY_US) / 1_000_000;
        Tbf {
            rate,
            burst: clamp_u32(burst),
            limit: clamp_u32(queued.saturating_add(burst)),
        }
    }

    /// The bucket in scheduler ticks as the reference computes it (whole
    /// microseconds first, then ticks); unclamped so callers see overflow.
    pub fn buffer_ticks(&self, psched: Psched) -> u64 {
        buffer_ticks(self.rate_bytes(), self.burst_bytes(), psched)
    }
}

fn clamp_u32(v: u64) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

/// Bucket bytes at `rate` B/s as scheduler ticks: truncated to whole
/// microseconds, then to whole ticks, like the reference.
pub fn buffer_ticks(rate: u64, burst: u64, psched: Psched) -> u64 {
    if rate == 0 {
        return u64::MAX;
    }
    let us = (burst as f64 * USEC_PER_SEC / rate as f64).trunc();
    f64_to_u64(us * psched.ticks_per_us)
}

/// Truncates toward zero, saturating at the ends, as Go's conversion does
/// for values in range.
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
fn f64_to_u64(v: f64) -> u64 {
    v as u64
}

/// The bucket bytes a buffer of `ticks` holds at `rate`, as `tc` prints it.
#[cfg(test)]
pub fn burst_of_ticks(rate: u64, ticks: u64, psched: Psched) -> u64 {
    // tc converts to whole microseconds first.
    let us = (ticks as f64 / psched.ticks_per_us).trunc();
    f64_to_u64(rate as f64 * us / USEC_PER_SEC)
}

/// How far a decoded bucket may sit from the configured one: encoding
/// truncates to whole microseconds and ticks, decoding (as tc does) to whole
/// microseconds again, each losing up to a microsecond of rate.
pub fn burst_tolerance(rate: u64) -> u64 {
    2 * rate / 1_000_000 + 2
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(rate_bits: u64, burst_bits: u64) -> Limit {
        Limit {
            rate_bits,
            burst_bits,
        }
    }

    #[test]
    fn reference_numbers_rate_8000_burst_80() {
        let t = limit(8000, 80).tbf();
        assert_eq!(
            t,
            Tbf {
                rate: 1000,
                burst: 10,
                limit: 35
            }
        );
    }

    #[test]
    fn limit_is_25ms_of_rate_plus_burst() {
        // 100 Mbit/s: 12.5 MB/s, 25 ms of it is 312500 B.
        let t = limit(100_000_000, 12_000_000).tbf();
        assert_eq!(
            t,
            Tbf {
                rate: 12_500_000,
                burst: 1_500_000,
                limit: 312_500 + 1_500_000
            }
        );
        // The reference's tiny example: 15 B/s drains 0 whole bytes in 25 ms.
        assert_eq!(
            limit(123, 456).tbf(),
            Tbf {
                rate: 15,
                burst: 57,
                limit: 57
            }
        );
    }

    #[test]
    fn rates_above_u32_bytes_stay_exact() {
        let t = limit(40_000_000_000, 64_000_000).tbf();
        assert_eq!(t.rate, 5_000_000_000);
        assert_eq!(t.limit, 125_000_000 + 8_000_000);
    }

    #[test]
    fn limit_saturates_instead_of_wrapping() {
        let t = limit(8 * 1_000_000_000_000, 8 * 4_000_000_000).tbf();
        assert_eq!(t.limit, u32::MAX);
        let t = limit(u64::MAX, 8000).tbf();
        assert_eq!((t.rate, t.burst, t.limit), (u64::MAX / 8, 1000, u32::MAX));
    }

    #[test]
    fn buffer_ticks_match_reference_dumps() {
        let p = Psched::default();
        // Values the reference produced on this kernel (tc -j qdisc show).
        let cases = [
            (8000, 80, 10),
            (10_000_000, 1_000_000, 125_000),
            (100_000_000, 12_000_000, 1_500_000),
            (40_000_000_000, 64_000_000, 8_000_000),
            (999_999_937, 777_777, 96_999),
            (123, 456, 57),
        ];
        for (rate_bits, burst_bits, shown) in cases {
            let l = limit(rate_bits, burst_bits);
            let ticks = l.buffer_ticks(p);
            assert_eq!(
                burst_of_ticks(l.rate_bytes(), ticks, p),
                shown,
                "{rate_bits} {burst_bits}"
            );
        }
    }

    #[test]
    fn buffer_ticks_overflow_is_visible() {
        // 1 Mbit/s with an 800 Mbit bucket: 800 s, beyond the u32 tick range
        // (the reference wraps this to a 31 MB bucket).
        let ticks = limit(1_000_000, 800_000_000).buffer_ticks(Psched::default());
        assert!(ticks > u64::from(u32::MAX));
    }
}
