#!/usr/bin/env bash
# test_hostile.sh AUTHD AUTHCTL AUTHDB AUTHGEN - hostile traffic: every
# frame counted by its cause, none answered except as the protocol says,
# and good traffic still served.
#
# authd on net_af_packet in a network namespace; from the other one,
# tests/integration/hostile.py sends frames from a raw socket (and
# replays from a UDP socket), each built with the cause authd must count:
# random bytes, truncated datagrams and frames, oversized counts, wrong
# tags, unknown gateways and key ids, replays of a captured datagram and
# seqs older than the replay window, junk (other ethertypes, MACs, IPs,
# ports, protocols, QinQ, fragments, bad checksums and lengths), ARP and
# ICMP requests, good and bad.
#  1. good traffic alone: authgen (closed loop) for 2 s, its rate G;
#  2. exact: 200 frames of each kind, paced (10,000 frames/s), and 200
#     replays + 25 stale datagrams: authd's counters of every cause
#     (codec drops, frame drops) equal what was sent; ARP requests for
#     its address and ICMP echo requests answered one for one; nothing
#     else answered but the two valid datagrams the replays copy
#     (tx = answered datagrams + ARP + ICMP answers). Every frame authd
#     received is accounted for (answered, or dropped under one cause).
#     Frames that never reached authd are measured as the kernel's count
#     into authd's interface minus DPDK's ipackets: the lone fragments
#     (af_packet has the kernel reassemble; they wait there) and any lost
#     in a full RX ring on a loaded machine; each cause may be short by
#     at most the latter, and the sum must still match;
#  3. flood: authgen's good traffic during 3 s of the same kinds sent as
#     fast as a raw socket takes them: good traffic's rate against G
#     printed (not judged), every good answer still verified (no bad
#     tag, echo or id; some may be lost to the full ring), no cause
#     counted more often than it was sent, every received frame
#     accounted for.
# Needs root (ip netns): exit 77 (skipped) without.
set -u

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
lib_args "AUTHD AUTHCTL AUTHDB AUTHGEN" "$@"
COUNT=${HOSTILE_COUNT:-200}
PPS=${HOSTILE_PPS:-10000}
lib_need_root
lib_init hos
FLOOD=

T0=1764057600
KEY=$(lib_random_key)
KEYS=$TMP/keys.ini

netns_up || fail "cannot create the namespaces"
keys_file "$KEYS" 1 1 "$KEY"
"$AUTHDB" gen --users 10000 --seed 6 --now "$T0" --out "$TMP/base.snap" >/dev/null ||
	fail "authdb gen"
authd_start --keys "$KEYS" --snapshot "$TMP/base.snap" --clock "fixed:$T0" \
	--risk off || fail "authd did not start"
# The kernel on the client side is told authd's MAC (before the exact
# phase): it sends no ARP of its own, so authd's ARP counters are ours.
MAC_D=$(hd_authd_mac)

hostile_argv() { # LIB_ARGV := the command line of hostile MODE OUT [options]
	LIB_ARGV=(ip netns exec "$NS_C" python3 "$HERE/hostile.py" "$1" --iface "$IF_C"
		--dst-mac "$MAC_D" --dst-ip "$IP_D" --src-ip "$IP_C" --gateway 1
		--key-id 1 --key "$KEY" --out "$2" "${@:3}")
}
hostile() { # hostile MODE OUT [options]
	hostile_argv "$@"
	"${LIB_ARGV[@]}"
}
gen() { # gen NAME ARGS...
	local name=$1
	shift
	hd_gen --keys "$KEYS" --gateway 1 --users 10000 --seed 6 --records 4 \
		--window 32 --timeout 2000 --json "$TMP/$name.json" "$@" \
		>"$TMP/$name.txt" 2>&1
	[ -s "$TMP/$name.json" ] || { cat "$TMP/$name.txt"; fail "authgen $name wrote no JSON"; }
}
sample() { # sample NAME: authd's counters, DPDK's, the kernel's
	hd_stats "$TMP/$1.stats"
	hd_tele "/ethdev/stats,0" >"$TMP/$1.eth"
	hd_ifstat "$NS_D" "$IF_D" rx_packets >"$TMP/$1.ifrx"
	hd_ifstat "$NS_C" "$IF_C" tx_dropped >"$TMP/$1.ictxd"
}

# The comparison of two samples with what was sent: prints the table of
# causes, exits 1 with the reasons when a check fails. MODE exact: every
# cause equal (less the frames that never reached authd); flood: none
# above what was sent.
compare() { # compare MODE PRE POST EXPECTED [GOOD_JSON]
	python3 - "$TMP" "$@" <<'PY'
import json, sys
d, mode, pre, post, exp_f = sys.argv[1:6]
good = json.load(open(sys.argv[6]))["results"] if len(sys.argv) > 6 else None
L = lambda n: json.load(open("%s/%s" % (d, n)))
R = lambda n: int(open("%s/%s" % (d, n)).read())
a, b = L(pre + ".stats")["total"], L(post + ".stats")["total"]
exp = json.load(open(exp_f))
delta = lambda x, y: {k: y[k] - x.get(k, 0) for k in y}
drops, nic = delta(a["drops"], b["drops"]), delta(a["nic"]["drops"], b["nic"]["drops"])
c = delta(a["counters"], b["counters"])
arp = b["nic"]["arp_answered"] - a["nic"]["arp_answered"]
icmp = b["nic"]["icmp_answered"] - a["nic"]["icmp_answered"]
ipk = L(post + ".eth")["/ethdev/stats"]["ipackets"] - L(pre + ".eth")["/ethdev/stats"]["ipackets"]
# never reached authd: dropped by the veth (a full backlog: IF_C's
# tx_dropped) or after the kernel counted them in (IF_D's rx_packets)
missed = (R(post + ".ifrx") - R(pre + ".ifrx")) - ipk
missed += R(post + ".ictxd") - R(pre + ".ictxd")
bad = []
print("    %-16s %8s %8s" % ("cause", "sent", "counted"))
rows = [("drops", k) for k in sorted(set(exp["drops"]) | {k for k, v in drops.items() if v})]
rows += [("nic_drops", k) for k in sorted(set(exp["nic_drops"]) | {k for k, v in nic.items() if v})]
for table, k in rows:
    want = exp[table].get(k, 0)
    got = (drops if table == "drops" else nic).get(k, 0)
    print("    %-16s %8d %8d" % (k, want, got))
    if got > want:
        bad.append("%s: %d counted, %d sent" % (k, got, want))
    elif mode == "exact" and got < want - (missed - exp["kernel"].get("defrag", 0)):
        bad.append("%s: %d counted, %d sent, %d missed at RX" % (k, got, want, missed))
for name, got, want in (("arp answered", arp, exp["arp_answered"]),
                        ("icmp answered", icmp, exp["icmp_answered"])):
    print("    %-16s %8d %8d" % (name, want, got))
    if got > want or (mode == "exact" and got < want - (missed - exp["kernel"].get("defrag", 0))):
        bad.append("%s: %d, sent %d" % (name, got, want))
# Every frame authd received has one outcome.
outcomes = sum(drops.values()) + sum(nic.values()) + arp + icmp + c["dgrams"]
if outcomes != c["rx_pkts"] or c["rx_pkts"] != ipk:
    bad.append("received %d (DPDK %d), accounted for %d" % (c["rx_pkts"], ipk, outcomes))
# Nothing answered but the protocol's answers.
if c["tx_pkts"] + c["tx_dropped"] != c["dgrams"] + arp + icmp:
    bad.append("sent %d frames for %d answers, %d ARP, %d ICMP"
               % (c["tx_pkts"], c["dgrams"], arp, icmp))
if mode == "exact":
    hostile = exp["sent"]
    held = exp["kernel"].get("defrag", 0)
    counted = sum(drops.values()) + sum(nic.values()) + arp + icmp + c["dgrams"]
    if c["dgrams"] != exp["answered"]:
        bad.append("%d datagrams answered, %d valid ones sent" % (c["dgrams"], exp["answered"]))
    if counted + missed != hostile or missed < held:
        bad.append("sent %d, counted %d + missed %d (%d fragments held by the kernel)"
                   % (hostile, counted, missed, held))
    print("    sent %d: counted %d; never reached authd %d: %d fragments the kernel "
          "holds to reassemble, %d lost in a full RX ring"
          % (hostile, counted, missed, held, missed - held))
else:
    held = exp["kernel"].get("defrag", 0)
    print("    flood: %d frames sent in %.0f s (%d/s); authd received %d frames "
          "(good traffic included); never reached it: %d fragments the kernel "
          "holds, %d lost in a full RX ring" % (exp["sent"], exp["seconds"],
          exp["sent"] / exp["seconds"], ipk, held, missed - held))
json.dump({"missed": missed}, open("%s/%s.cmp" % (d, mode), "w"))
if bad:
    sys.exit("FAIL: " + "; ".join(bad))
PY
}

# --- 1. good traffic alone ----------------------------------------------------
gen good --duration 2
rate() { python3 -c "import json,sys; r=json.load(open(sys.argv[1]))['results']
print(int(r['dgrams_answered'] / r['elapsed_s']))" "$1"; }
verified() { # verified JSON: no answer that does not verify or match
	python3 - "$1" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"]
bad = {k: r[k] for k in ("bad_tag", "bad_header", "bad_echo", "wrong_ids",
                         "unexpected_answers", "dup_answers") if r[k]}
sys.exit("wrong answers: %r" % bad if bad else 0)
PY
}
G=$(rate "$TMP/good.json")
[ "$G" -gt 0 ] && verified "$TMP/good.json" || { cat "$TMP/good.txt"; fail "authgen alone"; }
ok "good traffic alone: $G datagrams/s, every answer verified ($(hd_json "$TMP/good.json" results dgrams_lost) lost)"

# --- 2. exact accounting ------------------------------------------------------
# authgen's af_packet port takes the interface down when it stops, which
# flushes the client kernel's neighbours: (re)pin authd's MAC now.
ip -n "$NS_C" link set "$IF_C" up
ip -n "$NS_C" neigh replace "$IP_D" lladdr "$MAC_D" dev "$IF_C" nud permanent
sample a0
hostile exact "$TMP/exact.json" --count "$COUNT" --pps "$PPS" ||
	fail "hostile.py exact"
# every frame on its way taken and counted (not a fixed wait)
hd_wait_rx_quiet 20 || fail "authd's receive counters did not settle: $(hd_rx_counts)"
sample a1
compare exact a0 a1 "$TMP/exact.json" || fail "hostile frames not counted by cause"
ok "hostile frames: every cause counted as sent, only ARP/ICMP answered as the protocol says, $(hd_json "$TMP/exact.json" answered) valid datagrams answered"

# --- 3. good traffic during a flood -----------------------------------------------
sample b0
hostile_argv flood "$TMP/flood.json" --seconds 3 --seed 2
lib_bg FLOOD "${LIB_ARGV[@]}"
sleep 0.3
gen busy --duration 2 --timeout 250
lib_wait "$FLOOD" || fail "hostile.py flood"
FLOOD=
hd_wait_rx_quiet 20 || fail "authd's receive counters did not settle: $(hd_rx_counts)"
sample b1
compare flood b0 b1 "$TMP/flood.json" "$TMP/busy.json" || fail "flood not counted by cause"
python3 - "$TMP/busy.json" "$G" <<'PY' || fail "good traffic under the flood"
import json, sys
r = json.load(open(sys.argv[1]))["results"]
G = int(sys.argv[2])
bad = {k: r[k] for k in ("bad_tag", "bad_header", "bad_echo", "wrong_ids",
                         "unexpected_answers", "dup_answers") if r[k]}
if bad or r["dgrams_answered"] == 0:
    sys.exit("FAIL: good traffic during the flood: %r, %d answered" % (bad, r["dgrams_answered"]))
rate = r["dgrams_answered"] / r["elapsed_s"]
print("ok - good traffic during the flood: %d datagrams/s (%.0f%% of %d alone), "
      "%d answered, %d lost (a lost datagram stalls its window slot 250 ms), "
      "every answer verified"
      % (rate, 100.0 * rate / G, G, r["dgrams_answered"], r["dgrams_lost"]))
PY

authd_stop_ok
ok "authd stopped cleanly"
echo "PASS: test_hostile"
