//! One [`EventChannels`](crate::EventChannels) per (domain, vCPU), checked at
//! run time without a heap: a fixed table of live claims keyed by the
//! domain's `shared_info` address (unique per domain: Xen gives each its
//! own) and the vCPU number.

use core::cell::UnsafeCell;
use core::sync::atomic::{AtomicBool, Ordering};

use crate::Error;

/// Live instances a program may hold at once (a unikernel has one per
/// vCPU; host tests run many simulated domains side by side).
pub(crate) const CAPACITY: usize = 256;

/// `(shared_info address, vCPU)`; address 0 marks a free entry.
type Key = (usize, u32);

struct Table {
    busy: AtomicBool,
    /// `keys[..used.1]` may hold claims; beyond it every entry is free
    /// (so a program with a handful of instances scans a handful).
    keys: UnsafeCell<([Key; CAPACITY], usize)>,
}

// SAFETY: `keys` is only accessed by `with`, which holds `busy` (acquired
// with a compare-exchange, released with a Release store) for the whole
// access, so accesses from different threads never overlap.
unsafe impl Sync for Table {}

static TABLE: Table = Table {
    busy: AtomicBool::new(false),
    keys: UnsafeCell::new(([(0, 0); CAPACITY], 0)),
};

impl Table {
    fn with<R>(&self, f: impl FnOnce(&mut ([Key; CAPACITY], usize)) -> R) -> R {
        while self
            .busy
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            core::hint::spin_loop();
        }
        // SAFETY: `busy` is held (see the `Sync` proof), so this is the only
        // reference to `keys` until the release below.
        let r = f(unsafe { &mut *self.keys.get() });
        self.busy.store(false, Ordering::Release);
        r
    }
}

/// A held claim on one vCPU of one domain; released on drop.
#[derive(Debug)]
pub(crate) struct VcpuClaim {
    key: Key,
}

impl VcpuClaim {
    /// Claims `vcpu` of the domain whose `shared_info` is at `shared_info`
    /// (non-zero).
    pub(crate) fn take(shared_info: usize, vcpu: u32) -> Result<Self, Error> {
        let key = (shared_info, vcpu);
        TABLE.with(|(keys, used)| {
            let live = keys.get_mut(..*used).unwrap_or_default();
            if live.contains(&key) {
                return Err(Error::VcpuInUse(vcpu));
            }
            if let Some(free) = live.iter_mut().find(|k| k.0 == 0) {
                *free = key;
            } else {
                *keys.get_mut(*used).ok_or(Error::TooManyInstances)? = key;
                *used += 1;
            }
            Ok(Self { key })
        })
    }
}

impl Drop for VcpuClaim {
    fn drop(&mut self) {
        TABLE.with(|(keys, used)| {
            let live = keys.get_mut(..*used).unwrap_or_default();
            if let Some(k) = live.iter_mut().find(|k| **k == self.key) {
                *k = (0, 0);
            }
            // Shrink the scanned prefix past trailing free entries.
            while *used > 0 && keys.get(*used - 1).is_some_and(|k| k.0 == 0) {
                *used -= 1;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_claim_per_key_released_on_drop() {
        let a = VcpuClaim::take(0x1000_0000, 0).unwrap();
        assert_eq!(
            VcpuClaim::take(0x1000_0000, 0).unwrap_err(),
            Error::VcpuInUse(0)
        );
        let b = VcpuClaim::take(0x1000_0000, 1).unwrap();
        let c = VcpuClaim::take(0x2000_0000, 0).unwrap();
        drop(a);
        let a2 = VcpuClaim::take(0x1000_0000, 0).unwrap();
        drop((a2, b, c));
    }
}
