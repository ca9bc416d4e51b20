// Signing of release tarballs for OTA updates: the manifest beside each tarball and the ed25519 signature
// over its canonical encoding. The encoding is defined in firmware/ota/manifest.ts (canonicalManifest); this
// is its one other implementation, for the release scripts that run without the TypeScript build, and
// test/scripts/ota-sign.test.ts verifies what it signs with the firmware's verifyManifest.
import { execFileSync } from 'node:child_process';
import { createHash, createPrivateKey, sign } from 'node:crypto';
import { createReadStream, readFileSync, writeFileSync } from 'node:fs';
import { basename } from 'node:path';

/** The manifest of `outpost-1.2.3-linux-arm64.tar.gz` is `outpost-1.2.3-linux-arm64.tar.gz.manifest.json`. */
export const MANIFEST_SUFFIX = '.manifest.json';

export function canonicalManifest(m) {
  const fields = ['version', 'target', 'sha256', 'bytes', 'storeFormat'];
  const lines = ['outpost-update-v1', ...fields.map((f) => `${f}=${m[f]}`)];
  return Buffer.from(`${lines.join('\n')}\n`, 'utf8');
}

/** Reads an ed25519 private key (PKCS#8 PEM, as scripts/ota-keygen.js writes it), naming the file on error. */
export function readSigningKey(file) {
  let key;
  try {
    key = createPrivateKey(readFileSync(file));
  } catch (err) {
    throw new Error(`${file}: not a PEM private key: ${err.message}`);
  }
  if (key.asymmetricKeyType !== 'ed25519') {
    throw new Error(`${file}: a ${key.asymmetricKeyType} key; OTA keys are ed25519`);
  }
  return key;
}

async function digest(file) {
  const hash = createHash('sha256');
  let bytes = 0;
  for await (const chunk of createReadStream(file)) {
    hash.update(chunk);
    bytes += chunk.length;
  }
  return { sha256: hash.digest('hex'), bytes };
}

/**
 * Writes `<tarball>.manifest.json`, signed with `key`. Version, target and ring log format come from the
 * tarball's own release.json, so a manifest can only describe what the tarball holds. `url` is where the
 * operator will serve it (optional: it is not signed, and the cloud side may set it per download).
 */
export async function signTarball(tarball, key, url = '') {
  const top = basename(tarball).replace(/\.tar\.gz$/, '');
  const release = JSON.parse(execFileSync('tar', ['-xzOf', tarball, `${top}/release.json`], { encoding: 'utf8' }));
  if (!Number.isInteger(release.storeFormat)) {
    throw new Error(`${tarball}: release.json has no storeFormat (built before OTA signing)`);
  }
  const { sha256, bytes } = await digest(tarball);
  const { version, target, storeFormat } = release;
  const manifest = { version, target, url, sha256, bytes, storeFormat };
  const signature = sign(null, canonicalManifest(manifest), key).toString('base64');
  const file = `${tarball}${MANIFEST_SUFFIX}`;
  writeFileSync(file, `${JSON.stringify({ ...manifest, signature }, null, 2)}\n`);
  return file;
}

/** The ring log format of the firmware being released (firmware/store/format.ts, read as text: no TS here). */
export function storeFormatOf(repo) {
  const match = /export const STORE_FORMAT = (\d+);/.exec(readFileSync(`${repo}/firmware/store/format.ts`, 'utf8'));
  if (!match) throw new Error(`${repo}/firmware/store/format.ts: no "export const STORE_FORMAT = <n>;"`);
  return Number(match[1]);
}
