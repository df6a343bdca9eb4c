#!/usr/bin/env bash
# test_memif.sh BUILD_DIR - authd and authgen end to end over memif, every
# answer checked against the decision core.
#
# 1. A synthetic base of 20,000 users (authdb gen, fixed seed and time).
# 2. authd on one lcore, memif server, --clock fixed:T.
# 3. authgen --check-model on the same snapshot at the same time: 20,000
#    records in datagrams of 1..16 records, every op (authorize, capture,
#    void, refund, repay), every product, group wallets, and faults
#    (duplicates, malformed records, bad terms, unknown users, unknown
#    refs then REVERSED originals, unknown groups), window 1. Every answer
#    must equal the model's field by field (ledger_seq too): zero
#    mismatches, answers == sent, nothing lost. Interleaved, crafted bad
#    datagrams of every drop cause authgen knows, a known count each.
# 4. authctl stats --json: the drops by cause are exactly the injected
#    counts, no other drop; authd's datagram, record and reason counts equal
#    what authgen saw.
# 5. SIGTERM: authd drains and exits 0; then authgen, which lingered (see
#    scripts/authd-env.sh: neither side may see its memif peer leave while
#    it polls, a DPDK 22.11 memif race), exits with the run's status 0.
# 6. A fresh authd and authgen without the model: 4 streams, window 16, 1 s.
set -uo pipefail

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
lib_args "BUILD" "$@"
lib_init tmemif
lib_memif "$BUILD"
[ -x "$ENV_AUTHCTL" ] || env_die "$ENV_AUTHCTL is missing"

T=1764057600 # 2025-11-25T08:00:00Z, a Tuesday, 16:00 in UTC+8
SEED=11
COUNT=20000
# name=count: every cause authgen can craft
INJECT="short=1,magic=2,version=1,type=1,count=2,length=1,gateway=2,key=1,tag=3,replay=2,stale=1"
FAULTS="dup=1,malformed=0.5,terms=0.5,unknown-user=0.5,unknown-ref=0.5,unknown-group=0.3"

# check.py: the Python checks below, one function per step.
cat >"$ENV_DIR/check.py" <<'PY'
import json, sys

def need(cond, what):
    if not cond:
        sys.exit("FAIL: " + what)

def model(path, count, inject):
    r = json.load(open(path))["results"]
    inject = dict(kv.split("=") for kv in inject.split(","))
    need(r["records_sent"] == count, "records sent %d" % r["records_sent"])
    need(r["records_answered"] == count,
         "records answered %d" % r["records_answered"])
    need(r["dgrams_answered"] == r["dgrams_sent"], "datagrams answered != sent")
    need(r["model_checked"] == count, "model checked %d" % r["model_checked"])
    need(r["model_mismatches"] == 0,
         "model mismatches %d" % r["model_mismatches"])
    for c in ("dgrams_lost", "late_answers", "dup_answers",
              "unexpected_answers", "bad_tag", "bad_header", "bad_echo",
              "wrong_ids", "tx_full"):
        need(r[c] == 0, "%s = %d" % (c, r[c]))
    for op in ("authorize", "capture", "void", "refund", "repay"):
        need(r["reasons_by_op"][op].get("APPROVED", 0) > 0, "no approved " + op)
    for p in ("paylater", "installment", "cash"):
        need(r["products_sent"].get(p, 0) > 0, "no " + p)
    need(r["notes"]["DUPLICATE"] > 0, "no DUPLICATE answers")
    for reason in ("APPROVED", "MALFORMED", "TERM_INVALID", "UNKNOWN_USER",
                   "UNKNOWN_REF", "REVERSED", "UNKNOWN_GROUP"):
        need(r["reasons"].get(reason, 0) > 0, "no %s answers" % reason)
    for k, v in inject.items():
        need(r["injected_by_kind"][k]["sent"] == int(v), "injected " + k)
    print("ok - model run: %d records, 0 mismatches; reasons %s"
          % (count, ", ".join(sorted(r["reasons"]))))

def stats(stats_path, gen_path, inject):
    st = json.load(open(stats_path))["total"]
    r = json.load(open(gen_path))["results"]
    inject = {k: int(v) for k, v in (kv.split("=") for kv in inject.split(","))}
    bad = []
    for cause, n in st["drops"].items():
        if n != inject.get(cause, 0):
            bad.append("drop %s: authd %d, injected %d"
                       % (cause, n, inject.get(cause, 0)))
    for cause, n in st["nic"]["drops"].items():
        if n:
            bad.append("nic drop %s: %d" % (cause, n))
    for mine, theirs in (("dgrams_answered", "dgrams"),
                         ("records_answered", "records")):
        if st["counters"][theirs] != r[mine]:
            bad.append("authd %s %d, authgen %s %d"
                       % (theirs, st["counters"][theirs], mine, r[mine]))
    for k, n in r["reasons"].items():
        if st["reasons"].get(k) != n:
            bad.append("reason %s: authd %s, authgen %d"
                       % (k, st["reasons"].get(k), n))
    need(not bad, "; ".join(bad))
    print("ok - authd drops by cause = injected (%s); answers and reasons "
          "agree" % ", ".join("%s %d" % kv for kv in sorted(inject.items())))

def clean(path):
    r = json.load(open(path))["results"]
    need(r["dgrams_answered"] == r["dgrams_sent"] > 0, "answered != sent")
    for c in ("dgrams_lost", "late_answers", "dup_answers",
              "unexpected_answers", "bad_tag", "bad_header", "bad_echo",
              "wrong_ids", "tx_full"):
        need(r[c] == 0, "%s = %d" % (c, r[c]))

fn = globals()[sys.argv[1]]
fn(*[int(a) if a.isdigit() else a for a in sys.argv[2:]])
PY
check() { python3 "$ENV_DIR/check.py" "$@"; }

# 1-2.
SNAP=$ENV_DIR/base.snap
"$ENV_AUTHDB" gen --users 20000 --seed $SEED --now $T --out "$SNAP" >/dev/null ||
	fail "authdb gen"
ok "base of 20000 users"
env_keys "$ENV_DIR/keys.ini" 1
authd_start_memif authd "$SNAP" "$ENV_DIR/keys.ini" --clock fixed:$T ||
	fail "authd start"

# 3. The model run.
env_authgen_start authd "$ENV_DIR/model.json" --keys "$ENV_DIR/keys.ini" \
	--gateway 1 --check-model "$SNAP" --clock-fixed $T --count $COUNT \
	--records 1-16 --window 1 --seed 5 --group-pct 3 --timeout 5000 \
	--mix authorize=55,capture=20,void=8,refund=7,repay=10 \
	--products paylater=50,installment=30,cash=20 \
	--faults "$FAULTS" --inject "$INJECT" >"$ENV_DIR/model.txt" 2>&1
[ -s "$ENV_DIR/model.json" ] || { cat "$ENV_DIR/model.txt"; fail "no JSON from authgen"; }
check model "$ENV_DIR/model.json" $COUNT "$INJECT" ||
	{ cat "$ENV_DIR/model.txt"; fail "model run"; }

# 4. authd's counters.
env_authctl authd --json stats >"$ENV_DIR/stats.json" || fail "authctl stats"
check stats "$ENV_DIR/stats.json" "$ENV_DIR/model.json" "$INJECT" ||
	fail "authd counters"

# 5. Stop authd, then authgen.
env_authd_stop authd || fail "authd did not exit 0 on SIGTERM"
grep -q "lcores stopped 1/1" "$ENV_DIR/authd.log" || fail "authd's exit summary"
env_authgen_wait authd
rc=$?
cat "$ENV_DIR/model.txt"
[ $rc = 0 ] || fail "authgen --check-model exited $rc"
ok "authd stopped cleanly (exit 0), authgen exit 0"

# 6. Streams and a window against a fresh authd.
authd_start_memif authd2 "$SNAP" "$ENV_DIR/keys.ini" --clock fixed:$T ||
	fail "authd2 start"
env_authgen_start authd2 "$ENV_DIR/streams.json" --keys "$ENV_DIR/keys.ini" \
	--gateway 1 --users 20000 --seed $SEED --streams 4 --window 16 \
	--records 1-16 --duration 1 --timeout 5000 >"$ENV_DIR/streams.txt" 2>&1
env_authd_stop authd2 || fail "authd2 did not exit 0 on SIGTERM"
env_authgen_wait authd2
rc=$?
cat "$ENV_DIR/streams.txt"
[ $rc = 0 ] || fail "authgen --streams 4 exited $rc"
check clean "$ENV_DIR/streams.json" || fail "streams run"
ok "4 streams, window 16, everything answered and verified"
echo "PASS"
