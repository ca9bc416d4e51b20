/** Semver without build metadata: what package.json holds and release tarball names carry. */
const NUMBER = '(0|[1-9]\\d{0,8})';
const VERSION_PATTERN = new RegExp(`^${NUMBER}\\.${NUMBER}\\.${NUMBER}(?:-([0-9A-Za-z-]+(?:\\.[0-9A-Za-z-]+)*))?$`);
/** Longer than any real version: keeps a hostile manifest from carrying a kilobyte "version". */
const VERSION_CHARS_MAX = 64;

export function isVersion(text: string): boolean {
  return text.length <= VERSION_CHARS_MAX && VERSION_PATTERN.test(text);
}

/** Semver precedence (semver.org §11): numbers numerically, a pre-release before its release. */
export function compareVersions(a: string, b: string): number {
  const [pa, pb] = [VERSION_PATTERN.exec(a), VERSION_PATTERN.exec(b)];
  if (!pa || !pb) throw new TypeError(`not a version: ${JSON.stringify(pa ? b : a)}`);
  for (let i = 1; i <= 3; i++) {
    const d = Number(pa[i]) - Number(pb[i]);
    if (d !== 0) return Math.sign(d);
  }
  if (pa[4] === undefined || pb[4] === undefined) return (pa[4] === undefined ? 1 : 0) - (pb[4] === undefined ? 1 : 0);
  const [xa, xb] = [pa[4].split('.'), pb[4].split('.')];
  for (let i = 0; i < Math.min(xa.length, xb.length); i++) {
    const [x, y] = [xa[i]!, xb[i]!];
    if (x === y) continue;
    const [nx, ny] = [/^\d+$/.test(x), /^\d+$/.test(y)];
    if (nx && ny) return Math.sign(Number(x) - Number(y));
    if (nx !== ny) return nx ? -1 : 1;
    return x < y ? -1 : 1;
  }
  return Math.sign(xa.length - xb.length);
}
