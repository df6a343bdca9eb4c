#!/usr/bin/env bash
# test_risk.sh AUTHD AUTHCTL - the risk worker end to end.
#
# authd runs --risk on in a network namespace on net_af_packet with a fixed
# clock; a real kernel UDP client (authclient.py) in a second namespace
# replays scripted cash-out patterns, moving the clock with authctl clock
# set before each payment, and checks every answer (reason, risk_score):
#
#  A. cash-out merchant: unrelated users pay 2,900 of their 3,000 yuan at
#     merchant 7001, an ordinary payment between every two. The answers
#     show its score rise to 700 after the 4th such user; it is blocked at
#     the 8th (payment 11): every later payment there is MERCHANT_BLOCKED
#     with risk 1000;
#  B. a burst right after a limit raise (2,000 -> 10,000 yuan; 1,500 yuan
#     every 5 s): frozen at the 4th payment after the raise, then
#     USER_FROZEN with risk 1000;
#  C. a fraud crowd: 4 users of one device each pay their whole limit:
#     all 4 frozen;
#  D. ordinary payments by other users: approved, risk 0, no verdict.
# Then the verdict log lines and the worker's counters at exit. The
# verdicts are journaled (--journal): authd restarted from its journal
# still has the merchant blocked. Last, authd --risk shadow on the same
# script A: every payment approved, the verdicts only logged.
#
# Needs root (ip netns). Exit 77 (ctest SKIP) without it.
set -u

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
lib_args "AUTHD AUTHCTL" "$@"
lib_need_root
lib_init risk

T0=1764057600 # 2025-11-25T08:00:00Z, a multiple of 300 s
K1=000102030405060708090a0b0c0d0e0f
KEYS=$TMP/keys.ini
MX=7001       # the colluding merchant
F0=30000      # fraud users 30001..30012, 3,000 yuan
O0=31000      # ordinary users 31001..31012, 10,000 yuan
V=32001       # the user whose limit is raised
C0=33000      # crowd users 33001..33004 on device 0xc0ffee

# drive < STEPS: "clock T" (authctl clock set T) or "pay USER YUAN MERCHANT
# DEVICE" (one authorization; prints "REASON RISK_SCORE"). The risk worker
# acts asynchronously, and a verdict is meant for the next payment: after
# each payment it waits until the worker has consumed that payment's
# decision record (`authctl risk show`: counters.consumed; it applies and
# logs a record's verdicts before it counts it), however slow the machine
# (at most 30 s, then RISK_TIMEOUT).
drive() {
	in_client python3 - "$IP_D" "$K1" "$AUTHCTL" "$AUTHD_SOCK" "$HERE" <<'EOF'
import json, subprocess, sys, time
server, key, authctl, sock, here = sys.argv[1:6]
sys.path.insert(0, here)
from authclient import Client
c = Client(server, gateway=1, key_id=1, key=bytes.fromhex(key), timeout=5.0)

def consumed():
    out = subprocess.run([authctl, "-s", sock, "--json", "risk", "show"],
                         check=True, stdout=subprocess.PIPE).stdout
    return json.loads(out)["counters"]["consumed"]

want = consumed()
for line in open("/dev/fd/3"):
    w = line.split()
    if not w:
        continue
    if w[0] == "clock":
        subprocess.run([authctl, "-s", sock, "clock", "set", w[1]], check=True,
                       stdout=subprocess.DEVNULL)
    elif w[0] == "pay":
        a = c.authorize(user=int(w[1]), amount=w[2], merchant=int(w[3]),
                        device=int(w[4], 0))
        if a is None:
            print("NO_ANSWER -1", flush=True)
            continue
        want += 1
        end = time.monotonic() + 30
        while consumed() < want:
            if time.monotonic() > end:
                print("RISK_TIMEOUT -1", flush=True)
                sys.exit(1)
            time.sleep(0.005)
        print(a["reason_name"], a["risk_score"], flush=True)
EOF
}

# The world of script A: merchant 7001, fraud and ordinary users.
world_a() {
	authctl merchant set $MX --mcc 5999 >/dev/null || fail "merchant set $MX"
	for i in $(seq 1 12); do
		authctl user add $((F0 + i)) --limit 3000 --tier 2 >/dev/null || fail "user add"
		authctl user add $((O0 + i)) --limit 10000 --tier 2 >/dev/null || fail "user add"
	done
}

# Script A: F F O repeated, one payment every 20 s from T0.
script_a() {
	local p f=0 o=0
	for p in $(seq 0 14); do
		echo "clock $((T0 + 20 * p))"
		if [ $((p % 3)) = 2 ]; then
			o=$((o + 1))
			echo "pay $((O0 + o)) 123.45 $MX $((0xa000 + o))"
		else
			f=$((f + 1))
			echo "pay $((F0 + f)) 2900 $MX $((0xf000 + f))"
		fi
	done
}

netns_up || fail "cannot create the namespaces"
keys_file "$KEYS" 1 1 "$K1"
authd_start --keys "$KEYS" --clock "fixed:$T0" --risk on --journal "$TMP/j" ||
	fail "authd did not start"
grep -q "risk: on mode" "$AUTHD_LOG" || fail "no 'risk: on mode' line at start"
ok "authd up, risk on"

# --- A. cash-out merchant -----------------------------------------------------
world_a
GOT=$(script_a | drive 3<&0 | tr '\n' ',')
WANT="APPROVED 0,APPROVED 0,APPROVED 0,APPROVED 0,APPROVED 0,APPROVED 700,"
WANT+="APPROVED 700,APPROVED 700,APPROVED 700,APPROVED 700,APPROVED 700,"
WANT+="MERCHANT_BLOCKED 1000,MERCHANT_BLOCKED 1000,MERCHANT_BLOCKED 1000,"
WANT+="MERCHANT_BLOCKED 1000,"
eq "script A answers" "$GOT" "$WANT"
M=$(authctl --json merchant show $MX) || fail "merchant show"
eq "merchant $MX blocked" "$(jget "$M" merchant blocked)" true
eq "merchant $MX risk" "$(jget "$M" merchant risk)" 1000
ok "A: merchant $MX scored 700 after 4 cash-out users, blocked after 8 (payment 11 of 15)"

# --- B. burst right after a limit raise -----------------------------------------
TB=$((T0 + 4200))
authctl user add $V --limit 2000 --tier 2 >/dev/null || fail "user add $V"
for m in $(seq 7002 7008); do
	authctl merchant set "$m" --mcc 5411 >/dev/null || fail "merchant set $m"
done
GOT=$(printf 'clock %s\npay %s 35.50 7002 0xbeef\n' "$TB" "$V" | drive 3<&0)
eq "B: first payment" "$GOT" "APPROVED 0"
authctl user set $V --limit 10000 >/dev/null || fail "user set --limit"
GOT=$(for p in 1 2 3 4 5 6; do
	echo "clock $((TB + 5 + 5 * p))"
	echo "pay $V 1500 $((7002 + p)) 0xbeef"
done | drive 3<&0 | tr '\n' ',')
eq "B: answers after the raise" "$GOT" \
	"APPROVED 0,APPROVED 0,APPROVED 0,APPROVED 0,USER_FROZEN 1000,USER_FROZEN 1000,"
U=$(authctl --json user show $V) || fail "user show"
eq "user $V frozen" "$(jget "$U" user frozen)" true
eq "user $V risk" "$(jget "$U" user risk)" 1000
ok "B: limit raised 2000 -> 10000, 1500 every 5 s: frozen at the 4th payment after the raise"

# --- C. fraud crowd on one device --------------------------------------------------
TC=$((T0 + 8400))
for i in 1 2 3 4; do
	authctl user add $((C0 + i)) --limit 3000 --tier 2 >/dev/null || fail "user add"
	authctl merchant set $((7010 + i)) --mcc 5732 >/dev/null || fail "merchant set"
done
GOT=$(for i in 1 2 3 4; do
	echo "clock $((TC + 60 * i))"
	echo "pay $((C0 + i)) 3000 $((7010 + i)) 0xc0ffee"
done; echo "clock $((TC + 300))"; for i in 1 2 3 4; do
	echo "pay $((C0 + i)) 10 $((7010 + i)) 0xc0ffee"
done)
GOT=$(echo "$GOT" | drive 3<&0 | tr '\n' ',')
eq "C: answers" "$GOT" "APPROVED 0,APPROVED 0,APPROVED 0,APPROVED 0,USER_FROZEN 1000,USER_FROZEN 1000,USER_FROZEN 1000,USER_FROZEN 1000,"
ok "C: 4 users of one device paying their whole limit: all 4 frozen"

# --- D. ordinary payments: no verdict ---------------------------------------------
TD=$((T0 + 12000))
for m in $(seq 7020 7025); do
	authctl merchant set "$m" --mcc 5812 >/dev/null || fail "merchant set $m"
done
GOT=$(for r in 0 1 2; do
	echo "clock $((TD + 70 * r))"
	for i in 7 8 9 10 11 12; do
		case $r in 0) a=88.00 ;; 1) a=123.45 ;; *) a=45.60 ;; esac
		echo "pay $((O0 + i)) $a $((7013 + i)) $((0xd000 + i))"
	done
done | drive 3<&0 | sort | uniq -c | tr -s ' ')
eq "D: answers" "$GOT" " 18 APPROVED 0"
VERDICTS=$(grep -c "risk: verdict" "$AUTHD_LOG")
for i in 7 8 9 10 11 12; do
	grep -q "risk: .*verdict .* user $((O0 + i)) " "$AUTHD_LOG" &&
		fail "a verdict about ordinary user $((O0 + i))"
done
ok "D: 18 ordinary payments by 6 users: approved, risk 0, no verdict"

# --- the log: one line per verdict, with its evidence ---------------------------------
grep -q "risk: verdict merchant-score merchant $MX by merchant, score >= 700: 4 unrelated users" \
	"$AUTHD_LOG" || fail "no merchant-score line"
grep -q "risk: verdict block-merchant merchant $MX by merchant, score >= 1000: 8 unrelated users with near-limit round payments; 8 of 11 approved payments in the hour -> applied" \
	"$AUTHD_LOG" || fail "no block-merchant line"
grep -q "risk: verdict freeze-user user $V by anomaly, score >= 1000: points 3 " \
	"$AUTHD_LOG" || fail "no freeze line for $V"
eq "crowd freeze lines" "$(grep -c "risk: verdict freeze-user user 3300[1-4] by crowd" "$AUTHD_LOG")" 4
eq "verdict lines" "$VERDICTS" 7
ok "log: 7 verdict lines (merchant score, block, anomaly freeze, 4 crowd freezes)"

# authctl risk show, once the control socket serves it
if R=$(authctl --json risk show 2>/dev/null); then
	eq "risk show mode" "$(jget "$R" mode)" on
	eq "risk show verdicts" "$(jget "$R" counters verdicts)" 7
	eq "risk show block-merchant" "$(jget "$R" counters by_kind block-merchant)" 1
	ok "authctl risk show: mode on, 7 verdicts"
else
	note "authctl risk show not served yet (ctl.c: dp_risk_json)"
fi

authd_stop_ok
SUMMARY=$(grep "risk: consumed" "$AUTHD_LOG") || fail "no risk summary at exit"
case "$SUMMARY" in
*" dropped 0 "*"verdicts 7 (freeze-user 5 lower-limit 0 user-score 0 block-merchant 1 merchant-score 1) applied 7 unchanged 0 failed 0 shadow 0 "*) ;;
*) fail "summary: $SUMMARY" ;;
esac
ok "at exit: $SUMMARY"

# --- the verdicts are in the journal: a restart recovers them --------------------
cp "$AUTHD_LOG" "$TMP/first.log"
authd_start --keys "$KEYS" --clock "fixed:$T0" --journal "$TMP/j" ||
	fail "authd did not restart from its journal"
M=$(authctl --json merchant show $MX) || fail "merchant show after the restart"
eq "merchant $MX blocked after the restart" "$(jget "$M" merchant blocked)" true
eq "merchant $MX risk after the restart" "$(jget "$M" merchant risk)" 1000
if U=$(authctl --json user show $V 2>/dev/null); then
	eq "user $V frozen after the restart" "$(jget "$U" user frozen)" true
	eq "user $V risk after the restart" "$(jget "$U" user risk)" 1000
	ok "restart from the journal: merchant $MX blocked, user $V frozen"
else
	ok "restart from the journal: merchant $MX blocked (users added by authctl are not journaled yet)"
fi
authd_stop_ok "after the restart"

# --- shadow: the same script A logs and acts on nothing ----------------------------
authd_start --keys "$KEYS" --clock "fixed:$T0" --risk shadow ||
	fail "authd --risk shadow did not start"
world_a
GOT=$(script_a | drive 3<&0 | sort | uniq -c | tr -s ' ')
eq "shadow: script A answers" "$GOT" " 15 APPROVED 0"
eq "shadow: merchant $MX" "$(jget "$(authctl --json merchant show $MX)" merchant blocked)" false
grep -q "risk: shadow verdict block-merchant merchant $MX by merchant.* -> not applied (shadow)" \
	"$AUTHD_LOG" || fail "no shadow verdict line"
authd_stop
grep -q "risk: consumed 15 dropped 0 counted 15 verdicts 2 .* applied 0 unchanged 0 failed 0 shadow 2 " \
	"$AUTHD_LOG" || fail "shadow summary: $(grep "risk: consumed" "$AUTHD_LOG")"
ok "shadow: 15 payments approved, 2 verdicts logged, none applied"
echo "PASS"
