#!/bin/bash
# Customizes the unpacked field VM rootfs in $1 for architecture $2 (amd64 or arm64; run by build-image.sh as
# root). Installs the rig's agent, a Raspberry Pi OS-like device setup, the disks' fstab and a small initrd.
set -euo pipefail
root=$1
arch=${2:-amd64}
here=$(cd "$(dirname "$0")" && pwd)
install -m 0755 "$here/vm-agent" "$root/usr/local/sbin/vm-agent"
install -m 0644 "$here/vm-agent.service" "$root/etc/systemd/system/vm-agent.service"
ln -sf /etc/systemd/system/vm-agent.service "$root/etc/systemd/system/multi-user.target.wants/vm-agent.service"
install -m 0644 "$here/60-i2c-group.rules" "$root/etc/udev/rules.d/60-i2c-group.rules"
install -D -m 0644 "$here/10-outpost-vm.network" "$root/etc/systemd/network/10-outpost-vm.network"
ln -sf /lib/systemd/system/systemd-networkd.service \
  "$root/etc/systemd/system/multi-user.target.wants/systemd-networkd.service"
chroot "$root" getent group i2c >/dev/null || chroot "$root" groupadd --system i2c
chroot "$root" getent group gpio >/dev/null || chroot "$root" groupadd --system gpio
# The data disk (/dev/vdb) holds the ring log, as a Pi's data partition would; the root disk is /dev/vda.
cat > "$root/etc/fstab" <<'FSTAB'
/dev/vda / ext4 rw,errors=remount-ro 0 1
/dev/vdb /var/lib/outpost ext4 rw,nofail,x-systemd.device-timeout=300s 0 2
FSTAB
mkdir -p "$root/var/lib/outpost"
echo outpost-vm > "$root/etc/hostname"
# A Pi waits for nothing at boot either: outpost's unit only orders itself after network-online.target.
ln -sf /dev/null "$root/etc/systemd/system/systemd-networkd-wait-online.service"
# The q35 machine's ICH9 SMBus controller would take /dev/i2c-0; on a Pi the bus numbers come from the device
# tree. Without it, i2c-stub is always /dev/i2c-0, the bus the test's board file names. (arm64's virt machine has
# no I2C controller.)
[ "$arch" = amd64 ] && echo 'blacklist i2c_i801' > "$root/etc/modprobe.d/outpost-vm.conf"
# Boot under TCG is slow enough: no ext4 online-scrub bookkeeping on a throwaway disk.
ln -sf /dev/null "$root/etc/systemd/system/e2scrub_reap.service"
echo 'MODULES=list' > "$root/etc/initramfs-tools/conf.d/outpost-vm"
# On arm64 the console is a virtio console (hvc0): the virt machine's one PL011 is the GPS's UART, as on a Pi.
modules=(virtio_pci virtio_blk ext4)
[ "$arch" = arm64 ] && modules+=(virtio_console)
printf '%s\n' "${modules[@]}" > "$root/etc/initramfs-tools/modules"
# mkinitramfs wants /proc and /dev; mounted for that one command only.
mount -t proc proc "$root/proc"
mount --bind /dev "$root/dev"
trap 'umount "$root/dev" "$root/proc" 2>/dev/null || true' EXIT
chroot "$root" update-initramfs -u -k all
