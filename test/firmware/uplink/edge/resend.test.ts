import t from 'tap';
import { DeadLetterResend, RESENT_KEY } from '../../../../firmware/uplink/edge/resend.js';
import type { StoredRecord } from '../../../../firmware/store/types.js';
import { RECORD_KEY } from '../../../../firmware/uplink/message.js';
import { bodiesOf, edgeRig, until, type EdgeRig } from '../../../support/edge-rig.js';

/**
 * Dead letters of an identity IoT Hub refused go back upstream when the identity returns to the registry:
 * in stored order, as that identity, with their original message ids, once, and nobody else is held back.
 */

const WHO = ['gone', 'c1', 'c2'];

/** 300 records round-robin while "gone" is deleted: its 100 are dead-lettered, the others delivered. */
async function refusedBacklog(t: Parameters<typeof edgeRig>[0]): Promise<EdgeRig> {
  const rig = await edgeRig(t, { children: WHO });
  rig.hub.deleteDevice('gone');
  await rig.append(Array.from({ length: 300 }, (_, i) => WHO[i % 3]!));
  rig.start();
  await until('the others delivered', () => rig.hub.telemetry.length >= 200);
  await until('the refused child dead-lettered', () => rig.pump.status().deadLetters.total >= 100);
  return rig;
}

t.test('a refused child re-added to the registry gets its dead letters, in stored order, as itself', async (t) => {
  const rig = await refusedBacklog(t);
  t.equal(rig.edge.status().deadLetters.waiting, 1, 'one identity waited for');
  rig.hub.createDevice('gone');
  rig.hub.addChild('gw', 'gone');
  // What the hub's scope refresh does when the device-scope API lists the child again.
  rig.edge.identitiesReturned(['gone']);
  await until('its letters delivered', () => bodiesOf(rig.hub, 'gone').length >= 100);
  await rig.append(Array.from({ length: 30 }, (_, i) => WHO[i % 3]!));
  await until('the new records delivered', () => rig.hub.telemetry.length >= 330);
  const gone = rig.hub.telemetryOf('gone');
  t.same(
    gone.map((r) => Number(r.body.toString())),
    [...Array.from({ length: 100 }, (_, i) => 1 + 3 * i), ...Array.from({ length: 10 }, (_, i) => 301 + 3 * i)],
    'the letters first, then the new ones, in stored order',
  );
  t.ok(
    gone.every((r) => r.systemProperties['iothub-connection-device-id'] === 'gone'),
    'as the child itself',
  );
  t.equal(gone[0]!.properties['$.mid'], 'gw:upstream:1', 'with the original message id');
  t.notOk(
    Object.keys(gone[0]!.properties).some((k) => /deadLetter/i.test(k)),
    'no dead-letter bookkeeping upstream',
  );
  for (const id of ['c1', 'c2']) t.equal(bodiesOf(rig.hub, id).length, 110, `${id}: each of its records once`);
  t.same(rig.edge.status().deadLetters, { resent: 100, expired: 0, waiting: 0 }, 'counted in the status');
  const letters = await rig.dead.read(1, { recordsMax: 1000 });
  const marker = letters.find((r) => r.properties[RESENT_KEY.identity] === 'gone');
  t.equal(marker?.properties[RESENT_KEY.upToSeq], '100', 'the dead-letter lane records what went back');
  await until('the holding lane drained', () => rig.held.ackedSeq() === rig.held.lastDurableSeq());
});

/** What a restarted gateway's edge mode finds in the dead-letter lane. */
async function waitingAfterRestart(rig: EdgeRig): Promise<number> {
  const identityOf = (r: StoredRecord) => r.properties[RECORD_KEY.deviceId] || 'gw';
  const fresh = new DeadLetterResend(rig.dead, identityOf, () => rig.log.storeNowMs());
  await fresh.scan({ readBatchRecordsMax: 64, readBatchBytesMax: 1 << 20 });
  return fresh.status().waiting;
}

t.test('letters already sent again are not sent a second time, by a later session or after a restart', async (t) => {
  const rig = await refusedBacklog(t);
  t.equal(await waitingAfterRestart(rig), 1, 'a restart finds the letters waiting');
  rig.hub.createDevice('gone');
  rig.hub.addChild('gw', 'gone');
  rig.edge.identitiesReturned(['gone']);
  await until('its letters delivered', () => bodiesOf(rig.hub, 'gone').length >= 100);
  t.equal(await waitingAfterRestart(rig), 0, 'a restart finds them sent (the marker)');
  // A new gateway connection is a new drain session; the letters stay in the lane, the marker with them.
  rig.hub.disconnect('gw');
  await until('the gateway back', () => rig.pump.status().connects >= 2);
  await rig.append(['gone']);
  await until('the new record delivered', () => bodiesOf(rig.hub, 'gone').length >= 101);
  t.equal(bodiesOf(rig.hub, 'gone').length, 101, 'the letters once, the new record once');
});
