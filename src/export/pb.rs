//! A protobuf writer for the few messages the push exporters send (write-only, so no
//! generated code and no protoc). Lengths of nested messages are computed before they are
//! written ([`len_size`] and friends), so a message is written once, front to back.

/// Wire types.
const VARINT: u32 = 0;
const FIXED64: u32 = 1;
const LEN: u32 = 2;

pub fn varint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push((v as u8) | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

pub fn varint_size(v: u64) -> usize {
    // 1 byte per 7 bits, at least one.
    let bits = 64 - (v | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

fn key(buf: &mut Vec<u8>, field: u32, wire: u32) {
    varint(buf, u64::from((field << 3) | wire));
}

fn key_size(field: u32) -> usize {
    varint_size(u64::from(field << 3))
}

/// The header of a length-delimited field (a string, bytes or a message of `len` bytes).
pub fn len_prefix(buf: &mut Vec<u8>, field: u32, len: usize) {
    key(buf, field, LEN);
    varint(buf, len as u64);
}

/// Size of a length-delimited field whose content is `len` bytes.
pub fn len_size(field: u32, len: usize) -> usize {
    key_size(field) + varint_size(len as u64) + len
}

/// A string field; proto3 leaves empty strings out.
pub fn string(buf: &mut Vec<u8>, field: u32, s: &str) {
    if !s.is_empty() {
        len_prefix(buf, field, s.len());
        buf.extend_from_slice(s.as_bytes());
    }
}

pub fn string_size(field: u32, s: &str) -> usize {
    if s.is_empty() {
        0
    } else {
        len_size(field, s.len())
    }
}

/// A `double` field. Zero is written anyway: a sample's value is meaningful even when 0,
/// and decoders read an explicit zero the same as an absent one.
pub fn double(buf: &mut Vec<u8>, field: u32, v: f64) {
    fixed64(buf, field, v.to_bits());
}

/// A `fixed64`, `sfixed64` or `double` field.
pub fn fixed64(buf: &mut Vec<u8>, field: u32, v: u64) {
    key(buf, field, FIXED64);
    buf.extend_from_slice(&v.to_le_bytes());
}

pub fn fixed64_size(field: u32) -> usize {
    key_size(field) + 8
}

/// An `int64` field (negative numbers take ten bytes, as protobuf encodes them).
pub fn int64(buf: &mut Vec<u8>, field: u32, v: i64) {
    key(buf, field, VARINT);
    varint(buf, v as u64);
}

pub fn int64_size(field: u32, v: i64) -> usize {
    key_size(field) + varint_size(v as u64)
}

/// An enum or bool field; left out when 0 (proto3's default).
pub fn uint(buf: &mut Vec<u8>, field: u32, v: u64) {
    if v != 0 {
        key(buf, field, VARINT);
        varint(buf, v);
    }
}

pub fn uint_size(field: u32, v: u64) -> usize {
    if v == 0 {
        0
    } else {
        key_size(field) + varint_size(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_and_their_sizes() {
        for (v, bytes) in [
            (0u64, vec![0u8]),
            (1, vec![1]),
            (127, vec![0x7f]),
            (128, vec![0x80, 1]),
            (300, vec![0xac, 0x02]),
            (
                u64::MAX,
                vec![0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1],
            ),
        ] {
            let mut buf = Vec::new();
            varint(&mut buf, v);
            assert_eq!(buf, bytes, "{v}");
            assert_eq!(varint_size(v), bytes.len(), "{v}");
        }
    }

    #[test]
    fn fields_are_as_sized() {
        let mut buf = Vec::new();
        string(&mut buf, 1, "abc");
        assert_eq!(buf, [0x0a, 3, b'a', b'b', b'c']);
        assert_eq!(string_size(1, "abc"), 5);
        assert_eq!(string_size(1, ""), 0);
        buf.clear();
        int64(&mut buf, 2, -1);
        assert_eq!(buf.len(), int64_size(2, -1));
        assert_eq!(buf.len(), 11);
        buf.clear();
        double(&mut buf, 1, 1.0);
        assert_eq!(buf, [0x09, 0, 0, 0, 0, 0, 0, 0xf0, 0x3f]);
        assert_eq!(buf.len(), fixed64_size(1));
        buf.clear();
        uint(&mut buf, 3, 1);
        assert_eq!(buf, [0x18, 1]);
        assert_eq!(uint_size(3, 0), 0);
        assert_eq!(len_size(16, 200), 2 + 2 + 200);
    }
}
