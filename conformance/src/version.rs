//! CNI version numbers as the runtime side compares them.

use std::cmp::Ordering;

/// Every version this runtime speaks, oldest first.
pub const SUPPORTED: &[&str] = &["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

/// `major.minor.patch` as numbers; `None` for anything else.
pub fn parse(v: &str) -> Option<(u64, u64, u64)> {
    let mut it = v.split('.').map(|p| p.parse::<u64>().ok());
    let out = (it.next()??, it.next()??, it.next()??);
    if it.next().is_some() {
        return None;
    }
    Some(out)
}

/// Orders two versions; unparsable ones sort first.
pub fn cmp(a: &str, b: &str) -> Ordering {
    parse(a).cmp(&parse(b))
}

/// `a >= b`, false when `a` is not a version.
pub fn at_least(a: &str, b: &str) -> bool {
    parse(a).is_some() && cmp(a, b) != Ordering::Less
}

/// The highest of `offered` that this runtime supports (libcni's choice for
/// a 1.1 `cniVersions` list).
pub fn highest_supported<'a>(offered: impl IntoIterator<Item = &'a str>) -> Option<String> {
    offered
        .into_iter()
        .filter(|v| SUPPORTED.contains(v))
        .max_by(|a, b| cmp(a, b))
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compares_numerically() {
        assert!(at_least("1.0.0", "0.4.0"));
        assert!(at_least("0.10.0", "0.4.0"));
        assert!(!at_least("0.3.1", "0.4.0"));
        assert!(!at_least("garbage", "0.1.0"));
        assert_eq!(parse("1.1"), None);
    }

    #[test]
    fn picks_highest_known() {
        assert_eq!(
            highest_supported(["0.4.0", "1.1.0", "1.0.0"]),
            Some("1.1.0".into())
        );
        assert_eq!(highest_supported(["9.0.0", "0.3.1"]), Some("0.3.1".into()));
        assert_eq!(highest_supported(["9.0.0"]), None);
    }
}
