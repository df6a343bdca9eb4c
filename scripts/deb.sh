#!/usr/bin/env bash
# deb.sh - build authd's Debian package with dpkg-buildpackage and debhelper
# (debian/), from this tree, into build/deb/ (make deb).
#
#   scripts/deb.sh [--out DIR]     default DIR: build/deb
#
# dpkg-buildpackage writes its results next to the source directory, so the
# tree's files (git's tracked ones and new ones it does not ignore) are
# copied to DIR/authd-VERSION first and built there: the .deb lands in DIR,
# nothing is written above the checkout. The copy keeps the files' times
# and the build directory is kept between runs (-nc), so a second build
# only compiles what changed. Prints the path of the .deb on its last line.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=$ROOT/build/deb
while [ $# -gt 0 ]; do
	case $1 in
	--out) OUT=$2; shift 2 ;;
	-h|--help) sed -n '2,12p' "$0"; exit 0 ;;
	*) echo "deb.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
	esac
done

cd "$ROOT"
VERSION=$(dpkg-parsechangelog -S Version)
CMAKE_VERSION=$(sed -n 's/^project(authd VERSION \([0-9.]*\).*/\1/p' CMakeLists.txt)
if [ "$VERSION" != "$CMAKE_VERSION" ]; then
	echo "deb.sh: debian/changelog says $VERSION, CMakeLists.txt $CMAKE_VERSION:" \
		"add a changelog entry (dch -v $CMAKE_VERSION)" >&2
	exit 1
fi
ARCH=$(dpkg-architecture -qDEB_HOST_ARCH)
SRC=$OUT/authd-$VERSION
mkdir -p "$SRC"

if git -C "$ROOT" rev-parse --git-dir >/dev/null 2>&1; then
	git ls-files -co --exclude-standard -z >"$OUT/files.list"
else
	find . -path ./build -prune -o -type f -print0 >"$OUT/files.list"
fi
tar --null -T "$OUT/files.list" -cf - | tar -C "$SRC" -xf -
# files gone from the tree go from the copy too (not the build's own)
(cd "$SRC" && find . -type f \
	-not -path './obj-deb/*' -not -path './debian/authd/*' \
	-not -path './debian/.debhelper/*' -not -path './debian/tmp/*' \
	-not -name 'debhelper-build-stamp' -not -name '*.substvars' \
	-not -name 'files' -not -name '*.debhelper' -not -name '*.log' \
	-print0) | sed -z 's|^\./||' | sort -z >"$OUT/copy.list"
sed -z 's|^\./||' "$OUT/files.list" | sort -z >"$OUT/tree.list"
comm -z -23 "$OUT/copy.list" "$OUT/tree.list" | (cd "$SRC" && xargs -0 -r rm -f)

cd "$SRC"
echo "deb: building authd $VERSION ($ARCH) in $SRC" >&2
dpkg-buildpackage -b -nc -us -uc -j"$(nproc)" >"$OUT/build.log" 2>&1 || {
	tail -n 40 "$OUT/build.log" >&2
	echo "deb: dpkg-buildpackage failed (log: $OUT/build.log)" >&2
	exit 1
}
DEB=$OUT/authd_${VERSION}_${ARCH}.deb
[ -f "$DEB" ] || { echo "deb: $DEB was not made (log: $OUT/build.log)" >&2; exit 1; }
echo "$DEB"
