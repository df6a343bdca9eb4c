#!/usr/bin/env bash
# test_nats.sh AUTHD AUTHCTL AUTHDB AUTHCONSUME AUTHJOURNAL - the export to
# NATS JetStream end to end (docs/export.md): a consumer rebuilds balances
# equal to the engine's.
#
# A real nats-server (-js, file store in a private directory, a free port
# on the loopback of authd's network namespace) and authd on net_af_packet
# (tests/integration/lib.sh) with --journal, --ack sync and --export; a
# real kernel UDP gateway (authclient.py) in the client namespace sends
# every kind of operation (authorize pay-later, installment and cash,
# capture, void, refund, repay, a void of an unknown reference, declines);
# authctl changes users, a merchant and the policy and moves the clock past
# the holds' expiry. Then:
#   1. the export catches up (lag 0) while the load runs;
#   2. nats-server is stopped under load: authd keeps answering, the lag
#      grows, the state leaves "connected"; nats-server restarts on the same
#      store: the export catches up;
#   3. nats-server is stopped again, more load, nats-server restarts and
#      authd is killed with SIGKILL while the export publishes the backlog;
#      authd restarts (recovery from the journal): the export resumes after
#      what the stream holds (export.pos read and reported) and catches up;
#   4. authctl snapshot save + authdb export --users-csv (the engine) and
#      authconsume --snapshot base --users-csv (rebuilt from NATS) must be
#      byte-equal once sorted; authconsume --check compares every balance
#      (cash, installment, month spend too) with the engine's snapshot; the
#      stream holds every seq of the journal once.
# Also: --export without --journal is refused; authd starts while
# nats-server is not there yet (state "connecting") and exports once it is.
#
# Needs root (ip netns) and nats-server: exit 77 (skip) without them.
set -u

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
lib_args "AUTHD AUTHCTL AUTHDB AUTHCONSUME AUTHJOURNAL" "$@"
NATS_SERVER=${NATS_SERVER:-$(command -v nats-server)}
lib_need_root
[ -n "$NATS_SERVER" ] || skip "needs nats-server (scripts/deps.sh)"
lib_init nats
NATS_PID=

T0=1764057600 # 2025-11-25T08:00:00Z
K1=000102030405060708090a0b0c0d0e0f
KEYS=$TMP/keys.ini
J=$TMP/journal
STREAM="AUTHD_T$$"
SUBJ="authd.t$$"

lib_log nats-server "$TMP/nats.log"
# authd's control thread shares a core with everything else on a 2-core
# machine under load: a generous timeout for every authctl call.
authctl() { "$AUTHCTL" -s "$AUTHD_SOCK" --timeout 15000 "$@"; }

# A field of authctl stats' "export" (or "ledger") object. The control
# thread shares a core with everything else here: a generous timeout, and
# a second try.
stat() {
	local j i
	for i in 1 2 3; do
		j=$(authctl --json stats 2>/dev/null) && break
	done
	python3 -c '
import json, sys
print(json.loads(sys.argv[3])[sys.argv[1]][sys.argv[2]])' "$1" "$2" "$j" ||
		fail "authctl stats did not answer"
}

# Wait until the export's lag is 0 and it is connected (up to $1 s).
wait_caught_up() {
	local i lag st
	for i in $(seq 1 $(($1 * 10))); do
		lag=$(stat export lag)
		st=$(stat export state)
		[ "$lag" = 0 ] && [ "$st" = connected ] && return 0
		sleep 0.1
	done
	fail "export did not catch up in $1 s: state $st, lag $lag, last error: $(stat export last_error)"
}

# ---------------------------------------------------------------------------
# nats-server on the loopback of authd's namespace, on a port found free
# there by binding port 0 (nats-server itself has no -p 0), its store in TMP.
nats_start() {
	local i
	lib_bg NATS_PID ip netns exec "$NS_D" "$NATS_SERVER" -js -sd "$TMP/js" \
		-a 127.0.0.1 -p "$NATS_PORT" >>"$TMP/nats.log" 2>&1
	for i in $(seq 1 100); do
		if in_daemon python3 -c 'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 0.2)' \
			"$NATS_PORT" 2>/dev/null; then
			return 0
		fi
		kill -0 "$NATS_PID" 2>/dev/null || break
		sleep 0.1
	done
	fail "nats-server did not start on port $NATS_PORT"
}

nats_stop() {
	lib_stop "$NATS_PID" TERM 2>/dev/null
	NATS_PID=
}

# ---------------------------------------------------------------------------
# The gateway: every kind of operation, until SECONDS have passed.
cat >"$TMP/ops.py" <<'PYEOF'
import random, sys, time
sys.path.insert(0, sys.argv[1])
from authclient import Client, request_record

server, key, users_csv, seconds, seed = sys.argv[2:7]
users = [int(l.split(",")[0]) for l in open(users_csv).read().split("\n")[1:121] if l]
rng = random.Random(int(seed))
c = Client(server, gateway=1, key_id=1, key=key, timeout=1.0)
M = 7
held, captured = [], []   # (user, request id, amount)
st = {"sent": 0, "answered": 0, "approved": 0, "declined": 0, "lost": 0}

def pick():
    x = rng.random()
    u = rng.choice(users)
    if x < 0.30 or not held:
        return ("auth", request_record("authorize", u, amount=rng.randint(100, 30000),
                                       merchant=M, product=1))
    if x < 0.38:
        return ("auth", request_record("authorize", u, amount=rng.randint(1000, 60000),
                                       merchant=M, product=2, terms=rng.choice([3, 6, 12])))
    if x < 0.44:
        return ("cash", request_record("authorize", u, amount=rng.randint(100, 5000),
                                       merchant=M, product=3))
    if x < 0.48:
        return ("big", request_record("authorize", u, amount=10 ** 11, merchant=M))
    if x < 0.62:
        hu, rid, amt = held.pop(rng.randrange(len(held)))
        return ("cap", request_record("capture", hu, ref=rid, merchant=M,
                                      amount=rng.randint(1, amt)), (hu, rid, amt))
    if x < 0.72:
        hu, rid, amt = held.pop(rng.randrange(len(held)))
        return ("void", request_record("void", hu, ref=rid, merchant=M, amount=0))
    if x < 0.82 and captured:
        cu, rid, amt = captured.pop(rng.randrange(len(captured)))
        return ("refund", request_record("refund", cu, ref=rid, merchant=M,
                                         amount=rng.randint(1, amt)))
    if x < 0.92:
        return ("repay", request_record("repay", u, amount=rng.randint(1, 2000),
                                        product=rng.choice([1, 2, 3])))
    return ("tomb", request_record("void", u, ref=rng.getrandbits(62) + 1,
                                   merchant=M, amount=0))

end = time.monotonic() + float(seconds)
# on a loaded machine (sanitizers, a slow disk) give the first answer time
while time.monotonic() < end or (not st["approved"] and time.monotonic() < end + 15):
    items = [pick() for _ in range(rng.randint(1, 8))]
    recs = [it[1] for it in items]
    st["sent"] += 1
    ans = c.exchange(recs, timeout=1.0)
    if ans is None:
        st["lost"] += 1    # unknown fate: its references are not reused
        continue
    st["answered"] += 1
    for it, r, a in zip(items, recs, ans):
        if a["status"] == 0:
            st["approved"] += 1
            if it[0] == "auth":
                held.append((r["user_id"], r["request_id"], r["amount"]))
            elif it[0] == "cap":
                captured.append((r["user_id"], r["ref_id"], a["amount"] or r["amount"]))
        else:
            st["declined"] += 1
print("sent %(sent)d answered %(answered)d approved %(approved)d "
      "declined %(declined)d lost %(lost)d" % st)
sys.exit(0 if st["answered"] and st["approved"] else 1)
PYEOF

ops() { # SECONDS SEED
	in_client python3 "$TMP/ops.py" "$HERE" "$IP_D" "$K1" "$TMP/users.csv" "$1" "$2"
}

# ---------------------------------------------------------------------------
netns_up || fail "cannot create the namespaces"
ip -n "$NS_D" link set lo up || fail "loopback in $NS_D"
NATS_PORT=$(lib_free_port "$NS_D")
NATS_URL="nats://127.0.0.1:$NATS_PORT"
keys_file "$KEYS" 1 1 "$K1"
cat >"$TMP/policy.ini" <<EOF
; no velocity limits (the clock is fixed: one minute for a long time)
[policy]
unknown-merchant-ok = 1
EOF
for t in 0 1 2 3 4 5 6 7; do
	printf 'tier.%d.vel-min-n = 0\ntier.%d.vel-day-n = 0\ntier.%d.vel-min = 0\ntier.%d.vel-day = 0\n' \
		$t $t $t $t >>"$TMP/policy.ini"
done
"$AUTHDB" gen --users 500 --seed 5 --now "$T0" --out "$TMP/base.snap" >/dev/null ||
	fail "authdb gen"
"$AUTHDB" export "$TMP/base.snap" --users-csv "$TMP/users.csv" >/dev/null 2>&1 ||
	fail "authdb export"

# --export needs --journal: refused before anything starts.
lib_prefix XPREFIX x
OUT=$("$AUTHD" --no-huge --no-pci -m 128 --file-prefix "$XPREFIX" -l 0 \
	-- --ip 10.1.1.1 --keys "$KEYS" --export "$NATS_URL" 2>&1)
RC=$?
[ "$RC" = 1 ] && echo "$OUT" | grep -q -- "--export needs --journal" ||
	fail "--export without --journal: status $RC: $OUT"
ok "--export without --journal refused"

start() {
	authd_start --keys "$KEYS" --clock "fixed:$T0" --policy "$TMP/policy.ini" \
		--snapshot "$TMP/base.snap" --journal "$J" --ack sync \
		--journal-segment-size 65536 --export "$NATS_URL" \
		--export-stream "$STREAM" --export-subject "$SUBJ" ||
		fail "authd did not start"
}

# authd first: NATS not there yet is no reason not to start
start
ST=$(stat export state)
[ "$ST" = connecting ] || fail "NATS not started yet: export state $ST"
nats_start
ok "authd started before nats-server (export $ST); nats-server on $NATS_URL, stream $STREAM"

# --- 1. load, settings, the export keeps up ---------------------------------
OUT=$(ops 3 1) || fail "load 1: $OUT"
note "load 1: $OUT"
authctl user set "$(sed -n 2p "$TMP/users.csv" | cut -d, -f1)" --limit 9000 >/dev/null ||
	fail "user set"
authctl user add 4242 --limit 3000 >/dev/null || fail "user add"
authctl merchant block 99 >/dev/null || fail "merchant block"
authctl policy set hold-ttl=2d >/dev/null || fail "policy set"
wait_caught_up 30
[ "$(stat export published)" -gt 0 ] || fail "nothing published"
ok "export caught up: acked seq $(stat export acked_seq) = durable $(stat ledger durable_seq)"

# --- 2. nats-server down under load, then back ------------------------------
nats_stop
OUT=$(ops 3 2) || fail "authd stopped deciding while NATS was down: $OUT"
note "load 2 (NATS down): $OUT"
LAG=$(stat export lag)
ST=$(stat export state)
[ "$LAG" -gt 0 ] || fail "NATS down: lag $LAG"
[ "$ST" != connected ] || fail "NATS down: state still connected"
ok "NATS down: authd kept deciding; export $ST, lag $LAG"
nats_start
wait_caught_up 40
ok "NATS back: export caught up (resyncs $(stat export resyncs), errors $(stat export errors))"

# --- 3. kill -9 authd while the export catches up ---------------------------
nats_stop
OUT=$(ops 3 3) || fail "load 3: $OUT"
note "load 3 (NATS down): $OUT"
[ -f "$J/export.pos" ] || fail "no $J/export.pos"
POS0=$(sed -n 's/^acked_seq //p' "$J/export.pos")
LAG=$(stat export lag)
[ "$LAG" -gt 0 ] || fail "NATS down: lag $LAG"
nats_start
# kill as soon as the export has published part of the backlog (the
# catch-up may also end between two looks: then the kill finds it done)
for i in $(seq 1 200); do
	A=$(stat export acked_seq)
	[ "$A" -gt "$POS0" ] && break
	sleep 0.02
done
authd_kill
[ "$A" -gt "$POS0" ] || fail "the export did not resume before the kill"
POS=$(sed -n 's/^acked_seq //p' "$J/export.pos")
cp "$AUTHD_LOG" "$TMP/authd.killed.log"
start
grep -q "export.pos: seq $POS acknowledged" "$AUTHD_LOG" ||
	fail "the restart did not read export.pos (seq $POS)"
wait_caught_up 40
grep "export: stream" "$AUTHD_LOG" | sed 's/^/    /'
ok "killed while exporting a backlog of $LAG after seq $POS0 (acked $A when last seen, export.pos $POS); restarted: resumed, caught up"

# more load, then the clock past every hold's expiry: EXPIRE records
OUT=$(ops 2 4) || fail "load 4: $OUT"
note "load 4: $OUT"
authctl clock set $((T0 + 8 * 86400)) >/dev/null || fail "clock set"
# the timer releases every hold now past its expiry (EXPIRE records)
no_timer_pending() { [ "$(stat ledger timer_pending)" = 0 ]; }
lib_wait_for 60 no_timer_pending ||
	fail "holds still in the timer wheel 60 s after the clock moved past them: $(stat ledger timer_pending)"
OUT=$(ops 1 5) || fail "load 5: $OUT"
note "load 5 (8 days later): $OUT"
wait_caught_up 30

# every kind of record went through the journal (and so the stream)
"$AUTHJOURNAL" dump "$J" --json >"$TMP/dump.json" || fail "authjournal dump"
for k in DECIDE AUTH CAPTURE VOID REFUND REPAY TOMBSTONE EXPIRE USER_SET \
	MERCHANT_SET POLICY_PART; do
	grep -q "\"kind\":\"$k\"" "$TMP/dump.json" || fail "no $k record in the journal"
done
ok "the journal holds every kind of record ($(wc -l <"$TMP/dump.json") records, $(ls "$J"/seg-*.jnl | wc -l) segments)"

# --- 4. the engine's balances against the rebuild from NATS ------------------
authctl snapshot save "$TMP/now.snap" >/dev/null || fail "snapshot save"
"$AUTHDB" export "$TMP/now.snap" --users-csv "$TMP/engine.csv" >/dev/null 2>&1 ||
	fail "authdb export"
D=$(stat ledger durable_seq)
wait_caught_up 30
in_daemon "$AUTHCONSUME" --nats "$NATS_URL" --stream "$STREAM" --snapshot "$TMP/base.snap" \
	--users-csv "$TMP/rebuilt.csv" --balances-csv "$TMP/balances.csv" \
	--out "$TMP/rebuilt.snap" --check "$TMP/now.snap" --until "$D" --timeout 20 \
	>"$TMP/consume.out" 2>"$TMP/consume.err"
RC=$?
sed 's/^/    /' "$TMP/consume.err" "$TMP/consume.out"
[ "$RC" = 0 ] || fail "authconsume exited $RC"
grep -q "$D records applied (seq 1..$D), 0 duplicates" "$TMP/consume.err" ||
	fail "the stream does not hold seq 1..$D once each"
sort "$TMP/engine.csv" >"$TMP/engine.sorted"
sort "$TMP/rebuilt.csv" >"$TMP/rebuilt.sorted"
cmp "$TMP/engine.sorted" "$TMP/rebuilt.sorted" ||
	fail "balances differ: $(diff "$TMP/engine.sorted" "$TMP/rebuilt.sorted" | head -5)"
ok "rebuilt from NATS == engine: $(($(wc -l <"$TMP/engine.csv") - 1)) users byte-equal, every balance equal (--check)"

# the rebuilt snapshot continues: a second run from it, after more load
OUT=$(ops 1 6) || fail "load 6: $OUT"
wait_caught_up 30
authctl snapshot save "$TMP/now2.snap" >/dev/null || fail "snapshot save 2"
D2=$(stat ledger durable_seq)
in_daemon "$AUTHCONSUME" --nats "$NATS_URL" --stream "$STREAM" --snapshot "$TMP/rebuilt.snap" \
	--check "$TMP/now2.snap" --until "$D2" --timeout 20 >"$TMP/consume2.out" 2>&1 ||
	fail "second authconsume: $(cat "$TMP/consume2.out")"
grep -q "same balances" "$TMP/consume2.out" || fail "second run: $(cat "$TMP/consume2.out")"
ok "a second run from the rebuilt snapshot applies seq $((D + 1))..$D2 and matches"

authd_stop_ok
grep "export: published" "$AUTHD_LOG" | sed 's/^/    /'
"$AUTHJOURNAL" verify "$J" >/dev/null || fail "journal invalid at the end"
echo "PASS: test_nats"
