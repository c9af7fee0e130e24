//! A netback against a hostile frontend (`xenpv_fuzz_common::netback`).
//!
//! A `xenpv_netback::BackQueue` on the mock (RX queue of 1 to 16 frames,
//! TX budget 1 to 64, frontend GSO or not) against a frontend that owns
//! both rings and, between any two calls, may post any TX slot (any grant
//! reference, valid or not, offset, size, flags: `more_data`,
//! `extra_info`; any id: broken chains, zero-length fragments, odd splits,
//! too many slots), extra-info slots (GSO type and size, unknown types,
//! `MORE`) or raw slots, RX requests for its RX pages or for references it
//! never granted, set, nudge or scribble any word of either ring page
//! (`req_prod` included), or storm the backend with events; or post
//! well-formed packets (with or without GSO) and RX buffers. The backend
//! polls, gets frames to send to the frontend (0 B to 20 KB, some with GSO
//! metadata) and dispatches events through its storm guard.
//!
//! Checked, besides "no panic, no out-of-bounds access, every call returns":
//! * the backend writes the frontend's memory only in the ring pages and
//!   posted RX buffers: the TX pages (only to be read) and every RX page
//!   never posted keep their contents;
//! * every frame it delivers is 14 to 65535 bytes long;
//! * at most one response per request, on either ring;
//! * once it reports a violation (`broken()`), `poll` and `push_frame`
//!   fail;
//! * while the frontend has only posted well-formed packets and buffers:
//!   nothing fails, every packet is delivered byte for byte with its GSO
//!   and answered `OKAY`, and the RX responses carry exactly the frames
//!   pushed (in order, each within its buffer, with a GSO extra-info slot
//!   exactly when the frame has GSO metadata the frontend takes; others
//!   are dropped).

#![no_main]

use libfuzzer_sys::fuzz_target;
use xenpv_fuzz_common::netback::Input;

fuzz_target!(|input: Input| input.run());
