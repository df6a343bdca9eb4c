#!/usr/bin/env bash
# pair-run.sh - one authd and one authgen over memif, for profiles and A/B
# runs (docs/performance.md). bench.sh is the benchmark; this is one of its
# phases by hand, with the knobs exposed.
set -euo pipefail

usage() {
	cat <<'EOF'
Usage: scripts/pair-run.sh MODE SECONDS [authgen options...]

Starts authd (lcore 0, --mode MODE: decide or forward, --ack async) on a
memif server socket and authgen (lcore 1) as its client for SECONDS
measured seconds after a 2 s warm-up, then stops authd (SIGTERM, first,
so that DPDK 22.11's memif does not see its peer vanish) and authgen.
Prints authgen's report and the run directory, which holds authd.log,
gen.log, gen.json (authgen's JSON report), stats.json (authctl stats at
the end: cycles per packet, in-engine latency) and perf.data with PERF=1.
Extra arguments go to authgen (e.g. --window 256, or --rate 35000 for an
open loop).

Environment:
  BUILD        the build directory (default build/release)
  BASE         the snapshot (default build/bench/base-10000000-1.snap, which
               make bench creates)
  USERS        users in BASE (default 10000000)
  AUTHD_EXTRA  more authd options, e.g. "--ops-max 40M --risk on --burst 4"
               (size --ops-max for the run: a full op store answers BUSY)
  AUTHD_BIN    another authd binary to run (A/B runs)
  PERF=1       perf record -g on authd for SECONDS-2 s during the run

Example:
  AUTHD_EXTRA="--ops-max 40M --risk on" PERF=1 \
      scripts/pair-run.sh decide 10 --window 256
EOF
}

case "${1:-}" in
-h|--help) usage; exit 0 ;;
decide|forward) ;;
*) usage >&2; exit 2 ;;
esac
[[ "${2:-}" =~ ^[0-9]+$ ]] || { echo "pair-run.sh: SECONDS must be a whole number" >&2; exit 2; }
MODE=$1 SECS=$2
shift 2

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BUILD:-$ROOT/build/release}
BASE=${BASE:-$ROOT/build/bench/base-10000000-1.snap}
USERS=${USERS:-10000000}
AUTHD=${AUTHD_BIN:-$BUILD/bin/authd}
AUTHGEN=$BUILD/bin/authgen
AUTHCTL=$BUILD/bin/authctl
for f in "$AUTHD" "$AUTHGEN" "$AUTHCTL"; do
	[ -x "$f" ] || { echo "pair-run.sh: $f: not built (make release)" >&2; exit 1; }
done
[ -r "$BASE" ] || { echo "pair-run.sh: $BASE: no such snapshot (make bench creates it, or set BASE and USERS)" >&2; exit 1; }

D=$(mktemp -d /tmp/pair-run.XXXXXX)
KEY=$(od -An -tx1 -N16 /dev/urandom | tr -d ' \n')
printf '[gateway 1]\nkey.1 = %s\n' "$KEY" >"$D/keys.ini"
chmod 600 "$D/keys.ini"
APID= GPID=
cleanup() {
	[ -n "$APID" ] && kill -TERM "$APID" 2>/dev/null && wait "$APID" 2>/dev/null
	[ -n "$GPID" ] && kill -TERM "$GPID" 2>/dev/null && wait "$GPID" 2>/dev/null
	rm -rf "/var/run/dpdk/pa$$" "/var/run/dpdk/pg$$"
	true
}
trap cleanup EXIT

# shellcheck disable=SC2086 # AUTHD_EXTRA is a list of options
"$AUTHD" --no-huge --no-pci -m 512 --file-prefix "pa$$" -l 0 \
	--vdev "net_memif0,role=server,socket=$D/m.sock" -- \
	--port net_memif0 --ip 10.0.0.1 --snapshot "$BASE" --keys "$D/keys.ini" \
	--mode "$MODE" --ack async --ctl "$D/ctl.sock" ${AUTHD_EXTRA:-} \
	>"$D/authd.log" 2>&1 &
APID=$!
for _ in $(seq 600); do
	[ -S "$D/ctl.sock" ] && break
	kill -0 "$APID" 2>/dev/null || { tail -5 "$D/authd.log" >&2; exit 1; }
	sleep 0.1
done
echo "pair-run.sh: authd up (pid $APID), authgen for 2 + $SECS s" >&2
"$AUTHGEN" --no-huge --no-pci -m 512 --file-prefix "pg$$" -l 1 \
	--vdev "net_memif0,role=client,socket=$D/m.sock" -- \
	--port net_memif0 --dst-ip 10.0.0.1 --gateway 1 --key-id 1 --key "$KEY" \
	--users "$USERS" --seed 1 --ids-from "$BASE" --warmup 2 \
	--duration "$SECS" --json "$D/gen.json" --linger 30 "$@" \
	>"$D/gen.log" 2>&1 &
GPID=$!
sleep 3
if [ -n "${PERF:-}" ] && [ "$SECS" -gt 2 ]; then
	perf record -g -o "$D/perf.data" -p "$APID" -- sleep $((SECS - 2)) >/dev/null 2>&1 || true
fi
for _ in $(seq $((SECS * 10 + 300))); do
	[ -s "$D/gen.json" ] && break
	kill -0 "$GPID" 2>/dev/null || break
	sleep 0.1
done
"$AUTHCTL" -s "$D/ctl.sock" --json stats >"$D/stats.json" 2>/dev/null || true
kill -TERM "$APID"
rc=0
wait "$APID" || rc=$?
APID=
echo "pair-run.sh: authd exit $rc" >&2
kill -TERM "$GPID" 2>/dev/null || true
wait "$GPID" 2>/dev/null || true
GPID=
tail -25 "$D/gen.log"
echo "DIR=$D"
