#!/usr/bin/env python3
"""Writes the committed seed corpus, fuzz/seeds/<target>/seed-*.

Each seed is an input in the byte encoding `arbitrary` 1.x decodes (what
`fuzz_target!` hands the targets): integers little-endian, `bool` as a byte's
low bit, an enum variant `k` of `n` as a u32 `x` with `(x * n) >> 32 == k`,
and the trailing `Vec` of steps as elements each preceded by a 1 byte.
The encoders below mirror the types in fuzz/common/src; keep them in sync
(`cargo fuzz fmt <target> <seed>` shows how a seed decodes).

Usage: python3 fuzz/gen-seeds.py   (from any directory)
"""

import os
import struct

HERE = os.path.dirname(os.path.abspath(__file__))


def variant(k, n):
    return struct.pack("<I", -(-(k << 32) // n))


def u8(v):
    return struct.pack("<B", v & 0xFF)


def i8(v):
    return struct.pack("<b", v)


def u16(v):
    return struct.pack("<H", v & 0xFFFF)


def i16(v):
    return struct.pack("<h", v)


def u32(v):
    return struct.pack("<I", v & 0xFFFFFFFF)


def steps(items):
    return b"".join(b"\x01" + s for s in items)


# Geometry
SMALL1, SMALL2, BIG1, BIG2, BIG4 = (variant(k, 5) for k in range(5))


# StartIndex
def zero():
    return variant(0, 3)


def near_wrap(n):
    return variant(1, 3) + u8(n)


def any_index(v):
    return variant(2, 3) + u32(v)


# IndexWord
REQ_PROD, REQ_EVENT, RSP_PROD, RSP_EVENT = (variant(k, 4) for k in range(4))


# FrontOp
def f_put(count, tag):
    return variant(0, 5) + u8(count) + u32(tag)


F_PUSH = variant(1, 5)


def f_get(count):
    return variant(2, 5) + u8(count)


F_FINAL = variant(3, 5)
F_UNCONSUMED = variant(4, 5)


# BackOp
def b_get(count):
    return variant(0, 5) + u8(count)


def b_put(count, status):
    return variant(1, 5) + u8(count) + u32(status)


B_PUSH = variant(2, 5)
B_FINAL = variant(3, 5)
B_UNCONSUMED = variant(4, 5)


# PeerAction<H>
def set_index(word, value):
    return variant(0, 5) + word + u32(value)


def nudge_index(word, delta):
    return variant(1, 5) + word + i8(delta)


def scribble_slot(slot, offset, data):
    assert len(data) == 8
    return variant(2, 5) + u16(slot) + u16(offset) + data


def scribble(offset, length, seed):
    return variant(3, 5) + u16(offset) + u8(length) + u32(seed)


def honest(op):
    return variant(4, 5) + op


# Step<L, H>
def local(op):
    return variant(0, 2) + op


def peer(action):
    return variant(1, 2) + action


def split_input(geometry, start, items):
    return geometry + start + steps(items)


# RoundtripOp
def front(op):
    return variant(0, 2) + op


def back(op):
    return variant(1, 2) + op


# BytePage
XS_GUEST, XS_DAEMON, CONS_GUEST, CONS_BACKEND = (variant(k, 4) for k in range(4))
# ByteWord
OUT_CONS, OUT_PROD, IN_CONS, IN_PROD = (variant(k, 4) for k in range(4))


# ByteOp
def write(length, seed):
    return variant(0, 2) + variant(0, 4) + u16(length) + u8(seed)


def read(length):
    return variant(0, 2) + variant(1, 4) + u16(length)


FREE_SPACE = variant(0, 2) + variant(2, 4)
AVAILABLE = variant(0, 2) + variant(3, 4)


# BytePeerAction (wrapped in ByteStep::Peer)
def p_set_index(word, value):
    return variant(1, 2) + variant(0, 5) + word + u32(value)


def p_nudge(word, delta):
    return variant(1, 2) + variant(1, 5) + word + i16(delta)


def p_scribble(offset, length, seed):
    return variant(1, 2) + variant(2, 5) + u16(offset) + u8(length) + u32(seed)


def p_read(length):
    return variant(1, 2) + variant(3, 5) + u16(length)


def p_write(length, seed):
    return variant(1, 2) + variant(4, 5) + u16(length) + u8(seed)


def byte_input(page, out_start, in_start, skew, items):
    skew_bytes = b"\x00" if skew is None else b"\x01" + skew[0] + u32(skew[1])
    return page + out_start + in_start + skew_bytes + steps(items)



# --- grant_evtchn_mock (fuzz/common/src/grant_evtchn/input.rs) ----------------


def u64(v):
    return struct.pack("<Q", v & 0xFFFFFFFFFFFFFFFF)


def boolean(b):
    return b"\x01" if b else b"\x00"


def enum_of(names):
    """Variant encoders of an enum whose variants are `names`, in order."""
    return {name: variant(k, len(names)) for k, name in enumerate(names)}


GE_VERSION = enum_of(["V1", "V2"])
GE_ABI = enum_of(["TwoLevel", "Fifo"])
GE_BUDGET = enum_of(["One", "Three", "Full"])
GE_STORM = enum_of(["Default", "Strict", "Disabled"])
GE_DOM = enum_of(["A", "B", "C"])
GE_MAPPER = enum_of(["B", "C"])
_DOMID = enum_of(["A", "B", "C", "SelfId", "Other"])
_GREF = enum_of(["Known", "Freed", "Raw"])
_COPY_END = enum_of(["Grant", "Local", "ForeignLocal"])
_FAIL = enum_of(["Eagain", "Known", "Raw"])
_SCRIBBLE = enum_of(["Mapping", "RawGfn"])
_PORT_REF = enum_of(["Handle", "Raw"])
_PORT_NUM = enum_of(["Handle", "Raw"])
GE_OUTCOME = enum_of(["Work", "Spurious", "Deferred"])
_HOST = enum_of(["Fresh", "Raw"])
_RAW_COPY_END = enum_of(["Gref", "Frame"])
_RAW_GNTTAB = enum_of(["QuerySize", "GetVersion", "SetVersion", "SetupTable",
                       "GetStatusFrames", "Copy", "MapUnmap"])
_RAW_EVTCHN = enum_of(["Status", "Send", "Unmask", "BindVcpu", "SetPriority",
                       "AllocUnboundForOther"])
_GE_OP = enum_of([
    "Grant", "GrantReserved", "AllocRef", "TryRevoke", "RevokeOrDefer", "DropGranted",
    "RetryDeferred", "GrantedWrite", "GrantedRead", "Map", "Unmap", "UnmapBatch",
    "DropMapped", "MappedWrite", "MappedRead", "CheckAlias", "Copy", "Scribble", "FailMaps",
    "Offer", "Bind", "Connect", "Send", "Close", "Mask", "Unmask", "Poll", "Eoi",
    "DropSends", "DuplicateSends", "Spurious", "DeliverDeferred", "ClearFaults",
    "RawGnttab", "RawEvtchn", "DestroyPeer",
])


def ge_setup(version="V1", deferred=4, initial=0, third=False, abi=("TwoLevel",) * 3,
             budget="Full", storm="Default"):
    return (GE_VERSION[version] + u8(deferred) + u8(initial) + boolean(third)
            + b"".join(GE_ABI[a] for a in abi) + GE_BUDGET[budget] + GE_STORM[storm])


def domid(d):
    """"A", "B", "C", "Self" or an int (`Other`)."""
    if isinstance(d, int):
        return _DOMID["Other"] + u16(d)
    return _DOMID["SelfId" if d == "Self" else d]


def known(i):
    return _GREF["Known"] + u8(i)


def freed(i):
    return _GREF["Freed"] + u8(i)


def raw_gref(v):
    return _GREF["Raw"] + u32(v)


def map_req(dom, gref, readonly):
    return domid(dom) + gref + boolean(readonly)


def c_grant(dom, gref, offset):
    return _COPY_END["Grant"] + domid(dom) + gref + u16(offset)


def c_local(second, offset):
    return _COPY_END["Local"] + boolean(second) + u16(offset)


def c_foreign(grant, offset):
    return _COPY_END["ForeignLocal"] + u8(grant) + u16(offset)


def copy_op(source, dest, length):
    return source + dest + u16(length)


def fail_eagain():
    return _FAIL["Eagain"]


def fail_known(k):
    return _FAIL["Known"] + u8(k)


def fail_raw(v):
    return _FAIL["Raw"] + u16(v)


def handle(i):
    return _PORT_REF["Handle"] + u8(i)


def raw_port(dom, port):
    return _PORT_REF["Raw"] + GE_DOM[dom] + u16(port)


def pnum_handle(i):
    return _PORT_NUM["Handle"] + u8(i)


def pnum_raw(v):
    return _PORT_NUM["Raw"] + u32(v)


def rc_gref(gref, dom, offset):
    return _RAW_COPY_END["Gref"] + gref + domid(dom) + u16(offset)


def rc_frame(gmfn, dom, offset):
    opt = b"\x00" if gmfn is None else b"\x01" + u16(gmfn)
    return _RAW_COPY_END["Frame"] + opt + domid(dom) + u16(offset)


def op(name, *fields):
    return _GE_OP[name] + b"".join(fields)


def g_grant(to, readonly=False, seed=0):
    return op("Grant", domid(to), boolean(readonly), u8(seed))


def g_reserved(n, claims, to, readonly=False):
    return op("GrantReserved", u16(n), u8(claims), domid(to), boolean(readonly))


def g_map(mapper, reqs, count=None, retries=0):
    reqs = list(reqs)
    n = len(reqs) if count is None else count
    while len(reqs) < 3:
        reqs.append(reqs[-1])
    return op("Map", GE_MAPPER[mapper], *reqs[:3], u8(n), u8(retries))


def g_mw(mapper, mapping, offset, length, seed):
    return op("MappedWrite", GE_MAPPER[mapper], u8(mapping), u16(offset), u16(length), u8(seed))


def g_mr(mapper, mapping, offset, length):
    return op("MappedRead", GE_MAPPER[mapper], u8(mapping), u16(offset), u16(length))


def g_gw(grant, offset, length, seed):
    return op("GrantedWrite", u8(grant), u16(offset), u16(length), u8(seed))


def g_gr(grant, offset, length):
    return op("GrantedRead", u8(grant), u16(offset), u16(length))


def g_copy(copier, ops, count=None):
    ops = list(ops)
    n = len(ops) if count is None else count
    while len(ops) < 2:
        ops.append(ops[-1])
    return op("Copy", GE_MAPPER[copier], *ops[:2], u8(n))


def g_scribble(mapper, target, offset, length, seed):
    return op("Scribble", GE_MAPPER[mapper], target, u16(offset), u16(length), u8(seed))


def raw_gnttab(dom, name, *fields):
    return op("RawGnttab", GE_DOM[dom], _RAW_GNTTAB[name], *fields)


def raw_evtchn(dom, name, *fields):
    return op("RawEvtchn", GE_DOM[dom], _RAW_EVTCHN[name], *fields)


def e_offer(owner, remote):
    return op("Offer", GE_DOM[owner], domid(remote))


def e_bind(binder, target):
    return op("Bind", GE_DOM[binder], target)


def e_poll(dom, outcomes=0):
    return op("Poll", GE_DOM[dom], u32(outcomes))


def e_send(i, via_platform=False):
    return op("Send", u8(i), boolean(via_platform))


def ge_input(setup, items):
    return setup + steps(items)


# Outcome patterns (two bits per dispatch: 0/1 work, 2 spurious, 3 deferred).
ALL_SPURIOUS = 0xAAAAAAAA
FIRST_DEFERRED = 0x3


SERVE_BACK = [honest(b_get(31)), honest(b_put(31, 0)), honest(B_PUSH)]
SERVE_FRONT = [honest(f_put(0, 7)), honest(F_PUSH)]

SEEDS = {
    "ring_front_hostile_back": [
        # An honest round trip, then the front end goes to sleep.
        split_input(SMALL1, zero(), [
            local(f_put(2, 0xAA)), local(F_PUSH), *map(peer, SERVE_BACK),
            local(f_get(31)), local(F_UNCONSUMED), local(F_FINAL),
        ]),
        # Fill a 2-slot ring across the u32 wrap, answering as it goes.
        split_input(BIG1, near_wrap(3), [
            local(f_put(3, 1)), local(F_PUSH), *map(peer, SERVE_BACK), local(f_get(1)),
            local(f_put(1, 2)), local(F_PUSH), local(f_get(1)), *map(peer, SERVE_BACK),
            local(F_FINAL), local(f_get(3)),
        ]),
        # rsp_prod nudged one past what was published: broken, and stays so.
        split_input(BIG2, zero(), [
            local(f_put(0, 5)), local(F_PUSH), peer(nudge_index(RSP_PROD, 1)),
            local(f_get(0)), peer(nudge_index(RSP_PROD, 1)), local(f_get(0)),
            local(f_put(0, 6)), local(F_PUSH), local(F_FINAL), local(F_UNCONSUMED),
        ]),
        # Garbage responses in legal slots, a wild req_event, then a wild rsp_prod.
        split_input(SMALL2, any_index(0x7FFFFFFE), [
            local(f_put(3, 9)), peer(set_index(REQ_EVENT, 0x80000001)), local(F_PUSH),
            peer(scribble_slot(0, 0, bytes(range(8)))), peer(scribble(64, 200, 1234)),
            peer(set_index(RSP_PROD, 0x80000000)), local(f_get(7)),
            peer(set_index(RSP_PROD, 0)), local(F_UNCONSUMED), local(f_get(0)),
        ]),
        # Scribbles over the private and padding header bytes and the back end's words.
        split_input(BIG4, zero(), [
            peer(scribble(12, 60, 77)), local(f_put(9, 3)), local(F_PUSH),
            peer(honest(b_get(9))), peer(set_index(REQ_EVENT, 0)), local(F_FINAL),
            local(f_put(9, 4)), local(F_PUSH), peer(honest(B_FINAL)),
        ]),
        # rsp_prod moved backwards while responses seen are not yet consumed.
        split_input(SMALL1, zero(), [
            local(f_put(1, 1)), local(F_PUSH), *map(peer, SERVE_BACK), local(f_get(0)),
            peer(nudge_index(RSP_PROD, -1)), local(F_UNCONSUMED), local(f_get(0)),
        ]),
        split_input(BIG2, near_wrap(1), [
            local(f_put(3, 1)), local(F_PUSH), *map(peer, SERVE_BACK), local(F_UNCONSUMED),
            peer(nudge_index(RSP_PROD, -2)), local(F_FINAL), local(f_get(3)),
        ]),
    ],
    "ring_back_hostile_front": [
        split_input(SMALL1, zero(), [
            *map(peer, SERVE_FRONT), local(b_get(31)), local(b_put(31, 1)), local(B_PUSH),
            local(B_UNCONSUMED), local(B_FINAL), peer(honest(f_get(31))),
        ]),
        # More requests than slots: the window's upper edge.
        split_input(BIG1, near_wrap(1), [
            peer(set_index(REQ_PROD, 0xFFFFFFFF + 2)), local(b_get(0)), local(b_get(0)),
            local(b_put(0, 0)), local(b_put(0, 0)), peer(nudge_index(REQ_PROD, 1)),
            local(B_UNCONSUMED), local(b_put(3, 0)), local(B_PUSH), peer(nudge_index(REQ_PROD, 1)),
            local(B_UNCONSUMED), peer(nudge_index(REQ_PROD, 1)), local(b_get(3)), local(B_PUSH),
        ]),
        # req_prod moved backwards.
        split_input(BIG2, zero(), [
            *map(peer, SERVE_FRONT), local(b_get(1)), peer(nudge_index(REQ_PROD, -1)),
            local(b_get(5)), local(b_put(0, 0)), local(B_PUSH), local(B_FINAL),
        ]),
        # Garbage in request slots, a wild rsp_event and req_event.
        split_input(SMALL2, any_index(12345), [
            peer(honest(f_put(5, 1))), peer(scribble_slot(12345, 4, b"\xff" * 8)),
            peer(honest(F_PUSH)), peer(set_index(RSP_EVENT, 12346)), local(b_get(2)),
            local(b_put(2, 9)), local(B_PUSH), peer(set_index(REQ_EVENT, 1)), local(B_FINAL),
            peer(scribble(0, 255, 99)), local(B_UNCONSUMED),
        ]),
        # Answering more than was consumed.
        split_input(BIG4, zero(), [
            local(b_put(4, 0)), *map(peer, SERVE_FRONT), local(b_get(2)), local(b_put(5, 0)),
            local(B_PUSH), peer(honest(f_get(5))), peer(honest(F_FINAL)), local(b_get(31)),
        ]),
        # req_prod moved backwards while requests seen are not yet consumed.
        split_input(SMALL1, zero(), [
            peer(honest(f_put(2, 1))), peer(honest(F_PUSH)), local(b_get(0)),
            peer(nudge_index(REQ_PROD, -1)), local(B_UNCONSUMED), local(b_get(3)),
        ]),
        split_input(BIG2, near_wrap(2), [
            peer(honest(f_put(3, 1))), peer(honest(F_PUSH)), local(B_UNCONSUMED),
            peer(nudge_index(REQ_PROD, -3)), local(B_FINAL), local(b_get(3)),
        ]),
    ],
    "byte_ring": [
        byte_input(XS_GUEST, zero(), zero(), None, [
            write(20, 1), p_read(10), p_write(30, 2), AVAILABLE, read(16), FREE_SPACE,
            p_read(100), read(100), write(1100, 3), p_read(1024), write(1024, 4),
        ]),
        byte_input(CONS_GUEST, near_wrap(5), near_wrap(200), None, [
            write(2048, 5), FREE_SPACE, p_read(7), write(9, 6), p_write(4096, 7), read(4096),
            p_write(3, 8), read(1), read(1), AVAILABLE,
        ]),
        # A consumer index past the producer's: broken, and stays so.
        byte_input(XS_DAEMON, any_index(0xFFFFFF00), zero(), None, [
            write(10, 9), p_nudge(OUT_CONS, 11), FREE_SPACE, write(1, 1), FREE_SPACE,
            p_nudge(IN_PROD, 1024), AVAILABLE, p_nudge(IN_PROD, 1), read(2000), AVAILABLE,
        ]),
        # Hostile data and indices on both directions, and a skewed start.
        byte_input(CONS_BACKEND, zero(), any_index(77), (IN_PROD, 77 + 2048), [
            p_scribble(0, 255, 3), p_scribble(3000, 255, 4), write(100, 2), p_read(50),
            p_set_index(OUT_CONS, 25), FREE_SPACE, p_set_index(OUT_PROD, 0), p_read(10),
            write(5, 5), read(10), AVAILABLE,
        ]),
        byte_input(XS_GUEST, zero(), zero(), (OUT_CONS, 1), [write(1, 0), read(1)]),
    ],
    "grant_evtchn_mock": [
        # v1: grant, map, true aliasing both ways, revocation refused while
        # mapped (try_revoke, then deferred), retry after the unmap, stale ref.
        ge_input(ge_setup("V1", deferred=2), [
            g_grant("B", False, 1), g_map("B", [map_req("A", known(0), False)]),
            g_gw(0, 100, 32, 2), g_mr("B", 0, 96, 40), g_mw("B", 0, 4000, 96, 3),
            g_gr(0, 4000, 96), op("CheckAlias", GE_MAPPER["B"], u8(0)),
            g_scribble("B", _SCRIBBLE["Mapping"] + u8(0), 10, 200, 4),
            op("TryRevoke", u8(0)), g_map("B", [map_req("A", known(0), True)]),
            op("RevokeOrDefer", u8(0)), op("RetryDeferred", u8(5)),
            op("Unmap", GE_MAPPER["B"], u8(0)), op("RetryDeferred", u8(5)),
            op("DropMapped", GE_MAPPER["B"], u8(0)), op("RetryDeferred", u8(5)),
            g_map("B", [map_req("A", freed(0), False)]), g_mw("B", 0, 4090, 10, 5),
            g_gw(7, 4095, 2, 6), g_grant("B", True, 7), g_mw("B", 0, 0, 1, 8),
        ]),
        # v2 with C: read-only grant to C; B and a writable map are refused;
        # a failed revocation clears the type, so only a pinned peer maps more.
        ge_input(ge_setup("V2", deferred=1, third=True), [
            g_grant("C", True, 9), g_map("B", [map_req("A", known(0), True)]),
            g_map("C", [map_req("A", known(0), False)]), g_map("C", [map_req("B", known(0), True)]),
            g_map("C", [map_req("Self", known(0), True)]), g_map("C", [map_req("A", known(0), True)]),
            op("TryRevoke", u8(0)), g_map("C", [map_req("A", known(0), True)]),
            g_mw("C", 1, 0, 4, 1), op("UnmapBatch", GE_MAPPER["C"], GE_MAPPER["B"], u8(2)),
            g_map("C", [map_req("A", known(0), True)]), op("TryRevoke", u8(0)),
            g_grant("B", False, 10), g_map("B", [map_req("A", known(0), False)]),
            op("DropGranted", u8(0)), g_map("B", [map_req("A", known(0), True)]),
            op("RetryDeferred", u8(1)), op("UnmapBatch", GE_MAPPER["B"], GE_MAPPER["B"], u8(5)),
            op("RetryDeferred", u8(1)),
        ]),
        # Injected map failures: GNTST_eagain retried away or exhausted, other
        # statuses reported as they are; a 20-request batch (two hypercalls).
        ge_input(ge_setup("V1"), [
            g_grant("B", False, 1), g_grant("B", True, 2),
            op("FailMaps", u8(2), fail_eagain()), g_map("B", [map_req("A", known(0), False)], 1, 2),
            op("FailMaps", u8(3), fail_eagain()), g_map("B", [map_req("A", known(1), True)], 1, 1),
            op("FailMaps", u8(1), fail_known(4)), op("FailMaps", u8(1), fail_raw(1234)),
            g_map("B", [map_req("A", known(0), False), map_req("A", known(1), True),
                        map_req("A", raw_gref(3), True)], 3, 0),
            g_map("B", [map_req("A", known(0), True), map_req("A", known(1), True),
                        map_req(77, known(1), True)], 20, 3),
            op("UnmapBatch", GE_MAPPER["B"], GE_MAPPER["B"], u8(17)),
            op("ClearFaults"), op("TryRevoke", u8(1)), op("UnmapBatch", GE_MAPPER["B"], GE_MAPPER["B"], u8(19)),
            op("TryRevoke", u8(0)), op("TryRevoke", u8(0)),
        ]),
        # Copies: grant → local, local → grant, into a read-only grant,
        # from A's page as a "local" frame, across the page end, raw copies.
        ge_input(ge_setup("V2"), [
            g_grant("B", False, 3), g_grant("B", True, 4),
            g_copy("B", [copy_op(c_grant("A", known(0), 10), c_local(False, 20), 100),
                         copy_op(c_local(False, 20), c_grant("A", known(0), 3000), 100)]),
            g_copy("B", [copy_op(c_local(True, 0), c_grant("A", known(1), 0), 8),
                         copy_op(c_grant("A", known(1), 0), c_grant("A", known(0), 4000), 96)]),
            g_copy("B", [copy_op(c_foreign(0, 0), c_local(False, 0), 8),
                         copy_op(c_grant("A", known(0), 4000), c_local(True, 0), 97)]),
            g_copy("B", [copy_op(c_grant("Self", known(0), 0), c_local(False, 0), 0),
                         copy_op(c_grant("A", known(0), 0), c_grant("A", known(0), 8), 64)], 3),
            raw_gnttab("B", "Copy", rc_gref(known(0), "A", 5), rc_frame(None, "Self", 9), u16(50), u16(0)),
            raw_gnttab("B", "Copy", rc_frame(3, "Self", 0), rc_gref(known(0), "A", 100), u16(64), u16(0xFF00)),
            raw_gnttab("B", "Copy", rc_frame(None, "B", 0), rc_gref(known(1), "A", 0), u16(1), u16(0)),
            raw_gnttab("B", "Copy", rc_gref(known(0), "A", 4090), rc_frame(None, "Self", 0), u16(10), u16(0)),
            g_map("B", [map_req("A", known(0), False)]),
            g_copy("B", [copy_op(c_local(False, 0), c_grant("A", known(0), 0), 200)]),
            op("CheckAlias", GE_MAPPER["B"], u8(0)),
        ]),
        # Interdomain channel on 2-level: notify both ways, mask, drop,
        # duplicate, spurious, late EOI, the peer closing, rebinding.
        ge_input(ge_setup("V1"), [
            e_offer("A", "B"), e_bind("B", handle(0)), op("Connect", u8(0)),
            e_poll("B"), e_send(1), e_poll("B"), e_send(0, True), e_poll("A"),
            op("Mask", u8(0)), e_send(1), e_poll("B"), op("Unmask", u8(0)), e_poll("B"),
            op("DropSends", handle(1), u8(1)), e_send(1), e_poll("B"),
            op("DuplicateSends", handle(1), u8(1)), e_send(1), e_poll("B"),
            op("DeliverDeferred"), e_poll("B"),
            op("Spurious", handle(0)), e_poll("B", FIRST_DEFERRED), e_send(1), e_poll("B"),
            op("Eoi", handle(0), GE_OUTCOME["Work"]), e_poll("B"),
            op("Eoi", handle(0), GE_OUTCOME["Work"]), op("Spurious", raw_port("B", 40)), e_poll("B"),
            op("Close", u8(1)), e_send(0), e_poll("A"), e_bind("A", handle(0)), e_send(1),
            e_poll("B"), e_offer("B", "Self"), e_bind("B", handle(2)), op("Connect", u8(0)),
            e_send(3), e_poll("B"), e_poll("B"),
        ]),
        # FIFO everywhere, strict storm policy, budget 1: channels A-B and
        # A-C, spurious storms throttle, raw unmask and priorities.
        ge_input(ge_setup("V1", third=True, abi=("Fifo", "Fifo", "Fifo"), budget="One",
                          storm="Strict"), [
            e_offer("A", "B"), e_offer("A", "C"), e_bind("B", handle(0)), e_bind("C", handle(1)),
            # Handles: 0 = A's end to B, 1 = A's end to C, 2 = B's end, 3 = C's end.
            e_poll("B"), e_poll("C"), e_send(0), e_send(1), e_send(0),
            e_poll("B", ALL_SPURIOUS), e_poll("C", ALL_SPURIOUS), e_send(0), e_send(0),
            e_poll("B", ALL_SPURIOUS), e_send(0), e_poll("B", ALL_SPURIOUS), e_send(0),
            e_poll("B"), e_poll("B"), e_poll("B"), e_poll("B"), e_poll("B"),
            raw_evtchn("C", "SetPriority", pnum_handle(3), u32(3)), e_send(1),
            op("Mask", u8(3)), raw_evtchn("C", "Unmask", pnum_handle(3)), e_send(1),
            e_poll("C"), op("Unmask", u8(3)), e_poll("C"), e_poll("C"),
            op("Spurious", raw_port("A", 2000)), op("Spurious", handle(2)), e_poll("A"),
            e_poll("A"), e_send(2), e_send(3), e_poll("A", FIRST_DEFERRED), e_poll("A"),
        ]),
        # Raw hypercalls with odd values.
        ge_input(ge_setup("V2", third=True), [
            raw_gnttab("A", "QuerySize", domid("Self"), u8(0)),
            raw_gnttab("B", "QuerySize", domid("A"), u8(1)),
            raw_gnttab("C", "QuerySize", domid(999), u8(2)),
            raw_gnttab("A", "GetVersion", domid("A")), raw_gnttab("B", "GetVersion", domid("C")),
            raw_gnttab("B", "SetVersion", u32(2)), raw_gnttab("B", "GetVersion", domid("Self")),
            raw_gnttab("A", "SetVersion", u32(1)), raw_gnttab("C", "SetVersion", u32(7)),
            raw_gnttab("A", "SetupTable", domid("Self"), u32(3), boolean(False), u8(0)),
            raw_gnttab("B", "SetupTable", domid("Self"), u32(2), boolean(True), u8(0)),
            raw_gnttab("B", "SetupTable", domid("Self"), u32(0xFFFFFFFF), boolean(False), u8(1)),
            raw_gnttab("A", "GetStatusFrames", domid("Self"), u32(1), boolean(False), u8(0)),
            raw_gnttab("C", "GetStatusFrames", domid("A"), u32(1), boolean(False), u8(3)),
            g_grant("B", False, 5),
            raw_gnttab("B", "MapUnmap", _HOST["Fresh"], u32(2), known(0), domid("A")),
            raw_gnttab("B", "MapUnmap", _HOST["Fresh"], u32(6), known(0), domid("A")),
            raw_gnttab("B", "MapUnmap", _HOST["Fresh"], u32(3), known(0), domid("A")),
            raw_gnttab("B", "MapUnmap", _HOST["Raw"] + u64(100 << 12), u32(2), known(0), domid("A")),
            raw_gnttab("C", "MapUnmap", _HOST["Fresh"], u32(2), known(0), domid("A")),
            e_offer("A", "B"), e_bind("B", handle(0)),
            raw_evtchn("A", "Status", domid("Self"), pnum_handle(0)),
            raw_evtchn("B", "Status", domid("A"), pnum_handle(0)),
            raw_evtchn("B", "Status", domid("Self"), pnum_raw(700)),
            raw_evtchn("B", "Send", pnum_handle(1)), raw_evtchn("B", "Send", pnum_raw(0)),
            raw_evtchn("A", "BindVcpu", pnum_handle(0), u32(1)),
            raw_evtchn("A", "BindVcpu", pnum_handle(0), u32(0)),
            raw_evtchn("A", "SetPriority", pnum_handle(0), u32(3)),
            raw_evtchn("C", "AllocUnboundForOther", domid("A"), domid("C")),
            raw_evtchn("C", "AllocUnboundForOther", domid(4000), domid("C")),
            e_poll("A"), e_poll("B"),
        ]),
        # A deferred list of one: the second and third in-use revocations
        # leak; growth by reservation, then a reservation too big.
        ge_input(ge_setup("V1", deferred=1), [
            g_grant("B", False, 1), g_grant("B", False, 2), g_grant("B", True, 3),
            g_map("B", [map_req("A", known(0), False), map_req("A", known(1), False),
                        map_req("A", known(2), True)]),
            op("RevokeOrDefer", u8(0)), op("RevokeOrDefer", u8(0)), op("DropGranted", u8(0)),
            op("RetryDeferred", u8(3)), op("Unmap", GE_MAPPER["B"], u8(0)),
            op("RetryDeferred", u8(3)), g_reserved(600, 3, "B"), op("AllocRef"),
            g_reserved(1099, 1, "B"), g_reserved(5, 3, "C", True),
            g_map("B", [map_req("A", known(3), False), map_req("A", known(4), True)], 2),
        ]),
        ge_input(ge_setup("V2", deferred=3), [
            g_reserved(1000, 2, "B"), g_reserved(20, 1, "B"), op("AllocRef"),
            g_grant("B", False, 1), op("TryRevoke", u8(0)), op("TryRevoke", u8(0)),
        ]),
        # B runs out of address space (64 window pages) mid-batch; then the
        # toolstack destroys B while it maps A's grants and holds a channel:
        # A's revocations must succeed and its channel end turn unbound.
        ge_input(ge_setup("V1", deferred=2, third=True), [
            g_grant("B", True, 1), g_grant("B", False, 2), g_grant("C", False, 3),
            g_map("B", [map_req("A", known(0), True)], 23), g_map("B", [map_req("A", known(0), True)], 23),
            g_map("B", [map_req("A", known(0), True), map_req("A", known(1), False)], 23),
            op("DropMapped", GE_MAPPER["B"], u8(3)),
            g_map("B", [map_req("A", known(1), False)], 2),
            g_map("C", [map_req("A", known(2), False)]),
            e_offer("A", "B"), e_bind("B", handle(0)), e_offer("C", "B"), e_bind("B", handle(2)),
            op("RevokeOrDefer", u8(1)), op("TryRevoke", u8(0)),
            op("DestroyPeer", GE_MAPPER["B"]),
            op("TryRevoke", u8(0)), op("RetryDeferred", u8(2)), e_send(0), e_poll("A"),
            e_bind("B", handle(0)), g_map("B", [map_req("A", known(0), True)]),
            g_map("C", [map_req("A", known(0), True)]), e_send(1), e_poll("C"),
            op("DestroyPeer", GE_MAPPER["B"]),
        ]),
    ],
    "ring_roundtrip": [
        split_input(SMALL1, zero(), [
            front(f_put(0, 1)), front(F_PUSH), back(b_get(0)), back(b_put(0, 0)), back(B_PUSH),
            front(f_get(0)), front(F_FINAL), back(B_FINAL), front(f_put(4, 2)), front(F_PUSH),
            back(B_UNCONSUMED), back(b_get(31)), back(b_put(31, 3)), front(F_UNCONSUMED),
            back(B_PUSH), front(F_UNCONSUMED), front(f_get(31)),
        ]),
        # Both ends sleep, then wake each other, across the wrap on a 2-slot ring.
        split_input(BIG1, near_wrap(2), [
            back(B_FINAL), front(F_FINAL), front(f_put(2, 5)), front(F_PUSH), back(b_get(2)),
            back(B_FINAL), back(b_put(0, 1)), back(B_PUSH), back(b_put(0, 2)), back(B_PUSH),
            front(f_get(0)), front(F_FINAL), front(f_get(0)), front(F_FINAL), front(f_put(1, 6)),
            front(F_PUSH), back(B_FINAL), back(b_get(5)),
        ]),
        # Batched pushes without a final check: notifications suppressed.
        split_input(BIG4, any_index(0xDEADBEEF), [
            back(B_FINAL), front(f_put(3, 1)), front(F_PUSH), front(f_put(3, 2)), front(F_PUSH),
            back(b_get(1)), back(b_put(1, 0)), back(B_PUSH), back(b_get(31)), back(b_put(31, 0)),
            back(B_PUSH), front(f_get(31)), front(f_put(31, 3)), front(F_PUSH),
        ]),
        split_input(SMALL2, near_wrap(100), [
            front(f_put(31, 1)), front(f_put(31, 1)), front(f_put(31, 1)), front(F_PUSH),
            back(b_get(31)), back(b_get(31)), back(b_put(31, 4)), back(B_PUSH), front(f_get(31)),
            front(F_FINAL), back(b_put(31, 4)), back(B_PUSH), front(F_FINAL), back(b_put(31, 1)),
        ]),
    ],
}


# netfront_hostile_backend (fuzz/common/src/netfront.rs)
NF_QUEUE, NF_HANDSHAKE = variant(0, 2), variant(1, 2)
_NF = enum_of(["Send", "PollTx", "Receive", "Events", "BusyPoll", "Backend", "ForgeTx", "ForgeRx",
               "ForgeExtra", "SetIndex", "NudgeIndex", "WriteRing", "WriteRxBuffer", "Storm"])


def nf_opt(value):
    return b"\x00" if value is None else b"\x01" + value


def nf_send(length, blank=False, valid=False, gso=None):
    g = None if gso is None else boolean(gso[0]) + u16(gso[1])
    return _NF["Send"] + u32(length) + boolean(blank) + boolean(valid) + nf_opt(g)


def nf_recv(size=None):
    return _NF["Receive"] + nf_opt(None if size is None else u16(size))


NF_POLL_TX, NF_EVENTS, NF_BACKEND = _NF["PollTx"], _NF["Events"], _NF["Backend"]


def nf_busy(on):
    return _NF["BusyPoll"] + boolean(on)


def nf_forge_tx(rid, status):
    """`rid` None: the id posted in that slot."""
    return _NF["ForgeTx"] + nf_opt(None if rid is None else u16(rid)) + i16(status)


def nf_forge_rx(rid, offset, flags, status):
    return (_NF["ForgeRx"] + nf_opt(None if rid is None else u16(rid)) + u16(offset) + u16(flags)
            + i16(status))


def nf_forge_extra(type_, more, gso_type, mss):
    return _NF["ForgeExtra"] + u8(type_) + boolean(more) + u8(gso_type) + u16(mss)


def nf_set_index(rx, word, value):
    return _NF["SetIndex"] + boolean(rx) + u8(word) + u32(value)


def nf_nudge(rx, word, delta):
    return _NF["NudgeIndex"] + boolean(rx) + u8(word) + i16(delta)


def nf_write_rx_buffer(slot, offset, length, value):
    return _NF["WriteRxBuffer"] + u8(slot) + u16(offset) + u16(length) + u8(value)


def nf_storm(n):
    return _NF["Storm"] + u8(n)


def nf_input(split, items, gso=(False, False)):
    return NF_QUEUE + boolean(split) + boolean(gso[0]) + boolean(gso[1]) + steps(items)


_HS = enum_of(["Poll", "Restart", "Honest", "Write", "Remove", "Vanish"])
_KEY = enum_of(["State", "RxCopy", "Sg", "GsoV4", "GsoV6", "Csum6", "Split", "MaxQueues",
                "Online", "Mac", "Mtu", "BackendId"])
HS_POLL, HS_RESTART, HS_HONEST, HS_VANISH = _HS["Poll"], _HS["Restart"], _HS["Honest"], _HS["Vanish"]


def hs_num(key, n):
    return _HS["Write"] + _KEY[key] + variant(0, 4) + u32(n)


def hs_small(key, n):
    return _HS["Write"] + _KEY[key] + variant(1, 4) + u8(n)


def hs_mac(mac):
    return _HS["Write"] + _KEY["Mac"] + variant(2, 4) + bytes(mac)


def hs_bytes(key, data):
    return _HS["Write"] + _KEY[key] + variant(3, 4) + b"".join(b"\x01" + u8(c) for c in data) + b"\x00"


def hs_remove(key):
    return _HS["Remove"] + _KEY[key]


def hs_input(queues, split, back_queues, items):
    return NF_HANDSHAKE + u8(queues) + boolean(split) + u8(back_queues) + steps(items)


NRXF_VALID, NRXF_BLANK, NRXF_MORE, NRXF_EXTRA = 0x1, 0x2, 0x4, 0x8
HS_HONEST_CONNECT = [HS_HONEST, HS_POLL, HS_HONEST, HS_POLL, HS_HONEST, HS_POLL, HS_POLL]
SEEDS["netfront_hostile_backend"] = [
    # honest: single- and multi-slot frames both ways, checksum flags kept
    nf_input(False, [nf_send(60), nf_send(1514, blank=True), nf_send(9000, valid=True),
                     NF_BACKEND, NF_POLL_TX, nf_recv(), nf_recv(), nf_recv(), NF_EVENTS]),
    # honest, split channels, GSO both ways; runts and over-long frames
    nf_input(True, [nf_send(0), nf_send(5), nf_send(30000, blank=True, gso=(False, 1448)),
                    nf_send(20000, gso=(True, 1428)), nf_send(100, gso=(True, 0)), NF_BACKEND,
                    NF_EVENTS, nf_recv(), nf_recv(), NF_POLL_TX, nf_send(70000), nf_send(65535),
                    NF_BACKEND, nf_recv()], gso=(True, True)),
    # honest, busy polling; a receive buffer too small: dropped and counted
    nf_input(False, [nf_busy(True), nf_send(1000), NF_BACKEND, nf_recv(100), nf_recv(),
                     NF_POLL_TX, nf_busy(False), NF_EVENTS]),
    # TX: the posted id answered with an error, then again; an id out of range
    nf_input(False, [nf_send(60), nf_forge_tx(None, -1), NF_POLL_TX, nf_nudge(False, 2, -1),
                     nf_forge_tx(None, 0), NF_POLL_TX, nf_send(60), nf_forge_tx(999, 0),
                     NF_POLL_TX, NF_EVENTS]),
    # RX: a more_data chain with a GSO extra, an unknown extra, past the page
    nf_input(False, [nf_forge_rx(None, 0, NRXF_MORE | NRXF_EXTRA | NRXF_BLANK, 3000),
                     nf_forge_extra(1, False, 2, 1400), nf_forge_rx(None, 100, 0, 2000),
                     nf_recv(), nf_forge_rx(None, 0, NRXF_EXTRA, 60), nf_forge_extra(7, True, 0, 0),
                     nf_recv(), nf_forge_rx(None, 4000, 0, 200), nf_recv()]),
    # rsp_prod far beyond what was posted; a buffer rewritten; an event storm
    nf_input(False, [nf_send(600), NF_BACKEND, nf_write_rx_buffer(0, 0, 600, 0xee), nf_recv(),
                     nf_storm(63), NF_EVENTS, nf_set_index(False, 2, 0x1000), NF_POLL_TX,
                     nf_set_index(True, 2, 0x7fffffff), nf_recv()]),
    # handshake, honest: one queue, then three asked of a two-queue backend
    hs_input(0, False, 0, HS_HONEST_CONNECT),
    hs_input(2, True, 1, HS_HONEST_CONNECT),
    # handshake, hostile values: queues, rx-copy, mac, state; restart; vanish
    hs_input(3, True, 1, [hs_num("MaxQueues", 0), hs_small("State", 2), HS_POLL,
                          hs_bytes("RxCopy", b"yes"), HS_POLL, HS_RESTART, hs_remove("RxCopy"),
                          hs_small("RxCopy", 1), hs_num("MaxQueues", 4), hs_bytes("Mac", b"zz"),
                          HS_POLL, hs_mac([1, 2, 3, 4, 5, 6]), HS_RESTART, HS_HONEST, HS_POLL,
                          HS_HONEST, HS_POLL, hs_small("State", 6), HS_POLL, HS_VANISH, HS_POLL,
                          HS_RESTART, HS_POLL]),
]


# netback_hostile_frontend (fuzz/common/src/netback.rs)
_NB = enum_of(["Packet", "TxSlot", "TxRaw", "TxExtra", "PushTx", "RxPost", "PushFrame", "Poll",
               "Events", "Storm", "Responses", "WriteRing", "NudgeIndex"])
NB_PUSH_TX, NB_POLL, NB_EVENTS, NB_RSPS = _NB["PushTx"], _NB["Poll"], _NB["Events"], _NB["Responses"]


def option(value):
    return b"\x00" if value is None else b"\x01" + value


def nb_packet(length, first=0, flags=0, gso=None):
    g = None if gso is None else boolean(gso[0]) + u16(gso[1])
    return _NB["Packet"] + u16(length) + u8(first) + u8(flags) + option(g)


def nb_extra(type_, more, gso_type, mss):
    return _NB["TxExtra"] + u8(type_) + boolean(more) + u8(gso_type) + u16(mss)


def nb_nudge(rx, word, delta):
    return _NB["NudgeIndex"] + boolean(rx) + u8(word) + i16(delta)


def nb_slot(page, offset, size, flags, rid, raw=0):
    return (_NB["TxSlot"] + option(None if page is None else u8(page)) + u32(raw) + u16(offset)
            + u16(size) + u16(flags) + u16(rid))


def nb_raw(data):
    return _NB["TxRaw"] + data.ljust(12, b"\x00")[:12]


def nb_post(page, raw=0):
    return _NB["RxPost"] + option(None if page is None else u8(page)) + u32(raw)


def nb_frame(length, gso=None):
    return _NB["PushFrame"] + u16(length) + option(None if gso is None else u8(gso[0]) + u16(gso[1]))


def nb_write_ring(rx, offset, value):
    return _NB["WriteRing"] + boolean(rx) + u16(offset) + u32(value)


def nb_input(rx_queue, tx_budget, gso, items):
    return u8(rx_queue) + u8(tx_budget) + boolean(gso[0]) + boolean(gso[1]) + steps(items)


NB_MORE, NB_EXTRA = 0x4, 0x8
SEEDS["netback_hostile_frontend"] = [
    # honest: packets of one to eight slots, buffers posted, frames pushed back
    nb_input(15, 63, (False, False), [
        nb_packet(60), nb_packet(1514, 1, 1), nb_packet(9000, 2, 2), NB_POLL, NB_RSPS,
        nb_post(0), nb_post(1), nb_post(2), nb_post(3), nb_frame(60), nb_frame(5000), NB_POLL,
        NB_RSPS, NB_EVENTS]),
    # XSA-432 odd split, zero-length fragment, fragment past its page
    nb_input(3, 63, (False, False), [
        nb_slot(0, 4095, 3001, NB_MORE, 1), nb_slot(1, 7, 1000, NB_MORE, 2),
        nb_slot(2, 2096, 2000, 0, 3), nb_slot(0, 0, 100, NB_MORE, 4), nb_slot(1, 0, 0, NB_MORE, 5),
        nb_slot(2, 0, 50, 0, 6), nb_slot(3, 4000, 200, 0, 7), NB_PUSH_TX, NB_POLL, NB_RSPS]),
    # a chain longer than 18 and than the fatal limit; a runt; a bad grant
    nb_input(3, 63, (False, False),
             [nb_slot(k % 8, 0, 100 if k else 2500, NB_MORE, k) for k in range(22)]
             + [nb_slot(0, 0, 10, 0, 30), nb_slot(None, 0, 100, 0, 31, raw=9999), NB_PUSH_TX,
                NB_POLL, NB_RSPS, NB_POLL]),
    # honest GSO both ways: packets answered OKAY (NULL for the extra), GSO
    # frames with their extra-info slot; one of an unknown type dropped
    nb_input(15, 63, (True, True), [
        nb_packet(20000, 0, 2, (False, 1448)), nb_packet(3000, 5, 0, (True, 1428)), NB_POLL,
        NB_RSPS, *[nb_post(p) for p in range(7)], nb_frame(9000, (1, 1448)),
        nb_frame(100, (2, 1428)), nb_frame(60, (7, 1)), nb_frame(70), NB_POLL, NB_RSPS,
        nb_packet(100, 0, 0, (False, 0)), NB_POLL, NB_RSPS]),
    # extra-info: GSO, unknown type, MORE chains, missing
    nb_input(3, 63, (True, True), [
        nb_slot(0, 0, 3000, NB_EXTRA, 1), nb_raw(bytes([1, 0]) + u16(1400) + bytes([1, 0])),
        nb_slot(0, 0, 100, NB_EXTRA, 2), nb_extra(2, True, 0, 0), nb_extra(1, True, 2, 0),
        nb_extra(7, False, 0, 0), nb_slot(0, 0, 100, NB_EXTRA, 3), NB_PUSH_TX, NB_POLL,
        NB_RSPS]),
    # RX: GSO frames with and without frontend support, the RX queue full
    # (XSA-392), buffers for references never granted
    nb_input(1, 8, (True, False), [
        nb_frame(3000, (1, 1400)), nb_frame(3000, (2, 1400)), nb_frame(70), nb_frame(80),
        nb_post(4), nb_post(None, raw=7777), nb_post(5), nb_post(6), NB_POLL, NB_RSPS, NB_POLL]),
    # indices scribbled: req_prod far ahead, rsp_event moved; event storm
    nb_input(3, 63, (False, False), [
        nb_packet(100), nb_write_ring(False, 0, 0x10000), NB_POLL, nb_write_ring(True, 0, 300),
        nb_post(0), NB_POLL, _NB["Storm"] + u8(63), NB_EVENTS, NB_POLL, NB_RSPS]),
    # req_prod nudged back and forth around posted requests
    nb_input(3, 63, (False, False), [
        nb_packet(5000), nb_nudge(False, 0, 1), NB_POLL, nb_nudge(False, 0, -3), NB_POLL,
        nb_post(0), nb_nudge(True, 0, 2), nb_frame(100), NB_POLL, NB_RSPS]),
]


# blkfront_hostile_backend (fuzz/fuzz_targets/blkfront_hostile_backend.rs)
_BF = enum_of(["Read", "Write", "Flush", "Discard", "Poll", "Events", "Backend", "Forge",
               "SetIndex", "NudgeIndex", "WriteRing", "WriteData", "Storm"])
BF_FLUSH, BF_POLL, BF_EVENTS = _BF["Flush"], _BF["Poll"], _BF["Events"]


def bf_read(sector, count):
    return _BF["Read"] + u16(sector) + u8(count)


def bf_write(sector, count, skew, fill):
    return _BF["Write"] + u16(sector) + u8(count) + u8(skew) + u8(fill)


def bf_discard(sector, count, secure=False):
    return _BF["Discard"] + u16(sector) + u8(count) + boolean(secure)


def bf_backend(budget=63):
    return _BF["Backend"] + u8(budget)


def bf_forge(k, raw_id, op, status):
    return _BF["Forge"] + option(None if k is None else u8(k)) + u64(raw_id) + u8(op) + i16(status)


def bf_set_index(word, value):
    return _BF["SetIndex"] + u8(word) + u32(value)


def bf_write_data(slot, seg, offset, length, value):
    return _BF["WriteData"] + u8(slot) + u8(seg) + u16(offset) + u16(length) + u8(value)


def bf_input(two_pages, indirect, items):
    return boolean(two_pages) + boolean(indirect) + steps(items)


SEEDS["blkfront_hostile_backend"] = [
    # honest: reads, unaligned writes read back, flush, discard, big I/O
    bf_input(False, True, [
        bf_read(0, 0), bf_write(10, 7, 3, 0x5a), bf_read(8, 15), BF_FLUSH, bf_discard(12, 2, True),
        bf_read(10, 7), bf_write(100, 31, 1, 0x33), bf_read(96, 63), bf_backend(), BF_EVENTS,
        BF_POLL]),
    bf_input(True, False, [
        bf_write(0, 10, 0, 1), bf_read(0, 10), bf_write(250, 5, 0, 2), bf_discard(255, 5),
        bf_backend(1), BF_POLL, bf_backend(), BF_POLL, BF_EVENTS]),
    # responses: id out of range, not outstanding, twice, wrong operation,
    # unknown status, rsp_prod beyond what was posted
    bf_input(False, False, [bf_read(0, 0), bf_forge(None, 999, 0, 0), BF_POLL, bf_read(0, 0)]),
    bf_input(False, False, [bf_read(0, 0), bf_forge(None, 5, 0, 0), BF_POLL]),
    bf_input(False, False, [bf_read(0, 0), bf_forge(0, 0, 0, 0), bf_forge(0, 0, 0, 0), BF_POLL]),
    bf_input(False, False, [bf_write(0, 0, 0, 9), bf_forge(0, 0, 0, 0), BF_POLL]),
    bf_input(False, False, [bf_read(0, 0), bf_forge(0, 0, 0, -9), BF_POLL]),
    bf_input(False, False, [bf_read(0, 0), bf_set_index(2, 40), BF_POLL]),
    # completed data rewritten by the backend after completion; a storm
    bf_input(False, True, [bf_read(0, 7), bf_backend(), bf_write_data(0, 0, 0, 4096, 0xee),
                           BF_POLL, _BF["Storm"] + u8(63), BF_EVENTS]),
]


# blkback_hostile_frontend (fuzz/fuzz_targets/blkback_hostile_frontend.rs)
_BB = enum_of(["Rw", "Indirect", "Discard", "Flush", "Raw", "Push", "Process", "Events", "Storm",
               "WriteRing", "WriteIndirect"])
_BB_SECTOR = enum_of(["Near", "Raw"])
BB_FLUSH, BB_PUSH, BB_EVENTS = _BB["Flush"], _BB["Push"], _BB["Events"]


def bb_seg(page, first, last, raw=0):
    return option(None if page is None else u8(page)) + u32(raw) + u8(first) + u8(last)


def bb_sector(n, raw=False):
    return _BB_SECTOR["Raw"] + u64(n) if raw else _BB_SECTOR["Near"] + u8(n)


def bb_rw(op, nr, sector, template, odd=None):
    return (_BB["Rw"] + u8(op) + u8(nr) + sector + template
            + option(None if odd is None else u8(odd[0]) + odd[1]))


def bb_indirect(op, nr, sector, template, odd=None, pages=1, raw=None):
    return (_BB["Indirect"] + u8(op) + u16(nr) + sector + template
            + option(None if odd is None else u16(odd[0]) + odd[1]) + u8(pages)
            + option(None if raw is None else u32(raw)))


def bb_discard(sector, count, flag=0):
    return _BB["Discard"] + sector + u64(count) + u8(flag)


def bb_process(budget=63):
    return _BB["Process"] + u8(budget)


def bb_input(readonly, items):
    return boolean(readonly) + steps(items)


READ, WRITE, BARRIER, FLUSH_OP, DISCARD, INDIRECT = 0, 1, 2, 3, 5, 6
SEEDS["blkback_hostile_frontend"] = [
    # honest: writes and reads back, several segments, partial pages, flush, discard
    bb_input(False, [
        bb_rw(WRITE, 3, bb_sector(0), bb_seg(0, 0, 7)), bb_rw(READ, 2, bb_sector(4), bb_seg(4, 2, 5)),
        BB_FLUSH, bb_discard(bb_sector(20), 4), BB_PUSH, bb_process(), BB_EVENTS,
        bb_indirect(WRITE, 20, bb_sector(30), bb_seg(1, 0, 7)),
        bb_indirect(READ, 16, bb_sector(28), bb_seg(2, 1, 6)), BB_PUSH, bb_process(1), bb_process()]),
    # bad segments: first > last, last past the page, a grant never made,
    # too many segments, sectors past the disk, unknown operations, barrier
    bb_input(False, [
        bb_rw(READ, 1, bb_sector(0), bb_seg(0, 5, 2)), bb_rw(READ, 1, bb_sector(0), bb_seg(0, 0, 9)),
        bb_rw(WRITE, 2, bb_sector(0), bb_seg(0, 0, 7), (1, bb_seg(None, 0, 7, raw=9999))),
        bb_rw(WRITE, 12, bb_sector(0), bb_seg(0, 0, 7)), bb_rw(READ, 0, bb_sector(0), bb_seg(0, 0, 7)),
        bb_rw(WRITE, 1, bb_sector(127), bb_seg(0, 0, 7)), bb_rw(READ, 1, bb_sector(2**64 - 4, True), bb_seg(0, 0, 7)),
        bb_rw(9, 1, bb_sector(0), bb_seg(0, 0, 7)), bb_rw(BARRIER, 1, bb_sector(0), bb_seg(0, 0, 7)),
        BB_PUSH, bb_process()]),
    # indirect: too many segments, none, bad inner operation, a bad
    # descriptor, no indirect page, a raw reference; rewritten after posting
    bb_input(False, [
        bb_indirect(WRITE, 33, bb_sector(0), bb_seg(0, 0, 7)), bb_indirect(WRITE, 0, bb_sector(0), bb_seg(0, 0, 7)),
        bb_indirect(DISCARD, 1, bb_sector(0), bb_seg(0, 0, 7)),
        bb_indirect(WRITE, 3, bb_sector(0), bb_seg(0, 0, 7), (2, bb_seg(3, 6, 1))),
        bb_indirect(READ, 2, bb_sector(0), bb_seg(0, 0, 7), pages=0),
        bb_indirect(READ, 2, bb_sector(0), bb_seg(0, 0, 7), raw=4242), BB_PUSH, bb_process(),
        bb_indirect(WRITE, 4, bb_sector(8), bb_seg(0, 0, 7)), BB_PUSH, _BB["WriteIndirect"] + u16(8) + u32(0x0700ffff),
        bb_process()]),
    # read-only image; discard flags and ranges
    bb_input(True, [
        bb_rw(WRITE, 1, bb_sector(0), bb_seg(0, 0, 7)), bb_rw(READ, 1, bb_sector(0), bb_seg(0, 0, 7)),
        bb_discard(bb_sector(0), 8), BB_PUSH, bb_process()]),
    bb_input(False, [
        bb_discard(bb_sector(0), 0), bb_discard(bb_sector(120), 9), bb_discard(bb_sector(0), 8, 0x3),
        bb_discard(bb_sector(0), 8, 1), BB_PUSH, bb_process()]),
    # raw bytes, ring scribbled, a storm
    bb_input(False, [
        _BB["Raw"] + bytes([INDIRECT, WRITE]) + bytes(38), _BB["Raw"] + bytes([READ, 1]) + bytes(38),
        BB_PUSH, bb_process(), _BB["WriteRing"] + u16(0) + u32(1000), bb_process(),
        _BB["Storm"] + u8(63), BB_EVENTS, bb_process()]),
]


# netfront_hostile_handshake (fuzz/fuzz_targets/netfront_hostile_handshake.rs)
_NH = enum_of(["Write", "Remove", "State", "StateJunk", "Bind", "Poll", "Restart"])
_NH_KEY = enum_of(["RxCopy", "Sg", "GsoTcpv4", "GsoTcpv6", "Ipv6CsumOffload",
                   "SplitEventChannels", "MaxQueues", "Mac", "Mtu"])
_NH_VALUE = enum_of(["Flag", "Number", "Bytes", "Mac"])
NH_BIND, NH_POLL, NH_RESTART = _NH["Bind"], _NH["Poll"], _NH["Restart"]


def nh_flag(key, b=True):
    return _NH["Write"] + _NH_KEY[key] + _NH_VALUE["Flag"] + boolean(b)


def nh_number(key, n):
    return _NH["Write"] + _NH_KEY[key] + _NH_VALUE["Number"] + u32(n)


def nh_bytes(key, data):
    return _NH["Write"] + _NH_KEY[key] + _NH_VALUE["Bytes"] + data.ljust(18, b"\x00")[:18] + u8(len(data))


def nh_mac(mac):
    return _NH["Write"] + _NH_KEY["Mac"] + _NH_VALUE["Mac"] + bytes(mac)


def nh_state(n):
    return _NH["State"] + u8(n)


def nh_input(queues, split, items):
    return u8(queues) + boolean(split) + steps(items)


NH_OFFER = [nh_flag("RxCopy"), nh_flag("Sg"), nh_flag("GsoTcpv4"), nh_flag("GsoTcpv6"),
            nh_flag("Ipv6CsumOffload"), nh_flag("SplitEventChannels")]
SEEDS["netfront_hostile_handshake"] = [
    # a full handshake: features, InitWait, bind, Connected
    nh_input(4, True, NH_OFFER + [nh_number("MaxQueues", 2), nh_state(2), NH_POLL, NH_BIND,
                                  nh_state(4), NH_POLL, NH_POLL]),
    nh_input(1, False, NH_OFFER + [nh_state(2), NH_POLL, NH_BIND, nh_state(4), NH_POLL]),
    # no rx-copy; junk feature values and queue counts
    nh_input(1, False, [nh_state(2), NH_POLL, NH_RESTART, nh_bytes("RxCopy", b"yes"),
                        nh_number("MaxQueues", 0), nh_state(2), NH_POLL]),
    nh_input(8, True, [nh_flag("RxCopy"), nh_number("MaxQueues", 70000), nh_state(2), NH_POLL,
                       nh_number("MaxQueues", 3), NH_RESTART, NH_POLL, NH_BIND, nh_state(4), NH_POLL]),
    # bad, multicast and broadcast MACs; MTU out of range
    nh_input(1, False, [nh_flag("RxCopy"), nh_bytes("Mac", b"00:16:3e:zz:00:01"), nh_state(2), NH_POLL,
                        nh_mac([1, 0x16, 0x3e, 0, 0, 1]), NH_RESTART, NH_POLL,
                        nh_mac([0xff] * 6), NH_RESTART, NH_POLL, nh_mac([0, 0x16, 0x3e, 1, 2, 3]),
                        nh_number("Mtu", 20), NH_RESTART, NH_POLL]),
    # states out of order and junk: Closing before InitWait, Connected at once
    nh_input(2, False, NH_OFFER + [nh_state(4), NH_POLL, nh_state(5), NH_POLL, nh_state(6), NH_POLL,
                                   _NH["StateJunk"] + b"4\x00\xff9", NH_POLL, nh_state(200), NH_POLL,
                                   NH_RESTART, nh_state(2), NH_POLL, NH_BIND, nh_state(1), NH_POLL]),
]


def ge_marathon(seeds):
    """One long input: the operations of every other seed, in turn, on three
    domains with mixed ABIs (indices then pick other objects than in the
    original scenarios, which is the point). Lets libFuzzer's length limit
    start near `GE_MAX_OPS` operations."""
    setup_len = len(ge_setup())
    ops = b"".join(seed[setup_len:] for seed in seeds)
    return ge_setup("V2", deferred=3, third=True, abi=("Fifo", "TwoLevel", "Fifo"),
                    budget="Three", storm="Strict") + ops


SEEDS["grant_evtchn_mock"].append(ge_marathon(SEEDS["grant_evtchn_mock"]))


def main():
    for target, seeds in SEEDS.items():
        out = os.path.join(HERE, "seeds", target)
        os.makedirs(out, exist_ok=True)
        for old in os.listdir(out):
            if old.startswith("seed-"):
                os.remove(os.path.join(out, old))
        for i, data in enumerate(seeds):
            with open(os.path.join(out, f"seed-{i}"), "wb") as f:
                f.write(data)
        print(f"{target}: {len(seeds)} seeds")


if __name__ == "__main__":
    main()
