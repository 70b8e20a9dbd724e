//! Hand-made netlink attributes for what netlink-packet-route does not type
//! (TBF options) and for reading nested blobs.

pub(crate) fn align4(n: usize) -> usize {
    (n + 3) & !3
}

pub(crate) fn u16_at(b: &[u8], off: usize) -> u16 {
    b.get(off..off + 2)
        .map_or(0, |s| u16::from_ne_bytes([s[0], s[1]]))
}

pub(crate) fn u32_at(b: &[u8], off: usize) -> u32 {
    b.get(off..off + 4)
        .map_or(0, |s| u32::from_ne_bytes([s[0], s[1], s[2], s[3]]))
}

pub(crate) fn i32_at(b: &[u8], off: usize) -> i32 {
    u32_at(b, off) as i32
}

pub(crate) fn u64_at(b: &[u8], off: usize) -> u64 {
    b.get(off..off + 8).map_or(0, |s| {
        let mut a = [0u8; 8];
        a.copy_from_slice(s);
        u64::from_ne_bytes(a)
    })
}

pub(crate) fn c_string(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

/// Walks `type, value` pairs; the nested flag is masked off the type.
pub(crate) fn attrs(buf: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    let mut off = 0usize;
    std::iter::from_fn(move || {
        if off + 4 > buf.len() {
            return None;
        }
        let len = u16_at(buf, off) as usize;
        let kind = u16_at(buf, off + 2) & 0x3fff;
        if len < 4 || off + len > buf.len() {
            return None;
        }
        let value = &buf[off + 4..off + len];
        off += align4(len);
        Some((kind, value))
    })
}

/// Appends one attribute.
pub(crate) fn put(out: &mut Vec<u8>, kind: u16, value: &[u8]) {
    let len = 4 + value.len();
    // Our attributes are tens of bytes; an oversized one would be refused by the kernel.
    out.extend_from_slice(&u16::try_from(len).unwrap_or(u16::MAX).to_ne_bytes());
    out.extend_from_slice(&kind.to_ne_bytes());
    out.extend_from_slice(value);
    out.resize(align4(out.len()), 0);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_and_walk() {
        let mut b = Vec::new();
        put(&mut b, 1, b"abc");
        put(&mut b, 0x8002, &7u32.to_ne_bytes());
        assert_eq!(b.len(), 16);
        let v: Vec<_> = attrs(&b).collect();
        assert_eq!(v, vec![(1, &b"abc"[..]), (2, &7u32.to_ne_bytes()[..])]);
        assert_eq!(u32_at(v[1].1, 0), 7);
        assert_eq!(c_string(b"ab\0c"), "ab");
    }
}
