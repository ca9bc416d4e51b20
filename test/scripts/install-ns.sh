#!/bin/sh
# Runs a release's install.sh for real inside a private mount namespace (unshare -m, started by
# test/scripts/release.test.ts): /etc, /opt, /usr/local/bin and /var/lib are bind mounts of folders under
# $1, so users, groups, the unit and the program land there and the host is untouched. systemctl is a stub
# that logs its arguments (no systemd runs here). Then the installed unit's ExecStart is started as the
# service user until it reports ready, and install.sh runs a second time over the first.
# usage: install-ns.sh <root> <unpacked release> ; writes <root>/systemctl.log, <root>/service.log,
# <root>/modes.log and <root>/modes-reinstall.log (path, octal mode, owner:group per line)
set -eu
root=$1
release=$2
# The service user must reach its runtime directory under $root.
chmod 0755 "$root"
cp -a /etc "$root/etc"
mkdir -p "$root/etc/systemd/system" "$root/opt" "$root/usr-local-bin" "$root/var-lib" "$root/stub"
mount --bind "$root/etc" /etc
mount --bind "$root/opt" /opt
mount --bind "$root/usr-local-bin" /usr/local/bin
mount --bind "$root/var-lib" /var/lib
printf '#!/bin/sh\necho "$*" >> %s/systemctl.log\n[ "$1" != is-active ]\n' "$root" > "$root/stub/systemctl"
chmod 0755 "$root/stub/systemctl"
PATH="$root/stub:$PATH" "$release/install.sh"

# What systemd would do for StateDirectory=outpost and RuntimeDirectory=outpost, then ExecStart as User=.
install -d -o outpost -g outpost -m 0750 /var/lib/outpost "$root/run-outpost"
exec_start=$(sed -n 's/^ExecStart=//p' /etc/systemd/system/outpost.service)
# However this script ends, the service it started ends with it.
trap 'kill "$(cat "$root/service.pid" 2>/dev/null)" 2>/dev/null || true' EXIT
(
  cd /
  # shellcheck disable=SC2086
  # The unit's Environment= lines, plus a free hub port.
  setpriv --reuid outpost --regid outpost --init-groups --reset-env \
    env OUTPOST_DATA_DIR=/var/lib/outpost NODE_ENV=production RUNTIME_DIRECTORY="$root/run-outpost" OUTPOST_HUB_PORT=0 \
    $exec_start > "$root/service.log" 2>&1 &
  echo $! > "$root/service.pid"
)
tries=0
until grep -q '"msg":"outpost ready' "$root/service.log" 2>/dev/null || [ $tries -ge 300 ]; do
  sleep 0.1
  tries=$((tries + 1))
done
RUNTIME_DIRECTORY="$root/run-outpost" /usr/local/bin/outpost status --json > "$root/status.log" 2>&1 || true
kill "$(cat "$root/service.pid")" 2>/dev/null || true
wait 2>/dev/null || true

modes() {
  stat -c '%n %a %U:%G' /etc/outpost /etc/outpost/board.json /var/lib/outpost/identities /var/lib/outpost/twins
}
modes > "$root/modes.log"

# A second install over the first: an edited board.json stays, and the modes an older install.sh left
# (board.json 0644 in a 0755 directory) are tightened.
sed -i 's/"outpost-sim"/"site-42"/' /etc/outpost/board.json
chmod 0755 /etc/outpost
chmod 0644 /etc/outpost/board.json
chown root:root /etc/outpost /etc/outpost/board.json
printf 'correct horse battery\n' | PATH="$root/stub:$PATH" "$release/install.sh" --no-start --page-password > "$root/reinstall.log" 2>&1
modes > "$root/modes-reinstall.log"
stat -c '%n %a %U:%G' /etc/outpost/page-passwd > "$root/passwd-mode.log"
setpriv --reuid outpost --regid outpost --init-groups head -c 11 /etc/outpost/page-passwd > "$root/passwd-read.log" 2>&1 || true
/usr/local/bin/outpost board check > "$root/board-check.log" 2>&1 || true
