#!/usr/bin/env bash
# test_authgen_replay.sh BUILD_DIR - authgen's record and replay, profiles
# and plots, end to end over memif (scripts/authd-env.sh: lcores 0 and 1,
# a private prefix and socket per process, everything stopped by PID).
#
# 1. A base of 20,000 users (authdb gen, fixed seed and time); authd on it
#    with --clock fixed:T.
# 2. authgen --record --record-answers: 5,000 records in datagrams of 1..16,
#    2 streams, window 8, every op, duplicates, malformed records and early
#    reversals. Every frame is in the pcap: requests == datagrams sent,
#    answers == datagrams answered, counted by the recorder and by reading
#    the file here (perf/authgen_pcap_test.c tests the recorder's ring).
# 3. A fresh authd from the same snapshot and clock; authgen --replay --max:
#    every request re-addressed, re-sequenced, re-tagged with the current
#    key (a new one: the recording's key is not needed), and every answer
#    equal to the recorded one (ids, op, status, reason, amount, available;
#    and here every other field too): exit 0.
# 4. The pcap with one byte of one recorded answer changed (the low byte of
#    the first record's `available`), replayed against a fresh authd:
#    exactly one mismatch, exit 1.
# 5. --profile double11 (open loop, a ramp to --rate) with --users-dist
#    zipf:0.99 and --plot: the report's sections, the hot merchants' share,
#    the Zipf share within 3 points of the law, the offered rate rising and
#    falling in the samples, two PNG files (when gnuplot is installed).
# 6. --profile cashout against authd --risk on: attack payments sent by
#    kind; colluding merchants blocked (MERCHANT_BLOCKED) and crowd members
#    frozen (USER_FROZEN) by authd's risk detectors.
set -uo pipefail

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
lib_args "BUILD" "$@"
lib_init tagrp
lib_memif "$BUILD"

T=1764057600 # 2025-11-25T08:00:00Z
SEED=7
USERS=20000
COUNT=5000
cat >"$ENV_DIR/check.py" <<'PY'
import json, struct, sys

def need(cond, what):
    if not cond:
        sys.exit("FAIL: " + what)

def load(path):
    return json.load(open(path))["results"]

def clean(r):
    for c in ("dgrams_lost", "late_answers", "dup_answers",
              "unexpected_answers", "bad_tag", "bad_header", "bad_echo",
              "wrong_ids", "tx_full"):
        need(r[c] == 0, "%s = %d" % (c, r[c]))

def pcap_frames(path):
    """(frames to port 7711, frames from it) in a ns pcap, read here."""
    b = open(path, "rb").read()
    need(struct.unpack("<I", b[0:4])[0] == 0xa1b23c4d, "not a ns pcap")
    to = frm = 0
    off = 24
    while off + 16 <= len(b):
        caplen = struct.unpack("<I", b[off + 8:off + 12])[0]
        frame = off + 16
        sport, dport = struct.unpack(">HH", b[frame + 34:frame + 38])
        to += dport == 7711
        frm += sport == 7711
        off = frame + caplen
    return to, frm

def record(path, count, pcap):
    r = load(path)
    clean(r)
    need(r["records_answered"] == count, "answered %d" % r["records_answered"])
    rec = r["record"]
    # The file read here, the recorder's counts and the sender's: a frame
    # miscounted by the recorder and one recorded but never sent differ.
    to, frm = pcap_frames(pcap)
    need(to == rec["requests"] and frm == rec["answers"],
         "the pcap holds %d requests and %d answers, the recorder counted "
         "%d and %d" % (to, frm, rec["requests"], rec["answers"]))
    need(rec["requests"] == r["dgrams_sent"],
         "pcap requests %d, sent %d" % (rec["requests"], r["dgrams_sent"]))
    need(rec["answers"] == r["dgrams_answered"],
         "pcap answers %d, answered %d" % (rec["answers"], r["dgrams_answered"]))
    need(not rec["write_error"], "write error")
    for reason in ("APPROVED", "MALFORMED", "UNKNOWN_REF", "REVERSED"):
        need(r["reasons"].get(reason, 0) > 0, "no %s in the recording" % reason)
    need(r["notes"]["DUPLICATE"] > 0, "no DUPLICATE in the recording")
    print("ok - recorded %d datagrams and their %d answers (%d records)"
          % (rec["requests"], rec["answers"], count))

def replay(path, count, mismatches):
    r = load(path)
    clean(r)
    rp = r["replay"]
    need(rp["requests"] == rp["paired"] == r["dgrams_sent"],
         "pcap requests %d, paired %d, sent %d"
         % (rp["requests"], rp["paired"], r["dgrams_sent"]))
    for c in ("unanswered", "orphan_answers", "bad_requests", "bad_answers",
              "truncated"):
        need(rp[c] == 0, "replay reader %s = %d" % (c, rp[c]))
    need(r["records_sent"] == count, "replayed %d records" % r["records_sent"])
    need(r["replay_checked"] == count, "checked %d" % r["replay_checked"])
    need(r["replay_unverified"] == 0, "unverified %d" % r["replay_unverified"])
    need(r["replay_mismatches"] == mismatches,
         "mismatches %d, expected %d" % (r["replay_mismatches"], mismatches))
    need(r["replay_other_diffs"] == 0,
         "other fields differ in %d records" % r["replay_other_diffs"])
    print("ok - replay: %d records compared, %d mismatch(es) as expected"
          % (count, mismatches))

def tamper(src, dst):
    # pcap, ns timestamps, Ethernet: the first frame from port 7711; its
    # payload at 14 + 20 + 8, the first record at +32, available at +32.
    b = bytearray(open(src, "rb").read())
    need(struct.unpack("<I", b[0:4])[0] == 0xa1b23c4d, "not a ns pcap")
    need(struct.unpack("<I", b[20:24])[0] == 1, "not Ethernet")
    off = 24
    while off < len(b):
        caplen = struct.unpack("<I", b[off + 8:off + 12])[0]
        frame = off + 16
        sport = struct.unpack(">H", b[frame + 34:frame + 36])[0]
        if sport == 7711:
            b[frame + 42 + 32 + 32] ^= 0x01
            open(dst, "wb").write(b)
            print("ok - tampered with the answer frame at offset %d" % frame)
            return
        off = frame + caplen
    sys.exit("FAIL: no answer in the pcap")

def double11(path, users):
    r = load(path)
    clean(r)
    p = r["profile"]
    d = p["double11"]
    need(d["ramp_third_s"] > 1, "no ramp")
    need(len(d["hot_merchants"]) > 0 and d["hot_subsidy_known"],
         "hot merchants %r" % d["hot_merchants"])
    share = d["hot_authorizations"] / max(1, d["authorizations"])
    need(0.5 < share < 0.7, "hot share %.3f" % share)
    need(d["hot_interest_free"] > 0, "no INTEREST_FREE at hot merchants")
    need(r["products_sent"]["installment"] > r["products_sent"]["paylater"],
         "installments do not lead: %r" % r["products_sent"])
    u = p["users_dist"]
    need(u["kind"] == "zipf" and u["n"] == users, "users_dist %r" % u)
    need(abs(u["top1pct_share"] - u["top1pct_share_law"]) < 0.03,
         "zipf top 1%%: %.3f, the law %.3f"
         % (u["top1pct_share"], u["top1pct_share_law"]))
    off = [s["offered_dgrams_per_s"] for s in r["samples"]]
    need(len(off) >= 3 and max(off) > 1.5 * off[0] and
         max(off) > 1.5 * off[-1],
         "offered rate does not rise and fall: %r" % off)
    need(all("p99_ns" in s for s in r["samples"]), "samples without p99")
    print("ok - double11: hot merchants %.1f%% of authorizations, %d "
          "INTEREST_FREE there; zipf top 1%% drew %.1f%% (law %.1f%%); "
          "offered %s/s" % (100 * share, d["hot_interest_free"],
                            100 * u["top1pct_share"],
                            100 * u["top1pct_share_law"], off))

def cashout(path):
    r = load(path)
    clean(r)
    c = r["profile"]["cashout"]
    k = c["by_kind"]
    for kind in ("merchant", "crowd", "crowd-again"):
        need(k[kind]["sent"] > 0, "no %s attack records" % kind)
    mb = k["merchant"]["reasons"].get("MERCHANT_BLOCKED", 0)
    uf = k["crowd-again"]["reasons"].get("USER_FROZEN", 0)
    need(mb > 0, "no colluding merchant blocked: %r" % k["merchant"])
    need(uf > 0, "no crowd member frozen: %r" % k["crowd-again"])
    print("ok - cashout: merchant attack %d sent, %d MERCHANT_BLOCKED; crowd "
          "%d sent; second payments %d sent, %d USER_FROZEN"
          % (k["merchant"]["sent"], mb, k["crowd"]["sent"],
             k["crowd-again"]["sent"], uf))

fn = globals()[sys.argv[1]]
fn(*[int(a) if a.isdigit() else a for a in sys.argv[2:]])
PY
check() { python3 "$ENV_DIR/check.py" "$@"; }

# run NAME JSON TXT [authd options --] authgen options: one authd + authgen
# pair (authd stopped first, see authd-env.sh); authgen's exit status.
run() {
	local name=$1 json=$2 txt=$3 keys=$4
	shift 4
	local aopts=()
	while [ $# -gt 0 ] && [ "$1" != "--" ]; do
		aopts+=("$1")
		shift
	done
	shift
	authd_start_memif "$name" "$SNAP" "$keys" --clock fixed:$T "${aopts[@]}" ||
		fail "$name start"
	env_authgen_start "$name" "$json" --keys "$keys" --gateway 1 \
		--timeout 5000 "$@" >"$txt" 2>&1
	env_authd_stop "$name" || fail "$name did not exit 0 on SIGTERM"
	env_authgen_wait "$name"
}

# 1.
SNAP=$ENV_DIR/base.snap
"$ENV_AUTHDB" gen --users $USERS --seed $SEED --now $T --out "$SNAP" >/dev/null ||
	fail "authdb gen"
env_keys "$ENV_DIR/keys1.ini" 1
ok "base of $USERS users"

# 2. Record.
PCAP=$ENV_DIR/run.pcap
run rec "$ENV_DIR/rec.json" "$ENV_DIR/rec.txt" "$ENV_DIR/keys1.ini" -- \
	--users $USERS --seed $SEED --count $COUNT --records 1-16 --streams 2 \
	--window 8 --faults dup=1,malformed=0.5,unknown-ref=0.5 \
	--record "$PCAP" --record-answers
rc=$?
cat "$ENV_DIR/rec.txt"
[ $rc = 0 ] || fail "authgen --record exited $rc"
check record "$ENV_DIR/rec.json" $COUNT "$PCAP" || fail "recording"

# 3. Replay against a fresh authd, with another key.
env_keys "$ENV_DIR/keys2.ini" 1
run rep "$ENV_DIR/rep.json" "$ENV_DIR/rep.txt" "$ENV_DIR/keys2.ini" -- \
	--replay "$PCAP" --max --window 16
rc=$?
cat "$ENV_DIR/rep.txt"
[ $rc = 0 ] || fail "authgen --replay exited $rc"
check replay "$ENV_DIR/rep.json" $COUNT 0 || fail "replay"

# 4. A tampered recorded answer.
check tamper "$PCAP" "$ENV_DIR/tampered.pcap" || fail "tamper"
run tam "$ENV_DIR/tam.json" "$ENV_DIR/tam.txt" "$ENV_DIR/keys2.ini" -- \
	--replay "$ENV_DIR/tampered.pcap" --max
rc=$?
cat "$ENV_DIR/tam.txt"
[ $rc = 1 ] || fail "authgen --replay of the tampered pcap exited $rc, not 1"
grep -q "replay mismatch #1 " "$ENV_DIR/tam.txt" || fail "no mismatch printed"
check replay "$ENV_DIR/tam.json" $COUNT 1 || fail "tampered replay"

# 5. double11, Zipf users, plots.
run d11 "$ENV_DIR/d11.json" "$ENV_DIR/d11.txt" "$ENV_DIR/keys1.ini" -- \
	--ids-from "$SNAP" --profile double11 --rate 2000 --duration 4 \
	--records 1-16 --users-dist zipf:0.99 --plot "$ENV_DIR/d11"
rc=$?
cat "$ENV_DIR/d11.txt"
[ $rc = 0 ] || fail "authgen --profile double11 exited $rc"
grep -q "profile   double11: rate 10% -> 100% of 2000/s" "$ENV_DIR/d11.txt" ||
	fail "no double11 section in the report"
grep -q "users     zipf:0.99 over $USERS" "$ENV_DIR/d11.txt" ||
	fail "no users zipf line in the report"
check double11 "$ENV_DIR/d11.json" $USERS || fail "double11"
if command -v gnuplot >/dev/null; then
	for f in latency throughput; do
		png=$ENV_DIR/d11-$f.png
		[ "$(head -c 4 "$png" 2>/dev/null | od -An -c | tr -d ' ')" = '211PNG' ] ||
			fail "$png is not a PNG"
	done
	ok "--plot: d11-latency.png and d11-throughput.png"
else
	ok "--plot skipped: no gnuplot # SKIP"
fi

# 6. cashout against authd --risk on.
run co "$ENV_DIR/co.json" "$ENV_DIR/co.txt" "$ENV_DIR/keys1.ini" --risk on -- \
	--ids-from "$SNAP" --profile cashout --rate 1500 --duration 2 \
	--records 1-16 --merchants-dist zipf:0.8
rc=$?
cat "$ENV_DIR/co.txt"
[ $rc = 0 ] || fail "authgen --profile cashout exited $rc"
grep -q "profile   cashout: 10% of records are attack records" "$ENV_DIR/co.txt" ||
	fail "no cashout section in the report"
check cashout "$ENV_DIR/co.json" || fail "cashout"
echo "PASS"
