//! Grant tables and event channels of two or three domains on the simulated
//! Xen (`xenpv-mock`), driven through the driver crates and checked against
//! a model of Xen's state after every operation.
//!
//! The input types, the model and the invariants live in
//! `xenpv_fuzz_common::grant_evtchn` (see its docs); this target only feeds
//! it. `GE_TRACE=1 cargo fuzz run grant_evtchn_mock FILE` prints each
//! operation of a crash input and the model's state after it.

#![no_main]

use libfuzzer_sys::fuzz_target;
use xenpv_fuzz_common::grant_evtchn::GeInput;

fuzz_target!(|input: GeInput| input.run());
