#!/usr/bin/env bash
# The browser client's tests: unit tests of its modules, then end-to-end tests in
# headless Chromium (Debian's package, driven by Playwright from npm) against the
# real chat-server. Installs what is missing; run from anywhere.
# Usage: scripts/browser-tests.sh [node --test arguments, e.g. a file name]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! command -v chromium >/dev/null 2>&1; then
    echo "installing Debian's chromium"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
if ! command -v node >/dev/null 2>&1; then
    echo "installing Debian's nodejs and npm"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
fi

# The exact versions in package-lock.json; no browser download (Chromium is Debian's).
(cd crates/server/web-tests && npm ci --no-audit --no-fund --loglevel=error)
cargo build --locked --bin chat-server --quiet

cd crates/server/web-tests
if [ "$#" -eq 0 ]; then
    set -- *.test.mjs
fi
node --test --test-concurrency=1 "$@"
