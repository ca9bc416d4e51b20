#!/bin/sh
# Installs this outpost release as a systemd service: the program in a release slot, $PREFIX/releases/<version>
# (default prefix /opt/outpost), made current (the previous current release stays, for rollback), board.json
# and boards/ in /etc/outpost (an existing board.json is kept), OTA public keys in /etc/outpost/ota-keys, the
# ring log in /var/lib/outpost, and an `outpost` command in /usr/local/bin. An install of the flat layout of
# older releases ($PREFIX/bin, $PREFIX/outpost.js) is moved into its own slot first and becomes the previous
# release. `install.sh --check` only checks that this system can run the release.
# OUTPOST_OTA_KEYS: public key files (scripts/ota-keygen.js) to trust for OTA updates, besides the release's
# own ota-keys/*.pem. Keys are added, never removed here: a rotation installs the new key beside the old one.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
PREFIX=${PREFIX:-/opt/outpost}
CONF_DIR=/etc/outpost
RELEASES=$PREFIX/releases
STATE_DIR=/var/lib/outpost
# What a release slot holds (the tarball's own files but the installer's).
RELEASE_FILES="bin node_modules outpost.js outpost.js.map page package.json release.json README.md"
# The native addons are built against Debian 12's C library; older ones fail at load with a symbol error.
GLIBC_MIN=2.34

fail() {
  echo "outpost install: $*" >&2
  exit 1
}

target=$(sed -n 's/.*"target": *"\([^"]*\)".*/\1/p' "$here/release.json")
[ -n "$target" ] || fail "$here/release.json names no target: is this an unpacked outpost release?"

glibc=$(getconf GNU_LIBC_VERSION 2>/dev/null | awk '{ print $2 }' || true)
[ -n "$glibc" ] || fail "cannot read the C library version (getconf GNU_LIBC_VERSION); this release needs glibc >= $GLIBC_MIN (Raspberry Pi OS Bookworm or later)"
if [ "$(printf '%s\n%s\n' "$GLIBC_MIN" "$glibc" | sort -V | head -n 1)" != "$GLIBC_MIN" ]; then
  fail "this system has glibc $glibc; outpost needs glibc $GLIBC_MIN or newer, i.e. Raspberry Pi OS Bookworm (Debian 12) or later. Bullseye and older are not supported: upgrade the OS."
fi

machine=$(uname -m)
case "$target:$machine" in
  linux-x64:x86_64 | linux-arm64:aarch64 | linux-armv7:armv7l | linux-armv7:armv8l) ;;
  linux-armv7:aarch64) fail "this is the 32-bit (armv7) release but the kernel is 64-bit ($machine): install the linux-arm64 release, or run a 32-bit OS" ;;
  *) fail "this release is for $target but this machine is $machine" ;;
esac

if [ "${1:-}" = "--check" ]; then
  echo "outpost install: ok: glibc $glibc, $machine, release for $target"
  exit 0
fi
[ "$(id -u)" -eq 0 ] || fail "run as root (sudo $0)"

# The service's user; the groups own /dev/gpiochip*, /dev/i2c-* and serial ports on Raspberry Pi OS and
# are created here on other systems so the unit's SupplementaryGroups= resolves.
for group in gpio i2c dialout; do getent group "$group" >/dev/null || groupadd --system "$group"; done
getent passwd outpost >/dev/null || useradd --system --user-group --no-create-home --home-dir /var/lib/outpost --shell /usr/sbin/nologin outpost

if systemctl is-active --quiet outpost 2>/dev/null; then systemctl stop outpost; fi
version=$(sed -n 's/.*"version": *"\([^"]*\)".*/\1/p' "$here/release.json")
[ -n "$version" ] || fail "$here/release.json names no version"
install -d -m 0755 "$PREFIX"
# The service's OTA updates write new slots and move the links here (ReadWritePaths= in the unit), and only here.
install -d -m 0755 -o outpost -g outpost "$RELEASES"
# board.json holds uplink passwords and connection strings: readable by root and the service's group only.
# A reinstall tightens what an older install.sh (0644 in a 0755 directory) left behind.
install -d -m 0750 -o root -g outpost "$CONF_DIR"
chown root:outpost "$CONF_DIR"
chmod 0750 "$CONF_DIR"

# The same switch as firmware/ota/slots.ts: a new link under a temporary name, synced, renamed over the old.
point() { # <slot> <version>
  rm -f "$RELEASES/$1.tmp"
  ln -s "$2" "$RELEASES/$1.tmp"
  sync "$RELEASES"
  mv -T -f "$RELEASES/$1.tmp" "$RELEASES/$1"
  sync "$RELEASES"
}

# An older install.sh copied the release straight into $PREFIX: that release becomes a slot of its own.
if [ -f "$PREFIX/release.json" ] && [ -x "$PREFIX/bin/node" ]; then
  flat=$(sed -n 's/.*"version": *"\([^"]*\)".*/\1/p' "$PREFIX/release.json")
  if [ -n "$flat" ] && [ "$flat" != "$version" ] && [ ! -e "$RELEASES/$flat" ] && [ ! -L "$RELEASES/current" ]; then
    install -d -m 0755 -o outpost -g outpost "$RELEASES/$flat.partial"
    for f in $RELEASE_FILES; do if [ -e "$PREFIX/$f" ]; then mv "$PREFIX/$f" "$RELEASES/$flat.partial/"; fi; done
    chown -R outpost:outpost "$RELEASES/$flat.partial"
    sync
    mv -T "$RELEASES/$flat.partial" "$RELEASES/$flat"
    point current "$flat"
  fi
  for f in $RELEASE_FILES; do rm -rf "${PREFIX:?}/$f"; done
fi

# The new slot is whole and synced before any link names it. Owned by the service, which prunes old slots.
rm -rf "$RELEASES/$version.partial"
install -d -m 0755 "$RELEASES/$version.partial"
for f in $RELEASE_FILES; do cp -a "$here/$f" "$RELEASES/$version.partial/"; done
chown -R outpost:outpost "$RELEASES/$version.partial"
sync
old=$(readlink "$RELEASES/current" 2>/dev/null || true)
if [ -e "$RELEASES/$version" ]; then
  # A reinstall of the same version: current moves to the new copy first, so it never names a missing one.
  point current "$version.partial"
  rm -rf "${RELEASES:?}/$version"
fi
mv -T "$RELEASES/$version.partial" "$RELEASES/$version"
sync "$RELEASES"
if [ -n "$old" ] && [ "$old" != "$version" ] && [ "$old" != "$version.partial" ]; then point previous "$old"; fi
point current "$version"
ln -sfn releases/current "$PREFIX/current"
# Every slot but current and previous goes (a release is ~45 MB; an SD card is small).
keep_previous=$(readlink "$RELEASES/previous" 2>/dev/null || true)
for slot in "$RELEASES"/*; do
  name=${slot##*/}
  case "$name" in current | previous | "$version" | "$keep_previous") ;; *) rm -rf "$slot" ;; esac
done
# The launcher decides on rollbacks: it lives outside the slots, root's, and only install.sh replaces it.
install -m 0755 "$here/ota-launch.sh" "$PREFIX/launch"
# An install by hand is the operator's decision: whatever update was pending is settled by it.
rm -f "$STATE_DIR/ota/pending" "$STATE_DIR/ota/boots" "$STATE_DIR/ota/last-exit"

# OTA public keys: root's, world-readable (they are public); the service reads them, never writes them.
install -d -m 0755 "$CONF_DIR/ota-keys"
for key in "$here"/ota-keys/*.pem ${OUTPOST_OTA_KEYS:-}; do
  [ -f "$key" ] || continue
  grep -q 'BEGIN PUBLIC KEY' "$key" || fail "$key is not a PEM public key (make one with scripts/ota-keygen.js)"
  install -m 0644 "$key" "$CONF_DIR/ota-keys/${key##*/}"
done
[ -e "$CONF_DIR/board.json" ] || install -m 0640 -o root -g outpost "$here/board.json" "$CONF_DIR/board.json"
chown root:outpost "$CONF_DIR/board.json"
chmod 0640 "$CONF_DIR/board.json"
rm -rf "$CONF_DIR/boards"
cp -a "$here/boards" "$CONF_DIR/boards"
chown -R root:root "$CONF_DIR/boards"
sed "s|/opt/outpost|$PREFIX|g" "$here/outpost.service" > /etc/systemd/system/outpost.service
cat > /usr/local/bin/outpost <<WRAPPER
#!/bin/sh
# outpost status | log stat | board check, against the installed service's board and data.
export OUTPOST_BOARD=\${OUTPOST_BOARD:-$CONF_DIR/board.json} OUTPOST_DATA_DIR=\${OUTPOST_DATA_DIR:-/var/lib/outpost}
exec "$PREFIX/current/bin/node" --max-semi-space-size=2 --heap-growing-percent=20 "$PREFIX/current/outpost.js" "\$@"
WRAPPER
chmod 0755 /usr/local/bin/outpost

systemctl daemon-reload
systemctl enable outpost
[ "${1:-}" = "--no-start" ] || systemctl restart outpost
echo "outpost install: installed $target release $version in $RELEASES/$version (current${keep_previous:+; previous $keep_previous}); edit $CONF_DIR/board.json, then: systemctl status outpost; sudo outpost status"
echo "outpost install: $CONF_DIR/board.json is 0640 root:outpost; keep a connection string in its own file (uplink.connectionStringFile), made the same way: install -m 0640 -o root -g outpost <file> $CONF_DIR/connection-string"
