#!/usr/bin/env bash
# The Debian package in a clean Debian root (issue 26); run as root, as
# `scripts/package.sh test-deb [DEB]`.
#
# Without DEB, builds the package with `scripts/package.sh deb` twice (the second time into a
# scratch directory) and requires the same bytes: the build is reproducible.
# Then copies a pristine minimal Debian tree (WAYPOST_DEBROOT, default
# ~/.cache/waypost-debroot-bookworm, made with `debootstrap --variant=minbase bookworm` when
# missing; the copy is deleted at the end, WAYPOST_KEEP_ROOT=1 keeps it) and in a chroot of the
# copy, with /proc, /sys and /dev mounted and the host's resolv.conf:
#  1. `apt-get install ./waypost_*.deb` into the pristine root: its Depends resolved from the
#     Debian archive; then `apt-get purge waypost` + `apt-get autoremove --purge` (with the
#     state and cache directories systemd would have made for the system unit) give back
#     exactly the files the pristine root had (names compared, except bookkeeping: dpkg and
#     apt state, logs, caches, and the accounts files: the `waypost` system user stays, as
#     Debian packages keep their system users);
#  2. installs the test's own tools (man-db, curl, python3, systemd), lists every file, and
#     installs the package again;
#  3. `waypost --version` names the package's version; `man -w` finds every page, man renders
#     waypost(1) and a subcommand's footer names waypost and its version; the bash, zsh and
#     fish completions are where those shells look (bash loads its file); the units are
#     installed and none is enabled; the conffile is registered; the system user exists; an
#     upgrade (a reinstall) keeps an edited conffile;
#  4. `systemd-analyze verify` on the system units and (--user) on the user units: no output;
#  5. the installed binary, as the `waypost` user with the installed config (listening on a free
#     loopback port: --listen 127.0.0.1:0, the address read from its log), proxies a request to a
#     python3 http.server origin (curl -x) and logs it;
#  6. purge and autoremove again: the files are those of step 2's list.
# Then `lintian` on the package, on the host (installed with apt-get when missing): no errors;
# its warnings and notes are printed.
# Output: one line per check; the last says how long it took.
set -euo pipefail
cd "$(dirname "$0")/../.."
started=$(date +%s)

say() { echo "[test-deb] $*"; }
die() {
    echo "[test-deb] FAILED: $*" >&2
    exit 1
}

[ "$(id -u)" = 0 ] || die "needs root (debootstrap, chroot, mount)"

deb="${1:-}"
if [ -z "$deb" ]; then
    deb=$(scripts/package.sh deb | tail -1)
    again=$(mktemp -d)
    second=$(WAYPOST_DEB_DIR="$again" scripts/package.sh deb 2>/dev/null | tail -1)
    cmp "$deb" "$second" || die "two builds of the same commit differ: $deb $second"
    rm -rf "$again"
    say "reproducible: two builds are byte-identical ($(sha256sum "$deb" | cut -c1-16)...)"
fi
[ -f "$deb" ] || die "no package at $deb"
deb=$(realpath "$deb")
version=$(dpkg-deb -f "$deb" Version)
say "package $deb ($version)"

base="${WAYPOST_DEBROOT:-${HOME:-/root}/.cache/waypost-debroot-bookworm}"
if [ ! -x "$base/usr/bin/apt-get" ]; then
    command -v debootstrap >/dev/null || apt-get install -y -qq debootstrap >/dev/null
    say "debootstrap --variant=minbase bookworm $base (once)"
    debootstrap --variant=minbase bookworm "$base" http://deb.debian.org/debian >/dev/null
fi

work=$(mktemp -d /tmp/waypost-test-deb.XXXXXX)
R="$work/root"
pids=()
cleanup() {
    local pid
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do
        while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
    done
    for m in dev/pts dev sys proc; do
        if mountpoint -q "$R/$m"; then umount "$R/$m"; fi
    done
    if [ "${WAYPOST_KEEP_ROOT:-0}" = 1 ]; then
        echo "[test-deb] root kept: $R" >&2
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT
cp -a "$base" "$R"
mount -t proc proc "$R/proc"
mount -t sysfs sysfs "$R/sys"
mount --bind /dev "$R/dev"
mount --bind /dev/pts "$R/dev/pts"
cp /etc/resolv.conf "$R/etc/resolv.conf"
# nothing in the root starts services
printf '#!/bin/sh\nexit 101\n' >"$R/usr/sbin/policy-rc.d"
chmod 0755 "$R/usr/sbin/policy-rc.d"

# runs a shell command in the root
in_root() {
    chroot "$R" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
        DEBIAN_FRONTEND=noninteractive /bin/sh -ec "$1"
}
# every file and directory of the root, apart from mounts, /tmp and /run (tmpfs on a running
# system; adduser's lock), and what the checks run through by design: bookkeeping of dpkg and
# apt, logs, caches that triggers rebuild, the accounts files, and /var/lib/private and
# /var/cache/private themselves (systemd's, made for every DynamicUser service: the package's
# directories in them are compared)
list_files() {
    in_root 'find / -xdev \( -path /tmp -o -path /run \) -prune -o -print' |
        grep -Ev '^/var/(lib|cache)/private$' |
        grep -Ev '^/(var/lib/(dpkg|apt)|var/cache/(apt|man|debconf|ldconfig)|var/log)(/|$)' |
        grep -Ev '^/etc/(passwd|group|shadow|gshadow|subuid|subgid)-?$|^/etc/ld\.so\.cache$' |
        LC_ALL=C sort
}

# apt-get purge waypost + autoremove --purge must give back the file list $1 had
purge_restores() {
    in_root 'apt-get purge -y -qq waypost >/dev/null 2>&1 && apt-get autoremove --purge -y -qq >/dev/null 2>&1'
    list_files >"$work/after"
    if ! diff -u "$1" "$work/after" >"$work/purge.diff"; then
        sed 's/^/    /' "$work/purge.diff" >&2
        die "purge left files behind or removed some (above: - missing, + new)"
    fi
    # (not /var/cache/man: man-db's cache of the pages step 3 rendered, which its daily
    # mandb run drops once their source is gone)
    left=$(in_root 'find / -xdev \( -path /tmp -o -path /var/cache/man \) -prune -o -name "*waypost*" -print' || true)
    [ -z "$left" ] || die "left after purge: $left"
}
# the directories systemd makes for the system unit (StateDirectory, CacheDirectory with
# DynamicUser=yes), with a file in each, so that purge is seen to remove them
make_unit_dirs() {
    # shellcheck disable=SC2016 # expanded in the root
    in_root 'for d in /var/lib /var/cache; do install -d -m 0700 $d/private; install -d -o waypost -g waypost -m 0700 $d/private/waypost; ln -sfn private/waypost $d/waypost; touch $d/private/waypost/file; done'
}
cp "$deb" "$R/tmp/"
install_deb() {
    in_root "apt-get install -y --no-install-recommends /tmp/$(basename "$deb")" >"$work/install.log" 2>&1 ||
        { cat "$work/install.log" >&2; die "apt-get install"; }
}

say "1. apt-get install ./$(basename "$deb") in the pristine root, then purge"
in_root 'apt-get update -qq'
list_files >"$work/pristine"
install_deb
new=$(awk '/^The following NEW/ { on = 1; next } on && /^  / { printf "%s", $0; next } { on = 0 }' "$work/install.log" | xargs)
say "   newly installed: $new ($(grep -c '^Get:' "$work/install.log" || true) from the Debian archive)"
make_unit_dirs
purge_restores "$work/pristine"
say "   purged: no file added or missing ($(wc -l <"$work/pristine") paths compared)"

say "2. apt-get install man-db curl python3 systemd (the test's tools), then the package again"
in_root 'apt-get install -y -qq --no-install-recommends man-db curl python3 systemd >/dev/null 2>&1'
list_files >"$work/before"
install_deb

say "3. installed"
got=$(in_root 'waypost --version')
[ "$got" = "waypost ${version%-*}" ] || die "waypost --version: $got"
say "   waypost --version: $got"
pages=$(dpkg-deb -c "$deb" | grep -o 'usr/share/man/man1/[^ ]*\.1\.gz' | sed 's|.*/||; s|\.1\.gz$||')
for page in $pages; do
    in_root "man -w $page" >/dev/null || die "man -w $page"
done
say "   man -w finds all $(echo "$pages" | wc -w) pages: $(in_root 'man -w waypost')"
in_root 'MANWIDTH=80 man waypost 2>/dev/null' | grep -q SUBCOMMANDS || die "man waypost renders no SUBCOMMANDS"
in_root 'MANWIDTH=80 man waypost-run 2>/dev/null' | tail -1 | grep -q "waypost ${version%-*}" ||
    die "man waypost-run's footer does not name waypost ${version%-*}"
for f in /usr/share/bash-completion/completions/waypost /usr/share/zsh/vendor-completions/_waypost \
    /usr/share/fish/vendor_completions.d/waypost.fish; do
    in_root "test -s $f" || die "no completion $f"
done
in_root 'bash -c ". /usr/share/bash-completion/completions/waypost && complete -p waypost"' | grep -q _waypost ||
    die "bash does not load the completion"
say "   completions: bash (loads: complete -F _waypost), zsh, fish"
for u in system/waypost.service system/waypost.socket system/waypost-admin.socket \
    user/waypost.service user/waypost.socket; do
    in_root "test -f /usr/lib/systemd/$u" || die "no unit /usr/lib/systemd/$u"
done
enabled=$(in_root 'find /etc/systemd -name "waypost*"')
[ -z "$enabled" ] || die "units enabled on install: $enabled"
for u in waypost.service waypost.socket waypost-admin.socket; do
    state=$(in_root "systemctl is-enabled $u" || true)
    [ "$state" = disabled ] || die "$u is $state, not disabled"
done
say "   units: 3 system, 2 user, all disabled"
# shellcheck disable=SC2016 # expanded by dpkg-query
in_root 'dpkg-query -W -f="\${Conffiles}" waypost' | grep -q '/etc/waypost/waypost.toml' ||
    die "/etc/waypost/waypost.toml is not a conffile"
in_root 'getent passwd waypost' | grep -q ':/nonexistent:/usr/sbin/nologin$' ||
    die "no system user waypost: $(in_root 'getent passwd waypost' || true)"
say "   conffile /etc/waypost/waypost.toml; user $(in_root 'getent passwd waypost')"
# an upgrade (here to the same version: prerm upgrade, postinst configure OLD) keeps an edited
# conffile and the user
in_root 'echo "# edited by the test" >>/etc/waypost/waypost.toml'
in_root "apt-get install -y -qq --reinstall /tmp/$(basename "$deb") >/dev/null 2>&1" || die "reinstall"
in_root 'tail -1 /etc/waypost/waypost.toml' | grep -qx '# edited by the test' || die "reinstall lost the config edit"
in_root 'getent passwd waypost >/dev/null' || die "reinstall lost the user"
say "   reinstalled (an upgrade): the edited conffile is kept"

say "4. systemd-analyze verify"
out=$(in_root 'systemd-analyze verify --man=no /usr/lib/systemd/system/waypost.service /usr/lib/systemd/system/waypost.socket /usr/lib/systemd/system/waypost-admin.socket 2>&1') ||
    die "systemd-analyze verify: $out"
[ -z "$out" ] || die "systemd-analyze verify said: $out"
out=$(in_root 'mkdir -p /tmp/u/run && chmod 0700 /tmp/u/run && HOME=/tmp/u XDG_RUNTIME_DIR=/tmp/u/run systemd-analyze --user verify --man=no /usr/lib/systemd/user/waypost.service /usr/lib/systemd/user/waypost.socket 2>&1') ||
    die "systemd-analyze --user verify: $out"
[ -z "$out" ] || die "systemd-analyze --user verify said: $out"
say "   system and user units verify without a message"

say "5. the installed binary proxies a request"
make_unit_dirs
in_root 'mkdir -p /tmp/origin && echo "hello through waypost" >/tmp/origin/hello.txt'
chroot "$R" /usr/bin/env -i PATH=/usr/bin:/bin python3 -u -m http.server --bind 127.0.0.1 \
    --directory /tmp/origin 0 >"$R/tmp/origin.log" 2>&1 &
pids+=($!)
chroot "$R" /usr/bin/setpriv --reuid=waypost --regid=waypost --clear-groups \
    /usr/bin/env -i PATH=/usr/bin:/bin XDG_CACHE_HOME=/var/cache \
    /usr/bin/waypost run --config /etc/waypost/waypost.toml --listen 127.0.0.1:0 \
    >"$R/tmp/waypost.log" 2>&1 &
pids+=($!)
deadline=$(($(date +%s) + 30))
origin="" proxy=""
while [ -z "$origin" ] || [ -z "$proxy" ]; do
    [ "$(date +%s)" -lt "$deadline" ] || {
        cat "$R/tmp/origin.log" "$R/tmp/waypost.log" >&2
        die "origin or waypost not listening after 30 s"
    }
    origin=$(grep -o 'port [0-9]*' "$R/tmp/origin.log" | head -1 | cut -d' ' -f2 || true)
    proxy=$(grep 'waypost is listening' "$R/tmp/waypost.log" | grep -o '127\.0\.0\.1:[0-9]*' | head -1 || true)
    sleep 0.2
done
body=$(in_root "curl -sS --max-time 20 -x http://$proxy http://127.0.0.1:$origin/hello.txt") ||
    { cat "$R/tmp/waypost.log" >&2; die "curl -x http://$proxy failed"; }
[ "$body" = "hello through waypost" ] || die "through the proxy: $body"
# the access log is written in batches: wait for the line
deadline=$(($(date +%s) + 10))
line="waypost::access: .* target=127.0.0.1:$origin .*status=200"
until grep -q "$line" "$R/tmp/waypost.log"; do
    [ "$(date +%s)" -lt "$deadline" ] || { cat "$R/tmp/waypost.log" >&2; die "waypost logged no request in 10 s"; }
    sleep 0.2
done
say "   curl -x http://$proxy http://127.0.0.1:$origin/hello.txt: \"$body\""
say "   waypost's access log: $(grep -o "waypost::access: .* target=127.0.0.1:$origin .*" "$R/tmp/waypost.log" | head -1)"
for pid in "${pids[@]}"; do kill "$pid"; done
for pid in "${pids[@]}"; do
    while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
done
pids=()

say "6. apt-get purge waypost; apt-get autoremove --purge"
purge_restores "$work/before"
say "   no file added or missing ($(wc -l <"$work/before") paths compared); kept: $(in_root 'getent passwd waypost')"

say "7. lintian"
if ! command -v lintian >/dev/null; then
    apt-get install -y -qq --no-install-recommends lintian >/dev/null
fi
lint=0
lintian --fail-on error --display-info "$deb" >"$work/lintian.txt" 2>&1 || lint=$?
grep -v 'running with root privileges is not recommended' "$work/lintian.txt" | sed 's/^/    /' || true
[ "$lint" = 0 ] || die "lintian reports errors"
say "   no errors ($(grep -c '^W:' "$work/lintian.txt" || true) warnings, $(grep -c '^I:' "$work/lintian.txt" || true) notes)"

say "all checks passed in $(($(date +%s) - started)) s"
