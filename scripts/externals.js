/** Packages with native addons or runtime file lookups that must not be inlined into a bundle. */
export const EXTERNAL_PACKAGES = [
  'onoff',
  'epoll',
  'i2c-bus',
  'serialport',
  '@serialport/*',
  'better-sqlite3',
  'classic-level',
];

/** Whether a package name matches one of EXTERNAL_PACKAGES (a trailing `/*` matches a whole scope). */
/** @param {string} name */
export function isExternal(name) {
  return EXTERNAL_PACKAGES.some((p) => (p.endsWith('/*') ? name.startsWith(p.slice(0, -1)) : name === p));
}
