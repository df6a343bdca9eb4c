# shellcheck shell=bash
# hardening.sh - helpers of the hardening tests (test_overload.sh,
# test_hostile.sh, test_access.sh, test_clock_jump.sh, test_slow_disk.sh,
# test_rcu_churn.sh; docs/reliability.md). Source it after netns.sh, with
# AUTHD, AUTHCTL (and AUTHGEN, AUTHDB, AUTHJOURNAL where used) set.
#
#   hd_gen ARGS...          authgen on net_af_packet over IF_C in NS_C, as
#                           gateway 1 from 10.213.0.3 to authd's MAC (no ARP,
#                           so authd's ARP counters stay the test's own);
#                           its own EAL prefix ($HD_GEN_PREFIX)
#   hd_json FILE KEY...     a value of a JSON file: hd_json s.json total counters dgrams
#   hd_stats FILE           authctl --json stats into FILE
#   hd_tele CMD             a DPDK telemetry command of our authd (JSON)
#   hd_ifstat NS IF NAME    a kernel counter of an interface (rx_packets, ...)
#   hd_authd_mac            the MAC authd answers with (its side of the veth)
#   hd_limits_check TMPDIR  every user's debt + holds within its limit (a
#                           snapshot of the running authd, authdb export);
#                           prints "USERS OVER" (OVER: users beyond it even
#                           with their temporary quota), status 1 when OVER > 0
#   hd_journal_kinds DIR    records of a journal by kind: "KIND COUNT" lines
#
# Everything is started by PID and stopped by the caller's trap
# (netns_cleanup); hd_cleanup removes authgen's EAL runtime directory.

HD_GEN_PREFIX="gen-${NETNS_TAG:-hd}$$"
HD_GEN_IP=10.213.0.3

hd_authd_mac() {
	ip netns exec "$NS_D" cat "/sys/class/net/$IF_D/address"
}

hd_gen() {
	local macd
	macd=$(hd_authd_mac)
	in_client "$AUTHGEN" --no-huge --no-pci -m 256 --file-prefix "$HD_GEN_PREFIX" \
		-l 1 --log-level=lib.eal:error --vdev "net_af_packet0,iface=$IF_C" -- \
		--src-ip "$HD_GEN_IP" --dst-ip "$IP_D" --dst-mac "$macd" "$@"
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

hd_cleanup() {
	rm -rf "/var/run/dpdk/$HD_GEN_PREFIX"
}
