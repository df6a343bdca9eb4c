#!/usr/bin/env bash
# test_fsync_fail.sh AUTHD AUTHCTL AUTHDB AUTHJOURNAL - the journal's disk
# fills up: authd stops approving, says why, and loses nothing it
# acknowledged.
#
# The journal lives on a small tmpfs of its own (mounted and unmounted by
# this test). authd runs --ack sync in a network namespace; a kernel UDP
# client pays one datagram at a time and logs every answer. Then the tmpfs
# is filled: the next journal write fails (ENOSPC, a real error from the
# file system, not an injected one) and from then on:
#   - every answer is BUSY (no approval after the failure), counted as
#     journal_busy; the answer whose batch failed is never sent
#     (held_dropped);
#   - the log says what failed: the segment file, the call, the error;
#   - authd still stops cleanly on SIGTERM.
# Space is given back, authd restarts: every approval the client was told
# is there (DUPLICATE, same ledger_seq), the user's holds are exactly the
# sum of the approvals, the journal verifies, and new payments are approved.
#
# Needs root (ip netns, mount). Exit 77 (skip) without it.
set -u

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
lib_args "AUTHD AUTHCTL AUTHDB AUTHJOURNAL" "$@"
lib_need_root
lib_init fsf
FS=$TMP/fs

T0=1764057600
K1=000102030405060708090a0b0c0d0e0f
KEYS=$TMP/keys.ini
J=$FS/journal
LOGC=$TMP/answers.log

cat >"$TMP/fclient.py" <<'PYEOF'
import sys
sys.path.insert(0, sys.argv[1])
from authclient import Client, request_record

here, cmd, server, key, user, log = sys.argv[1:7]
user = int(user)
c = Client(server, gateway=1, key_id=1, key=key, timeout=1.5)

def pay(n, stop_after_busy):
    """n payments of 1.00, one at a time; log rid status reason seq."""
    busy = 0
    with open(log, "a", buffering=1) as f:
        for _ in range(n):
            r = request_record("authorize", user, amount=100, merchant=7)
            ans = c.exchange([r])
            if ans is None:
                f.write("%d - - -\n" % r["request_id"])
                continue
            a = ans[0]
            f.write("%d %d %d %d\n" % (r["request_id"], a["status"],
                                       a["reason"], a["ledger_seq"]))
            busy = busy + 1 if a["reason"] == 18 else 0
            if stop_after_busy and busy >= stop_after_busy:
                return

def check():
    """Every approval is still there; the fate of the unanswered ones."""
    held = 0
    bad = 0
    for line in open(log):
        rid, st, rs, seq = line.split()
        r = request_record("authorize", user, amount=100, merchant=7,
                           request_id=int(rid))
        ans = c.exchange([r])
        if ans is None:
            print("no answer to %s" % rid); return 2
        a = ans[0]
        if st == "0":
            if not (a["notes"] & 0x10) or a["status"] != 0 or a["ledger_seq"] != int(seq):
                print("LOST: %s approved with seq %s, now %s seq %d notes %#x" % (
                    rid, seq, a["reason_name"], a["ledger_seq"], a["notes"]))
                bad += 1
        if a["status"] == 0:
            held += 100
    print(held)
    return 1 if bad else 0

if cmd == "pay":
    pay(int(sys.argv[7]), int(sys.argv[8]))
elif cmd == "check":
    sys.exit(check())
PYEOF

py() { in_client python3 "$TMP/fclient.py" "$HERE" "$@"; }

answers() { # answers STATUS REASON: how many logged
	awk -v s="$1" -v r="$2" '$2 == s && $3 == r' "$LOGC" | wc -l
}

holds_of() { # the user's holds in authd now
	authctl snapshot save "$TMP/now.snap" >/dev/null || fail "snapshot save"
	"$AUTHDB" export "$TMP/now.snap" --users-csv "$TMP/now.csv" >/dev/null ||
		fail "authdb export"
	awk -F, -v u="$U" '$1 == u { print $4 }' "$TMP/now.csv"
}

stat_total() { # stat_total COUNTER: authctl stats --json total.COUNTER
	authctl --json stats | python3 -c "
import json, sys
t = json.load(sys.stdin)['total']
print(t.get('$1', t.get('counters', {}).get('$1')))"
}

# ---------------------------------------------------------------------------
mkdir -p "$FS"
mount -t tmpfs -o size=1m tmpfs "$FS" || fail "mount tmpfs"
lib_on_exit umount "$FS"
netns_up || fail "cannot create the namespaces"
keys_file "$KEYS" 1 1 "$K1"
printf '[policy]\nunknown-merchant-ok = 1\ntier.0.vel-min-n = 0\ntier.0.vel-day-n = 0\n' >"$TMP/policy.ini"
for t in 0 1 2 3 4 5 6 7; do
	printf 'tier.%d.vel-min-n = 0\ntier.%d.vel-day-n = 0\ntier.%d.vel-min = 0\ntier.%d.vel-day = 0\n' \
		$t $t $t $t >>"$TMP/policy.ini"
done
"$AUTHDB" gen --users 100 --seed 4 --now "$T0" --out "$TMP/base.snap" >/dev/null ||
	fail "authdb gen"
"$AUTHDB" export "$TMP/base.snap" --users-csv "$TMP/users.csv" >/dev/null
# the user with the largest limit, no self cap trouble at 1.00 a payment
U=$(sort -t, -k2 -n -r "$TMP/users.csv" | grep -v user_id | head -1 | cut -d, -f1)

start() {
	authd_start --keys "$KEYS" --clock "fixed:$T0" --policy "$TMP/policy.ini" \
		--snapshot "$TMP/base.snap" --journal "$J" || fail "authd did not start"
}

start
grep -q "ack sync" "$AUTHD_LOG" || fail "a journal did not make --ack sync the default"
py pay "$IP_D" "$K1" "$U" "$LOGC" 40 0
[ "$(answers 0 0)" = 40 ] || fail "40 payments: $(answers 0 0) approved"
ok "40 payments approved and acknowledged (sync: after their batch was durable)"

# --- the disk fills up ---------------------------------------------------------
dd if=/dev/zero of="$FS/filler" bs=4k 2>/dev/null
py pay "$IP_D" "$K1" "$U" "$LOGC" 400 5
BUSY=$(answers 1 18)
[ "$BUSY" -ge 5 ] || fail "no BUSY answers after the journal filled up ($BUSY)"
# after the first non-approval, never an approval again
awk '$2 != "0" { seen = 1 } seen && $2 == "0" { bad = 1 } END { exit bad }' "$LOGC" ||
	fail "an approval after the journal failed: $(cat "$LOGC" | tail -20)"
grep -q "ledger: STOPPED: journal: $J/seg-[0-9]*\.jnl: write of [0-9]* records at offset [0-9]*: No space left on device" \
	"$AUTHD_LOG" || fail "the log does not say what failed: $(grep ledger "$AUTHD_LOG")"
APPROVED=$(answers 0 0)
LOST=$(awk '$2 == "-"' "$LOGC" | wc -l)
[ "$(stat_total journal_busy)" -ge 5 ] || fail "journal_busy not counted"
STATE=$(authctl --json stats | python3 -c "
import json, sys
l = json.load(sys.stdin)['ledger']
print(l['state'], '|', l['failure'])")
grep -q "^failed | journal: $J/seg-[0-9]*\.jnl: write of .*No space left on device" <<<"$STATE" ||
	fail "authctl stats does not show the failure: $STATE"
[ "$(stat_total held_dropped)" -ge 1 ] || [ "$LOST" = 0 ] ||
	fail "an answer was held and not counted as dropped"
ok "disk full: $((APPROVED - 40)) more approved, $LOST never answered, then BUSY only ($BUSY); log says: $(grep -o 'STOPPED: .*device' "$AUTHD_LOG" | sed 's/ at offset.*//')"

# no answer is released afterwards, even to a duplicate of a durable one
authd_stop_ok "after the failure"
ok "authd stops cleanly after the failure"

# --- space back, restart: everything acknowledged is there --------------------
rm -f "$FS/filler"
start
grep "recovery:" "$AUTHD_LOG" | sed 's/^/    /'
OUT=$(py check "$IP_D" "$K1" "$U" "$LOGC") || fail "after the restart: $OUT"
HELD=$(tail -1 <<<"$OUT")
[ "$(holds_of)" = "$HELD" ] || fail "holds $(holds_of) fen, the answers add up to $HELD"
"$AUTHJOURNAL" verify "$J" >/dev/null || fail "the journal does not verify"
ok "restart: all $APPROVED acknowledged approvals there (DUPLICATE, same seq), holds $HELD fen == the answers"
: >"$TMP/more.log"
LOGC=$TMP/more.log py pay "$IP_D" "$K1" "$U" "$TMP/more.log" 5 0
[ "$(awk '$2 == 0' "$TMP/more.log" | wc -l)" = 5 ] || fail "payments after the restart"
ok "new payments approved again"
authd_stop
echo "PASS: test_fsync_fail"
