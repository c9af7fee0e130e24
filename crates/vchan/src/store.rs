//! The xenstore convention: where a server publishes its channel and how a
//! client finds it (feature `alloc`).
//!
//! libxenvchan takes any path; the convention Qubes' libvchan and the
//! `vchan-node`-style tools use is
//! `/local/domain/<server>/data/vchan/<client>/<port>` (the server writes
//! `data/vchan/<client>/<port>` relative to its home). Under it the server
//! writes `ring-ref` (the shared page's grant reference) and
//! `event-channel` (its unbound port), each owned by the server, with no
//! access for other domains except read for the client.

use alloc::format;
use alloc::string::String;

use xenpv_evtchn::Port;
use xenpv_grant::{GrantRef, TableHandle};
use xenpv_sys::xen::DomId;
use xenpv_xenstore::Store;
use xenpv_xenstore::perms::{Access, Perm};

use crate::error::Error;
use crate::server::Server;

/// `/local/domain/<server>/data/vchan/<client>/<port>`.
///
/// ```
/// assert_eq!(xenpv_vchan::store_path(0, 7, 5000), "/local/domain/0/data/vchan/7/5000");
/// ```
pub fn store_path(server: DomId, client: DomId, port: u32) -> String {
    format!("/local/domain/{server}/data/vchan/{client}/{port}")
}

impl<T: TableHandle> Server<T> {
    /// Writes `<path>/ring-ref` and `<path>/event-channel`, owned by
    /// `server` (this domain) and readable by the client only. Publish
    /// inside a transaction, as libxenvchan does, so that a client never
    /// sees one key without the other: the error type is the store's, so
    /// `xs.transaction(|tx| vchan.publish(tx, &path, me))` composes.
    pub fn publish<S: Store>(
        &self,
        store: &mut S,
        path: &str,
        server: DomId,
    ) -> Result<(), xenpv_xenstore::Error> {
        let perms = [
            Perm {
                domid: server,
                access: Access::None,
            },
            Perm {
                domid: self.client(),
                access: Access::Read,
            },
        ];
        let entries = [
            ("ring-ref", self.ring_ref()),
            ("event-channel", self.port().raw()),
        ];
        for (key, value) in entries {
            let node = format!("{path}/{key}");
            store.write(&node, format!("{value}").as_bytes())?;
            store.set_perms(&node, &perms)?;
        }
        Ok(())
    }

    /// Removes what [`publish`](Self::publish) wrote.
    pub fn unpublish<S: Store>(
        &self,
        store: &mut S,
        path: &str,
    ) -> Result<(), xenpv_xenstore::Error> {
        store.rm(path)
    }
}

/// Reads a server's `<path>/ring-ref` and `<path>/event-channel`. The
/// values come from another domain: anything but a plain decimal number in
/// range (a grant reference; a non-zero port) is [`Error::BadStoreValue`].
pub fn lookup<S: Store>(store: &mut S, path: &str) -> Result<(GrantRef, Port), Error> {
    let ring_ref = store
        .read(&format!("{path}/ring-ref"))
        .map_err(Error::Store)?;
    let port = store
        .read(&format!("{path}/event-channel"))
        .map_err(Error::Store)?;
    let ring_ref = parse_u32(&ring_ref).ok_or(Error::BadStoreValue)?;
    let port = parse_u32(&port)
        .and_then(Port::new)
        .ok_or(Error::BadStoreValue)?;
    Ok((ring_ref, port))
}

/// A decimal `u32`: digits only, at most 10 of them, no sign or spaces.
fn parse_u32(bytes: &[u8]) -> Option<u32> {
    if bytes.is_empty() || bytes.len() > 10 {
        return None;
    }
    bytes.iter().try_fold(0u32, |acc, &b| {
        let d = b.checked_sub(b'0').filter(|d| *d <= 9)?;
        acc.checked_mul(10)?.checked_add(u32::from(d))
    })
}

#[cfg(test)]
mod tests {
    use super::parse_u32;

    #[test]
    fn store_numbers_are_strict() {
        assert_eq!(parse_u32(b"0"), Some(0));
        assert_eq!(parse_u32(b"4294967295"), Some(u32::MAX));
        for bad in [
            &b""[..],
            b"4294967296",
            b"-1",
            b" 1",
            b"1 ",
            b"0x10",
            b"12345678901",
            b"1\0",
        ] {
            assert_eq!(parse_u32(bad), None, "{bad:?}");
        }
    }
}
