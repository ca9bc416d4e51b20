#!/usr/bin/env bash
# Builds the field VM image for test/vm from Debian's packages only: Debian's own kernel (linux-image-amd64), a
# bookworm rootfs made by mmdebstrap (minbase + systemd, udev, kmod, i2c-tools) and an ext4 root disk. Prints the
# image folder on its last line. The image is cached under $OUTPOST_VM_CACHE (default /var/cache/outpost-vm) in a
# folder named by a hash of the package list, this script and the candidate versions apt would install, so it is
# rebuilt only when one of them changes.
set -euo pipefail
script_dir=$(cd "$(dirname "$0")" && pwd)
cache=${OUTPOST_VM_CACHE:-/var/cache/outpost-vm}
suite=bookworm
# What a Raspberry Pi OS Lite image has that outpost touches: systemd (notify, watchdog, journald), udev (device
# nodes and their groups), kmod (i2c-stub), i2c-tools (i2cset to load the stub's registers), util-linux (flock,
# setsid), procps (ps, pgrep for the tests), iproute2. initramfs-tools builds the kernel's initrd in the chroot.
packages=(systemd systemd-sysv udev kmod i2c-tools linux-image-amd64 initramfs-tools e2fsprogs util-linux procps
  iproute2)

need=()
command -v mmdebstrap >/dev/null 2>&1 || need+=(mmdebstrap)
command -v qemu-system-x86_64 >/dev/null 2>&1 || need+=(qemu-system-x86)
command -v qemu-img >/dev/null 2>&1 || need+=(qemu-utils)
command -v mke2fs >/dev/null 2>&1 || need+=(e2fsprogs)
# shellcheck source=../lib/apt-install.sh
. "$script_dir/../lib/apt-install.sh"
apt_install build-vm-image "${need[@]}" >&2

versions=$(apt-cache policy "${packages[@]}" 2>/dev/null | awk '/^[^ ]/ {p=$1} /Candidate:/ {print p, $2}')
if ! grep -q 'linux-image-amd64: [0-9]' <<<"$versions"; then
  apt-get update -qq >&2
  versions=$(apt-cache policy "${packages[@]}" | awk '/^[^ ]/ {p=$1} /Candidate:/ {print p, $2}')
fi
# Two cached stages: the Debian rootfs (slow: mmdebstrap downloads and installs the packages), keyed by the package
# list and versions; and the image made from it with the rig's guest files (seconds), keyed by those files too.
base_key=$( { echo "$suite"; printf '%s\n' "${packages[@]}"; echo "$versions"; } | sha256sum | cut -c1-16)
base="$cache/rootfs-$suite-$base_key.tar"
key=$( { echo "$base_key"; cat "$0" "$script_dir/guest/"*; } | sha256sum | cut -c1-16)
out="$cache/$suite-$key"
if [ -f "$out/done" ]; then
  echo "$out"
  exit 0
fi
mkdir -p "$cache"
if [ ! -f "$base" ]; then
  rm -rf "$base"  # a directory left by the build before --format=tar
  echo "build-vm-image: building $base (mmdebstrap $suite, a few minutes)" >&2
  # --format=tar: mmdebstrap picks the format from the output's extension, and `.partial` would make it a
  # directory, which tar -xf below cannot read. A leftover of a cut build (file or directory) goes first.
  rm -rf "$base.partial"
  mmdebstrap --variant=minbase --components=main --format=tar --include="$(IFS=,; echo "${packages[*]}")" \
    "$suite" "$base.partial" >&2
  mv "$base.partial" "$base"
  find "$cache" -maxdepth 1 -name "rootfs-$suite-*.tar" ! -path "$base" -exec rm -rf {} +
fi

echo "build-vm-image: making $out from $base" >&2
work=$(mktemp -d "$cache/build.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir "$work/root"
tar -xf "$base" -C "$work/root"
# The rig's guest files and a small initrd (only the virtio and ext4 modules: the full one takes a minute to
# unpack under TCG).
"$script_dir/guest/customize.sh" "$work/root" >&2
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
find "$cache" -mindepth 1 -maxdepth 1 -type d -name "$suite-*" ! -path "$out" -exec rm -rf {} +
echo "$out"
