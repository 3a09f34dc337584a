#!/usr/bin/env bash
# The tests that need real services: the PostgreSQL store (the whole conformance
# suite, migrations, several nodes on one database) and the cluster over NATS.
# Starts a throw-away PostgreSQL on a free 127.0.0.1 port in a temporary
# directory, runs the `#[ignore]`d tests against it (the cluster tests start
# nats-server processes of their own, which they need to kill and restart), and
# stops it on exit, failed or not. Installs Debian's postgresql and nats-server
# packages if their binaries are missing; run from anywhere.
# Usage: scripts/test-cluster.sh [extra cargo test arguments after --, e.g. a name]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

pg_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }
nats_bin() { command -v nats-server || ls /usr/sbin/nats-server /usr/bin/nats-server 2>/dev/null | head -n 1; }

missing=()
[ -n "$(pg_bin)" ] && [ -x "$(pg_bin)/postgres" ] || missing+=(postgresql)
[ -n "$(nats_bin)" ] || missing+=(nats-server)
if [ "${#missing[@]}" -gt 0 ]; then
    echo "installing Debian's ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
PG_BIN="$(pg_bin)"
NATS="$(nats_bin)"

# A free TCP port on 127.0.0.1: one nothing answers on.
free_port() {
    local port
    while :; do
        port=$(( 20000 + RANDOM % 40000 ))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return
        fi
    done
}

# wait_for NAME PORT: until something accepts connections there (30 s at most).
wait_for() {
    for _ in $(seq 300); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null; then
            return 0
        fi
        sleep 0.1
    done
    echo "$1 did not start listening on 127.0.0.1:$2" >&2
    return 1
}

work="$(mktemp -d /tmp/palaver-cluster.XXXXXX)"
PG_PID=""
# stop_pid PID: SIGINT (PostgreSQL's fast shutdown), then
# SIGKILL after 10 s.
stop_pid() {
    local pid=$1
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        kill -INT "$pid" 2>/dev/null || true
        for _ in $(seq 100); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    fi
}
cleanup() {
    local status=$?
    if [ -n "$PG_PID" ]; then
        # The postmaster itself (under runuser, $PG_PID is runuser's pid): pg_ctl
        # waits for it to be gone; a postmaster still alive after that is killed.
        "${as_db_user[@]}" "$PG_BIN/pg_ctl" stop -D "$work/pg" -m fast -w -t 20 \
            >/dev/null 2>&1 || true
        postmaster="$(head -n 1 "$work/pg/postmaster.pid" 2>/dev/null || true)"
        if [ -n "$postmaster" ] && kill -0 "$postmaster" 2>/dev/null; then
            kill -KILL "$postmaster" 2>/dev/null || true
        fi
        stop_pid "$PG_PID"
    fi
    rm -rf "$work"
    exit "$status"
}
trap cleanup EXIT INT TERM

# PostgreSQL refuses to run as root: as root, run it as an unprivileged user.
as_db_user=()
if [ "$(id -u)" = 0 ]; then
    if ! id palaver-test >/dev/null 2>&1; then
        useradd --system --no-create-home --shell /usr/sbin/nologin palaver-test
    fi
    chown palaver-test "$work"
    as_db_user=(runuser -u palaver-test --)
fi
chmod 700 "$work"

pg_port="$(free_port)"
"${as_db_user[@]}" "$PG_BIN/initdb" -D "$work/pg" -A trust -U palaver --no-sync -E UTF8 \
    > "$work/initdb.log" 2>&1 || { cat "$work/initdb.log" >&2; exit 1; }
# The password test needs one role that must give its password (all else: trust).
sed -i '1i host all palaver_password 127.0.0.1/32 scram-sha-256' "$work/pg/pg_hba.conf"
"${as_db_user[@]}" "$PG_BIN/postgres" -D "$work/pg" -k "$work" \
    -c listen_addresses=127.0.0.1 -c port="$pg_port" \
    -c fsync=off -c synchronous_commit=off -c full_page_writes=off \
    -c max_connections=300 > "$work/postgres.log" 2>&1 &
PG_PID=$!


wait_for PostgreSQL "$pg_port" || { cat "$work/postgres.log" >&2; exit 1; }
for _ in $(seq 100); do
    "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$pg_port" -U palaver && break
    sleep 0.1
done

export PALAVER_TEST_POSTGRES="postgres://palaver@127.0.0.1:$pg_port/postgres"
export PALAVER_TEST_NATS_SERVER="$NATS"
echo "PostgreSQL: $PALAVER_TEST_POSTGRES"

# The store: the conformance suite and the PostgreSQL-specific tests.
RUST_BACKTRACE=0 cargo test -p palaver-store --test store --locked -- --ignored postgres "$@"

# The server on a PostgreSQL store: accounts and history survive a restart.
RUST_BACKTRACE=0 cargo test -p palaver-server --test integration --locked -- \
    --ignored postgres_store "$@"

# The cluster suite: each test starts its own nats-server (this binary) and
# chat-server nodes; the history test puts three nodes on one database here.
RUST_BACKTRACE=0 cargo test -p palaver-server --test integration --locked -- \
    --ignored cluster:: "$@"
