# netns.sh - sourced by integration tests (bash): two network namespaces
# joined by a veth pair (shared/docs/sandbox-recipes.md), authd on
# net_af_packet in one, a plain UDP client in the other.
#
#   . tests/integration/netns.sh
#   netns_up                      # NS_D NS_C IF_D IF_C IP_D IP_C, unique per $$
#   trap netns_cleanup EXIT       # stops our authd (by pid), deletes the pair
#   authd_start --keys k.ini --clock fixed:1764057600   # authd options
#   in_client python3 authclient.py --server "$IP_D" ...
#   authd_stop                    # SIGTERM by pid; status in AUTHD_STATUS
#
# Every name carries $$ (and NETNS_TAG when set), so tests run in parallel:
# namespaces, veth names (15 characters at most), the EAL --file-prefix
# (AUTHD_PREFIX) and the control socket path. Needs root (ip netns), and
# AUTHD / AUTHCTL set to the binaries under test.

NETNS_TAG=${NETNS_TAG:-t}
NS_D="authd-${NETNS_TAG}$$-d"
NS_C="authd-${NETNS_TAG}$$-c"
IF_D="ad${$}"
IF_C="ac${$}"
IP_D=10.213.0.1
IP_C=10.213.0.2
AUTHD_PREFIX="authd-${NETNS_TAG}$$"
AUTHD_PID=
AUTHD_STATUS=
NETNS_LOG=/tmp/${AUTHD_PREFIX}.log   # removed by netns_cleanup unless NETNS_KEEP_LOG=1
AUTHD_LOG=${AUTHD_LOG:-$NETNS_LOG}
AUTHD_SOCK=${AUTHD_SOCK:-/tmp/${AUTHD_PREFIX}.sock}
AUTHD_EAL_EXTRA=${AUTHD_EAL_EXTRA:-}
AUTHD_START_TIMEOUT=${AUTHD_START_TIMEOUT:-60}

netns_fail() {
	echo "netns.sh: $*" >&2
	return 1
}

# Create the pair; the client side gets IP_C, authd's side no address (the
# kernel must not answer for it: authd answers ARP itself).
netns_up() {
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

# Run a command in the client's namespace.
in_client() {
	ip netns exec "$NS_C" "$@"
}

authctl() {
	"$AUTHCTL" -s "$AUTHD_SOCK" "$@"
}

# Start authd in NS_D on net_af_packet0 over IF_D; the arguments are authd's
# options (after the EAL's "--"). Waits until the control socket answers.
authd_start() {
	local i
	# A socket left by a killed authd stays: authd must clear it itself.
	# shellcheck disable=SC2086
	ip netns exec "$NS_D" "$AUTHD" --no-huge --no-pci -m 256 \
		--file-prefix "$AUTHD_PREFIX" -l 0 $AUTHD_EAL_EXTRA \
		--vdev "net_af_packet0,iface=$IF_D" -- \
		--port net_af_packet0 --ip "$IP_D" --ctl "$AUTHD_SOCK" "$@" \
		>"$AUTHD_LOG" 2>&1 &
	AUTHD_PID=$!
	for i in $(seq 1 $((AUTHD_START_TIMEOUT * 10))); do
		if ! kill -0 "$AUTHD_PID" 2>/dev/null; then
			wait "$AUTHD_PID"
			AUTHD_STATUS=$?
			AUTHD_PID=
			cat "$AUTHD_LOG" >&2
			netns_fail "authd exited with status $AUTHD_STATUS at start"
			return 1
		fi
		if [ -S "$AUTHD_SOCK" ] && authctl clock show >/dev/null 2>&1; then
			return 0
		fi
		sleep 0.1
	done
	cat "$AUTHD_LOG" >&2
	netns_fail "authd did not answer on $AUTHD_SOCK within ${AUTHD_START_TIMEOUT}s"
}

# SIGTERM our authd (by pid) and wait: AUTHD_STATUS is its exit status.
authd_stop() {
	local sig=${1:-TERM}
	[ -n "$AUTHD_PID" ] || return 0
	kill -"$sig" "$AUTHD_PID" 2>/dev/null
	wait "$AUTHD_PID"
	AUTHD_STATUS=$?
	AUTHD_PID=
}

# For trap EXIT: kill what we started, by pid, then remove the namespaces,
# the EAL runtime directory of our prefix and our socket.
netns_cleanup() {
	if [ -n "$AUTHD_PID" ]; then
		kill -KILL "$AUTHD_PID" 2>/dev/null
		wait "$AUTHD_PID" 2>/dev/null
		AUTHD_PID=
	fi
	netns_down
	rm -rf "/var/run/dpdk/$AUTHD_PREFIX"
	rm -f "$AUTHD_SOCK"
	# The tests print its tail when they fail; a passing run leaves nothing.
	[ -n "${NETNS_KEEP_LOG:-}" ] || rm -f "$NETNS_LOG"
}

# Write a keys file (mode 0600) for gateway $2 with key id $3 = hex $4.
keys_file() {
	local path=$1
	(umask 077 && printf '[gateway %s]\nkey.%s = %s\n' "$2" "$3" "$4" >"$path")
}
