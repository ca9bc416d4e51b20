#!/usr/bin/env bash
# Builds the arm64 field VM image (test/vm/arm64.test.ts, bench/vm-arm64.ts) from Debian's packages only, with as
# little as possible run under qemu-user emulation: mmdebstrap makes a bookworm arm64 rootfs (minbase + systemd,
# udev, kmod, i2c-tools; no kernel, no initramfs-tools), while Debian's arm64 kernel package and busybox-static
# are fetched with `apt-get download` and unpacked on the host (dpkg-deb -x): their maintainer scripts and
# initramfs-tools never run. The initrd is a busybox one made on the host (make-initrd.sh). Prints the image folder
# on its last line. Cached under $OUTPOST_VM_ARM64_CACHE (default /var/cache/outpost-vm-arm64), apart from the
# amd64 image (build-image.sh), in folders keyed by the package list, the candidate versions and the rig's files.
set -euo pipefail
script_dir=$(cd "$(dirname "$0")" && pwd)
cache=${OUTPOST_VM_ARM64_CACHE:-/var/cache/outpost-vm-arm64}
suite=bookworm
arch=arm64
# What a Raspberry Pi OS Lite image has that outpost touches (as build-image.sh's list, less the kernel and
# initramfs-tools, which are unpacked on the host here).
packages=(systemd systemd-sysv udev kmod i2c-tools e2fsprogs util-linux procps iproute2)
log() { echo "build-image-arm64: $*" >&2; }

need=()
command -v qemu-system-aarch64 >/dev/null 2>&1 || need+=(qemu-system-arm)
# mmdebstrap runs the rootfs packages' maintainer scripts through binfmt_misc and qemu-aarch64 (arch-test checks).
[ -e /usr/libexec/qemu-binfmt/aarch64-binfmt-P ] || need+=(qemu-user-static)
command -v arch-test >/dev/null 2>&1 || need+=(arch-test)
command -v mmdebstrap >/dev/null 2>&1 || need+=(mmdebstrap)
command -v qemu-img >/dev/null 2>&1 || need+=(qemu-utils)
command -v mke2fs >/dev/null 2>&1 || need+=(e2fsprogs)
command -v depmod >/dev/null 2>&1 || need+=(kmod)
command -v cpio >/dev/null 2>&1 || need+=(cpio)
# shellcheck source=../lib/apt-install.sh
. "$script_dir/../lib/apt-install.sh"
apt_install build-image-arm64 "${need[@]}" >&2

# Debian's arm64 package lists, kept in the cache (the host's sources, refreshed at most daily:
# LISTS_MAX_AGE_MINS), so the host's dpkg and apt get no foreign architecture.
LISTS_MAX_AGE_MINS=1440
state="$cache/apt"
mkdir -p "$state/lists/partial" "$state/cache"
[ -f "$state/status" ] || : >"$state/status"
apt_state=(-o "APT::Architecture=$arch" -o "APT::Architectures=$arch" -o "Dir::State::Lists=$state/lists"
  -o "Dir::State::status=$state/status" -o "Dir::Cache=$state/cache" -o "APT::Sandbox::User=root")
if [ ! -f "$state/updated" ] || [ -n "$(find "$state/updated" -mmin +"$LISTS_MAX_AGE_MINS")" ]; then
  log "reading Debian's $arch package lists"
  apt-get "${apt_state[@]}" update -qq >&2
  touch "$state/updated"
fi
candidates() {
  apt-cache "${apt_state[@]}" policy "$@" 2>/dev/null | awk '/^[^ ]/ {p=$1} /Candidate:/ {print p, $2}'
}
# linux-image-arm64 is a metapackage; the kernel is the package it depends on (linux-image-<abi>-arm64).
kernel_pkg=$(apt-cache "${apt_state[@]}" depends linux-image-arm64 | awk '/Depends: linux-image-/ {print $2; exit}')
[ -n "$kernel_pkg" ] || { log "no linux-image-arm64 in $state/lists"; exit 1; }
versions=$(candidates "${packages[@]}")
host_debs=$(candidates "$kernel_pkg" busybox-static)

# Two cached stages: the rootfs tarball (minutes: mmdebstrap under emulation), keyed by the package list and
# versions; the image (seconds), keyed by that, the kernel and busybox versions and the rig's files.
base_key=$( { echo "$suite $arch"; printf '%s\n' "${packages[@]}"; echo "$versions"; } | sha256sum | cut -c1-16)
base="$cache/rootfs-$suite-$arch-$base_key.tar"
key=$( {
  echo "$base_key $host_debs"
  cat "$0" "$script_dir/make-initrd.sh" "$script_dir/initrd/"* "$script_dir/guest/"*
} | sha256sum | cut -c1-16)
out="$cache/$suite-$arch-$key"
if [ -f "$out/done" ]; then
  echo "$out"
  exit 0
fi
mkdir -p "$cache"
# The rootfs packages' maintainer scripts and customize.sh's chroot commands run through qemu-user's binfmt
# entry. Registered from qemu-user-static's own file where no service did; F (fix binary) opens the interpreter
# now, so it runs inside the chroot.
binfmt=/proc/sys/fs/binfmt_misc
[ -e "$binfmt/register" ] || mount -t binfmt_misc binfmt_misc "$binfmt"
[ -e "$binfmt/qemu-aarch64" ] || cat /usr/lib/binfmt.d/qemu-aarch64.conf >"$binfmt/register"
if [ ! -f "$base" ]; then
  log "building $base (mmdebstrap $suite $arch under qemu-user: about 10 minutes on a busy 2-core host)"
  rm -rf "$base.partial" # a cut build's leftover
  # force-unsafe-io: no fsync per unpacked file (the tarball is written once at the end); no manuals, docs or
  # translations to unpack under emulation. nice: the machine is shared. stdin from /dev/null: mmdebstrap reads
  # extra mirrors from a stdin that is not a terminal.
  started=$SECONDS
  dpkg_opts=(--dpkgopt=force-unsafe-io --dpkgopt='path-exclude=/usr/share/man/*'
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/locale/*')
  nice mmdebstrap --variant=minbase --components=main --architectures="$arch" --format=tar "${dpkg_opts[@]}" \
    --include="$(IFS=,; echo "${packages[*]}")" "$suite" "$base.partial" </dev/null >&2
  mv "$base.partial" "$base"
  find "$cache" -maxdepth 1 -name "rootfs-$suite-$arch-*.tar" ! -path "$base" -delete
  log "rootfs built in $((SECONDS - started)) s"
fi

log "making $out from $base"
work=$(mktemp -d "$cache/build.XXXXXX")
trap 'rm -rf "$work"' EXIT
debs="$cache/debs"
mkdir -p "$debs" "$work/root" "$work/kernel" "$work/busybox"
(cd "$debs" && apt-get "${apt_state[@]}" download -qq "$kernel_pkg" busybox-static >&2)
dpkg-deb -x "$(ls -t "$debs/${kernel_pkg}_"*.deb | head -1)" "$work/kernel"
dpkg-deb -x "$(ls -t "$debs"/busybox-static_*.deb | head -1)" "$work/busybox"
kver=$(ls "$work/kernel/lib/modules")
tar -xf "$base" -C "$work/root"
# The rig's guest files (customize.sh, shared with amd64). Its last step builds the initrd with initramfs-tools,
# which this rootfs does not have: a no-op update-initramfs stands in, and the initrd comes from make-initrd.sh.
mkdir -p "$work/root/etc/initramfs-tools/conf.d"
printf '#!/bin/sh\n' >"$work/root/usr/sbin/update-initramfs"
chmod 0755 "$work/root/usr/sbin/update-initramfs"
"$script_dir/guest/customize.sh" "$work/root" "$arch" >&2
rm -rf "$work/root/etc/initramfs-tools" "$work/root/usr/sbin/update-initramfs"
# The kernel's modules in the rootfs, indexed on the host (depmod reads the arm64 modules' ELF as data).
mkdir -p "$work/root/lib/modules"
cp -a "$work/kernel/lib/modules/$kver" "$work/root/lib/modules/"
depmod -b "$work/root" "$kver"
"$script_dir/make-initrd.sh" "$work/root" "$kver" "$work/busybox/bin/busybox" "$work/initrd.img" >&2
cp "$work/kernel/boot/vmlinuz-$kver" "$work/vmlinuz"
rm -rf "$work/kernel" "$work/busybox"
rm -rf "$work"/root/var/cache/apt/archives/*.deb "$work"/root/var/lib/apt/lists/*
mke2fs -q -t ext4 -L root -d "$work/root" "$work/root.ext4" 1600M >&2
rm -rf "$work/root"
printf '%s\n' "$versions" "$host_debs" >"$work/versions.txt"
touch "$work/done"
rm -rf "$out"
mv "$work" "$out"
trap - EXIT
# Older images are dead weight (each is about 1 GiB sparse), as are superseded .debs.
find "$cache" -mindepth 1 -maxdepth 1 -type d -name "$suite-$arch-*" ! -path "$out" -exec rm -rf {} +
find "$debs" -name '*.deb' ! -name "${kernel_pkg}_*" ! -name 'busybox-static_*' -delete
log "image ready"
echo "$out"
