#!/usr/bin/env bash
# Installs what `make test` needs on a fresh Debian bookworm machine:
# the real upstream servers, the real classic client, the load balancer
# the multi-instance tests put in front of several proxies, Chromium and the
# npm packages of the browser test, and the linters.
# Idempotent: packages already present are not fetched again.
set -euo pipefail

need_apt=()
command -v prosody >/dev/null || need_apt+=(prosody)
command -v ejabberdctl >/dev/null || need_apt+=(ejabberd)
/usr/bin/python3 -c 'import slixmpp' 2>/dev/null || need_apt+=(python3-slixmpp)
command -v openssl >/dev/null || need_apt+=(openssl)
command -v node >/dev/null || need_apt+=(nodejs npm)
command -v haproxy >/dev/null || need_apt+=(haproxy)
# The browser the Converse.js test drives through playwright-core.
[ -x /usr/bin/chromium ] || need_apt+=(chromium)

if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "missing Debian packages: ${need_apt[*]}" >&2
    echo "run: sudo apt-get update && sudo apt-get install -y ${need_apt[*]}" >&2
    exit 1
  fi
  echo "installing ${need_apt[*]} ..."
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

# The Debian packages start no service here (no systemd), but make sure no
# stray system instance holds the ports or the Erlang node names we use.
pgrep -x prosody >/dev/null && echo "note: a system prosody is running; tests use their own ports" >&2 || true

# The real SASL2 + Bind2 client, pinned by its lock file.
xmppjs="$(dirname "$0")/../integration/clients/xmppjs"
# Again whenever the lock file is newer than the last install (npm ci
# writes node_modules/.package-lock.json), as when a package was added.
if [ ! -d "$xmppjs/node_modules/@xmpp/client" ] || [ "$xmppjs/package-lock.json" -nt "$xmppjs/node_modules/.package-lock.json" ]; then
  echo "installing @xmpp/client ..."
  npm ci --prefix "$xmppjs" --no-audit --no-fund --loglevel=error
fi

# Converse.js (its headless build) and playwright-core, pinned by their lock
# file; playwright-core drives /usr/bin/chromium and downloads no browser.
browser="$(dirname "$0")/../integration/clients/browser"
if [ ! -d "$browser/node_modules/converse.js" ] || [ ! -d "$browser/node_modules/playwright-core" ] ||
  [ "$browser/package-lock.json" -nt "$browser/node_modules/.package-lock.json" ]; then
  echo "installing converse.js and playwright-core ..."
  npm ci --prefix "$browser" --no-audit --no-fund --loglevel=error
fi

gobin=$(go env GOPATH)/bin
if [ ! -x "$gobin/staticcheck" ]; then
  echo "installing staticcheck ..."
  go install honnef.co/go/tools/cmd/staticcheck@v0.8.2
fi
