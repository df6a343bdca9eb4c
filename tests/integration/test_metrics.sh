#!/usr/bin/env bash
# test_metrics.sh BUILD_DIR - authd --metrics scraped by a real Prometheus
# (docs/metrics.md).
#
# 1. authd (memif, one lcore, fixed clock) with --metrics on a loopback
#    port; a real Prometheus server (its own config, scraping authd every
#    1 s, its TSDB in the test's directory, its own loopback port) sees
#    authd_up and authd_decisions_total = 0 before any load.
# 2. authgen sends a known number of records (every op and product, some
#    faults) and a known number of bad datagrams by cause; once Prometheus
#    has scraped after the load, its HTTP API must say:
#    sum(authd_decisions_total) rose by exactly the records authgen sent,
#    sum by reason = authgen's reasons (APPROVED among them), the drops by
#    cause = what was injected, the latency histogram's +Inf bucket =
#    its _count, and histogram_quantile() gives a finite p99.
# 3. The exposition text itself: promtool check metrics (when installed),
#    every family has # HELP and # TYPE, histogram buckets cumulative;
#    every query of the Grafana dashboard (docs/grafana-authd.json) runs.
# 4. A second authd with --metrics on the same port stops at start with a
#    clear message (exit 1), also when started from a -c file alone (its
#    [eal] args give the EAL's options); a bad --metrics value on the
#    command line and in a -c file are refused, naming the option (and the
#    file and line).
# Every process is stopped by its pid (scripts/authd-env.sh's cleanup).
#
# Ports: two free loopback ports chosen by the kernel (bind to port 0), so
# parallel runs never collide. Skipped (exit 77) without prometheus.
set -uo pipefail

BUILD=${1:?usage: test_metrics.sh BUILD_DIR}
HERE=$(cd "$(dirname "$0")" && pwd)
PROMETHEUS=${PROMETHEUS:-$(command -v prometheus)}
PROMTOOL=${PROMTOOL:-$(command -v promtool)}
if [ -z "$PROMETHEUS" ]; then
	echo "SKIP: needs prometheus (scripts/deps.sh)"
	exit 77
fi
# shellcheck source=../../scripts/authd-env.sh
. "$HERE/../../scripts/authd-env.sh"
env_init "$BUILD" tmetrics

T=1764057600 # 2025-11-25T08:00:00Z
COUNT=3000
INJECT="tag=3,replay=2,magic=1"
LOG=authd
fail() {
	echo "FAIL: $*" >&2
	echo "--- $LOG log (last 20 lines)" >&2
	tail -n 20 "$ENV_DIR/$LOG.log" >&2 2>/dev/null
	echo "--- prometheus log (last 10 lines)" >&2
	tail -n 10 "$ENV_DIR/prometheus.log" >&2 2>/dev/null
	exit 1
}
ok() { echo "ok - $*"; }

free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# q.py: Prometheus' HTTP API and the exposition text, one function per use.
cat >"$ENV_DIR/q.py" <<'PY'
import json, sys, time, urllib.parse, urllib.request

def get(url):
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.status, r.headers.get("Content-Type"), r.read().decode()

def value(base, expr):
    """The value of an instant query with one result ("" when none)."""
    _, _, body = get(base + "/api/v1/query?" +
                     urllib.parse.urlencode({"query": expr}))
    j = json.loads(body)
    if j["status"] != "success":
        sys.exit("query %s: %s" % (expr, body))
    res = j["data"]["result"]
    if not res:
        return ""
    if len(res) != 1:
        sys.exit("query %s: %d series" % (expr, len(res)))
    v = res[0]["value"][1]
    return str(int(float(v))) if float(v).is_integer() else v

def query(base, expr):
    print(value(base, expr))

def wait_ready(base, seconds):
    end = time.time() + float(seconds)
    while time.time() < end:
        try:
            if get(base + "/-/ready")[0] == 200:
                return
        except Exception:
            pass
        time.sleep(0.1)
    sys.exit("prometheus not ready")

def wait_value(base, expr, op, want, seconds):
    """Until the query's value is > or == want; print it."""
    end, v = time.time() + float(seconds), ""
    while time.time() < end:
        v = value(base, expr)
        if v != "" and ((op == "gt" and float(v) > float(want)) or
                        (op == "eq" and float(v) == float(want))):
            print(v)
            return
        time.sleep(0.2)
    sys.exit("%s: %r after %s s, wanted %s %s" % (expr, v, seconds, op, want))

def scrape(url, out):
    status, ctype, body = get(url)
    if status != 200 or not ctype.startswith("text/plain; version=0.0.4"):
        sys.exit("GET %s: %s %s" % (url, status, ctype))
    open(out, "w").write(body)

def text_check(path):
    """Every family has HELP and TYPE before its samples; histograms are
    cumulative and +Inf equals _count."""
    types, helps, buckets, counts = {}, set(), {}, {}
    for line in open(path):
        line = line.rstrip("\n")
        if line.startswith("# HELP "):
            helps.add(line.split()[2])
        elif line.startswith("# TYPE "):
            _, _, name, t = line.split()
            types[name] = t
        elif line:
            name = line.split("{")[0].split(" ")[0]
            base = name
            for suf in ("_bucket", "_sum", "_count"):
                if name.endswith(suf) and types.get(name[:-len(suf)]) == "histogram":
                    base = name[:-len(suf)]
            if base not in types or base not in helps:
                sys.exit("sample %s before its # HELP / # TYPE" % name)
            v = float(line.rsplit(" ", 1)[1])
            if name.endswith("_bucket") and base != name:
                labels = line.split("{")[1].split("}")[0]
                key = (base, ",".join(l for l in labels.split(",")
                                      if not l.startswith("le=")))
                prev = buckets.get(key, -1)
                if v < prev:
                    sys.exit("%s: buckets not cumulative" % base)
                buckets[key] = v
            elif name.endswith("_count") and base != name:
                counts[(base, "")] = v
    for (base, labels), inf in buckets.items():
        if counts.get((base, labels)) not in (None, inf):
            sys.exit("%s: +Inf %s != _count %s" % (base, inf, counts[(base, labels)]))
    print("%d families, %d histograms" % (len(types),
          sum(1 for t in types.values() if t == "histogram")))

def dashboard(base, path):
    """Every query of the Grafana dashboard runs on this Prometheus."""
    d, n = json.load(open(path)), 0
    for p in d["panels"]:
        for t in p["targets"]:
            expr = t["expr"].replace("$instance", ".*")
            _, _, body = get(base + "/api/v1/query?" +
                             urllib.parse.urlencode({"query": expr}))
            if json.loads(body)["status"] != "success":
                sys.exit("dashboard panel %r: %s: %s" % (p["title"], expr, body))
            n += 1
    print("%d panels, %d queries" % (len(d["panels"]), n))

def gen(path, what):
    r = json.load(open(path))["results"]
    if what == "records":
        print(r["records_answered"])
    elif what == "sent":
        print(r["records_sent"])
    elif what == "reasons":
        print(" ".join("%s=%d" % kv for kv in sorted(r["reasons"].items())))
    elif what == "clean":
        for c in ("dgrams_lost", "late_answers", "unexpected_answers",
                  "bad_tag", "bad_header", "bad_echo", "wrong_ids"):
            if r[c]:
                sys.exit("authgen %s = %d" % (c, r[c]))

globals()[sys.argv[1]](*sys.argv[2:])
PY
py() { python3 "$ENV_DIR/q.py" "$@"; }

SNAP=$ENV_DIR/base.snap
"$ENV_AUTHDB" gen --users 5000 --seed 3 --now $T --out "$SNAP" >/dev/null ||
	fail "authdb gen"
env_keys "$ENV_DIR/keys.ini" 1
MPORT=$(free_port)
PPORT=$(free_port)
[ "$MPORT" != "$PPORT" ] || PPORT=$(free_port)
METRICS=127.0.0.1:$MPORT
PROM=http://127.0.0.1:$PPORT

# --- 4 first, the refusals (nothing else runs yet) ----------------------------
refused() { # WHAT EXPECTED-TEXT authd options...
	local what=$1 want=$2 out rc
	shift 2
	out=$("$ENV_AUTHD" --no-huge --no-pci -m 128 --file-prefix "$ENV_TAG-bad" -l 0 \
		--vdev "net_memif0,role=server,socket=$ENV_DIR/bad.sock" -- \
		--port net_memif0 --ip 10.0.0.1 --keys "$ENV_DIR/keys.ini" "$@" 2>&1)
	rc=$?
	rm -rf "$(env_runtime_dir "$ENV_TAG-bad")"
	[ "$rc" = 1 ] || fail "$what: exit $rc, expected 1: $out"
	echo "$out" | grep -qF -- "$want" || fail "$what: no '$want' in: $out"
	ok "$what refused: $(echo "$out" | grep -F -- "$want" | head -1)"
}
refused "--metrics 127.0.0.1:99999" \
	"--metrics 127.0.0.1:99999: the port must be a number in 1..65535" \
	--metrics 127.0.0.1:99999
refused "--metrics localhost:9711" "not an IPv4 address" --metrics localhost:9711
printf '[authd]\nmetrics = 127.0.0.1\n' >"$ENV_DIR/bad.conf"
refused "metrics = 127.0.0.1 in a -c file" \
	"$ENV_DIR/bad.conf:2: --metrics 127.0.0.1: no :PORT" -c "$ENV_DIR/bad.conf"

# --- 1. authd, then Prometheus scraping it ------------------------------------
env_authd_memif authd "$SNAP" "$ENV_DIR/keys.ini" --clock fixed:$T \
	--metrics "$METRICS" || fail "authd start"
grep -q "metrics: Prometheus text at http://$METRICS/metrics" "$ENV_DIR/authd.log" ||
	fail "authd did not say where its metrics are"

refused "a second authd on $METRICS" \
	"--metrics $METRICS: cannot listen: Address already in use" \
	--metrics "$METRICS"

# the same from a -c file alone: EAL options in its [eal] args
cat >"$ENV_DIR/second.conf" <<EOF
[eal]
args = --no-huge --no-pci -m 128 --file-prefix $ENV_TAG-conf -l 0 --vdev net_memif0,role=server,socket=$ENV_DIR/conf.sock
[authd]
port = net_memif0
ip = 10.0.0.1
keys = $ENV_DIR/keys.ini
metrics = $METRICS
EOF
OUT=$("$ENV_AUTHD" -- -c "$ENV_DIR/second.conf" 2>&1)
RC=$?
rm -rf "$(env_runtime_dir "$ENV_TAG-conf")"
[ "$RC" = 1 ] && echo "$OUT" | grep -qF -- "--metrics $METRICS: cannot listen: Address already in use" ||
	fail "authd -- -c second.conf ([eal] args): exit $RC: $OUT"
ok "authd -- -c FILE, EAL options from its [eal] args: refused the same way"

cat >"$ENV_DIR/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: authd
    static_configs:
      - targets: ['$METRICS']
EOF
if [ -n "$PROMTOOL" ]; then
	"$PROMTOOL" check config "$ENV_DIR/prometheus.yml" >/dev/null ||
		fail "promtool check config"
fi
"$PROMETHEUS" --config.file="$ENV_DIR/prometheus.yml" \
	--storage.tsdb.path="$ENV_DIR/tsdb" --web.listen-address="127.0.0.1:$PPORT" \
	--log.level=warn >"$ENV_DIR/prometheus.log" 2>&1 &
PROM_PID=$!
ENV_NAMES+=(prometheus)
ENV_PIDS+=("$PROM_PID")
py wait_ready "$PROM" 60 || fail "prometheus did not start on $PROM"
py wait_value "$PROM" 'up{job="authd"}' eq 1 30 >/dev/null ||
	fail "prometheus never scraped authd"
UP=$(py query "$PROM" 'authd_up') || fail "query authd_up"
[ "$UP" = 1 ] || fail "authd_up = '$UP'"
BEFORE=$(py query "$PROM" 'sum(authd_decisions_total)') || fail "query"
[ "$BEFORE" = 0 ] || fail "decisions before any load: '$BEFORE'"
VER=$(py query "$PROM" 'count(authd_build_info{version!=""})')
[ "$VER" = 1 ] || fail "authd_build_info: '$VER'"
ok "prometheus (pid $PROM_PID, $PROM) scrapes authd at $METRICS every 1 s: authd_up 1, sum(authd_decisions_total) = 0"

# --- 2. a known load ------------------------------------------------------------
env_authgen_start authd "$ENV_DIR/gen.json" --keys "$ENV_DIR/keys.ini" \
	--gateway 1 --users 5000 --seed 3 --count $COUNT --records 1-16 \
	--window 1 --timeout 5000 \
	--mix authorize=55,capture=20,void=8,refund=7,repay=10 \
	--products paylater=50,installment=30,cash=20 \
	--faults dup=1,malformed=1,unknown-user=1 --inject "$INJECT" \
	>"$ENV_DIR/gen.txt" 2>&1
[ -s "$ENV_DIR/gen.json" ] || { cat "$ENV_DIR/gen.txt"; fail "no JSON from authgen"; }
py gen "$ENV_DIR/gen.json" clean || { cat "$ENV_DIR/gen.txt"; fail "authgen run"; }
SENT=$(py gen "$ENV_DIR/gen.json" sent)
ANSWERED=$(py gen "$ENV_DIR/gen.json" records)
[ "$SENT" = $COUNT ] && [ "$ANSWERED" = $COUNT ] ||
	fail "authgen sent $SENT, answered $ANSWERED, wanted $COUNT"
REASONS=$(py gen "$ENV_DIR/gen.json" reasons)

# a scrape that began after the load: the endpoint's own scrape counter,
# read now, must be passed in Prometheus' view
py scrape "http://$METRICS/metrics" "$ENV_DIR/after.prom" || fail "GET /metrics"
S=$(sed -n 's/^authd_metrics_scrapes_total \([0-9]*\)$/\1/p' "$ENV_DIR/after.prom")
[ -n "$S" ] || fail "no authd_metrics_scrapes_total in the text"
py wait_value "$PROM" 'authd_metrics_scrapes_total' gt "$S" 30 >/dev/null ||
	fail "prometheus did not scrape after the load"

TOTAL=$(py query "$PROM" 'sum(authd_decisions_total)')
[ "$((TOTAL - BEFORE))" = "$COUNT" ] ||
	fail "sum(authd_decisions_total) rose by $((TOTAL - BEFORE)), authgen sent $COUNT"
ok "sum(authd_decisions_total) rose by $((TOTAL - BEFORE)) = the records authgen sent"
for kv in $REASONS; do
	r=${kv%%=*}
	n=${kv#*=}
	got=$(py query "$PROM" "sum(authd_decisions_total{reason=\"$r\"})")
	[ "$got" = "$n" ] || fail "reason $r: prometheus $got, authgen $n"
done
echo "$REASONS" | grep -q "APPROVED=" || fail "no approvals in the run"
ok "by reason, prometheus = authgen: $REASONS"
P=$(py query "$PROM" 'sum(authd_decisions_total{product="cash",op="authorize"})')
[ "${P:-0}" -gt 0 ] || fail "no cash authorizations counted by product"
for kv in ${INJECT//,/ }; do
	c=${kv%%=*}
	n=${kv#*=}
	got=$(py query "$PROM" "authd_datagrams_dropped_total{stage=\"codec\",cause=\"$c\"}")
	[ "$got" = "$n" ] || fail "drops $c: prometheus $got, injected $n"
done
ALLD=$(py query "$PROM" 'sum(authd_datagrams_dropped_total{stage="codec"})')
[ "$ALLD" = $((3 + 2 + 1)) ] || fail "codec drops: $ALLD, injected 6"
ok "authd_datagrams_dropped_total by cause = injected ($INJECT)"
INF=$(py query "$PROM" 'authd_in_engine_latency_seconds_bucket{le="+Inf"}')
CNT=$(py query "$PROM" 'authd_in_engine_latency_seconds_count')
[ -n "$CNT" ] && [ "$INF" = "$CNT" ] && [ "$CNT" -gt 0 ] ||
	fail "latency histogram: +Inf $INF, count $CNT"
P99=$(py query "$PROM" 'histogram_quantile(0.99, sum by (le) (authd_in_engine_latency_seconds_bucket))')
python3 -c 'import math,sys; v=float(sys.argv[1]); sys.exit(0 if v > 0 and math.isfinite(v) else 1)' \
	"${P99:-nan}" || fail "histogram_quantile p99: '$P99'"
ok "latency histogram: $CNT answers, +Inf = _count, p99 <= ${P99} s"
E=$(py query "$PROM" 'authd_ops_entries{tier="hot"}')
[ "${E:-0}" -gt 0 ] || fail "authd_ops_entries{tier=\"hot\"}: '$E'"
R=$(py query "$PROM" 'authd_ring_capacity{ring="effects",lcore="0"}')
[ "$R" = 65535 ] || fail "effects ring capacity: '$R' (--ring-size 65536 holds 65535)"

# --- 3. the text ------------------------------------------------------------------
FAM=$(py text_check "$ENV_DIR/after.prom") || fail "exposition text: $FAM"
if [ -n "$PROMTOOL" ]; then
	OUT=$("$PROMTOOL" check metrics <"$ENV_DIR/after.prom" 2>&1) ||
		fail "promtool check metrics: $OUT"
	ok "promtool check metrics: no problem ($FAM)${OUT:+: $OUT}"
else
	ok "exposition text: $FAM (promtool not installed)"
fi
DASH=$(py dashboard "$PROM" "$HERE/../../docs/grafana-authd.json") ||
	fail "docs/grafana-authd.json: $DASH"
ok "every query of docs/grafana-authd.json runs on Prometheus ($DASH)"
HEAD=$(python3 -c '
import sys, urllib.request
r = urllib.request.urlopen(urllib.request.Request(sys.argv[1], method="HEAD"), timeout=5)
print(r.status)
try:
    urllib.request.urlopen(sys.argv[1].replace("/metrics", "/nothing"), timeout=5)
except urllib.error.HTTPError as e:
    print(e.code)' "http://$METRICS/metrics") || fail "HEAD /metrics"
[ "$(echo $HEAD)" = "200 404" ] || fail "HEAD /metrics and GET /nothing: $HEAD"

# --- stop: authd, then authgen, then prometheus (by pid) ---------------------
env_authd_stop authd || fail "authd did not exit 0 on SIGTERM"
env_authgen_wait authd || { cat "$ENV_DIR/gen.txt"; fail "authgen exited $?"; }
kill -TERM "$PROM_PID"
wait "$PROM_PID" 2>/dev/null
ENV_PIDS[$(env_index prometheus)]=
ok "authd (exit 0), authgen and prometheus stopped"
echo "PASS"
