#!/usr/bin/env bash
# test_clock_jump.sh AUTHD AUTHCTL AUTHDB CLOCKSHIM - the wall clock steps
# forward and back while authd runs: holds, months and cooling-off stay
# right, because the engine reads the wall clock once at start and measures
# time with the TSC after that (dataplane/clock.c).
#
# authd runs with --clock real on net_af_packet in a network namespace,
# under tests/integration/clockshim.c (LD_PRELOAD): the wall clock authd's
# libc reports (clock_gettime REALTIME, gettimeofday, time) is the real one
# plus an offset the test writes to a file; monotonic clocks and the TSC are
# untouched, as they are by an NTP step. The client is authclient.py.
#  1. before: an authorization (a hold until now + 7 days), a cash loan,
#     and a second cash loan refused COOLING_OFF (1 day);
#  2. the wall clock steps 40 days forward (authd's own snapshot header,
#     stamped with time(), shows it did): `authctl clock show` still says
#     the real time; a new hold expires 7 days from the real time, not 47;
#     the first hold is still there (no expiry ran), the cash loan is
#     still cooling off, the month's spend still counts every approval;
#  3. the wall clock steps 40 days back: the same, hold expiries only grow.
# Time comparisons allow 5 s (they compare the engine's clock with the
# test's: not a performance threshold).
# Not covered here: a wall clock that is wrong when authd starts is
# believed (docs/reliability.md).
# Needs root (ip netns): exit 77 (skipped) without.
set -u

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
lib_args "AUTHD AUTHCTL AUTHDB SHIM" "$@"
lib_need_root
[ -f "$SHIM" ] || { echo "FAIL: $SHIM is missing" >&2; exit 1; }
lib_init clk

KEY=$(lib_random_key)
OFF=$TMP/offset
STEP=$((40 * 86400))
U=77

# A datagram from the client; the answer's fields as "reason hold_expires".
pay() { # pay PRODUCT AMOUNT
	in_client python3 - "$HERE" "$IP_D" "$KEY" "$U" "$@" <<'PY'
import sys
sys.path.insert(0, sys.argv[1])
from authclient import Client
server, key, user, product, amount = sys.argv[2:7]
c = Client(server, gateway=1, key_id=1, key=key, timeout=3)
a = c.authorize(user=int(user), amount=amount, merchant=7, product=product)
print(a["reason_name"], a["hold_expires"]) if a else sys.exit("no answer")
PY
}
user_field() { # user_field KEY...
	authctl --json user show "$U" | python3 -c '
import json, sys
v = json.load(sys.stdin)["user"]
for k in sys.argv[1:]:
    v = v[k]
print(v)' "$@"
}
engine_now() { authctl --json clock show | python3 -c 'import json,sys; print(json.load(sys.stdin)["now_s"])'; }
near() { # near A B: |A - B| <= 5
	[ $(($1 - $2)) -le 5 ] && [ $(($2 - $1)) -le 5 ]
}
# The wall clock authd itself reads, seen in its snapshot header (time()).
authd_wall() {
	authctl snapshot save "$TMP/w.snap" >/dev/null || fail "snapshot save"
	"$AUTHDB" info "$TMP/w.snap" | sed -n 's/.*created .*(\([0-9]*\)).*/\1/p'
}

keys_file "$TMP/keys.ini" 1 1 "$KEY"
printf '[policy]\nunknown-merchant-ok = yes\n' >"$TMP/policy.ini"
echo 0 >"$OFF"
netns_up || fail "cannot create the namespaces"
LD_PRELOAD=$SHIM CLOCKSHIM_FILE=$OFF authd_start --keys "$TMP/keys.ini" \
	--clock real --policy "$TMP/policy.ini" || fail "authd did not start"
authctl user add "$U" --limit 10000 --tier 7 >/dev/null || fail "user add"
W=$(authd_wall)
near "$W" "$(date +%s)" || fail "authd's wall clock $W before any step, real $(date +%s)"

# --- 1. before ----------------------------------------------------------------
read -r R1 H1 <<<"$(pay pl 100.00)"
NOW=$(date +%s)
[ "$R1" = APPROVED ] && near "$H1" $((NOW + 7 * 86400)) ||
	fail "before: $R1, hold until $H1, want about $((NOW + 7 * 86400))"
read -r RC1 _ <<<"$(pay cash 10.00)"
read -r RC2 _ <<<"$(pay cash 10.00)"
[ "$RC1" = APPROVED ] && [ "$RC2" = COOLING_OFF ] || fail "cash loans: $RC1, $RC2"
M1=$(user_field spend month_spend_fen)
ok "before: hold until $(date -u -d @"$H1" +%FT%TZ) (now + 7 d), cash loan then COOLING_OFF, month spend $M1"

# --- 2. forward -----------------------------------------------------------------
step() { # step OFFSET LABEL
	local w e real
	echo "$1" >"$OFF"
	w=$(authd_wall)
	real=$(date +%s)
	near "$w" $((real + $1)) || fail "$2: authd's wall clock $w, want $((real + $1)) (the shim)"
	e=$(engine_now)
	near "$e" "$real" || fail "$2: the engine's clock $e followed the wall clock (real $real)"
	note "$2: authd's wall clock $(date -u -d @"$w" +%FT%TZ), engine $(date -u -d @"$e" +%FT%TZ), real $(date -u -d @"$real" +%FT%TZ)"
}
check_after() { # check_after LABEL PREV_HOLD_EXPIRES HOLDS_FEN MONTH_WANT
	local r h now
	read -r r h <<<"$(pay pl 100.00)"
	now=$(date +%s)
	[ "$r" = APPROVED ] && near "$h" $((now + 7 * 86400)) && [ "$h" -ge "$2" ] ||
		fail "$1: $r, hold until $h (previous $2), want about $((now + 7 * 86400))"
	read -r rc _ <<<"$(pay cash 10.00)"
	[ "$rc" = COOLING_OFF ] || fail "$1: a cash loan answered $rc, still cooling off"
	[ "$(user_field holds_fen)" = "$3" ] || fail "$1: holds $(user_field holds_fen), want $3 (a hold expired?)"
	M=$(user_field spend month_spend_fen)
	[ "$M" = "$4" ] || fail "$1: month spend $M, want $4"
	EXPIRED=$(authctl --json stats | python3 -c 'import json,sys; print(json.load(sys.stdin)["ledger"]["expired"])')
	[ "$EXPIRED" = 0 ] || fail "$1: $EXPIRED holds expired"
	LAST_HOLD=$h
	ok "$1: new hold until $(date -u -d @"$h" +%FT%TZ) (real now + 7 d), earlier holds kept ($3 fen), cash loan COOLING_OFF, month spend $M, no expiry"
}
step "$STEP" "+40 days"
check_after "40 days forward" "$H1" 20000 $((M1 + 10000))
step "-$STEP" "-40 days"
check_after "40 days back" "$LAST_HOLD" 30000 $((M1 + 20000))
step 0 "back to real"

authd_stop_ok
echo "PASS: test_clock_jump"
