#!/usr/bin/env bash
# Installs what `npm run release` needs for the Raspberry Pi targets and what its smoke test needs to run them
# here: Debian's cross compilers (they pull in the arm64/armhf glibc sysroots under /usr/<triplet>, which
# qemu's -L uses) and qemu-user-static. .ci/run calls this and then sets OUTPOST_RELEASE_CROSS=1; `npm test`
# alone builds and starts only the linux-x64 release. Does nothing when everything is present.
set -euo pipefail
script_dir=$(cd "$(dirname "$0")" && pwd)

need=()
command -v aarch64-linux-gnu-g++ >/dev/null 2>&1 || need+=(g++-aarch64-linux-gnu)
command -v arm-linux-gnueabihf-g++ >/dev/null 2>&1 || need+=(g++-arm-linux-gnueabihf)
command -v qemu-aarch64-static >/dev/null 2>&1 && command -v qemu-arm-static >/dev/null 2>&1 || need+=(qemu-user-static)
[ -e /usr/aarch64-linux-gnu/lib/ld-linux-aarch64.so.1 ] || need+=(libc6-dev-arm64-cross)
[ -e /usr/arm-linux-gnueabihf/lib/ld-linux-armhf.so.3 ] || need+=(libc6-dev-armhf-cross)
command -v g++ >/dev/null 2>&1 && command -v make >/dev/null 2>&1 || need+=(g++ make)

# shellcheck source=lib/apt-install.sh
. "$script_dir/lib/apt-install.sh"
apt_install install-release-deps "${need[@]}"
