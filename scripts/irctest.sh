#!/usr/bin/env bash
# Runs the irctest conformance suite against a release build of chat-server, with the
# capabilities, optional behaviours and ISUPPORT values palaver claims.
# Needs the harness beside the project (../shared/tools/irctest, see its README) and an
# irctest checkout it knows about; `faketime` (Debian package) makes the two LIST
# time-filter tests fast instead of timing out. Usage: scripts/irctest.sh [label] [pytest args]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
label="${1:-palaver}"
shift || true
cargo build --release -p palaver-server --bin chat-server
IRC_SERVER_CMD="$PWD/target/release/chat-server {host} {port} --ephemeral --no-history-notice --server-name {name} --server-description 'test server' --no-flood-limit --password {password} --oper operuser:operpassword --log-level warn" \
IRC_SERVER_CAPS="cap-notify multi-prefix userhost-in-names message-tags server-time echo-message batch labeled-response away-notify extended-join invite-notify draft/no-implicit-names setname extended-monitor draft/multiline draft/metadata-3 draft/read-marker draft/message-redaction" \
IRC_SERVER_OPTIONAL_BEHAVIORS="BAN_EXCEPTION_MODE INVITE_EXCEPTION_MODE INVITE_LIST MULTI_KICK NO_CTCP ELIST_C ELIST_M ELIST_N ELIST_T ELIST_U" \
IRC_SERVER_EXTBAN_MUTE=m \
IRC_SERVER_ISUPPORT="CASEMAPPING=rfc1459 CHANTYPES=# PREFIX=(ov)@+ CHANMODES=beI,k,l,CEimnpst EXCEPTS=e INVEX=I EXTBAN=,m MONITOR=100 WHOX UTF8ONLY BOT=B ELIST=CMNTU" \
  ../shared/tools/irctest/run.sh "$label" "$@"
