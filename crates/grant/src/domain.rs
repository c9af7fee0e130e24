//! Telling domains apart through their platform handles.

use xenpv_platform::Platform;

/// Identifies the domain a platform handle belongs to: clones of one
/// platform (and `&` to it) share it, another domain's never does. Xen gives
/// every domain its own `shared_info` page.
pub(crate) fn domain_key<P: Platform>(platform: &P) -> usize {
    platform.shared_info().as_ptr() as usize
}
