//! The xenstore wire decoders, a client and a xenbus frontend fed arbitrary
//! bytes as xenstored's reply stream (no ring: a byte-stream transport that
//! hands them out in input-chosen chunks). Must never panic or hang.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    xenpv_xenstore::fuzz::replies(data);
});
