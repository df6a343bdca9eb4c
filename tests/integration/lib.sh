# shellcheck shell=bash
# lib.sh - the prologue every integration test (tests/integration/test_*.sh)
# sources: arguments and skips, messages, the cleanup registry, unique
# names, authd on net_af_packet in a network namespace pair or as a memif
# server (scripts/authd-env.sh), and the hardening tests' helpers.
#
#   . "$(dirname "$0")/lib.sh"
#   lib_args "AUTHD AUTHCTL [AUTHDB]" "$@"   # AUTHD=$1 AUTHCTL=$2 AUTHDB=${3:-}
#   lib_need_root                            # exit 77 (ctest SKIP) unless root + ip netns
#   lib_init ctl                             # names, $TMP, the EXIT trap
#   netns_up || fail "cannot create the namespaces"
#   authd_start --keys k.ini --clock fixed:1764057600 || fail "authd did not start"
#   in_client python3 authclient.py --server "$IP_D" ...
#   authd_stop_ok                            # SIGTERM, exit status 0 or fail
#
# Messages, one format for every test:
#   ok MSG          "ok - MSG" on stdout: a check passed
#   note MSG        "    MSG" on stdout: a figure or a detail, not a check
#   skip MSG        "SKIP: MSG", exit 77 (ctest's SKIP_RETURN_CODE)
#   fail MSG        "FAIL: MSG" on stderr, then the last LIB_LOG_LINES (30)
#                   lines of every log registered with lib_log (authd's is
#                   registered by authd_start), exit 1
#
# Arguments and skips (before lib_init, so that a skipped test makes
# nothing):
#   lib_args SPEC "$@"   SPEC names the arguments in order, [NAME] optional
#                        (empty when not given); each becomes a variable;
#                        missing ones: usage message, exit 2
#   lib_need_root        skip unless root with a working `ip netns`
#   lib_need_cmd CMD...  skip unless every CMD is installed
#
# Names (lib_init TAG): every one carries TAG and $$, so tests and copies of
# a test run in parallel: $NS_D $NS_C (namespaces), $IF_D $IF_C (veth,
# <= 15 characters), $AUTHD_PREFIX and $GEN_PREFIX (EAL --file-prefix of
# authd and authgen), $AUTHD_SOCK (control socket); $TMP is a mktemp -d
# directory (authd's log is $TMP/authd.log unless AUTHD_LOG is set).
#   lib_prefix VAR NAME  VAR := "$AUTHD_PREFIX-NAME", another EAL prefix,
#                        its runtime directory removed at exit
#   lib_free_port [NS]   a free TCP port on 127.0.0.1 (in namespace NS)
#   lib_random_key       32 random hex digits
#
# Cleanup registry. At exit (normal, fail, or INT/TERM, which exit 130),
# in this order:
#   1. every process registered with lib_track (lib_bg does it) and our
#      authd ($AUTHD_PID) that is still our child: SIGTERM, then SIGKILL
#      after LIB_STOP_GRACE seconds (5); by the pid the test started, never
#      by name;
#   2. every action registered with lib_on_exit, the last one first (the
#      namespaces, mounts, EAL runtime directories of our prefixes);
#   3. $TMP removed, unless AUTHD_TEST_KEEP=1 and the test failed, or
#      AUTHD_TEST_KEEP=always ("kept DIR" printed).
#   lib_on_exit CMD...   run CMD... at exit
#   lib_track PID        stop PID at exit (unless waited for: lib_wait)
#   lib_bg VAR CMD...    start CMD... in the background (an external
#                        program, so $! is its pid), track it, VAR := pid
#   lib_wait PID         wait for PID, untrack it; its exit status
#   lib_stop PID [SIG]   signal PID (TERM), wait, untrack; its exit status
#   lib_wait_for S CMD...  run CMD... every 0.1 s until it succeeds, at most
#                        S seconds; status 1 if it never did
#
# Network namespaces (root): authd on net_af_packet in NS_D over IF_D
# (10.213.0.1, no kernel address: authd answers ARP itself), the client
# side IF_C in NS_C with 10.213.0.2.
#   netns_up             create the pair (deleted at exit)
#   netns_down           delete it now
#   in_client CMD...     run CMD in NS_C;  in_daemon CMD...: in NS_D
#   authd_start OPTS...  authd in NS_D (EAL: --no-huge -m 256 -l 0 and
#                        $AUTHD_EAL_EXTRA), OPTS after "--"; waits until its
#                        control socket answers `authctl stats` (at most
#                        AUTHD_START_TIMEOUT, 60 s); 1 if it died or did not
#   authctl ARGS...      authctl on our authd's socket
#   authd_stop [SIG]     signal our authd (TERM) and wait: AUTHD_STATUS
#   authd_stop_ok [WHAT] authd_stop TERM; fail unless it exited 0
#   authd_wait           wait for our authd to exit by itself: AUTHD_STATUS
#   authd_kill           SIGKILL our authd, wait
#   keys_file PATH GW ID HEX   a keys file (mode 0600)
#
# memif (no root): authd and authgen pairs of scripts/authd-env.sh.
#   lib_memif BUILD      source authd-env.sh, env_init under $TMP (its
#                        processes and runtime directories stopped and
#                        removed by our cleanup)
#   authd_start_memif NAME SNAPSHOT KEYS [OPTS...]
#                        env_authd_memif, then wait until `authctl stats`
#                        answers; its log becomes the one fail() shows
#
# JSON:
#   jget JSON KEY...     a field of a JSON text (list indexes as numbers);
#                        objects, lists, booleans, null as sorted JSON
#   hd_json FILE KEY...  a field of a JSON file (Python's print for scalars)
#   eq WHAT GOT WANT     fail unless GOT = WANT
#
# Hardening helpers (docs/reliability.md; AUTHGEN, AUTHDB, AUTHJOURNAL set
# where used):
#   hd_gen ARGS...       authgen on net_af_packet over IF_C in NS_C, as
#                        gateway 1 from 10.213.0.3 to authd's MAC (no ARP,
#                        so authd's ARP counters stay the test's own), its
#                        own EAL prefix ($GEN_PREFIX); foreground
#   hd_gen_bg VAR ARGS... the same in the background, VAR := its pid
#   hd_stats FILE        authctl --json stats into FILE
#   hd_tele CMD          a DPDK telemetry command of our authd (JSON)
#   hd_ifstat NS IF NAME a kernel counter of an interface (rx_packets, ...)
#   hd_authd_mac         the MAC authd answers with (its side of the veth)
#   hd_limits_check DIR  every user's debt + holds within its limit (a
#                        snapshot of the running authd, authdb export);
#                        prints "USERS OVER" (OVER: users beyond it even
#                        with their temporary quota), status 1 when OVER > 0
#   hd_journal_kinds DIR records of a journal by kind: "KIND COUNT" lines
#   hd_wait_rx_quiet [S] wait (at most S s, default 20) until authd's
#                        receive path is quiet: the kernel's rx_packets of
#                        its interface, DPDK's ipackets and authd's rx_pkts
#                        unchanged between two polls, and authd's count
#                        equal to DPDK's (hd_rx_counts prints the three)
# shellcheck disable=SC2034 # variables are for the tests that source this

HERE=${HERE:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)}
REPO=${REPO:-$(cd "$HERE/../.." && pwd)}
LIB_NAME=$(basename "$0" .sh)
LIB_LOG_LINES=${LIB_LOG_LINES:-30}
LIB_ON_EXIT=()      # actions, one string each (eval'd), run last first
LIB_PIDS=()         # processes to stop at exit
LIB_LOG_NAMES=()    # logs fail() shows
LIB_LOG_FILES=()
LIB_FAILED=         # set by fail(): the temp directory may be kept
TMP=
AUTHD_PID=
AUTHD_STATUS=

# --- messages --------------------------------------------------------------

ok() { echo "ok - $*"; }

note() { echo "    $*"; }

skip() {
	echo "SKIP: $LIB_NAME: $*"
	exit 77
}

fail() {
	local i f
	LIB_FAILED=1
	echo "FAIL: $*" >&2
	for i in "${!LIB_LOG_NAMES[@]}"; do
		f=${LIB_LOG_FILES[$i]}
		[ -s "$f" ] || continue
		echo "--- ${LIB_LOG_NAMES[$i]} log, $f (last $LIB_LOG_LINES lines)" >&2
		tail -n "$LIB_LOG_LINES" "$f" >&2
	done
	exit 1
}

# lib_log NAME FILE: fail() shows FILE's tail under NAME (replacing NAME's).
lib_log() {
	local i
	for i in "${!LIB_LOG_NAMES[@]}"; do
		if [ "${LIB_LOG_NAMES[$i]}" = "$1" ]; then
			LIB_LOG_FILES[$i]=$2
			return 0
		fi
	done
	LIB_LOG_NAMES+=("$1")
	LIB_LOG_FILES+=("$2")
}

eq() { # eq WHAT GOT WANT
	[ "$2" = "$3" ] || fail "$1: got '$2', want '$3'"
}

# --- arguments and skips ------------------------------------------------------

lib_args() {
	local spec=$1 w name i=0
	shift
	for w in $spec; do
		i=$((i + 1))
		name=${w#[}
		name=${name%]}
		if [ "$i" -le $# ]; then
			printf -v "$name" '%s' "${!i}"
		elif [ "$name" != "$w" ]; then
			printf -v "$name" '%s' ""
		else
			echo "usage: $LIB_NAME.sh $spec" >&2
			exit 2
		fi
	done
}

lib_need_root() {
	if [ "$(id -u)" != 0 ] || ! ip netns list >/dev/null 2>&1; then
		skip "needs root and ip netns"
	fi
}

lib_need_cmd() {
	local c
	for c in "$@"; do
		command -v "$c" >/dev/null 2>&1 || skip "needs $c (scripts/deps.sh)"
	done
}

# --- names, the temp directory, the traps ----------------------------------------

lib_init() {
	local tag=${1:-t}
	LIB_TAG=$tag
	NS_D="authd-${tag}$$-d"
	NS_C="authd-${tag}$$-c"
	IF_D="ad$$"
	IF_C="ac$$"
	IP_D=10.213.0.1
	IP_C=10.213.0.2
	AUTHD_PREFIX="authd-${tag}$$"
	GEN_PREFIX="gen-${tag}$$"
	GEN_IP=10.213.0.3
	TMP=$(mktemp -d "/tmp/authd-$LIB_NAME.XXXXXX") || {
		echo "FAIL: mktemp" >&2
		exit 1
	}
	AUTHD_LOG=${AUTHD_LOG:-$TMP/authd.log}
	AUTHD_SOCK=${AUTHD_SOCK:-/tmp/${AUTHD_PREFIX}.sock}
	AUTHD_EAL_EXTRA=${AUTHD_EAL_EXTRA:-}
	AUTHD_START_TIMEOUT=${AUTHD_START_TIMEOUT:-60}
	lib_log authd "$AUTHD_LOG"
	lib_on_exit rm -f "$AUTHD_SOCK"
	lib_on_exit rm -rf "$(lib_runtime_dir "$AUTHD_PREFIX")" "$(lib_runtime_dir "$GEN_PREFIX")"
	trap lib_cleanup EXIT
	trap 'exit 130' INT TERM
}

# The EAL runtime directory of a prefix (root: /var/run/dpdk).
lib_runtime_dir() {
	if [ "$(id -u)" = 0 ]; then
		echo "/var/run/dpdk/$1"
	else
		echo "${XDG_RUNTIME_DIR:-/tmp}/dpdk/$1"
	fi
}

lib_prefix() { # lib_prefix VAR NAME
	printf -v "$1" '%s' "$AUTHD_PREFIX-$2"
	lib_on_exit rm -rf "$(lib_runtime_dir "$AUTHD_PREFIX-$2")"
}

lib_free_port() { # lib_free_port [NS]
	local py='import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
	if [ -n "${1:-}" ]; then
		ip netns exec "$1" python3 -c "$py"
	else
		python3 -c "$py"
	fi
}

lib_random_key() {
	head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n'
}

# --- the cleanup registry ------------------------------------------------------------

lib_on_exit() {
	local q
	printf -v q '%q ' "$@"
	LIB_ON_EXIT+=("$q")
}

lib_track() {
	LIB_PIDS+=("$1")
}

lib_untrack() {
	local i
	for i in "${!LIB_PIDS[@]}"; do
		[ "${LIB_PIDS[$i]}" = "$1" ] && unset 'LIB_PIDS[i]'
	done
	return 0
}

lib_bg() { # lib_bg VAR CMD...
	local var=$1
	shift
	"$@" &
	printf -v "$var" '%s' "$!"
	lib_track "$!"
}

lib_wait() {
	local rc=0
	wait "$1" || rc=$?
	lib_untrack "$1"
	return "$rc"
}

lib_stop() { # lib_stop PID [SIG]
	kill -"${2:-TERM}" "$1" 2>/dev/null
	lib_wait "$1"
}

lib_wait_for() { # lib_wait_for SECONDS CMD...
	local n=$(($1 * 10))
	shift
	while [ "$n" -gt 0 ]; do
		"$@" && return 0
		sleep 0.1
		n=$((n - 1))
	done
	"$@"
}

# Is PID a child of ours not reaped yet? (A pid we waited for may belong
# to another process by now: never signal it.)
lib_is_child() {
	local p
	for p in $(jobs -p); do
		[ "$p" = "$1" ] && return 0
	done
	return 1
}

lib_stop_pids() {
	local pids=() p i alive
	[ -n "$AUTHD_PID" ] && pids+=("$AUTHD_PID")
	for ((i = ${#LIB_PIDS[@]} - 1; i >= 0; i--)); do
		[ -n "${LIB_PIDS[$i]:-}" ] && pids+=("${LIB_PIDS[$i]}")
	done
	alive=()
	for p in "${pids[@]}"; do
		lib_is_child "$p" || continue
		kill -TERM "$p" 2>/dev/null && alive+=("$p")
	done
	for _ in $(seq $((${LIB_STOP_GRACE:-5} * 10))); do
		i=0
		for p in "${alive[@]}"; do
			kill -0 "$p" 2>/dev/null && i=1
		done
		[ "$i" = 0 ] && break
		sleep 0.1
	done
	for p in "${alive[@]}"; do
		kill -KILL "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
	AUTHD_PID=
	LIB_PIDS=()
}

# Is $TMP to be kept (AUTHD_TEST_KEEP), the exit status being LIB_RC?
lib_keep() {
	case ${AUTHD_TEST_KEEP:-} in
	always) return 0 ;;
	1) [ "${LIB_RC:-0}" != 0 ] || [ -n "$LIB_FAILED" ] ;;
	*) return 1 ;;
	esac
}

lib_cleanup() {
	LIB_RC=$?
	local i
	set +e
	trap - EXIT
	lib_stop_pids
	for ((i = ${#LIB_ON_EXIT[@]} - 1; i >= 0; i--)); do
		eval "${LIB_ON_EXIT[$i]}" 2>/dev/null
	done
	if [ -n "$TMP" ] && [ -d "$TMP" ]; then
		if lib_keep; then
			echo "kept $TMP" >&2
		else
			rm -rf "$TMP"
		fi
	fi
	exit "$LIB_RC"
}

# --- network namespaces and authd on net_af_packet -----------------------------

netns_up() {
	lib_on_exit netns_down
	ip netns add "$NS_D" || return 1
	ip netns add "$NS_C" || return 1
	ip link add "$IF_D" type veth peer name "$IF_C" || return 1
	ip link set "$IF_D" netns "$NS_D" || return 1
	ip link set "$IF_C" netns "$NS_C" || return 1
	ip netns exec "$NS_D" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
	ip netns exec "$NS_C" sysctl -qw net.ipv6.conf.all.disable_ipv6=1
	ip -n "$NS_D" link set "$IF_D" up || return 1
	ip -n "$NS_C" link set "$IF_C" up || return 1
	ip -n "$NS_C" link set lo up || return 1
	ip -n "$NS_C" addr add "$IP_C/24" dev "$IF_C" || return 1
}

netns_down() {
	ip netns del "$NS_D" 2>/dev/null
	ip netns del "$NS_C" 2>/dev/null
	return 0
}

in_client() {
	ip netns exec "$NS_C" "$@"
}

in_daemon() {
	ip netns exec "$NS_D" "$@"
}

authctl() {
	"$AUTHCTL" -s "$AUTHD_SOCK" "$@"
}

authd_start() {
	local i
	lib_log authd "$AUTHD_LOG"
	# A socket left by a killed authd stays: authd must clear it itself.
	# ip netns exec execs authd: $! is authd's pid.
	# shellcheck disable=SC2086
	ip netns exec "$NS_D" "$AUTHD" --no-huge --no-pci -m 256 \
		--file-prefix "$AUTHD_PREFIX" -l 0 $AUTHD_EAL_EXTRA \
		--vdev "net_af_packet0,iface=$IF_D" -- \
		--port net_af_packet0 --ip "$IP_D" --ctl "$AUTHD_SOCK" "$@" \
		>"$AUTHD_LOG" 2>&1 &
	AUTHD_PID=$!
	for i in $(seq 1 $((AUTHD_START_TIMEOUT * 10))); do
		if ! kill -0 "$AUTHD_PID" 2>/dev/null; then
			authd_wait
			echo "lib.sh: authd exited with status $AUTHD_STATUS at start" >&2
			return 1
		fi
		if [ -S "$AUTHD_SOCK" ] && authctl stats >/dev/null 2>&1; then
			return 0
		fi
		sleep 0.1
	done
	echo "lib.sh: authd did not answer authctl stats on $AUTHD_SOCK within ${AUTHD_START_TIMEOUT}s" >&2
	return 1
}

authd_wait() {
	[ -n "$AUTHD_PID" ] || return 0
	wait "$AUTHD_PID"
	AUTHD_STATUS=$?
	AUTHD_PID=
}

authd_stop() {
	[ -n "$AUTHD_PID" ] || return 0
	kill -"${1:-TERM}" "$AUTHD_PID" 2>/dev/null
	authd_wait
}

authd_stop_ok() {
	authd_stop TERM
	[ "$AUTHD_STATUS" = 0 ] || fail "authd exited $AUTHD_STATUS on SIGTERM${1:+ ($1)}"
}

authd_kill() {
	[ -n "$AUTHD_PID" ] || return 0
	kill -KILL "$AUTHD_PID" 2>/dev/null
	wait "$AUTHD_PID" 2>/dev/null
	AUTHD_PID=
}

keys_file() { # keys_file PATH GATEWAY KEY_ID HEX
	(umask 077 && printf '[gateway %s]\nkey.%s = %s\n' "$2" "$3" "$4" >"$1")
}

# --- memif pairs (scripts/authd-env.sh) -------------------------------------------

lib_memif() { # lib_memif BUILD
	# shellcheck source=../../scripts/authd-env.sh
	. "$REPO/scripts/authd-env.sh"
	ENV_TRAP=0
	TMPDIR=$TMP env_init "$1" "$LIB_TAG"
	lib_on_exit lib_memif_stop
}

# authd-env.sh's processes and runtime directories; ENV_DIR lies in $TMP,
# kept or removed with it.
lib_memif_stop() {
	ENV_KEEP=1 ENV_QUIET=1 env_stop_all
}

authd_start_memif() { # authd_start_memif NAME SNAPSHOT KEYS [OPTS...]
	local name=$1
	lib_log authd "$ENV_DIR/$name.log"
	env_authd_memif "$@" || return 1
	lib_wait_for 60 env_authctl "$name" stats >/dev/null 2>&1 || {
		echo "lib.sh: authd $name did not answer authctl stats" >&2
		return 1
	}
}

# --- JSON -------------------------------------------------------------------------------

jget() {
	python3 - "$@" <<'PY'
import json, sys
v = json.loads(sys.argv[1])
for k in sys.argv[2:]:
    v = v[int(k)] if isinstance(v, list) else v[k]
print(json.dumps(v, sort_keys=True) if isinstance(v, (dict, list, bool)) or v is None else v)
PY
}

hd_json() {
	python3 - "$@" <<'PY'
import json, sys
v = json.load(open(sys.argv[1]))
for k in sys.argv[2:]:
    v = v[int(k)] if isinstance(v, list) else v[k]
print(json.dumps(v) if isinstance(v, (dict, list)) else v)
PY
}

# --- hardening helpers ----------------------------------------------------------------

hd_authd_mac() {
	ip netns exec "$NS_D" cat "/sys/class/net/$IF_D/address"
}

hd_gen_argv() { # LIB_ARGV := the authgen command line of hd_gen ARGS...
	LIB_ARGV=(ip netns exec "$NS_C" "$AUTHGEN" --no-huge --no-pci -m 256
		--file-prefix "$GEN_PREFIX" -l 1 --log-level=lib.eal:error
		--vdev "net_af_packet0,iface=$IF_C" --
		--src-ip "$GEN_IP" --dst-ip "$IP_D" --dst-mac "$(hd_authd_mac)" "$@")
}

hd_gen() {
	hd_gen_argv "$@"
	"${LIB_ARGV[@]}"
}

hd_gen_bg() { # hd_gen_bg VAR ARGS...
	local var=$1
	shift
	hd_gen_argv "$@"
	lib_bg "$var" "${LIB_ARGV[@]}"
}

hd_stats() {
	authctl --json stats >"$1"
}

hd_tele() {
	python3 - "/var/run/dpdk/$AUTHD_PREFIX/dpdk_telemetry.v2" "$1" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
s.connect(sys.argv[1])
s.recv(16384)
s.send(sys.argv[2].encode())
print(s.recv(1 << 20).decode())
PY
}

hd_ifstat() {
	ip netns exec "$1" cat "/sys/class/net/$2/statistics/$3"
}

hd_limits_check() {
	local dir=$1 over
	authctl snapshot save "$dir/limits.snap" >/dev/null || return 2
	"$AUTHDB" export "$dir/limits.snap" --users-csv "$dir/limits.csv" >/dev/null ||
		return 2
	# user_id,limit_fen,outstanding_fen,holds_fen: beyond the limit may
	# still be within a temporary quota, which `user show` knows.
	awk -F, 'NR > 1 && $3 + $4 > $2 { print $1 }' "$dir/limits.csv" >"$dir/over.txt"
	over=0
	while read -r u; do
		authctl --json user show "$u" | python3 -c '
import json, sys
u = json.load(sys.stdin)["user"]
sys.exit(0 if u["available_fen"] >= 0 else 1)' || over=$((over + 1))
	done <"$dir/over.txt"
	echo "$(($(wc -l <"$dir/limits.csv") - 1)) $over"
	[ "$over" = 0 ]
}

hd_journal_kinds() {
	"$AUTHJOURNAL" dump "$1" | awk '{ n[$3]++ } END { for (k in n) print k, n[k] }' | sort
}

# "kernel-rx dpdk-ipackets authd-rx_pkts" of our authd, now.
hd_rx_counts() {
	local k d a
	k=$(hd_ifstat "$NS_D" "$IF_D" rx_packets) || return 1
	d=$(hd_tele "/ethdev/stats,0" | python3 -c 'import json,sys; print(json.load(sys.stdin)["/ethdev/stats"]["ipackets"])') || return 1
	a=$(authctl --json stats | python3 -c 'import json,sys; print(json.load(sys.stdin)["total"]["counters"]["rx_pkts"])') || return 1
	echo "$k $d $a"
}

hd_wait_rx_quiet() { # hd_wait_rx_quiet [SECONDS]
	local n=$((${1:-20} * 10)) prev='' now k d a
	while [ "$n" -gt 0 ]; do
		now=$(hd_rx_counts) || return 1
		read -r k d a <<<"$now"
		[ "$now" = "$prev" ] && [ "$d" = "$a" ] && return 0
		prev=$now
		sleep 0.1
		n=$((n - 1))
	done
	return 1
}
