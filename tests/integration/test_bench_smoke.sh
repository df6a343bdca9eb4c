#!/usr/bin/env bash
# test_bench_smoke.sh BUILD_DIR - `make bench` end to end, tiny: every phase
# of scripts/bench.sh --smoke runs (forward, engine, half load, journal
# async and sync, Redis + Lua), and its JSON has every key the issue asks
# for, each a number. No figure is compared with anything: on a shared
# machine a timed threshold would only test the neighbours.
#
# Exit 77 (skipped) without redis-server, redis-cli, gnuplot or python3:
# the Redis figure is one of the required keys.
set -u

# shellcheck source=lib.sh
. "$(dirname "$0")/lib.sh"
lib_args "BUILD" "$@"
BUILD=$(cd "$BUILD" && pwd)
lib_need_cmd redis-server redis-cli gnuplot python3
for p in bin/authd bin/authctl bin/authgen bin/authdb \
	bin/perf_redis_peer bin/perf_load_users; do
	[ -x "$BUILD/$p" ] || skip "$BUILD/$p not built"
done
lib_init bsm
WORK=$TMP
LIB_STOP_GRACE=60   # bench.sh stops what it started itself, on SIGTERM

# In the background so that a ctest timeout (SIGTERM) reaches bench.sh's
# own cleanup (it stops what it started by PID) through ours.
lib_bg BENCH_PID "$REPO/scripts/bench.sh" --smoke --users 20000 --build "$BUILD" \
	--out-dir "$WORK/out" --cache-dir "$WORK/cache" >"$WORK/bench.log" 2>&1
rc=0
lib_wait "$BENCH_PID" || rc=$?
cat "$WORK/bench.log"
[ "$rc" = 0 ] || fail "scripts/bench.sh --smoke exited with status $rc"

shopt -s nullglob
jsons=("$WORK"/out/bench-*.json)
pngs=("$WORK"/out/bench-*.png)
[ ${#jsons[@]} = 1 ] || fail "expected one bench-*.json in $WORK/out, found ${#jsons[@]}"
[ ${#pngs[@]} = 1 ] || fail "expected one bench-*.png in $WORK/out, found ${#pngs[@]}"
[ "$(head -c 8 "${pngs[0]}" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] ||
	fail "${pngs[0]} is not a PNG"

python3 - "${jsons[0]}" <<'EOF' || fail "the JSON lacks a key or a number (above)"
import json, math, sys

r = json.load(open(sys.argv[1]))
keys = ["forward_records_per_s", "engine_decisions_per_s",
        "redis_lua_ops_per_s", "ratio_engine_to_forward",
        "ratio_engine_to_redis", "latency_ns.p50", "latency_ns.p99",
        "latency_ns.p999", "bytes_per_user", "snapshot_users_per_s", "users",
        "records_per_datagram", "cores"]
bad = []
for k in keys:
    v = r
    for part in k.split("."):
        v = v.get(part) if isinstance(v, dict) else None
    if isinstance(v, bool) or not isinstance(v, (int, float)) or \
            not math.isfinite(v):
        bad.append(f"{k} = {v!r}")
# what the run was asked to do, echoed exactly
if r.get("users") != 20000:
    bad.append(f"users = {r.get('users')!r}, expected 20000")
if r.get("records_per_datagram") != 16:
    bad.append(f"records_per_datagram = {r.get('records_per_datagram')!r}")
for k in ("machine", "git", "settings", "phases", "sync_ack", "scaling",
          "memory", "snapshot_load", "redis"):
    if not r.get(k):
        bad.append(f"{k} missing or empty")
if r.get("errors"):
    bad.append(f"errors: {r['errors']}")
for b in bad:
    print("  " + b)
sys.exit(1 if bad else 0)
EOF
echo "PASS: bench smoke JSON has every key with a number"
