//! FNV-1a, 64 bits: a hash that stays the same across runs, machines and versions, for
//! finding ids, batch ids and shard assignment.

#[derive(Clone, Copy, Debug)]
pub struct StableHash(u64);

impl Default for StableHash {
    fn default() -> Self {
        StableHash(0xcbf2_9ce4_8422_2325)
    }
}

impl StableHash {
    pub fn update(mut self, bytes: &[u8]) -> Self {
        for &byte in bytes {
            self.0 ^= u64::from(byte);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
        self
    }

    pub fn value(self) -> u64 {
        self.0
    }

    /// Sixteen hex digits.
    pub fn hex(self) -> String {
        format!("{:016x}", self.0)
    }
}

/// The hash of `text`.
pub fn stable_hash(text: &str) -> StableHash {
    StableHash::default().update(text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_values() {
        assert_eq!(stable_hash("").hex(), "cbf29ce484222325");
        assert_eq!(stable_hash("a").hex(), "af63dc4c8601ec8c");
        assert_eq!(
            stable_hash("ab").value(),
            stable_hash("a").update(b"b").value()
        );
    }
}
