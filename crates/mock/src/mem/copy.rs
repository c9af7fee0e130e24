//! Copies between the mock's private buffers and frames that guest code may
//! be accessing at the same time (from other threads): relaxed atomic loads
//! and stores, eight bytes at a time where the frame is aligned, so the
//! mock never races with a guest (whose shared-memory accesses are atomic
//! too, `xenpv-shmem`).
//!
//! Eight-byte units also keep these loops short: every memory access in a
//! sanitizer- and coverage-instrumented build (the fuzz targets) costs a
//! shadow check and a comparison callback, so a byte loop over a page is
//! eight times the work.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicU8, AtomicU64};

use zerocopy::IntoBytes;

/// Copies `dst.len()` bytes from `src`.
///
/// # Safety
/// `src..src + dst.len()` must be valid for reads for the whole call, and
/// accessed by anyone else only atomically meanwhile.
pub(super) unsafe fn copy_in(src: *const u8, dst: &mut [u8]) {
    let src = src.cast_mut();
    let head = src.align_offset(8).min(dst.len());
    let (bytes, rest) = dst.split_at_mut(head);
    for (i, b) in bytes.iter_mut().enumerate() {
        // SAFETY: `i < dst.len()`, inside the readable source (caller);
        // bytes need no alignment.
        *b = unsafe { AtomicU8::from_ptr(src.wrapping_add(i)) }.load(Relaxed);
    }
    let words = src.wrapping_add(head);
    let tail = words.wrapping_add(rest.len() / 8 * 8);
    let done = rest.len() / 64 * 64;
    // Eight words per iteration: one 64-byte store into `dst` instead of
    // eight (fewer instrumented accesses in sanitizer builds).
    let mut blocks = rest.chunks_exact_mut(64);
    for (k, block) in (&mut blocks).enumerate() {
        let at = words.wrapping_add(k * 64);
        let w: [u64; 8] = std::array::from_fn(|j| {
            // SAFETY: word `j` of block `k` lies inside the source
            // (`head + 64k + 64 <= dst.len()`) and is 8-aligned (`head`
            // aligned the start).
            unsafe { AtomicU64::from_ptr(at.wrapping_add(j * 8).cast()) }.load(Relaxed)
        });
        block.copy_from_slice(w.as_bytes());
    }
    let mut chunks = blocks.into_remainder().chunks_exact_mut(8);
    for (k, c) in (&mut chunks).enumerate() {
        // SAFETY: as above, for the words after the last whole block.
        let w =
            unsafe { AtomicU64::from_ptr(words.wrapping_add(done + k * 8).cast()) }.load(Relaxed);
        c.copy_from_slice(&w.to_ne_bytes());
    }
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        // SAFETY: the last `< 8` bytes of the source range.
        *b = unsafe { AtomicU8::from_ptr(tail.wrapping_add(i)) }.load(Relaxed);
    }
}

/// Copies `src` to `dst`.
///
/// # Safety
/// `dst..dst + src.len()` must be valid for writes for the whole call, and
/// accessed by anyone else only atomically meanwhile.
pub(super) unsafe fn copy_out(src: &[u8], dst: *mut u8) {
    let head = dst.align_offset(8).min(src.len());
    let (bytes, rest) = src.split_at(head);
    for (i, &b) in bytes.iter().enumerate() {
        // SAFETY: `i < src.len()`, inside the writable destination (caller).
        unsafe { AtomicU8::from_ptr(dst.wrapping_add(i)) }.store(b, Relaxed);
    }
    let words = dst.wrapping_add(head);
    let mut chunks = rest.chunks_exact(8);
    for (k, c) in (&mut chunks).enumerate() {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        // SAFETY: word `k` lies inside the destination and is 8-aligned, as
        // in `copy_in`.
        unsafe { AtomicU64::from_ptr(words.wrapping_add(k * 8).cast()) }
            .store(u64::from_ne_bytes(w), Relaxed);
    }
    let tail = words.wrapping_add(rest.len() / 8 * 8);
    for (i, &b) in chunks.remainder().iter().enumerate() {
        // SAFETY: the last `< 8` bytes of the destination range.
        unsafe { AtomicU8::from_ptr(tail.wrapping_add(i)) }.store(b, Relaxed);
    }
}

/// Zeroes `len` bytes at `dst`, which must be 8-aligned with `len` a
/// multiple of 8 (whole frames).
///
/// # Safety
/// As [`copy_out`] for `dst..dst + len`.
pub(super) unsafe fn zero_words(dst: *mut u8, len: usize) {
    debug_assert!(dst.align_offset(8) == 0 && len % 8 == 0);
    for k in 0..len / 8 {
        // SAFETY: word `k` lies inside the destination (caller) and is
        // 8-aligned (`dst` is).
        unsafe { AtomicU64::from_ptr(dst.wrapping_add(k * 8).cast()) }.store(0, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_at_every_alignment_and_length() {
        let mut page = vec![0u64; 64];
        let base = page.as_mut_ptr().cast::<u8>();
        let lens = (0..30).chain([63, 64, 65, 127, 128, 129, 200, 300, 500]);
        for len in lens {
            for off in 0..9 {
                let data: Vec<u8> = (0..len).map(|i| (i * 7 + off + 1) as u8).collect();
                // SAFETY: `off + len <= 512` bytes of `page`, used only here.
                unsafe { copy_out(&data, base.wrapping_add(off)) };
                let mut back = vec![0u8; len];
                // SAFETY: as above.
                unsafe { copy_in(base.wrapping_add(off), &mut back) };
                assert_eq!(back, data, "off {off} len {len}");
            }
        }
        // SAFETY: all 512 bytes of `page`, 8-aligned.
        unsafe { zero_words(base, 512) };
        assert!(page.iter().all(|&w| w == 0));
    }
}
