#!/usr/bin/env bash
# Install every Debian package the project needs. Idempotent: quiet and quick
# when everything is already present. Needs root (or sudo) on Debian 12.
set -euo pipefail

pkgs=(
	# build
	build-essential cmake pkg-config clang libclang-rt-14-dev llvm
	# engine libraries
	dpdk libdpdk-dev liburcu-dev libjemalloc-dev libsodium-dev libjansson-dev
	libinih-dev libxxhash-dev libpcap-dev libnats-dev
	# authd --metrics (Prometheus exposition over HTTP), authconsume --postgres
	libmicrohttpd-dev libpq-dev
	# tests and benchmarks
	libcmocka-dev libbenchmark-dev redis-server redis-tools libhiredis-dev
	nats-server iproute2 iputils-ping python3 gnuplot-nox valgrind linux-perf
	util-linux procps
	# test_metrics (a real Prometheus server, promtool), test_ledger_sql
	# (a real PostgreSQL server: initdb, pg_ctl)
	prometheus postgresql
	# make deb (debhelper, the man pages from markdown) and its test
	debhelper dpkg-dev fakeroot pandoc lintian man-db systemd
)

missing=()
for p in "${pkgs[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' \
		|| missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=
[ "$(id -u)" -eq 0 ] || sudo=sudo
echo "deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! { $sudo apt-get update -qq && \
       $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
	cat "$log" >&2
	echo "deps: apt-get failed (output above)" >&2
	exit 1
fi
# Debian starts redis-server, nats-server, prometheus (and its node exporter)
# and postgresql as services on install; the tests start their own on private
# ports, so stop the system copies where systemd runs.
if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
	$sudo systemctl disable --now redis-server nats-server prometheus \
		prometheus-node-exporter postgresql >/dev/null 2>&1 || true
fi
