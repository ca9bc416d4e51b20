import { mkdtempSync, rmSync } from 'node:fs';
import { warningsOf } from '../../support/warnings.js';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { systemClock } from '../../../firmware/clock.js';
import { ConfigError } from '../../../firmware/config/errors.js';
import { DEPRECATED_FIELD_WARNING, parseUplinkConfig } from '../../../firmware/uplink/config.js';
import { CloudSettingsManager } from '../../../firmware/uplink/settings.js';

/**
 * The bandwidth cap is `bytesPerSecMax` (units last); its old name `maxBytesPerSec` is still read, with a
 * warning naming the file (or source) and the field, and both names at once are an error naming both.
 */

const BOARD = '/etc/outpost/board.json';
const mqtt = (fields: Record<string, unknown>) => ({ protocol: 'mqtt', url: 'mqtt://localhost:1883', ...fields });
/** The cap of a parsed mqtt uplink. */
const capOf = (config: ReturnType<typeof parseUplinkConfig>) =>
  config.protocol === 'mqtt' ? config.bytesPerSecMax : NaN;

t.test('board.json: bytesPerSecMax, the deprecated maxBytesPerSec with a warning, both refused', async (t) => {
  t.equal(capOf(parseUplinkConfig(mqtt({ bytesPerSecMax: 4096 }), BOARD)), 4096, 'the new name');
  t.same(await warningsOf(() => parseUplinkConfig(mqtt({ bytesPerSecMax: 4096 }), BOARD)), [], 'no warning');

  let parsed: ReturnType<typeof parseUplinkConfig> | null = null;
  const warnings = await warningsOf(() => (parsed = parseUplinkConfig(mqtt({ maxBytesPerSec: 2048 }), BOARD)));
  t.equal(capOf(parsed!), 2048, 'the old name still sets the cap');
  t.equal(warnings.length, 1, 'one warning');
  t.equal((warnings[0] as NodeJS.ErrnoException).code, DEPRECATED_FIELD_WARNING);
  t.match(warnings[0]!.message, `${BOARD}: $.uplink.maxBytesPerSec is deprecated: name it bytesPerSecMax`);

  const both = () => parseUplinkConfig(mqtt({ bytesPerSecMax: 1, maxBytesPerSec: 2 }), BOARD);
  t.throws(both, ConfigError, 'both names: refused');
  t.throws(both, { message: /\$\.uplink\.bytesPerSecMax and \$\.uplink\.maxBytesPerSec/ }, 'the error names both');
  t.throws(both, { message: new RegExp(`^${BOARD}: `) }, 'and the file');
  t.throws(() => parseUplinkConfig(mqtt({ maxBytesPerSec: -1 }), BOARD), { message: /\$\.uplink\.maxBytesPerSec/ });
});

function settings(t: { teardown(fn: () => void): void }) {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'outpost-alias-'));
  t.teardown(() => rmSync(dataDir, { recursive: true, force: true }));
  const caps: number[] = [];
  const errors: Error[] = [];
  const manager = new CloudSettingsManager({
    dataDir,
    baseline: { ttlSecs: 3600, quotaBytes: 1 << 20, bytesPerSecMax: 0 },
    target: { applyStore: () => {}, setBytesPerSecMax: (n) => void caps.push(n) },
    clock: systemClock,
    onError: (err) => void errors.push(err),
  });
  return { manager, caps, errors };
}

t.test('settings documents and twin patches: the old name applies with a warning; both are refused', async (t) => {
  const { manager, caps, errors } = settings(t);
  t.ok(manager.fromConfigMessage(Buffer.from('{"maxBytesPerSec":1000}'), 'mqtt:cfg/gw'), 'accepted');
  t.equal(caps.at(-1), 1000, 'the cap applies');
  t.same(manager.status().overrides, { bytesPerSecMax: 1000 }, 'kept under its new name');
  t.match(errors.at(-1)?.message, 'cloud settings from mqtt:cfg/gw: "maxBytesPerSec" is deprecated');

  const both = Buffer.from('{"maxBytesPerSec":1,"bytesPerSecMax":2}');
  t.notOk(manager.fromConfigMessage(both, 'mqtt:cfg/gw'), 'both names: refused');
  t.match(manager.status().lastRefusal?.reason, 'both "bytesPerSecMax" and "maxBytesPerSec" given');
  t.equal(caps.at(-1), 1000, 'the refused document changed nothing');

  t.ok(manager.fromTwinPatch({ maxBytesPerSec: 3000 }), 'a desired patch with the old name');
  t.equal(caps.at(-1), 3000);
  t.match(errors.at(-1)?.message, 'cloud settings from twin: "maxBytesPerSec" is deprecated');
  t.ok(manager.fromTwinPatch({ maxBytesPerSec: null }), 'null under the old name removes the override');
  t.same(manager.status().overrides, {});
  t.equal(caps.at(-1), 0, 'back to the board');
  t.notOk(manager.fromTwinDesired({ maxBytesPerSec: 1, bytesPerSecMax: 2, $version: 3 }), 'both in the twin');
  await manager.flush();
});
