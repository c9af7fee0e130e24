/*
 * B6's C peer: a byte ring built from Xen's own io/ring.h flex-ring helpers
 * (DEFINE_XEN_FLEX_RING: _mask, _queued, _read_packet, _write_packet, the
 * macros pvcalls and 9pfs use), one producer and one consumer on two
 * threads. Free-running indices on separate cache lines; the consumer's
 * index is read with acquire before writing (xen_mb/rmb), the producer
 * index published with release after the copy (xen_wmb), as the protocols
 * built on these macros do.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <xen/io/ring.h>

DEFINE_XEN_FLEX_RING(b6);

struct b6_ring {
    RING_IDX cons;
    uint8_t pad1[60];
    RING_IDX prod;
    uint8_t pad2[60];
    unsigned char *buf;
    RING_IDX size;
};

size_t b6_write(struct b6_ring *r, const unsigned char *data, size_t len)
{
    RING_IDX prod = __atomic_load_n(&r->prod, __ATOMIC_RELAXED);
    RING_IDX cons = __atomic_load_n(&r->cons, __ATOMIC_ACQUIRE);
    RING_IDX space = r->size - b6_queued(prod, cons, r->size);
    RING_IDX mprod = b6_mask(prod, r->size);

    if (len > space)
        len = space;
    if (len == 0)
        return 0;
    b6_write_packet(r->buf, data, len, &mprod, b6_mask(cons, r->size), r->size);
    __atomic_store_n(&r->prod, prod + (RING_IDX)len, __ATOMIC_RELEASE);
    return len;
}

size_t b6_read(struct b6_ring *r, unsigned char *out, size_t len)
{
    RING_IDX cons = __atomic_load_n(&r->cons, __ATOMIC_RELAXED);
    RING_IDX prod = __atomic_load_n(&r->prod, __ATOMIC_ACQUIRE);
    RING_IDX avail = b6_queued(prod, cons, r->size);
    RING_IDX mcons = b6_mask(cons, r->size);

    if (len > avail)
        len = avail;
    if (len == 0)
        return 0;
    b6_read_packet(out, r->buf, len, b6_mask(prod, r->size), &mcons, r->size);
    __atomic_store_n(&r->cons, cons + (RING_IDX)len, __ATOMIC_RELEASE);
    return len;
}
