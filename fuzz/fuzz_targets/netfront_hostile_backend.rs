//! A netfront against a hostile backend (`xenpv_fuzz_common::netfront`).
//!
//! `Input::Queue`: a `xenpv_netfront::NetQueue` on the mock (split or
//! single event channel, GSO offered or not), looped through a real
//! `xenpv_netback::BackQueue` that hands every frame back (the honest
//! backend). A hostile backend maps both rings too and, between any two
//! calls, may forge TX responses (any id or the posted one, any status), RX
//! responses (any id or the posted one, offset, flags: `more_data`,
//! `extra_info`, `csum_blank`, `data_validated`; any status), extra-info
//! slots (GSO type and size, unknown types, `MORE`), set or nudge any index
//! word (`rsp_prod` included), write any word of either ring page, write
//! bytes into a posted RX buffer, or storm the frontend with events. The
//! frontend sends frames of 0 to 70,000 bytes (multi-slot, invalid sizes,
//! checksum flags, GSO), reaps completions, receives (and refills) into
//! buffers of any size, toggles busy polling and dispatches events through
//! its storm guard.
//!
//! `Input::Handshake`: the xenbus handshake (`Connector`, 1 to 4 queues,
//! split channels or not) against an honest `BackConnector` while a hostile
//! backend and toolstack write or remove any backend key (`state`,
//! `feature-*`, `multi-queue-max-queues`, `online`) or frontend key (`mac`,
//! `mtu`, `backend-id`) with any value, or make the backend vanish.
//!
//! Checked, besides "no panic, no out-of-bounds access, every call returns"
//! (every loop is bounded):
//! * once the queue reports a violation, `broken()` keeps it and every
//!   send, receive, poll and event check fails with `Broken`;
//! * a received frame fits the caller's buffer and `MAX_FRAME`, with a
//!   non-zero GSO size; only frames longer than the buffer are dropped;
//! * only empty or over-long frames are refused as `BadFrame`, only
//!   unoffered GSO as `Unsupported`;
//! * while the backend has only acted honestly: nothing fails, netback gets
//!   exactly the frames sent (of at least 14 bytes, in order, with their
//!   GSO) and the frontend receives exactly the frames pushed back (byte
//!   for byte, checksum flags and GSO kept);
//! * teardown revokes every grant once the backends unmapped;
//! * handshake: a connected device has 1 to the asked number of queues and
//!   `feature-rx-copy`; a failed poll leaves no keys and, if no backend
//!   mapped anything, every grant returned; with only honest steps nothing
//!   fails and a frame gets through once both ends are connected.

#![no_main]

use libfuzzer_sys::fuzz_target;
use xenpv_fuzz_common::netfront::Input;

fuzz_target!(|input: Input| input.run());
