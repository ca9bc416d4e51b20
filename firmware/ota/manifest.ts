import { createPublicKey, verify, type KeyObject } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { STORE_FORMAT } from '../store/format.js';
import { chunkSourceProblem, type ChunkSource } from './chunks.js';
import { compareVersions, isVersion } from './version.js';

/**
 * What the cloud (twin desired `outpostUpdate`, retained `outpost/<gatewayId>/update`) or a technician's USB
 * stick (`<tarball>.manifest.json` beside the tarball) says about one release tarball of `npm run release`.
 */
export interface UpdateManifest {
  /** The release's version (package.json's), semver `MAJOR.MINOR.PATCH[-PRE]`. */
  version: string;
  /** The release's target (`linux-arm64`, `linux-armv7`, `linux-x64`): the tarball holds native code. */
  target: string;
  /** Where to download the tarball (https). Not signed: a SAS URL changes and expires; sha256 binds the bytes. */
  url: string;
  /** Lowercase hex SHA-256 of the tarball. */
  sha256: string;
  /** Size of the tarball in bytes. */
  bytes: number;
  /** The ring log format the release reads and writes (firmware/store/format.ts). */
  storeFormat: number;
  /** Base64 ed25519 signature of `canonicalManifest(manifest)`; '' when unsigned. */
  signature: string;
  /** mqtt uplinks: the artifact as retained chunks at the uplink's broker (firmware/ota/chunks.ts), not signed. */
  chunks?: ChunkSource;
}

/** Why an update is not applied; reported as-is (twin reported, status topic, `outpost status`, metrics). */
export type RefusalReason =
  'malformed' | 'unsigned' | 'bad-signature' | 'wrong-target' | 'downgrade' | 'store-format' | 'wrong-hash';

export type Verdict = { ok: true } | { ok: false; reason: RefusalReason; message: string };

export interface VerifyContext {
  /** The running release's version. */
  currentVersion: string;
  /** The running release's target. */
  target: string;
  /** Accept a version that is not newer than the running one (an operator's deliberate step back). */
  allowDowngrade?: boolean;
  /** The running ring log format; defaults to this build's. */
  storeFormat?: number;
}

export class ManifestError extends Error {
  readonly reason = 'malformed' as const;
  constructor(
    readonly source: string,
    readonly field: string,
    message: string,
  ) {
    super(`${source}: ${field}: ${message}`);
  }
}

/** A manifest larger than this is not one: the fields above fit in well under 1 KiB, with a long SAS URL. */
export const MANIFEST_BYTES_MAX = 16 * 1024;
/** A release tarball is 30-45 MB; anything past this is a mistake or an attack on the disk budget. */
export const RELEASE_BYTES_MAX = 512 * 2 ** 20;
const SIGNED_FIELDS = ['version', 'target', 'sha256', 'bytes', 'storeFormat'] as const;

/**
 * The exact bytes that are signed, UTF-8:
 *
 *     outpost-update-v1\n
 *     version=<version>\n
 *     target=<target>\n
 *     sha256=<64 lowercase hex digits>\n
 *     bytes=<decimal integer, no sign, no leading zeros>\n
 *     storeFormat=<decimal integer>\n
 *
 * One field per line in this fixed order, no other whitespace. The values are what parseManifest accepts,
 * which never contain a newline or '=' ambiguity (version and target are checked against strict patterns), so
 * no two manifests share an encoding. The first line names the scheme so a signature can never be replayed
 * as one over some other outpost document. `url` (and `chunks`) is left out on purpose: the same signed release may be
 * served from any URL (a blob SAS URL is made per download), and sha256 + bytes bind what is fetched.
 */
export function canonicalManifest(m: Omit<UpdateManifest, 'url' | 'signature'>): Buffer {
  const lines = ['outpost-update-v1', ...SIGNED_FIELDS.map((f) => `${f}=${String(m[f])}`)];
  return Buffer.from(`${lines.join('\n')}\n`, 'utf8');
}

const TARGET_PATTERN = /^linux-[a-z0-9]{2,16}$/;
const SHA256_PATTERN = /^[0-9a-f]{64}$/;
const BASE64_PATTERN = /^[A-Za-z0-9+/]*={0,2}$/;

const isString = (v: unknown): v is string => typeof v === 'string';
const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
const isUrl = (v: unknown) => v === undefined || v === '' || (isString(v) && /^https?:\/\//.test(v));

/** Each field's check and what it must be, as the error says it. */
const FIELDS: Record<Exclude<keyof UpdateManifest, 'chunks'>, [(v: unknown) => boolean, string]> = {
  version: [(v) => isString(v) && isVersion(v), 'a semver version like "1.2.3"'],
  target: [(v) => isString(v) && TARGET_PATTERN.test(v), 'a target like "linux-arm64"'],
  url: [isUrl, 'an http(s) URL'],
  sha256: [(v) => isString(v) && SHA256_PATTERN.test(v), '64 lowercase hex digits'],
  bytes: [(v) => isCount(v) && v > 0 && v <= RELEASE_BYTES_MAX, `an integer 1..${RELEASE_BYTES_MAX}`],
  storeFormat: [(v) => isCount(v) && v >= 1, 'an integer >= 1'],
  signature: [(v) => v === undefined || (isString(v) && BASE64_PATTERN.test(v)), 'base64'],
};

/**
 * Parses a manifest from JSON text or an already-parsed value (a twin's desired property). `source` names
 * where it came from (a file path, `twin desired outpostUpdate`) and leads every error, with the field.
 * A missing `signature` parses (as '') so that verifyManifest can refuse it as `unsigned`, not `malformed`.
 */
export function parseManifest(json: string | unknown, source: string): UpdateManifest {
  if (typeof json === 'string' && Buffer.byteLength(json) > MANIFEST_BYTES_MAX) {
    throw new ManifestError(source, '(document)', `is over ${MANIFEST_BYTES_MAX} bytes`);
  }
  let value: unknown = json;
  if (typeof json === 'string') {
    try {
      value = JSON.parse(json);
    } catch (err) {
      throw new ManifestError(source, '(document)', `is not JSON: ${(err as Error).message}`);
    }
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ManifestError(source, '(document)', 'must be a JSON object');
  }
  const obj = value as Record<string, unknown>;
  for (const [name, [check, what]] of Object.entries(FIELDS)) {
    const v = obj[name];
    if (!check(v)) throw new ManifestError(source, name, `must be ${what}, got ${JSON.stringify(v) ?? 'nothing'}`);
  }
  const m = obj as unknown as UpdateManifest;
  const chunksProblem = chunkSourceProblem(m.chunks, m.bytes);
  if (chunksProblem !== null) throw new ManifestError(source, 'chunks', chunksProblem);
  return {
    version: m.version,
    target: m.target,
    url: m.url ?? '',
    sha256: m.sha256,
    bytes: m.bytes,
    storeFormat: m.storeFormat,
    signature: m.signature ?? '',
    ...(m.chunks === undefined ? {} : { chunks: pickChunks(m.chunks) }),
  };
}

/**
 * Checks, in this order, that the manifest is signed (`unsigned`), by one of `publicKeys` (`bad-signature`;
 * several keys are a rotation: any one valid signature accepts), for this target (`wrong-target`), newer than
 * the running release unless allowed (`downgrade`: an equal version is not newer), and for the same ring log
 * format (`store-format`: no release so far migrates the log, so a format change is refused rather than
 * risking a rollback onto a log the old release cannot read). The signature comes first so that nothing an
 * unauthenticated manifest says is trusted, even to choose the reason.
 */
export function verifyManifest(
  manifest: UpdateManifest,
  publicKeys: readonly KeyObject[],
  ctx: VerifyContext,
): Verdict {
  if (manifest.signature === '') return refuse('unsigned', 'the manifest has no signature');
  const signature = Buffer.from(manifest.signature, 'base64');
  const message = canonicalManifest(manifest);
  if (!publicKeys.some((key) => verify(null, message, key, signature))) {
    return refuse('bad-signature', `the signature matches none of the ${publicKeys.length} trusted key(s)`);
  }
  if (manifest.target !== ctx.target) {
    return refuse('wrong-target', `the release is for ${manifest.target}, this gateway runs ${ctx.target}`);
  }
  if (!ctx.allowDowngrade && compareVersions(manifest.version, ctx.currentVersion) <= 0) {
    return refuse('downgrade', `${manifest.version} is not newer than the running ${ctx.currentVersion}`);
  }
  const current = ctx.storeFormat ?? STORE_FORMAT;
  if (manifest.storeFormat !== current) {
    return refuse(
      'store-format',
      `the release uses ring log format ${manifest.storeFormat}, this gateway's log is ` +
        `format ${current}, and no migration exists`,
    );
  }
  return { ok: true };
}

/** Only the chunk fields: whatever else the document carries is not kept in the update's state. */
function pickChunks(c: ChunkSource): ChunkSource {
  return { topic: c.topic, size: c.size, count: c.count };
}

function refuse(reason: RefusalReason, message: string): Verdict {
  return { ok: false, reason, message };
}

/** Where install.sh puts the trusted public keys (PEM SPKI, one per `*.pem` file). */
export const OTA_KEYS_DIR = '/etc/outpost/ota-keys';

/**
 * Reads every `*.pem` in `dir` as an ed25519 public key. A file that is not one is an error naming it: a
 * gateway that silently trusted fewer keys than its operator installed would refuse a rotated release.
 */
export function loadPublicKeys(dir: string = OTA_KEYS_DIR): KeyObject[] {
  const files = readdirSync(dir)
    .filter((f) => f.endsWith('.pem'))
    .sort();
  return files.map((f) => {
    const file = join(dir, f);
    let key: KeyObject;
    try {
      key = createPublicKey(readFileSync(file));
    } catch (err) {
      throw new Error(`${file}: not a PEM public key: ${(err as Error).message}`, { cause: err });
    }
    if (key.asymmetricKeyType !== 'ed25519') {
      throw new Error(`${file}: a ${key.asymmetricKeyType} key; OTA keys are ed25519`);
    }
    return key;
  });
}
