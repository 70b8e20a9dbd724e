//! The one verdict on shaped traffic, for every test, the suite and the bench.

/// Goodput / configured rate of a flow shaped correctly: an exact TBF reads
/// about 0.96 at MTU 1500 (Ethernet, IP and TCP headers), iperf3 up to 1.10
/// at low rates.
pub const SHAPED: std::ops::RangeInclusive<f64> = 0.80..=1.10;
