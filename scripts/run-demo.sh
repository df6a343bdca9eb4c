#!/usr/bin/env bash
# run-demo.sh - the demo behind `make run`: authd deciding payments for a
# synthetic base of users, authgen playing a gateway against it over memif,
# on two cores and without hugepages.
#
# Steps: a base of N users (authdb gen, cached in build/demo/ by size and
# seed), a keys file with a random key (0600), authd on lcore 0 as a memif
# server, authgen on lcore 1 for S seconds with a realistic mix and a
# progress line every second, then the figures, then authd stopped with
# SIGTERM and its exit status checked. Exits non-zero with a message when
# any step fails.
set -euo pipefail

usage() {
	cat <<'EOF'
Usage: scripts/run-demo.sh [--users N] [--seconds S] [--seed S] [--ack MODE]
                           [--ops-max N] [--keep]

Runs authd and authgen (the load generator) against each other over a memif
link on two cores, without hugepages, and prints decisions per second, the
answers by reason and the latency percentiles.

  --users N     users in the demo base (default 1000000; k/M suffixes)
  --seconds S   how long authgen sends (default 10)
  --seed S      seed of the base and of the workload (default 1)
  --ack MODE    async (default: no journal, answers at once) or sync (a
                journal in the work directory; an answer that moves money
                leaves after its batch's fdatasync; authgen keeps 256
                datagrams in flight instead of 16 so batches form). On two
                cores the ledger shares a CPU with authgen: expect ms
  --ops-max N   authd's op store: the holds and idempotency records it
                keeps (default: 1.6 M per second of the run, warm-up
                included, so the demo measures decisions, not a full store;
                140-150 bytes each). When it is full authd answers BUSY
  --keep        keep the work directory (logs, keys, authgen JSON)
  --build DIR   the Release build (default: $BUILD/release, BUILD=build)
  -h, --help    this text

The base is cached as build/demo/base-<users>-<seed>.snap: a second run with
the same size and seed starts at once.
EOF
}

ROOT=$(cd "$(dirname "$0")/.." && pwd)
USERS=1000000
SECS=10
SEED=1
KEEP=0
ACK_MODE=
OPS_MAX=
BUILD_DIR=$ROOT/${BUILD:-build}/release

while [ $# -gt 0 ]; do
	case $1 in
	--users) USERS=${2:?--users needs a value}; shift 2 ;;
	--seconds) SECS=${2:?--seconds needs a value}; shift 2 ;;
	--seed) SEED=${2:?--seed needs a value}; shift 2 ;;
	--keep) KEEP=1; shift ;;
	--ack) ACK_MODE=${2:?--ack needs sync or async}; shift 2 ;;
	--ops-max) OPS_MAX=${2:?--ops-max needs a value}; shift 2 ;;
	--build) BUILD_DIR=${2:?--build needs a value}; shift 2 ;;
	-h | --help) usage; exit 0 ;;
	*) echo "run-demo.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
	esac
done
case $USERS in *[kK]) USERS=$(( ${USERS%[kK]} * 1000 )) ;; *M) USERS=$(( ${USERS%M} * 1000000 )) ;; esac
[[ $USERS =~ ^[0-9]+$ && $USERS -ge 1 ]] || { echo "run-demo.sh: --users: a number" >&2; exit 2; }
[[ $SECS =~ ^[0-9]+$ && $SECS -ge 1 ]] || { echo "run-demo.sh: --seconds: whole seconds" >&2; exit 2; }
[[ $SEED =~ ^[0-9]+$ ]] || { echo "run-demo.sh: --seed: a number" >&2; exit 2; }
# Every request is remembered (idempotency) for days: size the store for
# the run (3 s warm-up, the measured seconds, 2 s to spare) at up to 1.6 M
# records/s, more than one lcore decides here.
OPS_MAX=${OPS_MAX:-$(( (SECS + 5) * 1600000 ))}
[[ $OPS_MAX =~ ^[0-9]+[kKMG]?$ ]] || { echo "run-demo.sh: --ops-max: a number" >&2; exit 2; }
[[ -z $ACK_MODE || $ACK_MODE = sync || $ACK_MODE = async ]] ||
	{ echo "run-demo.sh: --ack: sync or async" >&2; exit 2; }

# shellcheck source=scripts/authd-env.sh
. "$ROOT/scripts/authd-env.sh"
ENV_KEEP=$KEEP
ENV_MEM=1024
env_init "$BUILD_DIR" demo

fail() {
	echo "demo FAILED: $*" >&2
	exit 1
}

# 1. The base, cached by size and seed.
CACHE=$ROOT/${BUILD:-build}/demo
SNAP=$CACHE/base-$USERS-$SEED.snap
mkdir -p "$CACHE"
if [ -s "$SNAP" ] && "$ENV_AUTHDB" info "$SNAP" >/dev/null 2>&1; then
	echo "== base: $SNAP (cached)"
else
	echo "== base: $USERS users, seed $SEED -> $SNAP"
	"$ENV_AUTHDB" gen --users "$USERS" --seed "$SEED" --out "$SNAP" ||
		fail "authdb gen"
fi

# 2. Keys: one gateway, a random key, readable by us only.
KEYS=$ENV_DIR/keys.ini
env_keys "$KEYS" 1

# 3. authd: async acknowledgements without a journal (the decision path),
#    unless --ack sync: then a journal in the work directory, and a wider
#    window, since every answer that moves money waits for its batch's
#    fdatasync (milliseconds on a virtual disk: docs/performance.md).
ACK=(--ack async)
WINDOW=16
if [ "$ACK_MODE" = sync ]; then
	mkdir -p "$ENV_DIR/journal"
	ACK=(--journal "$ENV_DIR/journal" --ack sync)
	WINDOW=256
fi
echo "== authd: lcore 0, memif server, ${ACK[*]}, --ops-max $OPS_MAX"
env_authd_memif authd "$SNAP" "$KEYS" "${ACK[@]}" --ops-max "$OPS_MAX" ||
	fail "authd did not start"
grep -E "dataplane lcore" "$ENV_DIR/authd.log" | sed 's/^USER1: /   /'

# 4. authgen: lcore 1, closed loop, a realistic mix, progress every second.
#    A 3 s warm-up is not counted: authd's tables are touched for the first
#    time then (page faults; seconds on a VM for a large base). It lingers after its report: authd is stopped first, so neither side
#    sees its memif peer leave while it polls (scripts/authd-env.sh).
echo "== authgen: lcore 1, 3 s warm-up + $SECS s measured, $USERS users"
JSON=$ENV_DIR/authgen.json
env_authgen_start authd "$JSON" --keys "$KEYS" --gateway 1 \
	--users "$USERS" --seed "$SEED" --ids-from "$SNAP" --records 1-16 \
	--window "$WINDOW" --warmup 3 --timeout 10000 --mix authorize=70,capture=15,void=5,refund=3,repay=7 \
	--products paylater=70,installment=20,cash=10 \
	--amounts lognormal:150,1.0,50000 --faults dup=0.2,malformed=0.05 \
	--duration "$SECS" --progress --quiet

# 5. Stop authd: SIGTERM, it drains and must exit 0; then authgen.
AUTHD_RC=0
env_authd_stop authd || AUTHD_RC=$?
grep -E "^authd: " "$ENV_DIR/authd.log" | sed 's/^/   /' || true
GEN_RC=0
env_authgen_wait authd || GEN_RC=$?

# 6. The figures.
[ -s "$JSON" ] || fail "authgen wrote no results (exit $GEN_RC)"
python3 - "$JSON" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))["results"]
lat = r["latency_ns"]
answered = r["records_answered"] or 1
busy = r["reasons"].get("BUSY", 0)
elapsed = r["elapsed_s"] or 1
print("== results")
print(f"   decisions/s  {(r['records_answered'] - busy) / elapsed:,.0f}  "
      f"({r['records_answered'] - busy:,} decided in {elapsed:.1f} s;"
      f" {r['datagrams_per_s']:,.0f} datagrams/s)")
if busy:
    print(f"   BUSY         {busy:,} records ({100.0 * busy / answered:.1f}%):"
          " authd shed load: a full ledger ring (authctl stats: ring_full) or a"
          " full op store (authctl stats: ops; authd logs a warning at 90%)")
print(f"   latency      p50 {lat['p50']/1e3:.1f} us   p99 {lat['p99']/1e3:.1f} us"
      f"   p99.9 {lat['p99.9']/1e3:.1f} us   max {lat['max']/1e3:.1f} us")
print(f"   lost         {r['dgrams_lost']} datagrams")
print("   reasons")
for name, n in sorted(r["reasons"].items(), key=lambda kv: -kv[1]):
    print(f"     {name:<20} {n:>12,}  {100.0 * n / answered:5.1f}%")
EOF

if [ "$GEN_RC" != 0 ]; then
	fail "authgen found errors (exit $GEN_RC): see its report above"
fi
if [ "$AUTHD_RC" != 0 ]; then
	fail "authd exited with status $AUTHD_RC"
fi
echo "demo OK"
