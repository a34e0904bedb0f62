#!/usr/bin/env bash
# Start a throwaway PostgreSQL server for the registry tests, or stop it again.
#
#   eval "$(.ci/postgres.sh)"        # start; exports SORTBOX_TEST_POSTGRES_URL and _DIR
#   .ci/postgres.sh --stop           # stop the server in $SORTBOX_TEST_POSTGRES_DIR, delete it
#
# The server listens on 127.0.0.1 only, on a free port, with its data in a new temporary
# folder, and trusts local connections: it is for tests, never for data worth keeping.
# Debian's postgresql package is installed with apt-get when no initdb is found. Everything
# except the export lines goes to stderr, so the output can be passed to eval.
set -euo pipefail

log() { echo "postgres.sh: $*" >&2; }

# Run a PostgreSQL program as the unprivileged `postgres` user when we are root, because the
# server refuses to run as root.
as_server_user() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

find_bindir() {
    if command -v pg_config >/dev/null 2>&1 && [ -x "$(pg_config --bindir)/initdb" ]; then
        pg_config --bindir
        return
    fi
    local candidate
    for candidate in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        if [ -x "$candidate/initdb" ]; then
            echo "$candidate"
            return
        fi
    done
}

stop_server() {
    local dir="${SORTBOX_TEST_POSTGRES_DIR:-}"
    if [ -z "$dir" ] || [ ! -d "$dir/data" ]; then
        log "SORTBOX_TEST_POSTGRES_DIR does not name a server folder; nothing to stop"
        exit 1
    fi
    local bindir
    bindir="$(find_bindir)"
    as_server_user "$bindir/pg_ctl" -D "$dir/data" -m fast -w stop >&2
    rm -rf "$dir"
    log "stopped the server and deleted $dir"
}

if [ "${1:-}" = "--stop" ]; then
    stop_server
    exit 0
fi

bindir="$(find_bindir)"
if [ -z "$bindir" ]; then
    log "no PostgreSQL found; installing Debian's postgresql package"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update >&2
    apt-get install -y --no-install-recommends postgresql >&2
    bindir="$(find_bindir)"
fi
if [ -z "$bindir" ]; then
    log "initdb is still missing after installing postgresql; install it by hand"
    exit 1
fi

python="$(command -v python3 || true)"
if [ -z "$python" ]; then
    log "python3 is needed to pick a free port; install it or put it on PATH"
    exit 1
fi
port="$("$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')"

dir="$(mktemp -d "${TMPDIR:-/tmp}/sortbox-postgres.XXXXXX")"
chmod 755 "$dir"
if [ "$(id -u)" -eq 0 ]; then
    chown postgres: "$dir"
fi

as_server_user "$bindir/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --no-locale >"$dir/initdb.log" 2>&1 || {
    cat "$dir/initdb.log" >&2
    exit 1
}
# The socket goes into the temporary folder too, so nothing is written under /var/run.
as_server_user "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
    -o "-h 127.0.0.1 -p $port -k $dir -c fsync=off -c full_page_writes=off" start >&2 || {
    cat "$dir/server.log" >&2
    exit 1
}
"$bindir/createdb" -h 127.0.0.1 -p "$port" -U postgres sortbox_test >&2

log "PostgreSQL $("$bindir/postgres" --version | awk '{print $3}') is running on 127.0.0.1:$port with data in $dir"
echo "export SORTBOX_TEST_POSTGRES_URL=postgresql+psycopg://postgres@127.0.0.1:$port/sortbox_test"
echo "export SORTBOX_TEST_POSTGRES_DIR=$dir"
