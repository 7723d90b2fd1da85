//! Key-range helpers shared by the backends: the end of a prefix range, as etcd computes it.

/// The smallest key greater than every key starting with `prefix`, or `None` when no such key
/// exists (empty prefix, or a prefix of only `0xff` bytes): the range is then unbounded above.
///
/// This is etcd's `GetPrefixRangeEnd`: drop trailing `0xff` bytes and increment the last one.
#[cfg_attr(not(any(feature = "sqlite", feature = "etcd")), allow(dead_code))]
pub(crate) fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// The smallest key strictly greater than `key` (`key` followed by a NUL byte).
#[cfg(feature = "etcd")]
pub(crate) fn key_after(key: &[u8]) -> Vec<u8> {
    let mut next = Vec::with_capacity(key.len() + 1);
    next.extend_from_slice(key);
    next.push(0);
    next
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_end_increments_the_last_byte() {
        assert_eq!(prefix_end(b"/a/"), Some(b"/a0".to_vec()));
        assert_eq!(prefix_end(b"/registry/pods"), Some(b"/registry/podt".to_vec()));
    }

    #[test]
    fn prefix_end_drops_trailing_ff_bytes() {
        assert_eq!(prefix_end(&[b'a', 0xff, 0xff]), Some(b"b".to_vec()));
        assert_eq!(prefix_end(&[0xff]), None);
        assert_eq!(prefix_end(b""), None);
    }

    #[test]
    fn prefix_end_bounds_the_prefix_and_nothing_else() {
        let end = prefix_end(b"/a/").unwrap_or_default();
        assert!(b"/a/zzz".as_slice() < end.as_slice());
        assert!(b"/ab/".as_slice() > end.as_slice());
    }
}
