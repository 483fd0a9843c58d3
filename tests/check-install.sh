#!/usr/bin/env bash
# `make install` / `make uninstall` into a staging directory (DESTDIR, PREFIX=/usr):
#  - the installed files are exactly the expected list, with their modes;
#  - the unit has its paths substituted, the installed golb runs and accepts the example config;
#  - a second install keeps an edited config; uninstall then keeps it (and says so) and removes
#    everything else; a pristine install + uninstall leaves no file and no etc/golb directory;
#  - systemd-analyze verify accepts the unit, when systemd-analyze is there.
set -u
cd "$(dirname "$0")/.."
make=${MAKE:-make}
tmp=$(mktemp -d /tmp/golb-install-XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fail=0
problem() { echo "check-install: $*" >&2; fail=1; }
files() { (cd "$1" && find . \( -type f -o -type l \) -printf '%P %m\n' | sort); }
mk() { env -u MAKEFLAGS -u MAKELEVEL $make --no-print-directory -s MODE=release "$@" >"$tmp/make.log" 2>&1 ||
           { problem "make $* failed:"; cat "$tmp/make.log" >&2; }; }

root=$tmp/root
mk install DESTDIR="$root" PREFIX=/usr
want="etc/golb/golb.yml 644
usr/bin/golb 755
usr/bin/toy-backend 755
usr/lib/systemd/system/golb.service 644
usr/share/man/man5/golb.yml.5 644
usr/share/man/man8/golb.8 644"
got=$(files "$root")
[ "$got" = "$want" ] || problem "installed files differ from the expected list:"$'\n'"$(diff <(echo "$want") <(echo "$got"))"

unit=$root/usr/lib/systemd/system/golb.service
grep -qx 'ExecStart=/usr/bin/golb -confpath /etc/golb/golb.yml' "$unit" ||
    problem "golb.service: ExecStart does not run /usr/bin/golb -confpath /etc/golb/golb.yml"
grep -qx 'ExecStartPre=/usr/bin/golb -t -confpath /etc/golb/golb.yml' "$unit" ||
    problem "golb.service: ExecStartPre does not check the config"
! grep -n '@[A-Z]*@' "$unit" || problem "golb.service: placeholders left"
"$root/usr/bin/golb" -version | grep -q '^golb ' || problem "installed golb -version fails"
"$root/usr/bin/golb" -t -confpath "$root/etc/golb/golb.yml" >/dev/null ||
    problem "the installed example config is not valid"
cmp -s dist/golb.yml "$root/etc/golb/golb.yml" || problem "etc/golb/golb.yml is not dist/golb.yml"

# The service type follows the systemd it is installed for: notify-reload from 253 on, else
# notify + ExecReload (an unknown Type= would silently make the unit Type=simple).
for t in notify notify-reload; do
    mk install DESTDIR="$tmp/type-$t" PREFIX=/usr SYSTEMD_TYPE=$t
    u=$tmp/type-$t/usr/lib/systemd/system/golb.service
    grep -qx "Type=$t" "$u" || problem "SYSTEMD_TYPE=$t: the unit does not say Type=$t"
    if [ $t = notify ]; then
        grep -qx 'ExecReload=/bin/kill -HUP $MAINPID' "$u" || problem "Type=notify without ExecReload"
    elif grep -q '^ExecReload=' "$u"; then
        problem "Type=notify-reload with an ExecReload= line"
    fi
done
v=$(systemctl --version 2>/dev/null | awk 'NR == 1 { print $2 + 0 }')
if [ -n "$v" ] && [ "$v" -lt 253 ]; then
    grep -qx 'Type=notify' "$unit" || problem "systemd $v: the default install is not Type=notify"
fi

if command -v systemd-analyze >/dev/null; then
    # The unit as installed, but pointing at the staged binary (verify checks ExecStart exists)
    # and with the staged man pages on MANPATH (it checks Documentation=). systemd < 253 does not
    # know Type=notify-reload yet: that one message is expected there (see golb.service).
    sed "s|/usr/bin/golb|$root/usr/bin/golb|" "$unit" > "$tmp/golb.service"
    out=$(MANPATH="$root/usr/share/man" systemd-analyze verify "$tmp/golb.service" 2>&1 |
          grep -v 'Failed to parse service type, ignoring: notify-reload')
    [ -z "$out" ] || problem "systemd-analyze verify golb.service:"$'\n'"$out"
fi

# An edited config survives a re-install and the uninstall.
echo "# edited" >> "$root/etc/golb/golb.yml"
mk install DESTDIR="$root" PREFIX=/usr
grep -q '^# edited$' "$root/etc/golb/golb.yml" || problem "make install replaced an existing config"
mk uninstall DESTDIR="$root" PREFIX=/usr
grep -q "keeping .*etc/golb/golb.yml" "$tmp/make.log" || problem "uninstall did not say it keeps the edited config"
got=$(files "$root")
[ "$got" = "etc/golb/golb.yml 644" ] || problem "after uninstall with an edited config, left: $got"

# Pristine: nothing at all is left.
rm -rf "$root"
mk install DESTDIR="$root" PREFIX=/usr
mk uninstall DESTDIR="$root" PREFIX=/usr
got=$(files "$root")
[ -z "$got" ] || problem "make uninstall left files: $got"
[ ! -e "$root/etc/golb" ] || problem "make uninstall left etc/golb"

# The default PREFIX is /usr/local, the config still goes to /etc.
rm -rf "$root"
mk install DESTDIR="$root"
for f in usr/local/bin/golb usr/local/share/man/man8/golb.8 usr/local/lib/systemd/system/golb.service etc/golb/golb.yml; do
    [ -e "$root/$f" ] || problem "default PREFIX: $f missing"
done
grep -qx 'ExecStart=/usr/local/bin/golb -confpath /etc/golb/golb.yml' "$root/usr/local/lib/systemd/system/golb.service" ||
    problem "default PREFIX: ExecStart is not /usr/local/bin/golb"

if [ $fail -eq 0 ]; then
    echo "check-install: ok (install file list, unit, edited config kept, uninstall leaves nothing)"
    [ -z "${GOLB_RESULTS:-}" ] || echo "1 0" >> "$GOLB_RESULTS"
else
    [ -z "${GOLB_RESULTS:-}" ] || echo "0 1" >> "$GOLB_RESULTS"
fi
exit $fail
