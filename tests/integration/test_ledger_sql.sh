#!/usr/bin/env bash
# test_ledger_sql.sh AUTHD AUTHCTL AUTHDB AUTHCONSUME AUTHJOURNAL - the
# ledger of record in PostgreSQL (docs/ledger-sql.md): authconsume
# --postgres applies authd's JetStream export exactly once.
#
# Servers, each started here and stopped by its pid: a PostgreSQL 15
# cluster (initdb in a private directory owned by the unprivileged
# postgres user, port 5432 of the loopback of authd's network namespace,
# which is private to the test), nats-server -js (port 4222 of the same
# loopback), authd on net_af_packet
# (tests/integration/lib.sh) with --journal --ack sync --export.
# A kernel UDP gateway in the client namespace sends every kind of
# operation and writes the request id of every approved record to its log
# (a datagram without an answer is sent again with the same ids, so the
# fate of every record is known). authconsume --follow applies the stream.
#   1. load; authconsume keeps up (lag 0);
#   2. nats-server stopped under load (authd keeps deciding), restarted:
#      authconsume catches up;
#   3. authconsume killed with SIGKILL while it applies a backlog (after
#      NATS was down again), then again under load; each restart resumes
#      from consumer_position (logged), a second consumer of the schema is
#      refused while one runs;
#   4. the clock past the holds' expiry (EXPIRE records), more load;
#   5. at the end, with the load stopped and every seq applied:
#      - users' limit, debt and holds in SQL = the engine's (authctl
#        snapshot save + authdb export --users-csv), byte-equal sorted;
#        cash and installment debt = the engine's (its snapshot's balances);
#      - every balance = the base + the sum of the journal rows' deltas,
#        every user's holds = its held operations (SQL invariants);
#      - the journal table holds seq 1..D, each once (D = authd's durable
#        seq = the journal's records, authjournal dump);
#      - approved records in SQL = the client's approved request ids,
#        the same set;
#      - authconsume --stats: applied_seq D, lag 0.
# Needs root (ip netns), nats-server and PostgreSQL's server binaries:
# exit 77 (skip) without them.
set -u

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
lib_args "AUTHD AUTHCTL AUTHDB AUTHCONSUME AUTHJOURNAL" "$@"
NATS_SERVER=${NATS_SERVER:-$(command -v nats-server)}
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
PSQL=${PSQL:-$(command -v psql)}
PG_USER=${PG_USER:-postgres}

lib_need_root
if [ -z "$NATS_SERVER" ] || [ ! -x "$PGBIN/initdb" ] || [ ! -x "$PGBIN/postgres" ] ||
	[ -z "$PSQL" ] || ! id "$PG_USER" >/dev/null 2>&1; then
	skip "needs nats-server, PostgreSQL ($PGBIN/initdb, postgres, psql) and user $PG_USER (scripts/deps.sh)"
fi

lib_init sql
PGD=$(mktemp -d /tmp/authd-pg.XXXXXX)   # owned by $PG_USER: postgres refuses root
lib_on_exit rm -rf "$PGD"
lib_log authconsume "$TMP/consume.log"
lib_log postgres "$PGD/postgres.log"
NATS_PID=
PG_PID=
CONSUME_PID=
# The servers, by the pids started here: authconsume first, postgres last
# (SIGINT: its fast shutdown).
servers_stop() {
	[ -n "$CONSUME_PID" ] && kill -KILL "$CONSUME_PID" 2>/dev/null && wait "$CONSUME_PID" 2>/dev/null
	if [ -n "$NATS_PID" ]; then
		kill -TERM "$NATS_PID" 2>/dev/null
		wait "$NATS_PID" 2>/dev/null
	fi
	if [ -n "$PG_PID" ]; then
		kill -INT "$PG_PID" 2>/dev/null
		wait "$PG_PID" 2>/dev/null
	fi
	return 0
}

T0=1764057600 # 2025-11-25T08:00:00Z
K1=000102030405060708090a0b0c0d0e0f
KEYS=$TMP/keys.ini
J=$TMP/journal
STREAM="AUTHD_SQL$$"
SUBJ="authd.sql$$"
SCHEMA=ledger_t$$

in_d() { ip netns exec "$NS_D" "$@"; }
authctl() { "$AUTHCTL" -s "$AUTHD_SOCK" --timeout 15000 "$@"; }

# A field of authctl stats' "export" or "ledger" object.
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

# ---------------------------------------------------------------------------
# PostgreSQL, as $PG_USER, in $PGD, on the namespace's loopback only.
pg_start() {
	local i
	chown "$PG_USER": "$PGD"
	setpriv --reuid="$PG_USER" --regid="$(id -g "$PG_USER")" --clear-groups \
		"$PGBIN/initdb" -D "$PGD/data" -U ledger --auth=trust -E UTF8 --locale=C \
		--no-sync >"$PGD/initdb.log" 2>&1 || { cat "$PGD/initdb.log"; fail "initdb"; }
	# durability of PostgreSQL itself is not under test (it is not killed):
	# fsync off keeps the shared machine's disk for authd's journal
	ip netns exec "$NS_D" setpriv --reuid="$PG_USER" --regid="$(id -g "$PG_USER")" \
		--clear-groups "$PGBIN/postgres" -D "$PGD/data" -p "$PG_PORT" \
		-c listen_addresses=127.0.0.1 -c unix_socket_directories="$PGD" \
		-c fsync=off -c full_page_writes=off -c max_connections=20 \
		>"$PGD/postgres.log" 2>&1 &
	PG_PID=$!
	for i in $(seq 1 300); do
		psql_q "SELECT 1" >/dev/null 2>&1 && return 0
		kill -0 "$PG_PID" 2>/dev/null || break
		sleep 0.1
	done
	fail "postgres did not start on port $PG_PORT"
}
psql_q() { # SQL: unaligned, tuples only, errors fail
	in_d "$PSQL" -X -q -A -t -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" \
		-U ledger -d postgres -c "$1"
}
sql() { psql_q "SET search_path = $SCHEMA; $1"; }

nats_start() {
	local i
	# ip netns exec execs the server: $! is its pid (a shell function
	# put in the background would be a subshell's)
	ip netns exec "$NS_D" "$NATS_SERVER" -js -sd "$TMP/js" -a 127.0.0.1 \
		-p "$NATS_PORT" >>"$TMP/nats.log" 2>&1 &
	NATS_PID=$!
	for i in $(seq 1 100); do
		in_d python3 -c 'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 0.2)' \
			"$NATS_PORT" 2>/dev/null && return 0
		kill -0 "$NATS_PID" 2>/dev/null || break
		sleep 0.1
	done
	fail "nats-server did not start on port $NATS_PORT"
}
nats_stop() {
	kill -TERM "$NATS_PID"
	wait "$NATS_PID" 2>/dev/null
	NATS_PID=
}

consume() { # authconsume --postgres ARGS...
	in_d "$AUTHCONSUME" --nats "$NATS_URL" --stream "$STREAM" \
		--postgres "$PG_URL" --pg-schema "$SCHEMA" "$@"
}
consume_start() {
	ip netns exec "$NS_D" "$AUTHCONSUME" --nats "$NATS_URL" --stream "$STREAM" \
		--postgres "$PG_URL" --pg-schema "$SCHEMA" --snapshot "$TMP/base.snap" \
		--follow --log-every 1 >>"$TMP/consume.log" 2>&1 &
	CONSUME_PID=$!
}
consume_kill() {
	kill -KILL "$CONSUME_PID"
	wait "$CONSUME_PID" 2>/dev/null
	CONSUME_PID=
}
applied() { sql "SELECT applied_seq FROM consumer_position" 2>/dev/null || echo 0; }

# Wait until the ledger has applied every durable seq (up to $1 s).
wait_applied() {
	local i d a
	for i in $(seq 1 $(($1 * 10))); do
		d=$(stat ledger durable_seq)
		a=$(applied)
		[ "$(stat export lag)" = 0 ] && [ "$a" = "$d" ] && return 0
		kill -0 "$CONSUME_PID" 2>/dev/null || fail "authconsume exited"
		sleep 0.1
	done
	fail "the ledger did not catch up in $1 s: applied $a, durable $d, export lag $(stat export lag)"
}

# ---------------------------------------------------------------------------
# The gateway: every kind of operation for SECONDS; approved request ids to
# APPROVED (appended). A datagram without an answer is sent again, the same
# records, until answered (the answer is then the first one, DUPLICATE).
cat >"$TMP/ops.py" <<'PYEOF'
import random, sys, time
sys.path.insert(0, sys.argv[1])
from authclient import Client, request_record

server, key, users_csv, seconds, seed, approved_log = sys.argv[2:8]
users = [int(l.split(",")[0]) for l in open(users_csv).read().split("\n")[1:101] if l]
rng = random.Random(int(seed))
c = Client(server, gateway=1, key_id=1, key=key, timeout=1.0)
M = 7
held, captured = [], []
st = {"datagrams": 0, "records": 0, "approved": 0, "declined": 0, "resent": 0}
log = open(approved_log, "a")

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
    if x < 0.47:
        return ("big", request_record("authorize", u, amount=10 ** 11, merchant=M))
    if x < 0.62:
        hu, rid, amt = held.pop(rng.randrange(len(held)))
        return ("cap", request_record("capture", hu, ref=rid, merchant=M,
                                      amount=rng.randint(1, amt)))
    if x < 0.72:
        hu, rid, amt = held.pop(rng.randrange(len(held)))
        return ("void", request_record("void", hu, ref=rid, merchant=M, amount=0))
    if x < 0.82 and captured:
        cu, rid, amt = captured.pop(rng.randrange(len(captured)))
        return ("refund", request_record("refund", cu, ref=rid, merchant=M,
                                         amount=rng.randint(1, amt)))
    if x < 0.93:
        return ("repay", request_record("repay", u, amount=rng.randint(1, 2000),
                                        product=rng.choice([1, 2, 3])))
    return ("tomb", request_record("void", u, ref=rng.getrandbits(62) + 1,
                                   merchant=M, amount=0))

end = time.monotonic() + float(seconds)
while time.monotonic() < end or (not st["approved"] and time.monotonic() < end + 15):
    items = [pick() for _ in range(rng.randint(1, 8))]
    recs = [it[1] for it in items]
    st["datagrams"] += 1
    ans = None
    for attempt in range(30):
        ans = c.exchange(recs, timeout=1.0)
        if ans is not None:
            break
        st["resent"] += 1
    if ans is None:
        sys.exit("no answer after 30 tries: " + str(st))
    for it, r, a in zip(items, recs, ans):
        st["records"] += 1
        if a["status"] == 0:
            st["approved"] += 1
            log.write("%d\n" % r["request_id"])
            if it[0] == "auth":
                held.append((r["user_id"], r["request_id"], r["amount"]))
            elif it[0] == "cap":
                captured.append((r["user_id"], r["ref_id"], a["amount"] or r["amount"]))
        else:
            st["declined"] += 1
log.close()
print("datagrams %(datagrams)d records %(records)d approved %(approved)d "
      "declined %(declined)d resent %(resent)d" % st)
PYEOF
ops() { # SECONDS SEED
	in_client python3 "$TMP/ops.py" "$HERE" "$IP_D" "$K1" "$TMP/users.csv" "$1" "$2" \
		"$TMP/approved.txt"
}

# ---------------------------------------------------------------------------
netns_up || fail "cannot create the namespaces"
lib_on_exit servers_stop   # runs before the namespaces go (last first)
ip -n "$NS_D" link set lo up || fail "loopback in $NS_D"
# The namespace's loopback is this test's alone: the usual ports, below the
# ephemeral range (a client reconnecting to a port in that range while its
# server is down can connect to itself and take the port).
NATS_PORT=4222
PG_PORT=5432
NATS_URL="nats://127.0.0.1:$NATS_PORT"
PG_URL="postgresql://ledger@127.0.0.1:$PG_PORT/postgres"
keys_file "$KEYS" 1 1 "$K1"
printf '[policy]\nunknown-merchant-ok = 1\n' >"$TMP/policy.ini"
for t in 0 1 2 3 4 5 6 7; do
	printf 'tier.%d.vel-min-n = 0\ntier.%d.vel-day-n = 0\ntier.%d.vel-min = 0\ntier.%d.vel-day = 0\n' \
		$t $t $t $t >>"$TMP/policy.ini"
done
"$AUTHDB" gen --users 300 --seed 9 --now "$T0" --out "$TMP/base.snap" >/dev/null ||
	fail "authdb gen"
"$AUTHDB" export "$TMP/base.snap" --users-csv "$TMP/users.csv" >/dev/null 2>&1 ||
	fail "authdb export"
: >"$TMP/approved.txt"

pg_start
ok "postgres $("$PGBIN/postgres" --version | awk '{print $3}') (pid $PG_PID) on 127.0.0.1:$PG_PORT, data in $PGD"
nats_start
authd_start --keys "$KEYS" --clock "fixed:$T0" --policy "$TMP/policy.ini" \
	--snapshot "$TMP/base.snap" --journal "$J" --ack sync \
	--export "$NATS_URL" --export-stream "$STREAM" --export-subject "$SUBJ" ||
	fail "authd did not start"
consume_start
# the table appears when the creation commits, the log line right after:
# wait for both (a busy machine may run this loop in between)
created() {
	[ -n "$(sql 'SELECT 1 FROM consumer_position' 2>/dev/null)" ] &&
		grep -q "schema $SCHEMA created, base $TMP/base.snap (300 users, seq 0)" \
			"$TMP/consume.log"
}
lib_wait_for 30 created ||
	fail "authconsume did not create the ledger: $(cat "$TMP/consume.log")"
ok "authconsume --follow (pid $CONSUME_PID) created schema $SCHEMA with base.snap (300 users)"

# --- 1. load, the ledger keeps up ---------------------------------------------
OUT=$(ops 3 1) || fail "load 1: $OUT"
echo "    load 1: $OUT"
authctl user set "$(sed -n 2p "$TMP/users.csv" | cut -d, -f1)" --limit 9000 >/dev/null ||
	fail "user set"
authctl user add 4242 --limit 300000 >/dev/null || fail "user add"
wait_applied 40
ok "ledger caught up: applied seq $(applied) = durable $(stat ledger durable_seq)"

OUT=$(consume --follow 2>&1)
[ $? = 2 ] && echo "$OUT" | grep -q "another authconsume is applying to it" ||
	fail "a second consumer of the schema: $OUT"
ok "a second authconsume on $SCHEMA refused while one runs"

# --- 2. NATS down under load, then back ---------------------------------------
nats_stop
OUT=$(ops 2 2) || fail "authd stopped deciding while NATS was down: $OUT"
echo "    load 2 (NATS down): $OUT"
nats_start
wait_applied 60
ok "NATS down and back: authconsume caught up (applied $(applied))"

# --- 3. kill -9 authconsume mid-stream -----------------------------------------
nats_stop
OUT=$(ops 3 3) || fail "load 3: $OUT"
echo "    load 3 (NATS down): $OUT"
A0=$(applied)
D=$(stat ledger durable_seq)
nats_start
# kill once the backlog is being applied, before it is done (the clients
# reconnect first: up to a few seconds)
T=$SECONDS
while [ $((SECONDS - T)) -lt 60 ]; do
	A=$(applied)
	[ "$A" -gt "$A0" ] && break
	kill -0 "$CONSUME_PID" 2>/dev/null || fail "authconsume exited"
done
consume_kill
A=$(applied)
[ "$A" -gt "$A0" ] || fail "authconsume applied nothing of the backlog before the kill"
if [ "$A" -lt "$D" ]; then
	ok "authconsume killed (SIGKILL) mid-stream: applied $A of $D, backlog from $A0"
else
	ok "authconsume killed (SIGKILL) after the backlog (applied $A, from $A0): it was faster than the look"
fi
consume_start
wait_applied 60
grep -q "applied up to seq $A, the stream ends" "$TMP/consume.log" ||
	fail "the restart did not resume from the ledger's position $A"
ok "restarted: resumed after seq $A (consumer_position), caught up to $(applied)"

# and once more under load, at whatever point it is
ops 4 4 >"$TMP/load4.out" &
LOAD=$!
sleep 2
A1=$(applied)
consume_kill
sleep 0.5
consume_start
wait "$LOAD" || fail "load 4: $(cat "$TMP/load4.out")"
echo "    load 4 (authconsume killed at seq $A1 and restarted): $(cat "$TMP/load4.out")"
wait_applied 60
ok "killed under load at seq $A1, restarted, caught up to $(applied)"

# --- 4. holds expire, more load -------------------------------------------------
authctl clock set $((T0 + 8 * 86400)) >/dev/null || fail "clock set"
sleep 2
OUT=$(ops 1 5) || fail "load 5: $OUT"
echo "    load 5 (8 days later): $OUT"
wait_applied 60

# --- 5. the ledger against the engine -------------------------------------------
D=$(stat ledger durable_seq)
authctl snapshot save "$TMP/now.snap" >/dev/null || fail "snapshot save"
[ "$(stat ledger durable_seq)" = "$D" ] || fail "the journal moved during the check"
wait_applied 30
"$AUTHDB" export "$TMP/now.snap" --users-csv "$TMP/engine.csv" >/dev/null 2>&1 ||
	fail "authdb export"
{
	echo "user_id,limit_fen,outstanding_fen,holds_fen"
	sql "SELECT user_id || ',' || limit_fen || ',' || outstanding_fen || ',' || holds_fen FROM users"
} >"$TMP/sql.csv" || fail "select users"
sort "$TMP/engine.csv" >"$TMP/engine.sorted"
sort "$TMP/sql.csv" >"$TMP/sql.sorted"
cmp -s "$TMP/engine.sorted" "$TMP/sql.sorted" ||
	fail "SQL users differ from the engine's: $(diff "$TMP/engine.sorted" "$TMP/sql.sorted" | head -6)"
N=$(($(wc -l <"$TMP/engine.csv") - 1))
DEBT=$(sql "SELECT sum(outstanding_fen) || ' fen debt, ' || sum(holds_fen) || ' fen on hold' FROM users")
ok "SQL users = engine (authdb export of authctl snapshot save): $N users byte-equal; $DEBT"

# cash and installment debt: the engine's snapshot's balances
in_d "$AUTHCONSUME" --nats "$NATS_URL" --stream "$STREAM" --snapshot "$TMP/now.snap" \
	--until "$D" --balances-csv "$TMP/engine-bal.csv" >/dev/null 2>"$TMP/bal.err" ||
	fail "balances of now.snap: $(cat "$TMP/bal.err")"
cut -d, -f1,5,6 "$TMP/engine-bal.csv" | sort >"$TMP/engine-bal.sorted"
{
	echo "user_id,cash_fen,inst_fen"
	sql "SELECT user_id || ',' || cash_fen || ',' || inst_fen FROM users"
} | sort >"$TMP/sql-bal.sorted"
cmp -s "$TMP/engine-bal.sorted" "$TMP/sql-bal.sorted" ||
	fail "cash/installment debt differs: $(diff "$TMP/engine-bal.sorted" "$TMP/sql-bal.sorted" | head -6)"
ok "SQL cash and installment debt = the engine's, every user"

BAD=$(sql "SELECT count(*) FROM users u LEFT JOIN (SELECT j.user_id, sum(j.d_outstanding_fen) o,
	sum(j.d_holds_fen) h FROM journal j JOIN users x USING (user_id)
	WHERE j.kind BETWEEN 1 AND 8 AND j.seq > x.base_seq GROUP BY j.user_id) d USING (user_id)
	WHERE u.outstanding_fen <> u.base_outstanding_fen + coalesce(d.o, 0)
	   OR u.holds_fen <> u.base_holds_fen + coalesce(d.h, 0)") || fail "invariant query"
[ "$BAD" = 0 ] || fail "$BAD users' balances are not base + journal deltas"
BAD=$(sql "SELECT count(*) FROM users u WHERE u.holds_fen <> u.base_holds_fen +
	(SELECT coalesce(sum(o.held_fen), 0) FROM operations o
	 WHERE o.user_id = u.user_id AND o.state = 'held')") || fail "holds query"
[ "$BAD" = 0 ] || fail "$BAD users' holds differ from their held operations"
ok "SQL invariants: balances = base + journal deltas, holds = held operations"

R=$(sql "SELECT count(*) || ' ' || count(DISTINCT seq) || ' ' || min(seq) || ' ' || max(seq) FROM journal")
[ "$R" = "$D $D 1 $D" ] || fail "journal rows (count, distinct, min, max) = $R, expected $D $D 1 $D"
JR=$("$AUTHJOURNAL" dump "$J" --json | wc -l)
[ "$JR" = "$D" ] || fail "authjournal dump: $JR records, durable seq $D"
ok "journal table: seq 1..$D, each once (= authjournal's $JR records)"

sort -n "$TMP/approved.txt" >"$TMP/client.approved"
sql "SELECT request_id FROM journal WHERE status = 0 AND kind BETWEEN 2 AND 6 ORDER BY request_id" \
	>"$TMP/sql.approved" || fail "select approvals"
sort -n "$TMP/sql.approved" -o "$TMP/sql.approved"
cmp -s "$TMP/client.approved" "$TMP/sql.approved" ||
	fail "approvals: client $(wc -l <"$TMP/client.approved"), SQL $(wc -l <"$TMP/sql.approved"): $(diff "$TMP/client.approved" "$TMP/sql.approved" | head -4)"
KINDS=$(sql "SELECT string_agg(kind_name || ' ' || n, ', ' ORDER BY kind) FROM
	(SELECT kind, kind_name, count(*) n FROM journal GROUP BY kind, kind_name) k")
ok "approved records in SQL = the client's log: $(wc -l <"$TMP/client.approved") request ids, the same set; journal: $KINDS"

consume --stats >"$TMP/stats.txt" 2>&1 || fail "--stats: $(cat "$TMP/stats.txt")"
grep -qx "applied_seq $D" "$TMP/stats.txt" && grep -qx "lag 0" "$TMP/stats.txt" ||
	fail "--stats: $(cat "$TMP/stats.txt")"
ok "authconsume --stats: $(grep -E '^(applied_seq|stream_last_seq|lag|users|operations) ' "$TMP/stats.txt" | tr '\n' ' ')"
grep -q "lag [0-9]* records" "$TMP/consume.log" || fail "no lag line in authconsume's log"

kill -TERM "$CONSUME_PID"
wait "$CONSUME_PID"
RC=$?
CONSUME_PID=
[ "$RC" = 0 ] || fail "authconsume --follow exited $RC on SIGTERM"
tail -n 1 "$TMP/consume.log" | sed 's/^/    /'
authd_stop
[ "$AUTHD_STATUS" = 0 ] || fail "authd exited $AUTHD_STATUS on SIGTERM"
echo "PASS: test_ledger_sql"
