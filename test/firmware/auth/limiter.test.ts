import t, { type Test } from 'tap';
import net from 'node:net';
import path from 'node:path';
import { MqttClient } from 'mqtt';
import { ManualClock } from '../../support/manual-clock.js';
import { startHub } from '../../../firmware/hub/index.js';
import { RingLog } from '../../../firmware/store/log.js';
import { publishScope } from '../../../firmware/ops/scope-cli.js';
import { AedesBroker } from '../../support/brokers.js';
import { HUB_HOST, newKey, sasPassword, scopeDocument } from '../../support/hub-fixture.js';
import { tempDir } from '../../support/tmp.js';

/**
 * The failed-auth limiter against a running hub, children coming from different loopback addresses
 * (127.0.0.x are all this machine): nobody can lock a device out with its client id, an address that keeps
 * failing backs off instead of being blocked, and siblings behind one address do not lock each other out.
 */

const keyA = newKey();
const keyB = newKey();
const FAILURES_MAX = 3;
const WINDOW_SECS = 60;

async function setup(t: Test) {
  const dir = tempDir(t, 'outpost-limiter-');
  const broker = await AedesBroker.start();
  t.teardown(() => broker.stop());
  const log = await RingLog.open({ dir: path.join(dir, 'log') });
  t.teardown(() => log.close());
  await publishScope(
    { url: broker.url },
    'gw-1',
    scopeDocument('gw-1', 1, [
      { deviceId: 'child-a', key: keyA },
      { deviceId: 'child-b', key: keyB },
      { deviceId: 'child-c', key: keyA },
    ]),
  );
  // The limiter runs on the monotonic clock; the wall clock must stay real for the SAS expiry.
  const clock = new ManualClock({ wallMs: Date.now() });
  const hub = await startHub({
    config: {
      hub: { tcp: { port: 0 }, tls: false, authFailuresMax: FAILURES_MAX, authFailureWindowSecs: WINDOW_SECS },
    },
    gatewayId: 'gw-1',
    log,
    dataDir: path.join(dir, 'data'),
    scopeBroker: { url: broker.url },
    clock,
  });
  t.teardown(() => hub.stop());
  await hub.refreshIdentities();
  return { hub, clock, port: hub.status().ports.tcp! };
}

/** Connects from `localAddress`; resolves true once CONNACKed, false when refused. */
async function connectFrom(port: number, localAddress: string, deviceId: string, password: string): Promise<boolean> {
  const client = new MqttClient(() => net.createConnection({ port, host: '127.0.0.1', localAddress }), {
    clientId: deviceId,
    username: `${HUB_HOST}/${deviceId}/?api-version=2021-04-12`,
    password,
    protocolVersion: 4,
    reconnectPeriod: 0,
    connectTimeout: 5_000,
  });
  const accepted = await new Promise<boolean>((resolve) => {
    client.once('connect', () => resolve(true));
    client.once('error', () => resolve(false));
    client.once('close', () => resolve(false));
  });
  await client.endAsync(true);
  return accepted;
}

t.test("bad CONNECTs with a victim's client id from other addresses do not lock the victim out", async (t) => {
  const { hub, port } = await setup(t);
  for (let i = 0; i < FAILURES_MAX + 3; i += 1) {
    t.notOk(await connectFrom(port, '127.0.0.2', 'child-a', sasPassword('child-a', keyB)), `forged attempt ${i + 1}`);
  }
  t.ok(hub.status().refusals['rate-limited']! >= 1, 'the attacking (client id, address) pair is rate-limited');
  t.ok(
    await connectFrom(port, '127.0.0.1', 'child-a', sasPassword('child-a', keyA)),
    'the real device with a valid token connects',
  );
});

t.test('an address that keeps failing backs off (1 s, doubling); a sibling known there is let through', async (t) => {
  const { hub, clock, port } = await setup(t);
  t.ok(
    await connectFrom(port, '127.0.0.3', 'child-b', sasPassword('child-b', keyB)),
    'child-b connects from the shared address',
  );
  for (let i = 0; i < FAILURES_MAX + 1; i += 1) {
    t.notOk(
      await connectFrom(port, '127.0.0.3', `ghost-${i}`, sasPassword(`ghost-${i}`, keyA)),
      `spray ${i + 1} (random ids)`,
    );
  }
  const limitedBefore = hub.status().refusals['rate-limited'] ?? 0;
  t.notOk(
    await connectFrom(port, '127.0.0.3', 'child-a', sasPassword('child-a', keyA)),
    'a new child from that address waits out the backoff',
  );
  t.equal(hub.status().refusals['rate-limited'], limitedBefore + 1, 'refused as rate-limited, not checked');
  t.ok(
    await connectFrom(port, '127.0.0.3', 'child-b', sasPassword('child-b', keyB)),
    'child-b, known from that address, is not held back',
  );
  t.ok(
    await connectFrom(port, '127.0.0.4', 'child-a', sasPassword('child-a', keyA)),
    'other addresses are not affected',
  );
  clock.advance(1_000);
  t.ok(
    await connectFrom(port, '127.0.0.3', 'child-a', sasPassword('child-a', keyA)),
    'after 1 s (not the whole window) the new child connects',
  );
  t.notOk(await connectFrom(port, '127.0.0.3', 'ghost-x', sasPassword('ghost-x', keyA)), 'one more failure');
  clock.advance(1_000);
  t.notOk(
    await connectFrom(port, '127.0.0.3', 'child-c', sasPassword('child-c', keyA)),
    'the next wait is 2 s: still waiting after 1 s',
  );
  clock.advance(1_000);
  t.ok(await connectFrom(port, '127.0.0.3', 'child-c', sasPassword('child-c', keyA)), 'through after 2 s');
});
