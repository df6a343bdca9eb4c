#!/usr/bin/env bash
# test_crash.sh AUTHD AUTHCTL AUTHDB AUTHJOURNAL - kill -9 authd under load,
# many times, and check that nothing acknowledged is ever lost.
#
# authd runs in a network namespace on net_af_packet, --ack sync with a
# journal; a real kernel UDP client (Python, tests/integration/authclient.py
# for the wire format) in a second namespace pays, captures and voids with
# many datagrams in flight and logs every request it sends and every answer
# it gets (its own ledger). Each cycle:
#   1. authd is killed with SIGKILL at a random moment of the load;
#   2. it restarts: recovery (snapshot + journal, torn tail cut);
#   3. every request the client saw APPROVED is sent again: the answer must
#      be the recorded one (note DUPLICATE, same ledger_seq): the approval
#      survived;
#   4. every request that got no answer is sent again, in order: its fate
#      is now known (recovered: DUPLICATE; not: decided now);
#   5. money: authctl snapshot save + authdb export; each user's debt +
#      holds must equal what the client's answers add up to (approved
#      authorizations, minus released holds, plus captured debt), and so
#      must the sum over all users;
#   6. authjournal verify: the journal is valid.
# CRASH_CYCLES cycles (default 10; more for a soak: CRASH_CYCLES=100).
#
# Needs root (ip netns). Exit 77 (skip) without it.
set -u

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
lib_args "AUTHD AUTHCTL AUTHDB AUTHJOURNAL" "$@"
lib_need_root
CYCLES=${CRASH_CYCLES:-10}
SEED=${CRASH_SEED:-$$}
lib_init crash
CLIENT_PID=

T0=1764057600
K1=000102030405060708090a0b0c0d0e0f
KEYS=$TMP/keys.ini
J=$TMP/journal
LOGC=$TMP/client.log
RANDOM=$((SEED % 32768))

# ---------------------------------------------------------------------------
# The client: load (until SIGTERM), check (after a restart).
cat >"$TMP/crashclient.py" <<'PYEOF'
import os, random, select, signal, socket, sys, time
sys.path.insert(0, sys.argv[1])
from authclient import Client, request_record, HDR, ProtocolError

here, cmd, server, key, users_csv, log = sys.argv[1:7]
users = [int(l.split(",")[0]) for l in open(users_csv).read().split("\n")[1:201] if l]
M = 7
stop = False

def on_term(sig, frm):
    global stop
    stop = True

signal.signal(signal.SIGTERM, on_term)
logf = open(log, "a", buffering=1)

def w(line):
    logf.write(line + "\n")

# --- the client's ledger, rebuilt from the log --------------------------------
class Book:
    def __init__(self):
        self.req = {}       # rid -> (user, op, amount, ref)
        self.order = []     # rids in send order
        self.final = {}     # rid -> (status, reason, lseq, notes) last real answer
        self.cycle_approved = {}  # rid -> cycle of its first APPROVED answer
        self.cycle = 0

    def load(self, path):
        for line in open(path):
            p = line.split()
            if not p:
                continue
            if p[0] == "C":
                self.cycle = int(p[1])
            elif p[0] == "S":
                rid = int(p[1])
                if rid not in self.req:
                    self.req[rid] = (int(p[2]), p[3], int(p[4]), int(p[5]))
                    self.order.append(rid)
            elif p[0] == "A":
                self.answer(int(p[1]), int(p[2]), int(p[3]), int(p[4]), int(p[5]))

    def answer(self, rid, status, reason, lseq, notes):
        if reason == 18:  # BUSY: nothing recorded, the request is not done
            return
        self.final[rid] = (status, reason, lseq, notes)
        if status == 0 and rid not in self.cycle_approved:
            self.cycle_approved[rid] = self.cycle

    def approved(self, rid):
        f = self.final.get(rid)
        return f is not None and f[0] == 0

    def open_holds(self):
        held = {}
        for rid in self.order:
            u, op, amt, ref = self.req[rid]
            if op == "authorize" and self.approved(rid):
                held[rid] = (u, amt)
        for rid in self.order:
            u, op, amt, ref = self.req[rid]
            if op in ("capture", "void") and ref in held and (
                    self.approved(rid) or rid not in self.final):
                del held[ref]  # closed, or its fate still unknown
        return held

    def exposure(self):
        e = {}
        for rid in self.order:
            u, op, amt, ref = self.req[rid]
            if not self.approved(rid):
                continue
            if op == "authorize":
                e[u] = e.get(u, 0) + amt
            elif op == "void":
                e[u] = e.get(u, 0) - self.req[ref][2]
            elif op == "capture":
                e[u] = e.get(u, 0) - self.req[ref][2] + amt
        return e

def client():
    return Client(server, gateway=1, key_id=1, key=key, timeout=1.0)

def rec_of(rid, book):
    u, op, amt, ref = book.req[rid]
    return request_record(op, u, amount=amt, merchant=M, ref=ref,
                          request_id=rid)

def log_answers(recs, ans):
    for r, a in zip(recs, ans):
        w("A %d %d %d %d %d" % (r["request_id"], a["status"], a["reason"],
                                a["ledger_seq"], a["notes"]))

# --- load: pay, capture, void, many datagrams in flight -------------------
def load():
    book = Book()
    book.load(log)
    c = client()
    c.sock.setblocking(False)
    held = book.open_holds()
    busy = set()            # holds with a capture/void in flight
    inflight = {}
    rng = random.Random(os.getpid() ^ int(time.time()))
    while not stop:
        while len(inflight) < 16 and not stop:
            recs = []
            for _ in range(rng.randint(1, 8)):
                x = rng.random()
                cand = [h for h in held if h not in busy]
                if x < 0.7 or not cand:
                    r = request_record("authorize", rng.choice(users),
                                       amount=rng.randint(100, 20000),
                                       merchant=M)
                else:
                    ref = rng.choice(cand)
                    u, amt = held[ref]
                    busy.add(ref)
                    if x < 0.85:
                        r = request_record("capture", u, ref=ref, merchant=M,
                                           amount=rng.randint(1, amt))
                    else:
                        r = request_record("void", u, ref=ref, merchant=M,
                                           amount=0)
                recs.append(r)
            for r in recs:
                w("S %d %d %s %d %d" % (r["request_id"], r["user_id"],
                                        {1: "authorize", 2: "capture", 3: "void"}[r["op"]],
                                        r["amount"], r["ref_id"]))
            try:
                seq = c.send(recs)
            except (BlockingIOError, ConnectionRefusedError, OSError):
                break
            inflight[seq] = (recs, time.monotonic())
        ready, _, _ = select.select([c.sock], [], [], 0.01)
        while ready:
            try:
                data, _ = c.sock.recvfrom(65536)
            except (BlockingIOError, ConnectionRefusedError, OSError):
                break
            seq = HDR.unpack_from(data)[7] if len(data) >= HDR.size else 0
            item = inflight.pop(seq, None)
            if item is None:
                continue
            recs = item[0]
            try:
                ans = c.verify(data, recs, seq)
            except ProtocolError as e:
                w("X %s" % e)
                continue
            log_answers(recs, ans)
            for r, a in zip(recs, ans):
                if r["op"] == 1 and a["status"] == 0:
                    held[r["request_id"]] = (r["user_id"], r["amount"])
                elif r["op"] in (2, 3):
                    if a["status"] == 0:
                        held.pop(r["ref_id"], None)
                    busy.discard(r["ref_id"])
        now = time.monotonic()
        for seq in [s for s, (_, t) in inflight.items() if now - t > 2.0]:
            del inflight[seq]  # lost: authd died; checked after the restart
    logf.flush()

# --- check, after a restart ----------------------------------------------
def exchange(c, recs, tries=5):
    for _ in range(tries):
        ans = c.exchange(recs, timeout=2.0)
        if ans is not None:
            return ans
    return None

def check(cycle):
    book = Book()
    book.load(log)
    c = client()
    bad = 0
    # 3. every approval ever acknowledged is there, with its ledger seq
    want = [rid for rid, cy in book.cycle_approved.items() if cy == cycle - 1]
    old = [rid for rid, cy in book.cycle_approved.items() if cy < cycle - 1]
    random.shuffle(old)
    want += old[:300]
    for i in range(0, len(want), 16):
        rids = want[i:i + 16]
        recs = [rec_of(r, book) for r in rids]
        ans = exchange(c, recs)
        if ans is None:
            print("no answer to the approved resends"); return 2
        for rid, a in zip(rids, ans):
            st, rs, lseq, notes = book.final[rid]
            if not (a["notes"] & 0x10) or a["status"] != 0 or a["ledger_seq"] != lseq:
                print("LOST: request %d (%s) was APPROVED with ledger_seq %d; "
                      "after the restart: %s %s seq %d notes %#x" % (
                          rid, book.req[rid][1], lseq, a["status_name"],
                          a["reason_name"], a["ledger_seq"], a["notes"]))
                bad += 1
    checked = len(want)
    # 4. requests that got no answer: their fate, in send order
    open_ = [rid for rid in book.order if rid not in book.final]
    recovered = decided = 0
    for rid in open_:
        recs = [rec_of(rid, book)]
        ans = exchange(c, recs)
        if ans is None:
            print("no answer to resent request %d" % rid); return 2
        log_answers(recs, ans)
        book.answer(rid, ans[0]["status"], ans[0]["reason"],
                    ans[0]["ledger_seq"], ans[0]["notes"])
        if ans[0]["notes"] & 0x10:
            recovered += 1
        else:
            decided += 1
    print("cycle %d: %d approvals re-checked, %d unanswered resolved "
          "(%d recovered, %d decided now)" % (cycle, checked, len(open_),
                                             recovered, decided))
    return 1 if bad else 0

def money(csv_out):
    """5. the engine's debt + holds per user against the client's book"""
    book = Book()
    book.load(log)
    bad = 0
    engine = {}
    for line in open(csv_out).read().split("\n")[1:]:
        if line:
            uid, limit, out, holds = map(int, line.split(","))
            engine[uid] = out + holds
    mine = book.exposure()
    for u in users:
        if engine.get(u, 0) != mine.get(u, 0):
            print("MONEY: user %d: engine %d fen, client %d fen" % (
                u, engine.get(u, 0), mine.get(u, 0)))
            bad += 1
    tot_e = sum(engine.get(u, 0) for u in users)
    tot_m = sum(mine.values())
    n_appr = sum(1 for r in book.final if book.approved(r))
    print("%d requests approved in all; debt + holds: engine %d fen, client "
          "%d fen" % (n_appr, tot_e, tot_m))
    return 1 if bad or tot_e != tot_m else 0

if cmd == "load":
    load()
elif cmd == "check":
    sys.exit(check(int(sys.argv[7])))
elif cmd == "money":
    sys.exit(money(sys.argv[7]))
PYEOF

# ---------------------------------------------------------------------------
netns_up || fail "cannot create the namespaces"
keys_file "$KEYS" 1 1 "$K1"
cat >"$TMP/policy.ini" <<EOF
; no velocity limits (the clock is fixed: one minute forever)
[policy]
unknown-merchant-ok = 1
EOF
for t in 0 1 2 3 4 5 6 7; do
	printf 'tier.%d.vel-min-n = 0\ntier.%d.vel-day-n = 0\ntier.%d.vel-min = 0\ntier.%d.vel-day = 0\n' \
		$t $t $t $t >>"$TMP/policy.ini"
done
"$AUTHDB" gen --users 2000 --seed 11 --now "$T0" --out "$TMP/base.snap" >/dev/null ||
	fail "authdb gen"
"$AUTHDB" export "$TMP/base.snap" --users-csv "$TMP/users.csv" >/dev/null ||
	fail "authdb export"

start() {
	authd_start --keys "$KEYS" --clock "fixed:$T0" --policy "$TMP/policy.ini" \
		--snapshot "$TMP/base.snap" --journal "$J" --ack sync \
		--journal-segment-size 1048576 || fail "authd did not start"
}

py() { in_client python3 "$TMP/crashclient.py" "$HERE" "$@"; }

: >"$LOGC"
start
ok "authd up (sync ack, journal $J)"
for cycle in $(seq 1 "$CYCLES"); do
	echo "C $cycle" >>"$LOGC"
	# ip netns exec execs the client: $! is its pid
	lib_bg CLIENT_PID ip netns exec "$NS_C" python3 "$TMP/crashclient.py" \
		"$HERE" load "$IP_D" "$K1" "$TMP/users.csv" "$LOGC"
	# somewhere in 0.3 .. 2.3 s of load
	sleep "$((RANDOM % 20 / 10)).$((RANDOM % 10))"
	sleep 0.3
	authd_kill
	cp "$AUTHD_LOG" "$TMP/authd.$cycle.log"
	sleep 0.5
	lib_stop "$CLIENT_PID" TERM
	CLIENT_PID=
	echo "C $((cycle + 1))" >>"$LOGC"
	start
	grep "recovery:" "$AUTHD_LOG" | sed 's/^/    /'
	OUT=$(py check "$IP_D" "$K1" "$TMP/users.csv" "$LOGC" $((cycle + 1)))
	RC=$?
	echo "$OUT" | sed 's/^/    /'
	[ "$RC" = 0 ] || fail "cycle $cycle: an acknowledged approval was lost"
	authctl snapshot save "$TMP/now.snap" >/dev/null || fail "snapshot save"
	"$AUTHDB" export "$TMP/now.snap" --users-csv "$TMP/now.csv" >/dev/null ||
		fail "authdb export"
	OUT=$(py money "$IP_D" "$K1" "$TMP/users.csv" "$LOGC" "$TMP/now.csv")
	RC=$?
	echo "$OUT" | sed 's/^/    /'
	[ "$RC" = 0 ] || fail "cycle $cycle: money not conserved"
	"$AUTHJOURNAL" verify "$J" >"$TMP/verify.txt" 2>&1 ||
		fail "authjournal verify: $(cat "$TMP/verify.txt")"
	ok "cycle $cycle: killed under load, recovered, every approval there, money conserved"
done
authd_stop_ok
"$AUTHJOURNAL" verify "$J" || fail "journal invalid at the end"
echo "PASS: test_crash ($CYCLES cycles, seed $SEED)"
