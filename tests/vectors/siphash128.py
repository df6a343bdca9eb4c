#!/usr/bin/env python3
"""
siphash128.py - SipHash-2-4 with 128-bit output, in plain Python, written
from the SipHash paper (Aumasson and Bernstein, 2012) and its reference's
128-bit variant (v1 ^= 0xee at start, v2 ^= 0xee before finalisation,
v1 ^= 0xdd before the second half). It shares no code with libsodium: it is
the independent side from which tests/unit/test_codec.c takes its expected
bytes.

    python3 tests/vectors/siphash128.py          # self-check, print vectors

The self-check reproduces the 64 official vectors of the reference
implementation (vectors_sip128 in the SipHash repository's vectors.h: key
00..0f, message 00..n-1 for n = 0..63) and then prints, as C arrays:
  - the tag of message 00..3f (n = 64, one byte past the official table);
  - a fixed protocol datagram (shared/docs/protocol.md v1), its tag, and the
    tag of its response, with the key b"authd-vector-k01".
Those are pasted into test_codec.c; tests/fuzz/mkseeds_dgram.py imports
this module to tag the fuzz seeds.
"""
import struct
import sys

MASK = (1 << 64) - 1

# vectors_sip128 from the SipHash reference (vectors.h): key 00..0f,
# message 00..n-1, output bytes as the reference writes them.
OFFICIAL_128 = [
    "a3817f04ba25a8e66df67214c7550293",  # 0
    "da87c1d86b99af44347659119b22fc45",  # 1
    "8177228da4a45dc7fca38bdef60affe4",  # 2
    "9c70b60c5267a94e5f33b6b02985ed51",  # 3
    "f88164c12d9c8faf7d0f6e7c7bcd5579",  # 4
    "1368875980776f8854527a07690e9627",  # 5
    "14eeca338b208613485ea0308fd7a15e",  # 6
    "a1f1ebbed8dbc153c0b84aa61ff08239",  # 7
    "3b62a9ba6258f5610f83e264f31497b4",  # 8
    "264499060ad9baabc47f8b02bb6d71ed",  # 9
    "00110dc378146956c95447d3f3d0fbba",  # 10
    "0151c568386b6677a2b4dc6f81e5dc18",  # 11
    "d626b266905ef35882634df68532c125",  # 12
    "9869e247e9c08b10d029934fc4b952f7",  # 13
    "31fcefac66d7de9c7ec7485fe4494902",  # 14
    "5493e99933b0a8117e08ec0f97cfc3d9",  # 15
    "6ee2a4ca67b054bbfd3315bf85230577",  # 16
    "473d06e8738db89854c066c47ae47740",  # 17
    "a426e5e423bf4885294da481feaef723",  # 18
    "78017731cf65fab074d5208952512eb1",  # 19
    "9e25fc833f2290733e9344a5e83839eb",  # 20
    "568e495abe525a218a2214cd3e071d12",  # 21
    "4a29b54552d16b9a469c10528eff0aae",  # 22
    "c9d184ddd5a9f5e0cf8ce29a9abf691c",  # 23
    "2db479ae78bd50d8882a8a178a6132ad",  # 24
    "8ece5f042d5e447b5051b9eacb8d8f6f",  # 25
    "9c0b53b4b3c307e87eaee08678141f66",  # 26
    "abf248af69a6eae4bfd3eb2f129eeb94",  # 27
    "0664da1668574b88b935f3027358aef4",  # 28
    "aa4b9dc4bf337de90cd4fd3c467c6ab7",  # 29
    "ea5c7f471faf6bde2b1ad7d4686d2287",  # 30
    "2939b0183223fafc1723de4f52c43d35",  # 31
    "7c3956ca5eeafc3e363e9d556546eb68",  # 32
    "77c6077146f01c32b6b69d5f4ea9ffcf",  # 33
    "37a6986cb8847edf0925f0f1309b54de",  # 34
    "a705f0e69da9a8f907241a2e923c8cc8",  # 35
    "3dc47d1f29c448461e9e76ed904f6711",  # 36
    "0d62bf01e6fc0e1a0d3c4751c5d3692b",  # 37
    "8c03468bca7c669ee4fd5e084bbee7b5",  # 38
    "528a5bb93baf2c9c4473cce5d0d22bd9",  # 39
    "df6a301e95c95dad97ae0cc8c6913bd8",  # 40
    "801189902c857f39e73591285e70b6db",  # 41
    "e617346ac9c231bb3650ae34ccca0c5b",  # 42
    "27d93437efb721aa401821dcec5adf89",  # 43
    "89237d9ded9c5e78d8b1c9b166cc7342",  # 44
    "4a6d8091bf5e7d651189fa94a250b14c",  # 45
    "0e33f96055e7ae893ffc0e3dcf492902",  # 46
    "e61c432b720b19d18ec8d84bdc63151b",  # 47
    "f7e5aef549f782cf379055a608269b16",  # 48
    "438d030fd0b7a54fa837f2ad201a6403",  # 49
    "a590d3ee4fbf04e3247e0d27f286423f",  # 50
    "5fe2c1a172fe93c4b15cd37caef9f538",  # 51
    "2c97325cbd06b36eb2133dd08b3a017c",  # 52
    "92c814227a6bca949ff0659f002ad39e",  # 53
    "dce850110bd8328cfbd50841d6911d87",  # 54
    "67f14984c7da791248e32bb5922583da",  # 55
    "1938f2cf72d54ee97e94166fa91d2a36",  # 56
    "74481e9646ed49fe0f6224301604698e",  # 57
    "57fca5de98a9d6d8006438d0583d8a1d",  # 58
    "9fecde1cefdc1cbed4763674d9575359",  # 59
    "e3040c00eb28f15366ca73cbd872e740",  # 60
    "7697009a6a831dfecca91c5993670f7a",  # 61
    "5853542321f567a005d547a4f04759bd",  # 62
    "5150d1772f50834a503e069a973fbd7c",  # 63
]


def _rotl(x, b):
    return ((x << b) | (x >> (64 - b))) & MASK


def _round(v):
    v0, v1, v2, v3 = v
    v0 = (v0 + v1) & MASK
    v1 = _rotl(v1, 13)
    v1 ^= v0
    v0 = _rotl(v0, 32)
    v2 = (v2 + v3) & MASK
    v3 = _rotl(v3, 16)
    v3 ^= v2
    v0 = (v0 + v3) & MASK
    v3 = _rotl(v3, 21)
    v3 ^= v0
    v2 = (v2 + v1) & MASK
    v1 = _rotl(v1, 17)
    v1 ^= v2
    v2 = _rotl(v2, 32)
    return [v0, v1, v2, v3]


def siphash128(key, msg, c_rounds=2, d_rounds=4):
    """SipHash-c-d with a 16-byte key and a 16-byte (128-bit) output."""
    if len(key) != 16:
        raise ValueError("key must be 16 bytes")
    k0, k1 = struct.unpack("<QQ", key)
    v = [k0 ^ 0x736F6D6570736575, k1 ^ 0x646F72616E646F6D,
         k0 ^ 0x6C7967656E657261, k1 ^ 0x7465646279746573]
    v[1] ^= 0xEE
    n = len(msg)
    tail = n - n % 8
    for off in range(0, tail, 8):
        m = struct.unpack_from("<Q", msg, off)[0]
        v[3] ^= m
        for _ in range(c_rounds):
            v = _round(v)
        v[0] ^= m
    last = (n & 0xFF) << 56
    for i, byte in enumerate(msg[tail:]):
        last |= byte << (8 * i)
    v[3] ^= last
    for _ in range(c_rounds):
        v = _round(v)
    v[0] ^= last
    v[2] ^= 0xEE
    for _ in range(d_rounds):
        v = _round(v)
    out0 = v[0] ^ v[1] ^ v[2] ^ v[3]
    v[1] ^= 0xDD
    for _ in range(d_rounds):
        v = _round(v)
    out1 = v[0] ^ v[1] ^ v[2] ^ v[3]
    return struct.pack("<QQ", out0, out1)


# --- protocol v1 layout (shared/docs/protocol.md), little-endian -----------

HDR = struct.Struct("<HBBHHIIQQ")            # 32 bytes
REQ = struct.Struct("<QQQqIIHHBBBBQII")      # 64 bytes
RESP = struct.Struct("<QQQqqIBBBBHBBIq")     # 64 bytes
assert HDR.size == 32 and REQ.size == 64 and RESP.size == 64

MAGIC, VERSION, TYPE_REQUEST, TYPE_RESPONSE = 0xA17D, 1, 1, 2


def header(count, stream, gateway_id, key_id, seq, sent_ns,
           type_=TYPE_REQUEST, magic=MAGIC, version=VERSION):
    return HDR.pack(magic, version, type_, count, stream, gateway_id,
                    key_id, seq, sent_ns)


def request(request_id, user_id, ref_id, amount, merchant_id, group_id=0,
            mcc=0, region=0, op=1, product=1, terms=0, channel=1,
            device_id=0, reserved0=0, reserved1=0):
    return REQ.pack(request_id, user_id, ref_id, amount, merchant_id,
                    group_id, mcc, region, op, product, terms, channel,
                    device_id, reserved0, reserved1)


def response(request_id, user_id, ledger_seq, amount, available,
             hold_expires, op, status, reason, notes, funder_id,
             own_share_pct, risk_score, self_cap_left):
    return RESP.pack(request_id, user_id, ledger_seq, amount, available,
                     hold_expires, op, status, reason, notes, funder_id,
                     own_share_pct, 0, risk_score, self_cap_left)


def dgram(hdr, records, key):
    """Header + records + tag over everything before the tag."""
    body = hdr + b"".join(records)
    return body + siphash128(key, body)


# --- the fixed vector used by test_codec.c ---------------------------------

VECTOR_KEY = b"authd-vector-k01"


def vector_request():
    hdr = header(count=1, stream=3, gateway_id=42, key_id=7, seq=1000,
                 sent_ns=0x0123456789ABCDEF)
    rec = request(request_id=0x1122334455667788, user_id=10001, ref_id=0,
                  amount=12345, merchant_id=501, group_id=0, mcc=5411,
                  region=1100, op=1, product=1, terms=0, channel=2,
                  device_id=0xFEEDFACECAFEBEEF)
    return dgram(hdr, [rec], VECTOR_KEY)


def vector_response():
    hdr = header(count=1, stream=3, gateway_id=42, key_id=7, seq=1000,
                 sent_ns=0x0123456789ABCDEF, type_=TYPE_RESPONSE)
    rec = response(request_id=0x1122334455667788, user_id=10001,
                   ledger_seq=77, amount=12345, available=487655,
                   hold_expires=1700604800, op=1, status=0, reason=0,
                   notes=0x01, funder_id=2, own_share_pct=30,
                   risk_score=120, self_cap_left=-1)
    return dgram(hdr, [rec], VECTOR_KEY)


def c_array(name, data):
    out = ["static const uint8_t %s[%d] = {" % (name, len(data))]
    for off in range(0, len(data), 8):
        out.append("\t" + ", ".join("0x%02x" % b for b in data[off:off + 8])
                   + ",")
    out.append("};")
    return "\n".join(out)


def self_check():
    key = bytes(range(16))
    for n, hexval in enumerate(OFFICIAL_128):
        got = siphash128(key, bytes(range(n))).hex()
        if got != hexval:
            sys.exit("official vector %d: got %s, want %s" % (n, got, hexval))


def main():
    self_check()
    print("/* all %d official SipHash-2-4-128 vectors reproduced */"
          % len(OFFICIAL_128))
    print(c_array("sip128_len64", siphash128(bytes(range(16)),
                                             bytes(range(64)))))
    req = vector_request()
    print(c_array("vector_req", req))
    resp = vector_response()
    print(c_array("vector_resp", resp))


if __name__ == "__main__":
    main()
