# Shell helpers shared by the measurement scripts (compare-peers.sh, abuse-table.sh).
# Source it; it defines functions only.

# stop_server: ends the server whose pid is in $SERVER_PID (SIGTERM, then SIGKILL
# after 5 s) and clears SERVER_PID. Safe to call when none runs.
stop_server() {
    if [[ -n ${SERVER_PID:-} ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 50); do
            kill -0 "$SERVER_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    SERVER_PID=""
}
