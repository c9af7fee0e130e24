//! One interface over the Rust and the C rings, so test drivers and benchmark
//! harnesses are written once.

use xenpv_ring::{BackRing, FrontRing, RingError, RingProtocol, SharedMemory};

use crate::cring::{CBack, CFront, CProtocol};

/// What a front end does with a ring: [`xenpv_ring::FrontRing`] and [`CFront`].
///
/// Every method means exactly what the inherent method of the same name on
/// [`FrontRing`] means.
pub trait FrontEnd<P: RingProtocol> {
    /// Number of slots.
    fn size(&self) -> u32;
    /// Requests that can be put before responses are consumed.
    fn free_requests(&self) -> u32;
    /// Copies a request into the next slot (not yet published).
    fn put_request(&mut self, req: P::Request) -> Result<(), RingError>;
    /// Publishes the requests put so far; returns whether to notify the back end.
    fn push_requests(&mut self) -> bool;
    /// Responses published and not yet consumed.
    fn unconsumed_responses(&mut self) -> Result<u32, RingError>;
    /// Copies out the next published response, if any.
    fn get_response(&mut self) -> Result<Option<P::Response>, RingError>;
    /// `RING_FINAL_CHECK_FOR_RESPONSES`.
    fn final_check_for_responses(&mut self) -> Result<bool, RingError>;
}

/// What a back end does with a ring: [`xenpv_ring::BackRing`] and [`CBack`].
///
/// Every method means exactly what the inherent method of the same name on
/// [`BackRing`] means.
pub trait BackEnd<P: RingProtocol> {
    /// Number of slots.
    fn size(&self) -> u32;
    /// Requests published and not yet consumed.
    fn unconsumed_requests(&mut self) -> Result<u32, RingError>;
    /// Copies out the next published request, if any.
    fn get_request(&mut self) -> Result<Option<P::Request>, RingError>;
    /// Copies a response into the next slot (not yet published).
    fn put_response(&mut self, rsp: P::Response) -> Result<(), RingError>;
    /// Publishes the responses put so far; returns whether to notify the front end.
    fn push_responses(&mut self) -> bool;
    /// `RING_FINAL_CHECK_FOR_REQUESTS`.
    fn final_check_for_requests(&mut self) -> Result<bool, RingError>;
}

macro_rules! front_end {
    ($ty:ident, $bound:path) => {
        impl<P: $bound, M: SharedMemory> FrontEnd<P> for $ty<P, M> {
            #[inline]
            fn size(&self) -> u32 {
                $ty::size(self)
            }
            #[inline]
            fn free_requests(&self) -> u32 {
                $ty::free_requests(self)
            }
            #[inline]
            fn put_request(&mut self, req: P::Request) -> Result<(), RingError> {
                $ty::put_request(self, req)
            }
            #[inline]
            fn push_requests(&mut self) -> bool {
                $ty::push_requests(self)
            }
            #[inline]
            fn unconsumed_responses(&mut self) -> Result<u32, RingError> {
                $ty::unconsumed_responses(self)
            }
            #[inline]
            fn get_response(&mut self) -> Result<Option<P::Response>, RingError> {
                $ty::get_response(self)
            }
            #[inline]
            fn final_check_for_responses(&mut self) -> Result<bool, RingError> {
                $ty::final_check_for_responses(self)
            }
        }
    };
}

macro_rules! back_end {
    ($ty:ident, $bound:path) => {
        impl<P: $bound, M: SharedMemory> BackEnd<P> for $ty<P, M> {
            #[inline]
            fn size(&self) -> u32 {
                $ty::size(self)
            }
            #[inline]
            fn unconsumed_requests(&mut self) -> Result<u32, RingError> {
                $ty::unconsumed_requests(self)
            }
            #[inline]
            fn get_request(&mut self) -> Result<Option<P::Request>, RingError> {
                $ty::get_request(self)
            }
            #[inline]
            fn put_response(&mut self, rsp: P::Response) -> Result<(), RingError> {
                $ty::put_response(self, rsp)
            }
            #[inline]
            fn push_responses(&mut self) -> bool {
                $ty::push_responses(self)
            }
            #[inline]
            fn final_check_for_requests(&mut self) -> Result<bool, RingError> {
                $ty::final_check_for_requests(self)
            }
        }
    };
}

front_end!(FrontRing, RingProtocol);
front_end!(CFront, CProtocol);
back_end!(BackRing, RingProtocol);
back_end!(CBack, CProtocol);
