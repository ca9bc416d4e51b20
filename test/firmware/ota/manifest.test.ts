import { spawnSync } from 'node:child_process';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import {
  canonicalManifest,
  loadPublicKeys,
  parseManifest,
  verifyManifest,
  type UpdateManifest,
} from '../../../firmware/ota/manifest.js';
import { compareVersions } from '../../../firmware/ota/version.js';
import { STORE_FORMAT } from '../../../firmware/store/format.js';
import { tempDir } from '../../support/tmp.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const CTX = { currentVersion: '1.0.0', target: 'linux-arm64' };

/** A signed manifest made by the release scripts themselves (scripts/pack/sign.js), for a tiny tarball. */
type Signed = { manifest: UpdateManifest; dir: string };
const script = (name: string, ...args: string[]) =>
  spawnSync(process.execPath, [join(ROOT, 'scripts', name), ...args], { encoding: 'utf8' });

function signedByScripts(t: Parameters<typeof tempDir>[0], version: string, keyName = 'ota'): Signed {
  const dir = tempDir(t);
  const keygen = script('ota-keygen.js', join(dir, keyName));
  if (keygen.status !== 0) throw new Error(keygen.stderr);
  const top = `outpost-${version}-linux-arm64`;
  mkdirSync(join(dir, top));
  const release = { version, target: 'linux-arm64', storeFormat: STORE_FORMAT };
  writeFileSync(join(dir, top, 'release.json'), JSON.stringify(release));
  const tarball = join(dir, `${top}.tar.gz`);
  spawnSync('tar', ['-C', dir, '-czf', tarball, top]);
  const sign = script('ota-sign.js', '--sign-key', join(dir, `${keyName}.key`), tarball);
  if (sign.status !== 0) throw new Error(sign.stderr);
  return { manifest: parseManifest(readFileSync(`${tarball}.manifest.json`, 'utf8'), 'test'), dir };
}

t.test('what the release scripts sign, the firmware verifies: one canonical encoding in both', async (t) => {
  const { manifest, dir } = signedByScripts(t, '1.1.0');
  t.equal(statSync(join(dir, 'ota.key')).mode & 0o777, 0o600, 'the private key is 0600');
  const keys = loadPublicKeys(dir);
  t.same(verifyManifest(manifest, keys, CTX), { ok: true });
  t.equal(
    canonicalManifest(manifest).toString(),
    `outpost-update-v1\nversion=1.1.0\ntarget=linux-arm64\nsha256=${manifest.sha256}\n` +
      `bytes=${manifest.bytes}\nstoreFormat=${STORE_FORMAT}\n`,
  );
  const again = script('ota-keygen.js', join(dir, 'ota'));
  t.equal(again.status, 1);
  t.match(again.stderr, /ota\.key exists; not overwriting a key/);
});

t.test('refusals, each with its reason: unsigned, bad signature, wrong target, downgrade, store format', async (t) => {
  const { manifest, dir } = signedByScripts(t, '1.1.0');
  const keys = loadPublicKeys(dir);
  const refused = (m: UpdateManifest, ctx = CTX, k: KeyObject[] = keys) => {
    const v = verifyManifest(m, k, ctx);
    return v.ok ? 'ok' : v.reason;
  };
  t.equal(refused({ ...manifest, signature: '' }), 'unsigned');
  t.equal(refused({ ...manifest, sha256: 'f'.repeat(64) }), 'bad-signature', 'a signed field changed: the hash');
  t.equal(refused({ ...manifest, version: '9.9.9' }), 'bad-signature', 'a signed field changed: the version');
  const stranger = generateKeyPairSync('ed25519').publicKey;
  t.equal(refused(manifest, CTX, [stranger]), 'bad-signature', 'signed by a key not trusted');
  const moved = { ...manifest, url: 'https://elsewhere.example/x.tgz' };
  t.equal(refused(moved), 'ok', 'the URL is not signed: sha256 binds the bytes');
  t.equal(refused(manifest, { ...CTX, target: 'linux-armv7' }), 'wrong-target');
  t.equal(refused(manifest, { ...CTX, currentVersion: '1.1.0' }), 'downgrade', 'the same version is not newer');
  t.equal(refused(manifest, { ...CTX, currentVersion: '1.2.0' }), 'downgrade');
  const allowed = { ...CTX, currentVersion: '1.2.0', allowDowngrade: true } as typeof CTX;
  t.equal(refused(manifest, allowed), 'ok', 'unless allowed');
  t.equal(refused(manifest, { ...CTX, storeFormat: STORE_FORMAT + 1 } as typeof CTX), 'store-format');
  const wrong = verifyManifest(manifest, keys, { ...CTX, target: 'linux-armv7' });
  t.match(wrong, { message: 'the release is for linux-arm64, this gateway runs linux-armv7' });
});

t.test('key rotation: any one of several trusted keys accepts', async (t) => {
  const old = signedByScripts(t, '1.1.0', 'old');
  const next = signedByScripts(t, '1.2.0', 'new');
  const dir = tempDir(t);
  writeFileSync(join(dir, 'old.pem'), readFileSync(join(old.dir, 'old.pem')));
  writeFileSync(join(dir, 'new.pem'), readFileSync(join(next.dir, 'new.pem')));
  const keys = loadPublicKeys(dir);
  t.equal(keys.length, 2);
  t.same(verifyManifest(old.manifest, keys, CTX), { ok: true }, 'signed with the old key');
  t.same(verifyManifest(next.manifest, keys, CTX), { ok: true }, 'signed with the new key');
  const oldOnly = verifyManifest(next.manifest, loadPublicKeys(old.dir), CTX);
  t.match(oldOnly, { ok: false, reason: 'bad-signature' }, 'the old key alone refuses the new signature');
  writeFileSync(join(dir, 'junk.pem'), 'not a key');
  const named = new RegExp(`${join(dir, 'junk.pem')}: not a PEM public key`);
  t.throws(() => loadPublicKeys(dir), named, 'a bad key file is named');
});

t.test('parseManifest names the source and the field', async (t) => {
  const good = {
    version: '1.0.1',
    target: 'linux-x64',
    url: 'https://h/x',
    sha256: 'a'.repeat(64),
    bytes: 10,
    storeFormat: 1,
    signature: 'AA==',
  };
  t.same(parseManifest(JSON.stringify(good), 'f'), good);
  const unsigned = parseManifest({ ...good, signature: undefined }, 'f');
  t.equal(unsigned.signature, '', 'a missing signature parses, to be refused as unsigned');
  const cases: [Record<string, unknown> | string, RegExp][] = [
    ['{', /^twin: \(document\): is not JSON/],
    [{ ...good, version: '1.0' }, /^twin: version: must be a semver version like "1\.2\.3", got "1\.0"/],
    [{ ...good, version: 'x'.repeat(70) }, /^twin: version: /],
    [{ ...good, target: 'linux x64\n' }, /^twin: target: /],
    [{ ...good, sha256: 'A'.repeat(64) }, /^twin: sha256: must be 64 lowercase hex digits/],
    [{ ...good, bytes: -1 }, /^twin: bytes: must be an integer/],
    [{ ...good, bytes: 1.5 }, /^twin: bytes: /],
    [{ ...good, storeFormat: '1' }, /^twin: storeFormat: /],
    [{ ...good, url: 'file:///etc/passwd' }, /^twin: url: must be an http\(s\) URL/],
    [{ ...good, signature: 'not base64!' }, /^twin: signature: must be base64/],
    ['x'.repeat(20_000), /^twin: \(document\): is over 16384 bytes/],
  ];
  for (const [input, error] of cases) t.throws(() => parseManifest(input, 'twin'), error, String(error));
});

t.test('semver precedence', async (t) => {
  const ordered = [
    '0.9.9',
    '1.0.0-alpha',
    '1.0.0-alpha.1',
    '1.0.0-alpha.beta',
    '1.0.0-beta.2',
    '1.0.0-beta.11',
    '1.0.0-rc.1',
    '1.0.0',
    '1.0.1',
    '1.10.0',
  ];
  for (let i = 0; i + 1 < ordered.length; i++) {
    t.equal(compareVersions(ordered[i]!, ordered[i + 1]!), -1, `${ordered[i]} < ${ordered[i + 1]}`);
    t.equal(compareVersions(ordered[i + 1]!, ordered[i]!), 1);
  }
  t.equal(compareVersions('1.2.3', '1.2.3'), 0);
});
