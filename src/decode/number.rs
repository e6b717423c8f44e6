//! Integers straight from bytes.

/// Parses an unsigned decimal field; `-` is NULL. `Err` for anything else that is not
/// digits (signs, spaces, hex, empty) or that overflows i64.
#[inline]
pub(crate) fn parse_number(field: &[u8]) -> Result<Option<i64>, ()> {
    if field == b"-" {
        return Ok(None);
    }
    if field.is_empty() {
        return Err(());
    }
    let mut value: i64 = 0;
    if field.len() <= 18 {
        // 18 digits cannot overflow i64: no checks in the common path.
        for &b in field {
            let digit = b.wrapping_sub(b'0');
            if digit > 9 {
                return Err(());
            }
            value = value * 10 + i64::from(digit);
        }
    } else {
        for &b in field {
            let digit = b.wrapping_sub(b'0');
            if digit > 9 {
                return Err(());
            }
            value = value
                .checked_mul(10)
                .and_then(|v| v.checked_add(i64::from(digit)))
                .ok_or(())?;
        }
    }
    Ok(Some(value))
}

/// Unix times above this are milliseconds (FORMAT.md: values above 2^31·10).
pub(crate) const MILLIS_THRESHOLD: i64 = (1 << 31) * 10;

#[inline]
pub(crate) fn normalise_unix_time(value: i64) -> i64 {
    if value > MILLIS_THRESHOLD {
        millis_to_seconds(value)
    } else {
        value
    }
}

/// Out of line so that the common case is a predicted branch, not a division computed
/// for every time and thrown away (a conditional move).
#[cold]
#[inline(never)]
fn millis_to_seconds(value: i64) -> i64 {
    value / 1000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers() {
        assert_eq!(parse_number(b"0"), Ok(Some(0)));
        assert_eq!(parse_number(b"443"), Ok(Some(443)));
        assert_eq!(parse_number(b"-"), Ok(None));
        assert_eq!(parse_number(b"9223372036854775807"), Ok(Some(i64::MAX)));
        assert_eq!(parse_number(b"9223372036854775808"), Err(()));
        for bad in [&b""[..], b"-1", b"+1", b"1a", b"0x10", b" 1", b"--"] {
            assert_eq!(parse_number(bad), Err(()), "{:?}", bad);
        }
    }

    #[test]
    fn millisecond_times_become_seconds() {
        assert_eq!(normalise_unix_time(1_431_280_876), 1_431_280_876);
        assert_eq!(normalise_unix_time(1_431_280_876_123), 1_431_280_876);
    }
}
