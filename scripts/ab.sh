#!/usr/bin/env bash
# A/B: two chat-server builds, measured back to back with the same chat-bench, for
# changes that touch the hot path. Each rep runs A then B, each on a fresh server
# pinned to CPU 0 (chat-bench on CPU 1): idle RSS per connection (19,500 clients),
# the three saturation fan-outs and the PRIVMSG round trip. Prints medians.
# ONLY="fan1x100x10 latency" runs only those (default: all).
#
# Usage: scripts/ab.sh OLD_CHAT_SERVER NEW_CHAT_SERVER
#   REPS=3 DURATION=5 CLIENTS=19500 BENCH=target/release/chat-bench
#   SERVER_ARGS="--ephemeral" (passed to both servers; both must accept them)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
[[ $# == 2 ]] || { sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
A=$1 B=$2
REPS=${REPS:-3} DURATION=${DURATION:-5} CLIENTS=${CLIENTS:-19500}
BENCH=${BENCH:-target/release/chat-bench}
for tool in jq taskset; do command -v "$tool" >/dev/null || { echo "ab: $tool is required" >&2; exit 1; }; done
OUT=$(mktemp -d)
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"

SCENARIOS=(
    "connect|connect --clients $CLIENTS"
    "fan1x100x10|fanout --channels 1 --members 100 --senders 10 --duration $DURATION --setup-timeout 30 --drain-timeout 5"
    "fan1x1000x1|fanout --channels 1 --members 1000 --senders 1 --duration $DURATION --setup-timeout 30 --drain-timeout 5"
    "fan100x10x1|fanout --channels 100 --members 10 --senders 1 --duration $DURATION --setup-timeout 30 --drain-timeout 5"
    "latency|latency --count 5000 --duration 10"
)

if [[ -n ${ONLY:-} ]]; then
    kept=()
    for entry in "${SCENARIOS[@]}"; do [[ " $ONLY " == *" ${entry%%|*} "* ]] && kept+=("$entry"); done
    SCENARIOS=("${kept[@]}")
fi
port=7100
for rep in $(seq "$REPS"); do
    # Alternate which side goes first, so drift over the run favours neither.
    order="A B"; (( rep % 2 == 0 )) && order="B A"
    for side in $order; do
        bin=${!side}
        for entry in "${SCENARIOS[@]}"; do
            key=${entry%%|*} args=${entry#*|}
            port=$((port + 1))
            taskset -c 0 "$bin" 127.0.0.1 "$port" --no-flood-limit --max-clients-per-ip 1000000 ${SERVER_ARGS:-} \
                --log-level warn >/dev/null 2>&1 &
            pid=$!
            for _ in $(seq 100); do (echo >/dev/tcp/127.0.0.1/$port) 2>/dev/null && break; sleep 0.05; done
            # shellcheck disable=SC2086 # args is a word list on purpose
            "$BENCH" $args --addr "127.0.0.1:$port" --server-pid "$pid" --cpu 1 --json -q \
                >"$OUT/$side.$key.$rep.json" 2>/dev/null || echo "ab: $side $key rep $rep failed" >&2
            kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true
        done
    done
done

# The median, then the range, of the numbers on stdin, times $1.
summary() {
    sort -g | awk -v s="$1" '{v[NR]=$1*s} END {
        if (!NR) { print "n/a"; exit }
        printf "%.3f (%.3f-%.3f)", v[int((NR+1)/2)], v[1], v[NR] }'
}
cell() { # side key jq-path scale
    for f in "$OUT/$1.$2".*.json; do
        [[ -e $f ]] && jq -r "$3 // empty" "$f"
    done | summary "$4"
}
printf '| measurement | A | B |\n| --- | --- | --- |\n'
printf '| idle RSS per connection (%s clients), B | %s | %s |\n' "$CLIENTS" \
    "$(cell A connect .server.rss_per_connection_bytes 1)" "$(cell B connect .server.rss_per_connection_bytes 1)"
for key in fan1x100x10 fan1x1000x1 fan100x10x1; do
    printf '| %s server CPU per delivery, ns | %s | %s |\n' "$key" \
        "$(cell A $key .server.cpu_us_per_delivery 1000)" "$(cell B $key .server.cpu_us_per_delivery 1000)"
    printf '| %s deliveries/s, M | %s | %s |\n' "$key" \
        "$(cell A $key .deliveries_per_s 0.000001)" "$(cell B $key .deliveries_per_s 0.000001)"
done
printf '| round trip p50, µs | %s | %s |\n' "$(cell A latency .rtt.p50_us 1)" "$(cell B latency .rtt.p50_us 1)"
echo "(medians of $REPS, with the range; raw JSON in $OUT)"
