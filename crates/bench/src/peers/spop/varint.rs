//! SPOP's variable-length unsigned integers (the "peers" encoding of HAProxy's SPOE
//! documentation, section 3.1): values below 240 take one byte; larger ones put their low
//! four bits in a first byte that has its high nibble set (0xF0 | x), then seven bits per
//! following byte, every byte but the last having its high bit set. Owns only the integer
//! encoding, nothing about frames.

use bytes::BufMut;

use super::SpopError;

/// The first value that needs more than one byte.
const ONE_BYTE_LIMIT: u64 = 240;

/// Most bytes a `u64` takes (4 bits in the first byte, 7 in each of up to 9 more).
pub const MAX_VARINT_LEN: usize = 10;

/// Appends `value` in SPOP's varint encoding.
pub fn put_varint(out: &mut impl BufMut, value: u64) {
    if value < ONE_BYTE_LIMIT {
        out.put_u8(value as u8);
        return;
    }
    // The low nibble of the value itself (240 is a multiple of 16, so it is also the low
    // nibble of value - 240), flagged by the high nibble.
    out.put_u8((value as u8) | 0xF0);
    let mut rest = (value - ONE_BYTE_LIMIT) >> 4;
    while rest >= 128 {
        out.put_u8((rest as u8) | 0x80);
        rest = (rest - 128) >> 7;
    }
    out.put_u8(rest as u8);
}

/// Decodes one varint at the start of `input`: the value and how many bytes it took.
pub fn get_varint(input: &[u8]) -> Result<(u64, usize), SpopError> {
    let first = *input.first().ok_or(SpopError::Truncated("varint"))?;
    let mut value = u64::from(first);
    if value < ONE_BYTE_LIMIT {
        return Ok((value, 1));
    }
    let mut shift = 4u32;
    for (index, &byte) in input.iter().enumerate().skip(1) {
        if index >= MAX_VARINT_LEN {
            return Err(SpopError::VarintOverflow);
        }
        let part = u64::from(byte)
            .checked_shl(shift)
            .filter(|p| p >> shift == u64::from(byte))
            .ok_or(SpopError::VarintOverflow)?;
        value = value.checked_add(part).ok_or(SpopError::VarintOverflow)?;
        if byte < 128 {
            return Ok((value, index + 1));
        }
        shift += 7;
    }
    if input.len() >= MAX_VARINT_LEN {
        return Err(SpopError::VarintOverflow);
    }
    Err(SpopError::Truncated("varint"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(value: u64) -> Vec<u8> {
        let mut out = Vec::new();
        put_varint(&mut out, value);
        out
    }

    #[test]
    fn sizes_follow_the_documented_ranges() {
        // (first value of a size, its size): from the table in SPOE.txt section 3.1.
        let ranges = [(0, 1), (240, 2), (2288, 3), (264_432, 4), (33_818_864, 5)];
        for (start, len) in ranges {
            assert_eq!(encoded(start).len(), len, "first value of size {len}");
            if start > 0 {
                assert_eq!(
                    encoded(start - 1).len(),
                    len - 1,
                    "last value before {start}"
                );
            }
        }
        assert_eq!(encoded(4_328_786_159).len(), 5);
        assert_eq!(encoded(u64::MAX).len(), MAX_VARINT_LEN);
    }

    #[test]
    fn known_encodings() {
        assert_eq!(encoded(0), [0x00]);
        assert_eq!(encoded(239), [0xEF]);
        assert_eq!(encoded(240), [0xF0, 0x00]);
        assert_eq!(encoded(241), [0xF1, 0x00]);
        assert_eq!(encoded(256), [0xF0, 0x01]);
        assert_eq!(encoded(2287), [0xFF, 0x7F]);
        assert_eq!(encoded(2288), [0xF0, 0x80, 0x00]);
    }

    #[test]
    fn round_trips_at_every_boundary() {
        let mut values = vec![0, 1, 239, 240, 241, 2287, 2288, 2289, 16380, 16384];
        values.extend([264_431, 264_432, 33_818_863, 33_818_864, 4_328_786_159]);
        values.extend([4_328_786_160, u64::from(u32::MAX), u64::MAX - 1, u64::MAX]);
        for shift in 0..64 {
            values.push(1u64 << shift);
            values.push((1u64 << shift).wrapping_sub(1));
        }
        for value in values {
            let mut bytes = encoded(value);
            let len = bytes.len();
            bytes.extend_from_slice(&[0xAA, 0xBB]);
            assert_eq!(get_varint(&bytes), Ok((value, len)), "value {value}");
        }
    }

    #[test]
    fn truncated_input_is_an_error_not_a_panic() {
        assert_eq!(get_varint(&[]), Err(SpopError::Truncated("varint")));
        assert_eq!(get_varint(&[0xF0]), Err(SpopError::Truncated("varint")));
        assert_eq!(
            get_varint(&[0xF0, 0x80]),
            Err(SpopError::Truncated("varint"))
        );
        let full = encoded(u64::MAX);
        for cut in 1..full.len() {
            assert_eq!(
                get_varint(&full[..cut]),
                Err(SpopError::Truncated("varint")),
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn values_past_64_bits_are_refused() {
        // Continuation bytes forever.
        assert_eq!(get_varint(&[0xFF; 32]), Err(SpopError::VarintOverflow));
        // Ten bytes whose last one carries bits beyond bit 63.
        let mut too_big = vec![0xFF; 9];
        too_big.push(0x7F);
        assert_eq!(get_varint(&too_big), Err(SpopError::VarintOverflow));
        // u64::MAX plus one, by bumping its last byte.
        let mut max = encoded(u64::MAX);
        let last = max.len() - 1;
        max[last] += 1;
        assert_eq!(get_varint(&max), Err(SpopError::VarintOverflow));
    }
}
