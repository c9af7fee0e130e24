//! The raw layer: one end of a vchan over shared memory the caller set up,
//! with no grants, event channels or xenstore. Calls report whether the peer
//! must be notified ([`Transfer::notify`]); sending the event is the
//! caller's. The owned [`Server`](crate::Server) and
//! [`Client`](crate::Client) are built on it.
//!
//! This is the only module that touches the shared page and ring pages, and
//! it does so only through [`SharedRegion`]: index words as atomics (each
//! peer index read once per decision and validated), ring bytes copied once,
//! the live and notify bytes through atomic operations on the word that
//! holds them.
//!
//! # Why not `xenpv_ring`'s byte rings
//! `ByteRingLayout` places the data array and both index words in one
//! memory. A vchan ring of order 12 or more keeps its indices in the shared
//! page and its data in separately granted pages, so it cannot be described
//! that way; and vchan's notify bits decide when to send events, which the
//! byte rings leave to the caller. This module is the equivalent safe layer
//! (no `unsafe`: checked [`SharedRegion`] accesses), used for every order so
//! there is one implementation, with two-segment bulk copies instead of
//! byte-by-byte ones.
//!
//! ```
//! use xenpv_shmem::TestPages;
//! use xenpv_vchan::raw::{Parts, RawEnd, RingRefs};
//! use xenpv_vchan::Orders;
//!
//! // One page seen by both ends, as a grant and its mapping are.
//! let page = TestPages::new(1);
//! let orders = Orders::for_sizes(1024, 2048)?;
//! let none = || Parts::<_, TestPages> { ctrl: page.clone(), left: None, right: None };
//! let mut server = RawEnd::server(none(), orders, &[]).map_err(|(e, _)| e)?;
//! let (peer_orders, _refs) = RawEnd::<_, TestPages>::peer_layout(&page, None)?;
//! let mut client = RawEnd::client(none(), peer_orders).map_err(|(e, _)| e)?;
//!
//! assert_eq!(client.write(b"ping")?.bytes, 4);
//! let mut buf = [0; 16];
//! let got = server.read(&mut buf)?;
//! assert_eq!(&buf[..got.bytes], b"ping");
//! # Ok::<(), xenpv_vchan::Error>(())
//! ```

use core::sync::atomic::{Ordering, fence};

use xenpv_grant::GrantRef;
use xenpv_shmem::{SharedMemory, SharedRegion};
use xenpv_sys::io::libxenvchan::{VCHAN_INTERFACE_GRANTS_OFFSET, VchanNotify};

use crate::error::{Error, PeerError};
use crate::layout::{Orders, PAGE_SIZE};

// Offsets in `struct vchan_interface` (checked against Xen's header in
// xenpv-sys).
const LEFT_CONS: usize = 0;
const LEFT_PROD: usize = 4;
const RIGHT_CONS: usize = 8;
const RIGHT_PROD: usize = 12;
const ORDERS: usize = 16;
/// `cli_live`, `srv_live`, `cli_notify`, `srv_notify`: one aligned word.
const FLAGS: usize = 20;
const CLI_LIVE: usize = 0;
const SRV_LIVE: usize = 1;
const CLI_NOTIFY: usize = 2;
const SRV_NOTIFY: usize = 3;

/// Live flag: this end has exited.
const LIVE_EXITED: u8 = 0;
/// Live flag: connected.
const LIVE_CONNECTED: u8 = 1;
/// Client live flag: the client has not connected yet.
const LIVE_WAITING: u8 = 2;

/// Most grant references `grants[]` can list: two multi-page rings.
pub const MAX_RING_REFS: usize = 2 * xenpv_grant::MAX_GRANT_PAGES;

/// Which end of the channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Allocates and grants the pages; reads `left`, writes `right`.
    Server,
    /// Maps the pages; writes `left`, reads `right`.
    Client,
}

/// The memory an end runs on: the shared page, and the granted (or mapped)
/// pages of each ring of order 12 or more (`None` for an in-page ring).
#[derive(Debug)]
pub struct Parts<C, D> {
    /// The shared page (`struct vchan_interface` and the in-page rings).
    pub ctrl: C,
    /// Pages of the client → server ring, if it is not in the shared page.
    pub left: Option<D>,
    /// Pages of the server → client ring, if it is not in the shared page.
    pub right: Option<D>,
}

/// The ring grant references a server listed in `grants[]`, copied out of
/// the shared page once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RingRefs {
    refs: [GrantRef; MAX_RING_REFS],
    left: usize,
    right: usize,
}

impl RingRefs {
    /// References of the left ring's pages, in order.
    pub fn left(&self) -> &[GrantRef] {
        self.refs.get(..self.left).unwrap_or(&[])
    }

    /// References of the right ring's pages, in order.
    pub fn right(&self) -> &[GrantRef] {
        self.refs
            .get(self.left..self.left + self.right)
            .unwrap_or(&[])
    }
}

/// The result of a read or write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[must_use = "when `notify` is set, the peer waits for an event"]
pub struct Transfer {
    /// Bytes moved.
    pub bytes: usize,
    /// The peer asked to be told about this (its notify bit was set, and
    /// has been cleared): send an event.
    pub notify: bool,
}

/// What the peer's live flag says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerState {
    /// The client has not connected yet (seen by a server only).
    Connecting,
    /// Connected.
    Open,
    /// Exited.
    Closed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Open,
    /// The peer's live flag said it exited: no more writes; reads drain.
    PeerClosed,
    /// A read reported [`Error::Closed`]: so will every later one.
    Drained,
    ShutDown,
    Broken,
}

/// One direction, from this end's point of view.
#[derive(Clone, Copy, Debug)]
struct Dir {
    /// Offset of the consumer index word in the shared page.
    cons_off: usize,
    prod_off: usize,
    order: u16,
    /// Offset of the data in the shared page, for in-page rings.
    in_page: Option<usize>,
    /// Our private index (consumer for rx, producer for tx).
    ours: u32,
    /// The peer's index as last validated.
    seen: u32,
}

impl Dir {
    fn size(&self) -> u32 {
        1 << self.order
    }
}

/// One end of a vchan over memory it owns. See the [module docs](self).
#[derive(Debug)]
pub struct RawEnd<C: SharedMemory, D: SharedMemory> {
    parts: Parts<C, D>,
    orders: Orders,
    role: Role,
    rx: Dir,
    tx: Dir,
    state: State,
    peer_connected: bool,
}

fn flag_mask(byte: usize, value: u8) -> u32 {
    let mut b = [0u8; 4];
    if let Some(slot) = b.get_mut(byte) {
        *slot = value;
    }
    u32::from_ne_bytes(b)
}

fn flag_of(word: u32, byte: usize) -> u8 {
    word.to_ne_bytes().get(byte).copied().unwrap_or(0)
}

/// `low <= index <= high` in wrapping u32 arithmetic.
pub(crate) fn in_window(index: u32, low: u32, high: u32) -> bool {
    index.wrapping_sub(low) <= high.wrapping_sub(low)
}

impl<C: SharedMemory, D: SharedMemory> RawEnd<C, D> {
    /// The memory fits the orders; the ring this end writes is writable
    /// (the one it only reads may be mapped read-only).
    fn check_parts(parts: &Parts<C, D>, orders: Orders, role: Role) -> Result<(), Error> {
        let ctrl = parts.ctrl.region();
        if ctrl.len() < PAGE_SIZE
            || ctrl.as_ptr().as_ptr() as usize % 8 != 0
            || !parts.ctrl.writable()
        {
            return Err(Error::Memory);
        }
        let client = role == Role::Client;
        let rings = [
            (orders.left(), &parts.left, client),
            (orders.right(), &parts.right, !client),
        ];
        for (order, pages, we_write) in rings {
            let fits = match (orders.in_page_offset(order), pages) {
                (Some(_), None) => true,
                (None, Some(d)) => {
                    d.region().len() >= 1usize << order && (d.writable() || !we_write)
                }
                _ => false,
            };
            if !fits {
                return Err(Error::Memory);
            }
        }
        Ok(())
    }

    fn build(parts: Parts<C, D>, orders: Orders, role: Role) -> Self {
        let left = Dir {
            cons_off: LEFT_CONS,
            prod_off: LEFT_PROD,
            order: orders.left(),
            in_page: orders.in_page_offset(orders.left()),
            ours: 0,
            seen: 0,
        };
        let right = Dir {
            cons_off: RIGHT_CONS,
            prod_off: RIGHT_PROD,
            order: orders.right(),
            in_page: orders.in_page_offset(orders.right()),
            ours: 0,
            seen: 0,
        };
        let (rx, tx) = match role {
            Role::Server => (left, right),
            Role::Client => (right, left),
        };
        Self {
            parts,
            orders,
            role,
            rx,
            tx,
            state: State::Open,
            peer_connected: false,
        }
    }

    /// Sets up the shared page as a server: zeroes it, writes the orders,
    /// `grants[]` (the left ring's references, then the right ring's: the
    /// ones of `parts.left` and `parts.right`), `cli_live = 2`,
    /// `srv_live = 1`, and asks the client to notify on writes. Call before
    /// the page is published. On failure the memory comes back.
    #[allow(clippy::result_large_err)]
    pub fn server(
        parts: Parts<C, D>,
        orders: Orders,
        grants: &[GrantRef],
    ) -> Result<Self, (Error, Parts<C, D>)> {
        if let Err(e) = Self::check_parts(&parts, orders, Role::Server) {
            return Err((e, parts));
        }
        if grants.len() != orders.left_pages() + orders.right_pages() {
            return Err((Error::Memory, parts));
        }
        let r = parts.ctrl.region();
        r.zero_all();
        let flags =
            u32::from_ne_bytes([LIVE_WAITING, LIVE_CONNECTED, VchanNotify::WRITE.bits(), 0]);
        let written = r
            .write(ORDERS, orders.left())
            .and_then(|()| r.write(ORDERS + 2, orders.right()))
            .and_then(|()| r.write(FLAGS, flags))
            .and_then(|()| {
                grants
                    .iter()
                    .enumerate()
                    .try_for_each(|(i, &g)| r.write(VCHAN_INTERFACE_GRANTS_OFFSET + 4 * i, g))
            });
        if written.is_err() {
            return Err((Error::Memory, parts));
        }
        fence(Ordering::SeqCst);
        Ok(Self::build(parts, orders, Role::Server))
    }

    /// Reads a server's header from its shared page, once: the orders
    /// (validated: [`Orders::from_peer`]) and the ring grant references
    /// (none repeated, none equal to `ctrl_ref`, the shared page's own
    /// reference, when given).
    pub fn peer_layout(ctrl: &C, ctrl_ref: Option<GrantRef>) -> Result<(Orders, RingRefs), Error> {
        let r = ctrl.region();
        let word: u32 = r.read(ORDERS).map_err(|_| Error::Memory)?;
        let [a, b, c, d] = word.to_ne_bytes();
        let orders = Orders::from_peer(u16::from_ne_bytes([a, b]), u16::from_ne_bytes([c, d]))?;
        let (left, right) = (orders.left_pages(), orders.right_pages());
        let mut refs = [0; MAX_RING_REFS];
        let n = left + right;
        let list = refs.get_mut(..n).ok_or(Error::Memory)?;
        let mut bytes = [0u8; 4 * MAX_RING_REFS];
        let raw = bytes.get_mut(..4 * n).ok_or(Error::Memory)?;
        r.read_bytes(VCHAN_INTERFACE_GRANTS_OFFSET, raw)
            .map_err(|_| Error::Memory)?;
        for (g, chunk) in list.iter_mut().zip(raw.chunks_exact(4)) {
            let mut w = [0u8; 4];
            w.copy_from_slice(chunk);
            *g = u32::from_ne_bytes(w);
        }
        for (i, g) in list.iter().enumerate() {
            let repeated = list.get(..i).is_some_and(|before| before.contains(g));
            if repeated || Some(*g) == ctrl_ref {
                return Err(Error::Peer(PeerError::GrantRefs));
            }
        }
        Ok((orders, RingRefs { refs, left, right }))
    }

    /// Attaches as the client to a page a server set up, with the `orders`
    /// [`peer_layout`](Self::peer_layout) returned and the ring pages mapped
    /// from its references: checks the indices found there, sets
    /// `cli_live = 1` and asks the server to notify on writes. The caller
    /// then notifies the server (libxenvchan's server waits for that
    /// event). On failure the memory comes back.
    #[allow(clippy::result_large_err)]
    pub fn client(parts: Parts<C, D>, orders: Orders) -> Result<Self, (Error, Parts<C, D>)> {
        if let Err(e) = Self::check_parts(&parts, orders, Role::Client) {
            return Err((e, parts));
        }
        let mut this = Self::build(parts, orders, Role::Client);
        if let Err(e) = this.adopt_indices() {
            return Err((e, this.parts));
        }
        let r = this.parts.ctrl.region();
        fence(Ordering::Release);
        if r.write(FLAGS + CLI_LIVE, LIVE_CONNECTED).is_err() {
            return Err((Error::Memory, this.parts));
        }
        this.request_notify(VchanNotify::WRITE);
        this.peer_connected = true;
        Ok(this)
    }

    /// Client attach: takes over the indices the server left (it may have
    /// written before we connected), validating both pairs.
    fn adopt_indices(&mut self) -> Result<(), Error> {
        let r = self.parts.ctrl.region();
        let load = |off| {
            r.load_index(off, Ordering::Acquire)
                .map_err(|_| Error::Memory)
        };
        let (rc, rp) = (load(self.rx.cons_off)?, load(self.rx.prod_off)?);
        let (tc, tp) = (load(self.tx.cons_off)?, load(self.tx.prod_off)?);
        let high = rc.wrapping_add(self.rx.size());
        if !in_window(rp, rc, high) {
            return Err(PeerError::ProducerIndex {
                published: rp,
                low: rc,
                high,
            }
            .into());
        }
        let low = tp.wrapping_sub(self.tx.size());
        if !in_window(tc, low, tp) {
            return Err(PeerError::ConsumerIndex {
                published: tc,
                low,
                high: tp,
            }
            .into());
        }
        self.rx.ours = rc;
        self.rx.seen = rp;
        self.tx.ours = tp;
        self.tx.seen = tc;
        Ok(())
    }

    fn ctrl(&self) -> SharedRegion<'_> {
        self.parts.ctrl.region()
    }

    /// The word holding the live and notify bytes.
    fn flags(&self) -> Result<&core::sync::atomic::AtomicU32, Error> {
        self.parts
            .ctrl
            .region()
            .index(FLAGS)
            .map_err(|_| Error::Memory)
    }

    fn own_bytes(&self) -> (usize, usize) {
        match self.role {
            Role::Server => (SRV_LIVE, SRV_NOTIFY),
            Role::Client => (CLI_LIVE, CLI_NOTIFY),
        }
    }

    fn peer_bytes(&self) -> (usize, usize) {
        match self.role {
            Role::Server => (CLI_LIVE, CLI_NOTIFY),
            Role::Client => (SRV_LIVE, SRV_NOTIFY),
        }
    }

    /// Sets `bit` in the peer's notify byte: "tell me when you do this".
    fn request_notify(&self, bit: VchanNotify) {
        if let Ok(w) = self.flags() {
            w.fetch_or(flag_mask(self.peer_bytes().1, bit.bits()), Ordering::SeqCst);
        }
        fence(Ordering::SeqCst);
    }

    /// Clears `bit` in our notify byte; whether it was set (the peer asked).
    fn take_notify(&self, bit: VchanNotify) -> bool {
        fence(Ordering::SeqCst);
        let byte = self.own_bytes().1;
        self.flags().is_ok_and(|w| {
            let prev = w.fetch_and(!flag_mask(byte, bit.bits()), Ordering::SeqCst);
            flag_of(prev, byte) & bit.bits() != 0
        })
    }

    /// Breaks the channel: clears our live flag (the peer sees us gone).
    fn fail(&mut self, e: PeerError) -> Error {
        self.state = State::Broken;
        self.clear_own_live();
        Error::Peer(e)
    }

    fn clear_own_live(&self) {
        if let Ok(w) = self.flags() {
            w.fetch_and(!flag_mask(self.own_bytes().0, 0xff), Ordering::SeqCst);
        }
    }

    fn check_usable(&self) -> Result<(), Error> {
        match self.state {
            State::Open | State::PeerClosed | State::Drained => Ok(()),
            State::ShutDown => Err(Error::ShutDown),
            State::Broken => Err(Error::Broken),
        }
    }

    /// The peer's live flag, read once and validated. A violation breaks
    /// the channel.
    /// Once the peer was seen closed, it stays closed (a peer raising its
    /// flag again is not believed).
    pub fn peer_state(&mut self) -> Result<PeerState, Error> {
        self.check_usable()?;
        if matches!(self.state, State::PeerClosed | State::Drained) {
            return Ok(PeerState::Closed);
        }
        let word = self.flags()?.load(Ordering::Acquire);
        let value = flag_of(word, self.peer_bytes().0);
        match value {
            LIVE_EXITED => {
                self.state = State::PeerClosed;
                Ok(PeerState::Closed)
            }
            LIVE_CONNECTED => {
                self.peer_connected = true;
                Ok(PeerState::Open)
            }
            LIVE_WAITING if self.role == Role::Server && !self.peer_connected => {
                Ok(PeerState::Connecting)
            }
            _ => Err(self.fail(PeerError::LiveFlag { value })),
        }
    }

    /// The peer's producer index for our receive ring, read once and
    /// validated: it may only move forward, by at most the free space.
    fn load_rx_prod(&mut self) -> Result<u32, Error> {
        let prod = self
            .ctrl()
            .load_index(self.rx.prod_off, Ordering::Acquire)
            .map_err(|_| Error::Memory)?;
        let high = self.rx.ours.wrapping_add(self.rx.size());
        if !in_window(prod, self.rx.seen, high) {
            let low = self.rx.seen;
            return Err(self.fail(PeerError::ProducerIndex {
                published: prod,
                low,
                high,
            }));
        }
        self.rx.seen = prod;
        Ok(prod.wrapping_sub(self.rx.ours))
    }

    /// The peer's consumer index for our send ring, read once and
    /// validated: it may only move forward, up to what we produced.
    fn load_tx_cons(&mut self) -> Result<u32, Error> {
        let cons = self
            .ctrl()
            .load_index(self.tx.cons_off, Ordering::Acquire)
            .map_err(|_| Error::Memory)?;
        if !in_window(cons, self.tx.seen, self.tx.ours) {
            let (low, high) = (self.tx.seen, self.tx.ours);
            return Err(self.fail(PeerError::ConsumerIndex {
                published: cons,
                low,
                high,
            }));
        }
        self.tx.seen = cons;
        Ok(self.tx.size() - self.tx.ours.wrapping_sub(cons))
    }

    /// Bytes ready to read (reads the peer's index once).
    pub fn available(&mut self) -> Result<usize, Error> {
        self.check_usable()?;
        Ok(self.load_rx_prod()? as usize)
    }

    /// Bytes that can be written now (reads the peer's index once).
    pub fn space(&mut self) -> Result<usize, Error> {
        self.check_usable()?;
        if matches!(self.state, State::PeerClosed | State::Drained) {
            return Err(Error::Closed);
        }
        Ok(self.load_tx_cons()? as usize)
    }

    fn data(&self, dir: Dir) -> Option<SharedRegion<'_>> {
        let size = 1usize << dir.order;
        match dir.in_page {
            Some(off) => self.ctrl().subregion(off, size).ok(),
            None => {
                let mem = if dir.cons_off == LEFT_CONS {
                    self.parts.left.as_ref()
                } else {
                    self.parts.right.as_ref()
                };
                mem.and_then(|m| m.region().subregion(0, size).ok())
            }
        }
    }

    /// Where `n` bytes from `dir`'s private index go in its data: the data
    /// region, the masked start, and how many fit before the wrap (the rest
    /// start at 0).
    fn span(&self, dir: Dir, n: usize) -> Result<(SharedRegion<'_>, usize, usize), Error> {
        let size = dir.size() as usize;
        let start = (dir.ours as usize) & (size - 1);
        let region = self.data(dir).ok_or(Error::Memory)?;
        Ok((region, start, n.min(size - start)))
    }

    /// Reads up to `buf.len()` bytes: what is there now, possibly fewer
    /// (stream semantics). `bytes == 0` means nothing yet; once the peer has
    /// closed and everything it sent has been read, [`Error::Closed`].
    /// Asks the peer to notify on its next write when this read leaves
    /// less than `buf.len()` bytes, as libxenvchan does.
    pub fn read(&mut self, buf: &mut [u8]) -> Result<Transfer, Error> {
        self.check_usable()?;
        if self.state == State::Drained {
            return Err(Error::Closed);
        }
        let mut avail = self.load_rx_prod()? as usize;
        if avail < buf.len() {
            self.request_notify(VchanNotify::WRITE);
            avail = self.load_rx_prod()? as usize;
        }
        if avail == 0 {
            // Closed only if nothing was written before the flag dropped:
            // the flag first, then the index again.
            if self.peer_state()? == PeerState::Closed && self.load_rx_prod()? == 0 {
                self.state = State::Drained;
                return Err(Error::Closed);
            }
            return Ok(Transfer {
                bytes: 0,
                notify: false,
            });
        }
        let n = avail.min(buf.len());
        if n == 0 {
            return Ok(Transfer {
                bytes: 0,
                notify: false,
            });
        }
        let dst = buf.get_mut(..n).ok_or(Error::Memory)?;
        let (region, start, first) = self.span(self.rx, n)?;
        let (a, b) = dst.split_at_mut_checked(first).ok_or(Error::Memory)?;
        region
            .read_bytes(start, a)
            .and_then(|()| region.read_bytes(0, b))
            .map_err(|_| Error::Memory)?;
        self.rx.ours = self.rx.ours.wrapping_add(n as u32);
        self.ctrl()
            .store_index(self.rx.cons_off, self.rx.ours, Ordering::Release)
            .map_err(|_| Error::Memory)?;
        let notify = self.take_notify(VchanNotify::READ);
        Ok(Transfer { bytes: n, notify })
    }

    /// Writes as much of `data` as fits now (possibly nothing: `bytes ==
    /// 0`). [`Error::Closed`] once the peer has exited. Asks the peer to
    /// notify on its next read when not all of `data` fits.
    pub fn write(&mut self, data: &[u8]) -> Result<Transfer, Error> {
        self.check_usable()?;
        if self.peer_state()? == PeerState::Closed {
            return Err(Error::Closed);
        }
        let mut space = self.load_tx_cons()? as usize;
        if space < data.len() {
            self.request_notify(VchanNotify::READ);
            space = self.load_tx_cons()? as usize;
        }
        let n = space.min(data.len());
        if n == 0 {
            return Ok(Transfer {
                bytes: 0,
                notify: false,
            });
        }
        let src = data.get(..n).ok_or(Error::Memory)?;
        let (region, start, first) = self.span(self.tx, n)?;
        let (a, b) = src.split_at_checked(first).ok_or(Error::Memory)?;
        region
            .write_bytes(start, a)
            .and_then(|()| region.write_bytes(0, b))
            .map_err(|_| Error::Memory)?;
        self.tx.ours = self.tx.ours.wrapping_add(n as u32);
        self.ctrl()
            .store_index(self.tx.prod_off, self.tx.ours, Ordering::Release)
            .map_err(|_| Error::Memory)?;
        let notify = self.take_notify(VchanNotify::WRITE);
        Ok(Transfer { bytes: n, notify })
    }

    /// Closes this end: clears its live flag (after everything written so
    /// far is visible). Notify the peer afterwards. Idempotent.
    pub fn shutdown(&mut self) {
        fence(Ordering::Release);
        self.clear_own_live();
        if self.state != State::Broken {
            self.state = State::ShutDown;
        }
    }

    /// Records that the peer is gone without having cleared its live flag
    /// (its domain died, or it closed its event channel): from now on the
    /// channel is closed as if it had (reads drain what is there first).
    pub fn peer_gone(&mut self) {
        if self.state == State::Open {
            self.state = State::PeerClosed;
        }
    }

    /// Whether a peer violation broke the channel.
    pub fn is_broken(&self) -> bool {
        self.state == State::Broken
    }

    /// This end's role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The ring orders.
    pub fn orders(&self) -> Orders {
        self.orders
    }

    /// The memory back, ending this end (its live flag is left as it is:
    /// [`shutdown`](Self::shutdown) first to tell the peer).
    pub fn into_parts(self) -> Parts<C, D> {
        self.parts
    }

    /// The memory this end runs on.
    pub fn parts(&self) -> &Parts<C, D> {
        &self.parts
    }
}

/// Model-based test of the index arithmetic and the notify decisions: both
/// ends over one page, random operations from indices anywhere in `u32`
/// (so wrap-around is exercised), against a plain model — two queues and
/// libxenvchan's notify-bit rules.
#[cfg(test)]
mod model {
    use std::collections::VecDeque;
    use std::vec::Vec;

    use proptest::prelude::*;
    use xenpv_shmem::TestPages;

    use super::*;

    extern crate std;

    #[derive(Clone, Debug)]
    enum Op {
        Write { server: bool, len: usize },
        Read { server: bool, len: usize },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (any::<bool>(), 0usize..5000).prop_map(|(server, len)| Op::Write { server, len }),
            (any::<bool>(), 0usize..5000).prop_map(|(server, len)| Op::Read { server, len }),
        ]
    }

    /// Model of one direction plus the notify bytes.
    struct Model {
        /// [0]: client → server, [1]: server → client.
        queues: [VecDeque<u8>; 2],
        sizes: [usize; 2],
        /// Bits each end asked the *other* to honour: [server's own
        /// (srv_notify), client's own (cli_notify)].
        srv_notify: u8,
        cli_notify: u8,
    }

    const W: u8 = 1;
    const R: u8 = 2;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn raw_ends_match_the_model(
            start in any::<u32>(),
            big in any::<bool>(),
            ops in proptest::collection::vec(op(), 1..60),
        ) {
            // In-page rings (1 KiB / 2 KiB), or 8 KiB / 4 KiB in pages.
            let (orders, pages) = if big {
                (Orders::for_sizes(8192, 4096).unwrap(), Some((TestPages::new(2), TestPages::new(1))))
            } else {
                (Orders::for_sizes(1024, 2048).unwrap(), None)
            };
            let ctrl = TestPages::new(1);
            let parts = || Parts {
                ctrl: ctrl.clone(),
                left: pages.as_ref().map(|p| p.0.clone()),
                right: pages.as_ref().map(|p| p.1.clone()),
            };
            let refs: &[GrantRef] = if big { &[1, 2, 3] } else { &[] };
            let mut server = RawEnd::server(parts(), orders, refs).map_err(|(e, _)| e).unwrap();
            // Move every index to `start` (as after 4 GiB of traffic).
            for off in [LEFT_CONS, LEFT_PROD, RIGHT_CONS, RIGHT_PROD] {
                ctrl.region().store_index(off, start, Ordering::Relaxed).unwrap();
            }
            for d in [&mut server.rx, &mut server.tx] {
                d.ours = start;
                d.seen = start;
            }
            let (o, _) = RawEnd::<TestPages, TestPages>::peer_layout(&ctrl, None).unwrap();
            prop_assert_eq!(o, orders);
            let mut client = RawEnd::client(parts(), orders).map_err(|(e, _)| e).unwrap();
            let mut m = Model {
                queues: [VecDeque::new(), VecDeque::new()],
                sizes: [1 << orders.left(), 1 << orders.right()],
                srv_notify: W, // the client asked at connect
                cli_notify: W, // the server asked at set-up
            };
            let mut counter = 0u8;
            for op in ops {
                match op {
                    Op::Write { server: is_server, len } => {
                        let data: Vec<u8> = (0..len).map(|_| { counter = counter.wrapping_add(1); counter }).collect();
                        let dir = usize::from(is_server);
                        let space = m.sizes[dir] - m.queues[dir].len();
                        let (own, peer) = if is_server { (&mut m.srv_notify, &mut m.cli_notify) } else { (&mut m.cli_notify, &mut m.srv_notify) };
                        if space < len { *peer |= R; }
                        let n = space.min(len);
                        let notify = n > 0 && *own & W != 0;
                        if n > 0 { *own &= !W; }
                        m.queues[dir].extend(&data[..n]);
                        let end = if is_server { &mut server } else { &mut client };
                        let t = end.write(&data).unwrap();
                        prop_assert_eq!(t, Transfer { bytes: n, notify });
                    }
                    Op::Read { server: is_server, len } => {
                        let dir = usize::from(!is_server);
                        let avail = m.queues[dir].len();
                        let (own, peer) = if is_server { (&mut m.srv_notify, &mut m.cli_notify) } else { (&mut m.cli_notify, &mut m.srv_notify) };
                        if avail < len { *peer |= W; }
                        let n = avail.min(len);
                        let notify = n > 0 && *own & R != 0;
                        if n > 0 { *own &= !R; }
                        let expect: Vec<u8> = m.queues[dir].drain(..n).collect();
                        let end = if is_server { &mut server } else { &mut client };
                        let mut buf = std::vec![0u8; len];
                        let t = end.read(&mut buf).unwrap();
                        prop_assert_eq!(t, Transfer { bytes: n, notify });
                        prop_assert_eq!(&buf[..n], &expect[..]);
                    }
                }
                // The shared words are what the model says.
                let r = ctrl.region();
                let idx = |off| r.load_index(off, Ordering::Relaxed).unwrap();
                prop_assert_eq!(idx(LEFT_PROD).wrapping_sub(idx(LEFT_CONS)) as usize, m.queues[0].len());
                prop_assert_eq!(idx(RIGHT_PROD).wrapping_sub(idx(RIGHT_CONS)) as usize, m.queues[1].len());
                let flags = r.read::<u32>(FLAGS).unwrap().to_ne_bytes();
                prop_assert_eq!(flags, [LIVE_CONNECTED, LIVE_CONNECTED, m.cli_notify, m.srv_notify]);
            }
        }
    }

    #[test]
    fn window_check_wraps() {
        assert!(in_window(5, u32::MAX - 2, 10));
        assert!(!in_window(11, u32::MAX - 2, 10));
        assert!(!in_window(u32::MAX - 3, u32::MAX - 2, 10));
        assert!(in_window(7, 7, 7));
    }
}
