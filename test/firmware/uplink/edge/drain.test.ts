import t from 'tap';
import { RECORD_KEY } from '../../../../firmware/uplink/message.js';
import { bodiesOf, edgeRig, until } from '../../../support/edge-rig.js';

/**
 * Edge mode's drain on the real ring log, the real SDK and the IoT Hub emulator: each record goes out on its
 * identity's own connection, in stored order per identity, and an identity that cannot be reached holds
 * nobody else back.
 */

t.test('offline backlog of three children goes up on their own connections, in order per child', async (t) => {
  const children = ['c1', 'c2', 'c3'];
  const rig = await edgeRig(t, { children });
  const perChild = 200;
  await rig.append(Array.from({ length: perChild * 4 }, (_, i) => (i % 4 === 3 ? 'gw' : children[i % 4]!)));
  rig.start();
  await until('all telemetry', () => rig.hub.telemetry.length >= perChild * 4);
  for (const id of [...children, 'gw']) {
    const bodies = bodiesOf(rig.hub, id);
    t.equal(bodies.length, perChild, `${id}: every message, on its own connection`);
    t.same(
      bodies,
      [...bodies].sort((a, b) => a - b),
      `${id}: in stored order`,
    );
  }
  for (const id of children) {
    const first = rig.hub.telemetryOf(id)[0]!;
    t.equal(first.systemProperties['iothub-connection-device-id'], id, `${id}: IoT Hub stamps the child's own id`);
    t.equal(first.authMethod, 'on-behalf-of', `${id}: authenticated on its behalf`);
    t.equal(first.actorDeviceId, 'gw', `${id}: by the gateway's $edgeHub`);
  }
  t.equal(rig.hub.telemetryOf('gw')[0]!.authMethod, 'sas', "the gateway's own records go up as the gateway");
  await until('the cursor at the end', () => rig.upstream.ackedSeq() === rig.upstream.lastDurableSeq());
  t.equal(rig.held.lastDurableSeq(), 0, 'nobody was parked');
});

t.test('a child deleted in the registry while offline is dead-lettered; the others are not held back', async (t) => {
  const rig = await edgeRig(t, { children: ['c1', 'c2', 'gone'] });
  rig.hub.deleteDevice('gone');
  const who = ['gone', 'c1', 'c2'];
  await rig.append(Array.from({ length: 300 }, (_, i) => who[i % 3]!));
  rig.start();
  await until('the others delivered', () => rig.hub.telemetry.length >= 200);
  await until('the cursor at the end', () => rig.upstream.ackedSeq() === rig.upstream.lastDurableSeq());
  await until('every refused record dead-lettered', () => rig.dead.lastDurableSeq() >= 100);
  const letters = await rig.dead.read(1, { recordsMax: 1000 });
  t.equal(letters.length, 100, "all of the refused child's records");
  t.same(new Set(letters.map((r) => r.properties.$deadLetterReason)), new Set(['identity-refused']));
  t.same(new Set(letters.map((r) => r.properties[RECORD_KEY.deviceId])), new Set(['gone']));
  t.same(
    letters.map((r) => Number(r.properties.$deadLetterSeq)),
    Array.from({ length: 100 }, (_, i) => 1 + 3 * i),
    'in stored order, named by their upstream seq',
  );
  t.equal(rig.pump.status().deadLetters.byReason['identity-refused'], 100, 'counted in the status');
  t.same(rig.edge.status().refused, ['gone']);
  t.ok(
    rig.errors.some((e) => /IoT Hub refuses "gone"/.test(e)),
    'reported',
  );
  await until('the holding lane drained too', () => rig.held.ackedSeq() === rig.held.lastDurableSeq());
});

t.test("connected children share the window in turn: none waits for another's whole backlog", async (t) => {
  const children = Array.from({ length: 8 }, (_, i) => `f${i}`);
  const rig = await edgeRig(t, { children, inflightMax: 16, connectsPerSecMax: 100 });
  await rig.append(children);
  rig.start();
  await until('every child connected and through', () => rig.hub.telemetry.length >= children.length);
  const before = rig.hub.telemetry.length;
  await rig.append(Array.from({ length: 800 }, (_, i) => children[i % children.length]!));
  await until('the backlog', () => rig.hub.telemetry.length >= before + 800);
  const arrivals = rig.hub.telemetry.slice(before).map((r) => r.deviceId);
  for (const id of children) {
    const first = arrivals.indexOf(id);
    // A window of 16 shared in turns: the eighth child's turn comes after at most seven full turns before it,
    // not after the others' whole backlogs (100 each).
    t.ok(first <= 7 * 16, `${id}: first message of the backlog at arrival ${first}`);
  }
});

t.test('a refused child is recognised while the others stay connected from before', async (t) => {
  const rig = await edgeRig(t, { children: ['c1', 'c2', 'late'] });
  rig.hub.deleteDevice('late');
  await rig.append(['c1', 'c2']);
  rig.start();
  await until('the others connected first', () => rig.hub.telemetry.length >= 2);
  await rig.append(['late', 'late', 'c1']);
  await until('its records dead-lettered', () => rig.dead.lastDurableSeq() >= 2);
  t.same(rig.edge.status().refused, ['late'], 'refused although nobody connected after its first refusal');
  await until('the rest delivered', () => rig.hub.telemetry.length >= 3);
});
