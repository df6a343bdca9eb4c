# shellcheck shell=bash
# authd-env.sh - start and stop authd + authgen pairs for scripts and tests.
#
# Source it, then:
#   env_init BUILD_DIR [TAG]  find the programs in BUILD_DIR, make a private
#                             work directory ($ENV_DIR) and a unique prefix
#                             ($ENV_TAG: TAG + pid); installs the EXIT trap
#                             (not with ENV_TRAP=0: the caller's trap then
#                             calls env_stop_all, as tests/integration/lib.sh)
#   env_stop_all              what the EXIT trap does, without exiting
#   env_keys FILE [GATEWAY]   a keys file with a random key (mode 0600);
#                             sets ENV_KEY (hex) and ENV_GATEWAY
#   env_authd_memif NAME SNAPSHOT KEYS [authd options...]
#                             authd on lcore 0 as a memif server on the
#                             socket $ENV_DIR/NAME.sock, IP 10.0.0.1; waits
#                             until it is ready (or fails with its log)
#   env_authgen NAME [authgen options...]
#                             authgen on lcore 1 as the memif client of NAME;
#                             foreground; returns its exit status
#   env_authgen_start NAME JSON [authgen options...]
#                             the same in the background with --json JSON and
#                             --linger: it reports, then keeps the memif link
#                             up without polling until authd NAME stops;
#                             waits until JSON is written (or authgen died)
#   env_authgen_wait NAME     wait for it to exit; its exit status
#   env_authd_stop NAME       SIGTERM, wait (10 s), check the exit status is 0
#   env_authctl NAME ARGS...  authctl for authd NAME
#
# Why linger: DPDK 22.11's memif unmaps the shared rings on the EAL
# interrupt thread when the peer disconnects, while the other side's lcore
# may be inside rte_eth_rx_burst() on them (SIGSEGV in eth_memif_rx). So a
# run that must not crash for that reason stops authd first (its lcores stop
# polling before its port stops) and lets authgen go after.
# Every process gets its own --file-prefix ($ENV_TAG-NAME) and memif socket
# and is stopped by PID on exit (SIGTERM, then SIGKILL); the EAL runtime
# directories of our prefixes are removed. Nothing else is touched.
#
# Variables: ENV_AUTHD ENV_AUTHGEN ENV_AUTHDB ENV_AUTHCTL (programs),
# ENV_DIR, ENV_TAG, ENV_KEEP=1 (keep ENV_DIR), ENV_MEM (authd -m, 512),
# ENV_QUIET=1 (no progress messages).

ENV_PIDS=()
ENV_NAMES=()

env_say() {
	[ "${ENV_QUIET:-0}" = 1 ] || echo "$*" >&2
}

env_die() {
	echo "$(basename "$0"): $*" >&2
	exit 1
}

# The EAL runtime directory of a prefix (root: /var/run/dpdk).
env_runtime_dir() {
	if [ "$(id -u)" = 0 ]; then
		echo "/var/run/dpdk/$1"
	else
		echo "${XDG_RUNTIME_DIR:-/tmp}/dpdk/$1"
	fi
}

env_init() {
	local build=$1
	ENV_TAG=${2:-env}$$
	ENV_AUTHD=$build/bin/authd
	ENV_AUTHGEN=$build/bin/authgen
	ENV_AUTHDB=$build/bin/authdb
	ENV_AUTHCTL=$build/bin/authctl
	for p in "$ENV_AUTHD" "$ENV_AUTHGEN" "$ENV_AUTHDB"; do
		[ -x "$p" ] || env_die "$p is missing: build first"
	done
	ENV_DIR=$(mktemp -d "${TMPDIR:-/tmp}/authd-$ENV_TAG.XXXXXX")
	if [ "${ENV_TRAP:-1}" != 0 ]; then
		trap env_cleanup EXIT
		trap 'exit 130' INT TERM
	fi
}

# Stop whatever is still running (by PID), remove our runtime directories
# and, unless ENV_KEEP=1, the work directory.
env_stop_all() {
	local i
	for i in "${!ENV_PIDS[@]}"; do
		local pid=${ENV_PIDS[$i]}
		[ -n "$pid" ] || continue
		if kill -0 "$pid" 2>/dev/null; then
			kill -TERM "$pid" 2>/dev/null
			for _ in $(seq 50); do
				kill -0 "$pid" 2>/dev/null || break
				sleep 0.1
			done
			kill -KILL "$pid" 2>/dev/null
			wait "$pid" 2>/dev/null
		fi
	done
	for n in "${ENV_NAMES[@]}"; do
		rm -rf "$(env_runtime_dir "$ENV_TAG-$n")"
	done
	if [ "${ENV_KEEP:-0}" = 1 ]; then
		env_say "kept $ENV_DIR"
	else
		rm -rf "$ENV_DIR"
	fi
}

env_cleanup() {
	local rc=$?
	env_stop_all
	exit "$rc"
}

env_keys() {
	local file=$1
	ENV_GATEWAY=${2:-1}
	ENV_KEY=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
	(umask 077; printf '[gateway %s]\nkey.1 = %s\n' "$ENV_GATEWAY" "$ENV_KEY" >"$file")
	chmod 600 "$file"
}

# Index of the latest process started under a name (names may be reused).
env_index() {
	local i found=
	for i in "${!ENV_NAMES[@]}"; do
		[ "${ENV_NAMES[$i]}" = "$1" ] && found=$i
	done
	[ -n "$found" ] && echo "$found"
}

env_pid() {
	local i
	i=$(env_index "$1") || return 1
	echo "${ENV_PIDS[$i]}"
}

# Wait until authd NAME logged that its lcores run; fail if it died.
env_wait_ready() {
	local name=$1 pid=$2 log=$ENV_DIR/$1.log
	for _ in $(seq 600); do
		grep -q "dataplane lcore(s)" "$log" 2>/dev/null && return 0
		if ! kill -0 "$pid" 2>/dev/null; then
			cat "$log" >&2
			env_die "authd $name exited during start-up (log above)"
		fi
		sleep 0.1
	done
	cat "$log" >&2
	env_die "authd $name not ready after 60 s (log above)"
}

env_authd_memif() {
	local name=$1 snap=$2 keys=$3
	shift 3
	local log=$ENV_DIR/$name.log
	"$ENV_AUTHD" --no-huge --no-pci -m "${ENV_MEM:-512}" \
		--file-prefix "$ENV_TAG-$name" -l 0 \
		--vdev "net_memif0,role=server,socket=$ENV_DIR/$name.sock" -- \
		--port net_memif0 --ip 10.0.0.1 --snapshot "$snap" --keys "$keys" \
		"$@" >"$log" 2>&1 &
	local pid=$!
	ENV_NAMES+=("$name")
	ENV_PIDS+=("$pid")
	env_wait_ready "$name" "$pid"
	env_say "authd $name ready (pid $pid, log $log)"
}

env_authgen() {
	local peer=$1
	shift
	"$ENV_AUTHGEN" --no-huge --no-pci -m 256 --file-prefix "$ENV_TAG-gen$peer" \
		-l 1 --log-level=lib.eal:error \
		--vdev "net_memif0,role=client,socket=$ENV_DIR/$peer.sock" -- \
		--dst-ip 10.0.0.1 "$@" &
	local pid=$! i=${#ENV_PIDS[@]}
	ENV_NAMES+=("gen$peer")
	ENV_PIDS+=("$pid")
	wait "$pid"
	local rc=$?
	ENV_PIDS[$i]=
	rm -rf "$(env_runtime_dir "$ENV_TAG-gen$peer")"
	return $rc
}

env_authgen_start() {
	local peer=$1 json=$2
	shift 2
	rm -f "$json"
	"$ENV_AUTHGEN" --no-huge --no-pci -m 256 --file-prefix "$ENV_TAG-gen$peer" \
		-l 1 --log-level=lib.eal:error \
		--vdev "net_memif0,role=client,socket=$ENV_DIR/$peer.sock" -- \
		--dst-ip 10.0.0.1 --json "$json" --linger 120 "$@" &
	local pid=$!
	ENV_NAMES+=("gen$peer")
	ENV_PIDS+=("$pid")
	while [ ! -s "$json" ] && kill -0 "$pid" 2>/dev/null; do
		sleep 0.1
	done
}

env_authgen_wait() {
	local peer=$1 i pid rc
	i=$(env_index "gen$peer") || return 1
	pid=${ENV_PIDS[$i]}
	[ -n "$pid" ] || return 1
	wait "$pid"
	rc=$?
	ENV_PIDS[$i]=
	rm -rf "$(env_runtime_dir "$ENV_TAG-gen$peer")"
	return $rc
}

env_authctl() {
	local name=$1
	shift
	"$ENV_AUTHCTL" -f "$ENV_TAG-$name" "$@"
}

# SIGTERM authd NAME; 0 when it exited 0 within 10 s.
env_authd_stop() {
	local name=$1 i pid rc
	i=$(env_index "$name") || return 1
	pid=${ENV_PIDS[$i]}
	[ -n "$pid" ] || return 1
	kill -TERM "$pid" 2>/dev/null
	for _ in $(seq 100); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		echo "authd $name did not stop within 10 s of SIGTERM: killed" >&2
		kill -KILL "$pid" 2>/dev/null
		wait "$pid" 2>/dev/null
		ENV_PIDS[$i]=
		return 1
	fi
	wait "$pid"
	rc=$?
	ENV_PIDS[$i]=
	if [ "$rc" != 0 ]; then
		echo "authd $name exited with status $rc (log: $ENV_DIR/$name.log)" >&2
		tail -20 "$ENV_DIR/$name.log" >&2
	fi
	return "$rc"
}
