#!/usr/bin/env python3
"""
mkseeds_dgram.py - write the seed corpus of tests/fuzz/fuzz_dgram.c.

    python3 tests/fuzz/mkseeds_dgram.py   # rewrites tests/fuzz/corpus/dgram/

Seeds are whole datagrams of protocol v1, tagged with the harness's fixed
keys by the independent SipHash-128 in tests/vectors/siphash128.py: a few
valid ones (1 and 16 records, both keys of a rotating gateway, a gateway
with an allow list, a void of the whole hold, malformed records under a good
tag) and near misses (one bit of the tag, an unknown key, a count that does
not match the length, a response, one byte short).
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "vectors"))

from siphash128 import dgram, header, request  # noqa: E402

OUT = os.path.join(HERE, "corpus", "dgram")

# The keyring of fuzz_dgram.c.
KEY42_7 = b"fuzz-key-gw42-k7"
KEY42_8 = b"fuzz-key-gw42-k8"
KEY43_1 = b"fuzz-key-gw43-k1"

AUTHORIZE, CAPTURE, VOID, REFUND, REPAY = 1, 2, 3, 4, 5


def rec(i, op=AUTHORIZE, **kw):
    fields = dict(request_id=1000 + i, user_id=77 + i, ref_id=0,
                  amount=100 * (i + 1), merchant_id=501, mcc=5411,
                  region=1100, op=op, product=1, terms=0, channel=1,
                  device_id=0xD00D + i)
    if op in (CAPTURE, VOID, REFUND):
        fields["ref_id"] = 900 + i
    if op == REPAY:
        fields["merchant_id"] = 0
    fields.update(kw)
    return request(**fields)


def hdr(count, gw=42, key_id=7, stream=1, seq=1, **kw):
    return header(count=count, stream=stream, gateway_id=gw, key_id=key_id,
                  seq=seq, sent_ns=1_700_000_000_000_000_000, **kw)


def seeds():
    one = dgram(hdr(1), [rec(0)], KEY42_7)
    ops = [AUTHORIZE, CAPTURE, VOID, REFUND, REPAY]
    sixteen = dgram(hdr(16, key_id=8, seq=2),
                    [rec(i, op=ops[i % 5], product=1 + i % 3,
                         terms=(3 if i % 3 == 1 else 0)) for i in range(16)],
                    KEY42_8)
    yield "valid_1", one
    yield "valid_16_key8", sixteen
    yield "valid_gw43_allow", dgram(hdr(2, gw=43, key_id=1, stream=9),
                                    [rec(0), rec(1, op=REPAY)], KEY43_1)
    yield "valid_void_zero", dgram(hdr(1, seq=3),
                                   [rec(0, op=VOID, amount=0)], KEY42_7)
    yield "valid_malformed_recs", dgram(
        hdr(4, seq=4),
        [rec(0, op=0), rec(1, amount=-5), rec(2, ref_id=3),
         rec(3, reserved1=1)], KEY42_7)
    yield "valid_installment_terms5", dgram(
        hdr(1, seq=5), [rec(0, product=2, terms=5)], KEY42_7)
    bad_tag = bytearray(one)
    bad_tag[-1] ^= 0x01
    yield "bad_tag", bytes(bad_tag)
    yield "unknown_key", dgram(hdr(1, key_id=9), [rec(0)], KEY42_7)
    yield "unknown_gateway", dgram(hdr(1, gw=44), [rec(0)], KEY42_7)
    yield "count_mismatch", dgram(hdr(2), [rec(0)], KEY42_7)
    yield "response_type", dgram(hdr(1, type_=2), [rec(0)], KEY42_7)
    yield "short", one[:-1]


def main():
    os.makedirs(OUT, exist_ok=True)
    for name in os.listdir(OUT):
        if name.endswith(".bin"):
            os.unlink(os.path.join(OUT, name))
    for name, data in seeds():
        with open(os.path.join(OUT, name + ".bin"), "wb") as f:
            f.write(data)
        print("%-28s %5d bytes" % (name, len(data)))


if __name__ == "__main__":
    main()
