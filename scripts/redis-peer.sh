#!/usr/bin/env bash
# redis-peer.sh - measure the home-grown peer of authd: Redis + a Lua
# check-and-reserve script (perf/redis/check_reserve.lua).
#
# Starts a private redis-server (unix socket only, no persistence) in a
# temporary directory, loads users with perf_load_users | redis-cli --pipe,
# runs perf_redis_peer once per pipeline depth (default 1, 16 and 64, each
# with several connections, as many clients would use Redis), prints
# a table and one JSON line, and always stops the server it started (by its
# PID) and removes the directory. See perf/README.md.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
me=redis-peer.sh

usage() {
	cat <<EOF
usage: scripts/redis-peer.sh [options]

Measures Redis + Lua check-and-reserve (the home-grown peer) on this host:
a private redis-server, N users, then perf_redis_peer for S seconds at each
pipeline depth P with C connections. Prints a table, then one JSON line whose
redis_lua_ops_per_s is the best rate of all runs (and
redis_lua_unpipelined_ops_per_s the best at P=1). Needs redis-server,
redis-cli, python3 and the perf binaries (make release).

  --users N        users to load (default 1000000)
  --csv FILE       load users from FILE (user_id,limit_fen,outstanding_fen,
                   holds_fen) instead of generating them; the driver draws
                   ids 1..N, so give --users N to match
  --seed S         seed of the generated limits (default 1)
  --seconds S      measured seconds per run (default 10)
  --warmup S       unmeasured seconds before each run (default 1)
  --pipelines "P[xC] .."  runs: pipeline depth P with C connections
                   (default "1x32 16x4 64x4": one connection alone at P=1
                   measures the round trip, not Redis)
  --conns C        connections for runs given without xC (default 1)
  --threads T      driver threads the connections share (default 1;
                   at most C)
  --retry-pct X    X% of requests resend an answered request id (default 0)
  --repeat R       run every depth R times (default 1); best counts
  --smoke          quick check: 10000 users, 1 s per run, no warm-up
  --json FILE      also write the JSON line to FILE
  --build DIR      build directory with perf/perf_redis_peer
                   (default $repo/build/release)
  --help           this text

Exit status: 0 when every run answered correctly and passed its check.
EOF
}

die() {
	echo "$me: $*" >&2
	exit 1
}

users=1000000 seconds=10 warmup=1 seed=1 conns=1 threads=1 repeat=1
retry_pct=0
pipelines="1x32 16x4 64x4" csv= json= build="$repo/build/release" smoke=0
users_set=0 seconds_set=0 warmup_set=0

while [ $# -gt 0 ]; do
	case "$1" in
	--users) users=${2:?--users needs N}; users_set=1; shift ;;
	--csv) csv=${2:?--csv needs FILE}; shift ;;
	--seed) seed=${2:?--seed needs S}; shift ;;
	--seconds) seconds=${2:?--seconds needs S}; seconds_set=1; shift ;;
	--warmup) warmup=${2:?--warmup needs S}; warmup_set=1; shift ;;
	--pipelines) pipelines=${2:?--pipelines needs depths}; shift ;;
	--conns) conns=${2:?--conns needs C}; shift ;;
	--threads) threads=${2:?--threads needs T}; shift ;;
	--retry-pct) retry_pct=${2:?--retry-pct needs X}; shift ;;
	--repeat) repeat=${2:?--repeat needs R}; shift ;;
	--smoke) smoke=1 ;;
	--json) json=${2:?--json needs FILE}; shift ;;
	--build) build=${2:?--build needs DIR}; shift ;;
	-h|--help) usage; exit 0 ;;
	*) usage >&2; die "unknown option '$1'" ;;
	esac
	shift
done

if [ "$smoke" = 1 ]; then
	[ "$users_set" = 1 ] || users=10000
	[ "$seconds_set" = 1 ] || seconds=1
	[ "$warmup_set" = 1 ] || warmup=0
fi
[[ $retry_pct =~ ^[0-9]+$ ]] || die "--retry-pct wants 0..100, got '$retry_pct'"
for v in users conns threads repeat; do
	[[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "--$v wants a positive integer, got '${!v}'"
done
for p in $pipelines; do
	[[ $p =~ ^[1-9][0-9]*(x[1-9][0-9]*)?$ ]] ||
		die "--pipelines: '$p' is not P or PxC (e.g. 16x4)"
done

peer="$build/bin/perf_redis_peer"
loader="$build/bin/perf_load_users"
lua="$repo/perf/redis/check_reserve.lua"
for b in "$peer" "$loader"; do
	[ -x "$b" ] || die "$b not found: run 'make release' or give --build DIR"
done
for c in redis-server redis-cli python3; do
	command -v "$c" >/dev/null || die "$c not found: run scripts/deps.sh"
done
[ -z "$csv" ] || [ -r "$csv" ] || die "cannot read --csv $csv"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/redis-peer.XXXXXX")
sock="$tmp/redis.sock"
server_pid= job_pid=

# A signal runs the EXIT trap at once: the long steps run as background
# jobs that the script waits for, since bash would finish a foreground
# command before running a trap.
cleanup() {
	if [ -n "$job_pid" ]; then
		kill "$job_pid" 2>/dev/null || true
		wait "$job_pid" 2>/dev/null || true
	fi
	if [ -n "$server_pid" ]; then
		kill "$server_pid" 2>/dev/null || true
		wait "$server_pid" 2>/dev/null || true
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

start_server() {
	redis-server --port 0 --unixsocket "$sock" --unixsocketperm 700 \
		--save '' --appendonly no --daemonize no --dir "$tmp" \
		--logfile "$tmp/redis.log" </dev/null >/dev/null 2>&1 &
	server_pid=$!
	for _ in $(seq 200); do
		if [ -S "$sock" ] &&
			[ "$(redis-cli -s "$sock" ping 2>/dev/null)" = PONG ]; then
			return 0
		fi
		kill -0 "$server_pid" 2>/dev/null ||
			die "redis-server exited at start: $(tail -5 "$tmp/redis.log" 2>/dev/null)"
		sleep 0.05
	done
	die "redis-server did not answer on $sock within 10 s"
}

load_users() {
	local src=(--users "$users" --seed "$seed") t0 t1 out
	[ -z "$csv" ] || src=(--csv "$csv")
	t0=$(date +%s.%N)
	{ "$loader" "${src[@]}" 2>"$tmp/loader.err" |
		redis-cli -s "$sock" --pipe >"$tmp/pipe.out" 2>&1; } &
	job_pid=$!
	wait "$job_pid" ||
		die "loading users failed: $(cat "$tmp/loader.err" "$tmp/pipe.out")"
	job_pid=
	t1=$(date +%s.%N)
	out=$(cat "$tmp/pipe.out")
	[[ $out == *"errors: 0,"* ]] || die "redis-cli --pipe reported errors: $out"
	loaded=$(redis-cli -s "$sock" dbsize)
	if [ -z "$csv" ] && [ "$loaded" != "$users" ]; then
		die "expected $users users in Redis, found $loaded keys"
	fi
	load_s=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
	echo "$me: loaded $loaded users in $load_s s" \
		"($(awk -v n="$loaded" -v s="$load_s" 'BEGIN { printf "%.0f", n / s }') users/s)" >&2
}

# Each run checks that the holds of users 1..N grew by what it approved; the
# sum before a run is known (0 after generating users, then the previous
# run's sum after), which saves one pass over every user per run.
run_peer() {
	local p=${1%x*} c=$conns t=$threads rep=$2 rc=0 known=()
	[[ $1 != *x* ]] || c=${1#*x}
	[ "$t" -le "$c" ] || t=$c
	[ -z "$holds" ] || known=(--holds-before "$holds")
	echo "$me: run $rep/$repeat, pipeline $p, $c connection(s), ${seconds} s" >&2
	"$peer" --socket "$sock" --users "$users" --seconds "$seconds" \
		--warmup "$warmup" --pipeline "$p" --conns "$c" \
		--threads "$t" --retry-pct "$retry_pct" \
		--seed "$((seed + rep))" --script "$lua" \
		--label "P=$p C=$c run $rep" "${known[@]}" >"$tmp/run.json" &
	job_pid=$!
	wait "$job_pid" || rc=$?
	job_pid=
	cat "$tmp/run.json" >>"$tmp/runs.jsonl"
	holds=$(sed -n 's/.*"holds_after_fen":\([0-9]*\).*/\1/p' "$tmp/run.json")
	[ "$rc" = 0 ] || failed=1
}

start_server
load_users
failed=0
holds=
[ -n "$csv" ] || holds=0
for rep in $(seq "$repeat"); do
	for p in $pipelines; do
		run_peer "$p" "$rep"
	done
done

# Table and JSON line from the drivers' JSON objects (one per line).
python3 - "$tmp/runs.jsonl" "$users" "$load_s" "$loaded" "$seconds" \
	"$seed" "$(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p')" \
	"${json:-}" <<'EOF'
import json, sys

path, users, load_s, loaded, seconds, seed, version, out = sys.argv[1:9]
runs = [json.loads(line) for line in open(path) if line.strip()]
print(f"{'P':>4} {'conns':>5} {'ops/s':>10} {'p50 us':>8} {'p99 us':>8} "
      f"{'p99.9 us':>9} {'approved':>10} {'declined':>9} {'check':>6}")
for r in runs:
    lat, tot, chk = r["latency"], r["total"], r["check"]
    check = ("ok" if chk.get("ok") else "FAIL") if chk.get("done") else "-"
    if not r["ok"]:
        check = "FAIL"
    print(f"{r['pipeline']:>4} {r['conns']:>5} {r['ops_per_s']:>10.0f} "
          f"{lat['p50_ns'] / 1e3:>8.1f} {lat['p99_ns'] / 1e3:>8.1f} "
          f"{lat['p999_ns'] / 1e3:>9.1f} {tot['approved']:>10} "
          f"{tot['declined_credit']:>9} {check:>6}")

def best(rs):
    return max(rs, key=lambda r: r["ops_per_s"]) if rs else None

good = [r for r in runs if r["ok"]]
top = best(good)
unpiped = best([r for r in good if r["pipeline"] == 1])
result = {
    "tool": "redis-peer",
    "redis_version": version,
    "users": int(users),
    "seed": int(seed),
    "seconds": float(seconds),
    "load": {"users": int(loaded), "seconds": float(load_s),
             "users_per_s": round(int(loaded) / float(load_s))
             if float(load_s) > 0 else None},
    "redis_lua_ops_per_s": top["ops_per_s"] if top else None,
    "best_pipeline": top["pipeline"] if top else None,
    "redis_lua_unpipelined_ops_per_s": unpiped["ops_per_s"] if unpiped else None,
    "ok": bool(runs) and len(good) == len(runs),
    "runs": runs,
}
line = json.dumps(result, separators=(",", ":"))
print(line)
if out:
    with open(out, "w") as f:
        f.write(line + "\n")
EOF

[ "$failed" = 0 ] || die "a run failed (wrong answer, failed check or Redis error): see above"
