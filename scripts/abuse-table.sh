#!/usr/bin/env bash
# abuse-table.sh: can one address freeze palaver for everyone else? (issue 9)
#
#   bash scripts/abuse-table.sh
#   ABUSE_SECONDS=5 ROWS="who-star oper" bash scripts/abuse-table.sh
#
# For each row, a fresh release chat-server with its DEFAULT options (flood pacing
# on: 20 commands at once, then 4/s; 100 connections per IP) on 127.0.0.1 with a
# free port, pinned to CPU $SERVER_CPU; then `chat-bench abuse` pinned to CPU
# $LOAD_CPU: the setup (idle users, channels, bans), 100 attackers from 127.0.0.2
# sending the row's command at the server's own pace for $ABUSE_SECONDS seconds,
# and a canary from 127.0.0.3 timing `PING` round trips every 100 ms throughout and
# after the attackers leave. One markdown table row per attack on stdout; the JSON
# reports and server logs stay in $WORK.
#
# Knobs (environment): ABUSE_SECONDS (20), ATTACKERS (100), RECOVERY_LIMIT (120 s
# the canary waits for recovery after the attack), BIG_CHANNELS (100000:
# the channels of the two big LIST rows), ROWS (all: who-star who-mask list
# list-big list-filter mode-list oper), SERVER_CPU (0), LOAD_CPU (1), NO_BUILD=1.
# Only loopback is used; every run is bounded by chat-bench's own limits and a
# `timeout` around it.
set -euo pipefail

ABUSE_SECONDS=${ABUSE_SECONDS:-20}
ATTACKERS=${ATTACKERS:-100}
RECOVERY_LIMIT=${RECOVERY_LIMIT:-120}
BIG_CHANNELS=${BIG_CHANNELS:-100000}
ROWS=${ROWS:-"who-star who-mask list list-big list-filter mode-list oper"}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH=$ROOT/target/release/chat-bench
SERVER=$ROOT/target/release/chat-server
WORK=$(mktemp -d /tmp/abuse-table.XXXXXX)

log() { printf '[abuse-table %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

command -v jq >/dev/null || { echo "abuse-table.sh needs jq" >&2; exit 1; }
if [[ -z ${NO_BUILD:-} ]]; then
    log "building release chat-server and chat-bench"
    (cd "$ROOT" && cargo build --release -p palaver-server -p palaver-bench >&2)
fi

# Pinning: only when taskset exists and both CPUs are there.
pin_server=() pin_load=()
if command -v taskset >/dev/null && taskset -c "$SERVER_CPU" true 2>/dev/null &&
    taskset -c "$LOAD_CPU" true 2>/dev/null; then
    pin_server=(taskset -c "$SERVER_CPU")
    pin_load=(taskset -c "$LOAD_CPU")
else
    log "taskset or CPUs $SERVER_CPU/$LOAD_CPU unavailable: running unpinned"
fi

SERVER_PID=""
# shellcheck source=lib.sh
source "$ROOT/scripts/lib.sh"
trap 'stop_server; log "JSON reports and server logs in $WORK"' EXIT

# start_server NAME ARGS...: a fresh server on a free port; sets PORT.
start_server() {
    local name=$1
    shift
    "${pin_server[@]}" "$SERVER" 127.0.0.1 0 --ephemeral --log-level warn "$@" \
        >"$WORK/$name.server.out" 2>"$WORK/$name.server.err" &
    SERVER_PID=$!
    PORT=""
    for _ in $(seq 100); do
        PORT=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$WORK/$name.server.out")
        [[ -n $PORT ]] && return 0
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.1
    done
    echo "chat-server did not start: $(cat "$WORK/$name.server.err")" >&2
    exit 1
}

thousands() { sed ':a;s/\B[0-9]\{3\}\>/,&/;ta' <<<"$1"; }

# The row's label, server options and chat-bench options.
row() {
    case $1 in
    who-star) LABEL='`WHO *` with 2,100 users' SRV=() ARGS=(--attack who-star --users 2100) ;;
    who-mask) LABEL='`WHO *aaaa…ab` (202-byte mask), 2,100 users' SRV=() ARGS=(--attack who-mask --users 2100) ;;
    list) LABEL='`LIST` with 5,000 channels' SRV=() ARGS=(--attack list --channels 5000) ;;
    list-big) LABEL="\`LIST\` with $(thousands "$BIG_CHANNELS") channels" SRV=() ARGS=(--attack list --channels "$BIG_CHANNELS") ;;
    list-filter) LABEL="\`LIST >100000\` with $(thousands "$BIG_CHANNELS") channels" SRV=() ARGS=(--attack list-filter --channels "$BIG_CHANNELS") ;;
    mode-list) LABEL="\`MODE #abuse bbbb…\` (480 b's), 100 bans" SRV=() ARGS=(--attack mode-list --bans 100) ;;
    oper) LABEL='`OPER admin wrong` (server has --oper admin:secret)' SRV=(--oper admin:secret) ARGS=(--attack oper) ;;
    *)
        echo "unknown row $1" >&2
        exit 1
        ;;
    esac
}

# One markdown row from a chat-bench JSON report.
JQ='
def ms: if . >= 1000000 then (. / 10000 | round / 100 | tostring) + " s"
  else (. / 10 | round / 100 | tostring) + " ms" end;
.canary as $c | .attackers as $a |
def lat(f): if $c.attack.samples == 0 then "–" else ($c.attack | f | ms) end;
def s: if . == null then "> \($c.recovery_limit_s) s" else (. * 100 | round / 100 | tostring) + " s" end;
[ lat(.p50_us), lat(.p99_us), lat(.max_us),
  "\($c.attack_lost) of \($c.attack_sent)",
  (if $a.cut == 0 then "0" else "\($a.cut) (" + ([$a.cut_by_reason | to_entries[] | "\(.value) \(.key)"] | join(", ")) + ")" end)
    + (if ($a.registered < $a.requested) then "; \($a.requested - $a.registered) not registered" else "" end),
  ($c.recovered_after_s | s),
  (if .server == null then "–" else ((.server.cpu_s_attack + .server.cpu_s_after) * 100 | round / 100 | tostring) end)
] | join(" | ")'

echo "| attack (${ATTACKERS} attackers from 127.0.0.2, ${ABUSE_SECONDS} s) | canary p50 | p99 | max | lost | attackers cut (reason) | recovered after | server CPU-s |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- |"
for name in $ROWS; do
    row "$name"
    start_server "$name" "${SRV[@]}"
    log "$name: server pid $SERVER_PID on port $PORT; chat-bench abuse ${ARGS[*]}"
    limit=$((ABUSE_SECONDS + RECOVERY_LIMIT + 900))
    if timeout "$limit" "${pin_load[@]}" "$BENCH" abuse --addr "127.0.0.1:$PORT" \
        --server-pid "$SERVER_PID" --attackers "$ATTACKERS" --duration "$ABUSE_SECONDS" \
        --recovery-limit "$RECOVERY_LIMIT" \
        --json -q "${ARGS[@]}" >"$WORK/$name.json" 2>"$WORK/$name.err"; then
        echo "| $LABEL | $(jq -r "$JQ" "$WORK/$name.json") |"
        log "$name: setup $(jq -r '"\(.setup.fillers) fillers in \(.setup.elapsed_s) s"' "$WORK/$name.json")"
    else
        echo "| $LABEL | chat-bench failed: $(tr '\n' ' ' <"$WORK/$name.err") |"
    fi
    stop_server
done
