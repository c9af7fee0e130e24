//! Xen's own libxenvchan read/write code (the `io.o` of Debian's
//! `libxenvchan.a`, unchanged), on memory a test provides, for differential
//! tests of `xenpv-vchan`. Event-channel notifications are counted instead
//! of sent ([`notifies`]). Not published.
//!
//! libxenvchan accesses the shared page with plain loads and stores, so a
//! [`CVchan`] must never run concurrently with anything touching the same
//! memory: tests drive both ends from one thread.

use core::ffi::{c_int, c_void};
use core::ptr::NonNull;

#[repr(C)]
struct Ctrl {
    _opaque: [u8; 0],
}

unsafe extern "C" {
    fn cref_vchan_new(
        page: *mut c_void,
        is_server: c_int,
        left: *mut c_void,
        right: *mut c_void,
    ) -> *mut Ctrl;
    fn cref_vchan_free(ctrl: *mut Ctrl);
    fn cref_vchan_notifies() -> core::ffi::c_ulong;
    fn libxenvchan_read(ctrl: *mut Ctrl, data: *mut c_void, size: usize) -> c_int;
    fn libxenvchan_write(ctrl: *mut Ctrl, data: *const c_void, size: usize) -> c_int;
    fn libxenvchan_data_ready(ctrl: *mut Ctrl) -> c_int;
    fn libxenvchan_buffer_space(ctrl: *mut Ctrl) -> c_int;
    fn libxenvchan_is_open(ctrl: *mut Ctrl) -> c_int;
}

/// Event-channel notifications libxenvchan has sent so far (all ends, this
/// process).
#[allow(clippy::useless_conversion)] // `c_ulong` is 32 bits on some targets
pub fn notifies() -> u64 {
    // SAFETY: reads a counter the stubs keep; no arguments.
    u64::from(unsafe { cref_vchan_notifies() })
}

/// A non-blocking libxenvchan end (`struct libxenvchan`) over a page laid
/// out as libxenvchan's init leaves it.
#[derive(Debug)]
pub struct CVchan {
    ctrl: NonNull<Ctrl>,
}

impl CVchan {
    /// An end over the shared `page` (orders read from it), with ring pages
    /// `left`/`right` for rings of order 12 or more (null otherwise).
    ///
    /// # Safety
    /// `page` (4096 bytes) and the ring pages (as large as their orders say)
    /// must stay valid while the value exists, and nothing may access them
    /// while a method of this value runs (libxenvchan uses plain accesses).
    /// The orders in the page must be ones libxenvchan's init accepts.
    pub unsafe fn new(page: *mut u8, is_server: bool, left: *mut u8, right: *mut u8) -> Self {
        // SAFETY: the caller vouches for the memory; the constructor only
        // stores the pointers.
        let ctrl = unsafe {
            cref_vchan_new(
                page.cast(),
                c_int::from(is_server),
                left.cast(),
                right.cast(),
            )
        };
        Self {
            ctrl: NonNull::new(ctrl).expect("calloc failed"),
        }
    }

    /// `libxenvchan_read` (non-blocking): bytes read, 0 if none, -1 if closed.
    pub fn read(&mut self, buf: &mut [u8]) -> i32 {
        // SAFETY: `buf` is valid for `len` bytes of writes; `new`'s contract
        // covers the shared memory.
        unsafe { libxenvchan_read(self.ctrl.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) }
    }

    /// `libxenvchan_write` (non-blocking): bytes written, -1 if closed.
    pub fn write(&mut self, data: &[u8]) -> i32 {
        // SAFETY: `data` is valid for `len` bytes of reads; as above.
        unsafe { libxenvchan_write(self.ctrl.as_ptr(), data.as_ptr().cast(), data.len()) }
    }

    /// `libxenvchan_data_ready`.
    pub fn data_ready(&mut self) -> i32 {
        // SAFETY: as above.
        unsafe { libxenvchan_data_ready(self.ctrl.as_ptr()) }
    }

    /// `libxenvchan_buffer_space`.
    pub fn buffer_space(&mut self) -> i32 {
        // SAFETY: as above.
        unsafe { libxenvchan_buffer_space(self.ctrl.as_ptr()) }
    }

    /// `libxenvchan_is_open`.
    pub fn is_open(&mut self) -> i32 {
        // SAFETY: as above.
        unsafe { libxenvchan_is_open(self.ctrl.as_ptr()) }
    }
}

impl Drop for CVchan {
    fn drop(&mut self) {
        // SAFETY: allocated by `cref_vchan_new`, freed once.
        unsafe { cref_vchan_free(self.ctrl.as_ptr()) }
    }
}
