#!/usr/bin/env bash
# A throwaway PostgreSQL for the tests: a cluster in a temp directory, on 127.0.0.1.
#
#   eval "$(.ci/postgres.sh start)"   # starts one; exports METTL_TEST_POSTGRES_URL and _DIR
#   .ci/postgres.sh env               # prints the same export lines for the running one
#   .ci/postgres.sh stop              # stops it and removes its directory
#
# start installs Debian's `postgresql` package when initdb/pg_ctl are missing
# (CI runs as root on a fresh Debian machine). The server never runs as root:
# as root, the cluster belongs to a system user (mettlpg, created if missing)
# and initdb/pg_ctl run through `runuser`; as anyone else, as that user. It
# listens on 127.0.0.1 on a free port (and a unix socket in its directory)
# with a random password; only the export lines go to stdout.
set -euo pipefail

PG_USER_SYSTEM=mettlpg
DB_USER=mettl
DB_NAME=mettl_test
POINTER="${TMPDIR:-/tmp}/mettl-test-postgres.current"

say() { printf 'postgres.sh: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

find_bindir() {
    local dir
    for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        if [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ]; then
            echo "$dir"
            return 0
        fi
    done
    if command -v pg_config >/dev/null 2>&1; then
        dir=$(pg_config --bindir)
        if [ -x "$dir/initdb" ] && [ -x "$dir/pg_ctl" ]; then
            echo "$dir"
            return 0
        fi
    fi
    if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
        dirname "$(command -v pg_ctl)"
        return 0
    fi
    return 1
}

install_postgres() {
    [ "$(id -u)" = 0 ] || die "initdb/pg_ctl not found; install PostgreSQL (Debian: apt-get install postgresql)"
    say "initdb/pg_ctl not found: installing Debian's postgresql package"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    # The package's own cluster is not used (and not started where there is no init).
    apt-get install -y -qq postgresql >&2
}

# Run a command as the cluster's owner.
as_owner() {
    if [ "$(id -u)" = 0 ]; then
        # from /, which the owner may enter (a checkout under a private /tmp/tmp.* may not)
        (cd / && runuser -u "$PG_USER_SYSTEM" -- "$@")
    else
        "$@"
    fi
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

start() {
    local bindir dir port password url
    bindir=$(find_bindir) || { install_postgres; bindir=$(find_bindir) || die "no initdb after installing postgresql"; }
    dir=$(mktemp -d "${TMPDIR:-/tmp}/mettl-postgres.XXXXXX")
    if [ "$(id -u)" = 0 ]; then
        if ! id -u "$PG_USER_SYSTEM" >/dev/null 2>&1; then
            useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$PG_USER_SYSTEM"
        fi
        chown "$PG_USER_SYSTEM" "$dir"
    fi
    chmod 700 "$dir"
    password=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
    printf '%s\n' "$password" > "$dir/pwfile"
    [ "$(id -u)" = 0 ] && chown "$PG_USER_SYSTEM" "$dir/pwfile"
    as_owner "$bindir/initdb" -D "$dir/data" -U "$DB_USER" --pwfile="$dir/pwfile" \
        --auth-local=scram-sha-256 --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
        || { cat "$dir/initdb.log" >&2; die "initdb failed"; }
    rm -f "$dir/pwfile"
    mkdir -p "$dir/socket"
    [ "$(id -u)" = 0 ] && chown "$PG_USER_SYSTEM" "$dir/socket"
    local tries=0
    while :; do
        port=$(free_port)
        if as_owner "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
            -o "-c listen_addresses=127.0.0.1 -p $port -k $dir/socket" start >/dev/null; then
            break
        fi
        tries=$((tries + 1))
        [ "$tries" -lt 3 ] || { tail -n 20 "$dir/server.log" >&2; die "the server did not start"; }
        say "the server did not start on port $port; trying another"
    done
    PGPASSWORD="$password" "$bindir/createdb" -h 127.0.0.1 -p "$port" -U "$DB_USER" "$DB_NAME" \
        || { as_owner "$bindir/pg_ctl" -D "$dir/data" -m fast stop >/dev/null; die "createdb failed"; }
    url="postgresql://$DB_USER:$password@127.0.0.1:$port/$DB_NAME"
    {
        printf "export METTL_TEST_POSTGRES_URL='%s'\n" "$url"
        printf "export METTL_TEST_POSTGRES_DIR='%s'\n" "$dir"
    } > "$dir/env"
    printf '%s\n' "$dir" > "$POINTER"
    say "PostgreSQL $("$bindir/pg_ctl" --version | awk '{print $3}') on 127.0.0.1:$port, database $DB_NAME, cluster in $dir"
    cat "$dir/env"
}

current_dir() {
    local dir="${METTL_TEST_POSTGRES_DIR:-}"
    if [ -z "$dir" ] && [ -f "$POINTER" ]; then
        dir=$(cat "$POINTER")
    fi
    echo "$dir"
}

print_env() {
    local dir
    dir=$(current_dir)
    [ -n "$dir" ] && [ -f "$dir/env" ] || die "no running cluster (start one with: eval \"\$(.ci/postgres.sh start)\")"
    cat "$dir/env"
}

stop() {
    local dir bindir
    dir=$(current_dir)
    if [ -z "$dir" ] || [ ! -d "$dir" ]; then
        say "no cluster to stop"
        return 0
    fi
    case "$dir" in
        */mettl-postgres.*) ;;
        *) die "refusing to remove $dir: not a cluster directory of this script" ;;
    esac
    if [ -f "$dir/data/postmaster.pid" ]; then
        bindir=$(find_bindir) || die "pg_ctl not found"
        as_owner "$bindir/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null || say "pg_ctl stop failed"
    fi
    rm -rf "$dir"
    if [ -f "$POINTER" ] && [ "$(cat "$POINTER")" = "$dir" ]; then
        rm -f "$POINTER"
    fi
    say "stopped and removed $dir"
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    env) print_env ;;
    *) die "usage: $0 start|stop|env" ;;
esac
