/*
 * Reference rings for differential tests and benchmarks: thin functions around
 * Xen's own io/ring.h macros, compiled unchanged from the system headers.
 *
 * Every function below does exactly what a C front or back end written against
 * ring.h does; nothing here validates indices, because ring.h does not either.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* The latest interface, so ring.h takes xen_mb/xen_rmb/xen_wmb from us. */
#define __XEN_INTERFACE_VERSION__ 0x00040e00

/*
 * Barriers. ring.h requires the includer to define them:
 *  - xen_mb: full barrier (store->load ordering for the notify and final-check
 *    handshakes): a sequentially consistent fence (x86-64: a locked RMW or
 *    mfence; AArch64: dmb ish).
 *  - xen_rmb: loads before it are ordered before loads after it: an acquire
 *    fence (x86-64: compiler barrier only, as Linux's virt_rmb; AArch64: dmb ishld).
 *  - xen_wmb: stores before it are ordered before stores after it: a release
 *    fence (x86-64: compiler barrier only, as Linux's virt_wmb; AArch64: dmb ish).
 */
#define xen_mb()  __atomic_thread_fence(__ATOMIC_SEQ_CST)
#define xen_rmb() __atomic_thread_fence(__ATOMIC_ACQUIRE)
#define xen_wmb() __atomic_thread_fence(__ATOMIC_RELEASE)

#include <xen/io/ring.h>
#include <xen/io/netif.h>
#include <xen/io/blkif.h>

#define CREF_PAGE_SIZE 4096UL

/* A protocol with a large request slot: 64-byte requests, 8-byte responses. */
struct cref_big_request {
    uint64_t id;
    uint8_t payload[56];
};
struct cref_big_response {
    uint32_t id;
    int32_t status;
};
DEFINE_RING_TYPES(cref_big, struct cref_big_request, struct cref_big_response);

/*
 * The functions for one protocol. `P` is the DEFINE_RING_TYPES name, `N` the
 * exported name stem.
 */
#define CREF_PROTOCOL(P, N, REQ, RSP)                                          \
                                                                               \
size_t cref_##N##_ring_size(size_t pages)                                      \
{                                                                              \
    return __CONST_RING_SIZE(P, pages * CREF_PAGE_SIZE);                       \
}                                                                              \
                                                                               \
void cref_##N##_sring_init_at(void *mem, RING_IDX index)                       \
{                                                                              \
    struct P##_sring *s = mem;                                                 \
    SHARED_RING_INIT(s);                                                       \
    s->req_prod = s->rsp_prod = index;                                         \
    s->req_event = s->rsp_event = index + 1;                                   \
}                                                                              \
                                                                               \
void cref_##N##_front_init(struct P##_front_ring *r, void *mem, size_t pages)  \
{                                                                              \
    XEN_FRONT_RING_INIT(r, (struct P##_sring *)mem, pages * CREF_PAGE_SIZE);   \
}                                                                              \
                                                                               \
void cref_##N##_front_attach(struct P##_front_ring *r, void *mem,              \
                             size_t pages, RING_IDX index)                     \
{                                                                              \
    FRONT_RING_ATTACH(r, (struct P##_sring *)mem, index,                       \
                      pages * CREF_PAGE_SIZE);                                 \
}                                                                              \
                                                                               \
unsigned int cref_##N##_front_free_requests(const struct P##_front_ring *r)    \
{                                                                              \
    return RING_FREE_REQUESTS(r);                                              \
}                                                                              \
                                                                               \
int cref_##N##_front_put_request(struct P##_front_ring *r, const REQ *req)     \
{                                                                              \
    if (RING_FULL(r))                                                          \
        return -1;                                                             \
    *RING_GET_REQUEST(r, r->req_prod_pvt) = *req;                              \
    r->req_prod_pvt++;                                                         \
    return 0;                                                                  \
}                                                                              \
                                                                               \
int cref_##N##_front_push_requests(struct P##_front_ring *r)                   \
{                                                                              \
    int notify;                                                                \
    RING_PUSH_REQUESTS_AND_CHECK_NOTIFY(r, notify);                            \
    return notify;                                                             \
}                                                                              \
                                                                               \
unsigned int cref_##N##_front_unconsumed_responses(struct P##_front_ring *r)   \
{                                                                              \
    return RING_HAS_UNCONSUMED_RESPONSES(r);                                   \
}                                                                              \
                                                                               \
int cref_##N##_front_get_response(struct P##_front_ring *r, RSP *out)          \
{                                                                              \
    if (!RING_HAS_UNCONSUMED_RESPONSES(r))                                     \
        return 0;                                                              \
    xen_rmb(); /* read the slot only after seeing rsp_prod */                  \
    RING_COPY_RESPONSE(r, r->rsp_cons, out);                                   \
    r->rsp_cons++;                                                             \
    return 1;                                                                  \
}                                                                              \
                                                                               \
/* As Linux's netfront/netback loops do it: read the peer's producer index   \
 * once (then xen_rmb) and consume up to it before reading it again. */       \
int cref_##N##_front_get_response_hoisted(struct P##_front_ring *r,           \
                                          RING_IDX *prod, RSP *out)           \
{                                                                              \
    if (r->rsp_cons == *prod) {                                                \
        *prod = r->sring->rsp_prod;                                            \
        xen_rmb(); /* read slots only after seeing rsp_prod */                 \
        if (r->rsp_cons == *prod)                                              \
            return 0;                                                          \
    }                                                                          \
    RING_COPY_RESPONSE(r, r->rsp_cons, out);                                   \
    r->rsp_cons++;                                                             \
    return 1;                                                                  \
}                                                                              \
                                                                               \
int cref_##N##_front_final_check_for_responses(struct P##_front_ring *r)       \
{                                                                              \
    int work_to_do;                                                            \
    RING_FINAL_CHECK_FOR_RESPONSES(r, work_to_do);                             \
    return work_to_do != 0;                                                    \
}                                                                              \
                                                                               \
void cref_##N##_back_init(struct P##_back_ring *r, void *mem, size_t pages)    \
{                                                                              \
    BACK_RING_INIT(r, (struct P##_sring *)mem, pages * CREF_PAGE_SIZE);        \
}                                                                              \
                                                                               \
void cref_##N##_back_attach(struct P##_back_ring *r, void *mem,                \
                            size_t pages, RING_IDX index)                      \
{                                                                              \
    BACK_RING_ATTACH(r, (struct P##_sring *)mem, index,                        \
                     pages * CREF_PAGE_SIZE);                                  \
}                                                                              \
                                                                               \
unsigned int cref_##N##_back_unconsumed_requests(struct P##_back_ring *r)      \
{                                                                              \
    return RING_HAS_UNCONSUMED_REQUESTS(r);                                    \
}                                                                              \
                                                                               \
int cref_##N##_back_get_request(struct P##_back_ring *r, REQ *out)             \
{                                                                              \
    if (!RING_HAS_UNCONSUMED_REQUESTS(r))                                      \
        return 0;                                                              \
    xen_rmb(); /* read the slot only after seeing req_prod */                  \
    RING_COPY_REQUEST(r, r->req_cons, out);                                    \
    r->req_cons++;                                                             \
    return 1;                                                                  \
}                                                                              \
                                                                               \
/* The back-end counterpart of front_get_response_hoisted. */               \
int cref_##N##_back_get_request_hoisted(struct P##_back_ring *r,              \
                                        RING_IDX *prod, REQ *out)             \
{                                                                              \
    if (r->req_cons == *prod) {                                                \
        *prod = r->sring->req_prod;                                            \
        xen_rmb(); /* read slots only after seeing req_prod */                 \
        if (r->req_cons == *prod)                                              \
            return 0;                                                          \
    }                                                                          \
    RING_COPY_REQUEST(r, r->req_cons, out);                                    \
    r->req_cons++;                                                             \
    return 1;                                                                  \
}                                                                              \
                                                                               \
int cref_##N##_back_put_response(struct P##_back_ring *r, const RSP *rsp)      \
{                                                                              \
    if (r->rsp_prod_pvt == r->req_cons)                                        \
        return -1;                                                             \
    *RING_GET_RESPONSE(r, r->rsp_prod_pvt) = *rsp;                             \
    r->rsp_prod_pvt++;                                                         \
    return 0;                                                                  \
}                                                                              \
                                                                               \
int cref_##N##_back_push_responses(struct P##_back_ring *r)                    \
{                                                                              \
    int notify;                                                                \
    RING_PUSH_RESPONSES_AND_CHECK_NOTIFY(r, notify);                           \
    return notify;                                                             \
}                                                                              \
                                                                               \
int cref_##N##_back_final_check_for_requests(struct P##_back_ring *r)          \
{                                                                              \
    int work_to_do;                                                            \
    RING_FINAL_CHECK_FOR_REQUESTS(r, work_to_do);                              \
    return work_to_do != 0;                                                    \
}

CREF_PROTOCOL(netif_tx, netif_tx, struct netif_tx_request, struct netif_tx_response)
CREF_PROTOCOL(blkif, blkif, struct blkif_request, struct blkif_response)
CREF_PROTOCOL(cref_big, big, struct cref_big_request, struct cref_big_response)

/* Layout facts the Rust mirrors are checked against. */
struct cref_layout {
    const char *name;
    size_t value;
};

#define SZ(T) { "sizeof " #T, sizeof(T) }
#define AL(T) { "alignof " #T, _Alignof(T) }
#define OFF(T, F) { "offsetof " #T "." #F, offsetof(T, F) }

const struct cref_layout cref_layouts[] = {
    SZ(struct netif_tx_front_ring), AL(struct netif_tx_front_ring),
    OFF(struct netif_tx_front_ring, req_prod_pvt),
    OFF(struct netif_tx_front_ring, rsp_cons),
    OFF(struct netif_tx_front_ring, nr_ents),
    OFF(struct netif_tx_front_ring, sring),
    SZ(struct blkif_back_ring), AL(struct blkif_back_ring),
    OFF(struct blkif_back_ring, rsp_prod_pvt),
    OFF(struct blkif_back_ring, req_cons),
    OFF(struct blkif_back_ring, nr_ents),
    OFF(struct blkif_back_ring, sring),
    OFF(struct netif_tx_sring, req_prod),
    OFF(struct netif_tx_sring, req_event),
    OFF(struct netif_tx_sring, rsp_prod),
    OFF(struct netif_tx_sring, rsp_event),
    OFF(struct netif_tx_sring, ring),

    SZ(struct netif_tx_request), AL(struct netif_tx_request),
    OFF(struct netif_tx_request, gref),
    OFF(struct netif_tx_request, offset),
    OFF(struct netif_tx_request, flags),
    OFF(struct netif_tx_request, id),
    OFF(struct netif_tx_request, size),
    SZ(struct netif_tx_response), AL(struct netif_tx_response),
    OFF(struct netif_tx_response, id),
    OFF(struct netif_tx_response, status),
    SZ(union netif_tx_sring_entry),

    SZ(struct blkif_request_segment), AL(struct blkif_request_segment),
    OFF(struct blkif_request_segment, gref),
    OFF(struct blkif_request_segment, first_sect),
    OFF(struct blkif_request_segment, last_sect),
    SZ(struct blkif_request), AL(struct blkif_request),
    OFF(struct blkif_request, operation),
    OFF(struct blkif_request, nr_segments),
    OFF(struct blkif_request, handle),
    OFF(struct blkif_request, id),
    OFF(struct blkif_request, sector_number),
    OFF(struct blkif_request, seg),
    SZ(struct blkif_response), AL(struct blkif_response),
    OFF(struct blkif_response, id),
    OFF(struct blkif_response, operation),
    OFF(struct blkif_response, status),
    SZ(union blkif_sring_entry),

    SZ(struct cref_big_request), AL(struct cref_big_request),
    OFF(struct cref_big_request, id),
    OFF(struct cref_big_request, payload),
    SZ(struct cref_big_response), AL(struct cref_big_response),
    OFF(struct cref_big_response, id),
    OFF(struct cref_big_response, status),
    SZ(union cref_big_sring_entry),
};

const size_t cref_layouts_len = sizeof(cref_layouts) / sizeof(cref_layouts[0]);
