//! Unsigned decimal numbers as xenstore writes them: request ids in
//! `XS_TRANSACTION_START` replies, domain ids in paths and permissions,
//! numeric node values. No allocation, no panic on any input.

use crate::error::WireError;

/// Decimal digits of a `u32` (no allocation).
pub(crate) struct Decimal {
    buf: [u8; 10],
    start: usize,
}

impl Decimal {
    pub(crate) fn new(mut v: u32) -> Self {
        let mut buf = [0u8; 10];
        let mut start = buf.len();
        loop {
            start -= 1;
            if let Some(b) = buf.get_mut(start) {
                *b = b'0' + (v % 10) as u8;
            }
            v /= 10;
            if v == 0 || start == 0 {
                break;
            }
        }
        Self { buf, start }
    }

    pub(crate) fn as_str(&self) -> &str {
        core::str::from_utf8(self.buf.get(self.start..).unwrap_or(&[])).unwrap_or("0")
    }
}

/// Parses an unsigned decimal (ASCII digits only, at least one) into a `u32`.
pub(crate) fn parse_u32(bytes: &[u8]) -> Result<u32, WireError> {
    if bytes.is_empty() || bytes.len() > 10 {
        return Err(WireError::BadNumber);
    }
    let mut v: u32 = 0;
    for &b in bytes {
        if !b.is_ascii_digit() {
            return Err(WireError::BadNumber);
        }
        v = v
            .checked_mul(10)
            .and_then(|v| v.checked_add(u32::from(b - b'0')))
            .ok_or(WireError::BadNumber)?;
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_at_the_edges() {
        for v in [0, 1, 9, 10, 4_294_967_295] {
            let d = Decimal::new(v);
            assert_eq!(parse_u32(d.as_str().as_bytes()), Ok(v));
        }
        assert_eq!(parse_u32(b"4294967296"), Err(WireError::BadNumber));
        assert_eq!(parse_u32(b""), Err(WireError::BadNumber));
        assert_eq!(parse_u32(b"-1"), Err(WireError::BadNumber));
        assert_eq!(parse_u32(b"00000000001"), Err(WireError::BadNumber));
    }
}
