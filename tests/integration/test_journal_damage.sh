#!/usr/bin/env bash
# test_journal_damage.sh BUILD_DIR - recovery cuts a torn tail and refuses
# damage, exactly as docs/durability.md says.
#
# authd (memif) journals real traffic from authgen into small segments
# (64 KiB, several of them); a snapshot is saved at the end. Then, on a copy
# of that journal each time:
#   torn tails, cut and reported, start-up goes on:
#     - the last segment truncated in the middle of a record,
#     - its last records zeroed (blocks that never reached the disk),
#     - a newest segment whose header is incomplete (crash in a rotation);
#   damage, start-up refused with file:offset and the reason:
#     - a bit flipped in the middle of the first segment (bad-checksum),
#     - a bit flipped in the last segment with valid records after it,
#     - a middle segment truncated (truncated),
#     - a segment duplicated under the next name (name),
#     - the newest segment lost (index),
#     - a record moved to another position (seq-order);
# authjournal verify agrees with authd each time (exit 0 / 1, same text),
# and authjournal summary rebuilds from base snapshot + journal exactly the
# balances of the snapshot authd saved. Last, hold expiry: the fixed clock
# moved 8 days, the timer releases every hold and journals each release,
# and a restart (at the old time) keeps them released.
#
# No root needed (memif, --no-huge). Exit 77 (skip) without authgen.
set -u

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
lib_args "BUILD" "$@"
[ -x "$BUILD/bin/authgen" ] || skip "no authgen in $BUILD/bin"
lib_init jdmg
ENV_QUIET=1
lib_memif "$BUILD"
AUTHJOURNAL=$BUILD/bin/authjournal
T0=1764057600
J=$ENV_DIR/journal
PRISTINE=$ENV_DIR/pristine
SNAP=$ENV_DIR/base.snap
KEYS=$ENV_DIR/keys.ini
N=0

seg() { # seg FIRST_SEQ: the segment file name of a first seq
	printf '%s/seg-%020d.jnl' "$J" "$1"
}

segments() { # the segment files, in order
	ls "$J"/seg-*.jnl | sort
}

restore() {
	rm -rf "$J"
	cp -a "$PRISTINE" "$J"
}

flip() { # flip FILE OFFSET: invert one bit
	python3 - "$1" "$2" <<'EOF'
import sys
path, off = sys.argv[1], int(sys.argv[2])
with open(path, "r+b") as f:
    f.seek(off)
    b = f.read(1)[0]
    f.seek(off)
    f.write(bytes([b ^ 0x10]))
EOF
}

# start_ok: authd recovers and runs; its log in $LOG.
start_ok() {
	N=$((N + 1))
	authd_start_memif "a$N" "$SNAP" "$KEYS" --journal "$J" \
		--journal-segment-size 65536 --clock "fixed:$T0" ||
		fail "authd did not start"
	LOG=$ENV_DIR/a$N.log
}

stop() {
	env_authd_stop "a$N" || fail "authd a$N did not stop cleanly"
}

# start_refused PATTERN: authd must exit non-zero at start, saying PATTERN.
start_refused() {
	local want=$1 pid rc
	N=$((N + 1))
	LOG=$ENV_DIR/x$N.log
	lib_bg pid "$ENV_AUTHD" --no-huge --no-pci -m 256 --file-prefix "$ENV_TAG-x$N" -l 0 \
		--vdev "net_memif0,role=server,socket=$ENV_DIR/x$N.sock" -- \
		--port net_memif0 --ip 10.0.0.1 --snapshot "$SNAP" --keys "$KEYS" \
		--journal "$J" --clock "fixed:$T0" >"$LOG" 2>&1
	lib_on_exit rm -rf "$(env_runtime_dir "$ENV_TAG-x$N")"
	for _ in $(seq 300); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		lib_stop "$pid" KILL 2>/dev/null
		fail "authd started on a damaged journal (expected: $want)"
	fi
	rc=0
	lib_wait "$pid" || rc=$?
	rm -rf "$(env_runtime_dir "$ENV_TAG-x$N")"
	[ "$rc" != 0 ] || fail "authd exited 0 on a damaged journal"
	grep -qF -- "$want" "$LOG" || {
		cat "$LOG" >&2
		fail "authd's refusal does not say: $want"
	}
}

# verify_says RC PATTERN: authjournal verify's status and message.
verify_says() {
	local want_rc=$1 want=$2 out rc
	out=$("$AUTHJOURNAL" verify "$J" 2>&1)
	rc=$?
	[ "$rc" = "$want_rc" ] || fail "authjournal verify: status $rc, want $want_rc: $out"
	grep -qF -- "$want" <<<"$out" || fail "authjournal verify does not say '$want': $out"
}

last_seq() {
	"$AUTHJOURNAL" verify "$J" | sed -n 's/.*seq [0-9]*\.\.\([0-9]*\) .*/\1/p'
}

# ---------------------------------------------------------------------------
"$ENV_AUTHDB" gen --users 2000 --seed 5 --now "$T0" --out "$SNAP" >/dev/null ||
	fail "authdb gen"
env_keys "$KEYS"
start_ok
env_authgen_start "a$N" "$ENV_DIR/gen.json" --keys "$KEYS" --users 2000 \
	--seed 5 --merchants 200 --count 6000 --window 8 --quiet ||
	fail "authgen did not start"
for _ in $(seq 600); do
	grep -q '"answered"' "$ENV_DIR/gen.json" 2>/dev/null && break
	sleep 0.1
done
env_authctl "a$N" snapshot save "$ENV_DIR/end.snap" >/dev/null || fail "snapshot save"
stop
env_authgen_wait "a$N" >/dev/null 2>&1
mapfile -t SEGS < <(segments)
[ "${#SEGS[@]}" -ge 4 ] || fail "expected several segments, got ${#SEGS[@]}"
verify_says 0 "valid"
L=$(last_seq)
[ "$L" -gt 1000 ] || fail "only $L records journaled"
cp -a "$J" "$PRISTINE"
ok "6000 records journaled in ${#SEGS[@]} segments, seq 1..$L, verified"

# --- the journal rebuilds the saved state --------------------------------------
OUT=$("$AUTHJOURNAL" summary "$J" --snapshot "$SNAP" --check "$ENV_DIR/end.snap" --users 3) ||
	fail "summary --check: $OUT"
grep -q "same balances" <<<"$OUT" || fail "summary: $OUT"
ok "authjournal summary: base snapshot + journal == the snapshot authd saved"

LASTSEG=${SEGS[-1]}
FIRSTSEG=${SEGS[0]}
LASTSIZE=$(stat -c %s "$LASTSEG")
LASTN=$(( (LASTSIZE - 128) / 128 ))

# --- torn tail: a partial record ---------------------------------------------
restore
truncate -s $((LASTSIZE - 50)) "$LASTSEG"
OFF=$((128 + (LASTN - 1) * 128))
verify_says 0 "torn tail: $LASTSEG:$OFF: truncated record"
start_ok
grep -qF "torn tail at $LASTSEG:$OFF (78 bytes: truncated record): cut" "$LOG" ||
	fail "no report of the cut: $(grep recovery "$LOG")"
stop
[ "$(stat -c %s "$LASTSEG")" = "$OFF" ] || fail "the tail was not cut at $OFF"
[ "$(last_seq)" = $((L - 1)) ] || fail "after the cut the journal ends at $(last_seq)"
ok "truncated mid-record: cut at $(basename "$LASTSEG"):$OFF, reported, start-up goes on"

# --- torn tail: zeroed records ------------------------------------------------
restore
OFF=$((128 + (LASTN - 3) * 128))
dd if=/dev/zero of="$LASTSEG" bs=128 seek=$((1 + LASTN - 3)) count=3 conv=notrunc status=none
start_ok
grep -qF "torn tail at $LASTSEG:$OFF (384 bytes: record checksum does not verify): cut" "$LOG" ||
	fail "zeroed tail: $(grep recovery "$LOG")"
stop
[ "$(last_seq)" = $((L - 3)) ] || fail "after the cut the journal ends at $(last_seq)"
ok "last 3 records zeroed: cut at $(basename "$LASTSEG"):$OFF"

# --- torn tail: a new segment's header ----------------------------------------
restore
NEWSEG=$(seg $((L + 1)))
printf 'AUTHJRNL\001' >"$NEWSEG"
start_ok
grep -qF "torn tail at $NEWSEG:0 (9 bytes: segment header incomplete (9 bytes)): cut" "$LOG" ||
	fail "torn header: $(grep recovery "$LOG")"
stop
[ ! -e "$NEWSEG" ] || fail "the torn segment is still there"
ok "incomplete header of a new segment: removed, start-up goes on"

# --- damage: a bit flipped in the first segment -------------------------------
restore
flip "$FIRSTSEG" $((128 + 10 * 128 + 40))
WANT="$FIRSTSEG:$((128 + 10 * 128)): bad-checksum"
start_refused "$WANT"
verify_says 1 "$WANT"
ok "bit flipped mid-file: refused with $(basename "$FIRSTSEG"):$((128 + 10 * 128)): bad-checksum"

# --- damage: a bit flipped in the last segment, valid records after -----------
restore
flip "$LASTSEG" $((128 + 2 * 128 + 9))
WANT="$LASTSEG:$((128 + 2 * 128)): bad-checksum: record checksum does not verify, and a valid record follows"
start_refused "$WANT"
verify_says 1 "$WANT"
ok "bit flipped in the last segment before valid records: refused (damage, not a torn write)"

# --- damage: a middle segment truncated ---------------------------------------
restore
MID=${SEGS[1]}
MIDSIZE=$(stat -c %s "$MID")
truncate -s $((MIDSIZE - 200)) "$MID"
MIDN=$(( (MIDSIZE - 200 - 128) / 128 ))
WANT="$MID:$((128 + MIDN * 128)): truncated"
start_refused "$WANT"
verify_says 1 "$WANT"
ok "a middle segment truncated: refused with its offset"

# --- damage: a segment duplicated -----------------------------------------------
restore
DUP=$(seg $((L + 1)))
cp "$FIRSTSEG" "$DUP"
WANT="$DUP:32: name: header says first seq 1"
start_refused "$WANT"
verify_says 1 "$WANT"
ok "a segment duplicated under the next name: refused"

# --- damage: the newest segment lost ------------------------------------------
restore
rm "$LASTSEG"
WANT="$J/journal.idx:0: index:"
start_refused "$WANT"
verify_says 1 "$WANT"
ok "the newest segment lost: the index says so, refused"

# --- damage: a record moved -----------------------------------------------------
restore
dd if="$FIRSTSEG" of="$FIRSTSEG" bs=128 skip=5 seek=9 count=1 conv=notrunc status=none
WANT="$FIRSTSEG:$((128 + 8 * 128)): seq-order: seq 5, expected 9"
start_refused "$WANT"
verify_says 1 "$WANT"
ok "a record copied over another: refused (seq-order)"

# --- hold expiry: the timer releases and journals; a restart keeps it ---------
holds() { # the sum of every user's holds in authd a$N, in fen
	env_authctl "a$N" snapshot save "$ENV_DIR/h.snap" >/dev/null || fail "snapshot save"
	"$ENV_AUTHDB" export "$ENV_DIR/h.snap" --users-csv "$ENV_DIR/h.csv" >/dev/null
	awk -F, 'NR > 1 { s += $4 } END { print s + 0 }' "$ENV_DIR/h.csv"
}
ledger() { # ledger FIELD: authctl stats ledger.FIELD
	env_authctl "a$N" --json stats | python3 -c "
import json, sys
print(json.load(sys.stdin)['ledger']['$1'])"
}
restore
start_ok
# one writer per journal: a second authd on it is refused while this runs
KEEP=$N
start_refused "$J/journal.lock: the journal is in use by another process"
N=$KEEP
ok "a second authd on the same journal: refused (journal.lock)"
H0=$(holds)
P0=$(ledger timer_pending)
[ "$H0" -gt 0 ] && [ "$P0" -gt 0 ] || fail "no open holds to expire ($H0 fen, $P0 in the wheel)"
env_authctl "a$N" clock set $((T0 + 8 * 86400)) >/dev/null || fail "clock set"
for _ in $(seq 100); do
	[ "$(ledger timer_pending)" = 0 ] && break
	sleep 0.1
done
[ "$(ledger timer_pending)" = 0 ] || fail "holds still in the wheel: $(ledger timer_pending)"
EXPIRED=$(ledger expired)
[ "$(holds)" = 0 ] || fail "holds left after expiry: $(holds) fen"
stop
[ "$("$AUTHJOURNAL" dump "$J" | grep -c ' EXPIRE ')" = "$EXPIRED" ] ||
	fail "EXPIRE records in the journal != $EXPIRED expiries"
start_ok
[ "$(holds)" = 0 ] || fail "after a restart at the old time, holds are back: $(holds) fen"
stop
ok "clock +8 days: $EXPIRED holds ($H0 fen) expired by the timer, journaled, still released after a restart"

restore
verify_says 0 "valid"
echo "PASS: test_journal_damage"
