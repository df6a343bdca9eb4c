#!/usr/bin/env bash
# test_access.sh AUTHD AUTHCTL AUTHDB AUTHJOURNAL - access control end to end.
#
#  1. The keys file at start: authd refuses a keys file that group or
#     others may read (0644, 0640, 0604, 0660) or that is not a regular
#     file, exit 1, with the file and what to do; it starts with 0600.
#  2. Per-gateway source allow lists (allow = CIDR in the keys file): from
#     two client addresses, gateways with and without a list; a datagram
#     from a source outside its gateway's list is dropped without an answer
#     and counted as "source" (exactly as many as sent); `authctl keys show`
#     lists the ranges, never key material; after `keys rotate` the file is
#     still 0600 with its allow list, and the list still holds.
#  3. The control socket: 0600, owned by authd's user; another user cannot
#     connect; with the socket's mode opened by hand (a misconfiguration),
#     authd itself refuses that user (SO_PEERCRED: "permission denied") and
#     nothing it asked for is applied or journaled.
#  4. Every change of money or limits is journaled with the caller's uid:
#     authd run by an unprivileged user (nobody, over memif): `user add`,
#     `user set --limit`, `--temp-quota`, `funder set --quota`, `policy
#     set ceiling=`, `merchant block` by that user carry its uid in the
#     journal (authjournal dump), root's carry 0, a third user cannot
#     connect at all.
#  5. A request is all or nothing: `risk set` with one bad item applies
#     none of them.
# Needs root (ip netns, other users): exit 77 (skipped) without.
set -u

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
lib_args "AUTHD AUTHCTL AUTHDB AUTHJOURNAL" "$@"
NOBODY=65534
lib_need_root
lib_need_cmd setpriv
lib_init acc
chmod 755 "$TMP"
lib_prefix KPREFIX keys        # start-up refusals (net_null)
NPREFIX=$AUTHD_PREFIX-nobody   # authd run as nobody: its runtime directory
lib_on_exit rm -rf "/tmp/dpdk/$NPREFIX"

T0=1764057600
K1=$(lib_random_key)
K2=$(lib_random_key)
K3=$(lib_random_key)
IP_C2=10.213.0.3

as_user() { # as_user UID CMD...
	local u=$1
	shift
	setpriv --reuid "$u" --regid "$u" --clear-groups "$@"
}

# --- 1. the keys file at start --------------------------------------------------
(umask 077 && printf '[gateway 1]\nkey.1 = %s\n' "$K1" >"$TMP/keys.ini")
refused() { # refused KEYS EXPECTED-TEXT: authd must stop at start, saying it
	local out rc
	out=$("$AUTHD" --no-huge --no-pci -m 64 --file-prefix "$KPREFIX" -l 0 \
		--vdev net_null0 --log-level=lib.eal:error -- --port net_null0 \
		--ip 10.0.0.1 --keys "$1" 2>&1 </dev/null)
	rc=$?
	[ "$rc" = 1 ] || fail "authd with keys file $1 ($(stat -c %a "$1")): exit $rc"
	grep -qF "$2" <<<"$out" || fail "authd with keys file $1: said $(tail -1 <<<"$out")"
}
for mode in 644 640 604 660; do
	chmod "$mode" "$TMP/keys.ini"
	refused "$TMP/keys.ini" "$TMP/keys.ini: mode 0$mode gives group or others access to the keys; run chmod 600 $TMP/keys.ini"
done
mkdir -m 700 "$TMP/keys.d"
refused "$TMP/keys.d" "$TMP/keys.d: not a regular file"
refused "$TMP/nothere.ini" "$TMP/nothere.ini: No such file or directory"
chmod 600 "$TMP/keys.ini"
ok "authd refuses keys files readable by group or others (0644, 0640, 0604, 0660), a directory, a missing file: exit 1 with the file and the fix"

# --- 2. source allow lists -----------------------------------------------------
cat >"$TMP/keys-net.ini" <<EOF
; gateway 1: any source; 2: only the client; 3: a range without it
[gateway 1]
key.1 = $K1
[gateway 2]
key.1 = $K2
allow = $IP_C/32
[gateway 3]
key.1 = $K3
allow = 10.213.0.128/25, 192.168.7.0/24
EOF
chmod 600 "$TMP/keys-net.ini"
netns_up || fail "cannot create the namespaces"
ip -n "$NS_C" addr add "$IP_C2/24" dev "$IF_C" || fail "second client address"
printf '[policy]\nunknown-merchant-ok = yes\n' >"$TMP/policy.ini"
authd_start --keys "$TMP/keys-net.ini" --journal "$TMP/journal" \
	--clock "fixed:$T0" --policy "$TMP/policy.ini" || fail "authd did not start"
authctl user add 42 --limit 1000 --tier 7 >/dev/null || fail "user add"

# from SRC as gateway G with key K: "answered" or "dropped"
send() { # send SRC G KEYID KEY
	in_client python3 - "$HERE" "$IP_D" "$@" <<'PY'
import sys
sys.path.insert(0, sys.argv[1])
from authclient import Client
server, src, g, kid, key = sys.argv[2:7]
c = Client(server, gateway=int(g), key_id=int(kid), key=key, timeout=1.5,
           bind=(src, 0))
a = c.authorize(user=42, amount="1.00", merchant=7)
print("answered" if a else "dropped")
PY
}
drops_source() {
	authctl --json stats | python3 -c 'import json,sys; print(json.load(sys.stdin)["total"]["drops"]["source"])'
}
expect() { # expect WANT SRC G KEYID KEY
	local want=$1 got
	shift
	got=$(send "$@") || fail "authclient from $1 as gateway $2"
	[ "$got" = "$want" ] || fail "from $1 as gateway $2 (key $3): $got, want $want"
}
expect answered "$IP_C" 1 1 "$K1"
expect answered "$IP_C2" 1 1 "$K1"
expect answered "$IP_C" 2 1 "$K2"
expect dropped "$IP_C2" 2 1 "$K2"
expect dropped "$IP_C" 3 1 "$K3"
expect dropped "$IP_C2" 3 1 "$K3"
[ "$(drops_source)" = 3 ] || fail "source drops: $(drops_source), want 3"
ok "allow lists: gateway 2 answered from $IP_C only, gateway 3 (10.213.0.128/25, 192.168.7.0/24) from neither, gateway 1 from both; 3 source drops counted"

S=$(authctl --json keys show) || fail "keys show"
[ "$(jget "$S" gateways 1 allow)" = '["10.213.0.2/32"]' ] &&
	[ "$(jget "$S" gateways 2 allow)" = '["10.213.0.128/25", "192.168.7.0/24"]' ] ||
	fail "keys show: $S"
case "$S$(authctl keys show)" in *"$K1"* | *"$K2"* | *"$K3"*) fail "keys show shows key material" ;; esac
R=$(authctl --json keys rotate 2) || fail "keys rotate 2"
K2B=$(jget "$R" key)
KID2B=$(jget "$R" key_id)
[ "$(stat -c %a "$TMP/keys-net.ini")" = 600 ] || fail "keys file mode after rotate: $(stat -c %a "$TMP/keys-net.ini")"
grep -q "^allow = $IP_C/32\$" "$TMP/keys-net.ini" || fail "rotate lost the allow list: $(grep -v key "$TMP/keys-net.ini")"
expect answered "$IP_C" 2 "$KID2B" "$K2B"
expect dropped "$IP_C2" 2 "$KID2B" "$K2B"
[ "$(drops_source)" = 4 ] || fail "source drops after rotate: $(drops_source), want 4"
ok "keys show lists the ranges, no key material; keys rotate keeps the file 0600 and the allow list, which still holds"

# --- 3. the control socket -----------------------------------------------------
[ "$(stat -c '%a %u' "$AUTHD_SOCK")" = "600 0" ] ||
	fail "control socket: $(stat -c '%a %U' "$AUTHD_SOCK")"
OUT=$(as_user $NOBODY "$AUTHCTL" -s "$AUTHD_SOCK" user set 42 --limit 999999 2>&1) &&
	fail "nobody changed a user: $OUT"
grep -q "Permission denied" <<<"$OUT" || fail "nobody: $OUT"
RECS=$("$AUTHJOURNAL" dump "$TMP/journal" | wc -l)
chmod 666 "$AUTHD_SOCK"
OUT=$(as_user $NOBODY "$AUTHCTL" -s "$AUTHD_SOCK" user set 42 --limit 999999 2>&1) &&
	fail "nobody changed a user through an opened socket: $OUT"
grep -q "permission denied" <<<"$OUT" || fail "nobody through an opened socket: $OUT"
OUT=$(as_user $NOBODY "$AUTHCTL" -s "$AUTHD_SOCK" --raw '{"v":1,"cmd":"user show","args":["42"]}' 2>&1)
grep -q '"error": *"permission denied"' <<<"$OUT" || fail "nobody read a user: $OUT"
chmod 600 "$AUTHD_SOCK"
[ "$(jget "$(authctl --json user show 42)" user limit_fen)" = 100000 ] || fail "limit changed"
[ "$("$AUTHJOURNAL" dump "$TMP/journal" | wc -l)" = "$RECS" ] || fail "nobody's request was journaled"
ok "control socket 0600 root's: nobody cannot connect; through a socket opened by hand authd answers 'permission denied', applies and journals nothing"

# --- 5. all or nothing -------------------------------------------------------------
NP=$(jget "$(authctl --json risk show)" config near-pct 2>/dev/null ||
	authctl --json risk show | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d.get("thresholds", d.get("config", {}))["near-pct"])')
OUT=$(authctl risk set near-pct=95 no-such-key=1 2>&1) && fail "risk set with a bad key: $OUT"
NP2=$(jget "$(authctl --json risk show)" config near-pct 2>/dev/null ||
	authctl --json risk show | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d.get("thresholds", d.get("config", {}))["near-pct"])')
[ "$NP2" = "$NP" ] || fail "risk set applied near-pct=95 ($NP -> $NP2) although the request was refused: $OUT"
ok "risk set near-pct=95 no-such-key=1 refused ($(tail -1 <<<"$OUT" | sed 's/^authctl: //')), near-pct still $NP"
authd_stop_ok
netns_down

# --- 4. uids in the journal --------------------------------------------------------
N=$TMP/nobody
mkdir -m 700 "$N" && chown "$NOBODY:$NOBODY" "$N"
as_user $NOBODY sh -c "umask 077; printf '[gateway 1]\nkey.1 = %s\n' $K1 >$N/keys.ini" ||
	fail "nobody's keys file"
AUTHD_LOG=$N/authd.log
lib_log authd "$AUTHD_LOG"
# setpriv execs authd: $! is authd's pid (a shell function would fork).
lib_bg NPID setpriv --reuid $NOBODY --regid $NOBODY --clear-groups "$AUTHD" \
	--no-huge --no-pci -m 128 --file-prefix "$NPREFIX" -l 0 \
	--vdev "net_memif0,role=server,socket=$N/memif.sock" --log-level=lib.eal:error -- \
	--port net_memif0 --ip 10.0.0.1 --keys "$N/keys.ini" --journal "$N/journal" \
	--ctl "$N/ctl.sock" --clock "fixed:$T0" >"$AUTHD_LOG" 2>&1
for _ in $(seq 300); do
	[ -S "$N/ctl.sock" ] && break
	kill -0 "$NPID" 2>/dev/null || fail "authd as nobody did not start"
	sleep 0.1
done
[ "$(stat -c '%a %u' "$N/ctl.sock")" = "600 $NOBODY" ] || fail "socket of nobody's authd: $(stat -c '%a %u' "$N/ctl.sock")"
nctl() { as_user $NOBODY "$AUTHCTL" -s "$N/ctl.sock" "$@" >/dev/null || fail "nobody: authctl $*"; }
rctl() { "$AUTHCTL" -s "$N/ctl.sock" "$@" >/dev/null || fail "root: authctl $*"; }
nctl user add 7 --limit 100
nctl user set 7 --limit 200
nctl user set 7 --temp-quota 50 --until $((T0 + 86400))
nctl funder set 1 --quota 1000000 --share 40
nctl policy set ceiling=5000000 cap-chunk=500
nctl merchant block 99
rctl user set 7 --limit 300
rctl funder set 1 --quota 2000000
OUT=$(as_user 1 "$AUTHCTL" -s "$N/ctl.sock" user set 7 --limit 1 2>&1) && fail "uid 1 changed a user"
grep -q "Permission denied" <<<"$OUT" || fail "uid 1: $OUT"
rc=0
lib_stop "$NPID" TERM || rc=$?
[ "$rc" = 0 ] || fail "authd as nobody exited $rc on SIGTERM"
"$AUTHJOURNAL" dump "$N/journal" | awk '{ print $3, $5, $7 }' >"$TMP/uids.txt"
want="USER_SET 7 $NOBODY
USER_SET 7 $NOBODY
EXT_SET 7 $NOBODY
USER_SET 7 $NOBODY
FUNDER_SET 1 $NOBODY
POLICY_PART 0 $NOBODY
POLICY_PART 0 $NOBODY
POLICY_PART 0 $NOBODY
POLICY_PART 0 $NOBODY
MERCHANT_SET 99 $NOBODY
USER_SET 7 0
FUNDER_SET 1 0"
[ "$(cat "$TMP/uids.txt")" = "$want" ] ||
	fail "journal kinds, ids, uids:$(printf '\n%s' "$(cat "$TMP/uids.txt")")"
ok "authd run by nobody: its changes (user add/set, temp quota, funder quota, ceiling, merchant block) journaled with uid $NOBODY, root's with uid 0; uid 1 cannot connect"
echo "PASS: test_access"
