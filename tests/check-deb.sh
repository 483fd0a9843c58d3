#!/usr/bin/env bash
# The Debian packages (debian/, `make deb`), built and inspected:
#  - scripts/build-deb.sh builds golb and golb-toy-backend with dpkg-buildpackage -b into build/deb/
#    (skip the build with GOLB_DEB_BUILT=1 when build/deb/ holds a fresh one);
#  - dpkg-deb -c: each package holds exactly the expected files, with their modes;
#  - dpkg-deb -I: /etc/golb/golb.yml is the one conffile, Depends has the shared libraries filled
#    in, the version's upstream part is what golb -version says;
#  - the maintainer scripts enable golb.service but never start it, try-restart it on upgrade and
#    stop it on removal;
#  - dpkg-deb -x: the unit runs /usr/bin/golb as Type=notify with ExecReload (Debian 12's systemd
#    252), systemd-analyze verify accepts it, the extracted golb accepts the extracted example
#    config, the man pages are there and golb-toy-backend(1) is lint-clean;
#  - as root: installed into a throwaway root (dpkg --root with --force-script-chrootless, which
#    runs the maintainer scripts with DPKG_ROOT): the unit is enabled there, an edited conffile
#    survives a reinstall and an upgrade whose example changed (dpkg --force-confold), purge
#    removes the config and the enablement; the host system is not touched;
#  - lintian --fail-on error on the .changes (both packages and their dbgsym).
# Needs deps.txt's groups build and deb (`make check-deb` installs them).
set -u
cd "$(dirname "$0")/.."
out=build/deb
tmp=$(mktemp -d /tmp/golb-deb-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fail=0
rooted=""
problem() { echo "check-deb: $*" >&2; fail=1; }
finish() {
    if [ $fail -eq 0 ]; then
        echo "check-deb: ok (file lists, conffile, maintainer scripts, unit, man pages, ${rooted}lintian)"
        [ -z "${GOLB_RESULTS:-}" ] || echo "1 0" >> "$GOLB_RESULTS"
    else
        [ -z "${GOLB_RESULTS:-}" ] || echo "0 1" >> "$GOLB_RESULTS"
    fi
    exit $fail
}

for tool in dpkg-buildpackage dh lintian; do
    command -v $tool >/dev/null || { problem "$tool is not installed (deps.txt, group deb: make deps-deb)"; finish; }
done

version=$(dpkg-parsechangelog -l debian/changelog -S Version)
upstream=${version%-*}
arch=$(dpkg --print-architecture)
deb=$out/golb_${version}_$arch.deb
toy=$out/golb-toy-backend_${version}_$arch.deb
changes=$out/golb_${version}_$arch.changes
if [ "${GOLB_DEB_BUILT:-}" != 1 ]; then
    scripts/build-deb.sh >"$tmp/build.out" 2>&1 || { problem "make deb failed:"; cat "$tmp/build.out" >&2; finish; }
fi
for f in "$deb" "$toy" "$changes"; do
    [ -f "$f" ] || { problem "$f was not built"; finish; }
done

# ---- contents: "path mode" of every file and symlink (directories come with them).
contents() { dpkg-deb -c "$1" | awk '$1 !~ /^d/ { sub(/^\.\//, "", $6); print $6, $1 }' | sort; }
want="etc/golb/golb.yml -rw-r--r--
lib/systemd/system/golb.service -rw-r--r--
usr/bin/golb -rwxr-xr-x
usr/share/doc/golb/changelog.Debian.gz -rw-r--r--
usr/share/doc/golb/copyright -rw-r--r--
usr/share/man/man5/golb.yml.5.gz -rw-r--r--
usr/share/man/man8/golb.8.gz -rw-r--r--"
got=$(contents "$deb")
[ "$got" = "$want" ] || problem "golb: files differ from the expected list:"$'\n'"$(diff <(echo "$want") <(echo "$got"))"
want="usr/bin/golb-toy-backend -rwxr-xr-x
usr/share/doc/golb-toy-backend/changelog.Debian.gz -rw-r--r--
usr/share/doc/golb-toy-backend/copyright -rw-r--r--
usr/share/man/man1/golb-toy-backend.1.gz -rw-r--r--"
got=$(contents "$toy")
[ "$got" = "$want" ] || problem "golb-toy-backend: files differ from the expected list:"$'\n'"$(diff <(echo "$want") <(echo "$got"))"
dpkg-deb -c "$deb" "$toy" 2>/dev/null | awk '$2 != "root/root" { bad = 1 } END { exit bad }' ||
    problem "files not owned by root/root"

# ---- control data.
ctl=$tmp/control
dpkg-deb -e "$deb" "$ctl"
[ "$(cat "$ctl/conffiles" 2>/dev/null)" = /etc/golb/golb.yml ] ||
    problem "golb: conffiles is not exactly /etc/golb/golb.yml: $(cat "$ctl/conffiles" 2>/dev/null)"
for p in "$deb" "$toy"; do
    dep=$(dpkg-deb -f "$p" Depends)
    case "$dep" in *'${'*|'') problem "$(basename "$p"): Depends not filled in: '$dep'" ;; esac
    echo "$dep" | grep -q 'libc6' || problem "$(basename "$p"): Depends lacks libc6 (shlibs): $dep"
done
dpkg-deb -f "$deb" Depends | grep -q 'libssl3' || problem "golb: Depends lacks libssl3"
[ "$(dpkg-deb -f "$deb" Version)" = "$version" ] || problem "golb: Version is not $version"

# Maintainer scripts: enable, never start; try-restart on upgrade (not stop in preinst); stop on remove.
grep -q "deb-systemd-helper enable 'golb.service'" "$ctl/postinst" || problem "postinst does not enable golb.service"
# The only service action in postinst is try-restart (a no-op for a stopped golb).
! grep -E 'deb-systemd-invoke|systemctl .*(start|restart)|_dh_action=' "$ctl/postinst" | grep -vq "deb-systemd-invoke try-restart 'golb.service'" ||
    problem "postinst may start golb.service (it must only be enabled):"$'\n'"$(grep -E 'deb-systemd-invoke|_dh_action=' "$ctl/postinst")"
grep -q "deb-systemd-invoke try-restart 'golb.service'" "$ctl/postinst" ||
    problem "postinst does not try-restart golb.service on upgrade"
[ ! -e "$ctl/preinst" ] || ! grep -q 'deb-systemd-invoke stop' "$ctl/preinst" ||
    problem "preinst stops golb.service on upgrade (and nothing starts it again)"
grep -q 'deb-systemd-invoke stop golb.service' "$ctl/prerm" || problem "prerm does not stop golb.service on removal"
grep -q 'deb-systemd-helper purge' "$ctl/postrm" || problem "postrm does not purge the unit's state"

# ---- the extracted tree.
x=$tmp/x
dpkg-deb -x "$deb" "$x" && dpkg-deb -x "$toy" "$x"
unit=$x/lib/systemd/system/golb.service
grep -qx 'ExecStart=/usr/bin/golb -confpath /etc/golb/golb.yml' "$unit" ||
    problem "golb.service: ExecStart does not run /usr/bin/golb -confpath /etc/golb/golb.yml"
grep -qx 'ExecStartPre=/usr/bin/golb -t -confpath /etc/golb/golb.yml' "$unit" ||
    problem "golb.service: ExecStartPre does not check the config"
grep -qx 'Type=notify' "$unit" || problem "golb.service: not Type=notify (Debian 12's systemd 252 has no notify-reload)"
grep -qx 'ExecReload=/bin/kill -HUP $MAINPID' "$unit" || problem "golb.service: no ExecReload (SIGHUP)"
grep -qx 'DynamicUser=yes' "$unit" || problem "golb.service: not DynamicUser=yes"
! grep -n '@[A-Z]*@' "$unit" || problem "golb.service: placeholders left"
cmp -s dist/golb.yml "$x/etc/golb/golb.yml" || problem "etc/golb/golb.yml is not dist/golb.yml"
v=$("$x/usr/bin/golb" -version 2>&1)
[ "$v" = "golb $upstream" ] || problem "golb -version says '$v', debian/changelog $version: keep them in step"
"$x/usr/bin/golb" -t -confpath "$x/etc/golb/golb.yml" >/dev/null 2>&1 ||
    problem "the packaged golb does not accept the packaged example config"
"$x/usr/bin/golb-toy-backend" -h >/dev/null 2>&1 || problem "golb-toy-backend -h fails"
for m in man8/golb.8 man5/golb.yml.5 man1/golb-toy-backend.1; do
    zcat "$x/usr/share/man/$m.gz" > "$tmp/$(basename $m)" 2>/dev/null || problem "$m.gz missing or not gzip"
done
cmp -s docs/man/golb.8 "$tmp/golb.8" || problem "golb.8 is not docs/man/golb.8"
cmp -s docs/man/golb.yml.5 "$tmp/golb.yml.5" || problem "golb.yml.5 is not docs/man/golb.yml.5"
if command -v mandoc >/dev/null; then
    out=$(mandoc -T lint -W warning "$tmp/golb-toy-backend.1" 2>&1)
    [ -z "$out" ] || problem "mandoc -T lint golb-toy-backend.1:"$'\n'"$out"
fi
if command -v systemd-analyze >/dev/null; then
    # As tests/check-install.sh: the extracted binary (verify checks ExecStart) and man pages.
    sed "s|/usr/bin/golb|$x/usr/bin/golb|" "$unit" > "$tmp/golb.service"
    out=$(MANPATH="$x/usr/share/man" systemd-analyze verify "$tmp/golb.service" 2>&1)
    [ -z "$out" ] || problem "systemd-analyze verify golb.service:"$'\n'"$out"
fi

# ---- a throwaway root: dpkg's own conffile handling and the maintainer scripts, with DPKG_ROOT.
# Dependencies are not installed there (--force-depends); nothing runs systemctl (DPKG_ROOT set).
if [ "$(id -u)" = 0 ]; then
    r=$tmp/root
    mkdir -p "$r/var/lib/dpkg/info" "$r/var/lib/dpkg/updates" "$r/var/log"
    : > "$r/var/lib/dpkg/status"
    rdpkg() { dpkg --root="$r" --log="$r/var/log/dpkg.log" --force-script-chrootless --force-depends \
                   --force-confold "$@" >>"$tmp/dpkg.out" 2>&1 ||
                  { problem "dpkg $* failed:"; cat "$tmp/dpkg.out" >&2; }; }
    rdpkg -i "$deb" "$toy"
    [ -x "$r/usr/bin/golb" ] && [ -x "$r/usr/bin/golb-toy-backend" ] || problem "root install: binaries missing"
    [ "$(readlink "$r/etc/systemd/system/multi-user.target.wants/golb.service")" = /lib/systemd/system/golb.service ] ||
        problem "root install: golb.service is not enabled (multi-user.target.wants)"
    echo "# edited" >> "$r/etc/golb/golb.yml"
    rdpkg -i "$deb"
    grep -qx '# edited' "$r/etc/golb/golb.yml" || problem "root install: a reinstall replaced the edited config"
    # An upgrade whose example changed: the edited config stays, the new example lands next to it.
    up=$tmp/up
    dpkg-deb -R "$deb" "$up"
    sed -i "s/^Version: .*/Version: $upstream-99/" "$up/DEBIAN/control"
    echo "# new example" >> "$up/etc/golb/golb.yml"
    (cd "$up" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | xargs -0 md5sum > DEBIAN/md5sums)
    dpkg-deb -b "$up" "$tmp/golb-up.deb" >/dev/null
    rdpkg -i "$tmp/golb-up.deb"
    grep -qx '# edited' "$r/etc/golb/golb.yml" || problem "root install: an upgrade replaced the edited config"
    grep -qx '# new example' "$r/etc/golb/golb.yml.dpkg-dist" 2>/dev/null ||
        problem "root install: the upgrade's example is not in golb.yml.dpkg-dist"
    rdpkg -r golb
    [ ! -e "$r/usr/bin/golb" ] || problem "root install: remove left /usr/bin/golb"
    grep -qx '# edited' "$r/etc/golb/golb.yml" || problem "root install: remove (not purge) removed the config"
    rdpkg -P golb golb-toy-backend
    [ ! -e "$r/etc/golb" ] || problem "root install: purge left $(cd "$r" && find etc/golb)"
    [ ! -e "$r/etc/systemd/system/multi-user.target.wants/golb.service" ] || problem "root install: purge left the enablement"
    left=$(cd "$r" && find . \( -type f -o -type l \) ! -path './var/lib/dpkg/*' ! -path './var/log/dpkg.log')
    [ -z "$left" ] || problem "root install: purge left files:"$'\n'"$left"
    rooted="install into a throwaway root, "
else
    echo "check-deb: not root, skipping the install into a throwaway root (dpkg --root)"
fi

# ---- lintian: no errors (the warnings left are listed in README, "Install from the .deb").
lintian --fail-on error --tag-display-limit 0 "$changes" >"$tmp/lintian.out" 2>&1
rc=$?
grep -v '^running with root privileges is not recommended!$' "$tmp/lintian.out" > "$tmp/lintian.txt"
[ $rc -eq 0 ] || problem "lintian reports errors (exit $rc):"$'\n'"$(cat "$tmp/lintian.txt")"
[ ! -s "$tmp/lintian.txt" ] || sed 's/^/check-deb: lintian: /' "$tmp/lintian.txt"

finish
