//! Stable finding ids: the same subject and rule always give the same id, on every machine.

/// 64-bit FNV-1a: tiny, stable across platforms and releases, good enough for ids.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    fnv_extend(0xcbf2_9ce4_8422_2325, bytes)
}

fn fnv_extend(mut h: u64, bytes: &[u8]) -> u64 {
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// FNV-1a over the parts, separated so `("ab","c")` differs from `("a","bc")`; 12 hex digits.
pub fn stable_id(parts: &[&str]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for p in parts {
        h = fnv_extend(h, p.as_bytes());
        h = fnv_extend(h, &[0x1f]);
    }
    // 48 bits: short enough to type, and collisions need ~16M findings to become likely.
    format!("{:012x}", h >> 16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_stable_and_separated() {
        assert_eq!(
            stable_id(&["drift", "role_assignment", "k"]),
            stable_id(&["drift", "role_assignment", "k"])
        );
        assert_ne!(stable_id(&["ab", "c"]), stable_id(&["a", "bc"]));
        assert_eq!(stable_id(&["x"]).len(), 12);
        // Pinned: ids are persisted and typed by people; changing the function orphans them.
        assert_eq!(
            stable_id(&["drift", "role_assignment", "k"]),
            "8e0d78f0b306"
        );
    }
}
