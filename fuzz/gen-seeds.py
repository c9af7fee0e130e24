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
