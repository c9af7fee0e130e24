//! The libxenvchan wire layout (`io/libxenvchan.h`): where each ring lives,
//! and which ring orders a server picks and a client accepts.

use xenpv_sys::io::libxenvchan::VCHAN_INTERFACE_GRANTS_OFFSET;

use crate::error::{Error, PeerError};

/// Page size of the granted pages.
pub const PAGE_SIZE: usize = 4096;
/// Smallest ring order: 1 KiB, inside the shared page at offset 1024.
pub const SMALL_ORDER: u16 = 10;
/// 2 KiB, inside the shared page at offset 2048.
pub const LARGE_ORDER: u16 = 11;
/// Largest order the protocol allows (1 MiB: 256 grants, so that both
/// rings' grant lists fit in the shared page).
pub const MAX_ORDER: u16 = 20;
/// Largest order this crate can provide or map: one multi-page grant of
/// [`MAX_GRANT_PAGES`](xenpv_grant::MAX_GRANT_PAGES) pages per ring.
pub const MAX_SUPPORTED_ORDER: u16 = 12 + MAX_GRANT_PAGES.trailing_zeros() as u16;

const MAX_GRANT_PAGES: usize = xenpv_grant::MAX_GRANT_PAGES;
const _: () = assert!(MAX_GRANT_PAGES.is_power_of_two());

/// Offset of the 1 KiB in-page ring.
pub const SMALL_RING_OFFSET: usize = 1024;
/// Offset of the 2 KiB in-page ring.
pub const LARGE_RING_OFFSET: usize = 2048;

/// The two ring orders of a channel: `left` carries client → server,
/// `right` server → client.
///
/// ```
/// use xenpv_vchan::Orders;
/// // Small requests stay inside the shared page, as libxenvchan does.
/// let o = Orders::for_sizes(1000, 2000).unwrap();
/// assert_eq!((o.left(), o.right()), (10, 11));
/// assert_eq!(o.in_page_offset(o.left()), Some(1024));
/// // A 64 KiB ring needs 16 granted pages.
/// let big = Orders::for_sizes(64 * 1024, 100).unwrap();
/// assert_eq!((big.left(), big.right()), (16, 11));
/// assert_eq!(big.left_pages(), 16);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Orders {
    left: u16,
    right: u16,
}

impl Orders {
    /// The orders libxenvchan's server picks for rings of at least
    /// `left_min` (client → server) and `right_min` (server → client)
    /// bytes: both in the shared page if they fit (1 KiB and 2 KiB), one of
    /// them at 2 KiB in the page if it fits, the rest in granted pages
    /// (order 12 and up). [`Error::TooLarge`] above 1 MiB,
    /// [`Error::Unsupported`] above [`MAX_SUPPORTED_ORDER`].
    pub fn for_sizes(left_min: usize, right_min: usize) -> Result<Self, Error> {
        const SMALL: usize = 1 << SMALL_ORDER;
        const LARGE: usize = 1 << LARGE_ORDER;
        let (left, right) = if left_min <= SMALL && right_min <= LARGE {
            (SMALL_ORDER, LARGE_ORDER)
        } else if left_min <= LARGE && right_min <= SMALL {
            (LARGE_ORDER, SMALL_ORDER)
        } else if left_min <= LARGE {
            (LARGE_ORDER, page_order(right_min)?)
        } else if right_min <= LARGE {
            (page_order(left_min)?, LARGE_ORDER)
        } else {
            (page_order(left_min)?, page_order(right_min)?)
        };
        for order in [left, right] {
            if order > MAX_SUPPORTED_ORDER {
                return Err(Error::Unsupported { order });
            }
        }
        Ok(Self { left, right })
    }

    /// Checks orders a server published (read once from the shared page):
    /// each in `10..=20`, in-page rings not overlapping, and the grant list
    /// ending before any in-page ring. Orders the protocol allows but this
    /// crate cannot map give [`Error::Unsupported`].
    pub fn from_peer(left: u16, right: u16) -> Result<Self, Error> {
        let bad = Error::Peer(PeerError::Orders { left, right });
        let valid = |o: u16| (SMALL_ORDER..=MAX_ORDER).contains(&o);
        if !valid(left) || !valid(right) || (left == right && left < 12) {
            return Err(bad);
        }
        let this = Self { left, right };
        let grants_end = VCHAN_INTERFACE_GRANTS_OFFSET + 4 * (pages_of(left) + pages_of(right));
        let limit = [left, right]
            .into_iter()
            .filter_map(|o| this.in_page_offset(o))
            .fold(PAGE_SIZE, usize::min);
        if grants_end > limit {
            return Err(bad);
        }
        for order in [left, right] {
            if order > MAX_SUPPORTED_ORDER {
                return Err(Error::Unsupported { order });
            }
        }
        Ok(this)
    }

    /// log2 of the client → server ring's size.
    pub fn left(&self) -> u16 {
        self.left
    }

    /// log2 of the server → client ring's size.
    pub fn right(&self) -> u16 {
        self.right
    }

    /// Where a ring of `order` lives in the shared page, if it does there.
    pub fn in_page_offset(&self, order: u16) -> Option<usize> {
        match order {
            SMALL_ORDER => Some(SMALL_RING_OFFSET),
            LARGE_ORDER => Some(LARGE_RING_OFFSET),
            _ => None,
        }
    }

    /// Granted pages of the left ring (0 if it lives in the shared page);
    /// their references come first in `grants[]`.
    pub fn left_pages(&self) -> usize {
        pages_of(self.left)
    }

    /// Granted pages of the right ring (0 if in the shared page); their
    /// references follow the left ring's in `grants[]`.
    pub fn right_pages(&self) -> usize {
        pages_of(self.right)
    }
}

fn pages_of(order: u16) -> usize {
    if order >= 12 {
        1usize << (order - 12)
    } else {
        0
    }
}

fn page_order(min: usize) -> Result<u16, Error> {
    let mut order = 12u16;
    while (1usize << order) < min {
        order += 1;
        if order > MAX_ORDER {
            return Err(Error::TooLarge);
        }
    }
    Ok(order)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_choices_follow_libxenvchan() {
        let o = |l, r| Orders::for_sizes(l, r).map(|o| (o.left, o.right));
        assert_eq!(o(1, 1), Ok((10, 11)));
        assert_eq!(o(2048, 1024), Ok((11, 10)));
        assert_eq!(o(2048, 2048), Ok((11, 12)));
        assert_eq!(o(4097, 2048), Ok((13, 11)));
        assert_eq!(o(5000, 5000), Ok((13, 13)));
        assert_eq!(o(1 << 17, 1), Err(Error::Unsupported { order: 17 }));
        assert_eq!(o((1 << 20) + 1, 1), Err(Error::TooLarge));
    }

    #[test]
    fn peer_orders_are_checked() {
        let bad = |l, r| Err(Error::Peer(PeerError::Orders { left: l, right: r }));
        assert_eq!(Orders::from_peer(10, 10), bad(10, 10));
        assert_eq!(Orders::from_peer(11, 11), bad(11, 11));
        assert_eq!(Orders::from_peer(9, 11), bad(9, 11));
        assert_eq!(Orders::from_peer(12, 21), bad(12, 21));
        assert_eq!(Orders::from_peer(u16::MAX, 12), bad(u16::MAX, 12));
        // 256 grants would run into the ring at 1024.
        assert_eq!(Orders::from_peer(10, 20), bad(10, 20));
        assert_eq!(
            Orders::from_peer(11, 20),
            Err(Error::Unsupported { order: 20 })
        );
        assert_eq!(
            Orders::from_peer(16, 12).map(|o| o.left_pages() + o.right_pages()),
            Ok(17)
        );
        assert!(Orders::from_peer(12, 12).is_ok());
    }
}
