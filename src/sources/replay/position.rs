//! Where a replay file was read up to: a byte offset on a record boundary, the hash of every
//! byte before it, and the record numbering there. Stored as a checkpoint, it lets the next
//! replay continue an appended file exactly where the last one stopped, and tells a file that
//! was rewritten or truncated (the bytes before the offset changed) from one that only grew.

use std::fmt;

/// A streaming 128-bit hash of a file from its first byte: four independent multiply-rotate
/// lanes over little-endian 8-byte words (32 bytes a round, so it runs far faster than the
/// parse it sits beside, with no new crate), independent of how the input was split into
/// chunks. Not cryptographic: it detects accidental rewrites, and whoever can rewrite the
/// file can feed any record anyway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrefixHash {
    lanes: [u64; 4],
    len: u64,
    tail: [u8; BLOCK],
    tail_len: usize,
}

const BLOCK: usize = 32;
const K: [u64; 4] = [
    0x9E37_79B9_7F4A_7C15,
    0xC2B2_AE3D_27D4_EB4F,
    0x1656_67B1_9E37_79F9,
    0x85EB_CA77_C2B2_AE63,
];

impl Default for PrefixHash {
    fn default() -> Self {
        PrefixHash {
            lanes: [
                0x243F_6A88_85A3_08D3,
                0x1319_8A2E_0370_7344,
                0xA409_3822_299F_31D0,
                0x082E_FA98_EC4E_6C89,
            ],
            len: 0,
            tail: [0; BLOCK],
            tail_len: 0,
        }
    }
}

impl PrefixHash {
    /// Bytes hashed so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// True before any byte was hashed.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    #[inline]
    fn block(&mut self, b: &[u8; BLOCK]) {
        for (i, lane) in self.lanes.iter_mut().enumerate() {
            let w = u64::from_le_bytes(b[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
            *lane = (*lane ^ w).wrapping_mul(K[i]).rotate_left(29);
        }
    }

    /// Hashes the next bytes of the file.
    pub fn update(&mut self, mut bytes: &[u8]) {
        self.len += bytes.len() as u64;
        if self.tail_len > 0 {
            let n = (BLOCK - self.tail_len).min(bytes.len());
            self.tail[self.tail_len..self.tail_len + n].copy_from_slice(&bytes[..n]);
            self.tail_len += n;
            bytes = &bytes[n..];
            if self.tail_len < BLOCK {
                return;
            }
            let t = self.tail;
            self.block(&t);
            self.tail_len = 0;
        }
        let mut blocks = bytes.chunks_exact(BLOCK);
        for b in blocks.by_ref() {
            self.block(b.try_into().expect("a block"));
        }
        let rest = blocks.remainder();
        self.tail[..rest.len()].copy_from_slice(rest);
        self.tail_len = rest.len();
    }

    /// The digest of the bytes so far, as 32 hex digits.
    pub fn digest(&self) -> String {
        let mut h = *self;
        let mut last = [0u8; BLOCK];
        last[..h.tail_len].copy_from_slice(&h.tail[..h.tail_len]);
        h.block(&last);
        let [a, b, c, d] = h.lanes;
        let hi = fmix(a ^ b.rotate_left(16) ^ c.rotate_left(32) ^ d.rotate_left(48) ^ h.len);
        let lo = fmix(d ^ c.rotate_left(16) ^ b.rotate_left(32) ^ a.rotate_left(48) ^ fmix(h.len));
        format!("{hi:016x}{lo:016x}")
    }
}

/// MurmurHash3's finaliser: every input bit reaches every output bit.
fn fmix(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^ (k >> 33)
}

/// A place in a replay file where reading can start: `offset` is the start of a top-level
/// value (or the end of the file's last consumed one), `skip` counts records of the value at
/// `offset` that were already applied (a batch may end inside an envelope or a list, and the
/// bytes inside a value are no place to resume parsing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// Byte offset.
    pub offset: u64,
    /// Index of the first record that starts at `offset`.
    pub index: u64,
    /// 1-based line of `offset`.
    pub line: u64,
    /// Records from `offset` on that are already applied.
    pub skip: u64,
    pub(super) hash: PrefixHash,
}

impl Default for Position {
    fn default() -> Self {
        Position {
            offset: 0,
            index: 0,
            line: 1,
            skip: 0,
            hash: PrefixHash::default(),
        }
    }
}

impl Position {
    /// Index of the next record to apply.
    pub fn next_index(&self) -> u64 {
        self.index + self.skip
    }

    /// The checkpoint text: `v2:<offset>:<index>:<line>:<skip>:<hash of bytes before offset>`.
    pub fn fingerprint(&self) -> String {
        format!(
            "v2:{}:{}:{}:{}:{}",
            self.offset,
            self.index,
            self.line,
            self.skip,
            self.hash.digest()
        )
    }
}

/// A checkpoint as stored, before it is checked against the file as it is now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stored {
    /// A byte position (this module's format).
    Offset {
        /// Byte offset.
        offset: u64,
        /// First record index at the offset.
        index: u64,
        /// Line of the offset.
        line: u64,
        /// Records already applied from the offset on.
        skip: u64,
        /// Digest of the bytes before the offset.
        digest: String,
    },
    /// The format before byte offsets: a record count and a hash of the first 64 KiB.
    Legacy {
        /// Records already applied from the start.
        records: u64,
        /// `fnv1a64:` digest of the first 64 KiB.
        head: String,
    },
}

/// Bytes the legacy checkpoint format hashed.
pub const LEGACY_HEAD_BYTES: usize = 64 * 1024;

impl Stored {
    /// Reads a stored checkpoint (`position` column, `fingerprint` column); None when the
    /// text is in no known format.
    pub fn parse(position: u64, fingerprint: &str) -> Option<Stored> {
        if let Some(rest) = fingerprint.strip_prefix("v2:") {
            let mut it = rest.splitn(5, ':');
            let mut num = || it.next()?.parse::<u64>().ok();
            let (offset, index, line, skip) = (num()?, num()?, num()?, num()?);
            let digest = it.next()?;
            let hex = digest.len() == 32 && digest.bytes().all(|c| c.is_ascii_hexdigit());
            return hex.then(|| Stored::Offset {
                offset,
                index,
                line,
                skip,
                digest: digest.to_string(),
            });
        }
        fingerprint.starts_with("fnv1a64:").then(|| Stored::Legacy {
            records: position,
            head: fingerprint.to_string(),
        })
    }
}

/// Why a stored checkpoint no longer fits its file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mismatch {
    /// The file is shorter than the checkpoint's offset.
    Shorter {
        /// Bytes now.
        len: u64,
        /// The checkpoint's offset.
        offset: u64,
    },
    /// Bytes before the checkpoint's offset changed.
    Changed,
    /// The checkpoint text is in no known format.
    Unreadable,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mismatch::Shorter { len, offset } => write!(
                f,
                "it is {len} bytes long, shorter than the {offset} bytes already read: truncated or replaced"
            ),
            Mismatch::Changed => f.write_str("bytes before the checkpoint changed: rewritten"),
            Mismatch::Unreadable => f.write_str("its checkpoint is in an unknown format"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_does_not_depend_on_how_the_input_is_split() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut whole = PrefixHash::default();
        whole.update(&data);
        for split in [0, 1, 7, 8, 9, 31, 32, 33, 63, 500, 999, 1000] {
            for step in [1, 3, 8, 13, 32, 45] {
                let mut h = PrefixHash::default();
                h.update(&data[..split]);
                for c in data[split..].chunks(step) {
                    h.update(c);
                }
                assert_eq!(h.digest(), whole.digest(), "split {split} step {step}");
            }
        }
        let mut other = PrefixHash::default();
        other.update(&data[..999]);
        assert_ne!(other.digest(), whole.digest());
        let mut zeros = PrefixHash::default();
        zeros.update(&[0]);
        assert_ne!(
            zeros.digest(),
            PrefixHash::default().digest(),
            "length counts"
        );
    }

    #[test]
    fn fingerprints_round_trip_and_bad_text_is_refused() {
        let mut p = Position {
            offset: 70_000,
            index: 12,
            line: 40,
            skip: 2,
            ..Position::default()
        };
        p.hash.update(b"abc");
        let fp = p.fingerprint();
        assert_eq!(
            Stored::parse(70_000, &fp),
            Some(Stored::Offset {
                offset: 70_000,
                index: 12,
                line: 40,
                skip: 2,
                digest: p.hash.digest()
            })
        );
        assert_eq!(
            Stored::parse(5, "fnv1a64:0011223344556677"),
            Some(Stored::Legacy {
                records: 5,
                head: "fnv1a64:0011223344556677".into()
            })
        );
        for bad in ["", "v2:1:2:3", "v2:1:2:3:4:xyz", "v3:1:2:3:4:00", "sha:1"] {
            assert_eq!(Stored::parse(0, bad), None, "{bad}");
        }
    }
}
