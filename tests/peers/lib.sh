# shellcheck shell=bash
# Common functions for the real-peer scripts in tests/peers/ (sourced, never run).
#
# Model: every peer lives in a private STATE dir chosen by the caller (a tempdir per
# test). Inside it: pids/NAME.pid (line 1 pid, line 2 program), log/, rendered configs.
# Daemons bind 127.0.0.1 on a caller-chosen PORT, run unprivileged ($WP_RUN_AS, default
# nobody, when started by root), in their own session (setsid), and are stopped only by
# the recorded pid plus the members of that session (auth helpers, dante children).
# Nothing system-wide is touched: no /etc/krb5.conf, no /etc/hosts, no services.
#
# Exit codes of the start scripts: 0 up; 64 usage; 69 a program is missing (run
# scripts/install-deps.sh); 75 the port is already taken (pick another and retry);
# 1 anything else (the message and the daemon's log tail are on stderr).

WP_PEERS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
WP_REPO_DIR="$(cd "$WP_PEERS_DIR/../.." && pwd)"

# Test identities (the same as the shared recipe, so docs and tests agree).
: "${WP_REALM:=EXAMPLE.TEST}"
: "${WP_NTLM_DOMAIN:=EXAMPLE}"
: "${WP_USER:=user}"
: "${WP_PASS:=Secret-Pass-1}"
: "${WP_PROXY_HOST:=proxy.example.test}"
: "${WP_ORIGIN_HOST:=origin.example.test}"
: "${WP_SQUID:=/usr/sbin/squid}"
: "${WP_SQUID_LIBEXEC:=/usr/lib/squid}"
: "${WP_PYTHON:=/usr/bin/python3}"

if [ "$(id -u)" = 0 ]; then : "${WP_RUN_AS:=nobody}"; else WP_RUN_AS="$(id -un)"; fi

wp_log() { printf '[peers] %s\n' "$*" >&2; }
wp_die() { wp_log "ERROR: $1"; exit "${2:-1}"; }
wp_usage() { printf '%s\n' "$*" >&2; exit 64; }

# Cache shared by all runs (the python venv with pyspnego); scripts/install-deps.sh fills it.
wp_cache_dir() {
    if [ -n "${WP_TEST_CACHE:-}" ]; then printf '%s' "$WP_TEST_CACHE"
    elif [ "$(id -u)" = 0 ]; then printf '/var/cache/waypost-test'
    else printf '%s/waypost-test' "${XDG_CACHE_HOME:-$HOME/.cache}"; fi
}
WP_VENV="$(wp_cache_dir)/venv"

# wp_require PROG... : exit 69 naming the installer when a program is missing.
wp_require() {
    local p
    for p in "$@"; do
        command -v "$p" >/dev/null 2>&1 || [ -x "$p" ] ||
            wp_die "missing program '$p': run scripts/install-deps.sh (as root) to install the test dependencies" 69
    done
}

wp_require_venv() {
    "$WP_VENV/bin/python" -c 'import spnego' 2>/dev/null ||
        wp_die "python venv with pyspnego missing at $WP_VENV: run scripts/install-deps.sh (set WP_TEST_CACHE to move it)" 69
}

# wp_parse_common "$@" : sets STATE, PORT, OWNER_PID and leaves the rest in WP_ARGS.
wp_parse_common() {
    STATE="" PORT="" OWNER_PID=""
    WP_ARGS=()
    while [ $# -gt 0 ]; do
        case "$1" in
            --state) STATE="${2:?--state needs a dir}"; shift 2 ;;
            --port) PORT="${2:?--port needs a number}"; shift 2 ;;
            --owner-pid) OWNER_PID="${2:?--owner-pid needs a pid}"; shift 2 ;;
            *) WP_ARGS+=("$1"); shift ;;
        esac
    done
    [ -n "$STATE" ] || wp_usage "--state DIR is required"
    case "$PORT" in '' | *[!0-9]*) [ "${WP_NO_PORT:-}" = 1 ] || wp_usage "--port PORT (a number) is required" ;; esac
    if [ "${WP_NO_CREATE:-}" = 1 ]; then
        [ -d "$STATE" ] || exit 0   # nothing was started there (or it is gone already)
    else
        mkdir -p "$STATE/pids" "$STATE/log"
    fi
    STATE="$(cd "$STATE" && pwd)"
    [ "${WP_NO_CREATE:-}" = 1 ] || chmod 755 "$STATE"
}

wp_is_root() { [ "$(id -u)" = 0 ]; }
wp_drops_privileges() { wp_is_root && [ "$WP_RUN_AS" != root ]; }

# wp_give_state : let the unprivileged daemon user own the state dir.
wp_give_state() {
    if wp_drops_privileges; then
        chown -R "$WP_RUN_AS:$(id -gn "$WP_RUN_AS")" "$STATE"
        wp_as_user test -w "$STATE" ||
            wp_die "$WP_RUN_AS cannot reach $STATE (a private parent dir?): use a state dir under /tmp"
    fi
}

# wp_as_user CMD... : run CMD in the foreground as the daemon user.
wp_as_user() {
    if wp_drops_privileges; then
        setpriv "--reuid=$(id -u "$WP_RUN_AS")" "--regid=$(id -g "$WP_RUN_AS")" --clear-groups -- "$@"
    else
        "$@"
    fi
}

# wp_render TEMPLATE [OUT] : replace every @VAR@ in TEMPLATE with the shell variable VAR
# (to stdout without OUT).
wp_render() {
    local tpl="$1" out="${2:-}" content v
    content="$(cat "$tpl")"
    for v in $(grep -o '@[A-Z][A-Z0-9_]*@' "$tpl" | sort -u | tr -d @); do
        [ -n "${!v+x}" ] || wp_die "template $tpl uses @$v@ but \$$v is not set"
        content="${content//@$v@/${!v}}"
    done
    if [ -n "$out" ]; then printf '%s\n' "$content" >"$out"; else printf '%s\n' "$content"; fi
}

wp_pidfile() { printf '%s/pids/%s.pid' "$STATE" "$1"; }

# wp_pid_alive PID : running (a zombie waiting for init to reap it counts as gone).
wp_pid_alive() {
    local stat
    stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
    stat="${stat##*) }"
    [ "${stat%% *}" != Z ]
}

# wp_alive NAME : the daemon recorded as NAME is running.
wp_alive() {
    local pf pid
    pf="$(wp_pidfile "$1")"
    [ -s "$pf" ] || return 1
    pid="$(head -n1 "$pf")"
    [ -n "$pid" ] && wp_pid_alive "$pid"
}

# wp_port_free PORT : exit 75 if something already accepts on 127.0.0.1:PORT.
wp_port_free() {
    if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
        wp_die "port 127.0.0.1:$1 is already in use; pick another" 75
    fi
}

# wp_daemon NAME CMD... : start CMD in its own session as the daemon user, output to
# log/NAME.out, pid to pids/NAME.pid. With OWNER_PID set, a watchdog stops the state
# dir's daemons when that process dies (a killed test run leaves nothing behind).
wp_daemon() {
    local name="$1"; shift
    local -a pre=()
    wp_alive "$name" && wp_die "$name is already running in $STATE"
    if wp_drops_privileges; then
        pre=(setpriv "--reuid=$(id -u "$WP_RUN_AS")" "--regid=$(id -g "$WP_RUN_AS")" --clear-groups --)
    fi
    # a background job of a non-interactive shell is no group leader: setsid execs in place,
    # so $! is the daemon's own pid (and its session id).
    setsid "${pre[@]}" "$@" >>"$STATE/log/$name.out" 2>&1 </dev/null &
    printf '%s\n%s\n' "$!" "$1" >"$(wp_pidfile "$name")"
    [ -n "$OWNER_PID" ] && wp_watchdog
    return 0
}

wp_watchdog() {
    [ -e "$STATE/pids/.watchdog" ] && return 0
    : >"$STATE/pids/.watchdog"
    setsid bash -c '
        owner="$1" state="$2"
        while kill -0 "$owner" 2>/dev/null; do
            compgen -G "$state/pids/*.pid" >/dev/null || exit 0
            sleep 1
        done
        exec "$3/stop.sh" --state "$state"
    ' wp-peer-watchdog "$OWNER_PID" "$STATE" "$WP_PEERS_DIR" >>"$STATE/log/watchdog.out" 2>&1 </dev/null &
}

# wp_fail NAME MESSAGE LOG... : stop NAME, print the logs' tails and exit 1 (75 when
# the daemon lost a race for its port: the caller picks another one).
wp_fail() {
    local name="$1" msg="$2" f code=1; shift 2
    wp_stop "$name" 2>/dev/null || true
    for f in "$STATE/log/$name.out" "$@"; do
        [ -s "$f" ] || continue
        printf -- '--- tail of %s\n' "$f" >&2; tail -n 25 "$f" >&2
        grep -qiE 'address already in use|EADDRINUSE' "$f" && code=75
    done
    wp_die "$msg" "$code"
}

# wp_wait_tcp NAME PORT [SECONDS] : wait until 127.0.0.1:PORT accepts while NAME lives.
wp_wait_tcp() {
    local name="$1" port="$2" secs="${3:-20}" i
    for ((i = 0; i < secs * 20; i++)); do
        wp_alive "$name" || return 1
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            wp_alive "$name"; return
        fi
        sleep 0.05
    done
    return 1
}

# wp_stop NAME : TERM the recorded pid, KILL it after $WP_STOP_GRACE_MS ms (default 500:
# squid and krb5kdc take ~3 s to exit on TERM and test daemons keep nothing worth saving),
# then TERM/KILL what is left of its session (auth helpers, dante children).
wp_stop() {
    local name="$1" pf pid exe i members
    pf="$(wp_pidfile "$name")"
    [ -s "$pf" ] || { rm -f "$pf"; return 0; }
    pid="$(head -n1 "$pf")"; exe="$(sed -n 2p "$pf")"
    if [ -n "$pid" ] && wp_pid_alive "$pid"; then
        # pid reuse guard: it must still be the program we started
        if [ -n "$exe" ] && ! tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$(basename "$exe")"; then
            wp_log "$name: pid $pid is no longer $exe; not signalling it"; rm -f "$pf"; return 0
        fi
        kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < ${WP_STOP_GRACE_MS:-500} / 50; i++)); do wp_pid_alive "$pid" || break; sleep 0.05; done
        if wp_pid_alive "$pid"; then
            kill -KILL "$pid" 2>/dev/null
            # KILL is delivered asynchronously: wait until it has exited
            for ((i = 0; i < 40; i++)); do wp_pid_alive "$pid" || break; sleep 0.05; done
        fi
    fi
    if [ -n "$pid" ]; then
        # leftovers of the daemon's session, zombies aside
        members="$(ps -o pid=,stat= -s "$pid" 2>/dev/null | awk '$2 !~ /^Z/ { print $1 }' || true)"
        if [ -n "$members" ]; then
            for i in $members; do kill -TERM "$i" 2>/dev/null || true; done
            for ((i = 0; i < 10; i++)); do
                members="$(ps -o pid=,stat= -s "$pid" 2>/dev/null | awk '$2 !~ /^Z/ { print $1 }' || true)"
                [ -n "$members" ] || break
                sleep 0.05
            done
            for i in $members; do kill -KILL "$i" 2>/dev/null || true; done
        fi
    fi
    rm -f "$pf"
}

# wp_ensure_tls DIR : a test CA (DIR/ca.pem) and a server certificate signed by it
# (DIR/server.pem + server.key) for localhost, 127.0.0.1, ::1 and the test names.
# EC P-256 keys: fast to make, accepted by rustls, GnuTLS (squid), OpenSSL (nginx, python).
wp_ensure_tls() {
    local dir="$1"
    [ -s "$dir/server.pem" ] && [ -s "$dir/ca.pem" ] && return 0
    wp_require openssl
    mkdir -p "$dir"
    (
        cd "$dir"
        umask 022
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
            -subj "/CN=waypost test CA" -keyout ca.key -out ca.pem \
            -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
        openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$WP_PROXY_HOST" \
            -keyout server.key -out server.csr 2>/dev/null
        printf '%s\n' "subjectAltName=DNS:$WP_PROXY_HOST,DNS:$WP_ORIGIN_HOST,DNS:localhost,IP:127.0.0.1,IP:::1" \
            'extendedKeyUsage=serverAuth' 'keyUsage=critical,digitalSignature' 'basicConstraints=critical,CA:FALSE' >ext.cnf
        openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 3650 \
            -extfile ext.cnf -out server.pem 2>/dev/null
        rm -f server.csr ext.cnf ca.srl
        chmod 644 server.key
    ) || wp_die "could not create the test CA and certificate in $dir"
}

# Kerberos environment of a KDC state dir (client side and acceptor side).
wp_krb5_env() {
    local kdc_state="$1"
    export KRB5_CONFIG="$kdc_state/krb5.conf"
    export KRB5_KDC_PROFILE="$kdc_state/kdc.conf"
    export KRB5CCNAME="FILE:$kdc_state/ccache"
}
