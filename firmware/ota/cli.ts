import { existsSync, promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { ApplyError, applyRelease } from './apply.js';
import { releaseLayoutOf } from './health.js';
import { loadPublicKeys, ManifestError, OTA_KEYS_DIR, parseManifest, verifyManifest } from './manifest.js';
import { MANIFEST_SUFFIX } from './names.js';

export interface UpdateCliContext {
  /** The folder of the running bundle: its release.json says what runs, and where the slots are. */
  bundleDir: string;
  dataDir: string;
  /** ota.updateHealthSecs of the installed board. */
  healthSecs: number;
  /** Trusted public keys; /etc/outpost/ota-keys unless OUTPOST_OTA_KEYS_DIR says otherwise. */
  keysDir?: string;
  out: (line: string) => void;
  err: (line: string) => void;
}

const USAGE = 'usage: outpost update [--manifest FILE] [--allow-downgrade] TARBALL   (then: systemctl restart outpost)';

/**
 * `outpost update <tarball>`: a technician's update from a USB stick, through the same checks and switch as
 * an update from the cloud (verifyManifest, applyRelease). The manifest is `<tarball>.manifest.json` unless
 * named. It only switches: the restart (`systemctl restart outpost`) starts the new release under the
 * launcher, which commits it after its health check or rolls it back. Exit 0 switched, 1 refused or failed,
 * 2 usage.
 */
export async function runUpdateCli(args: string[], ctx: UpdateCliContext): Promise<number> {
  const allowDowngrade = args.includes('--allow-downgrade');
  const at = args.indexOf('--manifest');
  const manifestFile = at >= 0 ? args[at + 1] : undefined;
  const rest = args.filter((a, i) => a !== '--allow-downgrade' && (at < 0 || (i !== at && i !== at + 1)));
  if (rest.length !== 1 || rest[0]!.startsWith('-')) return (ctx.err(USAGE), 2);
  const tarball = rest[0]!;
  const layout = releaseLayoutOf(ctx.bundleDir, ctx.dataDir);
  if (layout === null) {
    ctx.err(
      `outpost update: this outpost runs from ${ctx.bundleDir}, not from a release slot (install it with ` +
        'install.sh)',
    );
    return 1;
  }
  try {
    const file = manifestFile ?? `${tarball}${MANIFEST_SUFFIX}`;
    if (!existsSync(file)) {
      throw new ManifestError(file, '(document)', 'not found: a signed release has its manifest beside it');
    }
    const manifest = parseManifest(await fsp.readFile(file, 'utf8'), file);
    const releaseJson = await fsp.readFile(join(ctx.bundleDir, 'release.json'), 'utf8');
    const running = JSON.parse(releaseJson) as { version: string; target: string };
    const keys = loadPublicKeys(ctx.keysDir ?? OTA_KEYS_DIR);
    const context = { currentVersion: running.version, target: running.target, allowDowngrade };
    const verdict = verifyManifest(manifest, keys, context);
    if (!verdict.ok) return (ctx.err(`outpost update: refused (${verdict.reason}): ${verdict.message}`), 1);
    // Run as root, the new slot and the OTA state still belong to the service, which prunes and commits them.
    const owner = process.getuid?.() === 0 ? await fsp.stat(layout.releasesDir) : undefined;
    const applied = await applyRelease(tarball, manifest, layout, { healthSecs: ctx.healthSecs, owner });
    ctx.out(
      `outpost update: switched to ${applied.version} (previous ${applied.previous ?? 'none'}); ` +
        `restart the service (systemctl restart outpost): it commits after ${ctx.healthSecs} s of health or rolls back`,
    );
    return 0;
  } catch (err) {
    if (err instanceof ApplyError) return (ctx.err(`outpost update: refused (${err.reason}): ${err.message}`), 1);
    if (err instanceof ManifestError) return (ctx.err(`outpost update: refused (malformed): ${err.message}`), 1);
    throw err;
  }
}
