//! Differential tests: the Rust ring against Xen's C `io/ring.h` macros.
//!
//! One random operation sequence drives two systems in lock step:
//! * the system under test, on memory `A`: a Rust front with a C back, a C
//!   front with a Rust back, or a Rust front with a Rust back;
//! * the reference, on memory `B`: a C front with a C back.
//!
//! After every operation the results (put/get outcomes, copied-out values,
//! notify decisions, `work_to_do`, counts) and the shared memory (the four
//! header words, then every byte) must be identical.
//!
//! Reproduce a failure with `CREF_SEED=<seed printed in the panic>`;
//! `CREF_STEPS=<n>` changes the steps per run.

use std::collections::VecDeque;
use std::fmt::Debug;

use xenpv_ring::{BackRing, FrontRing, RingError, SharedRing};
use xenpv_ring_cref::{
    BackEnd, Big, BigRequest, BigResponse, Blkif, BlkifRequest, BlkifResponse, CBack, CFront,
    CProtocol, FrontEnd, NetifTx, NetifTxRequest, NetifTxResponse, RingHeader, snapshot,
};
use xenpv_shmem::TestPages;
use zerocopy::{FromBytes, IntoBytes};

/// xorshift64*: tiny, seedable, good enough to pick operations.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// Uniform-ish in `0..n` (`n > 0`).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn fill(&mut self, bytes: &mut [u8]) {
        for b in bytes {
            *b = self.next() as u8;
        }
    }
}

/// A protocol the differential driver can exercise: random requests (padding
/// zero, as a careful front end writes them) and a deterministic answer.
trait Proto: CProtocol {
    const NAME: &'static str;
    fn request(rng: &mut Rng, serial: u64) -> Self::Request;
    fn answer(req: &Self::Request) -> Self::Response;
}

fn random<T: FromBytes + IntoBytes>(rng: &mut Rng) -> T {
    let mut v = T::new_zeroed();
    rng.fill(v.as_mut_bytes());
    v
}

impl Proto for NetifTx {
    const NAME: &'static str = "netif_tx";
    fn request(rng: &mut Rng, serial: u64) -> NetifTxRequest {
        NetifTxRequest {
            id: serial as u16,
            ..random(rng)
        }
    }
    fn answer(req: &NetifTxRequest) -> NetifTxResponse {
        NetifTxResponse {
            id: req.id,
            status: (req.size % 3) as i16 - 1,
        }
    }
}

impl Proto for Blkif {
    const NAME: &'static str = "blkif";
    fn request(rng: &mut Rng, serial: u64) -> BlkifRequest {
        let mut r: BlkifRequest = random(rng);
        r.id = serial;
        r._pad = 0;
        for s in &mut r.seg {
            s._pad = 0;
        }
        r
    }
    fn answer(req: &BlkifRequest) -> BlkifResponse {
        BlkifResponse {
            id: req.id,
            operation: req.operation,
            status: -((req.nr_segments % 3) as i16),
            ..Default::default()
        }
    }
}

impl Proto for Big {
    const NAME: &'static str = "big";
    fn request(rng: &mut Rng, serial: u64) -> BigRequest {
        BigRequest {
            id: serial,
            ..random(rng)
        }
    }
    fn answer(req: &BigRequest) -> BigResponse {
        BigResponse {
            id: req.id as u32,
            status: i32::from(req.payload[0]) - 128,
        }
    }
}

/// The ends under test, each owning a handle on the test's pages.
type RustFront<P> = FrontRing<P, TestPages>;
type RustBack<P> = BackRing<P, TestPages>;
type CRefFront<P> = CFront<P, TestPages>;
type CRefBack<P> = CBack<P, TestPages>;

/// Makes a front or back end on `mem`, fresh (`start == None`: the front
/// initialises the page) or attached at an index after the page was set up.
trait Make<P: Proto>: Sized {
    fn make(mem: &TestPages, start: Option<u32>) -> Self;
}

impl<P: Proto> Make<P> for RustFront<P> {
    fn make(mem: &TestPages, start: Option<u32>) -> Self {
        match start {
            None => FrontRing::init(mem.clone()).unwrap(),
            Some(i) => FrontRing::attach(SharedRing::new(mem.clone()).unwrap(), i),
        }
    }
}

impl<P: Proto> Make<P> for RustBack<P> {
    fn make(mem: &TestPages, start: Option<u32>) -> Self {
        BackRing::attach(SharedRing::new(mem.clone()).unwrap(), start.unwrap_or(0))
    }
}

// SAFETY (the C `Make` impls): each memory gets exactly one front and one back
// end, everything runs on the test thread, and the test reads the memory
// (`RingHeader::read`, `snapshot`) only between ring operations. Where one end
// is C and the other Rust, the C end plays the peer domain.

impl<P: Proto> Make<P> for CRefFront<P> {
    fn make(mem: &TestPages, start: Option<u32>) -> Self {
        match start {
            // SAFETY: see the comment above the impls.
            None => unsafe { CFront::new(mem.clone()) },
            // SAFETY: see the comment above the impls.
            Some(i) => unsafe { CFront::attach(mem.clone(), i) },
        }
        .unwrap()
    }
}

impl<P: Proto> Make<P> for CRefBack<P> {
    fn make(mem: &TestPages, start: Option<u32>) -> Self {
        // SAFETY: see the comment above the impls.
        unsafe { CBack::attach(mem.clone(), start.unwrap_or(0)) }.unwrap()
    }
}

/// A C end switched to reading the peer's producer index once per batch
/// ([`CFront::with_hoisted_reads`]), the form the benchmark also measures.
struct Hoisted<T>(T);
type HCFront<P> = Hoisted<CRefFront<P>>;
type HCBack<P> = Hoisted<CRefBack<P>>;

impl<P: Proto> Make<P> for HCFront<P> {
    fn make(mem: &TestPages, start: Option<u32>) -> Self {
        Hoisted(CRefFront::make(mem, start).with_hoisted_reads())
    }
}

impl<P: Proto> Make<P> for HCBack<P> {
    fn make(mem: &TestPages, start: Option<u32>) -> Self {
        Hoisted(CRefBack::make(mem, start).with_hoisted_reads())
    }
}

impl<P: Proto> FrontEnd<P> for HCFront<P> {
    fn size(&self) -> u32 {
        self.0.size()
    }
    fn free_requests(&self) -> u32 {
        self.0.free_requests()
    }
    fn put_request(&mut self, req: P::Request) -> Result<(), RingError> {
        self.0.put_request(req)
    }
    fn push_requests(&mut self) -> bool {
        self.0.push_requests()
    }
    fn unconsumed_responses(&mut self) -> Result<u32, RingError> {
        self.0.unconsumed_responses()
    }
    fn get_response(&mut self) -> Result<Option<P::Response>, RingError> {
        self.0.get_response()
    }
    fn final_check_for_responses(&mut self) -> Result<bool, RingError> {
        self.0.final_check_for_responses()
    }
}

impl<P: Proto> BackEnd<P> for HCBack<P> {
    fn size(&self) -> u32 {
        self.0.size()
    }
    fn unconsumed_requests(&mut self) -> Result<u32, RingError> {
        self.0.unconsumed_requests()
    }
    fn get_request(&mut self) -> Result<Option<P::Request>, RingError> {
        self.0.get_request()
    }
    fn put_response(&mut self, rsp: P::Response) -> Result<(), RingError> {
        self.0.put_response(rsp)
    }
    fn push_responses(&mut self) -> bool {
        self.0.push_responses()
    }
    fn final_check_for_requests(&mut self) -> Result<bool, RingError> {
        self.0.final_check_for_requests()
    }
}

/// Sets up `mem` for rings attached at `index`: `SHARED_RING_INIT`, both
/// producer indices `index`, both event indices `index + 1`.
fn init_shared_at<P: Proto>(mem: &TestPages, index: u32) {
    // SAFETY: no ring is attached yet, so nothing else accesses `mem`.
    unsafe { CRefFront::<P>::init_shared_at(mem, index) }.unwrap()
}

/// Where and why the two systems parted ways.
struct Ctx {
    what: String,
    seed: u64,
    step: usize,
    op: &'static str,
}

impl Ctx {
    fn fail(&self, msg: std::fmt::Arguments<'_>) -> ! {
        panic!(
            "{} diverged from the C reference at step {} ({}): {msg}\n\
             reproduce with CREF_SEED={:#x}",
            self.what, self.step, self.op, self.seed
        )
    }

    fn same<T: PartialEq + Debug>(&self, field: &str, dut: T, reference: T) {
        if dut != reference {
            self.fail(format_args!(
                "{field}: under test {dut:?}, reference {reference:?}"
            ));
        }
    }
}

#[derive(Clone, Copy)]
enum Mode {
    /// Producer-heavy: the ring runs full.
    Fill,
    /// Consumer-heavy: the ring runs empty and the sides sleep (final checks).
    Drain,
    /// Everything equally likely.
    Mixed,
}

fn run<P, F, B>(what: &str, pages: usize, start: Option<u32>, seed: u64, steps: usize)
where
    P: Proto,
    F: FrontEnd<P> + Make<P>,
    B: BackEnd<P> + Make<P>,
    P::Request: PartialEq + Debug,
    P::Response: PartialEq + Debug,
{
    let dut_mem = TestPages::new(pages);
    let ref_mem = TestPages::new(pages);
    if let Some(i) = start {
        init_shared_at::<P>(&dut_mem, i);
        init_shared_at::<P>(&ref_mem, i);
    }
    let mut front = F::make(&dut_mem, start);
    let mut back = B::make(&dut_mem, start);
    let mut rfront = CRefFront::<P>::make(&ref_mem, start);
    let mut rback = CRefBack::<P>::make(&ref_mem, start);

    let mut ctx = Ctx {
        what: match start {
            None => format!("{what} [{}, {pages} page(s), fresh]", P::NAME),
            Some(i) => format!("{what} [{}, {pages} page(s), attached at {i:#x}]", P::NAME),
        },
        seed,
        step: 0,
        op: "init",
    };
    ctx.same("size", front.size(), rfront.size());
    ctx.same("size", back.size(), rback.size());
    let size = u64::from(rfront.size());

    let mut rng = Rng::new(seed);
    let mut serial = 0u64;
    // Requests the back end consumed and has not answered (identical on both
    // sides: every consumed request is compared before it is queued).
    let mut unanswered: VecDeque<P::Request> = VecDeque::new();
    let mut mode = Mode::Mixed;
    let (mut notifies, mut works, mut fulls) = (0u64, 0u64, 0u64);

    for step in 0..steps {
        ctx.step = step;
        if step % 512 == 0 {
            mode = match rng.below(3) {
                0 => Mode::Fill,
                1 => Mode::Drain,
                _ => Mode::Mixed,
            };
        }
        // Operation weights per mode: put, push, get req, put rsp, push rsp,
        // get rsp, final check rsp, final check req, counts.
        let weights: [u64; 9] = match mode {
            Mode::Fill => [6, 3, 1, 1, 1, 1, 1, 1, 1],
            Mode::Drain => [1, 1, 4, 4, 3, 4, 3, 3, 1],
            Mode::Mixed => [3, 2, 2, 2, 2, 2, 2, 2, 1],
        };
        let mut pick = rng.below(weights.iter().sum());
        let op = weights.iter().position(|&w| {
            if pick < w {
                true
            } else {
                pick -= w;
                false
            }
        });
        // A batch size, sometimes larger than the ring to run into Full.
        let k = 1 + match rng.below(8) {
            0 => rng.below(size + 2),
            _ => rng.below(8),
        };
        match op.unwrap() {
            0 => {
                ctx.op = "put_request";
                for _ in 0..k {
                    ctx.same(
                        "free_requests",
                        front.free_requests(),
                        rfront.free_requests(),
                    );
                    let req = P::request(&mut rng, serial);
                    serial += 1;
                    let (a, b) = (front.put_request(req), rfront.put_request(req));
                    ctx.same("put_request", a, b);
                    if b.is_err() {
                        fulls += 1;
                        break;
                    }
                }
            }
            1 => {
                ctx.op = "push_requests";
                let (a, b) = (front.push_requests(), rfront.push_requests());
                ctx.same("notify back", a, b);
                notifies += u64::from(b);
            }
            2 => {
                ctx.op = "get_request";
                for _ in 0..k {
                    let (a, b) = (back.get_request(), rback.get_request());
                    ctx.same("get_request", a, b);
                    match b.unwrap() {
                        Some(req) => unanswered.push_back(req),
                        None => break,
                    }
                }
            }
            3 => {
                ctx.op = "put_response";
                for _ in 0..k {
                    // One attempt past the last unanswered request checks
                    // that both refuse it.
                    let rsp = match unanswered.front() {
                        Some(req) => P::answer(req),
                        None => P::answer(&P::request(&mut rng, u64::MAX)),
                    };
                    let (a, b) = (back.put_response(rsp), rback.put_response(rsp));
                    ctx.same("put_response", a, b);
                    if unanswered.pop_front().is_none() {
                        break;
                    }
                }
            }
            4 => {
                ctx.op = "push_responses";
                let (a, b) = (back.push_responses(), rback.push_responses());
                ctx.same("notify front", a, b);
                notifies += u64::from(b);
            }
            5 => {
                ctx.op = "get_response";
                for _ in 0..k {
                    let (a, b) = (front.get_response(), rfront.get_response());
                    ctx.same("get_response", a, b);
                    if b.unwrap().is_none() {
                        break;
                    }
                }
            }
            6 => {
                ctx.op = "final_check_for_responses";
                let (a, b) = (
                    front.final_check_for_responses(),
                    rfront.final_check_for_responses(),
                );
                ctx.same("work_to_do (front)", a, b);
                works += u64::from(b.unwrap());
            }
            7 => {
                ctx.op = "final_check_for_requests";
                let (a, b) = (
                    back.final_check_for_requests(),
                    rback.final_check_for_requests(),
                );
                ctx.same("work_to_do (back)", a, b);
                works += u64::from(b.unwrap());
            }
            _ => {
                ctx.op = "unconsumed counts";
                ctx.same(
                    "unconsumed_requests",
                    back.unconsumed_requests(),
                    rback.unconsumed_requests(),
                );
                ctx.same(
                    "unconsumed_responses",
                    front.unconsumed_responses(),
                    rfront.unconsumed_responses(),
                );
                ctx.same(
                    "free_requests",
                    front.free_requests(),
                    rfront.free_requests(),
                );
            }
        }
        // The shared state must be identical after every operation: first the
        // index words (clear message), then every byte of the pages.
        ctx.same(
            "shared header",
            RingHeader::read(&dut_mem),
            RingHeader::read(&ref_mem),
        );
        let (a, b) = (snapshot(&dut_mem), snapshot(&ref_mem));
        if a != b {
            let i = a.iter().zip(&b).position(|(x, y)| x != y).unwrap_or(0);
            ctx.fail(format_args!(
                "shared byte {i}: under test {:#x}, reference {:#x}",
                a[i], b[i]
            ));
        }
    }
    eprintln!(
        "{}: {steps} steps, {serial} requests made, {notifies} notifies, {works} work_to_do, \
         {fulls} full, final header {:?}",
        ctx.what,
        RingHeader::read(&ref_mem)
    );
    // The run must have exercised what it claims to compare.
    assert!(
        notifies > 0 && works > 0 && fulls > 0,
        "{}: weak run",
        ctx.what
    );
    let h = RingHeader::read(&ref_mem);
    if start.is_some() {
        assert!(
            h.req_prod < 0x1000_0000,
            "{}: indices did not wrap ({h:?})",
            ctx.what
        );
    }
}

fn steps_per_run() -> usize {
    std::env::var("CREF_STEPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(50_000)
}

/// The seed for one run: `CREF_SEED` if set, else a fixed one per run.
fn seed(salt: u64) -> u64 {
    match std::env::var("CREF_SEED") {
        Ok(s) => {
            let s = s.trim_start_matches("0x");
            u64::from_str_radix(s, 16).expect("CREF_SEED is hex")
        }
        Err(_) => 0x5eed_0000_0000_0000 ^ salt.wrapping_mul(0x9e37_79b9_7f4a_7c15),
    }
}

const WRAP_START: u32 = 0xFFFF_FF00;

macro_rules! direction {
    ($name:ident, $what:literal, $salt:literal, $front:ident, $back:ident) => {
        #[test]
        fn $name() {
            let steps = steps_per_run();
            let mut salt = $salt << 8;
            for start in [None, Some(WRAP_START)] {
                salt += 1;
                run::<NetifTx, $front<NetifTx>, $back<NetifTx>>($what, 1, start, seed(salt), steps);
                salt += 1;
                run::<Blkif, $front<Blkif>, $back<Blkif>>($what, 1, start, seed(salt), steps);
                salt += 1;
                run::<Big, $front<Big>, $back<Big>>($what, 2, start, seed(salt), steps);
            }
        }
    };
}

direction!(
    rust_front_vs_c_back,
    "Rust FrontRing <-> C back",
    1,
    RustFront,
    CRefBack
);
direction!(
    c_front_vs_rust_back,
    "C front <-> Rust BackRing",
    2,
    CRefFront,
    RustBack
);
direction!(
    rust_front_vs_rust_back,
    "Rust FrontRing <-> Rust BackRing",
    3,
    RustFront,
    RustBack
);
direction!(
    hoisted_c_front_vs_hoisted_c_back,
    "C front (hoisted reads) <-> C back (hoisted reads)",
    4,
    HCFront,
    HCBack
);

// The driver must be able to fail: two deliberately wrong front ends, each a
// classic ring bug, must be caught.

/// Wraps a correct front end and flips every notify decision.
struct FlipNotify<F>(F);

/// Wraps a correct front end whose final check forgets to re-arm `rsp_event`
/// (checks for responses once, never asks to be woken).
struct NoRearm<F>(F);

macro_rules! mutant_front {
    ($ty:ident, |$s:ident| push: $push:expr, final_check: $fc:expr) => {
        impl<P: Proto, F: FrontEnd<P> + Make<P>> Make<P> for $ty<F> {
            fn make(mem: &TestPages, start: Option<u32>) -> Self {
                $ty(F::make(mem, start))
            }
        }
        impl<P: Proto, F: FrontEnd<P>> FrontEnd<P> for $ty<F> {
            fn size(&self) -> u32 {
                self.0.size()
            }
            fn free_requests(&self) -> u32 {
                self.0.free_requests()
            }
            fn put_request(&mut self, req: P::Request) -> Result<(), RingError> {
                self.0.put_request(req)
            }
            fn push_requests(&mut $s) -> bool {
                $push
            }
            fn unconsumed_responses(&mut self) -> Result<u32, RingError> {
                self.0.unconsumed_responses()
            }
            fn get_response(&mut self) -> Result<Option<P::Response>, RingError> {
                self.0.get_response()
            }
            fn final_check_for_responses(&mut $s) -> Result<bool, RingError> {
                $fc
            }
        }
    };
}

mutant_front!(FlipNotify, |self| push: !self.0.push_requests(),
    final_check: self.0.final_check_for_responses());
mutant_front!(NoRearm, |self| push: self.0.push_requests(),
    final_check: Ok(self.0.unconsumed_responses()? != 0));

#[test]
#[should_panic(expected = "notify back: under test")]
fn detects_flipped_notify() {
    run::<NetifTx, FlipNotify<RustFront<NetifTx>>, CRefBack<NetifTx>>(
        "mutant",
        1,
        None,
        seed(0xF11F),
        2_000,
    );
}

#[test]
#[should_panic(expected = "diverged from the C reference")]
fn detects_missing_rearm() {
    run::<Blkif, NoRearm<RustFront<Blkif>>, CRefBack<Blkif>>(
        "mutant",
        1,
        Some(WRAP_START),
        seed(0x4EA4),
        2_000,
    );
}
