//! Low-level field codecs shared by requests and replies: a writer over a
//! caller buffer, a splitter of NUL-terminated fields, and the header
//! finisher.

use xenpv_sys::io::xs_wire::XsdSockmsgType;

use super::{HEADER_LEN, Header, PAYLOAD_MAX, WireError};

/// A small writer over a caller buffer.
pub(super) struct Out<'b> {
    pub(super) buf: &'b mut [u8],
    pub(super) pos: usize,
    pub(super) overflow: bool,
}

impl Out<'_> {
    pub(super) fn put(&mut self, bytes: &[u8]) {
        let end = self.pos.saturating_add(bytes.len());
        match self.buf.get_mut(self.pos..end) {
            Some(dst) => dst.copy_from_slice(bytes),
            None => self.overflow = true,
        }
        self.pos = end;
    }
    pub(super) fn put_str0(&mut self, s: &str) {
        self.put(s.as_bytes());
        self.put(&[0]);
    }
}

/// Splits NUL-terminated fields off a payload.
pub(super) struct Fields<'a>(pub(super) &'a [u8]);

impl<'a> Fields<'a> {
    /// The next NUL-terminated field (without the NUL).
    pub(super) fn next0(&mut self) -> Result<&'a [u8], WireError> {
        let i = self
            .0
            .iter()
            .position(|&b| b == 0)
            .ok_or(WireError::MissingField)?;
        let (field, rest) = self.0.split_at(i);
        self.0 = rest.get(1..).unwrap_or(&[]);
        Ok(field)
    }
    pub(super) fn next_str0(&mut self) -> Result<&'a str, WireError> {
        core::str::from_utf8(self.next0()?).map_err(|_| WireError::NotUtf8)
    }
    pub(super) fn end(&self) -> Result<(), WireError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(WireError::TrailingData)
        }
    }
}

pub(super) fn finish(
    out: Out<'_>,
    ty: XsdSockmsgType,
    req_id: u32,
    tx_id: u32,
) -> Result<usize, WireError> {
    let len = out.pos - HEADER_LEN;
    if len > PAYLOAD_MAX {
        return Err(WireError::PayloadTooLong(len));
    }
    if out.overflow {
        return Err(WireError::BufferTooSmall { needed: out.pos });
    }
    let h = Header {
        ty: ty.raw(),
        req_id,
        tx_id,
        len: len as u32,
    };
    out.buf
        .get_mut(..HEADER_LEN)
        .ok_or(WireError::BufferTooSmall { needed: out.pos })?
        .copy_from_slice(&h.to_bytes());
    Ok(out.pos)
}
