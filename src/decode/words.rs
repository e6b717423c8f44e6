//! Eight bytes at a time: where the spaces of a line are, and the value of a field of up
//! to 16 digits. Branch-free word arithmetic (SWAR) rather than a loop per byte: the exit
//! of a per-byte loop is a mispredicted branch at the end of almost every ~7-byte field,
//! and those mispredictions were most of the decoder's time.

const HIGH: u64 = 0x8080_8080_8080_8080;
const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
#[cfg(any(test, not(target_arch = "x86_64")))]
const SPACES: u64 = 0x2020_2020_2020_2020;
const ZEROS: u64 = 0x3030_3030_3030_3030;

/// The 8 bytes at `at` as a little-endian word (byte 0 is `bytes[at]`); `at + 8` must be
/// within `bytes`.
#[inline(always)]
fn load(bytes: &[u8], at: usize) -> u64 {
    bytes
        .get(at..at + 8)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map_or(0, u64::from_le_bytes)
}

/// Bit k set when byte k of `word` is zero (exact: no false positives from borrows).
#[cfg(any(test, not(target_arch = "x86_64")))]
#[inline(always)]
fn zero_bytes(word: u64) -> u64 {
    let nonzero = ((word & LOW7).wrapping_add(LOW7)) | word;
    let zero = !nonzero & HIGH;
    // Gathers the high bit of each byte into bits 56..63, then down to 0..7.
    ((zero >> 7).wrapping_mul(0x0102_0408_1020_4080)) >> 56
}

/// Bit i set when `bytes[at + i]` is a space, for `i < len` (`len <= 64`). Bytes after
/// `at + len` may be read (and ignored) when `bytes` has them.
#[inline(always)]
pub(crate) fn space_mask(bytes: &[u8], at: usize, len: usize) -> u64 {
    space_and_high_masks(bytes, at, len).0
}

/// [`space_mask`], and beside it the mask of the bytes that are not ASCII (their high bit
/// set): from the same loads, so a line's ASCII check costs next to nothing on top of
/// finding its fields.
#[inline(always)]
pub(crate) fn space_and_high_masks(bytes: &[u8], at: usize, len: usize) -> (u64, u64) {
    let len = len.min(64);
    let (mut spaces, mut high) = (0, 0);
    let mut k = 0;
    while k < len {
        let (s, h) = match bytes.get(at + k..at + k + GROUP) {
            Some(group) => group_masks(group),
            None => {
                // The end of the buffer: pad with zeros, never a space, ASCII.
                let mut padded = [0u8; GROUP];
                let available = &bytes[(at + k).min(bytes.len())..(at + len).min(bytes.len())];
                padded[..available.len()].copy_from_slice(available);
                group_masks(&padded)
            }
        };
        spaces |= s << k;
        high |= h << k;
        k += GROUP;
    }
    if len < 64 {
        let keep = (1 << len) - 1;
        (spaces & keep, high & keep)
    } else {
        (spaces, high)
    }
}

#[cfg(target_arch = "x86_64")]
const GROUP: usize = 16;

/// Bit i set when `group[i]` is a space, and when it is not ASCII; `group` is 16 bytes.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn group_masks(group: &[u8]) -> (u64, u64) {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_set1_epi8,
    };
    debug_assert!(group.len() >= GROUP);
    // SAFETY: SSE2 is part of the x86_64 baseline; the load is unaligned and reads the
    // 16 bytes of `group`, whose length the caller guarantees.
    let (spaces, high) = unsafe {
        let v = _mm_loadu_si128(group.as_ptr().cast::<__m128i>());
        (
            _mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8(b' ' as i8))),
            _mm_movemask_epi8(v),
        )
    };
    (u64::from(spaces as u16), u64::from(high as u16))
}

#[cfg(not(target_arch = "x86_64"))]
const GROUP: usize = 8;

/// Bit i set when `group[i]` is a space, and when it is not ASCII; `group` is 8 bytes.
#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
fn group_masks(group: &[u8]) -> (u64, u64) {
    let word = load(group, 0);
    let high = (((word & HIGH) >> 7).wrapping_mul(0x0102_0408_1020_4080)) >> 56;
    (zero_bytes(word ^ SPACES), high)
}

/// The value of the `digits` (1 to 8) ASCII digits in the high bytes of `word`, or `None`
/// if one of them is not a digit.
#[inline(always)]
fn eight_digits(word: u64, digits: usize) -> Option<u64> {
    // Digits become 0..=9; the bytes before the field are cleared (leading zeros).
    let d = (word ^ ZEROS) & (u64::MAX << (8 * (8 - digits)));
    // A byte above 9 sets its high bit when 0x76 is added (no carry out of a byte below
    // 0x80); a byte with its high bit already set is caught by `| d`.
    if ((d & LOW7).wrapping_add(0x7676_7676_7676_7676) | d) & HIGH != 0 {
        return None;
    }
    // Pairs, then quads, then the eight (byte 0 is the most significant digit).
    let d = ((d & 0x0f0f_0f0f_0f0f_0f0f).wrapping_mul(2561)) >> 8;
    let d = ((d & 0x00ff_00ff_00ff_00ff).wrapping_mul(6_553_601)) >> 16;
    Some(((d & 0x0000_ffff_0000_ffff).wrapping_mul(42_949_672_960_001)) >> 32)
}

/// The value of the field `bytes[from..to]` when it is 1 to 16 ASCII digits. It reads the
/// 8 (or 16) bytes that end at `to`, so the field must not start in the first 8 (16) bytes
/// of `bytes`; `None` sends the caller to the general parser (also for those fields).
#[inline(always)]
pub(crate) fn parse_digits(bytes: &[u8], from: usize, to: usize) -> Option<u64> {
    let len = to.checked_sub(from)?;
    if len == 0 || to < 8 {
        return None;
    }
    let low = load(bytes, to - 8);
    if len <= 8 {
        return eight_digits(low, len);
    }
    if len > 16 || to < 16 {
        return None;
    }
    let high = eight_digits(load(bytes, to - 16), len - 8)?;
    Some(high * 100_000_000 + eight_digits(low, 8)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn space_masks() {
        assert_eq!(space_mask(b"", 0, 0), 0);
        assert_eq!(space_mask(b"a b", 0, 3), 0b10);
        assert_eq!(space_mask(b"  x", 0, 3), 0b11);
        assert_eq!(space_mask(b"x a b ", 1, 3), 0b101);
        let line = b"2 123456789012 eni-0a1b2c3d4e5f60718 10.0.1.5 203.0.113.9 443 49152 6 10 840 1 2 ACCEPT OK";
        for at in [0, 1, 5] {
            for len in 0..=line.len() - at {
                let expected = line[at..at + len]
                    .iter()
                    .take(64)
                    .enumerate()
                    .filter(|(_, b)| **b == b' ')
                    .fold(0u64, |m, (i, _)| m | 1 << i);
                // Alone in its buffer, and with more bytes after it.
                assert_eq!(
                    space_mask(&line[..at + len], at, len),
                    expected,
                    "{at} {len}"
                );
                assert_eq!(space_mask(line, at, len), expected, "{at} {len}");
            }
        }
        // Bytes next to a space that a borrow could turn into false positives.
        assert_eq!(space_mask(b" !\x01\x21 \x1f\xa0\x20", 0, 8), 0b1001_0001);
        let line = b"a \xc3\xa9 b\xff";
        assert_eq!(
            space_and_high_masks(line, 0, line.len()),
            (0b01_0010, 0b100_1100)
        );
        assert_eq!(space_and_high_masks(line, 0, 6), (0b01_0010, 0b00_1100));
        assert_eq!(
            zero_bytes(u64::from_le_bytes(*b" !\x01\x21 \x1f\xa0\x20") ^ SPACES),
            0b1001_0001
        );
    }

    #[test]
    fn digits_match_the_general_parser() {
        let fields: &[&[u8]] = &[
            b"0",
            b"7",
            b"42",
            b"443",
            b"65535",
            b"12345678",
            b"123456789",
            b"1791936000",
            b"9999999999999999",
            b"0000000000000001",
            b"1a",
            b"12:4",
            b"-",
            b"/9",
            b"12345678901234567",
            b"\xff1",
            b"9 ",
            b"1791936000123",
        ];
        for field in fields {
            // Put the field after padding so every read stays inside the buffer.
            let mut bytes = b"xxxxxxxxxxxxxxxx ".to_vec();
            let from = bytes.len();
            bytes.extend_from_slice(field);
            let to = bytes.len();
            bytes.extend_from_slice(b" tail");
            let fast = parse_digits(&bytes, from, to);
            let general = super::super::number::parse_number(field);
            match fast {
                Some(v) => assert_eq!(general, Ok(Some(v as i64)), "{field:?}"),
                None => assert!(
                    field.len() > 16 || !matches!(general, Ok(Some(_))),
                    "{field:?} should parse fast"
                ),
            }
        }
        // Too close to the start of the buffer: left to the general parser.
        assert_eq!(parse_digits(b"443 x", 0, 3), None);
        assert_eq!(parse_digits(b"12345678", 0, 8), Some(12_345_678));
    }
}
