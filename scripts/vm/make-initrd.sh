#!/usr/bin/env bash
# Makes the arm64 field VM's initrd on the host (build-image-arm64.sh runs it): a static busybox, the modules the
# root disk and the console need (with their dependencies, in load order, from the modules.dep that depmod made
# under <root>), and initrd/init, which loads them, mounts the root disk and switches to systemd. No
# initramfs-tools: nothing here runs under emulation. `make-initrd.sh <root> <kernel version> <busybox> <out>`.
set -euo pipefail
root=$1 kver=$2 busybox=$3 out=$4
here=$(cd "$(dirname "$0")" && pwd)
# The root disk (virtio-blk on virtio-pci, ext4) and the console (virtio console, hvc0); the rest udev loads.
modules=(virtio_pci virtio_blk virtio_console ext4)
tree=$(mktemp -d)
trap 'rm -rf "$tree"' EXIT
mkdir -p "$tree"/{bin,dev,proc,sys,newroot,modules}
install -m 0755 "$busybox" "$tree/bin/busybox"
install -m 0755 "$here/initrd/init" "$tree/init"
# modprobe --show-depends lists each module after its dependencies ("insmod <path>"; built-ins as "builtin").
for m in "${modules[@]}"; do
  modprobe -d "$root" -S "$kver" --show-depends "$m"
done | awk '$1 == "insmod" && !seen[$2]++ {print $2}' | while read -r ko; do
  cp "$ko" "$tree/modules/"
  basename "$ko" >>"$tree/modules/load-order"
done
echo "make-initrd: $(wc -l <"$tree/modules/load-order") modules: $(tr '\n' ' ' <"$tree/modules/load-order")"
(cd "$tree" && find . | LC_ALL=C sort | cpio --quiet -o -H newc -R 0:0) | gzip -9 >"$out"
