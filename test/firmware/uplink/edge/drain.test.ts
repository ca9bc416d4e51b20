import t from 'tap';
import { setTimeout as sleep } from 'node:timers/promises';
import { RingLog } from '../../../../firmware/store/log.js';
import { createAzureTransport } from '../../../../firmware/uplink/azure.js';
import { DEAD_LETTER_LANE_NAME } from '../../../../firmware/uplink/dead-letter.js';
import { EdgeUplink, HELD_LANE_NAME } from '../../../../firmware/uplink/edge/index.js';
import { RECORD_KEY } from '../../../../firmware/uplink/message.js';
import { Pump } from '../../../../firmware/uplink/pump.js';
import { systemClock } from '../../../../firmware/clock.js';
import { IotHubEmulator } from '../../../support/iothub-emulator.js';
import { tempDir } from '../../../support/tmp.js';

async function until(what: string, check: () => boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

t.test('offline backlog of three children goes up on their own connections, in order per child', async (t) => {
  const hub = await IotHubEmulator.start();
  t.teardown(() => hub.stop());
  const log = await RingLog.open({ dir: tempDir(t), ttlSecs: 0 });
  t.teardown(() => log.close());
  const upstream = await log.lane('upstream');
  const children = ['c1', 'c2', 'c3'];
  const strings = new Map(children.map((id) => [id, hub.addDevice(id)]));
  const perChild = 200;
  for (let i = 0; i < perChild * 4; i += 1) {
    const who = i % 4 === 3 ? 'gw' : children[i % 4]!;
    await upstream.append({ body: Buffer.from(String(i)), properties: { [RECORD_KEY.deviceId]: who } });
  }
  const edge = new EdgeUplink({
    gatewayId: 'gw', credentials: { hostName: hub.hostName, gatewayId: 'gw', key: '' }, clock: systemClock,
    heldLane: await log.lane(HELD_LANE_NAME), storeNowMs: () => log.storeNowMs(),
    connectTimeoutMs: 5_000, publishTimeoutMs: 5_000, reportError: () => {},
    createLink: (identity) => ({
      identity,
      transport: createAzureTransport({ connectionString: strings.get(identity) ?? `HostName=${hub.hostName};DeviceId=${identity};SharedAccessKey=AAAA`, ca: hub.ca.cert }),
      tokenExpiresAtWallMs: () => 0,
      tokenIssuedAtWallMs: () => 0,
    }),
  });
  t.teardown(() => edge.close());
  const gateway = createAzureTransport({ connectionString: hub.addDevice('gw'), ca: hub.ca.cert });
  const pump = new Pump({
    gatewayId: 'gw', transport: gateway, lanes: [{ lane: upstream }], createSession: edge.createSession,
    deadLetterLane: await log.lane(DEAD_LETTER_LANE_NAME), backoff: { baseMs: 50, maxMs: 200 },
  });
  pump.start();
  t.teardown(() => pump.stop());
  await until('all telemetry', () => hub.telemetry.length >= perChild * 4);
  for (const id of [...children, 'gw']) {
    const bodies = hub.telemetry.filter((r) => r.deviceId === id).map((r) => Number(r.body.toString()));
    t.equal(bodies.length, perChild, `${id}: every message, on its own connection`);
    t.same(bodies, [...bodies].sort((a, b) => a - b), `${id}: in stored order`);
  }
  await until('the cursor at the end', () => upstream.ackedSeq() === upstream.lastDurableSeq());
});

t.test('a child IoT Hub refuses is dead-lettered; the others are not held back', async (t) => {
  const hub = await IotHubEmulator.start();
  t.teardown(() => hub.stop());
  const log = await RingLog.open({ dir: tempDir(t), ttlSecs: 0 });
  t.teardown(() => log.close());
  const upstream = await log.lane('upstream');
  const strings = new Map(['c1', 'c2'].map((id) => [id, hub.addDevice(id)]));
  const who = ['gone', 'c1', 'c2'];
  for (let i = 0; i < 300; i += 1) {
    await upstream.append({ body: Buffer.from(String(i)), properties: { [RECORD_KEY.deviceId]: who[i % 3]! } });
  }
  const errors: string[] = [];
  const edge = new EdgeUplink({
    gatewayId: 'gw', credentials: { hostName: hub.hostName, gatewayId: 'gw', key: '' }, clock: systemClock,
    heldLane: await log.lane(HELD_LANE_NAME), storeNowMs: () => log.storeNowMs(),
    connectTimeoutMs: 5_000, publishTimeoutMs: 5_000, reportError: (err) => errors.push(err.message),
    backoff: { baseMs: 20, maxMs: 50 },
    createLink: (identity) => ({
      identity,
      transport: createAzureTransport({ connectionString: strings.get(identity) ?? `HostName=${hub.hostName};DeviceId=${identity};SharedAccessKey=AAAA`, ca: hub.ca.cert }),
      tokenExpiresAtWallMs: () => 0,
      tokenIssuedAtWallMs: () => 0,
    }),
  });
  t.teardown(() => edge.close());
  const dead = await log.lane(DEAD_LETTER_LANE_NAME);
  const gateway = createAzureTransport({ connectionString: hub.addDevice('gw'), ca: hub.ca.cert });
  const pump = new Pump({
    gatewayId: 'gw', transport: gateway, lanes: [{ lane: upstream }], createSession: edge.createSession,
    deadLetterLane: dead, backoff: { baseMs: 50, maxMs: 200 },
  });
  pump.start();
  t.teardown(() => pump.stop());
  await until('the others delivered', () => hub.telemetry.length >= 200);
  await until('the cursor at the end', () => upstream.ackedSeq() === upstream.lastDurableSeq());
  await until('every refused record dead-lettered', () => dead.lastDurableSeq() >= 100);
  const letters = await dead.read(1, { recordsMax: 1000 });
  t.equal(letters.length, 100, 'all of the refused child\'s records');
  t.same(new Set(letters.map((r) => r.properties.$deadLetterReason)), new Set(['identity-refused']));
  t.same(new Set(letters.map((r) => r.properties[RECORD_KEY.deviceId])), new Set(['gone']));
  t.equal(pump.status().deadLetters.byReason['identity-refused'], 100, 'counted in the status');
  t.same(edge.status().refused, ['gone']);
  t.ok(errors.some((e) => /IoT Hub refuses "gone"/.test(e)), 'reported');
});
