//! The FIFO ABI against a fake Xen that links events like event_fifo.c:
//! consumption order vs a model of the queues, array expansion, masking,
//! fallback, and corrupted queues.

mod common;

use std::collections::VecDeque;

use common::FakeXen;
use proptest::prelude::*;
use xenpv_evtchn::{Abi, Config, Error, EventChannels, IpiPort, Outcome, Port, StormPolicy};
use xenpv_sys::errno::{XenErrno, XenError};

const N: usize = 10;

fn config() -> Config {
    Config {
        abi: Abi::Fifo,
        storm: StormPolicy::DISABLED,
        ..Config::DEFAULT
    }
}

/// Xen's queues and event-word bits, as sets and lists.
#[derive(Debug, Default)]
struct Model {
    pending: [bool; N],
    masked: [bool; N],
    linked: [bool; N],
    prio: [usize; N],
    queues: [VecDeque<usize>; 16],
}

impl Model {
    /// `evtchn_fifo_set_pending`.
    fn raise(&mut self, i: usize) {
        self.pending[i] = true;
        if !self.masked[i] && !self.linked[i] {
            self.linked[i] = true;
            self.queues[self.prio[i]].push_back(i);
        }
    }

    /// `evtchn_fifo_unmask` (whether done locally or by Xen, same effect).
    fn unmask(&mut self, i: usize) {
        self.masked[i] = false;
        if self.pending[i] {
            self.raise(i);
        }
    }

    /// The guest's consumption with the crate's bounds: highest priority
    /// first, at most `budget` dispatches and `2 * budget + 16` steps.
    fn poll(&mut self, budget: u32, refire: u16) -> Vec<usize> {
        let mut out = vec![];
        let max_steps = budget * 2 + 16;
        let mut steps = 0;
        while let Some(q) = self.queues.iter().position(|q| !q.is_empty()) {
            if out.len() as u32 >= budget || steps >= max_steps {
                break;
            }
            steps += 1;
            let i = self.queues[q].pop_front().unwrap();
            self.linked[i] = false;
            if self.pending[i] && !self.masked[i] {
                self.pending[i] = false;
                out.push(i);
                if refire & (1 << i) != 0 {
                    self.raise(i);
                }
            }
        }
        out
    }
}

fn setup<'x>(
    xen: &'x FakeXen,
    prio: &[usize; N],
) -> (EventChannels<&'x FakeXen, 16>, Vec<IpiPort>) {
    let mut ev = EventChannels::new(xen, config()).unwrap();
    assert_eq!(ev.abi(), Abi::Fifo);
    assert_eq!(ev.fifo_array_pages(), 1);
    let handles: Vec<_> = (0..N).map(|_| ev.bind_ipi(0).unwrap()).collect();
    for (h, &p) in handles.iter().zip(prio) {
        ev.set_priority(h, p as u32).unwrap();
    }
    (ev, handles)
}

#[derive(Clone, Debug)]
enum Op {
    Raise(usize),
    Mask(usize),
    Unmask(usize),
    Poll { budget: u32, refire: u16 },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        5 => (0..N).prop_map(Op::Raise),
        1 => (0..N).prop_map(Op::Mask),
        1 => (0..N).prop_map(Op::Unmask),
        3 => (1u32..5, any::<u16>()).prop_map(|(budget, refire)| Op::Poll { budget, refire }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// The exact dispatch sequence of every poll matches the model of Xen's
    /// queues: priority order, arrival order within a priority, coalescing
    /// of events raised while linked, masked events kept until unmask and
    /// then re-queued, re-raises from inside handlers queued at the tail.
    #[test]
    fn consumption_matches_model(
        prio in proptest::array::uniform10(prop_oneof![Just(0usize), Just(3), Just(7), Just(15)]),
        ops in proptest::collection::vec(op(), 1..80),
    ) {
        let xen = FakeXen::new();
        let (mut ev, handles) = setup(&xen, &prio);
        let ports: Vec<Port> = handles.iter().map(|h| h.port()).collect();
        let idx = |p: Port| ports.iter().position(|&q| q == p).expect("unknown port");
        let mut m = Model { prio, ..Model::default() };
        for op in ops {
            match op {
                Op::Raise(i) => {
                    xen.raise(ports[i].raw());
                    m.raise(i);
                }
                Op::Mask(i) => {
                    ev.mask(&handles[i]);
                    m.masked[i] = true;
                }
                Op::Unmask(i) => {
                    ev.unmask(&handles[i]).unwrap();
                    m.unmask(i);
                }
                Op::Poll { budget, refire } => {
                    let mut got = vec![];
                    ev.poll_with_budget(budget, |p| {
                        let i = idx(p);
                        got.push(i);
                        if refire & (1 << i) != 0 {
                            xen.raise(p.raw());
                        }
                        Outcome::Work
                    });
                    let want = m.poll(budget, refire);
                    prop_assert_eq!(got, want);
                }
            }
        }
        for (i, h) in handles.iter().enumerate() {
            ev.unmask(h).unwrap();
            m.unmask(i);
        }
        let mut got = vec![];
        for _ in 0..8 {
            let r = ev.poll_with_budget(64, |p| { got.push(idx(p)); Outcome::Work });
            if !r.more_pending { break; }
        }
        prop_assert_eq!(got, m.poll(64, 0));
        prop_assert!(m.pending.iter().all(|p| !p));
        prop_assert_eq!(ev.stats().bad_links, 0);
    }
}

#[test]
fn higher_priority_first_then_arrival_order() {
    let xen = FakeXen::new();
    let prio = [7, 7, 0, 15, 7, 0, 3, 15, 7, 7];
    let (mut ev, handles) = setup(&xen, &prio);
    for i in [0, 1, 3, 2, 6, 5, 4] {
        xen.raise(handles[i].port().raw());
    }
    let mut got = vec![];
    ev.poll(|p| {
        got.push(handles.iter().position(|h| h.port() == p).unwrap());
        Outcome::Work
    });
    assert_eq!(got, [2, 5, 6, 0, 1, 4, 3]);
}

#[test]
fn masked_event_is_kept_and_delivered_once_after_unmask() {
    let xen = FakeXen::new();
    let (mut ev, handles) = setup(&xen, &[7; N]);
    let h = &handles[4];
    ev.mask(h);
    for _ in 0..3 {
        xen.raise(h.port().raw());
    }
    assert_eq!(ev.poll(|_| Outcome::Work).dispatched, 0);
    assert!(ev.is_pending(h.port()));
    let calls = xen.unmask_calls();
    ev.unmask(h).unwrap();
    assert_eq!(xen.unmask_calls(), calls + 1, "pending: Xen must relink it");
    assert_eq!(ev.poll(|_| Outcome::Work).dispatched, 1);
    // Not pending: local compare-exchange, no hypercall.
    ev.mask(h);
    ev.unmask(h).unwrap();
    assert_eq!(xen.unmask_calls(), calls + 1);
    assert!(!ev.is_masked(h.port()));
}

#[test]
fn array_grows_with_ports() {
    let xen = FakeXen::new();
    xen.restrict_free_ports(&[5, 1500, 3000]);
    let mut ev: EventChannels<_, 4> = EventChannels::new(&xen, config()).unwrap();
    let a = ev.bind_ipi(0).unwrap();
    assert_eq!(ev.fifo_array_pages(), 1);
    let b = ev.bind_ipi(0).unwrap();
    assert_eq!(ev.fifo_array_pages(), 2);
    let c = ev.bind_ipi(0).unwrap();
    assert_eq!((c.port().raw(), ev.fifo_array_pages()), (3000, 3));
    c.notify(&xen).unwrap();
    a.notify(&xen).unwrap();
    let mut got = vec![];
    ev.poll(|p| {
        got.push(p.raw());
        Outcome::Work
    });
    assert_eq!(got, [3000, 5]);
    // Fresh array pages start masked: an unregistered port in them is held.
    xen.raise(1501);
    assert!(ev.is_masked(Port::new(1501).unwrap()));
    assert_eq!(ev.poll(|_| Outcome::Work).dispatched, 0);
    for h in [a, b, c] {
        ev.close(h).unwrap();
    }
}

#[test]
fn falls_back_to_two_level_when_xen_refuses() {
    let xen = FakeXen::without_fifo();
    let mut ev: EventChannels<_, 4> = EventChannels::new(&xen, config()).unwrap();
    assert_eq!(ev.abi(), Abi::TwoLevel);
    assert_eq!(
        ev.fifo_fallback(),
        Some(Error::Xen(XenError::Errno(XenErrno::Enosys)))
    );
    let ipi = ev.bind_ipi(0).unwrap();
    ipi.notify(&xen).unwrap();
    assert_eq!(ev.poll(|_| Outcome::Work).dispatched, 1);
    ev.close(ipi).unwrap();
}

/// A corrupted queue (head outside the array, a self-link) is survived:
/// bounded, counted, no panic, and real events still flow.
#[test]
fn corrupt_queue_is_bounded() {
    let xen = FakeXen::new();
    let (mut ev, handles) = setup(&xen, &[7; N]);
    xen.corrupt_queue(2, 50_000);
    let r = ev.poll(|_| Outcome::Work);
    assert_eq!(r.dispatched, 0);
    assert_eq!(ev.stats().bad_links, 1);

    // A word linking to itself, pending: dispatched once, then the loop ends.
    let p = handles[1].port().raw();
    xen.set_fifo_word(p, (1 << 31) | (1 << 29) | p);
    xen.corrupt_queue(5, p);
    let mut n = 0;
    let r = ev.poll(|_| {
        n += 1;
        Outcome::Work
    });
    assert_eq!(n, 1);
    assert!(!r.more_pending);

    handles[0].notify(&xen).unwrap();
    assert_eq!(ev.poll(|_| Outcome::Work).dispatched, 1);
}
