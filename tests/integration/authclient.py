#!/usr/bin/env python3
"""
authclient.py - a protocol-v1 gateway (shared/docs/protocol.md) in plain
Python 3, for integration tests and for poking a running authd by hand.

It builds request datagrams (header, 1..16 records, SipHash-2-4-128 tag from
tests/vectors/siphash128.py, which shares no code with libsodium), sends them
over a plain UDP socket, and checks every answer before decoding it: length,
magic, version, type 2 (response), count, gateway, key id and seq echoed, the
tag under the same key, and each record's request id, user id and op echoed
in order. A datagram authd drops gets no answer: exchange() returns None
after the timeout.

As a library:

    from authclient import Client
    c = Client("10.213.0.1", gateway=1, key_id=1, key=bytes.fromhex("00" * 16))
    a = c.authorize(user=42, amount="100.00", merchant=7)
    assert a["reason_name"] == "APPROVED"
    c.capture(user=42, ref=a["request_id"], amount="60.00", merchant=7)

As a command (one datagram, one line per record; --json for JSON):

    authclient.py --server 10.213.0.1 --gateway 1 --key-id 1 --key HEX \\
        authorize --user 42 --amount 100.00 --merchant 7
    authclient.py ... capture --user 42 --ref RID --amount 60 --merchant 7
    authclient.py ... --expect-drop authorize ...   # exit 0 iff no answer
    authclient.py ... load --users 1,2,3 --merchant 7 --amount 0.01 --seconds 3

Exit status: 0 answered (or, with --expect-drop, not answered); 1 bad answer
or usage; 3 no answer within the timeout.

Amounts are yuan with up to 2 decimals ("100", "100.5", "100.50") or fen
with a "fen" suffix ("10050fen"), parsed exactly (no floating point).
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

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "vectors"))
from siphash128 import (HDR, MAGIC, REQ, RESP, TYPE_REQUEST,  # noqa: E402
                        TYPE_RESPONSE, VERSION, siphash128)

PORT = 7711
TAG_LEN = 16
RECORDS_MAX = 16

OPS = {"authorize": 1, "capture": 2, "void": 3, "refund": 4, "repay": 5}
OP_NAMES = {v: k for k, v in OPS.items()}
PRODUCTS = {"pl": 1, "paylater": 1, "inst": 2, "installment": 2, "cash": 3}
CHANNELS = {"online": 1, "qr": 2, "app": 3}
STATUS_NAMES = ["APPROVED", "DECLINED", "ERROR"]
REASON_NAMES = [
    "APPROVED", "INSUFFICIENT_LIMIT", "OVER_SELF_CAP", "CASH_LIMIT",
    "COOLING_OFF", "USER_FROZEN", "UNKNOWN_USER", "MERCHANT_BLOCKED",
    "RISK_VELOCITY", "RISK_TIER", "TERM_INVALID", "GROUP_LIMIT",
    "GLOBAL_CAP", "NO_FUNDER", "UNKNOWN_REF", "BAD_STATE", "REVERSED",
    "MALFORMED", "BUSY", "RISK_CASHOUT", "UNKNOWN_GROUP",
]
NOTE_NAMES = [(0x01, "LARGE_SPEND"), (0x02, "LOW_AVAILABLE"),
              (0x04, "OVER_SELF_CAP_SOFT"), (0x08, "TEMP_QUOTA_USED"),
              (0x10, "DUPLICATE"), (0x20, "INTEREST_FREE")]


class ProtocolError(Exception):
    """An answer that does not verify or does not match its request."""


def parse_amount(text):
    """Yuan with up to 2 decimals or "<n>fen" -> int fen, exactly."""
    s = str(text)
    if s.endswith("fen") and s[:-3].isdigit():
        return int(s[:-3])
    neg = s.startswith("-")
    whole, _, frac = (s[1:] if neg else s).partition(".")
    if not whole.isdigit() or (frac and not frac.isdigit()) or len(frac) > 2:
        raise ValueError("amount %r: yuan with up to 2 decimals or <n>fen" % s)
    fen = int(whole) * 100 + int((frac + "00")[:2])
    return -fen if neg else fen


def fmt_amount(fen):
    sign = "-" if fen < 0 else ""
    return "%s%d.%02d" % (sign, abs(fen) // 100, abs(fen) % 100)


def new_request_id():
    """A random non-zero 63-bit id: unique per gateway for all practical use."""
    return random.getrandbits(63) or 1


def request_record(op, user, amount=0, merchant=0, ref=0, request_id=None,
                   group=0, mcc=0, region=0, product=1, terms=0, channel=1,
                   device=0, reserved0=0, reserved1=0):
    """A request record as a dict (amount in fen or as text)."""
    if isinstance(amount, str):
        amount = parse_amount(amount)
    return {"request_id": request_id or new_request_id(), "user_id": user,
            "ref_id": ref, "amount": amount, "merchant_id": merchant,
            "group_id": group, "mcc": mcc, "region": region,
            "op": OPS.get(op, op), "product": PRODUCTS.get(product, product),
            "terms": terms, "channel": CHANNELS.get(channel, channel),
            "device_id": device, "reserved0": reserved0,
            "reserved1": reserved1}


def pack_record(r):
    return REQ.pack(r["request_id"], r["user_id"], r["ref_id"], r["amount"],
                    r["merchant_id"], r["group_id"], r["mcc"], r["region"],
                    r["op"], r["product"], r["terms"], r["channel"],
                    r["device_id"], r["reserved0"], r["reserved1"])


def decode_response(rec):
    (rid, uid, lseq, amount, avail, hold, op, status, reason, notes, funder,
     own, _res, risk, capleft) = RESP.unpack(rec)
    return {
        "request_id": rid, "user_id": uid, "ledger_seq": lseq,
        "amount": amount, "available": avail, "hold_expires": hold, "op": op,
        "status": status, "reason": reason, "notes": notes,
        "funder_id": funder, "own_share_pct": own, "risk_score": risk,
        "self_cap_left": capleft,
        "status_name": STATUS_NAMES[status] if status < 3 else "?",
        "reason_name": (REASON_NAMES[reason] if reason < len(REASON_NAMES)
                        else "?"),
        "notes_names": [n for bit, n in NOTE_NAMES if notes & bit],
    }


class Client:
    """One gateway stream: a UDP socket, a (gateway, key id, key), a seq."""

    def __init__(self, server, port=PORT, gateway=1, key_id=1, key=b"",
                 stream=None, timeout=1.0, bind=None):
        if isinstance(key, str):
            key = bytes.fromhex(key)
        if len(key) != 16:
            raise ValueError("key must be 16 bytes (32 hex digits)")
        self.server = (server, port)
        self.gateway, self.key_id, self.key = gateway, key_id, key
        # A stream is sent from one socket; seqs must grow across processes
        # that reuse a stream, hence the clock.
        self.stream = os.getpid() & 0xFFFF if stream is None else stream
        self.seq = time.time_ns()
        self.timeout = timeout
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        if bind:
            self.sock.bind(bind)

    def close(self):
        self.sock.close()

    def next_seq(self):
        self.seq = max(self.seq + 1, time.time_ns())
        return self.seq

    def build(self, records, key_id=None, key=None, seq=None,
              gateway=None):
        """Header + packed records + tag; returns (seq, datagram)."""
        if not 1 <= len(records) <= RECORDS_MAX:
            raise ValueError("1..16 records per datagram")
        seq = self.next_seq() if seq is None else seq
        hdr = HDR.pack(MAGIC, VERSION, TYPE_REQUEST, len(records),
                       self.stream,
                       self.gateway if gateway is None else gateway,
                       self.key_id if key_id is None else key_id,
                       seq, time.time_ns())
        body = hdr + b"".join(pack_record(r) for r in records)
        return seq, body + siphash128(key or self.key, body)

    def send(self, records, **kw):
        seq, dg = self.build(records, **kw)
        self.sock.sendto(dg, self.server)
        return seq

    def verify(self, data, records, seq, key_id=None, key=None):
        """Check an answer to `records` sent with `seq`; decoded records."""
        n = len(records)
        if len(data) != HDR.size + n * RESP.size + TAG_LEN:
            raise ProtocolError("answer of %d bytes for %d records"
                                % (len(data), n))
        (magic, version, type_, count, stream, gw, kid, aseq,
         _sent) = HDR.unpack_from(data)
        want = (MAGIC, VERSION, TYPE_RESPONSE, n, self.stream, self.gateway,
                self.key_id if key_id is None else key_id, seq)
        got = (magic, version, type_, count, stream, gw, kid, aseq)
        if got != want:
            raise ProtocolError("header %r, expected %r" % (got, want))
        body, tag = data[:-TAG_LEN], data[-TAG_LEN:]
        if siphash128(key or self.key, body) != tag:
            raise ProtocolError("answer tag does not verify")
        out = []
        for i, r in enumerate(records):
            a = decode_response(body[HDR.size + i * RESP.size:
                                     HDR.size + (i + 1) * RESP.size])
            if (a["request_id"], a["user_id"], a["op"]) != (
                    r["request_id"], r["user_id"], r["op"]):
                raise ProtocolError("record %d answers %r, expected %r" % (
                    i, (a["request_id"], a["user_id"], a["op"]),
                    (r["request_id"], r["user_id"], r["op"])))
            out.append(a)
        return out

    def exchange(self, records, timeout=None, **kw):
        """Send one datagram, wait for its answer; None when none came."""
        seq = self.send(records, **kw)
        deadline = time.monotonic() + (self.timeout if timeout is None
                                       else timeout)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            ready, _, _ = select.select([self.sock], [], [], left)
            if not ready:
                return None
            data, _ = self.sock.recvfrom(65536)
            if len(data) >= HDR.size and HDR.unpack_from(data)[7] != seq:
                continue  # a late answer to an earlier datagram
            return self.verify(data, records, seq, kw.get("key_id"),
                               kw.get("key"))

    def one(self, op, user, **kw):
        """One record in one datagram; its answer or None."""
        xkw = {k: kw.pop(k) for k in ("key_id", "key", "timeout") if k in kw}
        ans = self.exchange([request_record(op, user, **kw)], **xkw)
        return ans[0] if ans else None

    def authorize(self, user, amount, merchant, **kw):
        return self.one("authorize", user, amount=amount, merchant=merchant,
                        **kw)

    def capture(self, user, ref, amount, merchant, **kw):
        return self.one("capture", user, ref=ref, amount=amount,
                        merchant=merchant, **kw)

    def void(self, user, ref, merchant, amount=0, **kw):
        return self.one("void", user, ref=ref, amount=amount,
                        merchant=merchant, **kw)

    def refund(self, user, ref, amount, merchant, **kw):
        return self.one("refund", user, ref=ref, amount=amount,
                        merchant=merchant, **kw)

    def repay(self, user, amount, product=1, **kw):
        return self.one("repay", user, amount=amount, product=product, **kw)

    def load(self, users, merchant, amount, seconds, window=64,
             records=1, idle=None, expire=0.5):
        """
        Authorize with up to `window` datagrams in flight for `seconds`, or
        until no answer came for `idle` seconds after the first one. A
        datagram unanswered after `expire` seconds counts as lost and frees
        its place. The client waits for answers rather than spinning, so it
        does not starve authd of a shared core. Returns the counts.
        """
        fen = parse_amount(amount) if isinstance(amount, str) else amount
        st = {"sent": 0, "answered": 0, "records": 0, "approved": 0,
              "bad": 0, "lost": 0, "stopped_idle": False}
        inflight = {}  # seq -> (records, time sent)
        last = None
        end = time.monotonic() + seconds
        while True:
            now = time.monotonic()
            if now >= end:
                break
            if idle and last is not None and now - last > idle:
                st["stopped_idle"] = True
                break
            while len(inflight) < window:
                recs = [request_record("authorize", random.choice(users),
                                       amount=fen, merchant=merchant)
                        for _ in range(records)]
                inflight[self.send(recs)] = (recs, time.monotonic())
                st["sent"] += 1
            if self._load_recv(inflight, st, 0.05):
                last = time.monotonic()
            old = [q for q, (_, t) in inflight.items()
                   if time.monotonic() - t > expire]
            for q in old:
                del inflight[q]
            st["lost"] += len(old)
        while inflight and self._load_recv(inflight, st, expire):
            pass
        st["lost"] += len(inflight)
        return st

    def _load_recv(self, inflight, st, wait):
        """Take every answer that arrives within `wait`; True if any did."""
        got = False
        while True:
            ready, _, _ = select.select([self.sock], [], [], wait)
            if not ready:
                return got
            data, _ = self.sock.recvfrom(65536)
            wait = 0
            seq = HDR.unpack_from(data)[7] if len(data) >= HDR.size else 0
            entry = inflight.pop(seq, None)
            if entry is None:
                continue  # answered after we gave up on it
            try:
                ans = self.verify(data, entry[0], seq)
            except ProtocolError:
                st["bad"] += 1
                continue
            got = True
            st["answered"] += 1
            st["records"] += len(ans)
            st["approved"] += sum(1 for a in ans if a["status"] == 0)


# --------------------------------------------------------------------------
# Command line

def describe(a):
    notes = ",".join(a["notes_names"]) or "-"
    return ("%s %s request_id=%d amount=%s available=%s hold_expires=%d "
            "ledger_seq=%d notes=%s funder=%d own_share=%d risk=%d "
            "self_cap_left=%s" % (
                a["status_name"], a["reason_name"], a["request_id"],
                fmt_amount(a["amount"]), fmt_amount(a["available"]),
                a["hold_expires"], a["ledger_seq"], notes, a["funder_id"],
                a["own_share_pct"], a["risk_score"],
                "-" if a["self_cap_left"] < 0 else
                fmt_amount(a["self_cap_left"])))


def add_record_args(p, op):
    p.add_argument("--user", type=int, required=True)
    p.add_argument("--request-id", type=int)
    needs_amount = op in ("authorize", "capture", "refund", "repay")
    p.add_argument("--amount", required=needs_amount, default="0",
                   help="yuan (100.50) or fen (10050fen)")
    if op in ("capture", "void", "refund"):
        p.add_argument("--ref", type=int, required=True,
                       help="request id of the authorization")
    if op != "repay":
        p.add_argument("--merchant", type=int, required=True)
    p.add_argument("--product", default="pl",
                   help="pl, inst or cash (or 1..3)")
    p.add_argument("--terms", type=int, default=0)
    p.add_argument("--channel", default="online", help="online, qr, app")
    p.add_argument("--group", type=int, default=0)
    p.add_argument("--mcc", type=int, default=0)
    p.add_argument("--region", type=int, default=0)
    p.add_argument("--device", type=int, default=0)


def choice(v, table):
    return table[v] if v in table else int(v)


def cli_record(args):
    return request_record(
        args.op, args.user, amount=args.amount,
        merchant=getattr(args, "merchant", 0), ref=getattr(args, "ref", 0),
        request_id=args.request_id, group=args.group, mcc=args.mcc,
        region=args.region, product=choice(args.product, PRODUCTS),
        terms=args.terms, channel=choice(args.channel, CHANNELS),
        device=args.device)


def main(argv=None):
    ap = argparse.ArgumentParser(
        description="protocol-v1 gateway client for authd (see the module "
                    "docstring)")
    ap.add_argument("--server", required=True, help="authd's IPv4 address")
    ap.add_argument("--port", type=int, default=PORT)
    ap.add_argument("--gateway", type=int, required=True)
    ap.add_argument("--key-id", type=int, required=True)
    ap.add_argument("--key", required=True, help="32 hex digits")
    ap.add_argument("--stream", type=int, help="default: pid & 0xffff")
    ap.add_argument("--timeout", type=float, default=1.0, help="seconds")
    ap.add_argument("--json", action="store_true", help="answers as JSON")
    ap.add_argument("--expect-drop", action="store_true",
                    help="succeed only if no answer comes")
    sub = ap.add_subparsers(dest="op", required=True)
    for op in OPS:
        add_record_args(sub.add_parser(op), op)
    lp = sub.add_parser("load", help="authorize in a loop, print counts")
    lp.add_argument("--users", required=True, help="comma-separated ids")
    lp.add_argument("--merchant", type=int, required=True)
    lp.add_argument("--amount", default="0.01")
    lp.add_argument("--seconds", type=float, default=3.0)
    lp.add_argument("--window", type=int, default=64)
    lp.add_argument("--records", type=int, default=1)
    lp.add_argument("--idle", type=float,
                    help="stop when no answer came for this many seconds")
    args = ap.parse_args(argv)

    try:
        c = Client(args.server, args.port, args.gateway, args.key_id,
                   args.key, args.stream, args.timeout)
        if args.op == "load":
            st = c.load([int(u) for u in args.users.split(",")],
                        args.merchant, args.amount, args.seconds,
                        args.window, args.records, args.idle)
            print(json.dumps(st))
            return 0
        ans = c.exchange([cli_record(args)])
    except (ValueError, ProtocolError, OSError) as e:
        print("authclient: %s" % e, file=sys.stderr)
        return 1
    if ans is None:
        if not args.expect_drop:
            print("authclient: no answer within %.1f s" % args.timeout,
                  file=sys.stderr)
        return 0 if args.expect_drop else 3
    if args.expect_drop:
        print("authclient: answered, but a drop was expected: %s"
              % describe(ans[0]), file=sys.stderr)
        return 1
    for a in ans:
        print(json.dumps(a) if args.json else describe(a))
    return 0


if __name__ == "__main__":
    sys.exit(main())
