//! A xenstore client on a real `xenstore_domain_interface` page, against a
//! hostile xenstored: every time the client waits, the "server" drains the
//! request ring and writes input-chosen bytes into the reply ring, or
//! scribbles arbitrary values over the ring indices.
//!
//! Invariants: no panic, every call returns (bounded by `max_waits` and
//! `max_messages`), a client that reported a broken connection stays
//! broken, and the event queue never exceeds its capacity.
#![no_main]

use std::cell::RefCell;
use std::rc::Rc;

use arbitrary::{Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;
use xenpv_fuzz_common::SharedPages;
use xenpv_ring::{ByteConsumer, ByteProducer, ByteRingLayout};
use xenpv_xenstore::transport::{FnHooks, RingTransport, TransportError};
use xenpv_xenstore::{Client, Config, Error, Store};

/// What the hostile xenstored does each time the client waits.
#[derive(Arbitrary, Debug)]
enum Server {
    /// Consume requests and write these bytes as replies.
    Reply(Vec<u8>),
    /// Write a reply header with this type/req_id/len, then payload bytes.
    Header {
        ty: u32,
        req_id: u32,
        len: u32,
        payload: Vec<u8>,
    },
    /// Overwrite one of the four ring index words.
    Index { which: u8, value: u32 },
    /// Do nothing.
    Silent,
}

#[derive(Arbitrary, Debug)]
enum Op {
    Read,
    Write(Vec<u8>),
    Directory,
    Watch,
    Transaction,
    DomainPath(u16),
    PollEvents,
}

const CAPACITY: usize = 4;

fuzz_target!(|data: &[u8]| {
    let mut u = Unstructured::new(data);
    let Ok(ops) = Vec::<Op>::arbitrary(&mut u) else {
        return;
    };
    let Ok(script) = Vec::<Server>::arbitrary(&mut u) else {
        return;
    };
    let pages = SharedPages::new(1);
    // Four ends on one page, as the guest and xenstored see it: each borrows
    // the page, which outlives them all.
    let req_p = ByteProducer::new(&pages, ByteRingLayout::XENSTORE_REQ).map_err(|(e, _)| e);
    let rsp_c = ByteConsumer::new(&pages, ByteRingLayout::XENSTORE_RSP).map_err(|(e, _)| e);
    let req_c = ByteConsumer::new(&pages, ByteRingLayout::XENSTORE_REQ).map_err(|(e, _)| e);
    let rsp_p = ByteProducer::new(&pages, ByteRingLayout::XENSTORE_RSP).map_err(|(e, _)| e);
    let ends = (req_p, rsp_c, req_c, rsp_p);
    let (Ok(req_p), Ok(rsp_c), Ok(req_c), Ok(rsp_p)) = ends else {
        return;
    };
    let server = Rc::new(RefCell::new((req_c, rsp_p, script.into_iter())));
    let s2 = Rc::clone(&server);
    let pages_ref = &pages;
    let hooks = FnHooks {
        notify: || Ok::<(), TransportError>(()),
        wait: move || {
            let mut s = s2.borrow_mut();
            let (req, rsp, script) = &mut *s;
            let mut sink = [0u8; 2048];
            let _ = req.read(&mut sink);
            match script.next() {
                Some(Server::Reply(bytes)) => {
                    let _ = rsp.write(&bytes);
                }
                Some(Server::Header {
                    ty,
                    req_id,
                    len,
                    payload,
                }) => {
                    let mut msg = Vec::with_capacity(16 + payload.len());
                    for word in [ty, req_id, 0, len] {
                        msg.extend_from_slice(&word.to_le_bytes());
                    }
                    msg.extend_from_slice(&payload);
                    let _ = rsp.write(&msg);
                }
                Some(Server::Index { which, value }) => {
                    let offs = [
                        ByteRingLayout::XENSTORE_REQ.cons,
                        ByteRingLayout::XENSTORE_REQ.prod,
                        ByteRingLayout::XENSTORE_RSP.cons,
                        ByteRingLayout::XENSTORE_RSP.prod,
                    ];
                    pages_ref.store_u32(offs[usize::from(which % 4)], value);
                }
                Some(Server::Silent) | None => {}
            }
            Ok(())
        },
    };
    let config = Config {
        event_capacity: CAPACITY,
        max_waits: 16,
        max_messages: 64,
        max_tx_retries: 3,
    };
    let mut xs = Client::new(RingTransport::new(req_p, rsp_c, hooks), config);
    let mut was_broken = false;
    for op in ops.into_iter().take(32) {
        let result: Result<(), Error> = match op {
            Op::Read => xs.read("data/a").map(drop),
            Op::Write(v) => xs.write("data/b", &v),
            Op::Directory => xs.directory("data").map(drop),
            Op::Watch => xs.watch("data", "tok"),
            Op::Transaction => xs.transaction(|tx| tx.read("data/c").map(drop)),
            Op::DomainPath(d) => xs.get_domain_path(d).map(drop),
            Op::PollEvents => xs.poll_events().map(drop),
        };
        if was_broken {
            assert!(result.is_err(), "a broken client answered");
        }
        was_broken |= xs.is_broken();
        assert!(
            xs.queued_events() <= CAPACITY,
            "event queue grew past its bound"
        );
    }
    drop(xs);
    drop(server);
});
