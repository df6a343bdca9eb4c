#!/usr/bin/env bash
# test_slow_disk.sh AUTHD AUTHCTL AUTHDB AUTHGEN AUTHJOURNAL - the journal's
# disk becomes slow: backpressure, not loss.
#
# The journal lives on a real block device made slow: an ext4 file system
# on a loop device whose writes the kernel throttles (the blkio cgroup's
# blkio.throttle.write_iops_device on the loop device, root cgroup: every
# write to that device waits, whoever issues it; nothing else is
# affected). fdatasync then takes tens to hundreds of milliseconds, as on
# a failing or saturated disk. Without the blkio throttle (cgroup v1) the
# test is skipped (exit 77), saying why.
# authd on net_af_packet in a namespace, authgen over af_packet:
#  1. --ack sync, disk fast: closed loop, the rate and fsync times;
#  2. the disk throttled to 20 writes/s: closed loop: the rate falls with
#     the fsync time (answers wait for their batch; the gateway's 10 s
#     timeout is never reached: lost printed);
#     then open loop at 3x what the fast disk did: authd holds answers up
#     to its limit, then stops receiving (frames dropped at RX, counted
#     by the kernel), never answers an approval before it is durable;
#  3. the disk fast again: authd catches up (lag 0), stops cleanly;
#  4. --ack async on the throttled disk, open loop: the ledger ring fills
#     and authd answers BUSY (counted as ring_full) instead of deciding:
#     shedding, and the ledger never loses an effect. Forced, whatever the
#     machine's speed: a ring of 256 effects (--ring-size), which the
#     ledger empties once per fdatasync (>= 50 ms at 20 writes/s: at most
#     5,120 records/s), offered at least 2,000 datagrams/s of 4 records,
#     and authgen keeps sending until authd counted ring_full (60 s at
#     most), not for a fixed time;
# then exactly, for both runs: the journal verifies, its decision records
# are the effects the lcores handed over, its money records the approvals
# authd answered; base snapshot + journal == the live state (authjournal
# summary --check); no user beyond a limit. Figures printed (rates, fsync
# p50/max, held answers, BUSY, lag); none is judged.
# Needs root (ip netns, losetup, mount, blkio cgroup): exit 77 without.
set -u

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
lib_args "AUTHD AUTHCTL AUTHDB AUTHGEN AUTHJOURNAL" "$@"
THROTTLE=/sys/fs/cgroup/blkio/blkio.throttle.write_iops_device
IOPS=${SLOW_DISK_IOPS:-20}
USERS=20000
lib_need_root
if [ ! -w "$THROTTLE" ] || ! command -v losetup >/dev/null ||
	! command -v mkfs.ext4 >/dev/null; then
	skip "needs the blkio cgroup's write throttle ($THROTTLE), losetup, mkfs.ext4"
fi
lib_init sld
MNT=$TMP/mnt

T0=1764057600
KEYS=$TMP/keys.ini

truncate -s 256M "$TMP/disk.img"
LOOP=$(losetup -f --show "$TMP/disk.img") || fail "losetup"
lib_on_exit losetup -d "$LOOP"
mkfs.ext4 -q "$LOOP" || fail "mkfs.ext4 $LOOP"
mkdir "$MNT" && mount "$LOOP" "$MNT" || fail "mount $LOOP"
lib_on_exit umount "$MNT"
DEVNO=$(lsblk -dno MAJ:MIN "$LOOP" | tr -d ' ')
lib_on_exit sh -c "echo '$DEVNO 0' >'$THROTTLE'"
slow() { echo "$DEVNO $IOPS" >"$THROTTLE"; }
fast() { echo "$DEVNO 0" >"$THROTTLE"; }

netns_up || fail "cannot create the namespaces"
keys_file "$KEYS" 1 1 "$(lib_random_key)"
"$AUTHDB" gen --users "$USERS" --seed 8 --now "$T0" --out "$TMP/base.snap" >/dev/null ||
	fail "authdb gen"

gen() { # gen NAME ARGS...
	local name=$1
	shift
	hd_gen --keys "$KEYS" --gateway 1 --users "$USERS" --seed 8 --records 4 \
		--json "$TMP/$name.json" "$@" >"$TMP/$name.txt" 2>&1
	[ -s "$TMP/$name.json" ] || { cat "$TMP/$name.txt"; fail "authgen $name wrote no JSON"; }
}
res() { hd_json "$TMP/$1.json" results "$2"; }
rate() { python3 -c "import json,sys; r=json.load(open(sys.argv[1]))['results']
print(int(r['dgrams_answered'] / r['elapsed_s']))" "$TMP/$1.json"; }
ledger() { # ledger FIELD: of authctl stats
	authctl --json stats | python3 -c 'import json,sys; print(json.load(sys.stdin)["ledger"][sys.argv[1]])' "$1"
}
fsync_figures() { # "batches N, fsync p50 X ms, max Y ms" since the last call
	hd_stats "$TMP/f.stats"
	python3 - "$TMP/f.stats" "$TMP/f.prev" <<'PY'
import json, os, sys
l = json.load(open(sys.argv[1]))["ledger"]
prev = json.load(open(sys.argv[2])) if os.path.exists(sys.argv[2]) else None
h = l["fsync_us_log2_hist"]          # bucket i: [2^i, 2^(i+1)) us
ph = prev["h"] if prev else [0] * len(h)
d = [a - b for a, b in zip(h, ph)]
n = sum(d)
p50 = next((i for i in range(len(d)) if sum(d[:i + 1]) * 2 >= n), 0) if n else 0
print("%d batches, fsync p50 in %.1f-%.1f ms, max so far %.1f ms, ledger lag max %d"
      % (n, (2 ** p50) / 1000.0, (2 ** (p50 + 1)) / 1000.0,
         l["fsync_us_max"] / 1e3, l["lag_max"]))
json.dump({"h": h}, open(sys.argv[2], "w"))
PY
}

# Exact checks of one run: after authd stopped.
check_run() { # check_run LABEL JOURNAL APPROVED
	local label=$1 j=$2 approved=$3 summary eff drained kinds dec money
	summary=$(grep "^authd: rx " "$AUTHD_LOG")
	eff=$(sed -n 's/.* effects \([0-9]*\) drained.*/\1/p' <<<"$summary")
	drained=$(sed -n 's/.* drained \([0-9]*\)$/\1/p' <<<"$summary")
	[ -n "$eff" ] && [ "$eff" = "$drained" ] || fail "$label: effects $eff, drained $drained"
	"$AUTHJOURNAL" verify "$j" >/dev/null || fail "$label: the journal does not verify"
	kinds=$(hd_journal_kinds "$j")
	dec=$(awk '$1 ~ /^(DECIDE|AUTH|CAPTURE|VOID|REFUND|REPAY|TOMBSTONE|EXPIRE)$/ { s += $2 } END { print s + 0 }' <<<"$kinds")
	money=$(awk '$1 ~ /^(AUTH|CAPTURE|VOID|REFUND|REPAY)$/ { s += $2 } END { print s + 0 }' <<<"$kinds")
	[ "$dec" = "$eff" ] || fail "$label: $dec decision records, $eff effects"
	[ "$money" = "$approved" ] || fail "$label: $money money records, $approved approved answers"
	"$AUTHJOURNAL" summary "$j" --snapshot "$TMP/base.snap" --check "$TMP/$label.snap" \
		>"$TMP/$label.summary" 2>&1 || { tail "$TMP/$label.summary"; fail "$label: base + journal != live state"; }
	ok "$label: all $eff effects journaled ($money approvals = approved answers), the journal verifies, base + journal == live state"
}
finish() { # finish LABEL JOURNAL: the live state, limits, stop, checks
	local n over approved
	read -r n over <<<"$(hd_limits_check "$TMP")"
	[ "$over" = 0 ] || fail "$1: $over users beyond their limit"
	authctl snapshot save "$TMP/$1.snap" >/dev/null || fail "$1: snapshot save"
	hd_stats "$TMP/$1.stats"
	approved=$(hd_json "$TMP/$1.stats" total status approved)
	authd_stop_ok "$1"
	check_run "$1" "$2" "$approved"
}

# --- 1-3. --ack sync ---------------------------------------------------------------
J=$MNT/journal-sync
authd_start --keys "$KEYS" --snapshot "$TMP/base.snap" --journal "$J" \
	--clock "fixed:$T0" --risk off || fail "authd did not start"
grep -q "ack sync" "$AUTHD_LOG" || fail "not --ack sync"
gen fast --duration 3 --window 64 --timeout 5000
F=$(rate fast)
ok "disk fast, --ack sync: $F datagrams/s; $(fsync_figures)"
slow
gen slow --duration 4 --window 64 --timeout 10000
S=$(rate slow)
[ "$(res slow dgrams_answered)" -gt 0 ] || fail "slow disk, closed loop: nothing answered"
ok "disk at $IOPS writes/s: $S datagrams/s, $(res slow dgrams_lost) lost (answers wait for their batch, timeout 10 s); $(fsync_figures)"
hd_stats "$TMP/o0.stats"
RX0=$(hd_ifstat "$NS_D" "$IF_D" rx_packets)
gen over --duration 3 --rate $((3 * F + 100)) --timeout 2000 --inflight 65536
hd_stats "$TMP/o1.stats"
python3 - "$TMP" "$(hd_ifstat "$NS_D" "$IF_D" rx_packets)" "$RX0" <<'PY' || fail "open loop on the slow disk"
import json, sys
d, rx1, rx0 = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
a = json.load(open(d + "/o0.stats"))["total"]["counters"]
b = json.load(open(d + "/o1.stats"))["total"]["counters"]
g = json.load(open(d + "/over.json"))["results"]
held = b["held"] - a["held"]
got = b["rx_pkts"] - a["rx_pkts"]
print("ok - open loop at %d/s on the slow disk: %d sent, authd received %d, "
      "held %d answers for durability, %d frames dropped at RX (backpressure), "
      "%d answered in time, %d lost or late at the gateway"
      % (g["dgrams_sent"] / g["elapsed_s"], g["dgrams_sent"], got, held,
         (rx1 - rx0) - got, g["dgrams_answered"], g["dgrams_lost"]))
if g["bad_tag"] or g["bad_echo"] or g["wrong_ids"]:
    sys.exit("FAIL: wrong answers on the slow disk")
PY
fast
for _ in $(seq 200); do
	[ "$(ledger lag)" = 0 ] && break
	sleep 0.1
done
[ "$(ledger lag)" = 0 ] || fail "the ledger did not catch up once the disk was fast"
gen again --duration 2 --window 64 --timeout 5000
ok "disk fast again: lag 0, $(rate again) datagrams/s, $(res again dgrams_lost) lost"
finish sync "$J"

# --- 4. --ack async: BUSY when the ring is full ------------------------------------------
J2=$MNT/journal-async
ASYNC_RING=256
ASYNC_RATE=$((3 * F + 100))
[ "$ASYNC_RATE" -ge 2000 ] || ASYNC_RATE=2000
authd_start --keys "$KEYS" --snapshot "$TMP/base.snap" --journal "$J2" --ack async \
	--ring-size "$ASYNC_RING" --clock "fixed:$T0" --risk off ||
	fail "authd (async) did not start"
rm -f "$TMP/f.prev"
slow
hd_stats "$TMP/a0.stats"
RF0=$(hd_json "$TMP/a0.stats" total counters ring_full)
ring_filled() {
	[ "$(authctl --json stats | python3 -c 'import json,sys; print(json.load(sys.stdin)["total"]["counters"]["ring_full"])')" -gt "$RF0" ]
}
hd_gen_bg GEN_PID --keys "$KEYS" --gateway 1 --users "$USERS" --seed 8 --records 4 \
	--json "$TMP/async.json" --duration 60 --rate "$ASYNC_RATE" --timeout 2000 \
	--inflight 65536 >"$TMP/async.txt" 2>&1
lib_wait_for 60 ring_filled
lib_stop "$GEN_PID" INT
[ -s "$TMP/async.json" ] || { cat "$TMP/async.txt"; fail "authgen async wrote no JSON"; }
hd_stats "$TMP/a1.stats"
python3 - "$TMP" "$ASYNC_RING" <<'PY' || fail "async on the slow disk"
import json, sys
d = sys.argv[1]
a = json.load(open(d + "/a0.stats"))
b = json.load(open(d + "/a1.stats"))
full = b["total"]["counters"]["ring_full"] - a["total"]["counters"]["ring_full"]
busy = b["total"]["reasons"]["BUSY"] - a["total"]["reasons"]["BUSY"]
g = json.load(open(d + "/async.json"))["results"]
print("ok - --ack async on the slow disk (ring of %s), %d datagrams/s for %.1f s: "
      "%d datagrams answered BUSY (ring full, %d records), ledger lag up to %d records"
      % (sys.argv[2], g["dgrams_sent"] / g["elapsed_s"], g["elapsed_s"], full,
         busy, b["ledger"]["lag_max"]))
if full == 0 or busy == 0:
    sys.exit("FAIL: the ledger ring never filled: no BUSY")
PY
note "$(fsync_figures)"
fast
for _ in $(seq 300); do
	[ "$(ledger lag)" = 0 ] && break
	sleep 0.1
done
[ "$(ledger lag)" = 0 ] || fail "async: the ledger did not catch up"
finish async "$J2"
echo "PASS: test_slow_disk"
