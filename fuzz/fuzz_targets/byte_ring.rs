//! `ByteProducer` / `ByteConsumer` on the xenstore and console pages, against
//! a peer that between any two calls may set or nudge any index word, scribble
//! anywhere in the page, or honestly read or write its halves.
//!
//! Every call is checked against a model fed with exactly what the peer left in
//! memory (the peer never acts during a call):
//! * results: a peer index is accepted iff it lies in its window (the consumer
//!   index in `cons_seen..=prod`, the producer index in
//!   `prod_seen..=cons + size`); a violation is reported as `PeerIndexInvalid`
//!   naming the value, and from then on every call on that end returns
//!   `Err(Broken)`; so never more than `size` bytes are outstanding;
//! * writes: `write` changes only the data bytes it writes and its producer
//!   index; `read` only its consumer index; `free_space`/`available` nothing;
//! * data: `read` returns the bytes that were in the array; while the peer has
//!   not interfered with a direction, the bytes read are exactly the bytes
//!   written (a `VecDeque` model), the free space and availability match the
//!   model, and no call fails.

#![no_main]

use std::collections::VecDeque;

use libfuzzer_sys::fuzz_target;
use xenpv_fuzz_common::{
    ByteInput, ByteOp, BytePeerAction, ByteStep, MAX_STEPS, SharedPages, fill_pattern, in_window,
};
use xenpv_ring::{ByteConsumer, ByteProducer, ByteRingLayout, PAGE_SIZE, RingError};

fuzz_target!(|input: ByteInput| run(&input));

fn data_offset(layout: &ByteRingLayout, idx: u32) -> usize {
    layout.data + (idx & (layout.size - 1)) as usize
}

/// The producing end under test ("out" direction).
struct Out<'m> {
    tx: ByteProducer<&'m SharedPages>,
    layout: ByteRingLayout,
    prod: u32,
    cons_seen: u32,
    broken: bool,
    /// No hostile action has touched this direction since the start.
    honest: bool,
    /// Bytes written and not yet read by the peer (meaningful while honest).
    fifo: VecDeque<u8>,
}

impl Out<'_> {
    /// The validated read of the peer's consumer index.
    fn free_space(&mut self, cons: u32) -> Result<u32, RingError> {
        if self.broken {
            return Err(RingError::Broken);
        }
        if !in_window(cons, self.cons_seen, self.prod) {
            self.broken = true;
            return Err(RingError::PeerIndexInvalid {
                published: cons,
                low: self.cons_seen,
                high: self.prod,
            });
        }
        self.cons_seen = cons;
        Ok(self.layout.size - self.prod.wrapping_sub(cons))
    }
}

/// The consuming end under test ("in" direction).
struct In<'m> {
    rx: ByteConsumer<&'m SharedPages>,
    layout: ByteRingLayout,
    cons: u32,
    prod_seen: u32,
    broken: bool,
    honest: bool,
    fifo: VecDeque<u8>,
}

impl In<'_> {
    /// The validated read of the peer's producer index.
    fn available(&mut self, prod: u32) -> Result<u32, RingError> {
        if self.broken {
            return Err(RingError::Broken);
        }
        let high = self.cons.wrapping_add(self.layout.size);
        if !in_window(prod, self.prod_seen, high) {
            self.broken = true;
            return Err(RingError::PeerIndexInvalid {
                published: prod,
                low: self.prod_seen,
                high,
            });
        }
        self.prod_seen = prod;
        Ok(prod.wrapping_sub(self.cons))
    }
}

fn overlaps(a: core::ops::Range<usize>, b: core::ops::Range<usize>) -> bool {
    a.start < b.end && b.start < a.end
}

fn touches(layout: &ByteRingLayout, r: core::ops::Range<usize>) -> bool {
    overlaps(r.clone(), layout.data..layout.data + layout.size as usize)
        || overlaps(r.clone(), layout.cons..layout.cons + 4)
        || overlaps(r, layout.prod..layout.prod + 4)
}

/// Whether the "sticky" rule holds for a result of an end whose earlier calls
/// have (`faulted`) or have not yet seen a peer fault; updates `faulted`.
fn sticky<T>(faulted: &mut bool, r: &Result<T, RingError>, what: &str) {
    if *faulted {
        assert_eq!(
            r.as_ref().err(),
            Some(&RingError::Broken),
            "{what} after a peer fault"
        );
    }
    if r.as_ref().is_err_and(RingError::is_peer_fault) {
        *faulted = true;
    }
}

fn run(input: &ByteInput) {
    let mem = SharedPages::new(1);
    let (out_l, in_l) = input.page.layouts();
    let (out_start, in_start) = (input.out_start.value(), input.in_start.value());
    mem.store_u32(out_l.prod, out_start);
    mem.store_u32(out_l.cons, out_start);
    mem.store_u32(in_l.prod, in_start);
    mem.store_u32(in_l.cons, in_start);
    let (mut out_honest, mut in_honest) = (true, true);
    if let Some((word, value)) = input.skew {
        mem.store_u32(word.offset(&out_l, &in_l), value);
        if word.is_out() {
            out_honest = false;
        } else {
            in_honest = false;
        }
    }

    // Attaching validates the peer's index against our own.
    let (prod, cons) = (mem.load_u32(out_l.prod), mem.load_u32(out_l.cons));
    // Each end borrows the page; one producer per direction.
    let tx = ByteProducer::new(&mem, out_l);
    let low = prod.wrapping_sub(out_l.size);
    let mut out = if in_window(cons, low, prod) {
        let tx = tx.expect("valid out indices rejected");
        assert!(!tx.is_broken());
        Some(Out {
            tx,
            layout: out_l,
            prod,
            cons_seen: cons,
            broken: false,
            honest: out_honest,
            fifo: VecDeque::new(),
        })
    } else {
        let (err, _) = tx.err().expect("invalid out indices accepted");
        assert_eq!(
            err,
            RingError::PeerIndexInvalid {
                published: cons,
                low,
                high: prod
            }
        );
        None
    };
    let (prod, cons) = (mem.load_u32(in_l.prod), mem.load_u32(in_l.cons));
    // One consumer per direction.
    let rx = ByteConsumer::new(&mem, in_l);
    let high = cons.wrapping_add(in_l.size);
    let mut inn = if in_window(prod, cons, high) {
        let rx = rx.expect("valid in indices rejected");
        assert!(!rx.is_broken());
        Some(In {
            rx,
            layout: in_l,
            cons,
            prod_seen: prod,
            broken: false,
            honest: in_honest,
            fifo: VecDeque::new(),
        })
    } else {
        let (err, _) = rx.err().expect("invalid in indices accepted");
        assert_eq!(
            err,
            RingError::PeerIndexInvalid {
                published: prod,
                low: cons,
                high
            }
        );
        None
    };

    let (mut out_faulted, mut in_faulted) = (false, false);
    let mut before = Vec::new();
    let mut after = Vec::new();
    let mut data = vec![0; 4096];
    let mut buf = vec![0; 4096];

    for step in input.steps.iter().take(MAX_STEPS) {
        match *step {
            ByteStep::Local(ByteOp::Write { len, seed }) => {
                let Some(o) = out.as_mut() else { continue };
                let data = &mut data[..usize::from(len) % 4097];
                fill_pattern((u32::from(seed) << 16) | u32::from(len), data);
                mem.snapshot_into(&mut before);
                let cons = mem.load_u32(o.layout.cons);
                let r = o.tx.write(data);
                sticky(&mut out_faulted, &r, "write");
                let expected = o
                    .free_space(cons)
                    .map(|free| (free as usize).min(data.len()));
                assert_eq!(r, expected, "write of {}", data.len());
                mem.snapshot_into(&mut after);
                if let Ok(n) = r {
                    assert!(n <= data.len() && n <= o.layout.size as usize);
                    // Exactly these bytes and the producer index changed.
                    for (i, &b) in data[..n].iter().enumerate() {
                        before[data_offset(&o.layout, o.prod.wrapping_add(i as u32))] = b;
                    }
                    o.prod = o.prod.wrapping_add(n as u32);
                    before[o.layout.prod..o.layout.prod + 4].copy_from_slice(&o.prod.to_le_bytes());
                    // Never more than `size` outstanding against the index we validated.
                    assert!(o.prod.wrapping_sub(cons) <= o.layout.size);
                    if o.honest {
                        let free = o.layout.size as usize - o.fifo.len();
                        assert_eq!(n, free.min(data.len()), "honest write");
                        o.fifo.extend(&data[..n]);
                    }
                }
                assert!(before == after, "write changed bytes it does not own");
                assert_eq!(o.tx.is_broken(), o.broken);
            }
            ByteStep::Local(ByteOp::FreeSpace) => {
                let Some(o) = out.as_mut() else { continue };
                mem.snapshot_into(&mut before);
                let cons = mem.load_u32(o.layout.cons);
                let r = o.tx.free_space();
                sticky(&mut out_faulted, &r, "free_space");
                assert_eq!(r, o.free_space(cons), "free_space");
                if let Ok(free) = r {
                    assert!(free <= o.layout.size);
                    if o.honest {
                        assert_eq!(free as usize, o.layout.size as usize - o.fifo.len());
                    }
                }
                mem.snapshot_into(&mut after);
                assert!(before == after, "free_space wrote to the page");
                assert_eq!(o.tx.is_broken(), o.broken);
            }
            ByteStep::Local(ByteOp::Read { len }) => {
                let Some(i) = inn.as_mut() else { continue };
                let buf = &mut buf[..usize::from(len) % 4097];
                mem.snapshot_into(&mut before);
                let prod = mem.load_u32(i.layout.prod);
                let r = i.rx.read(buf);
                sticky(&mut in_faulted, &r, "read");
                let expected = i
                    .available(prod)
                    .map(|avail| (avail as usize).min(buf.len()));
                assert_eq!(r, expected, "read of {}", buf.len());
                mem.snapshot_into(&mut after);
                if let Ok(n) = r {
                    assert!(n <= buf.len() && n <= i.layout.size as usize);
                    for (k, &b) in buf[..n].iter().enumerate() {
                        let off = data_offset(&i.layout, i.cons.wrapping_add(k as u32));
                        assert_eq!(b, before[off], "read byte {k} is not array byte {off}");
                    }
                    if i.honest {
                        assert_eq!(n, i.fifo.len().min(buf.len()), "honest read");
                        for (k, &b) in buf[..n].iter().enumerate() {
                            assert_eq!(Some(b), i.fifo.pop_front(), "honest read byte {k}");
                        }
                    }
                    i.cons = i.cons.wrapping_add(n as u32);
                    before[i.layout.cons..i.layout.cons + 4].copy_from_slice(&i.cons.to_le_bytes());
                }
                assert!(before == after, "read changed bytes it does not own");
                assert_eq!(i.rx.is_broken(), i.broken);
            }
            ByteStep::Local(ByteOp::Available) => {
                let Some(i) = inn.as_mut() else { continue };
                mem.snapshot_into(&mut before);
                let prod = mem.load_u32(i.layout.prod);
                let r = i.rx.available();
                sticky(&mut in_faulted, &r, "available");
                assert_eq!(r, i.available(prod), "available");
                if let Ok(avail) = r {
                    assert!(avail <= i.layout.size);
                    if i.honest {
                        assert_eq!(avail as usize, i.fifo.len());
                    }
                }
                mem.snapshot_into(&mut after);
                assert!(before == after, "available wrote to the page");
                assert_eq!(i.rx.is_broken(), i.broken);
            }
            ByteStep::Peer(action) => peer(
                &mem,
                &out_l,
                &in_l,
                out.as_mut(),
                inn.as_mut(),
                action,
                &mut buf,
            ),
        }
    }
}

fn peer(
    mem: &SharedPages,
    out_l: &ByteRingLayout,
    in_l: &ByteRingLayout,
    mut out: Option<&mut Out<'_>>,
    mut inn: Option<&mut In<'_>>,
    action: BytePeerAction,
    scratch: &mut [u8],
) {
    let mut taint = |out_touched: bool, in_touched: bool| {
        if let (true, Some(o)) = (out_touched, out.as_deref_mut()) {
            o.honest = false;
        }
        if let (true, Some(i)) = (in_touched, inn.as_deref_mut()) {
            i.honest = false;
        }
    };
    match action {
        BytePeerAction::SetIndex { word, value } => {
            mem.store_u32(word.offset(out_l, in_l), value);
            taint(word.is_out(), !word.is_out());
        }
        BytePeerAction::NudgeIndex { word, delta } => {
            let off = word.offset(out_l, in_l);
            mem.store_u32(off, mem.load_u32(off).wrapping_add_signed(i32::from(delta)));
            taint(word.is_out(), !word.is_out());
        }
        BytePeerAction::Scribble { offset, len, seed } => {
            let off = usize::from(offset) % PAGE_SIZE;
            let bytes = &mut scratch[..usize::from(len)];
            fill_pattern(seed, bytes);
            mem.write_bytes(off, bytes);
            let r = off..(off + bytes.len()).min(PAGE_SIZE);
            if !r.is_empty() {
                taint(touches(out_l, r.clone()), touches(in_l, r));
            }
        }
        BytePeerAction::Read { len } => {
            // The honest consumer of "out": its own index is the one in memory.
            let (cons, prod) = (mem.load_u32(out_l.cons), mem.load_u32(out_l.prod));
            let avail = prod.wrapping_sub(cons);
            if avail > out_l.size {
                return; // an honest peer would reject this
            }
            let n = (usize::from(len) % 4097).min(avail as usize);
            for k in 0..n {
                let mut b = [0];
                mem.read_bytes(data_offset(out_l, cons.wrapping_add(k as u32)), &mut b);
                if let Some(o) = out.as_deref_mut().filter(|o| o.honest) {
                    assert_eq!(Some(b[0]), o.fifo.pop_front(), "peer read byte {k}");
                }
            }
            mem.store_u32(out_l.cons, cons.wrapping_add(n as u32));
        }
        BytePeerAction::Write { len, seed } => {
            // The honest producer of "in".
            let (cons, prod) = (mem.load_u32(in_l.cons), mem.load_u32(in_l.prod));
            let used = prod.wrapping_sub(cons);
            if used > in_l.size {
                return;
            }
            let n = (usize::from(len) % 4097).min((in_l.size - used) as usize);
            let bytes = &mut scratch[..n];
            fill_pattern((u32::from(seed) << 16 | u32::from(len)) ^ 0x5a5a, bytes);
            for (k, &b) in bytes.iter().enumerate() {
                mem.write_bytes(data_offset(in_l, prod.wrapping_add(k as u32)), &[b]);
            }
            if let Some(i) = inn.filter(|i| i.honest) {
                i.fifo.extend(&*bytes);
            }
            mem.store_u32(in_l.prod, prod.wrapping_add(n as u32));
        }
    }
}
