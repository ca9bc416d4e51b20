#!/bin/sh
# The OTA test's private mount namespace (run under unshare -m), like test/scripts/install-ns.sh: /etc, /opt,
# /usr/local/bin and /var/lib are bind mounts of folders under $1, so install.sh's user, unit, program and
# data land there and the host is untouched; systemctl is a stub that logs its arguments. Then runs "$@".
# usage: ns-setup.sh <root> <command> ...
set -eu
root=$1
shift
chmod 0755 "$root"
cp -a /etc "$root/etc"
mkdir -p "$root/etc/systemd/system" "$root/opt" "$root/usr-local-bin" "$root/var-lib" "$root/stub" "$root/run-outpost"
mount --bind "$root/etc" /etc
mount --bind "$root/opt" /opt
mount --bind "$root/usr-local-bin" /usr/local/bin
mount --bind "$root/var-lib" /var/lib
printf '#!/bin/sh\necho "$*" >> %s/systemctl.log\n[ "$1" != is-active ]\n' "$root" > "$root/stub/systemctl"
chmod 0755 "$root/stub/systemctl"
PATH="$root/stub:$PATH" exec "$@"
