#!/usr/bin/env bash
# What scale-out costs (docs/PERFORMANCE.md, "Scale-out"): one channel of MEMBERS
# members spread over NODES nodes on one NATS server, against the same channel on
# one server alone, back to back, REPS times each. All servers (nodes and
# nats-server) share CPU 0, chat-bench runs on CPU 1, so CPU per delivery
# compares total costs on the same core. Measures, per setup:
#   saturation fan-out (--senders SENDERS): deliveries/s, server CPU per delivery
#     (nodes + nats-server for the cluster);
#   a fixed rate (RATE messages/s per sender): CPU per delivery and latency;
#   bus bytes and messages per channel message (from the nodes' /metrics);
#   private-message round trips (on the cluster, between users of two nodes), and
#   WHOIS round trips (on the cluster, of a user of another node: its node is asked);
# then, on the cluster, the time from kill -9 of a node to the QUITs of its
# USERS users on another node and to their nick being free (chat-bench failover).
# Prints one line per run; docs/PERFORMANCE.md takes the medians.
#
# Usage: scripts/cluster-bench.sh   (NODES=3 MEMBERS=300 SENDERS=10 RATE=20
#   DURATION=5 REPS=3 USERS=100 TIMEOUT=5s SERVER=target/release/chat-server
#   BENCH=target/release/chat-bench; builds nothing: run
#   cargo build --release -p palaver-server -p palaver-bench first)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
NODES=${NODES:-3} MEMBERS=${MEMBERS:-300} SENDERS=${SENDERS:-10} RATE=${RATE:-20}
DURATION=${DURATION:-5} REPS=${REPS:-3} USERS=${USERS:-100} TIMEOUT=${TIMEOUT:-5s}
SERVER=${SERVER:-target/release/chat-server} BENCH=${BENCH:-target/release/chat-bench}
NATS=$(command -v nats-server || ls /usr/sbin/nats-server 2>/dev/null || true)
for tool in jq taskset curl; do
    command -v "$tool" >/dev/null || { echo "cluster-bench: $tool is required" >&2; exit 1; }
done
[[ -x $SERVER && -x $BENCH ]] || { echo "cluster-bench: build the release binaries first" >&2; exit 1; }
[[ -n $NATS ]] || { echo "cluster-bench: nats-server is required (apt-get install nats-server)" >&2; exit 1; }
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
work=$(mktemp -d /tmp/palaver-cluster-bench.XXXXXX)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    if [[ -n ${KEEP:-} ]]; then echo "cluster-bench: logs kept in $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

port=$(( 21000 + RANDOM % 20000 ))
# The next free-looking port, in $port (not a subshell: the count must last).
next_port() { port=$(( port + 1 )); }
wait_port() {
    for _ in $(seq 200); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done
    echo "cluster-bench: nothing listens on $1" >&2; return 1
}

# start_setup N: a NATS server and N nodes (N=0: one server alone). Sets ADDRS
# (comma-separated), SERVER_PIDS (comma-separated, NATS last), NODE_PIDS, HTTP.
start_setup() {
    local n=$1 nats_port="" i node_port
    ADDRS="" SERVER_PIDS="" NODE_PIDS=() HTTP=()
    if (( n > 0 )); then
        next_port; nats_port=$port
        mkdir -p "$work/js-$nats_port"
        taskset -c 0 "$NATS" -a 127.0.0.1 -p "$nats_port" -js -sd "$work/js-$nats_port" \
            >"$work/nats.log" 2>&1 &
        NATS_PID=$!
        pids+=("$NATS_PID")
        wait_port "$nats_port"
    fi
    for i in $(seq "$(( n > 0 ? n : 1 ))"); do
        next_port; node_port=$port
        local args=(127.0.0.1 "$node_port" --ephemeral --no-tls --no-flood-limit --no-history-notice)
        (( n > 0 )) && args+=(--cluster "nats://127.0.0.1:$nats_port" --node-name "n$i" --node-timeout "$TIMEOUT")
        taskset -c 0 "$SERVER" "${args[@]}" >"$work/node-$i.log" 2>&1 &
        pids+=("$!")
        NODE_PIDS+=("$!")
        wait_port "$node_port"
        ADDRS+="${ADDRS:+,}127.0.0.1:$node_port"
        SERVER_PIDS+="${SERVER_PIDS:+,}$!"
        HTTP+=("http://127.0.0.1:$node_port/metrics")
    done
    (( n > 0 )) && SERVER_PIDS+=",$NATS_PID"
    return 0
}

stop_setup() {
    for pid in "${NODE_PIDS[@]}" ${NATS_PID:+"$NATS_PID"}; do kill -KILL "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    NATS_PID=""
}

# bus_bytes: the bytes and messages every node published so far.
bus_totals() {
    local url bytes=0 messages=0 b m
    for url in "${HTTP[@]}"; do
        b=$(curl -s "$url" | awk '/^palaver_cluster_sent_bytes_total /{print $2}')
        m=$(curl -s "$url" | awk '/^palaver_cluster_sent_messages_total /{print $2}')
        bytes=$(( bytes + ${b:-0} )) messages=$(( messages + ${m:-0} ))
    done
    echo "$bytes $messages"
}

run_fanout() {
    local label=$1; shift
    local before after report
    before=$(bus_totals)
    report=$(taskset -c 1 "$BENCH" fanout --addr "$ADDRS" --server-pid "$SERVER_PIDS" \
        --channels 1 --members "$MEMBERS" --senders "$SENDERS" --duration "$DURATION" \
        --setup-timeout 60 --drain-timeout 10 --json -q "$@")
    after=$(bus_totals)
    read -r b0 m0 <<<"$before"
    read -r b1 m1 <<<"$after"
    jq -r --arg name "$label" --argjson bytes "$(( b1 - b0 ))" --argjson msgs "$(( m1 - m0 ))" \
        '"\($name): sent \(.sent) deliveries/s \(.deliveries_per_s|floor) cpu/delivery \(.server.cpu_us_per_delivery*1000|floor) ns (\(.server.cpu_cores*100|floor)% of a core) p50 \(.latency.p50_us|floor) µs p99 \(.latency.p99_us|floor) µs lost \(.lost) dup \(.duplicates) bus \($bytes) B in \($msgs) msgs = \(if .sent > 0 then ($bytes / .sent | floor) else 0 end) B and \(if .sent > 0 then ($msgs * 100 / .sent | floor) / 100 else 0 end) msgs per channel message"' \
        <<<"$report"
}

echo "cluster-bench: $NODES nodes vs 1, 1 channel x $MEMBERS members, $SENDERS senders, $DURATION s, $REPS reps ($(nproc) cores, $(date -u +%FT%TZ))"
for rep in $(seq "$REPS"); do
    for setup in single cluster; do
        if [[ $setup == single ]]; then start_setup 0; else start_setup "$NODES"; fi
        run_fanout "rep $rep $setup saturation"
        run_fanout "rep $rep $setup rate $RATE/s/sender" --rate "$RATE"
        taskset -c 1 "$BENCH" latency --addr "$ADDRS" --server-pid "$SERVER_PIDS" --duration "$DURATION" --json -q \
            | jq -r --arg name "rep $rep $setup" '"\($name) private message round trip: p50 \(.rtt.p50_us|floor) µs p99 \(.rtt.p99_us|floor) µs"'
        taskset -c 1 "$BENCH" latency --probe whois --addr "$ADDRS" --server-pid "$SERVER_PIDS" --duration "$DURATION" --json -q \
            | jq -r --arg name "rep $rep $setup" '"\($name) WHOIS round trip: p50 \(.rtt.p50_us|floor) µs p99 \(.rtt.p99_us|floor) µs"'
        stop_setup
    done
done

start_setup 2

echo "failover: $USERS users on node 1 (pid ${NODE_PIDS[0]}), watcher on node 2, --node-timeout $TIMEOUT"
taskset -c 1 "$BENCH" failover --addr "$ADDRS" --victim-pid "${NODE_PIDS[0]}" --users "$USERS" --json -q \
    | jq -r '"failover: first QUIT \(.first_quit_s) s, last QUIT \(.last_quit_s) s, nick free \(.nick_free_s) s after kill -9"'
stop_setup

