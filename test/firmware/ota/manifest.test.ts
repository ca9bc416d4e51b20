import { spawnSync } from 'node:child_process';
import { generateKeyPairSync, type KeyObject } from 'node:crypto';
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { canonicalManifest, loadPublicKeys, parseManifest, verifyManifest, type UpdateManifest } from '../../../firmware/ota/manifest.js';
import { compareVersions } from '../../../firmware/ota/version.js';
import { STORE_FORMAT } from '../../../firmware/store/format.js';
import { tempDir } from '../../support/tmp.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const CTX = { currentVersion: '1.0.0', target: 'linux-arm64' };

/** A signed manifest made by the release scripts themselves (scripts/pack/sign.js), for a tiny tarball. */
function signedByScripts(t: Parameters<typeof tempDir>[0], version: string, keyName = 'ota'): { manifest: UpdateManifest; dir: string } {
  const dir = tempDir(t);
  const keygen = spawnSync(process.execPath, [join(ROOT, 'scripts/ota-keygen.js'), join(dir, keyName)], { encoding: 'utf8' });
  if (keygen.status !== 0) throw new Error(keygen.stderr);
  const top = `outpost-${version}-linux-arm64`;
  mkdirSync(join(dir, top));
  writeFileSync(join(dir, top, 'release.json'), JSON.stringify({ version, target: 'linux-arm64', storeFormat: STORE_FORMAT }));
  const tarball = join(dir, `${top}.tar.gz`);
  spawnSync('tar', ['-C', dir, '-czf', tarball, top]);
  const sign = spawnSync(process.execPath, [join(ROOT, 'scripts/ota-sign.js'), '--sign-key', join(dir, `${keyName}.key`), tarball], { encoding: 'utf8' });
  if (sign.status !== 0) throw new Error(sign.stderr);
  return { manifest: parseManifest(readFileSync(`${tarball}.manifest.json`, 'utf8'), 'test'), dir };
}

t.test('what the release scripts sign, the firmware verifies: one canonical encoding in both', async (t) => {
  const { manifest, dir } = signedByScripts(t, '1.1.0');
  t.equal(statSync(join(dir, 'ota.key')).mode & 0o777, 0o600, 'the private key is 0600');
  const keys = loadPublicKeys(dir);
  t.same(verifyManifest(manifest, keys, CTX), { ok: true });
  t.equal(canonicalManifest(manifest).toString(), `outpost-update-v1\nversion=1.1.0\ntarget=linux-arm64\nsha256=${manifest.sha256}\n` +
    `bytes=${manifest.bytes}\nstoreFormat=${STORE_FORMAT}\n`);
  const again = spawnSync(process.execPath, [join(ROOT, 'scripts/ota-keygen.js'), join(dir, 'ota')], { encoding: 'utf8' });
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
  t.equal(refused(manifest, CTX, [generateKeyPairSync('ed25519').publicKey]), 'bad-signature', 'signed by a key not trusted');
  t.equal(refused({ ...manifest, url: 'https://elsewhere.example/x.tgz' }), 'ok', 'the URL is not signed: sha256 binds the bytes');
  t.equal(refused(manifest, { ...CTX, target: 'linux-armv7' }), 'wrong-target');
  t.equal(refused(manifest, { ...CTX, currentVersion: '1.1.0' }), 'downgrade', 'the same version is not newer');
  t.equal(refused(manifest, { ...CTX, currentVersion: '1.2.0' }), 'downgrade');
  t.equal(refused(manifest, { ...CTX, currentVersion: '1.2.0', allowDowngrade: true } as typeof CTX), 'ok', 'unless allowed');
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
  t.match(verifyManifest(next.manifest, loadPublicKeys(old.dir), CTX), { ok: false, reason: 'bad-signature' }, 'the new key alone is not the old');
  writeFileSync(join(dir, 'junk.pem'), 'not a key');
  t.throws(() => loadPublicKeys(dir), new RegExp(`${join(dir, 'junk.pem')}: not a PEM public key`), 'a bad key file is named');
});

t.test('parseManifest names the source and the field', async (t) => {
  const good = { version: '1.0.1', target: 'linux-x64', url: 'https://h/x', sha256: 'a'.repeat(64), bytes: 10, storeFormat: 1, signature: 'AA==' };
  t.same(parseManifest(JSON.stringify(good), 'f'), good);
  t.equal(parseManifest({ ...good, signature: undefined }, 'f').signature, '', 'a missing signature parses, to be refused as unsigned');
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
  for (const [input, error] of cases) t.throws(() => parseManifest(typeof input === 'string' ? input : input, 'twin'), error, String(error));
});

t.test('semver precedence', async (t) => {
  const ordered = ['0.9.9', '1.0.0-alpha', '1.0.0-alpha.1', '1.0.0-alpha.beta', '1.0.0-beta.2', '1.0.0-beta.11', '1.0.0-rc.1', '1.0.0', '1.0.1', '1.10.0'];
  for (let i = 0; i + 1 < ordered.length; i++) {
    t.equal(compareVersions(ordered[i]!, ordered[i + 1]!), -1, `${ordered[i]} < ${ordered[i + 1]}`);
    t.equal(compareVersions(ordered[i + 1]!, ordered[i]!), 1);
  }
  t.equal(compareVersions('1.2.3', '1.2.3'), 0);
});
