#!/usr/bin/env bash
# bench.sh - `make bench`: the engine, its I/O ceiling and the home-grown
# peer, side by side, measured in one run on one machine.
#
# Phases, each authd a fresh process (own --file-prefix, own memif socket,
# on the first CPU; authgen on the second), each authgen run warmed up
# before it counts:
#   forward     authd --mode forward, closed loop at each window: the ceiling
#   engine      authd deciding (all rules, risk worker on), same authgen
#               settings, each window; the best window is the peak
#   half load   open loop at 50% of the engine's peak datagrams/s: latency
#               (and the forward path at the same rate, for the link's share)
#   journal     --journal --ack async, then --ack sync (journal in a temp dir
#               on a real disk), each window; sync also at half its peak
#   2 cores     authd on two dataplane lcores, authgen on two more: only when
#               nproc >= 4 (else recorded as skipped, with the core count)
#   redis       scripts/redis-peer.sh with the same users (authdb export),
#               best of pipelined and unpipelined
# plus memory per user (authdb mem), snapshot load rate (authdb bench-load),
# cycles per packet (authctl stats) in every authd phase, and the
# micro-benchmarks (Google Benchmark JSON). Writes OUT/bench-<stamp>.json and
# OUT/bench-<stamp>.png and prints a table. It never judges a figure against
# a threshold: the design targets are printed beside the figures, that is all.
# Exit status: 0 when every phase ran and every answer verified (capacity
# trouble - lost datagrams, BUSY, a full ring - is reported, not failed);
# 1 when an answer was wrong, authd did not exit cleanly, a program gave no
# report, or a step could not run; 2 on a usage error.
set -euo pipefail

# The whole script is one compound command, { ... exit; }: bash reads all of
# it before running any, so a file changed under a running bench (a pull, a
# checkout, an edit) cannot change what runs.
{
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ME=bench.sh

usage() {
	cat <<EOF
Usage: scripts/bench.sh [options]

Measures, in one run on this machine: authd forward-only (the I/O ceiling),
authd deciding with every rule on, authd with a journal (async and sync
acks), latency at half of the engine's peak, 2 dataplane cores (when the
machine has 4 cores or more), and Redis + Lua check-and-reserve on the same
users. Prints a table; writes OUT/bench-<stamp>.json and OUT/bench-<stamp>.png.
Use a quiet machine: every figure is shared-core sensitive.

  --users N         users in the base (default 10000000; k, M suffixes). The
                    base is made once and cached (--cache-dir) by size and
                    seed: base-N-S.snap, and users-N-S.csv for Redis
  --seconds S       measured seconds per run (default 10; decimals allowed)
  --warmup S        unmeasured seconds before each authgen run (default 2)
  --records N       records per datagram, 1..16 (default 16)
  --windows "W .."  closed-loop windows (datagrams in flight) tried for every
                    peak; the best counts, all are kept (default "16 64 256")
  --seed S          seed of the base and of the workload (default 1)
  --smoke           a quick end-to-end check, not a figure: 100k users,
                    1 s runs, 0.5 s warm-up, one window (32), 2 load runs,
                    no micro-benchmarks (explicit options still win)
  --skip-redis      no Redis phase (its keys are null in the JSON)
  --skip-micro      no micro-benchmarks (bench_dpdk, bench_engine)
  --scaling MODE    the 2-dataplane-core phase: auto (when nproc >= 4, the
                    default), on (always; on fewer cores the lcores overlap
                    and the figure means nothing), off
  --risk MODE       authd --risk in the deciding phases (default on)
  --ctrl-on WHERE   without a spare CPU (nproc < 3), where authd's ledger,
                    risk and ctl threads run: gen (DPDK's default: the CPU
                    outside authd's lcores, i.e. authgen's; the generator
                    then loses time to them) or dp (authd's own lcore: the
                    engine pays for its workers, the generator runs alone).
                    With a spare CPU they always get it
  --ops-max N       authd --ops-max (default: sized from the rates measured
                    so far and the run length: every authorization is
                    remembered, and a full op store answers BUSY)
  --journal-dir D   where the journal of the journal phases goes: a fresh
                    directory under D per phase, removed after it (default
                    \$TMPDIR or /tmp unless that is tmpfs, else build/bench)
  --load-runs N     authdb bench-load runs (default 5)
  --pipelines "P[xC] .."
                    Redis runs (default: scripts/redis-peer.sh's, "1x32
                    16x4 64x4")
  --out-dir DIR     where the JSON, the PNG and the micro-benchmark JSON go
                    (default perf/results)
  --build DIR       the Release build (default build/release, BUILD=build)
  --cache-dir DIR   where bases and Redis CSVs are cached (default
                    build/bench)
  --keep            keep the work directory (logs, every authgen JSON,
                    authctl stats)
  -h, --help        this text

The workload of every authd phase is the peer's: authorizations only, pay
later, amounts uniform 1..2,000 yuan, users and merchants from the base
(authgen --ids-from, so 1% are group payments), --records per datagram.
Latency is authgen's: from a datagram's scheduled send time to its answer,
through memif both ways (an upper bound of authd's RX-to-TX time).
Decided rates leave BUSY answers out (load shed, not decided).

CPUs: authd's dataplane lcore on the first CPU of our affinity, authgen on
the second (the 2-core phase: 2 and 2). authd's ledger, risk and ctl
threads get the CPUs left over; with none, see --ctrl-on. Each phase
records where every thread was allowed to run.

Exit status: 0 when every phase ran and every answer verified (lost
datagrams, BUSY and full rings are reported as notes); 1 on a wrong answer,
an authd that did not exit cleanly, a missing report or a failed step;
2 on a usage error.
EOF
}

die() {
	echo "$ME: $*" >&2
	exit 1
}

udie() {
	echo "$ME: $*" >&2
	echo "Try '$ME --help'." >&2
	exit 2
}

say() {
	echo "$*"
}

# ---- options ---------------------------------------------------------------

USERS=10000000 SECS=10 WARMUP=2 RECORDS=16 WINDOWS="16 64 256" SEED=1
SMOKE=0 SKIP_REDIS=0 SKIP_MICRO=0 SCALING=auto RISK=on OPS_MAX=auto CTRL_ON=gen
JOURNAL_PARENT= LOAD_RUNS=5 PIPELINES= OUT_DIR=$ROOT/perf/results
BUILD_DIR=$ROOT/${BUILD:-build}/release KEEP=0 CACHE=$ROOT/${BUILD:-build}/bench
set_users=0 set_secs=0 set_warmup=0 set_windows=0 set_runs=0 set_micro=0

while [ $# -gt 0 ]; do
	case $1 in
	--users) USERS=${2:?--users needs N}; set_users=1; shift 2 ;;
	--seconds) SECS=${2:?--seconds needs S}; set_secs=1; shift 2 ;;
	--warmup) WARMUP=${2:?--warmup needs S}; set_warmup=1; shift 2 ;;
	--records) RECORDS=${2:?--records needs N}; shift 2 ;;
	--windows) WINDOWS=${2:?--windows needs a list}; set_windows=1; shift 2 ;;
	--seed) SEED=${2:?--seed needs S}; shift 2 ;;
	--smoke) SMOKE=1; shift ;;
	--skip-redis) SKIP_REDIS=1; shift ;;
	--skip-micro) SKIP_MICRO=1; set_micro=1; shift ;;
	--scaling) SCALING=${2:?--scaling needs auto, on or off}; shift 2 ;;
	--risk) RISK=${2:?--risk needs on, shadow or off}; shift 2 ;;
	--ctrl-on) CTRL_ON=${2:?--ctrl-on needs gen or dp}; shift 2 ;;
	--ops-max) OPS_MAX=${2:?--ops-max needs N}; shift 2 ;;
	--journal-dir) JOURNAL_PARENT=${2:?--journal-dir needs DIR}; shift 2 ;;
	--load-runs) LOAD_RUNS=${2:?--load-runs needs N}; set_runs=1; shift 2 ;;
	--pipelines) PIPELINES=${2:?--pipelines needs a list}; shift 2 ;;
	--out-dir) OUT_DIR=${2:?--out-dir needs DIR}; shift 2 ;;
	--build) BUILD_DIR=${2:?--build needs DIR}; shift 2 ;;
	--cache-dir) CACHE=${2:?--cache-dir needs DIR}; shift 2 ;;
	--keep) KEEP=1; shift ;;
	-h | --help) usage; exit 0 ;;
	*) udie "unknown option '$1'" ;;
	esac
done

if [ "$SMOKE" = 1 ]; then
	[ "$set_users" = 1 ] || USERS=100000
	[ "$set_secs" = 1 ] || SECS=1
	[ "$set_warmup" = 1 ] || WARMUP=0.5
	[ "$set_windows" = 1 ] || WINDOWS=32
	[ "$set_runs" = 1 ] || LOAD_RUNS=2
	[ "$set_micro" = 1 ] || SKIP_MICRO=1
fi

count_arg() { # NAME VALUE: a count with an optional k/M suffix
	local v=$2
	case $v in
	*k | *K) v=$((${v%[kK]} * 1000)) ;;
	*M) v=$((${v%M} * 1000000)) ;;
	esac
	[[ $v =~ ^[1-9][0-9]*$ ]] || udie "$1: '$2' is not a positive count"
	echo "$v"
}
USERS=$(count_arg --users "$USERS")
[[ $SECS =~ ^[0-9]+(\.[0-9]+)?$ ]] && awk -v s="$SECS" 'BEGIN { exit !(s >= 0.1) }' ||
	udie "--seconds: at least 0.1, got '$SECS'"
[[ $WARMUP =~ ^[0-9]+(\.[0-9]+)?$ ]] || udie "--warmup: seconds, got '$WARMUP'"
[[ $RECORDS =~ ^[0-9]+$ && $RECORDS -ge 1 && $RECORDS -le 16 ]] ||
	udie "--records: 1..16, got '$RECORDS'"
[[ $SEED =~ ^[0-9]+$ ]] || udie "--seed: a number, got '$SEED'"
for w in $WINDOWS; do
	[[ $w =~ ^[1-9][0-9]*$ && $w -le 4096 ]] || udie "--windows: '$w' is not 1..4096"
done
[ -n "${WINDOWS// /}" ] || udie "--windows: empty list"
case $SCALING in auto | on | off) ;; *) udie "--scaling: auto, on or off" ;; esac
case $RISK in on | shadow | off) ;; *) udie "--risk: on, shadow or off" ;; esac
case $CTRL_ON in gen | dp) ;; *) udie "--ctrl-on: gen or dp" ;; esac
[ "$OPS_MAX" = auto ] || OPS_MAX=$(count_arg --ops-max "$OPS_MAX")
[[ $LOAD_RUNS =~ ^[1-9][0-9]*$ && $LOAD_RUNS -le 64 ]] || udie "--load-runs: 1..64"

for c in python3 gnuplot git; do
	command -v "$c" >/dev/null || die "$c not found (scripts/deps.sh)"
done
if [ "$SKIP_REDIS" = 0 ]; then
	for c in redis-server redis-cli; do
		command -v "$c" >/dev/null ||
			die "$c not found: install it (scripts/deps.sh) or give --skip-redis"
	done
fi
[ -x "$BUILD_DIR/bin/authctl" ] || die "$BUILD_DIR/bin/authctl is missing: build first (make release)"

# ---- environment -------------------------------------------------------------

# shellcheck source=scripts/authd-env.sh
. "$ROOT/scripts/authd-env.sh"
ENV_KEEP=$KEEP
ENV_QUIET=1
env_init "$BUILD_DIR" bench
JOURNAL_NOW=
BG_PID=
mkdir -p "$CACHE" "$OUT_DIR"
OUT_DIR=$(cd "$OUT_DIR" && pwd)

# Our own leftovers first (a journal directory, a background job), then
# authd-env.sh's: every process it started, by PID, and the work directory.
bench_cleanup() {
	local rc=$?
	# no set -e in here: "(exit $rc)", which hands the status on to
	# env_cleanup, would end the shell before it runs
	set +e
	if [ -n "$BG_PID" ] && kill -0 "$BG_PID" 2>/dev/null; then
		kill -TERM "$BG_PID" 2>/dev/null || true
		wait "$BG_PID" 2>/dev/null || true
	fi
	[ -z "$JOURNAL_NOW" ] || rm -rf "$JOURNAL_NOW"
	(exit "$rc")
	env_cleanup
}
trap bench_cleanup EXIT

STAMP=$(date -u +%Y%m%d-%H%M%S)
DATE_ISO=$(date -u +%Y-%m-%dT%H:%M:%SZ)
NPROC=$(nproc)
# The CPUs we may use, lowest first: authd's dataplane lcore on the first,
# authgen on the second (2 and 2 more for the 2-core phase).
mapfile -t CPUS < <(python3 -c 'import os; print(*sorted(os.sched_getaffinity(0)), sep="\n")')
DP_LC=${CPUS[0]}
GEN_LC=${CPUS[1]:-}
[ -n "$GEN_LC" ] || die "one CPU: authd and authgen need one each"
EAL_MEM=1024
PY=$ENV_DIR/bench.py
PHASES=$ENV_DIR/phases
mkdir -p "$PHASES"
FAILED=()

now() { date +%s.%N; }

# Run "$@" in the background and wait for it, so a signal stops the script
# at once (bash runs traps only between foreground commands) and the
# cleanup stops the job by its PID.
bg_run() {
	"$@" &
	BG_PID=$!
	local rc=0
	wait "$BG_PID" || rc=$?
	BG_PID=
	return "$rc"
}

# ---- the Python side: figures out of JSON, the report, the plot data ---------

cat >"$PY" <<'PYEOF'
import glob, json, math, os, re, sys

def load(path):
    with open(path) as f:
        return json.load(f)

def get(d, path, default=None):
    for k in path.split("."):
        if not isinstance(d, dict) or k not in d:
            return default
        d = d[k]
    return d

def counters(stats):
    return get(stats, "total.counters") or {}

def cycles_window(s_a, s_b):
    """cycles per packet between two authctl stats (None if no packets)"""
    if not s_a or not s_b:
        return None
    a, b = counters(s_a), counters(s_b)
    pk = b.get("busy_pkts", 0) - a.get("busy_pkts", 0)
    cy = b.get("busy_cycles", 0) - a.get("busy_cycles", 0)
    return cy / pk if pk > 0 else None

def tail(path, n=25):
    """the last lines of a log, without authgen's progress lines"""
    try:
        ls = [l.rstrip("\n") for l in open(path, errors="replace")]
    except OSError:
        return None
    ls = [l for l in ls if not re.match(r"^ *[0-9.]+s (warm-up )?sent", l)]
    return ls[-n:]

def phase_assemble(args):
    (out, name, kind, dlc, glc, arc, grc, t0, t1, t2, s0, s1, s2, gen,
     argsf, thr) = args
    def opt(path):
        try:
            return load(path)
        except Exception:
            return None
    a = load(argsf)
    st0, st1, st2 = opt(s0), opt(s1), opt(s2)
    genj = opt(gen)
    lc_n = len(dlc.split(","))
    p = {"name": name, "kind": kind, "authd_lcores": dlc,
         "authgen_lcores": glc, "authd_args": a["authd"],
         "authgen_args": a["authgen"], "authd_rc": int(arc),
         "authgen_rc": int(grc), "authgen": genj,
         "authctl_stats": {"start": st0, "measuring": st1, "end": st2},
         "threads": opt(thr),
         "authd_log_tail": tail(os.path.join(os.path.dirname(gen), name + ".log")),
         "authgen_out_tail": tail(os.path.join(os.path.dirname(gen), name + ".gen.out"))}
    # cycles per packet: over the measured window (from the first progress
    # line after the warm-up to the end), and since start (warm-up included)
    win = cycles_window(st1, st2)
    p["cycles_per_pkt"] = win if win is not None else cycles_window(st0, st2)
    p["cycles_per_pkt_window"] = "measured" if win is not None else \
        "whole run, warm-up included"
    p["cycles_per_pkt_since_start"] = get(st2, "total.cycles_per_pkt")
    hz = get(st2, "tsc_hz")
    rec = get(genj, "config.records_max")
    if p["cycles_per_pkt"] is not None and rec:
        p["cycles_per_record"] = p["cycles_per_pkt"] / rec
        if hz:
            p["ns_per_record"] = p["cycles_per_record"] * 1e9 / hz
    # share of the dataplane lcores' time in non-empty bursts (approximate:
    # the window ends when bench.sh saw the JSON, polled every 0.1 s)
    sa = st1 if win is not None else st0
    ta = float(t1) if win is not None else float(t0)
    if sa and st2 and hz and float(t2) > ta:
        busy = counters(st2).get("busy_cycles", 0) - counters(sa).get("busy_cycles", 0)
        p["authd_busy_pct"] = 100.0 * busy / hz / (float(t2) - ta) / lc_n
    c2 = counters(st2)
    p["authd_counters"] = {k: c2.get(k) for k in
                           ("ring_full", "journal_busy", "held_dropped",
                            "tx_dropped", "tx_retries", "risk_dropped", "held")}
    p["ledger"] = get(st2, "ledger")
    p["ops"] = get(st2, "ops")
    p["ok"] = (int(arc) == 0 and int(grc) == 0)
    with open(out, "w") as f:
        json.dump(p, f)

CORRECTNESS = ("dup_answers", "unexpected_answers", "bad_tag", "bad_header",
               "bad_echo", "wrong_ids", "model_mismatches")
CAPACITY = ("dgrams_lost", "late_answers", "tx_full", "inflight_full")

def problems(p):
    """(wrong answers, capacity notes) of a phase"""
    r = get(p, "authgen.results") or {}
    wrong = {k: r[k] for k in CORRECTNESS if r.get(k)}
    cap = {k: r[k] for k in CAPACITY if r.get(k)}
    if r.get("behind"):
        cap["behind"] = r["behind"]
    busy = get(r, "reasons.BUSY")
    if busy:
        cap["BUSY"] = busy
    for k, v in (p.get("authd_counters") or {}).items():
        if v and k in ("ring_full", "journal_busy", "held_dropped",
                       "tx_dropped", "risk_dropped"):
            cap["authd." + k] = v
    if p.get("authd_rc"):
        cap["authd_exit"] = p["authd_rc"]
    if p.get("authgen") is None:
        cap["no_authgen_json"] = p.get("authgen_rc")
    elif not answered(p):
        cap["no_answer"] = "no answer within the timeout: no figure"
    return wrong, cap

# A phase without a single answer has no figure: authgen then reports
# rates and latency quantiles of 0, which are not measurements.
def answered(p):
    return (get(p, "authgen.results.dgrams_answered") or 0) > 0

def busy_share(p):
    """share of the answered records that were BUSY (shed, not decided)"""
    r = get(p, "authgen.results") or {}
    n = r.get("records_answered") or 0
    return (get(r, "reasons.BUSY") or 0) / n if n else 0.0

def rate(p):
    """records decided per second: answered records minus BUSY ones (the
    engine sheds load with BUSY when its ledger ring is full or the op
    store is exhausted; those are not decisions). The forward mode has none."""
    if not answered(p):
        return None
    return get(p, "authgen.results.decisions_per_s") * (1.0 - busy_share(p))

def answered_rate(p):
    return get(p, "authgen.results.decisions_per_s") if answered(p) else None

def dgram_rate(p):
    return get(p, "authgen.results.datagrams_per_s") if answered(p) else None

def lat(p, q):
    # not get(): authgen names a quantile "p99.9"
    v = get(p, "authgen.results.latency_ns") or {}
    return v.get(q) if answered(p) else None

def fmt_rate(v):
    return "-" if v is None else f"{v:,.0f}"

def fmt_us(v):
    return "-" if v is None else f"{v / 1e3:,.1f}"

def phase_line(args):
    p = load(args[0])
    wrong, cap = problems(p)
    r = get(p, "authgen.results") or {}
    cfg = get(p, "authgen.config") or {}
    how = (f"rate {cfg.get('rate')}/s" if cfg.get("mode") == "open"
           else f"window {cfg.get('window')}")
    cyc = p.get("cycles_per_pkt")
    busy = p.get("authd_busy_pct")
    bs = busy_share(p)
    s = (f"   {p['name']}: {fmt_rate(rate(p))} records/s "
         f"{'' if not bs else f'decided ({100 * bs:.1f}% of answers BUSY) '}"
         f"({fmt_rate(dgram_rate(p))} datagrams/s), {how}, "
         f"p50 {fmt_us(lat(p, 'p50'))} us, p99 {fmt_us(lat(p, 'p99'))} us, "
         f"p99.9 {fmt_us(lat(p, 'p99.9'))} us")
    if cyc is not None:
        s += f", {cyc:,.0f} cycles/packet"
    if busy is not None:
        s += f", authd busy ~{busy:.0f}%"
    led = p.get("ledger") or {}
    if led.get("journal"):
        s += (f", fsync avg {led.get('fsync_us_avg', 0):,.0f} us max "
              f"{led.get('fsync_us_max', 0):,} us")
    if wrong:
        s += f"\n   WRONG ANSWERS: {wrong}"
    if cap:
        s += f"\n   note: {cap}"
    print(s)

def best(args):
    """the phase file with the highest decided rate, among the runs that
    were answered and answered correctly"""
    ps = [(f, load(f)) for f in args]
    pool = [(f, p) for f, p in ps if rate(p) and not problems(p)[0]]
    if not pool:
        return
    print(max(pool, key=lambda fp: rate(fp[1]))[0])

def getcmd(args):
    v = get(load(args[0]), args[1])
    print("" if v is None else v)

def half_rate(args):
    """floor(50% of the decided datagrams/s of a phase), at least 1"""
    p = load(args[0])
    v = dgram_rate(p)
    print(max(1, int(v * (1.0 - busy_share(p)) // 2)) if v else "")

def ops_for(args):
    """op store for a run: RATE records/s for SECONDS, margin 1.5, >= 1M,
    capped by CAP"""
    r, secs, cap = float(args[0]), float(args[1]), int(args[2])
    n = max(1 << 20, int(r * secs * 1.5) + (1 << 20))
    print(min(n, cap))

def parse_mem(text, users):
    m1 = re.search(r"user table .*?; (\d+) bytes\)", text)
    m2 = re.search(r"resident set growth (\d+) bytes", text)
    m0 = re.search(r"^users\s+(\d+)", text, re.M)
    n = int(m0.group(1)) if m0 else users
    return {"users": n,
            "user_table_bytes": int(m1.group(1)) if m1 else None,
            "whole_db_rss_bytes": int(m2.group(1)) if m2 else None,
            "user_table_bytes_per_user": int(m1.group(1)) / n if m1 else None,
            "whole_db_bytes_per_user": int(m2.group(1)) / n if m2 else None,
            "source": "authdb mem --users N --seed S (exact byte counts / N)",
            "output": text}

def parse_load(text):
    runs = [{"users": int(m.group(1)), "seconds": float(m.group(2)),
             "users_per_s": float(m.group(3)) * 1e6,
             "users_section_seconds": float(m.group(4)),
             "users_section_users_per_s": float(m.group(5)) * 1e6}
            for m in re.finditer(
                r"run \d+: (\d+) users in ([\d.]+) s: ([\d.]+) M users/s.*?"
                r"section in ([\d.]+) s: ([\d.]+) M users/s", text)]
    def mid(v):
        v = sorted(v)
        return v[len(v) // 2] if v else None
    w = [r["users_per_s"] for r in runs]
    u = [r["users_section_users_per_s"] for r in runs]
    return {"runs": runs,
            "whole_file_users_per_s_best": max(w) if w else None,
            "whole_file_users_per_s_median": mid(w),
            "users_section_users_per_s_best": max(u) if u else None,
            "users_section_users_per_s_median": mid(u),
            "source": "authdb bench-load (M users/s as printed, 2 decimals, x 1e6)",
            "output": text}

def ratio(a, b):
    return a / b if a is not None and b else None

def hist_curve(p):
    """[(percentile, latency_ns)] from authgen's histogram buckets"""
    h = get(p, "authgen.results.latency_ns.histogram") or []
    total = sum(b[2] for b in h)
    out, cum = [], 0
    for lo, hi, n in sorted(h):
        cum += n
        q = cum / total
        if q >= 1.0:
            q = 1.0 - 1.0 / (2 * total)   # the last point: no infinity
        out.append((q, hi))
    return out

def final(args):
    env = load(args[0])
    d = env["phases_dir"]
    ph = {}
    for f in sorted(glob.glob(os.path.join(d, "*.json"))):
        p = load(f)
        ph[p["name"]] = p
    sel = env["selected"]
    def P(key):
        n = sel.get(key)
        return ph.get(n) if n else None
    fwd, eng, half = P("forward"), P("engine"), P("engine_half")
    fhalf, jas, syn, shalf = (P("forward_half"), P("journal_async"),
                              P("sync"), P("sync_half"))
    two = P("scaling")
    redis = load(env["redis_json"]) if env.get("redis_json") else None
    mem = parse_mem(open(env["mem_out"]).read(), env["users"]) \
        if env.get("mem_out") else {}
    ld = parse_load(open(env["load_out"]).read()) if env.get("load_out") else {}

    fwd_r, eng_r = rate(fwd), rate(eng)
    red_r = get(redis, "redis_lua_ops_per_s")
    res = {
        "tool": "scripts/bench.sh", "format": 1,
        "date": env["date"], "stamp": env["stamp"],
        "git": env["git"], "machine": env["machine"],
        "settings": env["settings"],
        "forward_records_per_s": fwd_r,
        "engine_decisions_per_s": eng_r,
        "redis_lua_ops_per_s": red_r,
        "ratio_engine_to_forward": ratio(eng_r, fwd_r),
        "ratio_engine_to_redis": ratio(eng_r, red_r),
        "latency_ns": {
            "p50": lat(half, "p50"), "p99": lat(half, "p99"),
            "p999": lat(half, "p99.9"), "p9999": lat(half, "p99.99"),
            "max": lat(half, "max"),
            "rate_datagrams_per_s": get(half, "authgen.config.rate"),
            "peak_datagrams_per_s": dgram_rate(eng),
            "measured_by": "authgen open loop at 50% of the engine's peak "
                           "datagrams/s: scheduled send to answer, through "
                           "memif both ways (upper bound of authd RX to TX)"},
        "bytes_per_user": mem.get("whole_db_bytes_per_user"),
        "bytes_per_user_table": mem.get("user_table_bytes_per_user"),
        "snapshot_users_per_s": ld.get("whole_file_users_per_s_best"),
        "users": env["users"],
        "records_per_datagram": env["settings"]["records"],
        "cores": env["machine"]["nproc"],
        "dataplane_cores": 1,
        "forward_datagrams_per_s": dgram_rate(fwd),
        "engine_datagrams_per_s": dgram_rate(eng),
        "engine_window": get(eng, "authgen.config.window"),
        "engine_busy_share": busy_share(eng) if eng else None,
        "engine_answered_records_per_s": answered_rate(eng),
        "forward_window": get(fwd, "authgen.config.window"),
        "forward_half_load_latency_ns": {
            "p50": lat(fhalf, "p50"), "p99": lat(fhalf, "p99"),
            "p999": lat(fhalf, "p99.9"),
            "rate_datagrams_per_s": get(fhalf, "authgen.config.rate")},
        "redis_lua_unpipelined_ops_per_s":
            get(redis, "redis_lua_unpipelined_ops_per_s"),
        "redis_best_pipeline": get(redis, "best_pipeline"),
        "redis_load_users_per_s": get(redis, "load.users_per_s"),
        "memory": mem, "snapshot_load": ld,
        "cycles_per_packet": {k: (ph[n].get("cycles_per_pkt") if n in ph else None)
                              for k, n in sel.items() if n},
        "selected_phases": sel,
    }
    jas_r, syn_r = rate(jas), rate(syn)
    res["sync_ack"] = {
        "decisions_per_s": syn_r,
        "journal_async_decisions_per_s": jas_r,
        "ratio_sync_to_async_journal": ratio(syn_r, jas_r),
        "ratio_sync_to_engine": ratio(syn_r, eng_r),
        "window": get(syn, "authgen.config.window"),
        "latency_ns_closed_loop": {q: lat(syn, k) for q, k in
                                   (("p50", "p50"), ("p99", "p99"),
                                    ("p999", "p99.9"))},
        "half_load_latency_ns": {q: lat(shalf, k) for q, k in
                                 (("p50", "p50"), ("p99", "p99"),
                                  ("p999", "p99.9"))},
        "half_load_rate_datagrams_per_s": get(shalf, "authgen.config.rate"),
        "fsync_us_avg": get(syn, "ledger.fsync_us_avg"),
        "fsync_us_max": get(syn, "ledger.fsync_us_max"),
        "journal_batches": get(syn, "ledger.batches"),
        "journal_dir_fs": env["settings"].get("journal_fs"),
    } if syn or jas else {"skipped": "no journal phase ran"}
    if two:
        tr = rate(two)
        lcs = get(two, "authctl_stats.end.lcores") or []
        res["scaling"] = {"dataplane_cores": 2, "decisions_per_s": tr,
                          "per_core": tr / 2 if tr else None,
                          "ratio_to_one_core": ratio(tr, eng_r),
                          "records_per_lcore": [get(l, "counters.records")
                                                for l in lcs],
                          "cores": env["machine"]["nproc"]}
        if env["machine"]["nproc"] < 4:
            warn_early = (f"engine-2cores ran with {env['machine']['nproc']} "
                          "CPUs (--scaling on): authd's and authgen's lcores "
                          "overlapped, its figure means nothing")
            env.setdefault("warnings", []).append(warn_early)
    else:
        res["scaling"] = {"skipped": env.get("scaling_skipped", "not run"),
                          "cores": env["machine"]["nproc"]}
    res["micro"] = {}
    for name, path in (env.get("micro") or {}).items():
        try:
            res["micro"][name] = {"file": path, "google_benchmark": load(path)}
        except Exception as e:
            res["micro"][name] = {"file": path, "error": str(e)}
    res["redis"] = redis
    warn = list(env.get("warnings", []))
    for n, p in ph.items():
        wrong, cap = problems(p)
        if wrong:
            warn.append(f"{n}: wrong answers {wrong}")
        if cap:
            warn.append(f"{n}: {cap}")
    for key in ("engine_half", "forward_half", "sync_half"):
        p = ph.get(sel.get(key)) if sel.get(key) else None
        asked = get(p, "authgen.config.rate")
        got = dgram_rate(p)
        if asked and got is not None and got < 0.95 * asked:
            warn.append(f"{p['name']}: answered {got:,.0f} of the {asked:,} "
                        "datagrams/s asked: authd did not keep up with half "
                        "of the peak it reached in closed loop, so this "
                        "latency is queueing (the machine changed between "
                        "the runs, or open-loop arrivals cost more)")
    b = fwd.get("authd_busy_pct") if fwd else None
    if b is not None and b < 80:
        warn.append(f"forward: authd was busy ~{b:.0f}% of the measured time: "
                    "the ceiling is authgen's (one lcore verifying every "
                    "answer), not authd's I/O path; engine/forward is "
                    "flattered by that much")
    for n, p in ph.items():
        placed = [t for t in (get(p, "threads.authd") or [])
                  if t["name"] in ("authd-ledger", "authd-risk")]
        gen_cpus = p.get("authgen_lcores")
        dp_cpus = p.get("authd_lcores")
        if not placed or n != sel.get("engine"):
            continue
        if gen_cpus and all(t["cpus"] == gen_cpus for t in placed):
            warn.append(f"{n}: authd's ledger and risk threads ran on CPU "
                        f"{gen_cpus}, authgen's (no spare CPU): they take "
                        "time from the generator (see --ctrl-on)")
        elif dp_cpus and all(t["cpus"] == dp_cpus for t in placed):
            warn.append(f"{n}: authd's ledger and risk threads ran on CPU "
                        f"{dp_cpus}, the dataplane lcore's (--ctrl-on dp): "
                        "the engine figure pays for them")
    if redis is not None and not redis.get("ok"):
        warn.append("redis: a run failed its checks (see redis.runs)")
    res["warnings"] = warn
    res["errors"] = env.get("errors", [])
    res["phases"] = ph
    res["png"] = env["png"]
    with open(env["json_out"], "w") as f:
        json.dump(res, f, indent=1)
        f.write("\n")
    write_plot_data(env, res, ph, fwd, eng, syn, redis, half, fhalf, shalf)
    table(res, ph, sel, env)

def write_plot_data(env, res, ph, fwd, eng, syn, redis, half, fhalf, shalf):
    with open(env["bars_dat"], "w") as f:
        f.write("# label value_per_s (records, decisions or ops per second)\n")
        for lab, v in (("forward (I/O ceiling)", rate(fwd)),
                       ("engine", rate(eng)),
                       ("engine sync ack", rate(syn)),
                       ("Redis+Lua best", get(redis, "redis_lua_ops_per_s"))):
            f.write(f'"{lab}" {v if v is not None else "NaN"}\n')
    for key, p in (("lat_dat", half), ("lat_fwd_dat", fhalf),
                   ("lat_sync_dat", shalf)):
        with open(env[key], "w") as f:
            f.write("# percentile x=1/(1-p) latency_us\n")
            for q, ns in hist_curve(p) if p else []:
                f.write(f"{q:.6f} {1.0 / (1.0 - q):.3f} {ns / 1e3:.3f}\n")

def table(res, ph, sel, env):
    m = res["machine"]
    g = res["git"]
    print()
    print(f"== bench {res['date']}  {res['users']:,} users, "
          f"{res['records_per_datagram']} records/datagram, "
          f"{m['nproc']} cores ({m['cpu_model']}), kernel {m['kernel']}, "
          f"commit {g['commit'][:12]}{' (dirty tree)' if g['dirty'] else ''}")
    hdr = (f"{'phase':<26}{'load':>14}{'records/s':>14}{'dgrams/s':>12}"
           f"{'p50 us':>11}{'p99 us':>11}{'p99.9 us':>11}{'cyc/pkt':>10}"
           f"{'ns/rec':>8}{'BUSY%':>7}")
    print(hdr)
    print("-" * len(hdr))
    print("(records/s: decided records, BUSY answers left out; load: closed-loop"
          " window or open-loop datagrams/s)")
    order = [("forward", "forward (I/O ceiling)"), ("engine", "engine (decide)"),
             ("engine_half", "engine at half load"),
             ("forward_half", "forward at that rate"),
             ("journal_async", "engine journal, async"),
             ("sync", "engine journal, sync ack"),
             ("sync_half", "sync ack at half load"),
             ("scaling", "engine, 2 dataplane cores")]
    for key, label in order:
        p = ph.get(sel.get(key)) if sel.get(key) else None
        if not p:
            if key == "scaling":
                print(f"{label:<26}  skipped: {res['scaling'].get('skipped')}")
            continue
        cfg = get(p, "authgen.config") or {}
        load_s = (f"{cfg.get('rate')}/s" if cfg.get("mode") == "open"
                  else f"window {cfg.get('window')}")
        cyc = p.get("cycles_per_pkt")
        nsr = p.get("ns_per_record")
        print(f"{label:<26}{load_s:>14}{fmt_rate(rate(p)):>14}"
              f"{fmt_rate(dgram_rate(p)):>12}{fmt_us(lat(p, 'p50')):>11}"
              f"{fmt_us(lat(p, 'p99')):>11}{fmt_us(lat(p, 'p99.9')):>11}"
              f"{'-' if cyc is None else f'{cyc:,.0f}':>10}"
              f"{'-' if nsr is None else f'{nsr:,.0f}':>8}"
              f"{100 * busy_share(p):>7.1f}")
    r = res.get("redis")
    if r:
        for run in r.get("runs", []):
            l = run.get("latency", {})
            lab = f"Redis+Lua P={run['pipeline']} C={run['conns']}"
            print(f"{lab:<26}{'closed':>14}{fmt_rate(run.get('ops_per_s')):>14}"
                  f"{'-':>12}{fmt_us(l.get('p50_ns')):>11}"
                  f"{fmt_us(l.get('p99_ns')):>11}{fmt_us(l.get('p999_ns')):>11}"
                  f"{'-':>10}{'-':>8}")
    else:
        print(f"{'Redis+Lua':<26}  skipped")
    def rr(v):
        return "-" if v is None else f"{v:.3f}"
    print()
    print(f"decisions/s per core   engine {fmt_rate(res['engine_decisions_per_s'])}"
          f"   forward ceiling {fmt_rate(res['forward_records_per_s'])} records/s"
          f"   Redis+Lua {fmt_rate(res['redis_lua_ops_per_s'])} ops/s"
          f" (unpipelined {fmt_rate(res['redis_lua_unpipelined_ops_per_s'])})")
    print(f"ratios                 engine/forward {rr(res['ratio_engine_to_forward'])}"
          f" (design: >= 0.6)   engine/Redis {rr(res['ratio_engine_to_redis'])}"
          f" (design: >= 25)")
    s = res["sync_ack"]
    if "skipped" not in s:
        fsync = "-" if s["fsync_us_avg"] is None else f"{s['fsync_us_avg']:,.0f}"
        print(f"sync ack               {fmt_rate(s['decisions_per_s'])} decisions/s,"
              f" sync/async(journal) {rr(s['ratio_sync_to_async_journal'])}"
              f" (design: >= 0.5), sync/engine {rr(s['ratio_sync_to_engine'])},"
              f" p99 at half load {fmt_us(s['half_load_latency_ns']['p99'])} us,"
              f" fsync avg {fsync} us, max {s['fsync_us_max'] if s['fsync_us_max'] is not None else '-'} us")
    L = res["latency_ns"]
    print(f"latency at half load   {L['rate_datagrams_per_s'] or '-'} datagrams/s:"
          f" p50 {fmt_us(L['p50'])} us  p99 {fmt_us(L['p99'])} us"
          f"  p99.9 {fmt_us(L['p999'])} us (design, in-engine: p99 <= 10,"
          f" p99.9 <= 50; this is end to end through memif)")
    mm = res["memory"]
    if mm:
        bu = mm.get("user_table_bytes_per_user")
        bw = mm.get("whole_db_bytes_per_user")
        print(f"memory per user        user table "
              f"{'-' if bu is None else f'{bu:.1f}'} B, whole database "
              f"{'-' if bw is None else f'{bw:.1f}'} B (design: <= 100 all in)")
    ld = res["snapshot_load"]
    if ld:
        print(f"snapshot load          {fmt_rate(ld['whole_file_users_per_s_best'])}"
              f" users/s whole file (median {fmt_rate(ld['whole_file_users_per_s_median'])}),"
              f" users section {fmt_rate(ld['users_section_users_per_s_best'])}"
              f" (design: >= 10,000,000)")
    sc = res["scaling"]
    if "skipped" in sc:
        print(f"2 dataplane cores      skipped: {sc['skipped']}")
    else:
        print(f"2 dataplane cores      {fmt_rate(sc['decisions_per_s'])} decisions/s,"
              f" {fmt_rate(sc['per_core'])} per core, x{rr(sc['ratio_to_one_core'])}"
              f" of one core")
    for name, mi in res["micro"].items():
        print(f"micro-benchmark        {name}: {mi['file']}")
    if res["warnings"]:
        print("notes:")
        for w in res["warnings"]:
            print(f"  - {w}")
    if res["errors"]:
        print("ERRORS:")
        for w in res["errors"]:
            print(f"  - {w}")
    print(f"wrote {env['json_out']}")

def failed_phases(args):
    """phases with wrong answers, a failed authd or no authgen report"""
    for f in args:
        p = load(f)
        wrong, cap = problems(p)
        if wrong:
            print(f"{p['name']}: wrong answers {wrong}")
        elif p.get("authd_rc"):
            print(f"{p['name']}: authd exited with status {p['authd_rc']}")
        elif p.get("authgen") is None:
            print(f"{p['name']}: authgen wrote no report (exit {p.get('authgen_rc')})")

def machine(args):
    cpu = "unknown"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = None
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemTotal:"):
                mem = int(line.split()[1]) * 1024
    except OSError:
        pass
    print(json.dumps({"nproc": int(args[0]), "cpu_model": cpu,
                      "kernel": os.uname().release, "mem_total_bytes": mem,
                      "arch": os.uname().machine}))

def threads(args):
    """name and allowed CPUs of every thread of each NAME=PID"""
    res = {}
    for kv in args[1:]:
        who, pid = kv.split("=", 1)
        ts = []
        for t in sorted(glob.glob(f"/proc/{pid}/task/*")):
            try:
                comm = open(t + "/comm").read().strip()
                cpus = [l.split(":", 1)[1].strip() for l in open(t + "/status")
                        if l.startswith("Cpus_allowed_list")][0]
            except (OSError, IndexError):
                continue
            ts.append({"tid": int(os.path.basename(t)), "name": comm,
                       "cpus": cpus})
        res[who] = ts
    with open(args[0], "w") as f:
        json.dump(res, f)

def mem_available(args):
    for line in open("/proc/meminfo"):
        if line.startswith("MemAvailable:"):
            print(int(line.split()[1]) * 1024)
            return
    print(0)

cmds = {"phase-assemble": phase_assemble, "phase-line": phase_line,
        "best": best, "get": getcmd, "half-rate": half_rate,
        "ops-for": ops_for, "final": final, "failed": failed_phases,
        "machine": machine, "mem-available": mem_available,
        "threads": threads}
cmds[sys.argv[1]](sys.argv[2:])
PYEOF

py() {
	python3 "$PY" "$@"
}

# ---- authd and authgen with chosen lcores --------------------------------------

KEYS=$ENV_DIR/keys.ini
env_keys "$KEYS" 1

# CPUs neither of two lcore lists uses, comma-separated ("" if none).
spare_cpus() {
	local used=",$1,$2," c out=()
	for c in "${CPUS[@]}"; do
		[[ $used == *",$c,"* ]] || out+=("$c")
	done
	(IFS=,; echo "${out[*]}")
}

# authd NAME on lcores LCORES (EAL -l), memif server on $ENV_DIR/NAME.sock.
# DPDK puts authd's control threads (ledger, risk, ctl: rte_ctrl_thread)
# on the CPUs of its affinity outside its lcores: with SPARE CPUs it is
# started on LCORES + SPARE so they run there, else they land on the other
# CPUs (with 2 CPUs: authgen's) and the phase records where they ran.
bench_authd() {
	local name=$1 lcores=$2 spare=$3 pid pin=()
	shift 3
	if [ -n "$spare" ]; then
		pin=(taskset -c "$lcores,$spare")
	elif [ "$CTRL_ON" = dp ]; then
		# no CPU outside the lcores: DPDK puts them on the main lcore's
		pin=(taskset -c "$lcores")
	fi
	"${pin[@]}" "$ENV_AUTHD" --no-huge --no-pci -m "$EAL_MEM" \
		--file-prefix "$ENV_TAG-$name" -l "$lcores" \
		--vdev "net_memif0,role=server,socket=$ENV_DIR/$name.sock" -- \
		--port net_memif0 --ip 10.0.0.1 --snapshot "$SNAP" --keys "$KEYS" \
		"$@" >"$ENV_DIR/$name.log" 2>&1 &
	pid=$!
	ENV_NAMES+=("$name")
	ENV_PIDS+=("$pid")
	env_wait_ready "$name" "$pid"
}

# authgen for authd NAME on LCORES, in the background: its report and a
# progress line a second go to NAME.gen.out, its JSON to JSON; it lingers
# after the report until authd stops (scripts/authd-env.sh says why).
bench_authgen() {
	local name=$1 lcores=$2 json=$3 pid
	shift 3
	rm -f "$json"
	"$ENV_AUTHGEN" --no-huge --no-pci -m 256 --file-prefix "$ENV_TAG-gen$name" \
		-l "$lcores" --log-level=lib.eal:error \
		--vdev "net_memif0,role=client,socket=$ENV_DIR/$name.sock" -- \
		--dst-ip 10.0.0.1 --json "$json" --linger 120 --progress "$@" \
		>"$ENV_DIR/$name.gen.out" 2>&1 &
	pid=$!
	ENV_NAMES+=("gen$name")
	ENV_PIDS+=("$pid")
}

# authctl stats of authd NAME as JSON into FILE (empty on failure).
bench_stats() {
	env_authctl "$1" --json --timeout 3000 stats >"$2" 2>/dev/null || : >"$2"
}

# The JSON authgen wrote is complete once it parses.
json_ready() {
	[ -s "$1" ] && python3 -c 'import json,sys; json.load(open(sys.argv[1]))' "$1" 2>/dev/null
}

# The authgen options every phase shares: the peer's workload.
GEN_COMMON=(--keys "$KEYS" --gateway 1 --seed "$SEED" --records "$RECORDS"
	--mix authorize=100 --products paylater=100 --amounts uniform:1-2000
	--warmup "$WARMUP" --duration "$SECS" --timeout 1000)

# phase NAME KIND AUTHD_LCORES GEN_LCORES [authd options] -- [authgen options]
# One fresh authd and one authgen run; writes $PHASES/NAME.json (the authgen
# JSON, authctl stats at start, after the warm-up and at the end, exit
# statuses) and prints a line of figures.
phase() {
	local name=$1 kind=$2 dlc=$3 glc=$4
	shift 4
	local dargs=() gargs=() a
	while [ $# -gt 0 ] && [ "$1" != -- ]; do dargs+=("$1"); shift; done
	[ $# -gt 0 ] && shift
	gargs=("$@")
	local json=$ENV_DIR/$name.gen.json pfx=$ENV_DIR/$name
	local t0 t1 t2 arc=0 grc=0 gpid deadline spare
	spare=$(spare_cpus "$dlc" "$glc")
	say "== $name: authd -l $dlc${spare:+ (control threads on $spare)} ${dargs[*]};" \
		"authgen -l $glc ${gargs[*]}"
	python3 -c 'import json, sys
a = sys.argv[2:]
n = a.index("--")
json.dump({"authd": a[:n], "authgen": a[n + 1:]}, open(sys.argv[1], "w"))' \
		"$pfx.args.json" "${dargs[@]}" -- "${GEN_COMMON[@]}" "${gargs[@]}"
	bench_authd "$name" "$dlc" "$spare" "${dargs[@]}"
	bench_stats "$name" "$pfx.stats0.json"
	t0=$(now) t1=$t0
	bench_authgen "$name" "$glc" "$json" "${GEN_COMMON[@]}" "${gargs[@]}"
	gpid=$(env_pid "gen$name")
	sleep 0.2
	py threads "$pfx.threads.json" "authd=$(env_pid "$name")" "authgen=$gpid" || true
	deadline=$(awk -v a="$WARMUP" -v b="$SECS" -v t="$t0" 'BEGIN { printf "%d", t + a + b + 180 }')
	# authctl stats once the measured window has begun (authgen's first
	# progress line without "warm-up"), so cycles per packet leave it out
	: >"$pfx.stats1.json"
	while ! json_ready "$json" && kill -0 "$gpid" 2>/dev/null; do
		# warm-up lines read "  1.0s warm-up sent ...", measured ones "  3.0s sent"
		if [ ! -s "$pfx.stats1.json" ] &&
			grep -Eq '^ *[0-9.]+s sent' "$ENV_DIR/$name.gen.out" 2>/dev/null; then
			t1=$(now)
			bench_stats "$name" "$pfx.stats1.json"
		fi
		if [ "$(date +%s)" -gt "$deadline" ]; then
			echo "$ME: $name: authgen still running after $((deadline - ${t0%.*})) s: stopped" >&2
			kill -TERM "$gpid" 2>/dev/null || true
			break
		fi
		sleep 0.1
	done
	t2=$(now)
	bench_stats "$name" "$pfx.stats2.json"
	env_authd_stop "$name" || arc=$?
	env_authgen_wait "$name" || grc=$?
	# authgen exits 1 on lost datagrams too (the phase line says so); its
	# output matters when it left no report
	if [ "$grc" != 0 ] && ! json_ready "$json"; then
		grep -Ev '^ *[0-9.]+s (warm-up )?sent' "$ENV_DIR/$name.gen.out" | tail -15 >&2 || true
	fi
	[ -s "$pfx.stats1.json" ] || t1=$t0
	py phase-assemble "$PHASES/$name.json" "$name" "$kind" "$dlc" "$glc" \
		"$arc" "$grc" "$t0" "$t1" "$t2" "$pfx.stats0.json" \
		"$pfx.stats1.json" "$pfx.stats2.json" "$json" "$pfx.args.json" \
		"$pfx.threads.json"
	py phase-line "$PHASES/$name.json"
}

# sweep KIND [authd options]: one phase per window (a fresh journal for
# each when JOURNAL=1); SWEEP_BEST is the best run's file ("" if none ran).
# Not called in $(...): the processes it starts must stay known to the trap.
sweep() {
	local kind=$1 w files=() j=()
	shift
	for w in $WINDOWS; do
		j=()
		if [ "${JOURNAL:-0}" = 1 ]; then
			journal_new
			j=(--journal "$JOURNAL_NOW")
		fi
		phase "$kind-w$w" "$kind" "$DP_LC" "$GEN_LC" "$@" "${j[@]}" -- --window "$w"
		journal_done
		files+=("$PHASES/$kind-w$w.json")
	done
	SWEEP_BEST=$(py best "${files[@]}")
}

phase_name() {
	if [ -n "$1" ]; then basename "$1" .json; fi
}

# A fresh journal directory on a real disk for one phase: JOURNAL_NOW.
journal_new() {
	JOURNAL_NOW=$(mktemp -d "$JOURNAL_PARENT/authd-bench-journal.XXXXXX")
}

journal_done() {
	[ -z "$JOURNAL_NOW" ] || rm -rf "$JOURNAL_NOW"
	JOURNAL_NOW=
}

# ---- 0. what runs where ----------------------------------------------------------

# The commit is the one the build was made from (its CMake source tree),
# which need not be this checkout.
SRC=$(sed -n 's/^CMAKE_HOME_DIRECTORY:INTERNAL=//p' "$BUILD_DIR/CMakeCache.txt" 2>/dev/null)
SRC=${SRC:-$ROOT}
GIT_COMMIT=$(git -C "$SRC" rev-parse HEAD 2>/dev/null || echo unknown)
GIT_DIRTY=$(git -C "$SRC" status --porcelain --untracked-files=no 2>/dev/null | awk '{print $2}' | paste -sd' ' -)
MACHINE=$(py machine "$NPROC")
say "== bench $DATE_ISO: $USERS users, ${SECS} s runs after ${WARMUP} s warm-up," \
	"$RECORDS records/datagram, windows '$WINDOWS', $NPROC cores, build $BUILD_DIR"
say "   source $SRC, commit $GIT_COMMIT"
[ -z "$GIT_DIRTY" ] || say "   note: uncommitted changes in the source: $GIT_DIRTY"
if [ "$SMOKE" = 1 ]; then
	say "   smoke mode: a check that every step works, not a figure to quote"
fi

if [ -z "$JOURNAL_PARENT" ]; then
	JOURNAL_PARENT=${TMPDIR:-/tmp}
	case $(stat -f -c %T "$JOURNAL_PARENT" 2>/dev/null) in
	tmpfs | ramfs) JOURNAL_PARENT=$CACHE ;;
	esac
fi
mkdir -p "$JOURNAL_PARENT"
JOURNAL_FS=$(stat -f -c %T "$JOURNAL_PARENT")
case $JOURNAL_FS in
tmpfs | ramfs) die "--journal-dir $JOURNAL_PARENT is on $JOURNAL_FS: fdatasync would cost nothing; give a directory on a disk" ;;
esac

# ---- 1. the base, cached ------------------------------------------------------------

SNAP=$CACHE/base-$USERS-$SEED.snap
CSV=$CACHE/users-$USERS-$SEED.csv
if [ -s "$SNAP" ] && "$ENV_AUTHDB" info "$SNAP" >/dev/null 2>&1; then
	say "== base: $SNAP (cached)"
else
	say "== base: $USERS users, seed $SEED -> $SNAP"
	rm -f "$CSV"
	bg_run "$ENV_AUTHDB" gen --users "$USERS" --seed "$SEED" --out "$SNAP" ||
		die "authdb gen failed"
fi
if [ "$SKIP_REDIS" = 0 ] && { [ ! -s "$CSV" ] || [ "$SNAP" -nt "$CSV" ]; }; then
	# perf_redis_peer draws users u:1..u:N: the k-th user of the export
	# becomes u:k, with its limit, debt and holds unchanged.
	say "== users for Redis: authdb export -> $CSV (user k of the base as u:k)"
	bg_run bash -c 'set -o pipefail; "$1" export "$2" --users-csv - |
		awk -F, '\''NR == 1 { print; next } { print NR - 1 "," $2 "," $3 "," $4 }'\'' >"$3.tmp" &&
		mv "$3.tmp" "$3"' _ "$ENV_AUTHDB" "$SNAP" "$CSV" ||
		die "authdb export failed"
fi

# ---- 2. memory per user, snapshot load rate ---------------------------------------------

say "== memory per user: authdb mem --users $USERS --seed $SEED"
bg_run "$ENV_AUTHDB" mem --users "$USERS" --seed "$SEED" >"$ENV_DIR/mem.out" ||
	die "authdb mem failed"
sed 's/^/   /' "$ENV_DIR/mem.out"
say "== snapshot load: authdb bench-load --runs $LOAD_RUNS"
bg_run "$ENV_AUTHDB" bench-load --runs "$LOAD_RUNS" "$SNAP" >"$ENV_DIR/load.out" ||
	die "authdb bench-load failed"
tail -2 "$ENV_DIR/load.out" | sed 's/^/   /'

# ---- 3. forward: the I/O ceiling ------------------------------------------------------------

GEN_COMMON+=(--ids-from "$SNAP")
MEM_AVAIL=$(py mem-available)
# an op entry is 128 bytes plus its index; leave half the memory to others
OPS_CAP=$((MEM_AVAIL / 2 / 144))
sweep forward --mode forward
FWD=$SWEEP_BEST
[ -n "$FWD" ] || die "forward: no run produced figures"
say "   forward peak: $(py get "$FWD" authgen.results.decisions_per_s) records/s" \
	"at window $(py get "$FWD" authgen.config.window)"

# ---- 4. the engine: peak, then half load ------------------------------------------------------

RUN_S=$(awk -v a="$WARMUP" -v b="$SECS" 'BEGIN { print a + b }')
if [ "$OPS_MAX" = auto ]; then
	# Every authorization is remembered (idempotency), so the op store must
	# hold a whole run. The engine cannot answer faster than the echo path,
	# and 4 M records/s bounds one core with room to spare (docs/risk.md
	# measured 0.4-0.65 us a record); a full store would show as BUSY.
	FWD_R=$(py get "$FWD" authgen.results.decisions_per_s)
	OPS_SWEEP=$(py ops-for "$(awk -v f="$FWD_R" 'BEGIN { print (f < 4000000 ? f : 4000000) }')" \
		"$RUN_S" "$OPS_CAP")
else
	OPS_SWEEP=$OPS_MAX
fi
ENG_OPTS=(--mode decide --risk "$RISK")
sweep engine "${ENG_OPTS[@]}" --ack async --ops-max "$OPS_SWEEP"
ENG=$SWEEP_BEST
[ -n "$ENG" ] || die "engine: no run produced figures"
ENG_R=$(py get "$ENG" authgen.results.decisions_per_s)
ENG_W=$(py get "$ENG" authgen.config.window)
say "   engine peak: $ENG_R decisions/s at window $ENG_W"
OPS_RUN=$OPS_MAX
[ "$OPS_MAX" != auto ] || OPS_RUN=$(py ops-for "$ENG_R" "$RUN_S" "$OPS_CAP")

HALF=$(py half-rate "$ENG")
phase engine-half engine_half "$DP_LC" "$GEN_LC" "${ENG_OPTS[@]}" --ack async \
	--ops-max "$OPS_RUN" -- --rate "$HALF"
phase forward-half forward_half "$DP_LC" "$GEN_LC" --mode forward -- --rate "$HALF"

# ---- 5. journal: async acks, then sync acks -----------------------------------------------------

JOURNAL=1
sweep journal-async "${ENG_OPTS[@]}" --ack async --ops-max "$OPS_RUN"
JAS=$SWEEP_BEST
sweep sync "${ENG_OPTS[@]}" --ack sync --ops-max "$OPS_RUN"
SYN=$SWEEP_BEST
JOURNAL=0
SHALF=
if [ -n "$SYN" ]; then
	journal_new
	phase sync-half sync_half "$DP_LC" "$GEN_LC" "${ENG_OPTS[@]}" --ack sync \
		--ops-max "$OPS_RUN" --journal "$JOURNAL_NOW" -- \
		--rate "$(py half-rate "$SYN")"
	journal_done
	SHALF=$PHASES/sync-half.json
fi

# ---- 6. two dataplane cores ------------------------------------------------------------------------

SCALE= SCALING_SKIPPED=
if [ "$SCALING" = on ] || { [ "$SCALING" = auto ] && [ "$NPROC" -ge 4 ]; }; then
	DLC2="${CPUS[0]},${CPUS[1]}"
	GLC2="${CPUS[2]:-${CPUS[0]}},${CPUS[3]:-${CPUS[1]}}"
	# each authgen worker needs its own stream (and sends on its own queue)
	phase engine-2cores scaling "$DLC2" "$GLC2" "${ENG_OPTS[@]}" --ack async \
		--ops-max "$OPS_RUN" -- --window "$ENG_W" --streams 2
	SCALE=$PHASES/engine-2cores.json
elif [ "$SCALING" = off ]; then
	SCALING_SKIPPED="--scaling off"
else
	SCALING_SKIPPED="$NPROC cores: 2 dataplane lcores and 2 authgen lcores need 4"
fi
[ -z "$SCALING_SKIPPED" ] || say "== engine-2cores: skipped ($SCALING_SKIPPED)"

# ---- 7. the peer: Redis + Lua on the same users ------------------------------------------------------

REDIS_JSON=
if [ "$SKIP_REDIS" = 0 ]; then
	say "== redis: scripts/redis-peer.sh, the same $USERS users ($CSV)"
	RARGS=(--users "$USERS" --csv "$CSV" --seconds "$SECS" --warmup "$WARMUP"
		--seed "$SEED" --json "$ENV_DIR/redis.json" --build "$BUILD_DIR")
	[ -z "$PIPELINES" ] || RARGS+=(--pipelines "$PIPELINES")
	rc=0
	bg_run "$ROOT/scripts/redis-peer.sh" "${RARGS[@]}" >"$ENV_DIR/redis.out" 2>&1 || rc=$?
	[ "$rc" = 0 ] || FAILED+=("redis-peer.sh exit $rc")
	grep -Ev '^\{' "$ENV_DIR/redis.out" | sed 's/^/   /' || true
	[ ! -s "$ENV_DIR/redis.json" ] || REDIS_JSON=$ENV_DIR/redis.json
else
	say "== redis: skipped (--skip-redis)"
fi

# ---- 8. micro-benchmarks -------------------------------------------------------------------------------

MICRO=()
if [ "$SKIP_MICRO" = 0 ]; then
	for b in bench_dpdk bench_engine; do
		exe=$BUILD_DIR/bin/$b
		if [ ! -x "$exe" ]; then
			say "== $b: not built (Google Benchmark missing?): skipped"
			continue
		fi
		out=$OUT_DIR/$b-$STAMP.json
		say "== $b -> $out"
		rc=0
		bg_run "$exe" --benchmark_out="$out" --benchmark_out_format=json \
			--benchmark_min_time=0.5 >"$ENV_DIR/$b.out" 2>&1 || rc=$?
		if [ "$rc" = 0 ]; then
			MICRO+=("$b=$out")
		else
			FAILED+=("$b exit $rc")
			tail -5 "$ENV_DIR/$b.out" >&2
		fi
	done
fi

# ---- 9. the report ---------------------------------------------------------------------------------------

JSON_OUT=$OUT_DIR/bench-$STAMP.json
PNG_OUT=$OUT_DIR/bench-$STAMP.png
while IFS= read -r b; do
	FAILED+=("$b")
done < <(py failed "$PHASES"/*.json)
printf '%s\n' "${FAILED[@]}" >"$ENV_DIR/failed.txt"
printf '%s\n' "${MICRO[@]}" >"$ENV_DIR/micro.txt"

# Everything the report needs, through the environment (no quoting games).
B_DATE=$DATE_ISO B_STAMP=$STAMP B_USERS=$USERS B_SEED=$SEED B_SECS=$SECS \
B_WARMUP=$WARMUP B_RECORDS=$RECORDS B_WINDOWS=$WINDOWS B_SMOKE=$SMOKE \
B_SKIP_REDIS=$SKIP_REDIS B_SKIP_MICRO=$SKIP_MICRO B_SCALING=$SCALING \
B_RISK=$RISK B_OPS_MAX=$OPS_MAX B_OPS_SWEEP=$OPS_SWEEP B_OPS_RUN=$OPS_RUN \
B_EAL_MEM=$EAL_MEM B_LOAD_RUNS=$LOAD_RUNS B_PIPELINES=$PIPELINES \
B_JOURNAL_PARENT=$JOURNAL_PARENT B_JOURNAL_FS=$JOURNAL_FS B_BUILD=$BUILD_DIR \
B_OUT_DIR=$OUT_DIR B_SNAP=$SNAP B_CSV=$CSV B_GIT_COMMIT=$GIT_COMMIT \
B_GIT_DIRTY=$GIT_DIRTY B_MACHINE=$MACHINE B_DIR=$ENV_DIR B_PHASES=$PHASES \
B_SEL_FORWARD=$(phase_name "$FWD") B_SEL_ENGINE=$(phase_name "$ENG") \
B_SEL_JAS=$(phase_name "$JAS") B_SEL_SYNC=$(phase_name "$SYN") \
B_SEL_SHALF=$(phase_name "$SHALF") B_SEL_SCALE=$(phase_name "$SCALE") \
B_SCALING_SKIPPED=$SCALING_SKIPPED B_REDIS_JSON=$REDIS_JSON \
B_JSON_OUT=$JSON_OUT B_PNG_OUT=$PNG_OUT B_SRC=$SRC B_DP_LC=$DP_LC \
B_GEN_LC=$GEN_LC B_SPARE=$(spare_cpus "$DP_LC" "$GEN_LC") B_CTRL_ON=$CTRL_ON \
python3 - "$ENV_DIR/env.json" <<'PYEOF'
import json, os, sys
E = os.environ
d = E["B_DIR"]
def lines(name):
    return [l.strip() for l in open(os.path.join(d, name)) if l.strip()]
env = {
    "date": E["B_DATE"], "stamp": E["B_STAMP"], "users": int(E["B_USERS"]),
    "git": {"commit": E["B_GIT_COMMIT"], "dirty": bool(E["B_GIT_DIRTY"].split()),
            "dirty_files": E["B_GIT_DIRTY"].split(), "source": E["B_SRC"]},
    "machine": json.loads(E["B_MACHINE"]),
    "settings": {
        "users": int(E["B_USERS"]), "seed": int(E["B_SEED"]),
        "seconds": float(E["B_SECS"]), "warmup_s": float(E["B_WARMUP"]),
        "records": int(E["B_RECORDS"]),
        "windows": [int(w) for w in E["B_WINDOWS"].split()],
        "smoke": E["B_SMOKE"] == "1", "skip_redis": E["B_SKIP_REDIS"] == "1",
        "skip_micro": E["B_SKIP_MICRO"] == "1", "scaling": E["B_SCALING"],
        "risk": E["B_RISK"], "ops_max": E["B_OPS_MAX"],
        "ops_max_sweep": int(E["B_OPS_SWEEP"]),
        "ops_max_runs": int(E["B_OPS_RUN"]),
        "eal_mem_mb": int(E["B_EAL_MEM"]), "load_runs": int(E["B_LOAD_RUNS"]),
        "redis_pipelines": E["B_PIPELINES"] or "redis-peer.sh default",
        "journal_parent": E["B_JOURNAL_PARENT"], "journal_fs": E["B_JOURNAL_FS"],
        "build": E["B_BUILD"], "out_dir": E["B_OUT_DIR"],
        "snapshot": E["B_SNAP"], "redis_users_csv": E["B_CSV"],
        "authd_lcores": E["B_DP_LC"], "authgen_lcores": E["B_GEN_LC"],
        "ctrl_on": E["B_CTRL_ON"],
        "authd_control_threads": (E["B_SPARE"] and f"CPUs {E['B_SPARE']} (spare)")
            or ("authd's dataplane CPU (--ctrl-on dp)" if E["B_CTRL_ON"] == "dp"
                else "authgen's CPU (--ctrl-on gen: DPDK's default, the CPUs "
                     "outside authd's lcore)"),
        "workload": "authorize=100, paylater=100, amounts uniform 1-2000 "
                    "yuan, users and merchants from the base (--ids-from, "
                    "1% group payments), fixed records per datagram; Redis: "
                    "the k-th user of the base as u:k, amounts 1-2000 yuan"},
    "selected": {"forward": E["B_SEL_FORWARD"], "engine": E["B_SEL_ENGINE"],
                 "engine_half": "engine-half", "forward_half": "forward-half",
                 "journal_async": E["B_SEL_JAS"], "sync": E["B_SEL_SYNC"],
                 "sync_half": E["B_SEL_SHALF"], "scaling": E["B_SEL_SCALE"]},
    "scaling_skipped": E["B_SCALING_SKIPPED"],
    "phases_dir": E["B_PHASES"],
    "redis_json": E["B_REDIS_JSON"],
    "mem_out": os.path.join(d, "mem.out"), "load_out": os.path.join(d, "load.out"),
    "micro": dict(kv.split("=", 1) for kv in lines("micro.txt")),
    "warnings": [],
    "errors": lines("failed.txt"),
    "json_out": E["B_JSON_OUT"], "png": E["B_PNG_OUT"],
    "bars_dat": os.path.join(d, "bars.dat"), "lat_dat": os.path.join(d, "lat.dat"),
    "lat_fwd_dat": os.path.join(d, "lat_fwd.dat"),
    "lat_sync_dat": os.path.join(d, "lat_sync.dat"),
}
json.dump(env, open(sys.argv[1], "w"))
PYEOF
py final "$ENV_DIR/env.json"

TITLE="authd bench $DATE_ISO: $USERS users, $RECORDS records/datagram, $NPROC cores"
[ "$SMOKE" = 0 ] || TITLE="$TITLE (smoke: not a figure)"
if gnuplot -e "bars='$ENV_DIR/bars.dat'; lat='$ENV_DIR/lat.dat'; lat_fwd='$ENV_DIR/lat_fwd.dat'; lat_sync='$ENV_DIR/lat_sync.dat'; out='$PNG_OUT'; title='$TITLE'" \
	"$ROOT/perf/bench_plot.gp" 2>"$ENV_DIR/gnuplot.err"; then
	say "wrote $PNG_OUT"
else
	cat "$ENV_DIR/gnuplot.err" >&2
	FAILED+=("gnuplot")
fi

if [ ${#FAILED[@]} -gt 0 ]; then
	echo "$ME: failed: ${FAILED[*]}" >&2
	exit 1
fi
exit 0
}
