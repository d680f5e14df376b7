//! A bounded, panic-free cursor over a Kafka response body.
//!
//! Every read checks the bytes left before touching them, every length and count is checked
//! against what is left *before* anything is allocated, and every error names the field path,
//! the byte position and what was wrong. Nothing here indexes a slice or unwraps.

use bytes::{Buf, Bytes};

use super::primitives::{compact_length, length, Prefix, Uvarint};
use super::{DecodeError, Problem};

/// Vectors are pre-allocated to at most this many elements; they grow as elements decode.
pub const MAX_PREALLOC: usize = 64;

type Res<T> = Result<T, DecodeError>;

/// The error for `field` under the array `path` (e.g. `topics[3].partitions[0].field`).
pub(super) fn malformed(
    api: &'static str,
    version: i16,
    path: &[(&'static str, usize)],
    field: &'static str,
    position: usize,
    problem: Problem,
) -> DecodeError {
    let mut full = String::new();
    for (name, index) in path {
        full.push_str(&format!("{name}[{index}]."));
    }
    full.push_str(field);
    DecodeError::Malformed {
        api,
        version,
        field: full,
        position,
        problem,
    }
}

/// Cursor over one response body. Cheap to create; slices it returns share the buffer.
#[derive(Debug, Clone)]
pub struct Reader {
    buf: Bytes,
    start_len: usize,
    api: &'static str,
    version: i16,
    /// Arrays being decoded: (field, element index), for error paths.
    path: Vec<(&'static str, usize)>,
}

macro_rules! fixed {
    ($($name:ident: $ty:ty = $get:ident, $size:expr;)*) => {$(
        pub fn $name(&mut self, field: &'static str) -> Res<$ty> {
            let pos = self.position();
            self.buf.$get().map_err(|_| self.short(field, pos, $size))
        }
    )*};
}

macro_rules! prefixed {
    ($($name:ident $(($flex:ident))? -> $ty:ty = $inner:ident($prefix:expr);)*) => {$(
        pub fn $name(&mut self, field: &'static str $(, $flex: bool)?) -> Res<$ty> {
            self.$inner(field, $prefix)
        }
    )*};
}

impl Reader {
    /// A reader whose errors name no API (`api` is empty, version -1).
    pub fn new(buf: Bytes) -> Self {
        Self::for_api(buf, "", -1)
    }

    /// A reader whose errors start with `"{api} v{version}"`.
    pub fn for_api(buf: Bytes, api: &'static str, version: i16) -> Self {
        let start_len = buf.len();
        Self {
            buf,
            start_len,
            api,
            version,
            path: Vec::new(),
        }
    }

    /// Sets the version named by later errors (for formats that carry their own version).
    pub fn set_version(&mut self, version: i16) {
        self.version = version;
    }

    /// Bytes consumed so far.
    pub fn position(&self) -> usize {
        self.start_len.saturating_sub(self.buf.len())
    }

    /// Bytes left.
    pub fn remaining(&self) -> usize {
        self.buf.len()
    }

    /// Builds an error for `field` (under the current array path) starting at byte `position`.
    pub fn error(&self, field: &'static str, position: usize, problem: Problem) -> DecodeError {
        malformed(self.api, self.version, &self.path, field, position, problem)
    }

    fn short(&self, field: &'static str, pos: usize, needed: usize) -> DecodeError {
        let remaining = self.remaining();
        self.error(field, pos, Problem::Truncated { needed, remaining })
    }

    /// Takes exactly `n` bytes (zero copy).
    pub fn take(&mut self, field: &'static str, n: usize) -> Res<Bytes> {
        self.take_at(field, self.position(), n)
    }

    fn take_at(&mut self, field: &'static str, pos: usize, n: usize) -> Res<Bytes> {
        if n > self.remaining() {
            return Err(self.short(field, pos, n));
        }
        Ok(self.buf.split_to(n))
    }

    fixed! {
        i8: i8 = try_get_i8, 1;
        i16: i16 = try_get_i16, 2;
        i32: i32 = try_get_i32, 4;
        i64: i64 = try_get_i64, 8;
        u32: u32 = try_get_u32, 4;
    }

    /// Kafka booleans: any non-zero byte is true (as the Java client reads them).
    pub fn bool(&mut self, field: &'static str) -> Res<bool> {
        Ok(self.i8(field)? != 0)
    }

    pub fn uuid(&mut self, field: &'static str) -> Res<[u8; 16]> {
        let pos = self.position();
        let mut out = [0u8; 16];
        let res = self.buf.try_copy_to_slice(&mut out);
        res.map_err(|_| self.short(field, pos, 16))?;
        Ok(out)
    }

    /// Unsigned varint (protobuf style), at most 5 bytes, value within u32.
    pub fn uvarint(&mut self, field: &'static str) -> Res<u32> {
        let pos = self.position();
        let mut varint = Uvarint::default();
        loop {
            let b = self
                .buf
                .try_get_u8()
                .map_err(|_| self.short(field, pos, 1))?;
            match varint.push(b) {
                Ok(Some(value)) => return Ok(value),
                Ok(None) => {}
                Err(problem) => return Err(self.error(field, pos, problem)),
            }
        }
    }

    /// Reads a length prefix: `None` for null, an error for other negative lengths.
    fn len(&mut self, field: &'static str, pos: usize, prefix: Prefix) -> Res<Option<usize>> {
        let n = match prefix {
            Prefix::I16 => i64::from(self.i16(field)?),
            Prefix::I32 => i64::from(self.i32(field)?),
            Prefix::Compact => compact_length(self.uvarint(field)?),
        };
        length(n).map_err(|problem| self.error(field, pos, problem))
    }

    /// Length-prefixed bytes (zero copy), `None` for null.
    fn blob(&mut self, field: &'static str, prefix: Prefix) -> Res<Option<Bytes>> {
        let pos = self.position();
        match self.len(field, pos, prefix)? {
            None => Ok(None),
            Some(n) => self.take_at(field, pos, n).map(Some),
        }
    }

    fn text(&mut self, field: &'static str, prefix: Prefix) -> Res<Option<String>> {
        let pos = self.position();
        let Some(raw) = self.blob(field, prefix)? else {
            return Ok(None);
        };
        match std::str::from_utf8(&raw) {
            Ok(s) => Ok(Some(s.to_owned())),
            Err(_) => Err(self.error(field, pos, Problem::InvalidUtf8)),
        }
    }

    /// Turns a null into an `UnexpectedNull` error for a field that started at `pos`.
    fn required<T>(&self, field: &'static str, pos: usize, v: Option<T>) -> Res<T> {
        v.ok_or_else(|| self.error(field, pos, Problem::UnexpectedNull))
    }

    fn req_text(&mut self, field: &'static str, prefix: Prefix) -> Res<String> {
        let pos = self.position();
        let s = self.text(field, prefix)?;
        self.required(field, pos, s)
    }

    fn req_blob(&mut self, field: &'static str, prefix: Prefix) -> Res<Bytes> {
        let pos = self.position();
        let b = self.blob(field, prefix)?;
        self.required(field, pos, b)
    }

    // Strings (i16 length, UTF-8 checked) and bytes (i32 length, zero copy); `compact_*` use
    // the uvarint N+1 prefix; `*_v` pick compact when `flexible`. Nullable ones map null to
    // `None`, the others reject it.
    prefixed! {
        string -> String = req_text(Prefix::I16);
        nullable_string -> Option<String> = text(Prefix::I16);
        compact_string -> String = req_text(Prefix::Compact);
        compact_nullable_string -> Option<String> = text(Prefix::Compact);
        string_v(flexible) -> String = req_text(Prefix::pick(flexible, Prefix::I16));
        nullable_string_v(flexible) -> Option<String> = text(Prefix::pick(flexible, Prefix::I16));
        bytes -> Bytes = req_blob(Prefix::I32);
        nullable_bytes -> Option<Bytes> = blob(Prefix::I32);
        compact_bytes -> Bytes = req_blob(Prefix::Compact);
        compact_nullable_bytes -> Option<Bytes> = blob(Prefix::Compact);
        bytes_v(flexible) -> Bytes = req_blob(Prefix::pick(flexible, Prefix::I32));
        nullable_bytes_v(flexible) -> Option<Bytes> = blob(Prefix::pick(flexible, Prefix::I32));
    }

    /// Array count: `None` for null; rejects negative counts and any count larger than the
    /// bytes left (every element takes at least one byte) before anything is allocated.
    fn count(&mut self, field: &'static str, prefix: Prefix) -> Res<Option<usize>> {
        let pos = self.position();
        let Some(n) = self.len(field, pos, prefix)? else {
            return Ok(None);
        };
        let remaining = self.remaining();
        if n > remaining {
            let count = u64::try_from(n).unwrap_or(u64::MAX);
            return Err(self.error(field, pos, Problem::CountTooLarge { count, remaining }));
        }
        Ok(Some(n))
    }

    /// i32 array count, `None` for -1 (null). See `Reader::count` for the bounds.
    pub fn array_len(&mut self, field: &'static str) -> Res<Option<usize>> {
        self.count(field, Prefix::I32)
    }

    /// Compact array count (uvarint N+1), `None` for 0 (null), bounded like `array_len`.
    pub fn compact_array_len(&mut self, field: &'static str) -> Res<Option<usize>> {
        self.count(field, Prefix::Compact)
    }

    /// Array (compact when `flexible`) that may be null; each element is decoded by `f` with
    /// `field[i]` on the error path.
    pub fn nullable_array<T>(
        &mut self,
        field: &'static str,
        flexible: bool,
        mut f: impl FnMut(&mut Self) -> Res<T>,
    ) -> Res<Option<Vec<T>>> {
        let Some(n) = self.count(field, Prefix::pick(flexible, Prefix::I32))? else {
            return Ok(None);
        };
        let mut out = Vec::with_capacity(n.min(MAX_PREALLOC));
        for i in 0..n {
            self.path.push((field, i));
            let item = f(self);
            self.path.pop();
            out.push(item?);
        }
        Ok(Some(out))
    }

    /// Array (compact when `flexible`) that must not be null.
    pub fn array<T>(
        &mut self,
        field: &'static str,
        flexible: bool,
        f: impl FnMut(&mut Self) -> Res<T>,
    ) -> Res<Vec<T>> {
        let pos = self.position();
        let v = self.nullable_array(field, flexible, f)?;
        self.required(field, pos, v)
    }

    /// Skips an array of fixed-size elements (e.g. `[]int32` with `elem_size` 4) without
    /// allocating. A null array is accepted (the field is only skipped).
    pub fn skip_fixed_array(
        &mut self,
        field: &'static str,
        flexible: bool,
        elem_size: usize,
    ) -> Res<()> {
        let pos = self.position();
        let n = self
            .count(field, Prefix::pick(flexible, Prefix::I32))?
            .unwrap_or(0);
        let total = n.saturating_mul(elem_size);
        self.take_at(field, pos, total).map(drop)
    }

    /// Skips a tagged-field section: count, then per field tag, size and `size` bytes.
    pub fn skip_tagged_fields(&mut self) -> Res<()> {
        const FIELD: &str = "_tagged_fields";
        let pos = self.position();
        let count = u64::from(self.uvarint(FIELD)?);
        let remaining = self.remaining();
        // Each tagged field takes at least two bytes (tag and size).
        if count.saturating_mul(2) > u64::try_from(remaining).unwrap_or(u64::MAX) {
            return Err(self.error(FIELD, pos, Problem::TagCountTooLarge { count, remaining }));
        }
        for _ in 0..count {
            self.uvarint(FIELD)?;
            let size = self.uvarint(FIELD)?;
            self.take(FIELD, usize::try_from(size).unwrap_or(usize::MAX))?;
        }
        Ok(())
    }

    /// Skips the tagged-field section when `flexible`; does nothing otherwise.
    pub fn tagged_fields(&mut self, flexible: bool) -> Res<()> {
        if flexible {
            self.skip_tagged_fields()?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(b: &'static [u8]) -> Reader {
        Reader::for_api(Bytes::from_static(b), "Test", 1)
    }

    fn problem(e: DecodeError) -> Problem {
        match e {
            DecodeError::Malformed { problem, .. } => problem,
            other => panic!("{other}"),
        }
    }

    #[test]
    fn fixed_width_and_position() {
        let mut x = r(&[
            0xff, 0x80, 0x01, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 3, 0xff, 0xff, 0xff, 0xff, 7,
        ]);
        assert_eq!(
            (x.i8("a"), x.i16("b"), x.i32("c")),
            (Ok(-1), Ok(-32767), Ok(2))
        );
        assert_eq!(
            (x.i64("d"), x.u32("e"), x.bool("f")),
            (Ok(3), Ok(u32::MAX), Ok(true))
        );
        assert_eq!((x.position(), x.remaining()), (20, 0));
        assert_eq!(
            x.uuid("g").map_err(problem),
            Err(Problem::Truncated {
                needed: 16,
                remaining: 0
            })
        );
    }

    #[test]
    fn uvarint_limits() {
        assert_eq!(r(&[0x7f]).uvarint("v"), Ok(127));
        assert_eq!(r(&[0x80, 0x01]).uvarint("v"), Ok(128));
        assert_eq!(
            r(&[0xff, 0xff, 0xff, 0xff, 0x0f]).uvarint("v"),
            Ok(u32::MAX)
        );
        assert_eq!(
            r(&[0xff, 0xff, 0xff, 0xff, 0x10])
                .uvarint("v")
                .map_err(problem),
            Err(Problem::VarintOverflow)
        );
        assert_eq!(
            r(&[0x80, 0x80, 0x80, 0x80, 0x80, 0])
                .uvarint("v")
                .map_err(problem),
            Err(Problem::VarintOverflow)
        );
        assert!(r(&[0x80]).uvarint("v").is_err());
    }

    #[test]
    fn strings_and_bytes() {
        assert_eq!(r(&[0, 2, b'h', b'i']).string("s"), Ok("hi".into()));
        assert_eq!(r(&[0xff, 0xff]).nullable_string("s"), Ok(None));
        assert_eq!(
            r(&[0xff, 0xff]).string("s").map_err(problem),
            Err(Problem::UnexpectedNull)
        );
        assert_eq!(
            r(&[0xff, 0xfe]).nullable_string("s").map_err(problem),
            Err(Problem::NegativeLength(-2))
        );
        assert_eq!(r(&[3, b'h', b'i']).compact_string("s"), Ok("hi".into()));
        assert_eq!(r(&[0]).compact_nullable_string("s"), Ok(None));
        let e = r(&[0, 2, 0xc3, 0x28])
            .string("name")
            .expect_err("bad utf-8");
        assert_eq!(
            e.to_string(),
            "Test v1: field name at byte 0: invalid UTF-8 in string"
        );
        assert_eq!(r(&[0xff, 0xff, 0xff, 0xff]).nullable_bytes("b"), Ok(None));
        assert_eq!(r(&[0, 0, 0, 1, 9]).bytes("b"), Ok(Bytes::from_static(&[9])));
        assert_eq!(
            r(&[0x80, 0, 0, 0]).bytes("b").map_err(problem),
            Err(Problem::NegativeLength(i32::MIN.into()))
        );
        assert_eq!(r(&[2, 9]).compact_bytes("b"), Ok(Bytes::from_static(&[9])));
        assert_eq!(r(&[0]).compact_nullable_bytes("b"), Ok(None));
        assert_eq!(
            r(&[5, 1]).compact_bytes("b").map_err(problem),
            Err(Problem::Truncated {
                needed: 4,
                remaining: 1
            })
        );
    }

    #[test]
    fn array_counts_are_bounded_before_allocating() {
        assert_eq!(r(&[0xff, 0xff, 0xff, 0xff]).array_len("a"), Ok(None));
        assert_eq!(r(&[0, 0, 0, 2, 1, 2]).array_len("a"), Ok(Some(2)));
        let big = Problem::CountTooLarge {
            count: 3,
            remaining: 2,
        };
        assert_eq!(
            r(&[0, 0, 0, 3, 1, 2]).array_len("a").map_err(problem),
            Err(big)
        );
        assert_eq!(
            r(&[0xff, 0xff, 0xff, 0xfe]).array_len("a").map_err(problem),
            Err(Problem::NegativeLength(-2))
        );
        assert_eq!(r(&[0]).compact_array_len("a"), Ok(None));
        let e = r(&[0xff, 0xff, 0xff, 0xff, 0x0f, 1])
            .compact_array_len("a")
            .map_err(problem);
        assert_eq!(
            e,
            Err(Problem::CountTooLarge {
                count: 0xffff_fffe,
                remaining: 1
            })
        );
        let mut x = r(&[0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(x.array("xs", false, |r| r.i32("x")), Ok(vec![0, 0]));
        assert_eq!(
            r(&[0, 0, 0, 1, 0, 0, 0, 1])
                .skip_fixed_array("ids", false, 8)
                .map_err(problem),
            Err(Problem::Truncated {
                needed: 8,
                remaining: 4
            })
        );
    }

    #[test]
    fn tagged_fields() {
        let mut x = r(&[2, 0, 1, 9, 40, 2, 7, 7, 5]);
        assert_eq!(x.skip_tagged_fields(), Ok(()));
        assert_eq!(x.i8("after"), Ok(5));
        let e = r(&[1, 0, 0xff, 0xff, 0xff, 0xff, 0x0f])
            .skip_tagged_fields()
            .expect_err("huge size");
        assert_eq!(
            e.to_string(),
            "Test v1: field _tagged_fields at byte 7: need 4294967295 bytes, 0 left"
        );
        let e = r(&[0xff, 0xff, 0xff, 0xff, 0x0f, 0])
            .skip_tagged_fields()
            .map_err(problem);
        assert_eq!(
            e,
            Err(Problem::TagCountTooLarge {
                count: u64::from(u32::MAX),
                remaining: 1
            })
        );
        assert_eq!(r(&[]).tagged_fields(false), Ok(()));
    }

    #[test]
    fn error_path_names_indices() {
        // [{ids: [1]}, {ids: truncated}]
        let mut x = r(&[0, 0, 0, 2, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0]);
        let e = x
            .array("outer", false, |r| r.array("inner", false, |r| r.i32("id")))
            .expect_err("truncated");
        assert_eq!(
            e.to_string(),
            "Test v1: field outer[1].inner[0].id at byte 16: need 4 bytes, 2 left"
        );
        assert_eq!(
            super::super::check_version("X", 9, 1, 3).map_err(|e| e.to_string()),
            Err("X v9: unsupported version, this decoder supports versions 1..=3".into())
        );
    }
}
