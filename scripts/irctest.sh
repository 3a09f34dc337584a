#!/usr/bin/env bash
# Runs the irctest conformance suite against a release build of chat-server, with the
# capabilities, optional behaviours and ISUPPORT values palaver claims.
# Needs the harness beside the project (../shared/tools/irctest, see its README) and an
# irctest checkout it knows about. Installs Debian's `faketime` if it is missing:
# without it the two LIST time-filter tests fail (they wait for minutes to pass).
#
# Usage: [SELECTION=default|services] scripts/irctest.sh [label] [pytest args]
#   default   irctest's usual selection for servers without services
#             ('not services and not implementation-specific and not deprecated and
#             not strict')
#   services  the account tests ('services and not implementation-specific and not
#             deprecated and not strict'): SASL, account-registration, account-tag,
#             account-notify, extended-join, ...; irctest registers its accounts
#             through NickServ, and each test's wishes (registration before connect,
#             e-mail required) become chat-server flags.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
label="${1:-palaver}"
shift || true
selection="${SELECTION:-default}"
if ! command -v faketime >/dev/null; then
    echo "installing Debian's faketime"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq faketime >/dev/null
fi
cargo build --release -p palaver-server --bin chat-server

caps="cap-notify multi-prefix userhost-in-names message-tags server-time echo-message batch labeled-response away-notify extended-join invite-notify draft/no-implicit-names setname extended-monitor draft/multiline draft/metadata-3 draft/read-marker draft/message-redaction sasl account-notify account-tag draft/account-registration draft/channel-rename"
server="$PWD/target/release/chat-server {host} {port} --ephemeral --no-history-notice --server-name {name} --server-description 'test server' --no-flood-limit --password {password} --oper operuser:operpassword --log-level warn"
# irctest's WebSocket tests connect to a second port it picks: a --listen of ours.
server="$server \$([ -n \"\$IRCTEST_WS_PORT\" ] && echo --listen \"\$IRCTEST_WS_HOST:\$IRCTEST_WS_PORT\")"
export IRC_SERVER_FEATURES="websocket"
case "$selection" in
    default) ;;
    services)
        export IRCTEST_MARKERS="services and not implementation-specific and not deprecated and not strict"
        export IRC_SERVER_ACCOUNTS=nickserv
        export IRC_SERVER_SASL_MECHS="PLAIN SCRAM-SHA-256"
        # The generic controller with services built in (scripts/irctest/).
        export IRCTEST_CONTROLLER=palaver_controller
        export PYTHONPATH="$PWD/scripts/irctest${PYTHONPATH:+:$PYTHONPATH}"
        # irctest's passwords are short ("sesame", "bar") and its clients keep
        # registered nicks without logging in; the per-test switches are read from the
        # environment the harness gives the server.
        server="$server --min-password-len 1 --nick-grace 0"
        server="$server \$([ \"\$IRCTEST_ACCOUNT_REG_BEFORE_CONNECT\" = 1 ] || echo --no-register-before-connect)"
        server="$server \$([ \"\$IRCTEST_ACCOUNT_REG_REQUIRES_EMAIL\" = 1 ] && echo --register-email-required)"
        ;;
    *)
        echo "irctest.sh: SELECTION must be default or services, not '$selection'" >&2
        exit 2
        ;;
esac

IRC_SERVER_CMD="$server" \
IRC_SERVER_CAPS="$caps" \
IRC_SERVER_OPTIONAL_BEHAVIORS="BAN_EXCEPTION_MODE INVITE_EXCEPTION_MODE INVITE_LIST MULTI_KICK NO_CTCP ELIST_C ELIST_M ELIST_N ELIST_T ELIST_U" \
IRC_SERVER_EXTBAN_MUTE=m \
IRC_SERVER_ISUPPORT="CASEMAPPING=rfc1459 CHANTYPES=# PREFIX=(ov)@+ CHANMODES=beI,k,l,CERimnpstz EXCEPTS=e INVEX=I EXTBAN=,am ACCOUNTEXTBAN=a MONITOR=100 WHOX UTF8ONLY BOT=B ELIST=CMNTU" \
  ../shared/tools/irctest/run.sh "$label" "$@"
