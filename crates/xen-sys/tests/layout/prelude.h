/*
 * Prelude of the C side of the layout test (tests/layout.rs).
 *
 * The test generates one C file per "view" that includes this file and then
 * prints, one per line, "<key><TAB><value>" for every entry of the Rust table.
 * Build macros chosen by the test:
 *   (none)                   native build (x86_64 on an x86_64 host)
 *   XEN_LAYOUT_SIM_AARCH64   select Xen's arm headers while compiling with the
 *                            host compiler (both are LP64 with natural
 *                            alignment, so the arm view of the headers gets
 *                            the layout an aarch64 compiler would give it)
 *   XEN_LAYOUT_SIM_X86_64    the same the other way round, on an aarch64 host
 * plus -D__XEN_INTERFACE_VERSION__=... or -D__XEN_TOOLS__.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#if defined(XEN_LAYOUT_SIM_AARCH64)
# undef __x86_64__
# undef __i386__
# define __aarch64__ 1
#elif defined(XEN_LAYOUT_SIM_X86_64)
# undef __aarch64__
# undef __arm__
# define __x86_64__ 1
#endif

#include <xen/xen.h>
#include <xen/errno.h>
#include <xen/version.h>
#include <xen/features.h>
#include <xen/grant_table.h>
#include <xen/event_channel.h>
#include <xen/memory.h>
#include <xen/sched.h>
#include <xen/vcpu.h>
#include <xen/callback.h>
#include <xen/elfnote.h>
#include <xen/hvm/hvm_op.h>
#include <xen/hvm/params.h>
#include <xen/arch-x86/hvm/start_info.h>
#include <xen/io/ring.h>
#include <xen/io/netif.h>
#include <xen/io/blkif.h>
#include <xen/io/console.h>
#include <xen/io/xs_wire.h>
#include <xen/io/xenbus.h>
#include <xen/io/protocols.h>
#include <xen/io/libxenvchan.h>

/* An integer value, printed signed only when it is negative. */
#define P(key, expr)                                                        \
    do {                                                                    \
        if ((expr) < 0)                                                     \
            printf("%s\t%lld\n", key, (long long)(expr));                    \
        else                                                                \
            printf("%s\t%llu\n", key, (unsigned long long)(expr));           \
    } while (0)

/* A string value. */
#define PS(key, expr) printf("%s\t\"%s\"\n", key, (expr))

/* 1: signed integer, 0: unsigned integer, 2: anything else (array, struct,
 * union, pointer). */
#define KIND(x) _Generic((x),                                               \
    signed char: 1, short: 1, int: 1, long: 1, long long: 1,                \
    unsigned char: 0, unsigned short: 0, unsigned int: 0,                   \
    unsigned long: 0, unsigned long long: 0,                                \
    char: ((char)-1 < 0), _Bool: 0,                                         \
    default: 2)

/* Number of slots io/ring.h gives a ring of `bytes` bytes, computed the way
 * a frontend does it (FRONT_RING_INIT + RING_SIZE). */
#define RING_NENTS(name, bytes) ({                                          \
    struct name##_front_ring fr_;                                           \
    struct name##_sring *s_ = calloc(1, (bytes));                           \
    if (!s_) { perror("calloc"); exit(1); }                                 \
    SHARED_RING_INIT(s_);                                                   \
    FRONT_RING_INIT(&fr_, s_, (bytes));                                     \
    unsigned int n_ = RING_SIZE(&fr_);                                      \
    free(s_);                                                               \
    n_;                                                                     \
})

/* The same through the compile-time macro. */
#define CONST_RING_NENTS(name, bytes) __CONST_RING_SIZE(name, (bytes))
