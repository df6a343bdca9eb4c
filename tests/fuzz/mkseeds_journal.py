#!/usr/bin/env python3
"""
mkseeds_journal.py - write the seed corpus of tests/fuzz/fuzz_journal.c
from a journal that authd wrote.

    python3 tests/fuzz/mkseeds_journal.py JOURNAL_DIR   # rewrites corpus/journal/

JOURNAL_DIR is a journal with one segment, ideally with every record kind.
The committed seeds come from one authd wrote from an empty user base
(--clock fixed, authctl and authclient.py over af_packet): users, a
temporary quota, merchants, a funder, a policy, authorizations, a capture,
a refund, a void, a repay, a cash loan, declines, a tombstone, and hold
expiries after `authctl clock set` two days on.

Each seed is the harness's container (see fuzz_journal.c): a flags byte
(bit 0 reseal, bit 1 recover, bit 2 scan every record), from_seq (8 bytes),
then chunks (type, 16-bit length, bytes): 0 a segment named after its
header, 1 journal.idx. The seeds: the journal as written (scan, recover,
scan from the middle), a prefix of it, the same split into two segments
with an index (resealed: the headers, chain and index are rebuilt here,
the harness recomputes the checksums), a torn tail, no index, an index
that lists a lost segment.
"""
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "corpus", "journal")
HDR = 128
REC = 128
RESEAL, RECOVER, ALL = 1, 2, 4


def chunk(kind, data):
    assert len(data) < 65536
    return struct.pack("<BH", kind, len(data)) + data


def seed(name, flags, from_seq, chunks):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(struct.pack("<BQ", flags, from_seq) + b"".join(chunks))


def header(base, first_seq, segment_no, prev_check):
    """A segment header like base's, moved to first_seq (checksum left to
    the harness's reseal)."""
    h = bytearray(base[:HDR])
    struct.pack_into("<QQ", h, 32, first_seq, segment_no)
    struct.pack_into("<Q", h, 56, first_seq - 1)
    struct.pack_into("<I", h, 64, prev_check)
    return bytes(h)


def index(journal_id, segs):
    """journal.idx text; the checksum is a placeholder the harness fixes."""
    lines = ["authd journal index v1", "journal_id %016x" % journal_id]
    for no, (first, last) in enumerate(segs):
        lines.append("seg-%020d.jnl %d %d %s" % (
            first, no, first, "-" if last is None else str(last)))
    return ("\n".join(lines) + "\nchecksum " + "0" * 16 + "\n").encode()


def main():
    src = sys.argv[1]
    segs = sorted(n for n in os.listdir(src) if n.startswith("seg-"))
    seg = open(os.path.join(src, segs[0]), "rb").read()
    idx = open(os.path.join(src, "journal.idx"), "rb").read()
    journal_id, first = struct.unpack_from("<QQ", seg, 24)
    recs = [seg[HDR + i * REC:HDR + (i + 1) * REC]
            for i in range((len(seg) - HDR) // REC)]
    n = len(recs)
    os.makedirs(OUT, exist_ok=True)
    for f in os.listdir(OUT):
        os.unlink(os.path.join(OUT, f))

    def check(rec):
        return struct.unpack_from("<I", rec, 124)[0]

    pre = 24 if n > 24 else n
    prefix = seg[:HDR] + b"".join(recs[:pre])
    seed("real-scan", 0, 0, [chunk(0, seg), chunk(1, idx)])
    seed("real-recover", RECOVER, 0, [chunk(0, seg), chunk(1, idx)])
    seed("real-from-middle", ALL, first + n // 2, [chunk(0, seg), chunk(1, idx)])
    seed("prefix-scan", 0, 0, [chunk(0, prefix), chunk(1, idx)])
    seed("prefix-recover", RECOVER, 0, [chunk(0, prefix), chunk(1, idx)])
    seed("prefix-no-index", RECOVER, 0, [chunk(0, prefix)])
    seed("prefix-torn", 0, 0, [chunk(0, prefix + recs[pre][:60]), chunk(1, idx)])
    seed("prefix-torn-header", 0, 0,
         [chunk(0, prefix), chunk(0, header(seg, first + pre, 1, 0)[:90]),
          chunk(1, idx)])
    # Two segments and an index, rebuilt: the chain and the index are the
    # reader's cross-checks.
    half = pre // 2
    s0 = seg[:HDR] + b"".join(recs[:half])
    s1 = header(seg, first + half, 1, check(recs[half - 1])) + \
        b"".join(recs[half:pre])
    two = index(journal_id, [(first, first + half - 1), (first + half, None)])
    seed("split-scan", RESEAL | ALL, 0, [chunk(0, s0), chunk(0, s1), chunk(1, two)])
    seed("split-recover", RESEAL | RECOVER, 0,
         [chunk(0, s0), chunk(0, s1), chunk(1, two)])
    seed("split-lost-segment", RESEAL, 0, [chunk(0, s0), chunk(1, two)])
    seed("split-stale-index", RESEAL, 0,
         [chunk(0, s0), chunk(0, s1),
          chunk(1, index(journal_id, [(first, None)]))])


if __name__ == "__main__":
    main()
