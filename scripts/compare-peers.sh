#!/usr/bin/env bash
# compare-peers.sh: palaver side by side with Debian's ngircd, InspIRCd and
# ircd-hybrid under the same chat-bench scenarios (issue 5).
#
#   sudo bash scripts/compare-peers.sh            # as root: it installs the peers
#   REPS=5 DURATION=5 bash scripts/compare-peers.sh
#
# What it does:
#   1. installs ngircd, inspircd, jq and python3 with apt-get; downloads the
#      ircd-hybrid .deb with `apt-get download` and unpacks it with `dpkg -x` into a
#      temporary directory (the package conflicts with ngircd, so it is not installed);
#   2. builds palaver and chat-bench in release mode;
#   3. for each repetition, for each server in turn (A B C D A B C D ...): writes
#      the server's configuration (below, every lifted limit commented), starts it
#      pinned to CPU $SERVER_CPU on 127.0.0.1, runs connect, three saturation
#      fan-outs, the same three at a fixed 10,000 deliveries/s and the private-message
#      latency scenario with chat-bench pinned to CPU $LOAD_CPU
#      (`--json --server-pid`), then stops the server. "floor" is `bare-relay`
#      (crates/bench/src/bin/bare-relay.rs), no server but the least any server
#      must do: its column is the limit of this machine and generator;
#   4. prints a markdown table of the medians over the repetitions and writes it to
#      $OUT (default target/compare-peers.md); raw JSON stays in $WORK/results.
#
# Only loopback is used: the servers listen on 127.0.0.1, DNS and ident lookups are
# switched off, and ircd-hybrid (which always resolves client addresses) runs in a
# private mount namespace whose /etc/resolv.conf names a stub on 127.0.0.153:53
# that answers NXDOMAIN at once.
# A peer that cannot be installed or started is skipped with a message.
#
# chat-bench spreads its connections over the source addresses 127.0.1.1-64 (see
# its --source-ips), so every config admits 127.0.0.0/8, not only 127.0.0.1.
#
# Knobs (environment): REPS (3), DURATION (3 s per fan-out), CLIENTS (2000 for
# connect), LAT_COUNT (5000 round trips),
# PEERS ("palaver ngircd inspircd hybrid floor"),
# SERVER_CPU (0), LOAD_CPU (1), BASE_PORT (6950), OUT, NO_INSTALL=1, NO_BUILD=1.
set -euo pipefail

REPS=${REPS:-3}
DURATION=${DURATION:-3}
CLIENTS=${CLIENTS:-2000}
LAT_COUNT=${LAT_COUNT:-5000}
PEERS=${PEERS:-"palaver ngircd inspircd hybrid floor"}
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
BASE_PORT=${BASE_PORT:-6950}
SENDQ=4194304 # 4 MiB per client send queue, the same for every server that has one

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=${OUT:-$ROOT/target/compare-peers.md}
BENCH=$ROOT/target/release/chat-bench
PALAVER=$ROOT/target/release/chat-server
RELAY=$ROOT/target/release/bare-relay
WORK=$(mktemp -d /tmp/compare-peers.XXXXXX)
chmod 755 "$WORK"
RESULTS=$WORK/results
mkdir -p "$RESULTS"

SERVER_PID=""
log() { printf '[compare-peers %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

# shellcheck source=lib.sh
source "$ROOT/scripts/lib.sh"
HYBRID_MOUNTPOINT=""
cleanup() {
    stop_server
    if [[ -n $NXDNS_PID ]]; then kill "$NXDNS_PID" 2>/dev/null || true; fi
    if [[ -n $HYBRID_MOUNTPOINT ]]; then rmdir "$HYBRID_MOUNTPOINT" 2>/dev/null || true; fi
    log "raw results and server logs kept in $WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- installation
HYBRID_ROOT=$WORK/hybrid-pkg
install_peers() {
    if [[ ${NO_INSTALL:-0} == 1 ]]; then return; fi
    if [[ $(id -u) != 0 ]]; then
        log "not root: skipping apt-get; peers that are missing will be skipped"
        return
    fi
    export DEBIAN_FRONTEND=noninteractive
    local need=()
    command -v ngircd >/dev/null || need+=(ngircd)
    command -v inspircd >/dev/null || need+=(inspircd)
    command -v jq >/dev/null || need+=(jq)
    command -v python3 >/dev/null || need+=(python3)
    command -v taskset >/dev/null || need+=(util-linux)
    # ircd-hybrid's run-time libraries (it is unpacked, not installed, so apt does
    # not pull them in).
    dpkg -s libltdl7 >/dev/null 2>&1 || need+=(libltdl7)
    dpkg -s libgnutls30 >/dev/null 2>&1 || need+=(libgnutls30)
    if ((${#need[@]})); then
        log "apt-get install ${need[*]}"
        apt-get update -qq
        apt-get install -y -qq "${need[@]}" >/dev/null
    fi
}

unpack_hybrid() {
    [[ -x $HYBRID_ROOT/usr/sbin/ircd-hybrid ]] && return 0
    local dl=$WORK/hybrid-dl
    mkdir -p "$dl"
    chmod 777 "$dl" # apt-get download runs as _apt when it can
    (cd "$dl" && apt-get download ircd-hybrid >/dev/null 2>&1) || {
        apt-get update -qq && (cd "$dl" && apt-get download ircd-hybrid >/dev/null 2>&1)
    } || return 1
    dpkg -x "$dl"/ircd-hybrid_*.deb "$HYBRID_ROOT"
}

# ---------------------------------------------------------------- server configs
# Every config lifts the same things: connections per IP and in total, flood /
# penalty pacing of commands, the send queue (4 MiB, as palaver gets) and the
# receive queue, and switches off DNS and ident lookups (loopback only).

write_ngircd_conf() { # $1 dir, $2 port
    cat >"$1/ngircd.conf" <<EOF
# ngircd 26.1 for chat-bench (generated by scripts/compare-peers.sh)
[Global]
	Name = ngircd.bench
	Info = chat-bench peer
	Listen = 127.0.0.1
	Ports = $2
	MotdPhrase = bench
	PidFile = $1/ngircd.pid
[Limits]
	# default 0 in the sample (unlimited), Debian's file says 500: lifted
	MaxConnections = 0
	# default 5 (Debian 10) connections per IP address: 0 = unlimited
	MaxConnectionsIP = 0
	# default 10 channels per user: 0 = no limit
	MaxJoins = 0
	# default -1 (no cap on the penalty a command adds): 0 disables penalties
	# (command pacing / "fake lag") altogether
	MaxPenaltyTime = 0
	# default 120/20 s: no PING during a run
	PingTimeout = 600
	PongTimeout = 600
[Options]
	# no reverse DNS or ident lookup per connection (loopback only, no delay)
	DNS = no
	Ident = no
	# Debian's build has PAM on by default: off, registration needs no password
	PAM = no
	# (ngircd has no configurable send or receive queue: its write buffer limit
	# is compiled in; it is left as shipped)
EOF
}

write_inspircd_conf() { # $1 dir, $2 port
    cat >"$1/inspircd.conf" <<EOF
# InspIRCd 3.15 for chat-bench (generated by scripts/compare-peers.sh)
<server name="inspircd.bench" description="chat-bench peer" network="bench">
<admin name="bench" nick="bench" email="bench@localhost">
<bind address="127.0.0.1" port="$2" type="clients">
# connect class; each change from the shipped /etc/inspircd/inspircd.conf:
#   threshold 10 -> 1000000 and commandrate 1000 -> 1e9 (millicommands/s):
#     command flood pacing lifted; fakelag yes -> no: no penalty delay
#   hardsendq 262144 -> 4 MiB: send queue
#   softsendq 8192 -> 4 MiB: a client's commands are not delayed while its own
#     send queue drains
#   recvq 8192 -> 64 KiB: receive queue
#   localmax/globalmax 3 -> 100000: connections per IP
#   limit (5000 in the example) -> 100000: users in the class
#   maxchans 20 -> 1000: channels per user
#   resolvehostnames yes -> no, useident no: no DNS or ident lookups
#   pingfreq 120 -> 600: no PING during a run
<connect allow="127.0.0.0/8"
         timeout="60"
         pingfreq="600"
         threshold="1000000"
         commandrate="1000000000"
         fakelag="no"
         hardsendq="$SENDQ"
         softsendq="$SENDQ"
         recvq="65536"
         localmax="100000"
         globalmax="100000"
         limit="100000"
         maxchans="1000"
         resolvehostnames="no"
         useident="no">
# channels per user (20 -> 1000)
<channels users="1000" opers="1000">
# the resolver (unused: resolvehostnames="no") stays on loopback
<dns server="127.0.0.1" timeout="1">
<pid file="$1/inspircd.pid">
<files motd="$1/motd.txt">
<log method="file" type="* -USERINPUT -USEROUTPUT" level="default" target="$1/inspircd.log">
# softlimit 1024 -> 100000: most connections at once (capped by the fd limit);
# somaxconn 128 -> 4096: listen backlog for bursts of connects
<performance softlimit="100000" somaxconn="4096" netbuffersize="10240" quietbursts="yes">
<security maxtargets="20" userstats="Pu">
<whowas groupsize="10" maxgroups="100000" maxkeep="3d">
EOF
    echo "bench" >"$1/motd.txt"
}

write_hybrid_conf() { # $1 dir, $2 port
    cat >"$1/ircd.conf" <<EOF
/* ircd-hybrid 8.2 for chat-bench (generated by scripts/compare-peers.sh) */
serverinfo {
	name = "hybrid.bench";
	sid = "0HB";
	description = "chat-bench peer";
	network_name = "bench";
	network_description = "bench";
	hub = no;
	/* 512 -> 19000: clients at once (hybrid caps it below the fd limit, 20000) */
	default_max_clients = 19000;
};
admin { name = "bench"; description = "bench"; email = "<bench@localhost>"; };
class {
	name = "users";
	/* 90 s -> 600 s: no PING during a run */
	ping_time = 600 seconds;
	/* 2 local / 8 global per IP, 100 per class, 16 per /24: lifted */
	number_per_ip_local = 100000;
	number_per_ip_global = 100000;
	max_number = 100000;
	cidr_bitlen_ipv4 = 32;
	number_per_cidr = 100000;
	/* 100 kbytes -> 4 MiB: send queue */
	sendq = $SENDQ bytes;
	/* 2560 -> 8000 bytes (the largest hybrid accepts): receive queue */
	recvq = 8000 bytes;
	/* 60 (class) / 25 (default) -> 1000 channels per user */
	max_channels = 1000;
};
listen {
	host = "127.0.0.1";
	port = $2;
};
auth {
	user = "*@127.0.0.0/8";
	class = "users";
	/* exceed_limit: class limits do not apply; can_flood: no flood limits
	   (no command pacing); no_tilde: no "~" without ident */
	flags = exceed_limit, can_flood, no_tilde;
};
/* exempt from connection throttling (throttle_time) and D-lines */
exempt { ip = "127.0.0.0/8"; };
channel {
	/* 25 -> 1000 channels per user */
	max_channels = 1000;
	/* 18 joins per 6 s -> 0: join-flood detection off */
	default_join_flood_count = 0;
	default_join_flood_time = 0 seconds;
};
general {
	/* no ident lookup per connection (DNS goes to a local NXDOMAIN stub) */
	disable_auth = yes;
	/* 10 lines per second to a target -> 0: disabled */
	default_floodcount = 0;
	default_floodtime = 0 seconds;
	/* 1 connection per 2 s per IP -> 0: throttling disabled */
	throttle_count = 0;
	throttle_time = 0 seconds;
	/* nick-change flood detection off */
	anti_nick_flood = no;
	/* 1 s / 10 s between expensive commands (pace_wait*) -> 0 */
	pace_wait_simple = 0 seconds;
	pace_wait = 0 seconds;
	ping_cookie = no;
	short_motd = yes;
	max_targets = 20;
};
modules {
	path = "/usr/lib/ircd-hybrid/modules";
	path = "/usr/lib/ircd-hybrid/modules/autoload";
};
log { use_logging = no; };
EOF
}

# ---------------------------------------------------------------- start / stop
wait_port() { # $1 port; up to 10 s
    for _ in $(seq 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then return 0; fi
        [[ -n $SERVER_PID ]] && ! kill -0 "$SERVER_PID" 2>/dev/null && return 1
        sleep 0.1
    done
    return 1
}

# A DNS stub for ircd-hybrid: answers every query NXDOMAIN, on 127.0.0.153:53 (a
# loopback address of its own, so it cannot collide with a local resolver).
NXDNS_ADDR=127.0.0.153
NXDNS_PID=""
start_nxdns() {
    if [[ -n $NXDNS_PID ]] && kill -0 "$NXDNS_PID" 2>/dev/null; then return 0; fi
    taskset -c "$LOAD_CPU" python3 - "$NXDNS_ADDR" <<'PY' &
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((sys.argv[1], 53))
while True:
    q, peer = s.recvfrom(512)
    if len(q) < 12:
        continue
    # same id and question; QR=1, opcode and RD copied, RA=1, RCODE=3 (NXDOMAIN)
    flags = 0x8000 | (int.from_bytes(q[2:4], "big") & 0x7900) | 0x0080 | 3
    s.sendto(q[:2] + flags.to_bytes(2, "big") + q[4:6] + bytes(6) + q[12:], peer)
PY
    NXDNS_PID=$!
    sleep 0.3
    kill -0 "$NXDNS_PID" 2>/dev/null || {
        log "the DNS stub for ircd-hybrid did not start"
        return 1
    }
}

# Starts server $1 on port $2 in directory $3, pinned to SERVER_CPU, in the
# foreground of a background job whose pid is the server's own pid.
start_server() {
    local name=$1 port=$2 dir=$3
    mkdir -p "$dir"
    case $name in
    palaver)
        # --no-flood-limit lifts command pacing and the per-IP limit;
        # --max-clients-per-ip lifts the per-IP limit (100 by default);
        # --sendq 4 MiB (512 KiB by default)
        ulimit -n 20000
        taskset -c "$SERVER_CPU" "$PALAVER" 127.0.0.1 "$port" --ephemeral --no-flood-limit \
            --max-clients-per-ip 100000 --sendq "$SENDQ" --log-level warn \
            >"$dir/server.log" 2>&1 &
        ;;
    floor)
        ulimit -n 20000
        taskset -c "$SERVER_CPU" "$RELAY" "127.0.0.1:$port" >"$dir/server.log" 2>&1 &
        ;;
    ngircd)
        write_ngircd_conf "$dir" "$port"
        chown nobody: "$dir" # ngircd drops root for nobody; it writes its pid file here
        ulimit -n 20000
        # -n: no daemon, log to stdout; as root it switches to the user nobody
        taskset -c "$SERVER_CPU" ngircd -n -f "$dir/ngircd.conf" >"$dir/server.log" 2>&1 &
        ;;
    inspircd)
        write_inspircd_conf "$dir" "$port"
        ulimit -n 20000
        taskset -c "$SERVER_CPU" inspircd --config "$dir/inspircd.conf" --nofork \
            --runasroot >"$dir/server.log" 2>&1 &
        ;;
    hybrid)
        write_hybrid_conf "$dir" "$port"
        echo "nameserver $NXDNS_ADDR" >"$dir/resolv.conf"
        start_nxdns || return 1
        echo "bench" >"$dir/ircd.motd"
        chown -R nobody: "$dir"
        ulimit -n 20000
        # hybrid refuses to run as root: it runs as nobody, in a private mount
        # namespace whose /etc/resolv.conf names $NXDNS_ADDR, where a stub
        # answers every query NXDOMAIN at once (hybrid always looks up the
        # client's hostname and has no option to skip it; this keeps the lookup
        # on loopback and instant, like the other servers with DNS off)
        # and where the unpacked modules appear at the compiled-in
        # /usr/lib/ircd-hybrid (an empty mount point, removed on exit);
        # exec keeps the job's pid the server's pid.
        if [[ ! -e /usr/lib/ircd-hybrid ]]; then
            mkdir /usr/lib/ircd-hybrid
            HYBRID_MOUNTPOINT=/usr/lib/ircd-hybrid
        fi
        # shellcheck disable=SC2016 # $1.. expand in the inner shell
        taskset -c "$SERVER_CPU" unshare --mount sh -c \
            'mount --bind "$1/resolv.conf" /etc/resolv.conf &&
             mount --bind "$3/usr/lib/ircd-hybrid" /usr/lib/ircd-hybrid && cd "$1" &&
             exec setpriv --reuid=nobody --regid=nogroup --clear-groups \
               "$2" -foreground -configfile "$1/ircd.conf" -pidfile "$1/ircd.pid" \
               -klinefile "$1/kline.db" -dlinefile "$1/dline.db" \
               -xlinefile "$1/xline.db" -resvfile "$1/resv.db" -logfile "$1/ircd.log"' \
            sh "$dir" "$HYBRID_ROOT/usr/sbin/ircd-hybrid" "$HYBRID_ROOT" >"$dir/server.log" 2>&1 &
        ;;
    esac
    SERVER_PID=$!
    if ! wait_port "$port"; then
        log "$name did not start on 127.0.0.1:$port; its output:"
        sed 's/^/    /' "$dir/server.log" >&2 || true
        stop_server
        return 1
    fi
}

# ---------------------------------------------------------------- scenarios
# Each scenario: name and chat-bench arguments; @CONC@ is the server's
# registrations in flight (chat-bench --concurrency), see conc_for.
SCENARIOS=(
    "connect|connect --clients $CLIENTS --concurrency @CONC@"
    "fan1x100x10|fanout --channels 1 --members 100 --senders 10 --duration $DURATION --concurrency @CONC@ --setup-timeout 30 --drain-timeout 5"
    "fan1x1000x1|fanout --channels 1 --members 1000 --senders 1 --duration $DURATION --concurrency @CONC@ --setup-timeout 30 --drain-timeout 5"
    "fan100x10x1|fanout --channels 100 --members 10 --senders 1 --duration $DURATION --concurrency @CONC@ --setup-timeout 30 --drain-timeout 5"
    "rate1x100x10|fanout --channels 1 --members 100 --senders 10 --rate 10.1 --duration $DURATION --concurrency @CONC@ --setup-timeout 30 --drain-timeout 5"
    "rate1x1000x1|fanout --channels 1 --members 1000 --senders 1 --rate 10.01 --duration $DURATION --concurrency @CONC@ --setup-timeout 30 --drain-timeout 5"
    "rate100x10x1|fanout --channels 100 --members 10 --senders 1 --rate 11.11 --duration $DURATION --concurrency @CONC@ --setup-timeout 30 --drain-timeout 5"
    "latency|latency --count $LAT_COUNT --duration 10"
)
# The rate runs send 10,000 deliveries/s in all: 10 senders × 10.1/s × 99 members,
# 1 × 10.01/s × 999, 100 × 11.11/s × 9.

# Registrations in flight per server. Each server gets as many as it takes
# without penalty from its own design:
# - ngircd: its listen backlog is compiled in at 10; connects beyond it lose their
#   SYN and retry after 1 s or more (the kernel's timer, not the server);
# - InspIRCd: completes registrations in its once-a-second background loop
#   (UserManager::DoBackgroundUserStuff), so each takes up to 1 s whatever the
#   load; 1000 in flight keeps the 1000-member setup within a few seconds;
# - palaver and ircd-hybrid: chat-bench's default, 200.
conc_for() {
    case $1 in
    ngircd) echo 10 ;;
    inspircd) echo 1000 ;;
    *) echo 200 ;;
    esac
}

run_scenarios() { # $1 server, $2 rep, $3 port
    local entry key args out
    for entry in "${SCENARIOS[@]}"; do
        key=${entry%%|*}
        args=${entry#*|}
        args=${args//@CONC@/$(conc_for "$1")}
        out=$RESULTS/$1.$key.$2.json
        # shellcheck disable=SC2086 # args is a word list on purpose
        if ! "$BENCH" $args --addr "127.0.0.1:$3" --server-pid "$SERVER_PID" \
            --cpu "$LOAD_CPU" --json -q >"$out" 2>"$out.err"; then
            log "$1 $key (rep $2): chat-bench exited non-zero: $(tail -c 300 "$out.err" | tr '\n' ' ')"
        fi
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            log "$1 died during $key (rep $2)"
            return 1
        fi
    done
}

# ---------------------------------------------------------------- main
install_peers
for tool in jq python3 taskset; do
    command -v "$tool" >/dev/null || {
        echo "compare-peers: $tool is required" >&2
        exit 1
    }
done
if [[ ${NO_BUILD:-0} != 1 ]]; then
    log "building palaver and chat-bench (release)"
    (cd "$ROOT" && cargo build --release -q -p palaver-server -p palaver-bench)
fi

ACTIVE=()
for p in $PEERS; do
    case $p in
    palaver)
        if [[ -x $PALAVER ]]; then ACTIVE+=(palaver); else log "SKIP palaver: $PALAVER missing"; fi
        ;;
    floor)
        if [[ -x $RELAY ]]; then ACTIVE+=(floor); else log "SKIP floor: $RELAY missing"; fi
        ;;
    ngircd | inspircd)
        if command -v "$p" >/dev/null; then ACTIVE+=("$p"); else log "SKIP $p: not installed"; fi
        ;;
    hybrid)
        if [[ $(id -u) != 0 ]]; then
            log "SKIP ircd-hybrid: needs root (unshare, setpriv)"
        elif unpack_hybrid; then
            ACTIVE+=(hybrid)
        else
            log "SKIP ircd-hybrid: apt-get download / dpkg -x failed"
        fi
        ;;
    *) log "SKIP $p: unknown server" ;;
    esac
done

declare -A VERSION=(
    [palaver]="palaver $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')"
    [ngircd]="ngircd $(dpkg-query -W -f='${Version}' ngircd 2>/dev/null || echo '?')"
    [inspircd]="InspIRCd $(dpkg-query -W -f='${Version}' inspircd 2>/dev/null || echo '?')"
    [floor]="floor (bare-relay)"
    [hybrid]="ircd-hybrid $(dpkg-deb -f "$WORK"/hybrid-dl/ircd-hybrid_*.deb Version 2>/dev/null || echo '?')"
)

declare -A FAILED=()
START=$SECONDS
for rep in $(seq "$REPS"); do
    i=0
    for s in "${ACTIVE[@]}"; do
        i=$((i + 1))
        [[ -n ${FAILED[$s]:-} ]] && continue
        port=$((BASE_PORT + i))
        log "rep $rep/$REPS: $s on 127.0.0.1:$port (server CPU $SERVER_CPU, load CPU $LOAD_CPU)"
        if ! start_server "$s" "$port" "$WORK/run/$s.$rep"; then
            log "SKIP $s from now on: it did not start (see above)"
            FAILED[$s]=1
            continue
        fi
        run_scenarios "$s" "$rep" "$port" || true
        stop_server
    done
done
log "measured in $((SECONDS - START)) s"

# ---------------------------------------------------------------- table
ORDER=()
for s in "${ACTIVE[@]}"; do [[ -z ${FAILED[$s]:-} ]] && ORDER+=("$s"); done
for s in "${!FAILED[@]}"; do echo "- $s: skipped, it did not start (see the log)"; done >"$WORK/skipped.txt"
NAMES=()
for s in "${ORDER[@]}"; do NAMES+=("$s=${VERSION[$s]}"); done
mkdir -p "$(dirname "$OUT")"
python3 - "$RESULTS" "$REPS" "$CLIENTS" "$DURATION" "$WORK/skipped.txt" "${NAMES[@]}" <<'PY' | tee "$OUT"
import json, os, statistics, sys

results, reps, clients, duration, skipped = sys.argv[1:6]
servers = [a.split("=", 1) for a in sys.argv[6:]]

def load(server, key):
    runs = []
    for rep in range(1, int(reps) + 1):
        path = os.path.join(results, f"{server}.{key}.{rep}.json")
        try:
            with open(path) as f:
                runs.append(json.load(f))
        except (OSError, ValueError):
            pass
    return runs

def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None

def get(d, *path):
    for p in path:
        if not isinstance(d, dict) or d.get(p) is None:
            return None
        d = d[p]
    return d

def fmt(v, spec, suffix=""):
    return "n/a" if v is None else format(v, spec) + suffix

def clean(runs):
    bad = sum(1 for r in runs if r.get("lost") or r.get("duplicates")
              or r.get("reordered") or r.get("disconnected"))
    return "" if not bad else f" ({bad}/{len(runs)} runs not clean)"

rows = []
rows.append("| scenario | metric | " + " | ".join(v for _, v in servers) + " |")
rows.append("|" + " --- |" * (2 + len(servers)))

def row(scenario, metric, key, value, spec, suffix="", scale=1.0, note=None):
    cells = []
    for s, _ in servers:
        runs = load(s, key)
        m = med(value(r) for r in runs)
        cell = fmt(None if m is None else m * scale, spec, suffix)
        if note:
            cell += note(runs)
        cells.append(cell)
    rows.append(f"| {scenario} | {metric} | " + " | ".join(cells) + " |")

def failures(runs):
    bad = sum(1 for r in runs if r.get("registered") != r.get("clients"))
    return f" ({bad}/{len(runs)} runs with failures)" if bad else ""

c = f"connect {clients}"
row(c, "idle RSS per connection", "connect",
    lambda r: get(r, "server", "rss_per_connection_bytes"), ",.0f", " B")
row(c, "time to register all", "connect",
    lambda r: r.get("time_to_register_s"), ".3f", " s", note=failures)
row(c, "connect→001 p50", "connect", lambda r: get(r, "latency", "p50_us"), ".2f", " ms", 1e-3)
row(c, "server CPU per registration", "connect",
    lambda r: get(r, "server", "cpu_us_per_registration"), ".0f", " µs")
for key, label in (("fan1x100x10", "fanout 1×100×10"), ("fan1x1000x1", "fanout 1×1000×1"),
                   ("fan100x10x1", "fanout 100×10×1")):
    row(label, "deliveries/s", key, lambda r: r.get("deliveries_per_s"), ".2f", " M", 1e-6,
        note=clean)
    row(label, "server CPU per delivery", key,
        lambda r: get(r, "server", "cpu_us_per_delivery"), ".3f", " µs")
    row(label, "server cores", key, lambda r: get(r, "server", "cpu_cores"), ".2f")
    row(label, "latency p99", key, lambda r: get(r, "latency", "p99_us"), ".2f", " ms", 1e-3)
    row(label, "senders starved > 5 s", key, lambda r: r.get("starved_senders"), ".0f")
for key, label in (("rate1x100x10", "10k/s 1×100×10"), ("rate1x1000x1", "10k/s 1×1000×1"),
                   ("rate100x10x1", "10k/s 100×10×1")):
    row(label, "latency p50", key, lambda r: get(r, "latency", "p50_us"), ".3f", " ms", 1e-3,
        note=clean)
    row(label, "latency p99", key, lambda r: get(r, "latency", "p99_us"), ".3f", " ms", 1e-3)
row("latency (PRIVMSG round trip)", "p50", "latency", lambda r: get(r, "rtt", "p50_us"), ".1f", " µs")
row("latency (PRIVMSG round trip)", "p99", "latency", lambda r: get(r, "rtt", "p99_us"), ".1f", " µs")

print("\n".join(rows))
print()
keys = ("connect", "fan1x100x10", "fan1x1000x1", "fan100x10x1", "rate1x100x10",
        "rate1x1000x1", "rate100x10x1", "latency")
counts = {s: sum(len(load(s, k)) for k in keys) for s, _ in servers}
print(f"Medians of {reps} repetitions per server (runs with JSON per server: "
      + ", ".join(f"{s} {n}" for s, n in counts.items())
      + f"); fan-outs for {duration} s each, in saturation mode or at a fixed 10,000 "
      + "deliveries/s; fan-out latencies from kernel receive stamps.")
with open(skipped) as f:
    extra = f.read().strip()
if extra:
    print(extra)
PY
log "table written to $OUT"
