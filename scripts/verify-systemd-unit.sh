#!/usr/bin/env bash
# Checks contrib/systemd/palaver.service with `systemd-analyze verify` (Debian's
# systemd package, installed if missing): directives, sections and the hardening
# options must all be ones systemd knows. ExecStart must name an executable that
# exists, so the check points it at this checkout's chat-server; it also checks
# that the unit's command line is one chat-server accepts (--check-config on the
# example configuration).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! command -v systemd-analyze >/dev/null 2>&1; then
    echo "installing Debian's systemd (for systemd-analyze)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq systemd >/dev/null
fi
cargo build --locked --bin chat-server --quiet
binary="$(pwd)/target/debug/chat-server"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
sed "s#/usr/local/bin/chat-server#${binary}#" contrib/systemd/palaver.service > "$work/palaver.service"
# verify prints problems on stderr and may still exit 0 for some: any output fails.
output="$(systemd-analyze verify "$work/palaver.service" 2>&1 || echo "exit status $?")"
if [ -n "$output" ]; then
    echo "contrib/systemd/palaver.service: $output" >&2
    exit 1
fi
# The unit's ExecStart arguments with the example configuration.
exec_start="$(sed -n 's#^ExecStart=/usr/local/bin/chat-server ##p' contrib/systemd/palaver.service)"
[ "$exec_start" = "--config /etc/palaver/palaver.toml" ] || { echo "unexpected ExecStart: $exec_start" >&2; exit 1; }
"$binary" --check-config contrib/palaver.toml > /dev/null
echo "contrib/systemd/palaver.service: verified"
