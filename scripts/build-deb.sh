#!/usr/bin/env bash
# `make deb`: the Debian packages golb and golb-toy-backend, built by dpkg-buildpackage -b from a
# copy of the sources in build/deb/golb-VERSION/ (its `debian/rules clean` runs make clean, which
# must not empty this tree's build/ and bin/). The .deb files, .buildinfo, .changes and the build
# log stay in build/deb/; the copy is removed after a successful build.
# The full dpkg-buildpackage output goes to build/deb/build.log (V=1: to the terminal as well).
set -euo pipefail
cd "$(dirname "$0")/.."
out=build/deb
version=$(dpkg-parsechangelog -l debian/changelog -S Version)
src=$out/golb-${version%-*}
rm -rf "$out"
mkdir -p "$src"

# The sources as they are now, uncommitted changes included: in a git checkout the files git
# knows or would add (not build/, bin/ or a debian/ left over from an in-tree build), elsewhere
# everything but those.
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    git ls-files -z --cached --others --exclude-standard |
        while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
        tar --null -T - -cf - | tar -xf - -C "$src"
else
    tar --exclude=./build --exclude=./bin --exclude=./.git --exclude=./debian/tmp \
        --exclude=./debian/golb --exclude=./debian/golb-toy-backend --exclude=./debian/.debhelper \
        -cf - . | tar -xf - -C "$src"
fi

# Parallel build on every CPU unless DEB_BUILD_OPTIONS says otherwise.
jobs=()
case " ${DEB_BUILD_OPTIONS:-} " in *" parallel="*) ;; *) jobs=(-J"$(nproc 2>/dev/null || echo 1)") ;; esac
log=$out/build.log
echo "  DEB     $src (dpkg-buildpackage -us -uc -b, log in $log)"
if [ "${V:-}" = 1 ]; then
    (cd "$src" && dpkg-buildpackage -us -uc -b "${jobs[@]}") 2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}
else
    rc=0
    (cd "$src" && dpkg-buildpackage -us -uc -b "${jobs[@]}") >"$log" 2>&1 || rc=$?
fi
if [ "$rc" -ne 0 ]; then
    [ "${V:-}" = 1 ] || tail -n 40 "$log" >&2
    echo "make deb: dpkg-buildpackage failed (exit $rc); the whole log is $log, the tree $src" >&2
    exit 1
fi
rm -rf "$src"
for f in "$out"/*.deb; do echo "  DEB     $f"; done
