#!/usr/bin/env bash
# test_kernel_udp.sh AUTHD AUTHCTL AUTHDB [AUTHGEN] - real kernel UDP clients
# against authd on net_af_packet.
#
# Two network namespaces joined by a veth pair (tests/integration/lib.sh):
# authd on net_af_packet in one (--ip 10.213.0.1, its side of the pair has
# no kernel address), plain kernel sockets in the other:
#  1. no static neighbour entry: `ping -c 3` authd's IP gets 3 replies (ICMP
#     echo answered by authd; a raw-socket echo in Python when ping(8) is
#     not installed), and the kernel learned authd's MAC by ARP;
#  2. tests/integration/authclient.py (a Python gateway, its own SipHash)
#     runs a payment lifecycle with exact answers: authorize, a retried
#     request (DUPLICATE, same answer), partial capture, refund, repay,
#     authorize + void, void of an unknown id then its authorization
#     (UNKNOWN_REF, REVERSED), an unknown user, 16 records in one datagram
#     in order, 4 sockets (streams) at once, a wrong key (no answer);
#  3. authclient.py load: 2 s of windowed traffic, everything answered;
#  4. authgen (if given) on net_af_packet over the client's side of the
#     pair, learning authd's MAC by ARP: 1 s, everything verified;
#  5. authctl stats: datagrams answered = what the clients counted, the one
#     tag drop, 3 ICMP echoes and the ARP requests answered;
#  6. SIGTERM: authd exits 0; the namespaces are deleted (also on failure).
# Needs root (ip netns) and python3: exit 77 (ctest SKIP) without them.
set -u

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
lib_args "AUTHD AUTHCTL AUTHDB [AUTHGEN]" "$@"
lib_need_root
lib_need_cmd python3
CLIENT=$HERE/authclient.py
[ -f "$CLIENT" ] || {
	echo "FAIL: tests/integration/authclient.py is missing" >&2
	exit 1
}
lib_init kudp

T0=1764057600 # 2025-11-25T08:00:00Z
KEY=$(lib_random_key)
U=4242        # a user added with known settings (tier 7: no velocity limit)
M=77          # a merchant added
KEYS=$TMP/keys.ini

netns_up || fail "cannot create the namespaces"
keys_file "$KEYS" 1 1 "$KEY"
"$AUTHDB" gen --users 2000 --seed 3 --now $T0 --out "$TMP/base.snap" >/dev/null ||
	fail "authdb gen"
"$AUTHDB" export "$TMP/base.snap" --users-csv "$TMP/users.csv" >/dev/null ||
	fail "authdb export"
authd_start --keys "$KEYS" --clock fixed:$T0 --snapshot "$TMP/base.snap" ||
	fail "authd did not start"
authctl user add $U --limit 5000 --tier 7 >/dev/null || fail "user add"
authctl merchant set $M --mcc 5411 >/dev/null || fail "merchant set"
ok "authd on net_af_packet in $NS_D; user $U, merchant $M added"

# 1. ICMP echo and ARP, with no static neighbour entry.
MAC_D=$(ip -n "$NS_D" -br link show "$IF_D" | awk '{print tolower($3)}')
[ -z "$(ip -n "$NS_C" neigh show "$IP_D")" ] || fail "a neighbour entry exists before ARP"
# ping(8) when installed (iputils-ping is not in scripts/deps.sh), else the
# same three echo requests from a raw ICMP socket in Python.
if command -v ping >/dev/null; then
	PING=$(in_client ping -c 3 -W 2 -i 0.2 "$IP_D" 2>&1)
else
	PING=$(in_client python3 - "$IP_D" <<'PY' 2>&1
import os, socket, struct, sys, time
def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return ~s & 0xFFFF
ip, ident, got = sys.argv[1], os.getpid() & 0xFFFF, 0
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
s.settimeout(2.0)
for seq in range(1, 4):
    body = struct.pack("!d", time.time()) + bytes(range(48))
    hdr = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
    pkt = struct.pack("!BBHHH", 8, 0, csum(hdr + body), ident, seq) + body
    s.sendto(pkt, (ip, 0))
    end = time.time() + 2.0
    while time.time() < end:
        try:
            data, src = s.recvfrom(2048)
        except socket.timeout:
            break
        ihl = (data[0] & 0xF) * 4
        t, _, _, i, q = struct.unpack("!BBHHH", data[ihl:ihl + 8])
        if t == 0 and i == ident and q == seq and data[ihl + 8:] == body \
                and csum(data[ihl:]) == 0:
            got += 1
            break
    time.sleep(0.2)
print("3 packets transmitted, %d received" % got)
PY
)
fi
echo "$PING" | grep -q " 3 received" || { echo "$PING"; fail "ping $IP_D"; }
NEIGH=$(ip -n "$NS_C" neigh show "$IP_D")
echo "$NEIGH" | grep -qi "lladdr $MAC_D" || fail "neighbour entry '$NEIGH', want lladdr $MAC_D"
echo "$NEIGH" | grep -q PERMANENT && fail "neighbour entry is static: $NEIGH"
ok "ping -c 3 $IP_D: 3 replies; ARP learned $MAC_D ($NEIGH)"

# 2. The lifecycle, exact answers. Prints the datagrams it got answered.
N_LIFE=$(in_client python3 - "$HERE" "$IP_D" "$KEY" $U $M $T0 <<'PY'
import sys, threading
sys.path.insert(0, sys.argv[1])
from authclient import Client, request_record, new_request_id
ip, key, U, M, T0 = sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
c = Client(ip, gateway=1, key_id=1, key=key, stream=7, timeout=3.0)
n = 0

def need(cond, what):
    if not cond:
        sys.exit("FAIL: " + what)

def one(rec, **want):
    global n
    ans = c.exchange([rec])
    need(ans is not None, "no answer to %r" % rec)
    n += 1
    a = ans[0]
    for k, v in want.items():
        need(a[k] == v, "%s op %d: %s = %r, want %r" % (a["reason_name"], rec["op"], k, a[k], v))
    return a

auth = request_record("authorize", U, amount="100.00", merchant=M)
a1 = one(auth, reason_name="APPROVED", amount=10000, available=490000,
         hold_expires=T0 + 7 * 86400, notes=0)
need(a1["ledger_seq"] > 0, "ledger_seq of an approval")
again = one(auth, reason_name="APPROVED", notes=0x10)
for k in ("amount", "available", "hold_expires", "ledger_seq", "funder_id"):
    need(again[k] == a1[k], "retry: %s %r != %r" % (k, again[k], a1[k]))
one(request_record("capture", U, amount="60.00", merchant=M, ref=auth["request_id"]),
    reason_name="APPROVED", amount=6000, available=494000, hold_expires=0)
one(request_record("refund", U, amount="10.00", merchant=M, ref=auth["request_id"]),
    reason_name="APPROVED", amount=1000, available=495000)
one(request_record("repay", U, amount="50.00"),
    reason_name="APPROVED", amount=5000, available=500000)
a2 = request_record("authorize", U, amount="200.00", merchant=M)
one(a2, reason_name="APPROVED", available=480000)
one(request_record("void", U, merchant=M, ref=a2["request_id"]),
    reason_name="APPROVED", amount=20000, available=500000)
early = new_request_id()
one(request_record("void", U, merchant=M, ref=early), reason_name="UNKNOWN_REF")
one(request_record("authorize", U, amount="1.00", merchant=M, request_id=early),
    reason_name="REVERSED", amount=0)
one(request_record("authorize", 9999999999, amount="1.00", merchant=M),
    reason_name="UNKNOWN_USER")
# 16 records in one datagram: decided in order
recs = [request_record("authorize", U, amount="1.00", merchant=M) for _ in range(16)]
ans = c.exchange(recs)
need(ans is not None and len(ans) == 16, "16-record datagram")
n += 1
for i, a in enumerate(ans):
    need(a["reason_name"] == "APPROVED" and a["available"] == 500000 - 100 * (i + 1),
         "record %d of 16: %s available %d" % (i, a["reason_name"], a["available"]))
# 4 sockets (streams) at once
res = []
def stream(s):
    cl = Client(ip, gateway=1, key_id=1, key=key, stream=100 + s, timeout=3.0)
    for _ in range(10):
        a = cl.exchange([request_record("authorize", U, amount="0.01", merchant=M)])
        res.append(a is not None and a[0]["reason_name"] == "APPROVED")
ts = [threading.Thread(target=stream, args=(s,)) for s in range(4)]
[t.start() for t in ts]
[t.join() for t in ts]
need(len(res) == 40 and all(res), "4 streams: %d/40 approved" % sum(res))
n += 40
# a wrong key: dropped without an answer
bad = Client(ip, gateway=1, key_id=1, key="00" * 16, stream=9, timeout=0.5)
need(bad.exchange([request_record("authorize", U, amount="1.00", merchant=M)]) is None,
     "a datagram with a wrong key was answered")
print(n)
PY
) || fail "lifecycle over kernel UDP"
ok "lifecycle over kernel UDP: $N_LIFE datagrams, exact answers, wrong key dropped"

# 3. Windowed load from a kernel socket (authclient's load loop; an answer
#    may take up to 5 s on a loaded 2-core machine before it counts as lost).
IDS=$(sed -n '2,51p' "$TMP/users.csv" | cut -d, -f1 | paste -sd, -)
N_LOAD=$(in_client python3 - "$HERE" "$IP_D" "$KEY" "$IDS" $M <<'PY'
import sys
sys.path.insert(0, sys.argv[1])
from authclient import Client
c = Client(sys.argv[2], gateway=1, key_id=1, key=sys.argv[3], stream=11)
st = c.load([int(u) for u in sys.argv[4].split(",")], int(sys.argv[5]),
            "0.01", 2.0, window=16, records=4, expire=5.0)
if not (st["answered"] == st["sent"] > 0 and st["bad"] == 0
        and st.get("lost", 0) == 0):
    sys.exit("FAIL: load %r" % st)
print(st["answered"])
PY
) || fail "authclient load"
ok "authclient load: $N_LOAD datagrams, all answered and verified"

# 4. authgen on af_packet from the client's namespace (its own MAC, an IP
#    the kernel there does not own, authd's MAC by ARP).
N_GEN=0
if [ -n "$AUTHGEN" ] && [ -x "$AUTHGEN" ]; then
	in_client "$AUTHGEN" --no-huge --no-pci -m 256 --file-prefix "$GEN_PREFIX" \
		-l 1 --log-level=lib.eal:error --vdev "net_af_packet0,iface=$IF_C" -- \
		--src-ip "$GEN_IP" --dst-ip "$IP_D" --keys "$KEYS" --gateway 1 \
		--users 2000 --seed 3 --duration 1 --window 8 --records 1-16 \
		--timeout 3000 --json "$TMP/gen.json" >"$TMP/gen.txt" 2>&1
	rc=$?
	cat "$TMP/gen.txt"
	[ $rc = 0 ] || fail "authgen over af_packet exited $rc"
	N_GEN=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["results"]["dgrams_answered"])' "$TMP/gen.json")
	ok "authgen over net_af_packet: $N_GEN datagrams, all verified"
fi

# 5. authd's counters.
authctl --json stats >"$TMP/stats.json" || fail "authctl stats"
python3 - "$TMP/stats.json" $((N_LIFE + N_LOAD + N_GEN)) <<'PY' || fail "authd counters"
import json, sys
st = json.load(open(sys.argv[1]))["total"]
want = int(sys.argv[2])
bad = []
if st["counters"]["dgrams"] != want:
    bad.append("authd answered %d datagrams, the clients counted %d"
               % (st["counters"]["dgrams"], want))
drops = {k: v for k, v in st["drops"].items() if v}
if drops != {"tag": 1}:
    bad.append("drops %r, want {'tag': 1}" % drops)
if st["nic"]["icmp_answered"] != 3:
    bad.append("icmp_answered %d, want 3" % st["nic"]["icmp_answered"])
if st["nic"]["arp_answered"] < 1:
    bad.append("no ARP request answered")
if bad:
    sys.exit("FAIL: " + "; ".join(bad))
print("ok - authd counted %d datagrams, the tag drop, 3 echoes, %d ARP answers"
      % (want, st["nic"]["arp_answered"]))
PY

# 6. Clean stop, namespaces gone.
authd_stop_ok
ok "authd stopped cleanly"
netns_down
ip netns list | grep -q -e "$NS_D" -e "$NS_C" && fail "namespaces left behind"
ok "namespaces deleted"
echo "PASS"
