#!/usr/bin/env bash
# test_authctl.sh AUTHD AUTHCTL [AUTHDB] - the control plane end to end.
#
# authd runs in a network namespace on net_af_packet with a fixed clock and
# a policy file; a real kernel UDP client (authclient.py) in a second
# namespace pays through it while authctl changes users, merchants, policy,
# keys and the clock. Every change is checked through the next payment's
# answer, with exact values. Invalid commands must fail with their exact
# message and change nothing. Then: socket mode, counters (authctl stats
# and DPDK telemetry) against what was sent, snapshot save and a restart
# from it, and start-up refusals (bad policy file, a non-socket at the
# control path).
#
# Needs root (ip netns). Exit 77 (ctest SKIP) without it.
set -u

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
lib_args "AUTHD AUTHCTL [AUTHDB]" "$@"
lib_need_root
lib_init ctl
CLIENT=$HERE/authclient.py
lib_prefix XPREFIX x   # start-up refusals (net_null, no namespace)

T0=1764057600 # 2025-11-25T08:00:00Z
K1=000102030405060708090a0b0c0d0e0f
KEYS=$TMP/keys.ini
U=1001       # the user most steps pay with
M=7          # merchant
N_ANS=0      # datagrams answered, as the client saw them
N_DROP=0     # datagrams sent that must be dropped (unknown key id)
declare -A REASONS=()

# pay ARGS...: one datagram with key id $KID / key $KEY; the answer in $ANS.
KID=1
KEY=$K1
pay() {
	ANS=$(in_client python3 "$CLIENT" --server "$IP_D" --gateway 1 --key-id "$KID" \
		--key "$KEY" --timeout 3 --json "$@") || fail "no answer to: $*"
	N_ANS=$((N_ANS + 1))
	local r
	r=$(jget "$ANS" reason_name)
	REASONS[$r]=$(( ${REASONS[$r]:-0} + 1 ))
}

# expect REASON ARGS...: pay and check the reason.
expect() {
	local want=$1
	shift
	pay "$@"
	eq "$* -> reason" "$(jget "$ANS" reason_name)" "$want"
}

dropped() { # the datagram must get no answer
	in_client python3 "$CLIENT" --server "$IP_D" --gateway 1 --key-id "$KID" \
		--key "$KEY" --timeout 0.5 --expect-drop "$@" || fail "answered, expected a drop: $*"
	N_DROP=$((N_DROP + 1))
}

# ctl_err WANT_STATUS WANT_STDERR ARGS...: authctl must fail with exactly that.
ctl_err() {
	local want_rc=$1 want=$2 out rc
	shift 2
	out=$(authctl "$@" 2>&1 >/dev/null)
	rc=$?
	eq "authctl $* status" "$rc" "$want_rc"
	eq "authctl $* message" "$out" "$want"
}

# ---------------------------------------------------------------------------
netns_up || fail "cannot create the namespaces"
keys_file "$KEYS" 1 1 "$K1"
cat >"$TMP/policy.ini" <<EOF
; test policy: holds last one day
[policy]
hold-ttl = 1d
retain = 2d
EOF
SNAP_ARGS=()
if [ -n "$AUTHDB" ] && [ -x "$AUTHDB" ]; then
	"$AUTHDB" gen --users 2000 --seed 3 --now "$T0" --out "$TMP/base.snap" >/dev/null ||
		fail "authdb gen"
	SNAP_ARGS=(--snapshot "$TMP/base.snap")
	ok "authdb gen: 2000 users"
fi
authd_start --keys "$KEYS" --clock "fixed:$T0" --policy "$TMP/policy.ini" \
	"${SNAP_ARGS[@]}" || fail "authd did not start"
ok "authd up on net_af_packet in $NS_D"

eq "socket mode" "$(stat -c %a "$AUTHD_SOCK")" 600
ok "control socket mode 0600"

authctl user add $U --limit 5000 --tier 2 >/dev/null || fail "user add"
authctl merchant set $M --mcc 5411 >/dev/null || fail "merchant set"
ok "user $U and merchant $M added"

# --- the policy file was loaded: holds last 1d -------------------------------
expect APPROVED authorize --user $U --amount 100.00 --merchant $M
eq "available" "$(jget "$ANS" available)" 490000
eq "hold_expires (policy file hold-ttl=1d)" "$(jget "$ANS" hold_expires)" $((T0 + 86400))
ok "authorize 100.00 approved, available 4900.00, hold for 1d (--policy)"

# --- limit ------------------------------------------------------------------
authctl user set $U --limit 8000 >/dev/null || fail "user set --limit"
expect APPROVED authorize --user $U --amount 50 --merchant $M
eq "available after the raise" "$(jget "$ANS" available)" 785000
S=$(authctl --json user show $U)
eq "cool_until after a raise (cool-raise 3d)" "$(jget "$S" user cool_until_s)" $((T0 + 3 * 86400))
ok "limit 8000: next answer says available 7850.00; cooling-off starts"

# --- freeze -------------------------------------------------------------------
authctl user freeze $U >/dev/null || fail "freeze"
expect USER_FROZEN authorize --user $U --amount 10 --merchant $M
authctl user unfreeze $U >/dev/null || fail "unfreeze"
expect APPROVED authorize --user $U --amount 10 --merchant $M
ok "freeze -> USER_FROZEN, unfreeze -> APPROVED"

# --- merchant block -----------------------------------------------------------
authctl merchant block $M >/dev/null || fail "block"
expect MERCHANT_BLOCKED authorize --user $U --amount 10 --merchant $M
eq "merchant show" "$(jget "$(authctl --json merchant show $M)" merchant blocked)" true
authctl merchant unblock $M >/dev/null || fail "unblock"
expect APPROVED authorize --user $U --amount 10 --merchant $M
ok "merchant block -> MERCHANT_BLOCKED, unblock -> APPROVED"

# --- policy: velocity -----------------------------------------------------------
# The clock is fixed: move to a fresh minute so the window starts empty.
authctl clock set $((T0 + 60)) >/dev/null || fail "clock set"
authctl policy set tier.2.vel-min-n=1 >/dev/null || fail "policy set"
eq "policy show" "$(jget "$(authctl --json policy show)" policy tier.2.vel-min-n)" 1
expect APPROVED authorize --user $U --amount 10 --merchant $M
expect RISK_VELOCITY authorize --user $U --amount 10 --merchant $M
authctl policy set tier.2.vel-min-n=10 >/dev/null || fail "policy set back"
ok "policy tier.2.vel-min-n=1: second payment in the minute RISK_VELOCITY"

# --- temporary quota (user extension) ----------------------------------------
authctl user add 1002 --limit 100 --tier 2 >/dev/null || fail "user add 1002"
authctl user set 1002 --temp-quota 50 --until 2025-11-25T09:00:00Z >/dev/null ||
	fail "temp quota"
expect APPROVED authorize --user 1002 --amount 120 --merchant $M
eq "available with the quota" "$(jget "$ANS" available)" 3000
eq "notes" "$(jget "$ANS" notes_names)" '["TEMP_QUOTA_USED"]'
authctl user set 1002 --temp-quota 0 --until 0 >/dev/null || fail "temp quota off"
S=$(authctl --json user show 1002)
eq "flags without the quota" "$(jget "$S" user flags)" '[]'
eq "available without the quota" "$(jget "$S" user available_fen)" -2000
ok "temporary quota: TEMP_QUOTA_USED; removed again"

# --- user ids past 2^63 (they are unsigned 64-bit) ---------------------------------
# The control socket once sent them as signed JSON integers: user -1.
BIG=18446744073709551615
authctl user add $BIG --limit 100 >/dev/null || fail "user add $BIG"
eq "user show id (JSON)" "$(jget "$(authctl --json user show $BIG)" user id)" "$BIG"
S=$(authctl user show $BIG | head -1)
case "$S" in "user $BIG "*) ;; *) fail "user show $BIG: $S" ;; esac
eq "freeze answer" "$(jget "$(authctl --json user freeze $BIG)" user)" "$BIG"
eq "freeze text" "$(authctl user unfreeze $BIG)" "user $BIG unfrozen"
expect APPROVED authorize --user $BIG --amount 10 --merchant $M
eq "user_id echoed" "$(jget "$ANS" user_id)" "$BIG"
ok "user id 2^64-1: $BIG in text and JSON, decided on the wire"

# --- authctl stats: the cost per packet is of the last second with traffic ----------
# It once averaged since start, where the first cold packets dominate. A
# window closes at the first burst at least 1 s after the last one closed:
# after two pauses of 1.5 s the last window holds none of the earlier frames.
sleep 1.5
expect APPROVED authorize --user $U --amount 1 --merchant $M
sleep 1.5
expect APPROVED authorize --user $U --amount 1 --merchant $M
T=$(authctl --json stats)
WIN=$(jget "$T" total cycles_per_pkt_window_pkts)
BUSY=$(jget "$T" total counters busy_pkts)
[ "$WIN" -ge 1 ] && [ "$WIN" -lt "$BUSY" ] ||
	fail "cost window of $WIN frames, $BUSY busy frames in all"
authctl stats | grep -q 'per packet: .*last second with traffic' ||
	fail "authctl stats: $(authctl stats | grep 'per packet')"
ok "stats: cycles per packet over the last window ($WIN of $BUSY frames)"

# --- keys rotate ----------------------------------------------------------------
R=$(authctl --json keys rotate 1) || fail "keys rotate"
eq "new key id" "$(jget "$R" key_id)" 2
K2=$(jget "$R" key)
R=$(authctl --json keys rotate 1) || fail "keys rotate 2"
eq "newer key id" "$(jget "$R" key_id)" 3
K3=$(jget "$R" key)
KID=3 KEY=$K3 expect APPROVED authorize --user $U --amount 1 --merchant $M
KID=2 KEY=$K2 expect APPROVED authorize --user $U --amount 1 --merchant $M
KID=1 KEY=$K1 dropped authorize --user $U --amount 1 --merchant $M
eq "keys file mode" "$(stat -c %a "$KEYS")" 600
grep -q "^key.2 = $K2\$" "$KEYS" && grep -q "^key.3 = $K3\$" "$KEYS" &&
	! grep -q "^key.1 " "$KEYS" || fail "keys file: $(sed 's/= .*/= .../' "$KEYS")"
S=$(authctl keys show)
case "$S" in *"$K1"* | *"$K2"* | *"$K3"*) fail "keys show shows key material" ;; esac
eq "keys show" "$(jget "$(authctl --json keys show)" gateways 0 key_ids)" '[2, 3]'
ok "keys rotate twice: key ids 3 and 2 accepted, 1 dropped; file 0600 with keys 2, 3"
KID=3
KEY=$K3

# --- hold expiry -------------------------------------------------------------------
expect APPROVED authorize --user $U --amount 20 --merchant $M
R1=$(jget "$ANS" request_id)
H=$(jget "$ANS" hold_expires)
expect APPROVED authorize --user $U --amount 20 --merchant $M
R2=$(jget "$ANS" request_id)
expect APPROVED capture --user $U --ref "$R2" --amount 15 --merchant $M
authctl clock set "$H" >/dev/null || fail "clock set past expiry"
eq "clock" "$(jget "$(authctl --json clock show)" now_s)" "$H"
expect BAD_STATE capture --user $U --ref "$R1" --amount 20 --merchant $M
ok "capture before expiry approved; clock set to hold expiry -> capture BAD_STATE"

# --- invalid commands change nothing -------------------------------------------------
BEFORE=$(authctl --json user show $U)
PBEFORE=$(authctl --json policy show)
ctl_err 1 "authctl: user 999999: unknown user" user set 999999 --limit 100
ctl_err 2 "authctl: user set: --limit 12.345: more than 2 decimal places (the smallest unit is 1 fen = 0.01 yuan)" \
	user set $U --limit 12.345
ctl_err 2 "authctl: user set: --limit -5: negative amount" user set $U --limit -5
ctl_err 2 "authctl: policy set: unknown policy key 'no-such-key' (authctl help policy lists them)" \
	policy set tier.2.vel-min-n=3 no-such-key=1
ctl_err 2 "authctl: policy set: tz=+15:00: offset beyond +-14:00" policy set tz=+15:00
ctl_err 2 "authctl: user set: --temp-quota and --until go together" user set $U --temp-quota 5
# The same through the daemon's own validation (authctl --raw skips authctl's).
raw() { printf '{"v":1,"cmd":"%s","args":[%s],"opts":{%s}}' "$1" "$2" "${3:-}"; }
ctl_err 1 "authctl: user set: --limit 12.345: more than 2 decimal places (the smallest unit is 1 fen = 0.01 yuan)" \
	--raw "$(raw "user set" "\"$U\"" '"limit":"12.345","tier":"3"')"
ctl_err 1 "authctl: user set: --limit -5: negative amount" \
	--raw "$(raw "user set" "\"$U\"" '"tier":"3","limit":"-5"')"
ctl_err 1 "authctl: policy set: unknown policy key 'no-such-key' (authctl help policy lists them)" \
	--raw "$(raw "policy set" '"tier.2.vel-min-n=3","no-such-key=1"')"
ctl_err 1 "authctl: policy set: tz=+15:00: offset beyond +-14:00" \
	--raw "$(raw "policy set" '"tz=+15:00"')"
ctl_err 1 "authctl: policy set: ids must be kept at least as long as holds (retain >= hold ttl)" \
	policy set hold-ttl=30d
ctl_err 1 "authctl: user set: unknown option --color (see authctl help user)" \
	--raw "$(raw "user set" "\"$U\"" '"color":"red"')"
ctl_err 1 "authctl: unknown command 'user delete' (authctl --help lists them)" \
	--raw "$(raw "user delete" "\"$U\"")"
ctl_err 1 "authctl: funder 0 is the company's own book and cannot be deleted" funder del 0
ctl_err 1 "authctl: merchant 4242: unknown merchant" merchant unblock 4242
ctl_err 1 "authctl: user $U: already exists (use user set)" user add $U --limit 1
eq "user show after invalid commands" "$(authctl --json user show $U)" "$BEFORE"
eq "policy show after invalid commands" "$(authctl --json policy show)" "$PBEFORE"
ok "invalid commands: exact messages (authctl and daemon), nothing changed"

# --- funders ---------------------------------------------------------------------------
authctl funder set 9 --quota 1000 --share 50 --products pl >/dev/null || fail "funder set"
F=$(authctl --json funder list)
N=$(python3 -c 'import json,sys; print(len(json.loads(sys.argv[1])["funders"]))' "$F")
eq "funder 9" "$(jget "$F" funders $((N - 1)) id)/$(jget "$F" funders $((N - 1)) products)" 9/pl
authctl funder del 9 >/dev/null || fail "funder del"
ok "funder set / del"

# --- counters: authctl stats and telemetry against what was sent ------------------------
S=$(authctl --json stats)
eq "stats dgrams" "$(jget "$S" total counters dgrams)" "$N_ANS"
eq "stats records" "$(jget "$S" total counters records)" "$N_ANS"
eq "stats codec drops: key" "$(jget "$S" total drops key)" "$N_DROP"
eq "stats nic proto" "$(jget "$S" total nic proto)" $((N_ANS + N_DROP))
for r in "${!REASONS[@]}"; do
	eq "stats reason $r" "$(jget "$S" "total" "reasons" "$r")" "${REASONS[$r]}"
done
A=$(( ${REASONS[APPROVED]:-0} ))
eq "stats approved" "$(jget "$S" total status approved)" "$A"
eq "stats declined" "$(jget "$S" total status declined)" $((N_ANS - A))
eq "stats per lcore" "$(jget "$S" lcores 0 counters dgrams)" "$N_ANS"
ok "authctl stats: $N_ANS datagrams, $N_DROP dropped, reasons match"

TEL=$(python3 - "/var/run/dpdk/$AUTHD_PREFIX/dpdk_telemetry.v2" <<'EOF'
import json, socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.connect(sys.argv[1])
json.loads(s.recv(16384))              # the greeting: version, pid, max length
out = {}
for cmd in ("/authd/stats", "/authd/lcore,0", "/authd/drops", "/authd/reasons", "/"):
    s.send(cmd.encode())
    out.update(json.loads(s.recv(65536)))
print(json.dumps(out))
EOF
) || fail "telemetry socket"
eq "telemetry /authd/stats dgrams" "$(jget "$TEL" /authd/stats dgrams)" "$N_ANS"
eq "telemetry /authd/lcore,0 dgrams" "$(jget "$TEL" /authd/lcore dgrams)" "$N_ANS"
eq "telemetry /authd/drops codec/key" "$(jget "$TEL" /authd/drops codec/key)" "$N_DROP"
eq "telemetry /authd/reasons" "$(jget "$TEL" /authd/reasons RISK_VELOCITY)" 1
case "$(jget "$TEL" /)" in *'"/authd/stats"'*) ;; *) fail "telemetry: /authd/stats not listed" ;; esac
ok "DPDK telemetry (/var/run/dpdk/$AUTHD_PREFIX/dpdk_telemetry.v2) reads /authd/*"

grep -q 'ctl: uid 0 pid [0-9]*: {"v":1,"cmd":"user freeze","args":\["1001"\],"opts":{}}: ok' \
	"$AUTHD_LOG" || fail "changing commands are not logged with the peer uid"
ok "changing commands logged with the peer's uid"

# --- snapshot save, restart from it ------------------------------------------------------
BEFORE=$(authctl --json user show $U)
SAVED=$(authctl --json snapshot save "$TMP/saved.snap") || fail "snapshot save"
[ -s "$TMP/saved.snap" ] || fail "no snapshot file"
authd_stop_ok "saved the snapshot"
[ -S "$AUTHD_SOCK" ] && fail "control socket left behind"
authd_start --keys "$KEYS" --clock "fixed:$H" --snapshot "$TMP/saved.snap" ||
	fail "restart from the saved snapshot"
eq "user after restart" "$(authctl --json user show $U)" "$BEFORE"
KID=3 KEY=$K3 expect APPROVED authorize --user $U --amount 1 --merchant $M
ok "snapshot save ($(jget "$SAVED" users) users), restart from it: user $U unchanged, rotated key works"
authd_stop_ok "restarted from the snapshot"

# --- settings survive a restart through the journal ----------------------------------------
mkdir -p "$TMP/journal"
authd_start --keys "$KEYS" --clock "fixed:$T0" --journal "$TMP/journal" ||
	fail "start with --journal"
authctl user add 2001 --limit 3000 --tier 1 --temp-quota 500 --until "$((T0 + 3600))" \
	>/dev/null || fail "user add (journal)"
authctl user set 2001 --limit 3500 --self-cap 800 --soft-cap --region 9 --risk 400 \
	>/dev/null || fail "user set (journal)"
authctl user freeze 2001 >/dev/null || fail "freeze (journal)"
authctl merchant set 77 --mcc 5812 --subsidy 3,6 >/dev/null || fail "merchant set (journal)"
authctl merchant block 78 >/dev/null || fail "merchant block (journal)"
authctl funder set 4 --quota 20000 --share 60 --region 9 --products pl,inst >/dev/null ||
	fail "funder set (journal)"
authctl policy set tier.1.vel-day-n=7 cool-cash=2d >/dev/null || fail "policy set (journal)"
L=$(authctl --json stats)
eq "settings records journaled" "$(jget "$L" ledger settings_records)" "$(jget "$L" ledger seq)"
eq "journal durable" "$(jget "$L" ledger durable_seq)" "$(jget "$L" ledger seq)"
STATE() {
	authctl --json user show 2001
	authctl --json merchant show 77
	authctl --json merchant show 78
	authctl --json funder list | python3 -c 'import json,sys; d=json.load(sys.stdin); [f.pop("free_fen") for f in d["funders"]]; print(json.dumps(d))'
	authctl --json policy show
}
BEFORE=$(STATE)
authd_stop_ok "journal"
authd_start --keys "$KEYS" --clock "fixed:$T0" --journal "$TMP/journal" ||
	fail "restart from the journal"
eq "state after the journal redo" "$(STATE)" "$BEFORE"
authd_stop
ok "settings changes are journaled (uid, seq) and come back identical from the journal"

# --- start-up refusals (no namespace needed: net_null) -------------------------------------
refuse() { # refuse WANT_MESSAGE AUTHD_OPTIONS...
	local want=$1 out rc
	shift
	out=$("$AUTHD" --no-huge --no-pci -m 128 --file-prefix "$XPREFIX" -l 0 \
		--vdev net_null0 -- --port net_null0 --ip 10.213.9.1 --keys "$KEYS" "$@" 2>&1)
	rc=$?
	eq "authd $* status" "$rc" 1
	case "$out" in *"$want"*) ;; *) fail "authd $*: want '$want' in: $out" ;; esac
}
printf '[policy]\nhold-ttl = 2d\ntz = +15:00\n' >"$TMP/bad.ini"
refuse "authd: $TMP/bad.ini:3: tz=+15:00: offset beyond +-14:00" \
	--policy "$TMP/bad.ini" --ctl "$TMP/x.sock"
printf '[policy]\nhold-ttl = 30d\n' >"$TMP/bad2.ini"
refuse "authd: $TMP/bad2.ini: ids must be kept at least as long as holds" \
	--policy "$TMP/bad2.ini" --ctl "$TMP/x.sock"
: >"$TMP/notasocket"
refuse "ctl: $TMP/notasocket exists and is not a socket: not touching it" \
	--ctl "$TMP/notasocket"
[ -f "$TMP/notasocket" ] || fail "a non-socket at the control path was touched"
ok "start-up refuses a bad policy file (file:line) and a non-socket control path"

echo "PASS"
