//! The wire primitives every reader of Kafka bytes shares: how a length is prefixed, the
//! unsigned varint (checked for overflow), and what a length prefix means. The whole-buffer
//! [`Reader`](super::Reader), the streaming [`StreamReader`](super::stream::StreamReader)
//! and the response-header code of [`crate::kafka::codec`] pull bytes their own way and
//! hand them to these, so the rules live once.

use super::Problem;

/// How a string, bytes or array length is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Prefix {
    /// i16, -1 = null (strings).
    I16,
    /// i32, -1 = null (bytes, arrays).
    I32,
    /// Unsigned varint N+1, 0 = null (flexible versions).
    Compact,
}

impl Prefix {
    /// `Compact` in flexible versions, else the classic prefix of the field.
    pub(crate) fn pick(flexible: bool, classic: Prefix) -> Prefix {
        if flexible {
            Prefix::Compact
        } else {
            classic
        }
    }
}

/// The signed length a compact (N+1) prefix stands for: -1 for null.
pub(crate) fn compact_length(raw: u32) -> i64 {
    i64::from(raw).saturating_sub(1)
}

/// What a decoded length prefix means: `None` for null (-1), an error for other negative
/// lengths.
pub(crate) fn length(n: i64) -> Result<Option<usize>, Problem> {
    match n {
        -1 => Ok(None),
        n if n < 0 => Err(Problem::NegativeLength(n)),
        n => Ok(Some(usize::try_from(n).unwrap_or(usize::MAX))),
    }
}

/// Unsigned varint (protobuf style) being read a byte at a time: at most 5 bytes, value
/// within u32.
#[derive(Debug, Default)]
pub(crate) struct Uvarint {
    value: u32,
    /// Bytes taken so far.
    taken: u32,
}

impl Uvarint {
    /// Takes the next byte: the value once complete, `None` while more bytes are needed,
    /// an overflow error past 5 bytes or 32 bits.
    pub(crate) fn push(&mut self, byte: u8) -> Result<Option<u32>, Problem> {
        let shift = self.taken.saturating_mul(7);
        // The fifth byte may only carry the top 4 bits of a u32 (and ends the varint).
        if shift >= 28 && byte > 0x0f {
            return Err(Problem::VarintOverflow);
        }
        self.value |= u32::from(byte & 0x7f).checked_shl(shift).unwrap_or(0);
        self.taken = self.taken.saturating_add(1);
        if byte & 0x80 == 0 {
            Ok(Some(self.value))
        } else {
            Ok(None)
        }
    }

    /// Reads a whole varint from `next`, which yields the following byte or `Err` when
    /// there is none.
    pub(crate) fn read<E>(
        mut next: impl FnMut() -> Result<u8, E>,
        overflow: impl FnOnce() -> E,
    ) -> Result<u32, E> {
        let mut varint = Uvarint::default();
        loop {
            match varint.push(next()?) {
                Ok(Some(value)) => return Ok(value),
                Ok(None) => {}
                Err(_) => return Err(overflow()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(bytes: &[u8]) -> Result<u32, &'static str> {
        let mut it = bytes.iter().copied();
        Uvarint::read(|| it.next().ok_or("truncated"), || "overflow")
    }

    #[test]
    fn uvarint_boundaries() {
        assert_eq!(decode(&[0]), Ok(0));
        assert_eq!(decode(&[0x7f]), Ok(127));
        assert_eq!(decode(&[0x80, 0x01]), Ok(128));
        assert_eq!(decode(&[0xff, 0x7f]), Ok(16_383));
        assert_eq!(decode(&[0x80, 0x80, 0x01]), Ok(16_384));
        assert_eq!(decode(&[0xff, 0xff, 0xff, 0x7f]), Ok((1 << 28) - 1));
        assert_eq!(decode(&[0x80, 0x80, 0x80, 0x80, 0x01]), Ok(1 << 28));
        assert_eq!(decode(&[0xff, 0xff, 0xff, 0xff, 0x0f]), Ok(u32::MAX));
        // A redundant (non-minimal) encoding is still the same value, as in Kafka.
        assert_eq!(decode(&[0x81, 0x80, 0x80, 0x80, 0x00]), Ok(1));
        // Past 32 bits in the fifth byte, or a sixth byte.
        assert_eq!(decode(&[0xff, 0xff, 0xff, 0xff, 0x10]), Err("overflow"));
        assert_eq!(
            decode(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x00]),
            Err("overflow")
        );
        assert_eq!(decode(&[0x80, 0x80, 0x80, 0x80, 0x8f]), Err("overflow"));
        assert_eq!(decode(&[]), Err("truncated"));
        assert_eq!(decode(&[0x80]), Err("truncated"));
        assert_eq!(decode(&[0xff, 0xff, 0xff, 0xff]), Err("truncated"));
    }

    #[test]
    fn lengths() {
        assert_eq!(length(-1), Ok(None));
        assert_eq!(length(0), Ok(Some(0)));
        assert_eq!(length(i64::from(i32::MAX)), Ok(Some(i32::MAX as usize)));
        assert_eq!(length(-2), Err(Problem::NegativeLength(-2)));
        assert_eq!(
            length(i64::from(i32::MIN)),
            Err(Problem::NegativeLength(i64::from(i32::MIN)))
        );
        assert_eq!(compact_length(0), -1);
        assert_eq!(compact_length(1), 0);
        assert_eq!(compact_length(u32::MAX), i64::from(u32::MAX) - 1);
        assert_eq!(Prefix::pick(true, Prefix::I16), Prefix::Compact);
        assert_eq!(Prefix::pick(false, Prefix::I32), Prefix::I32);
    }
}
