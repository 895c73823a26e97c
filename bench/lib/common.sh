# Shared helpers for the bench/ scripts: machine description, a throwaway PostgreSQL cluster, ports.
# Sourced, not run. Everything listens on 127.0.0.1 only.

PG_BINDIR=${PG_BINDIR:-$(pg_config --bindir 2>/dev/null || ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)}

log() { printf '%s [bench] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $1"; exit "${2:-1}"; }

# A TCP port on 127.0.0.1 that nothing listens on right now.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }

# wait_port PORT SECONDS: until something accepts connections on 127.0.0.1:PORT.
wait_port() {
    local port=$1 deadline=$((SECONDS + ${2:-10}))
    until python3 -c "import socket,sys; s=socket.socket(); s.settimeout(0.2); sys.exit(s.connect_ex(('127.0.0.1',$port)))" 2>/dev/null; do
        [ $SECONDS -lt $deadline ] || return 1
        sleep 0.1
    done
}

# PostgreSQL refuses to run as root: as root, its programs run as the `postgres` OS user.
as_pg_owner() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

# pg_start DIR PORT: a new cluster in DIR (created), started on 127.0.0.1:PORT with durable settings:
# fsync, synchronous_commit and full_page_writes on (PostgreSQL's defaults, spelled out), no Unix socket.
pg_start() {
    local dir=$1 port=$2
    [ -x "$PG_BINDIR/initdb" ] || die "PostgreSQL server programs not found (pg_config --bindir); apt-get install postgresql"
    mkdir -p "$dir"
    if [ "$(id -u)" = 0 ]; then chown postgres: "$dir"; fi
    chmod 700 "$dir"
    as_pg_owner "$PG_BINDIR/initdb" -D "$dir" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >"$dir.initdb.log" 2>&1 \
        || die "initdb failed: $(cat "$dir.initdb.log")"
    as_pg_owner "$PG_BINDIR/pg_ctl" -D "$dir" -w -t 60 -l "$dir/server.log" start -o \
        "-p $port -c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c fsync=on -c synchronous_commit=on -c full_page_writes=on -c max_connections=200 ${PG_EXTRA_SETTINGS:-}" \
        >/dev/null || die "PostgreSQL did not start: $(tail -5 "$dir/server.log")"
}

pg_stop() {
    local dir=$1
    [ -f "$dir/postmaster.pid" ] || return 0
    as_pg_owner "$PG_BINDIR/pg_ctl" -D "$dir" -w -m fast stop >/dev/null 2>&1 || true
}

pg_psql() { local port=$1; shift; "$PG_BINDIR/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$port" -U postgres "$@"; }

# Markdown lines describing the machine and the tool versions.
machine_markdown() {
    local cpu mem
    cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
    mem=$(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)
    echo "| | |"
    echo "|---|---|"
    echo "| CPU | $cpu |"
    echo "| logical CPUs (nproc) | $(nproc) |"
    echo "| memory | $mem |"
    echo "| kernel | $(uname -sr) |"
    echo "| PostgreSQL | $("$PG_BINDIR/postgres" --version 2>/dev/null | sed 's/^postgres (PostgreSQL) //') |"
    echo "| Swift | $(swift --version 2>/dev/null | grep -m1 -o 'Swift version [^ ]*' || echo unknown) |"
    command -v nginx >/dev/null && echo "| nginx | $(nginx -v 2>&1 | sed 's/^nginx version: //') |"
    command -v wrk >/dev/null && echo "| wrk | $(wrk --version 2>&1 | head -1 | awk '{print $2}') |"
    echo "| load average when the results were written (1/5/15 min; other work on the machine shows here) | $(cut -d' ' -f1-3 /proc/loadavg) |"
    echo "| date (UTC) | $(date -u '+%Y-%m-%d %H:%M') |"
}
