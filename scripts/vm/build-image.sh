#!/usr/bin/env bash
# Builds the field VM image for test/vm from Debian's packages only: Debian's own kernel (linux-image-<arch>), a
# bookworm rootfs made by mmdebstrap (minbase + systemd, udev, kmod, i2c-tools) and an ext4 root disk. Prints the
# image folder on its last line. `build-image.sh [amd64|arm64]` (default amd64): arm64 is the architecture outpost
# ships on (a Pi 4's Cortex-A72); its rootfs is made through qemu-user-static's binfmt handler and the image boots
# under qemu-system-aarch64. The image is cached under $OUTPOST_VM_CACHE (default /var/cache/outpost-vm) in a
# folder named by the architecture and a hash of the package list, this script and the candidate versions apt would
# install, so it is rebuilt only when one of them changes.
set -euo pipefail
script_dir=$(cd "$(dirname "$0")" && pwd)
cache=${OUTPOST_VM_CACHE:-/var/cache/outpost-vm}
suite=bookworm
arch=${1:-amd64}
# What a Raspberry Pi OS Lite image has that outpost touches: systemd (notify, watchdog, journald), udev (device
# nodes and their groups), kmod (i2c-stub), i2c-tools (i2cset to load the stub's registers), util-linux (flock,
# setsid), procps (ps, pgrep for the tests), iproute2. initramfs-tools builds the kernel's initrd in the chroot.
packages=(systemd systemd-sysv udev kmod i2c-tools "linux-image-$arch" initramfs-tools e2fsprogs util-linux procps
  iproute2)

need=()
case $arch in
  amd64) command -v qemu-system-x86_64 >/dev/null 2>&1 || need+=(qemu-system-x86) ;;
  arm64)
    command -v qemu-system-aarch64 >/dev/null 2>&1 || need+=(qemu-system-arm)
    # mmdebstrap runs the arm64 packages' maintainer scripts through binfmt_misc and qemu-aarch64, and checks with
    # arch-test that it can.
    [ -e /usr/libexec/qemu-binfmt/aarch64-binfmt-P ] || need+=(qemu-user-static)
    command -v arch-test >/dev/null 2>&1 || need+=(arch-test)
    ;;
  *) echo "build-vm-image: unknown architecture '$arch' (amd64 or arm64)" >&2; exit 2 ;;
esac
command -v mmdebstrap >/dev/null 2>&1 || need+=(mmdebstrap)
command -v qemu-img >/dev/null 2>&1 || need+=(qemu-utils)
command -v mke2fs >/dev/null 2>&1 || need+=(e2fsprogs)
# shellcheck source=../lib/apt-install.sh
. "$script_dir/../lib/apt-install.sh"
apt_install build-vm-image "${need[@]}" >&2

# The candidate versions apt would install. A foreign architecture gets its own package lists in the cache (the
# host's sources, refreshed at most daily: FOREIGN_LISTS_MAX_AGE_MINS), so the host's dpkg and apt stay as they were.
FOREIGN_LISTS_MAX_AGE_MINS=1440
apt_state=()
if [ "$arch" != "$(dpkg --print-architecture)" ]; then
  state="$cache/apt-$arch"
  mkdir -p "$state/lists/partial" "$state/cache"
  [ -f "$state/status" ] || : > "$state/status"
  apt_state=(-o "APT::Architecture=$arch" -o "APT::Architectures=$arch" -o "Dir::State::Lists=$state/lists"
    -o "Dir::State::status=$state/status" -o "Dir::Cache=$state/cache" -o "APT::Sandbox::User=root")
  if [ ! -f "$state/updated" ] || [ -n "$(find "$state/updated" -mmin +"$FOREIGN_LISTS_MAX_AGE_MINS")" ]; then
    echo "build-vm-image: reading Debian's $arch package lists" >&2
    apt-get "${apt_state[@]}" update -qq >&2
    touch "$state/updated"
  fi
fi
candidates() {
  apt-cache "${apt_state[@]}" policy "${packages[@]}" 2>/dev/null | awk '/^[^ ]/ {p=$1} /Candidate:/ {print p, $2}'
}
versions=$(candidates)
if ! grep -q "linux-image-$arch: [0-9]" <<<"$versions"; then
  apt-get "${apt_state[@]}" update -qq >&2
  versions=$(candidates)
fi
# Two cached stages: the Debian rootfs (slow: mmdebstrap downloads and installs the packages), keyed by the package
# list and versions; and the image made from it with the rig's guest files (seconds), keyed by those files too.
base_key=$( { echo "$suite $arch"; printf '%s\n' "${packages[@]}"; echo "$versions"; } | sha256sum | cut -c1-16)
base="$cache/rootfs-$suite-$arch-$base_key.tar"
key=$( { echo "$base_key"; cat "$0" "$script_dir/guest/"*; } | sha256sum | cut -c1-16)
out="$cache/$suite-$arch-$key"
if [ -f "$out/done" ]; then
  echo "$out"
  exit 0
fi
mkdir -p "$cache"
# Names from before the architecture was part of them (one was a directory: mmdebstrap picks its output format
# from the name's suffix, and ".partial" is none).
find "$cache" -mindepth 1 -maxdepth 1 -regextype posix-extended -regex ".*/(rootfs-)?$suite-[0-9a-f]{16}(\.tar)?" \
  -exec rm -rf {} +
if [ "$arch" = arm64 ]; then
  # Without a binfmt handler the arm64 maintainer scripts cannot run here. Registered from qemu-user-static's own
  # entry; F (fix binary) opens the interpreter now, so it runs inside mmdebstrap's chroot.
  binfmt=/proc/sys/fs/binfmt_misc
  [ -e "$binfmt/register" ] || mount -t binfmt_misc binfmt_misc "$binfmt"
  [ -e "$binfmt/qemu-aarch64" ] || cat /usr/lib/binfmt.d/qemu-aarch64.conf > "$binfmt/register"
fi
if [ ! -f "$base" ]; then
  echo "build-vm-image: building $base (mmdebstrap $suite $arch, a few minutes; arm64 longer, emulated)" >&2
  # stdin from /dev/null: mmdebstrap reads extra mirrors from a stdin that is not a terminal.
  rm -rf "$base.partial"  # a cut build's leftover
  mmdebstrap --variant=minbase --components=main --architectures="$arch" --format=tar \
    --include="$(IFS=,; echo "${packages[*]}")" "$suite" "$base.partial" </dev/null >&2
  mv "$base.partial" "$base"
  find "$cache" -maxdepth 1 -name "rootfs-$suite-$arch-*.tar" ! -path "$base" -delete
fi

echo "build-vm-image: making $out from $base" >&2
work=$(mktemp -d "$cache/build.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir "$work/root"
tar -xf "$base" -C "$work/root"
# The rig's guest files and a small initrd (only the virtio and ext4 modules: the full one takes a minute to
# unpack under TCG).
"$script_dir/guest/customize.sh" "$work/root" "$arch" >&2
cp "$work"/root/boot/vmlinuz-* "$work/vmlinuz"
cp "$work"/root/boot/initrd.img-* "$work/initrd.img"
# /boot and the package caches are not needed inside: the kernel is passed by qemu's -kernel.
rm -rf "$work"/root/boot/* "$work"/root/var/cache/apt/archives/*.deb "$work"/root/var/lib/apt/lists/*
mke2fs -q -t ext4 -L root -d "$work/root" "$work/root.ext4" 1600M >&2
rm -rf "$work/root"
printf '%s\n' "$versions" > "$work/versions.txt"
touch "$work/done"
rm -rf "$out"
mv "$work" "$out"
trap - EXIT
# Older images are dead weight (each is about 1 GiB sparse).
find "$cache" -mindepth 1 -maxdepth 1 -type d -name "$suite-$arch-*" ! -path "$out" -exec rm -rf {} +
echo "$out"
