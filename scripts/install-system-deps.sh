#!/usr/bin/env bash
# Installs what the tests need from outside npm: Debian's mosquitto (a real broker), socat (pseudo-terminal
# pairs for serial tests), openssl (test certificates) and systemd (systemd-analyze verify for the unit,
# systemd-notify for the notify test; the package installs fine in a container without systemd running). Runs before `npm test`; does nothing when all
# are present. Also runs `npm ci` on a fresh clone so `npm test` alone works.
set -euo pipefail
script_dir=$(cd "$(dirname "$0")" && pwd)
cd "$(dirname "$0")/.."

need=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need+=(mosquitto)
command -v mosquitto_pub >/dev/null 2>&1 || need+=(mosquitto-clients)
command -v socat >/dev/null 2>&1 || need+=(socat)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
# Debian's Chromium for the technician page's browser tests (driven by playwright-core; no browser download).
command -v chromium >/dev/null 2>&1 || need+=(chromium)

# shellcheck source=lib/apt-install.sh
. "$script_dir/lib/apt-install.sh"
apt_install install-system-deps "${need[@]}"

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "install-system-deps: node_modules missing or stale, running npm ci"
  npm ci --no-fund --no-audit
fi
