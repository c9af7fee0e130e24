//! Entry points for fuzzers (cargo-fuzz, AFL, proptest): hostile xenstored
//! bytes in, no panic, no hang out. Only with the `fuzz` feature (off by
//! default): this is test scaffolding, not API for drivers.
//!
//! A cargo-fuzz target is one line:
//!
//! ```ignore
//! #![no_main]
//! libfuzzer_sys::fuzz_target!(|data: &[u8]| xenpv_xenstore::fuzz::replies(data));
//! ```

use alloc::vec::Vec;

use xenpv_sys::io::xs_wire::XsdSockmsgType;

use crate::client::{Client, Config, Store};
use crate::transport::{Transport, TransportError};
use crate::wire::{Entries, Message, Reply, Request, WatchEvent};
use crate::xenbus::{Frontend, parse_mac, parse_unsigned};

/// A transport that accepts every request and answers with `data`, in
/// chunks whose sizes come from the data itself (exercising partial reads).
#[derive(Debug)]
struct Replay<'a> {
    data: &'a [u8],
}

impl Transport for Replay<'_> {
    fn send(&mut self, data: &[u8]) -> Result<usize, TransportError> {
        Ok(data.len())
    }
    fn recv(&mut self, buf: &mut [u8]) -> Result<usize, TransportError> {
        let chunk = usize::from(self.data.first().copied().unwrap_or(0) % 32) + 1;
        let n = chunk.min(buf.len()).min(self.data.len());
        let (head, tail) = self.data.split_at(n);
        if let Some(dst) = buf.get_mut(..n) {
            dst.copy_from_slice(head);
        }
        self.data = tail;
        Ok(n)
    }
    fn wait(&mut self) -> Result<(), TransportError> {
        Ok(())
    }
}

/// Runs every decoder over `data` (as a stream of messages, and as a single
/// payload of each reply type), then a [`Client`] issuing every kind of
/// request and a xenbus [`Frontend`] poll against a "xenstored" whose reply
/// stream is `data`. Must return for any input, without panicking.
pub fn replies(data: &[u8]) {
    // The raw decoders.
    let mut rest = data;
    while let Ok((msg, tail)) = Message::parse(rest) {
        for ty in XsdSockmsgType::ALL {
            let _ = Reply::decode(*ty, &msg);
        }
        let _ = Request::decode(&msg);
        rest = tail;
    }
    let _ = WatchEvent::decode(data);
    let _ = Entries::decode(data);
    let _ = crate::perms::PermList::from_wire(data).map(|p| p.iter().count());
    let _ = parse_mac(data);
    let _ = parse_unsigned(data, 0..=u64::MAX);

    // The client, with tight limits so that a silent or chatty "server" ends
    // quickly.
    let config = Config {
        event_capacity: 4,
        max_waits: 4,
        max_messages: 64,
        max_tx_retries: 2,
    };
    let mut xs = Client::new(Replay { data }, config);
    let _ = xs.read("a");
    let _ = xs.write("a", b"v");
    let _ = xs.directory("/local");
    let _ = xs.get_perms("a");
    let _ = xs.watch("a", "t");
    let _ = xs.get_domain_path(1);
    let _ = xs.transaction(|tx| tx.read("b").map(drop));
    let _ = xs.poll_events();
    let mut fe = Frontend::new("device/vif/0", "fz");
    let _ = fe.poll(&mut xs, &[("ring-ref", "8")]);
    let _: Vec<_> = core::iter::from_fn(|| xs.next_event()).collect();
}
