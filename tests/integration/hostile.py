#!/usr/bin/env python3
"""
hostile.py - hostile traffic for tests/integration/test_hostile.sh: frames
that authd must drop (and count by cause), or answer only as the protocol
says (ARP requests for its address, ICMP echo requests), sent from a raw
AF_PACKET socket on the client's side of the veth pair, and replays of
captured datagrams sent from a plain UDP socket.

Every frame is built here with the cause authd must count it under
(auth drop causes: ../../auth/auth.h AUTH_FOREACH_DROP; frame causes:
../../nic/nic.h NIC_FOREACH_CAUSE), so the test compares authd's counters
with exact expectations:

    hostile.py exact --iface IF --dst-mac MAC --dst-ip A --src-ip A \\
        --gateway G --key-id K --key HEX --count N --pps P --out FILE
        N frames of every kind (paced at P frames/s, in bursts of 32) and
        the replay/stale datagrams; FILE gets the expected counters:
        {"drops": {cause: n}, "nic_drops": {cause: n}, "kernel":
         {"defrag": n}, "arp_answered": n, "icmp_answered": n,
         "answered": n, "sent": n, "by_kind": {...}}
    hostile.py flood ... --seconds S --out FILE
        the same kinds (replays excepted), as fast as the socket takes
        them, for S seconds; FILE: the counters of what was sent, as
        above (authd may miss some: its RX ring overflows)

Kinds (each frame's cause in brackets):
  random        random UDP payloads to our port, random length [short or
                magic: length < 112 bytes is short, else the magic is
                wrong; the first two bytes are never the magic]
  truncated     a valid datagram cut short [short / length], and frames
                whose IP total length exceeds the frame [ip-truncated]
  count         a header with a count of 0 or 17..65535 [count]
  tag           a well-formed datagram of a known gateway and key with a
                wrong (random) tag [tag]
  gateway       datagrams of an unknown gateway [gateway]
  key           a known gateway with an unknown key id [key]
  replay        one captured datagram (answered once) sent again [replay],
                and datagrams older than the replay window [stale] (the
                newer one they are older than is answered)
  junk          random ethertypes [not-ipv4], other unicast MACs
                [other-mac], QinQ [vlan-qinq], first fragments (held by
                the kernel: af_packet reassembles for its sockets, so they
                never reach authd) [kernel defrag],
                another IP [not-ours], another port [other-port], TCP
                [not-udp], a UDP length past the IP payload
                [bad-udp-length], a bad IP checksum [bad-ip-checksum],
                source port 0 [bad-source]
  arp           ARP requests for our address [answered], for another
                address and ARP replies [arp-other]
  icmp          echo requests [answered], timestamp requests
                [icmp-other], echo requests with a bad checksum [bad-icmp]
"""
import argparse
import json
import os
import random
import select
import socket
import struct
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from authclient import (HDR, MAGIC, VERSION, TYPE_REQUEST,  # noqa: E402
                        Client, pack_record, request_record)

PORT = 7711
MIN_DGRAM = 32 + 64 + 16          # header, one record, tag
REPLAY_WINDOW = 1024


def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def mac(text):
    return bytes.fromhex(text.replace(":", ""))


def ip4(text):
    return socket.inet_aton(text)


class Frames:
    """Frames from us (src) to authd (dst)."""

    def __init__(self, src_mac, dst_mac, src_ip, dst_ip, rnd):
        self.src_mac, self.dst_mac = src_mac, dst_mac
        self.src_ip, self.dst_ip = src_ip, dst_ip
        self.rnd = rnd

    def eth(self, payload, ethertype=0x0800, dst=None):
        return (dst or self.dst_mac) + self.src_mac + \
            struct.pack("!H", ethertype) + payload

    def ipv4(self, proto, payload, dst=None, frag=0, total=None,
             bad_sum=False, src=None):
        total = 20 + len(payload) if total is None else total
        h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, 0x1234, frag, 64,
                        proto, 0, src or self.src_ip, dst or self.dst_ip)
        s = csum(h)
        if bad_sum:
            s = (s + 1) & 0xFFFF or 1
        return h[:10] + struct.pack("!H", s) + h[12:] + payload

    def udp(self, payload, dport=PORT, sport=40001, length=None, **ipkw):
        u = struct.pack("!HHHH", sport, dport,
                        8 + len(payload) if length is None else length,
                        0) + payload
        return self.eth(self.ipv4(17, u, **ipkw))

    def random_bytes(self, n):
        return bytes(self.rnd.getrandbits(8) for _ in range(n))


def header(count, gateway, key_id, seq, stream=7):
    return HDR.pack(MAGIC, VERSION, TYPE_REQUEST, count, stream, gateway,
                    key_id, seq, time.time_ns())


def body(records):
    return b"".join(pack_record(r) for r in records)


def some_records(rnd, n):
    return [request_record("authorize", rnd.randrange(1, 1 << 40),
                           amount=rnd.randrange(1, 100000),
                           merchant=rnd.randrange(1, 1000))
            for _ in range(n)]


# ---------------------------------------------------------------------------
# Kinds: each returns [(frame, (table, cause))]; table "drops" (the codec)
# or "nic_drops" (the frame), or ("answer", "arp"/"icmp").

def kind_random(f, a, n):
    out = []
    for _ in range(n):
        ln = f.rnd.randrange(0, 1400)
        p = bytearray(f.random_bytes(ln))
        if ln >= 2 and p[0] == 0x7D and p[1] == 0xA1:
            p[0] ^= 0xFF
        out.append((f.udp(bytes(p)), ("drops", "short" if ln < MIN_DGRAM
                                      else "magic")))
    return out


def kind_truncated(f, a, n):
    out = []
    for i in range(n):
        cnt = f.rnd.randrange(1, 17)
        d = header(cnt, a.gateway, a.key_id, 1 + i) + \
            body(some_records(f.rnd, cnt)) + bytes(16)
        if i % 4 == 3:
            # The IP header claims more than the frame carries.
            full = f.udp(d)
            cut = f.rnd.randrange(14 + 20 + 8, len(full))
            out.append((full[:cut], ("nic_drops", "ip-truncated")))
            continue
        ln = f.rnd.randrange(0, len(d))
        out.append((f.udp(d[:ln]), ("drops", "short" if ln < MIN_DGRAM
                                    else "length")))
    return out


def kind_count(f, a, n):
    out = []
    for i in range(n):
        cnt = 0 if i % 8 == 0 else f.rnd.randrange(17, 65536)
        d = header(cnt, a.gateway, a.key_id, 1 + i) + \
            body(some_records(f.rnd, 1)) + bytes(16)
        out.append((f.udp(d), ("drops", "count")))
    return out


def forged(f, gateway, key_id, cnt, seq):
    """A well-formed datagram whose tag is random (wrong: 2^-128)."""
    d = header(cnt, gateway, key_id, seq) + body(some_records(f.rnd, cnt))
    return d + f.random_bytes(16)


def kind_tag(f, a, n):
    return [(f.udp(forged(f, a.gateway, a.key_id, f.rnd.randrange(1, 17),
                          1 + i)), ("drops", "tag")) for i in range(n)]


def kind_gateway(f, a, n):
    out = []
    for i in range(n):
        g = f.rnd.randrange(1, 1 << 32)
        while g == a.gateway:
            g = f.rnd.randrange(1, 1 << 32)
        out.append((f.udp(forged(f, g, 1, f.rnd.randrange(1, 17), 1 + i)),
                    ("drops", "gateway")))
    return out


def kind_key(f, a, n):
    out = []
    for i in range(n):
        k = f.rnd.randrange(0, 1 << 32)
        while k == a.key_id:
            k = f.rnd.randrange(0, 1 << 32)
        out.append((f.udp(forged(f, a.gateway, k, 1, 1 + i)),
                    ("drops", "key")))
    return out


def kind_junk(f, a, n):
    out = []
    other_mac = bytes([0x02, 0x11, 0x22, 0x33, 0x44, 0x55])
    payload = b"\x7d\xa1" + bytes(200)
    for i in range(n):
        k = i % 10
        if k == 0:
            et = f.rnd.randrange(0x0600, 0x10000)
            while et in (0x0800, 0x0806, 0x8100, 0x88A8):
                et = f.rnd.randrange(0x0600, 0x10000)
            out.append((f.eth(f.random_bytes(f.rnd.randrange(0, 200)), et),
                        ("nic_drops", "not-ipv4")))
        elif k == 1:
            out.append((f.eth(f.ipv4(17, bytes(40)), dst=other_mac),
                        ("nic_drops", "other-mac")))
        elif k == 2:
            v = struct.pack("!HH", 1, 0x8100) + struct.pack("!HH", 2, 0x0800)
            out.append((f.eth(v + f.ipv4(17, bytes(40)), 0x8100),
                        ("nic_drops", "vlan-qinq")))
        elif k == 3:
            # DPDK's af_packet asks the kernel to reassemble (fanout
            # defrag): a lone first fragment never reaches authd.
            out.append((f.udp(payload, frag=0x2000),
                        ("kernel", "defrag")))
        elif k == 4:
            out.append((f.udp(payload, dst=ip4("10.213.0.77")),
                        ("nic_drops", "not-ours")))
        elif k == 5:
            out.append((f.udp(payload, dport=f.rnd.choice([53, 7712, 9999])),
                        ("nic_drops", "other-port")))
        elif k == 6:
            out.append((f.eth(f.ipv4(6, bytes(40))), ("nic_drops", "not-udp")))
        elif k == 7:
            out.append((f.udp(payload, length=8 + len(payload) + 50),
                        ("nic_drops", "bad-udp-length")))
        elif k == 8:
            out.append((f.udp(payload, bad_sum=True),
                        ("nic_drops", "bad-ip-checksum")))
        else:
            out.append((f.udp(payload, sport=0), ("nic_drops", "bad-source")))
    return out


def arp(f, op, sender_ip, target_ip, dst=b"\xff" * 6):
    p = struct.pack("!HHBBH6s4s6s4s", 1, 0x0800, 6, 4, op, f.src_mac,
                    sender_ip, b"\0" * 6, target_ip)
    return f.eth(p, 0x0806, dst=dst)


def kind_arp(f, a, n):
    out = []
    for i in range(n):
        k = i % 4
        if k < 2:
            out.append((arp(f, 1, f.src_ip, f.dst_ip), ("answer", "arp")))
        elif k == 2:
            out.append((arp(f, 1, f.src_ip, ip4("10.213.0.%d" % (100 + i % 100))),
                        ("nic_drops", "arp-other")))
        else:
            out.append((arp(f, 2, f.src_ip, f.dst_ip, dst=f.dst_mac),
                        ("nic_drops", "arp-other")))
    return out


def icmp(f, typ, data, bad=False):
    h = struct.pack("!BBHHH", typ, 0, 0, 0x4242, 1) + data
    s = csum(h)
    if bad:
        s = (s + 1) & 0xFFFF or 1
    return f.eth(f.ipv4(1, h[:2] + struct.pack("!H", s) + h[4:]))


def kind_icmp(f, a, n):
    out = []
    for i in range(n):
        k = i % 4
        data = f.random_bytes(f.rnd.randrange(0, 64))
        if k < 2:
            out.append((icmp(f, 8, data), ("answer", "icmp")))
        elif k == 2:
            out.append((icmp(f, 13, data), ("nic_drops", "icmp-other")))
        else:
            out.append((icmp(f, 8, data, bad=True), ("nic_drops", "bad-icmp")))
    return out


KINDS = {"random": kind_random, "truncated": kind_truncated,
         "count": kind_count, "tag": kind_tag, "gateway": kind_gateway,
         "key": kind_key, "junk": kind_junk, "arp": kind_arp,
         "icmp": kind_icmp}


# ---------------------------------------------------------------------------

def replays(a, exp, n):
    """Capture one datagram (answered), send it again n times: replay.
    Then seqs older than the window: stale. Over a kernel UDP socket."""
    c = Client(a.dst_ip, gateway=a.gateway, key_id=a.key_id, key=a.key,
               timeout=3.0, bind=(a.src_ip, 0))
    rnd = random.Random(a.seed + 1)
    rec = [request_record("authorize", rnd.randrange(1, 1 << 40), amount=100,
                          merchant=7)]
    seq, d = c.build(rec)
    c.sock.sendto(d, c.server)
    if not wait_answer(c, seq):
        sys.exit("hostile.py: the captured datagram was not answered")
    exp["answered"] += 1
    for _ in range(n):
        c.sock.sendto(d, c.server)
    exp["drops"]["replay"] = exp["drops"].get("replay", 0) + n
    # A seq far ahead, answered; then seqs older than the window: stale.
    base = seq + 10 * REPLAY_WINDOW
    seq2, d2 = c.build(rec, seq=base)
    c.sock.sendto(d2, c.server)
    if not wait_answer(c, seq2):
        sys.exit("hostile.py: the newer datagram was not answered")
    exp["answered"] += 1
    stale = max(1, n // 8)
    for i in range(stale):
        _, d3 = c.build(rec, seq=base - REPLAY_WINDOW - 1 - i)
        c.sock.sendto(d3, c.server)
    exp["drops"]["stale"] = exp["drops"].get("stale", 0) + stale
    # Nothing of them may be answered.
    if wait_answer(c, None, 0.5):
        sys.exit("hostile.py: a replayed or stale datagram was answered")
    exp["by_kind"]["replay"] = n + stale + 2
    exp["sent"] += n + stale + 2
    c.close()


def wait_answer(c, seq, timeout=3.0):
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        r, _, _ = select.select([c.sock], [], [], left)
        if not r:
            return False
        data, _ = c.sock.recvfrom(65536)
        if seq is None or (len(data) >= HDR.size and
                           HDR.unpack_from(data)[7] == seq):
            return True


def build_all(a, n):
    rnd = random.Random(a.seed)
    src_mac = mac(open("/sys/class/net/%s/address" % a.iface).read().strip())
    f = Frames(src_mac, mac(a.dst_mac), ip4(a.src_ip), ip4(a.dst_ip), rnd)
    frames = []
    for name, fn in KINDS.items():
        for fr, cause in fn(f, a, n):
            frames.append((name, fr, cause))
    rnd.shuffle(frames)
    return frames


def raw_socket(iface):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((iface, 0))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    return s


def cmd_exact(a):
    exp = new_expect()
    frames = build_all(a, a.count)
    s = raw_socket(a.iface)
    gap = 32.0 / a.pps
    t = time.monotonic()
    for i, (name, fr, (table, cause)) in enumerate(frames):
        s.send(fr)
        count(exp, name, table, cause)
        if i % 32 == 31:
            t += gap
            d = t - time.monotonic()
            if d > 0:
                time.sleep(d)
    replays(a, exp, a.count)
    json.dump(exp, open(a.out, "w"), indent=1, sort_keys=True)


def count(exp, name, table, cause):
    exp["sent"] += 1
    exp["by_kind"][name] = exp["by_kind"].get(name, 0) + 1
    if table == "answer":
        exp[cause + "_answered"] += 1
    else:
        exp[table][cause] = exp[table].get(cause, 0) + 1


def new_expect():
    return {"drops": {}, "nic_drops": {}, "kernel": {}, "arp_answered": 0,
            "icmp_answered": 0, "answered": 0, "sent": 0, "by_kind": {}}


def cmd_flood(a):
    frames = build_all(a, 64)
    s = raw_socket(a.iface)
    exp = new_expect()
    end = time.monotonic() + a.seconds
    while time.monotonic() < end:
        for name, fr, (table, cause) in frames:
            try:
                s.send(fr)
            except OSError:
                continue  # ENOBUFS: the socket is full, try the next
            count(exp, name, table, cause)
    exp["seconds"] = a.seconds
    json.dump(exp, open(a.out, "w"), indent=1, sort_keys=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("mode", choices=["exact", "flood"])
    ap.add_argument("--iface", required=True)
    ap.add_argument("--dst-mac", required=True)
    ap.add_argument("--dst-ip", required=True)
    ap.add_argument("--src-ip", required=True)
    ap.add_argument("--gateway", type=int, required=True)
    ap.add_argument("--key-id", type=int, required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--count", type=int, default=200,
                    help="frames of each kind (exact)")
    ap.add_argument("--pps", type=float, default=10000.0)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    (cmd_exact if a.mode == "exact" else cmd_flood)(a)


if __name__ == "__main__":
    main()
