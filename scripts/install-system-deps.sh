#!/usr/bin/env bash
# Installs what the tests need from outside npm: Debian's mosquitto (a real broker), socat (pseudo-terminal
# pairs for serial tests), openssl (test certificates) and systemd (systemd-analyze verify for the unit,
# systemd-notify for the notify test; the package installs fine in a container without systemd running). Runs before `npm test`; does nothing when all
# are present. Also runs `npm ci` on a fresh clone so `npm test` alone works.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need+=(mosquitto)
command -v mosquitto_pub >/dev/null 2>&1 || need+=(mosquitto-clients)
command -v socat >/dev/null 2>&1 || need+=(socat)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)

if [ ${#need[@]} -gt 0 ]; then
  echo "install-system-deps: installing ${need[*]}"
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
      echo "install-system-deps: need root (or sudo) to install: ${need[*]}" >&2
      exit 1
    fi
  fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "install-system-deps: node_modules missing or stale, running npm ci"
  npm ci --no-fund --no-audit
fi
