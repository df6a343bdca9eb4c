#!/usr/bin/env bash
# test_deb.sh SOURCE_DIR BUILD_DIR - the Debian package end to end
# (docs/operations.md): build it, look inside, install it, use it, purge it.
#
# 1. scripts/deb.sh builds authd_VERSION_ARCH.deb (dpkg-buildpackage,
#    debhelper) into BUILD_DIR/deb-test; dpkg-deb -I: name, version (=
#    CMake's), dependencies, the conffile; dpkg-deb -c: the programs, the
#    six man pages, both units, the example configuration; lintian (when
#    installed): its tags are listed, an error (E:) fails.
# 2. apt-get install ./authd_*.deb (dependencies from Debian): authd
#    --version, every tool's --help, man -w for each page, the authd system
#    user, /var/lib/authd (authd, 0750); systemd-analyze verify on the
#    installed units (it needs no systemd as PID 1; skipped with a message
#    if it cannot run); the installed /etc/authd/authd.conf started for
#    real (its [eal] args, port and metrics swapped for a memif test
#    instance): it must come up and stop cleanly.
# 3. apt-get purge -y authd with a file in /var/lib/authd: every file of
#    the package is gone, /etc/authd is gone, /var/lib/authd is kept with a
#    message (the journal is never deleted by a purge) and the authd user
#    is kept (Debian policy); then the test removes those two itself if
#    they were not there before, so the machine is as it was. The purge
#    also runs on failure (trap).
# Root, apt-get, dpkg-buildpackage only: exit 77 (skip) without. Runs
# alone across worktrees (a lock in /run/lock): it installs system-wide.
set -uo pipefail

SRC=${1:?usage: test_deb.sh SOURCE_DIR BUILD_DIR}
BUILD=${2:?}
OUT=$BUILD/deb-test
TMP=$(mktemp -d /tmp/authd-deb.XXXXXX)
INSTALLED=
USER_BEFORE=
STATE_BEFORE=
AUTHD_PID=

if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null ||
	! command -v dpkg-buildpackage >/dev/null; then
	echo "SKIP: needs root, apt-get and dpkg-buildpackage (scripts/deps.sh)"
	exit 77
fi
exec 9>/run/lock/authd-test-deb.lock
flock -w 600 9 || { echo "FAIL: another test_deb holds /run/lock/authd-test-deb.lock"; exit 1; }
if dpkg-query -W -f='${Status}' authd 2>/dev/null | grep -q "ok installed"; then
	echo "SKIP: an authd package is installed on this machine; the test would replace it"
	exit 77
fi
getent passwd authd >/dev/null && USER_BEFORE=1
[ -e /var/lib/authd ] && STATE_BEFORE=1

restore() {
	local rc=$?
	if [ -n "$AUTHD_PID" ]; then
		kill -KILL "$AUTHD_PID" 2>/dev/null
		wait "$AUTHD_PID" 2>/dev/null
	fi
	if [ -n "$INSTALLED" ] &&
		dpkg-query -W -f='${Status}' authd 2>/dev/null | grep -q installed; then
		DEBIAN_FRONTEND=noninteractive apt-get purge -y -q authd >/dev/null 2>&1 ||
			echo "restore: apt-get purge authd failed" >&2
	fi
	[ -n "$STATE_BEFORE" ] || rm -rf /var/lib/authd
	if [ -z "$USER_BEFORE" ] && getent passwd authd >/dev/null; then
		deluser --system --quiet authd >/dev/null 2>&1 || userdel authd 2>/dev/null
		getent group authd >/dev/null && groupdel authd 2>/dev/null
	fi
	rm -rf "/var/run/dpdk/authd-deb$$" "$TMP"
	exit "$rc"
}
trap restore EXIT
trap 'exit 130' INT TERM

fail() {
	echo "FAIL: $*" >&2
	exit 1
}
ok() { echo "ok - $*"; }

# --- 1. build and look inside ------------------------------------------------
T0=$SECONDS
DEB=$("$SRC/scripts/deb.sh" --out "$OUT" 2>"$TMP/deb.err" | tail -n 1)
[ -f "$DEB" ] || fail "make deb: $(tail -n 20 "$TMP/deb.err")"
VERSION=$(sed -n 's/^project(authd VERSION \([0-9.]*\).*/\1/p' "$SRC/CMakeLists.txt")
ARCH=$(dpkg-architecture -qDEB_HOST_ARCH)
[ "$(basename "$DEB")" = "authd_${VERSION}_${ARCH}.deb" ] || fail "package named $(basename "$DEB")"
ok "built $(basename "$DEB") in $((SECONDS - T0)) s ($(du -k "$DEB" | cut -f1) KiB)"

dpkg-deb -I "$DEB" >"$TMP/info" || fail "dpkg-deb -I"
for want in "Package: authd" "Version: $VERSION" "Architecture: $ARCH"; do
	grep -q "^ $want\$" "$TMP/info" || fail "dpkg-deb -I: no '$want'"
done
DEPS=$(sed -n 's/^ Depends: //p' "$TMP/info")
for d in adduser librte-eal libjansson libmicrohttpd libnats libpq5 liburcu; do
	echo "$DEPS" | grep -q "$d" || fail "Depends lacks $d: $DEPS"
done
dpkg-deb --ctrl-tarfile "$DEB" | tar -xO ./conffiles >"$TMP/conffiles"
grep -qx /etc/authd/authd.conf "$TMP/conffiles" || fail "conffiles: $(cat "$TMP/conffiles")"
ok "dpkg-deb -I: authd $VERSION $ARCH, conffile /etc/authd/authd.conf, Depends: $(echo "$DEPS" | tr ',' '\n' | wc -l) packages"

dpkg-deb -c "$DEB" | awk '{print $6}' | sed 's|^\./|/|' >"$TMP/files"
PAGES="authd.8 authctl.8 authgen.1 authjournal.8 authconsume.8 authdb.8"
for f in /usr/sbin/authd /usr/bin/authctl /usr/bin/authgen /usr/bin/authjournal \
	/usr/bin/authconsume /usr/bin/authdb /etc/authd/authd.conf \
	/lib/systemd/system/authd.service /lib/systemd/system/authd@.service \
	/usr/share/doc/authd/examples/keys.ini /usr/share/doc/authd/operations.md \
	/usr/share/doc/authd/examples/grafana-authd.json /usr/share/doc/authd/copyright; do
	grep -qx "$f" "$TMP/files" || fail "dpkg-deb -c: no $f"
done
for p in $PAGES; do
	grep -qx "/usr/share/man/man${p##*.}/$p.gz" "$TMP/files" || fail "dpkg-deb -c: no man page $p"
done
ok "dpkg-deb -c: $(grep -cv '/$' "$TMP/files") files: 6 programs, 6 man pages, 2 units, config, docs, examples"

if command -v lintian >/dev/null; then
	lintian --pedantic --display-info --no-tag-display-limit "$DEB" >"$TMP/lintian" 2>&1
	TAGS=$(grep -E '^[EWIPX]: ' "$TMP/lintian" | sort -u)
	if [ -n "$TAGS" ]; then
		echo "    lintian tags (pedantic included):"
		echo "$TAGS" | sed 's/^/      /'
	fi
	echo "$TAGS" | grep -q '^E: ' && fail "lintian errors (above)"
	ok "lintian: no error ($(echo "$TAGS" | grep -c . ) tag(s) listed)"
else
	ok "lintian not installed: skipped"
fi

# --- 2. install and use ----------------------------------------------------------
INSTALLED=1
DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o DPkg::Lock::Timeout=120 \
	"$DEB" >"$TMP/install.log" 2>&1 || fail "apt-get install: $(tail -n 15 "$TMP/install.log")"
dpkg-query -W -f='${Status} ${Version}' authd | grep -q "install ok installed $VERSION" ||
	fail "dpkg-query: $(dpkg-query -W -f='${Status} ${Version}' authd)"
ok "apt-get install ./$(basename "$DEB"): installed"

V=$(/usr/sbin/authd --version) || fail "authd --version"
echo "$V" | grep -q "^authd $VERSION (DPDK " || fail "authd --version: $V"
for t in authctl authgen authjournal authconsume authdb; do
	"/usr/bin/$t" --help >/dev/null 2>&1 || fail "$t --help"
done
/usr/sbin/authd --help | grep -q -- "--metrics ADDR:PORT" || fail "authd --help"
for p in $PAGES; do
	M=$(man -w "${p##*.}" "${p%.*}" 2>&1) || fail "man -w ${p%.*}: $M"
	[ "$M" = "/usr/share/man/man${p##*.}/$p.gz" ] || fail "man -w ${p%.*}: $M"
done
ok "$V; every tool's --help; man -w finds authd(8) authctl(8) authgen(1) authjournal(8) authconsume(8) authdb(8)"

ID=$(id -u authd) || fail "no authd user"
[ "$ID" -lt 1000 ] || fail "authd is not a system user (uid $ID)"
[ "$(stat -c '%U:%G %a' /var/lib/authd)" = "authd:authd 750" ] ||
	fail "/var/lib/authd: $(stat -c '%U:%G %a' /var/lib/authd)"
ok "system user authd (uid $ID), /var/lib/authd authd:authd 0750"

if systemd-analyze --version >/dev/null 2>&1; then
	OUT_SA=$(cd / && systemd-analyze verify authd.service authd@test.service 2>&1)
	RC=$?
	if [ $RC = 0 ] && [ -z "$OUT_SA" ]; then
		ok "systemd-analyze verify authd.service authd@test.service: clean (systemd is $( [ -d /run/systemd/system ] && echo PID 1 || echo not PID 1 here))"
	elif echo "$OUT_SA" | grep -qiE "bus|connect|manager"; then
		ok "systemd-analyze verify cannot run here, skipped: $(echo "$OUT_SA" | head -1)"
	else
		fail "systemd-analyze verify: $OUT_SA"
	fi
else
	ok "systemd-analyze not installed: unit check skipped"
fi

# the shipped configuration, started for real as a memif test instance
MPORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
sed -e "s|^args = .*|args = --no-huge --no-pci -m 256 -l 0 --vdev net_memif0,role=server,socket=$TMP/m.sock|" \
    -e "s|^port = .*|port = net_memif0|" -e "s|^keys = .*|keys = $TMP/keys.ini|" \
    -e "s|^snapshot = .*|snapshot = $TMP/snapshots|" -e "s|^journal = .*|journal = $TMP/journal|" \
    -e "s|^metrics = .*|metrics = 127.0.0.1:$MPORT|" /etc/authd/authd.conf >"$TMP/authd.conf"
for want in "args = --no-huge .*" "port = net_memif0" "keys = $TMP/keys.ini" \
	"snapshot = $TMP/snapshots" "journal = $TMP/journal" "metrics = 127.0.0.1:$MPORT"; do
	grep -qx "$want" "$TMP/authd.conf" ||
		fail "the shipped authd.conf has no line to adapt into '$want'"
done
(umask 077 && printf '[gateway 1]\nkey.1 = %s\n' "$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')" >"$TMP/keys.ini")
mkdir -p "$TMP/snapshots"
/usr/bin/authdb gen --users 1000 --seed 3 --out "$TMP/snapshots/base.snap" >/dev/null || fail "authdb gen"
/usr/sbin/authd --file-prefix "authd-deb$$" -- -c "$TMP/authd.conf" --ctl "$TMP/ctl.sock" \
	>"$TMP/authd.log" 2>&1 &
AUTHD_PID=$!
for i in $(seq 1 300); do
	grep -q "dataplane lcore(s)" "$TMP/authd.log" && break
	kill -0 "$AUTHD_PID" 2>/dev/null || fail "authd with the shipped config exited: $(tail -5 "$TMP/authd.log")"
	sleep 0.1
done
/usr/bin/authctl -s "$TMP/ctl.sock" clock show >/dev/null || fail "authctl against it"
python3 -c 'import sys, urllib.request; sys.exit(0 if b"authd_up 1" in urllib.request.urlopen(sys.argv[1], timeout=5).read() else 1)' \
	"http://127.0.0.1:$MPORT/metrics" || fail "its metrics"
kill -TERM "$AUTHD_PID"
wait "$AUTHD_PID"
RC=$?
AUTHD_PID=
[ "$RC" = 0 ] || fail "authd exited $RC on SIGTERM: $(tail -5 "$TMP/authd.log")"
ok "/etc/authd/authd.conf as shipped ([eal], port, paths swapped for a memif test): started, authctl and /metrics answer, SIGTERM exit 0"

# --- 3. purge -------------------------------------------------------------------
mkdir -p /var/lib/authd/journal && echo x >/var/lib/authd/journal/seg-test
DEBIAN_FRONTEND=noninteractive apt-get purge -y -q authd >"$TMP/purge.log" 2>&1 ||
	fail "apt-get purge: $(tail -n 10 "$TMP/purge.log")"
INSTALLED=
dpkg-query -W -f='${Status}' authd 2>/dev/null | grep -q "installed" &&
	fail "still installed after purge: $(dpkg-query -W -f='${Status}' authd)"
LEFT=
while read -r f; do
	case $f in */) continue ;; esac
	[ -e "$f" ] && LEFT="$LEFT $f"
done <"$TMP/files"
[ -z "$LEFT" ] || fail "left after purge:$LEFT"
[ ! -e /etc/authd ] || fail "/etc/authd left after purge: $(ls -la /etc/authd)"
[ -f /var/lib/authd/journal/seg-test ] || fail "purge deleted a journal in /var/lib/authd"
grep -q "/var/lib/authd is not empty" "$TMP/purge.log" || fail "purge did not say it kept /var/lib/authd"
getent passwd authd >/dev/null || fail "purge removed the system user (Debian keeps it)"
ok "apt-get purge: no file of the package left, /etc/authd gone; kept as policy says: /var/lib/authd with its journal (said so), the authd user"
[ -n "$STATE_BEFORE" ] || rm -rf /var/lib/authd
if [ -z "$USER_BEFORE" ]; then
	deluser --system --quiet authd >/dev/null 2>&1 || userdel authd
	getent group authd >/dev/null && groupdel authd
	getent passwd authd >/dev/null && fail "could not remove the authd user"
fi
ok "machine restored: the test removed the authd user and /var/lib/authd it had caused"
echo "PASS: test_deb ($((SECONDS - T0)) s)"
