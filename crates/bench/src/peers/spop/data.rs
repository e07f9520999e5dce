//! SPOP's typed data (SPOE.txt section 3.1) and the reading cursor the frame decoder uses: a
//! type byte (type in the low nibble, flags in the high one; a boolean's value is the first
//! flag bit) followed by the value, and length-prefixed strings for names. Owns values, not
//! frames.

use bytes::{BufMut, Bytes};

use super::varint::{get_varint, put_varint};
use super::SpopError;

const TYPE_NULL: u8 = 0;
const TYPE_BOOL: u8 = 1;
const TYPE_INT32: u8 = 2;
const TYPE_UINT32: u8 = 3;
const TYPE_INT64: u8 = 4;
const TYPE_UINT64: u8 = 5;
const TYPE_IPV4: u8 = 6;
const TYPE_IPV6: u8 = 7;
const TYPE_STRING: u8 = 8;
const TYPE_BINARY: u8 = 9;
const TYPE_MASK: u8 = 0x0F;
const FLAG_TRUE: u8 = 0x10;

/// One typed value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TypedData {
    /// NULL (also what HAProxy sends for a sample that is not available).
    Null,
    /// BOOLEAN.
    Bool(bool),
    /// 32-bit signed integer.
    Int32(i32),
    /// 32-bit unsigned integer.
    Uint32(u32),
    /// 64-bit signed integer.
    Int64(i64),
    /// 64-bit unsigned integer.
    Uint64(u64),
    /// IPv4 address, network order.
    Ipv4([u8; 4]),
    /// IPv6 address, network order.
    Ipv6([u8; 16]),
    /// STRING (bytes as sent; HAProxy does not promise UTF-8).
    String(Bytes),
    /// BINARY.
    Binary(Bytes),
}

impl TypedData {
    /// A STRING value.
    pub fn string(text: &str) -> TypedData {
        TypedData::String(Bytes::copy_from_slice(text.as_bytes()))
    }

    /// The bytes of a STRING or BINARY value.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            TypedData::String(b) | TypedData::Binary(b) => Some(b),
            _ => None,
        }
    }

    /// An unsigned integer value of any width.
    pub fn as_u64(&self) -> Option<u64> {
        match *self {
            TypedData::Uint32(v) => Some(u64::from(v)),
            TypedData::Uint64(v) => Some(v),
            TypedData::Int32(v) => u64::try_from(v).ok(),
            TypedData::Int64(v) => u64::try_from(v).ok(),
            _ => None,
        }
    }

    /// Appends the type byte and the value.
    pub fn encode(&self, out: &mut impl BufMut) {
        match self {
            TypedData::Null => out.put_u8(TYPE_NULL),
            TypedData::Bool(v) => out.put_u8(TYPE_BOOL | if *v { FLAG_TRUE } else { 0 }),
            // Signed values travel as the two's complement bits of a 64-bit integer.
            TypedData::Int32(v) => put_typed_varint(out, TYPE_INT32, i64::from(*v) as u64),
            TypedData::Uint32(v) => put_typed_varint(out, TYPE_UINT32, u64::from(*v)),
            TypedData::Int64(v) => put_typed_varint(out, TYPE_INT64, *v as u64),
            TypedData::Uint64(v) => put_typed_varint(out, TYPE_UINT64, *v),
            TypedData::Ipv4(a) => {
                out.put_u8(TYPE_IPV4);
                out.put_slice(a);
            }
            TypedData::Ipv6(a) => {
                out.put_u8(TYPE_IPV6);
                out.put_slice(a);
            }
            TypedData::String(b) => {
                out.put_u8(TYPE_STRING);
                put_bytes(out, b);
            }
            TypedData::Binary(b) => {
                out.put_u8(TYPE_BINARY);
                put_bytes(out, b);
            }
        }
    }
}

fn put_typed_varint(out: &mut impl BufMut, type_byte: u8, value: u64) {
    out.put_u8(type_byte);
    put_varint(out, value);
}

/// Appends a length-prefixed byte string (names: no type byte).
pub fn put_bytes(out: &mut impl BufMut, bytes: &[u8]) {
    put_varint(out, bytes.len() as u64);
    out.put_slice(bytes);
}

/// A cursor over one frame's bytes; every read checks what is left.
pub struct Reader {
    bytes: Bytes,
    position: usize,
}

impl Reader {
    /// Reads from the start of `bytes`.
    pub fn new(bytes: Bytes) -> Reader {
        Reader { bytes, position: 0 }
    }

    /// Whether everything has been read.
    pub fn is_empty(&self) -> bool {
        self.position >= self.bytes.len()
    }

    /// One byte.
    pub fn u8(&mut self, what: &'static str) -> Result<u8, SpopError> {
        let byte = *self
            .bytes
            .get(self.position)
            .ok_or(SpopError::Truncated(what))?;
        self.position += 1;
        Ok(byte)
    }

    /// A big-endian u32.
    pub fn u32(&mut self, what: &'static str) -> Result<u32, SpopError> {
        let raw = self.take(4, what)?;
        Ok(u32::from_be_bytes([raw[0], raw[1], raw[2], raw[3]]))
    }

    /// A varint.
    pub fn varint(&mut self, what: &'static str) -> Result<u64, SpopError> {
        let rest = self.bytes.get(self.position..).unwrap_or_default();
        let (value, len) = get_varint(rest).map_err(|e| match e {
            SpopError::Truncated(_) => SpopError::Truncated(what),
            other => other,
        })?;
        self.position += len;
        Ok(value)
    }

    /// `len` bytes, shared with the frame (no copy).
    pub fn take(&mut self, len: usize, what: &'static str) -> Result<Bytes, SpopError> {
        let end = self
            .position
            .checked_add(len)
            .filter(|&end| end <= self.bytes.len())
            .ok_or(SpopError::Truncated(what))?;
        let taken = self.bytes.slice(self.position..end);
        self.position = end;
        Ok(taken)
    }

    /// A length-prefixed byte string.
    pub fn bytes(&mut self, what: &'static str) -> Result<Bytes, SpopError> {
        let len = self.varint(what)?;
        let len = usize::try_from(len).map_err(|_| SpopError::Truncated(what))?;
        self.take(len, what)
    }

    /// A typed value.
    pub fn typed(&mut self) -> Result<TypedData, SpopError> {
        let type_byte = self.u8("data type")?;
        let value = match type_byte & TYPE_MASK {
            TYPE_NULL => TypedData::Null,
            TYPE_BOOL => TypedData::Bool(type_byte & FLAG_TRUE != 0),
            TYPE_INT32 => {
                let raw = self.varint("int32")? as i64;
                TypedData::Int32(i32::try_from(raw).map_err(|_| SpopError::OutOfRange("int32"))?)
            }
            TYPE_UINT32 => {
                let raw = self.varint("uint32")?;
                TypedData::Uint32(u32::try_from(raw).map_err(|_| SpopError::OutOfRange("uint32"))?)
            }
            TYPE_INT64 => TypedData::Int64(self.varint("int64")? as i64),
            TYPE_UINT64 => TypedData::Uint64(self.varint("uint64")?),
            TYPE_IPV4 => {
                let raw = self.take(4, "ipv4")?;
                TypedData::Ipv4([raw[0], raw[1], raw[2], raw[3]])
            }
            TYPE_IPV6 => {
                let raw = self.take(16, "ipv6")?;
                let mut address = [0u8; 16];
                address.copy_from_slice(&raw);
                TypedData::Ipv6(address)
            }
            TYPE_STRING => TypedData::String(self.bytes("string")?),
            TYPE_BINARY => TypedData::Binary(self.bytes("binary")?),
            unknown => return Err(SpopError::UnknownDataType(unknown)),
        };
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(value: TypedData) -> TypedData {
        let mut out = Vec::new();
        value.encode(&mut out);
        let mut reader = Reader::new(Bytes::from(out));
        let decoded = reader.typed().expect("decodes");
        assert!(reader.is_empty(), "{value:?} left bytes behind");
        decoded
    }

    #[test]
    fn every_type_round_trips() {
        let values = [
            TypedData::Null,
            TypedData::Bool(true),
            TypedData::Bool(false),
            TypedData::Int32(-1),
            TypedData::Int32(i32::MIN),
            TypedData::Int32(i32::MAX),
            TypedData::Uint32(u32::MAX),
            TypedData::Int64(i64::MIN),
            TypedData::Uint64(u64::MAX),
            TypedData::Ipv4([127, 0, 0, 1]),
            TypedData::Ipv6([0xfe; 16]),
            TypedData::string("Bearer abc"),
            TypedData::string(""),
            TypedData::Binary(Bytes::from(vec![0u8; 5000])),
        ];
        for value in values {
            assert_eq!(round_trip(value.clone()), value);
        }
    }

    #[test]
    fn type_byte_layout_matches_the_spec() {
        let mut out = Vec::new();
        TypedData::Bool(true).encode(&mut out);
        TypedData::Bool(false).encode(&mut out);
        TypedData::Uint32(16380).encode(&mut out);
        TypedData::string("ok").encode(&mut out);
        // bool true = type 1 with flag bit 0 (0x10); uint32 = 3 then varint; string = 8,
        // length, bytes.
        assert_eq!(
            out,
            [0x11, 0x01, 0x03, 0xFC, 0xF0, 0x06, 0x08, 2, b'o', b'k']
        );
    }

    #[test]
    fn malformed_values_are_errors() {
        let mut too_big_uint32 = vec![0x03];
        put_varint(&mut too_big_uint32, 1 << 32);
        let cases: [(&[u8], SpopError); 8] = [
            (&[], SpopError::Truncated("data type")),
            (&[0x0A], SpopError::UnknownDataType(10)),
            (&[0x0F], SpopError::UnknownDataType(15)),
            (&[0x08, 5, b'a'], SpopError::Truncated("string")),
            (&[0x09], SpopError::Truncated("binary")),
            (&[0x06, 1, 2, 3], SpopError::Truncated("ipv4")),
            (&too_big_uint32, SpopError::OutOfRange("uint32")),
            (&[0x02, 0xF0], SpopError::Truncated("int32")),
        ];
        for (bytes, expected) in cases {
            let mut reader = Reader::new(Bytes::copy_from_slice(bytes));
            assert_eq!(reader.typed(), Err(expected), "input {bytes:02x?}");
        }
    }

    #[test]
    fn a_length_larger_than_the_input_is_refused() {
        let mut out = vec![0x08];
        put_varint(&mut out, u64::MAX);
        let mut reader = Reader::new(Bytes::from(out));
        assert_eq!(reader.typed(), Err(SpopError::Truncated("string")));
    }
}
