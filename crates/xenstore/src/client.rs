//! The xenstore client: one request at a time, replies matched by request id,
//! watch events queued in a bounded queue, and every call bounded in the
//! waits it makes and the messages it reads, whatever xenstored sends.

use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;
use core::fmt;

use xenpv_sys::io::xs_wire::XsdSockmsgType;
use xenpv_sys::xen::DomId;

use crate::perms::{Perm, PermList};
use crate::transport::{Transport, TransportError};
use crate::wire::{
    HEADER_LEN, Header, MESSAGE_MAX, Message, Reply, Request, WatchEvent, WireError, XsError,
};

/// Why a client operation failed.
///
/// Two kinds of failure leave the connection usable and say nothing about
/// whether a request took effect: [`Error::Stalled`] (xenstored stayed
/// silent) and [`Error::Flooded`] (xenstored kept sending other messages).
/// A caller may retry them later; the protocol and transport failures break
/// the connection for good.
///
/// ```
/// use xenpv_xenstore::Error;
/// use xenpv_xenstore::wire::XsError;
/// fn worth_retrying(e: &Error) -> bool {
///     matches!(e, Error::Stalled | Error::Flooded | Error::Xs(XsError::Again))
/// }
/// assert!(worth_retrying(&Error::Flooded));
/// assert!(!worth_retrying(&Error::Broken));
/// assert_eq!(Error::Stalled.to_string(), "xenstored does not answer");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// xenstored answered with an error (`ENOENT`, `EACCES`, `EAGAIN`, ...).
    Xs(XsError),
    /// The request's arguments are invalid (bad path or token, too long);
    /// nothing was sent.
    InvalidArgument(WireError),
    /// xenstored sent bytes that are not a valid reply. The connection is now
    /// broken.
    Protocol(WireError),
    /// The transport failed. The connection is now broken.
    Transport(TransportError),
    /// The call waited [`Config::max_waits`] times without getting what it
    /// waits for (its reply, room to send, or a watch event). If this
    /// happened in the middle of sending a message, the connection is broken;
    /// otherwise a late reply is discarded when it arrives, and whether the
    /// request took effect is unknown.
    Stalled,
    /// The call read [`Config::max_messages`] messages (stray replies, watch
    /// events) without getting what it waits for: xenstored keeps talking
    /// but does not answer. Watch events read meanwhile are queued as usual
    /// (up to [`Config::event_capacity`]). As for [`Error::Stalled`], the
    /// connection is broken only if this happened in the middle of sending a
    /// message; otherwise the reply, if it ever comes, is discarded as stray,
    /// and whether the request took effect is unknown.
    Flooded,
    /// An earlier protocol or transport failure broke the connection.
    Broken,
    /// A transaction kept conflicting (`EAGAIN`) beyond
    /// `Config::max_tx_retries` retries.
    TooManyRetries,
    /// A node's value is not what the caller asked for (e.g. not UTF-8).
    BadValue(WireError),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Xs(e) => write!(f, "xenstored: {e}"),
            Self::InvalidArgument(e) => write!(f, "invalid argument: {e}"),
            Self::Protocol(e) => write!(f, "xenstore protocol violation: {e}"),
            Self::Transport(e) => write!(f, "xenstore transport: {e}"),
            Self::Stalled => f.write_str("xenstored does not answer"),
            Self::Flooded => f.write_str("xenstored sends other messages but does not answer"),
            Self::Broken => f.write_str("xenstore connection is broken"),
            Self::TooManyRetries => f.write_str("transaction kept conflicting"),
            Self::BadValue(e) => write!(f, "malformed value: {e}"),
        }
    }
}

impl core::error::Error for Error {}

impl From<XsError> for Error {
    fn from(e: XsError) -> Self {
        Self::Xs(e)
    }
}

/// Client limits.
///
/// Each call of the client (a request, [`Client::poll_events`],
/// [`Client::wait_event`]) ends after at most `max_waits` waits and
/// `max_messages` messages read, whatever xenstored sends or does not send:
/// its time is bounded by `max_waits` times the transport's wait plus the
/// handling of `max_messages` messages of at most
/// [`MESSAGE_MAX`](crate::wire::MESSAGE_MAX) bytes each.
/// [`Client::transaction`] makes at most `max_tx_retries + 1` attempts of
/// such calls.
///
/// ```
/// use xenpv_xenstore::Config;
/// // A guest whose wait hook sleeps up to 5 ms: give up on a silent
/// // xenstored after about 5 s, and on a chatty one after 1024 messages.
/// let config = Config { max_waits: 1000, max_messages: 1024, ..Config::DEFAULT };
/// assert_eq!(config.event_capacity, 64);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// Watch events kept until the caller takes them; beyond this, events are
    /// dropped and counted ([`Client::dropped_events`]). At least 1.
    pub event_capacity: usize,
    /// [`Transport::wait`]s one call may make, in total, before
    /// [`Error::Stalled`]. Bytes arriving do not reset the count, so a peer
    /// that trickles a byte per wait cannot stretch a call either.
    pub max_waits: u32,
    /// Messages one call may read before [`Error::Flooded`]: its reply, and
    /// the stray replies and watch events before it. At least 1 (0 is taken
    /// as 1).
    pub max_messages: u32,
    /// Retries of a transaction that ends with `EAGAIN`.
    pub max_tx_retries: u32,
}

impl Config {
    /// 64 events, 1000 waits and 4096 messages per call, 16 retries.
    ///
    /// 4096 messages is far more than the reply plus the watch events an
    /// honest xenstored sends during one request (every watch event is read
    /// and counted even when the queue is full, so a backlog drains a few
    /// thousand at a time), and caps what a hostile one can make a call
    /// process at about 16 MiB.
    pub const DEFAULT: Self = Self {
        event_capacity: 64,
        max_waits: 1000,
        max_messages: 4096,
        max_tx_retries: 16,
    };
}

impl Default for Config {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// An owned watch event.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct OwnedWatchEvent {
    /// The path that changed.
    pub path: String,
    /// The watch's token.
    pub token: String,
}

impl From<WatchEvent<'_>> for OwnedWatchEvent {
    fn from(e: WatchEvent<'_>) -> Self {
        Self {
            path: e.path.into(),
            token: e.token.into(),
        }
    }
}

/// Counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Requests sent.
    pub requests: u64,
    /// Watch events received.
    pub events: u64,
    /// Watch events dropped because the queue was full (since creation).
    pub dropped_events: u64,
    /// Replies whose request id matched nothing outstanding (late replies
    /// after [`Error::Stalled`] or [`Error::Flooded`]), discarded.
    pub stray_replies: u64,
    /// Calls that ended with [`Error::Flooded`].
    pub floods: u64,
    /// Transaction retries after `EAGAIN`.
    pub tx_retries: u64,
}

/// A transaction id (never 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TxId(pub u32);

/// Node operations, on the whole store ([`Client`]) or inside a
/// transaction ([`Transaction`]).
///
/// Code written against `Store` runs either way:
///
/// ```no_run
/// use xenpv_xenstore::{Client, Error, Store};
/// fn bump<S: Store>(s: &mut S, path: &str) -> Result<u64, Error> {
///     let n = s.try_read(path)?.and_then(|v| String::from_utf8(v).ok()?.parse().ok()).unwrap_or(0u64);
///     s.write(path, (n + 1).to_string().as_bytes())?;
///     Ok(n + 1)
/// }
/// # fn f<T: xenpv_xenstore::transport::Transport>(xs: &mut Client<T>) -> Result<(), Error> {
/// bump(xs, "data/plain")?; // not atomic
/// xs.transaction(|tx| bump(tx, "data/counter"))?; // atomic, retried on EAGAIN
/// # Ok(()) }
/// ```
pub trait Store {
    /// Sends `req` and decodes the reply with `f`. `XS_ERROR` replies become
    /// [`Error::Xs`] before `f` runs.
    fn call<R>(
        &mut self,
        req: &Request<'_>,
        f: impl FnOnce(Reply<'_>) -> Option<R>,
    ) -> Result<R, Error>;

    /// Reads a node's value.
    fn read(&mut self, path: &str) -> Result<Vec<u8>, Error> {
        self.call(&Request::Read { path }, |r| match r {
            Reply::Value(v) => Some(v.to_vec()),
            _ => None,
        })
    }

    /// Reads a node's value as UTF-8.
    fn read_string(&mut self, path: &str) -> Result<String, Error> {
        String::from_utf8(self.read(path)?).map_err(|_| Error::BadValue(WireError::NotUtf8))
    }

    /// Reads a node; `Ok(None)` if it does not exist.
    fn try_read(&mut self, path: &str) -> Result<Option<Vec<u8>>, Error> {
        match self.read(path) {
            Ok(v) => Ok(Some(v)),
            Err(Error::Xs(XsError::NoEnt)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Writes a node (creating it and missing parents).
    fn write(&mut self, path: &str, value: &[u8]) -> Result<(), Error> {
        self.call(&Request::Write { path, value }, ok)
    }

    /// Creates a node (no error if it exists).
    fn mkdir(&mut self, path: &str) -> Result<(), Error> {
        self.call(&Request::Mkdir { path }, ok)
    }

    /// Removes a node and its children.
    fn rm(&mut self, path: &str) -> Result<(), Error> {
        self.call(&Request::Rm { path }, ok)
    }

    /// Lists a node's children.
    fn directory(&mut self, path: &str) -> Result<Vec<String>, Error> {
        self.call(&Request::Directory { path }, |r| match r {
            Reply::Entries(e) => Some(e.iter().map(String::from).collect()),
            _ => None,
        })
    }

    /// A node's permissions (owner first).
    fn get_perms(&mut self, path: &str) -> Result<Vec<Perm>, Error> {
        self.call(&Request::GetPerms { path }, |r| match r {
            Reply::Perms(p) => p.iter().collect::<Result<Vec<_>, _>>().ok(),
            _ => None,
        })
    }

    /// Sets a node's permissions (owner first).
    fn set_perms(&mut self, path: &str, perms: &[Perm]) -> Result<(), Error> {
        self.call(
            &Request::SetPerms {
                path,
                perms: PermList::from_slice(perms),
            },
            ok,
        )
    }
}

fn ok(r: Reply<'_>) -> Option<()> {
    matches!(r, Reply::Ok).then_some(())
}

/// A xenstore connection.
///
/// Requests are synchronous: each call sends one request and reads until the
/// reply with its request id arrives. Watch events read meanwhile go to a
/// bounded queue ([`Config::event_capacity`]); when it is full, further
/// events are dropped and counted ([XSA-349]) — the caller learns from
/// [`take_dropped_events`](Self::take_dropped_events) that it must re-read
/// what it watches. No call runs unbounded: each gives up after
/// [`Config::max_waits`] waits ([`Error::Stalled`]) or
/// [`Config::max_messages`] messages ([`Error::Flooded`]).
///
/// ```
/// use xenpv_xenstore::{Client, Config, Store};
/// # use xenpv_xenstore::transport::{Transport, TransportError};
/// # use xenpv_xenstore::wire::{Header, HEADER_LEN};
/// # // A canned server: answers the first request with "OK".
/// # struct Canned(Vec<u8>, bool);
/// # impl Transport for Canned {
/// #     fn send(&mut self, d: &[u8]) -> Result<usize, TransportError> { self.1 = true; Ok(d.len()) }
/// #     fn recv(&mut self, b: &mut [u8]) -> Result<usize, TransportError> {
/// #         if !self.1 { return Ok(0) }
/// #         let n = b.len().min(self.0.len()); b[..n].copy_from_slice(&self.0[..n]); self.0.drain(..n); Ok(n)
/// #     }
/// #     fn wait(&mut self) -> Result<(), TransportError> { Ok(()) }
/// # }
/// # let mut reply = Header { ty: 11, req_id: 1, tx_id: 0, len: 3 }.to_bytes().to_vec();
/// # reply.extend_from_slice(b"OK\0");
/// # let transport = Canned(reply, false);
/// let mut xs = Client::new(transport, Config::default());
/// xs.write("data/greeting", b"hello")?;
/// # Ok::<(), xenpv_xenstore::Error>(())
/// ```
///
/// [XSA-349]: https://xenbits.xen.org/xsa/advisory-349.html
pub struct Client<T> {
    transport: T,
    config: Config,
    next_req_id: u32,
    rx: Vec<u8>,
    rx_len: usize,
    tx: Vec<u8>,
    events: VecDeque<OwnedWatchEvent>,
    undelivered_drops: u64,
    stats: Stats,
    broken: bool,
}

impl<T> fmt::Debug for Client<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("config", &self.config)
            .field("stats", &self.stats)
            .field("queued_events", &self.events.len())
            .field("broken", &self.broken)
            .finish_non_exhaustive()
    }
}

/// A complete message read off the transport.
struct Incoming {
    header: Header,
    ty: XsdSockmsgType,
}

/// What [`Client::pump`] reads for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Want {
    /// The reply with this request id.
    Reply(u32),
    /// One watch event (queued).
    Event,
    /// Whatever is available now.
    Nothing,
}

/// What one call may still spend. Every call starts with a fresh budget
/// from [`Config`], and every loop of the client that peer data can feed
/// draws on it, so no call outlives `max_waits` waits and `max_messages`
/// messages, whatever the peer sends.
struct Budget {
    waits: u32,
    messages: u32,
}

impl Budget {
    fn new(config: &Config) -> Self {
        Self {
            waits: config.max_waits,
            messages: config.max_messages.max(1),
        }
    }
}

impl<T: Transport> Client<T> {
    /// A client over `transport`.
    pub fn new(transport: T, config: Config) -> Self {
        let config = Config {
            event_capacity: config.event_capacity.max(1),
            max_messages: config.max_messages.max(1),
            ..config
        };
        Self {
            transport,
            config,
            next_req_id: 1,
            rx: vec![0; MESSAGE_MAX],
            rx_len: 0,
            tx: vec![0; MESSAGE_MAX],
            events: VecDeque::with_capacity(config.event_capacity.min(1024)),
            undelivered_drops: 0,
            stats: Stats::default(),
            broken: false,
        }
    }

    /// The transport.
    pub fn transport_mut(&mut self) -> &mut T {
        &mut self.transport
    }

    /// Gives the transport back.
    pub fn into_transport(self) -> T {
        self.transport
    }

    /// The limits in force.
    #[must_use]
    pub fn config(&self) -> Config {
        self.config
    }

    /// Counters.
    #[must_use]
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Whether a protocol or transport failure broke the connection.
    #[must_use]
    pub fn is_broken(&self) -> bool {
        self.broken
    }

    fn fail(&mut self, e: Error) -> Error {
        if matches!(e, Error::Protocol(_) | Error::Transport(_)) {
            self.broken = true;
        }
        e
    }

    /// Waits once, if the budget allows.
    fn wait(&mut self, budget: &mut Budget) -> Result<(), Error> {
        if budget.waits == 0 {
            return Err(Error::Stalled);
        }
        budget.waits -= 1;
        self.transport
            .wait()
            .map_err(|e| self.fail(Error::Transport(e)))
    }

    fn send_message(&mut self, len: usize, budget: &mut Budget) -> Result<(), Error> {
        let mut sent = 0;
        while sent < len {
            let chunk = self.tx.get(sent..len).unwrap_or(&[]);
            let want = chunk.len();
            let n = match self.transport.send(chunk) {
                Ok(n) => n.min(want),
                Err(e) => return Err(self.fail(Error::Transport(e))),
            };
            sent += n;
            if n > 0 {
                continue;
            }
            // Reading meanwhile keeps a server that is blocked on a full
            // reply ring going.
            let waited = self
                .wait(budget)
                .and_then(|()| self.pump(Want::Nothing, budget).map(drop));
            if let Err(e) = waited {
                if sent > 0 {
                    // Half a message is on the wire: the stream is desynchronised.
                    self.broken = true;
                }
                return Err(e);
            }
        }
        Ok(())
    }

    /// Reads what is available; stops after one complete message and
    /// returns it, or returns `Ok(None)` when the transport has nothing more
    /// now (a partial message stays buffered for the next call). Reads at
    /// most one message's bytes.
    fn read_message(&mut self) -> Result<Option<Incoming>, Error> {
        loop {
            let need = if self.rx_len < HEADER_LEN {
                HEADER_LEN
            } else {
                let h = Header::parse(self.rx.get(..HEADER_LEN).unwrap_or(&[]))
                    .map_err(|e| self.fail(Error::Protocol(e)))?;
                HEADER_LEN + h.len as usize
            };
            if self.rx_len >= need {
                let header = Header::parse(self.rx.get(..HEADER_LEN).unwrap_or(&[]))
                    .map_err(|e| self.fail(Error::Protocol(e)))?;
                let ty = header
                    .msg_type()
                    .map_err(|e| self.fail(Error::Protocol(e)))?;
                self.rx_len = 0;
                return Ok(Some(Incoming { header, ty }));
            }
            let start = self.rx_len;
            let Some(dst) = self.rx.get_mut(start..need) else {
                return Err(self.fail(Error::Protocol(WireError::PayloadTooLong(need))));
            };
            let n = self
                .transport
                .recv(dst)
                .map_err(|e| self.fail(Error::Transport(e)))?;
            if n == 0 {
                return Ok(None);
            }
            self.rx_len += n.min(need - start);
        }
    }

    fn payload(&self, header: &Header) -> &[u8] {
        self.rx
            .get(HEADER_LEN..HEADER_LEN + header.len as usize)
            .unwrap_or(&[])
    }

    fn queue_event(&mut self, header: &Header) -> Result<(), Error> {
        let event = match WatchEvent::decode(self.payload(header)) {
            Ok(e) => OwnedWatchEvent::from(e),
            Err(e) => return Err(self.fail(Error::Protocol(e))),
        };
        self.stats.events += 1;
        if self.events.len() >= self.config.event_capacity {
            self.stats.dropped_events += 1;
            self.undelivered_drops += 1;
        } else {
            self.events.push_back(event);
        }
        Ok(())
    }

    /// Reads available messages, each drawn from `budget`: events are
    /// queued, replies other than the wanted one are counted and discarded.
    /// Returns the header of the wanted reply (its payload stays in `rx`);
    /// `Ok(None)` when the transport has nothing more now, or (for
    /// [`Want::Event`]) once an event was queued; [`Error::Flooded`] when
    /// the budget runs out first.
    fn pump(&mut self, want: Want, budget: &mut Budget) -> Result<Option<Header>, Error> {
        while let Some(m) = self.read_message()? {
            budget.messages = budget.messages.saturating_sub(1);
            if m.ty == XsdSockmsgType::WatchEvent {
                self.queue_event(&m.header)?;
                if want == Want::Event {
                    return Ok(None);
                }
            } else if want == Want::Reply(m.header.req_id) {
                return Ok(Some(m.header));
            } else {
                self.stats.stray_replies += 1;
            }
            if budget.messages == 0 {
                self.stats.floods += 1;
                return Err(Error::Flooded);
            }
        }
        Ok(None)
    }

    fn transact<R>(
        &mut self,
        tx_id: u32,
        req: &Request<'_>,
        f: impl FnOnce(Reply<'_>) -> Option<R>,
    ) -> Result<R, Error> {
        if self.broken {
            return Err(Error::Broken);
        }
        let req_id = self.next_req_id;
        self.next_req_id = self.next_req_id.wrapping_add(1).max(1);
        let len = req
            .encode(req_id, tx_id, &mut self.tx)
            .map_err(Error::InvalidArgument)?;
        self.stats.requests += 1;
        let mut budget = Budget::new(&self.config);
        self.send_message(len, &mut budget)?;
        let header = loop {
            if let Some(h) = self.pump(Want::Reply(req_id), &mut budget)? {
                break h;
            }
            self.wait(&mut budget)?;
        };
        let msg = Message {
            header,
            payload: self.payload(&header),
        };
        let decoded = Reply::decode(req.msg_type(), &msg);
        match decoded {
            Ok(Reply::Error(e)) => Err(Error::Xs(e)),
            Ok(reply) => match f(reply) {
                Some(r) => Ok(r),
                None => Err(self.fail(Error::Protocol(WireError::MissingField))),
            },
            Err(e) => Err(self.fail(Error::Protocol(e))),
        }
    }

    /// Registers a watch on `path` (and its descendants). xenstored fires it
    /// once right away.
    pub fn watch(&mut self, path: &str, token: &str) -> Result<(), Error> {
        self.transact(0, &Request::Watch { path, token }, ok)
    }

    /// Removes a watch.
    pub fn unwatch(&mut self, path: &str, token: &str) -> Result<(), Error> {
        self.transact(0, &Request::Unwatch { path, token }, ok)
    }

    /// Removes all of this connection's watches and transactions. Queued
    /// events are discarded too.
    pub fn reset_watches(&mut self) -> Result<(), Error> {
        self.transact(0, &Request::ResetWatches, ok)?;
        self.events.clear();
        Ok(())
    }

    /// The home path of domain `domid` (`/local/domain/<domid>`).
    pub fn get_domain_path(&mut self, domid: DomId) -> Result<String, Error> {
        self.transact(0, &Request::GetDomainPath { domid }, |r| match r {
            Reply::Path(p) => Some(String::from(p)),
            _ => None,
        })
    }

    /// Starts a transaction. Prefer [`Client::transaction`].
    pub fn transaction_start(&mut self) -> Result<TxId, Error> {
        self.transact(0, &Request::TransactionStart, |r| match r {
            Reply::TransactionId(id) => Some(TxId(id)),
            _ => None,
        })
    }

    /// Ends a transaction: commits (`Err(Error::Xs(XsError::Again))` on a
    /// conflict) or aborts.
    pub fn transaction_end(&mut self, tx: TxId, commit: bool) -> Result<(), Error> {
        self.transact(tx.0, &Request::TransactionEnd { commit }, ok)
    }

    /// Runs `f` in a transaction and commits it, retrying the whole thing
    /// (up to [`Config::max_tx_retries`] times) when the commit, or an
    /// operation inside, fails with `EAGAIN`. If `f` fails otherwise, the
    /// transaction is aborted and the error returned.
    pub fn transaction<R>(
        &mut self,
        mut f: impl FnMut(&mut Transaction<'_, T>) -> Result<R, Error>,
    ) -> Result<R, Error> {
        for attempt in 0..=self.config.max_tx_retries {
            if attempt > 0 {
                self.stats.tx_retries += 1;
            }
            let id = self.transaction_start()?;
            let result = f(&mut Transaction { client: self, id });
            match result {
                Ok(r) => match self.transaction_end(id, true) {
                    Ok(()) => return Ok(r),
                    Err(Error::Xs(XsError::Again)) => {}
                    Err(e) => return Err(e),
                },
                Err(e) => {
                    // Best effort: the abort's own failure changes nothing.
                    let _ = self.transaction_end(id, false);
                    if e != Error::Xs(XsError::Again) {
                        return Err(e);
                    }
                }
            }
        }
        Err(Error::TooManyRetries)
    }

    /// Reads whatever the transport has now, without waiting, queueing watch
    /// events; returns how many events are queued.
    ///
    /// Reads at most [`Config::max_messages`] messages: if more keep coming,
    /// the events read so far stay queued and the call returns
    /// [`Error::Flooded`] (the connection stays usable; call again to read
    /// on).
    pub fn poll_events(&mut self) -> Result<usize, Error> {
        if self.broken {
            return Err(Error::Broken);
        }
        self.pump(Want::Nothing, &mut Budget::new(&self.config))?;
        Ok(self.events.len())
    }

    /// Takes the oldest queued watch event (does not read the transport; see
    /// [`poll_events`](Self::poll_events)).
    pub fn next_event(&mut self) -> Option<OwnedWatchEvent> {
        self.events.pop_front()
    }

    /// Takes the oldest queued watch event, or reads (and waits) until one
    /// arrives: at most [`Config::max_waits`] waits ([`Error::Stalled`]) and
    /// [`Config::max_messages`] messages ([`Error::Flooded`], e.g. stray
    /// replies that keep coming).
    pub fn wait_event(&mut self) -> Result<OwnedWatchEvent, Error> {
        let mut budget = Budget::new(&self.config);
        loop {
            if let Some(e) = self.events.pop_front() {
                return Ok(e);
            }
            if self.broken {
                return Err(Error::Broken);
            }
            self.pump(Want::Event, &mut budget)?;
            if self.events.is_empty() {
                self.wait(&mut budget)?;
            }
        }
    }

    /// Removes the queued events of watch `token`; returns how many.
    pub fn take_events_for(&mut self, token: &str) -> usize {
        let before = self.events.len();
        self.events.retain(|e| e.token != token);
        before - self.events.len()
    }

    /// Number of queued watch events.
    #[must_use]
    pub fn queued_events(&self) -> usize {
        self.events.len()
    }

    /// Events dropped since the last call (queue overflow). Non-zero means
    /// some changes went unreported: re-read the watched nodes.
    pub fn take_dropped_events(&mut self) -> u64 {
        core::mem::take(&mut self.undelivered_drops)
    }

    /// Events dropped since creation.
    #[must_use]
    pub fn dropped_events(&self) -> u64 {
        self.stats.dropped_events
    }
}

impl<T: Transport> Store for Client<T> {
    fn call<R>(
        &mut self,
        req: &Request<'_>,
        f: impl FnOnce(Reply<'_>) -> Option<R>,
    ) -> Result<R, Error> {
        self.transact(0, req, f)
    }
}

/// An open transaction (see [`Client::transaction`]): the [`Store`]
/// operations, isolated until commit.
pub struct Transaction<'c, T> {
    client: &'c mut Client<T>,
    id: TxId,
}

impl<T> fmt::Debug for Transaction<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Transaction").field(&self.id).finish()
    }
}

impl<T> Transaction<'_, T> {
    /// The transaction id.
    #[must_use]
    pub fn id(&self) -> TxId {
        self.id
    }
}

impl<T: Transport> Store for Transaction<'_, T> {
    fn call<R>(
        &mut self,
        req: &Request<'_>,
        f: impl FnOnce(Reply<'_>) -> Option<R>,
    ) -> Result<R, Error> {
        match req {
            Request::Watch { .. }
            | Request::Unwatch { .. }
            | Request::TransactionStart
            | Request::TransactionEnd { .. }
            | Request::ResetWatches => Err(Error::InvalidArgument(WireError::UnexpectedType {
                expected: XsdSockmsgType::Read,
                got: req.msg_type(),
            })),
            _ => self.client.transact(self.id.0, req, f),
        }
    }
}
