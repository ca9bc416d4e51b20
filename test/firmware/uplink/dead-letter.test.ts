import t from 'tap';
import path from 'node:path';
import { runLogCli } from '../../../firmware/store/cli.js';
import { RingLog } from '../../../firmware/store/log.js';
import { parseUplinkConfig } from '../../../firmware/uplink/config.js';
import { AttemptLedger } from '../../../firmware/uplink/dead-letter.js';
import { RECORD_KEY } from '../../../firmware/uplink/message.js';
import { UPSTREAM_LANE_NAME, startUplink } from '../../../firmware/uplink/service.js';
import { Mosquitto } from '../../support/brokers.js';
import { Subscriber } from '../../support/delivery.js';
import { tempDir } from '../../support/tmp.js';
import { until } from '../../support/until.js';

/**
 * The dead-letter lane through the whole uplink service and the real ring log: a message mosquitto's ACL
 * refuses ends up in `deadletter` with its reason, under the log's TTL, readable with `outpost log dump`,
 * counted in the status; everything behind it is delivered and the upstream cursor reaches the end.
 */

const MiB = 1024 * 1024;
const LOG_OPTIONS = {
  segmentBytes: MiB,
  groupCommitBytesMax: MiB / 2,
  recordBytesMax: 64 * 1024,
  quotaBytes: 64 * MiB,
  ttlSecs: 7_200,
};

t.test('a refused message lands in the deadletter lane with its reason; outpost log dump shows it', async (t) => {
  // A queue limit: with mosquitto's unlimited 0, 2.0.11 also drops the connection after each refusal.
  const acl = ['topic read outpost/#', 'topic write outpost/gw-dl/gw-dl/#'];
  const broker = await Mosquitto.start({ acl, extraConfig: ['max_queued_messages 1000'] });
  t.teardown(() => broker.stop());
  const sub = await Subscriber.start(broker.url, 'outpost/gw-dl/#', { protocolVersion: 5 });
  t.teardown(() => sub.close());
  const dataDir = tempDir(t);
  const log = await RingLog.open({ dir: dataDir, ...LOG_OPTIONS });
  t.teardown(() => log.close());
  const upstream = await log.lane(UPSTREAM_LANE_NAME);
  await upstream.append({ body: Buffer.from('1') });
  await upstream.append({ body: Buffer.from('2'), properties: { [RECORD_KEY.deviceId]: 'child-9', room: 'boiler' } });
  await upstream.append({ body: Buffer.from('3') });
  const config = parseUplinkConfig({ protocol: 'mqtt', url: broker.url }, path.join(dataDir, 'board.json'));
  const service = await startUplink({ config, gatewayId: 'gw-dl', log, dataDir });
  t.teardown(() => service.stop());

  await until('the upstream lane drained', () => upstream.ackedSeq() === 3);
  t.ok(await sub.waitForDistinct(2, 5_000));
  t.same(sub.values, [1, 3], 'the message behind the refused one went');
  t.match(service.status().deadLetters, {
    total: 1,
    byReason: { 'mqtt5-0x87-not-authorized': 1 },
    last: { lane: 'upstream', seq: 2 },
  });

  const lines: string[] = [];
  const io = { out: (l: string) => lines.push(l), err: (l: string) => lines.push(l) };
  const code = await runLogCli(['dump', '--lane', 'deadletter', '--dir', dataDir], dataDir, io);
  t.equal(code, 0);
  t.equal(lines.length, 1, 'one dead letter');
  type Dumped = { body: string; expiresAtStoreMs: number; properties: Record<string, string> };
  const dumped = JSON.parse(lines[0]!) as Dumped;
  t.equal(dumped.body, '2');
  t.ok(dumped.expiresAtStoreMs > 0, 'the log TTL applies to it');
  const { $deadLetterExpiresAt: expiresAt, ...properties } = dumped.properties;
  t.ok(Number(expiresAt) > 0, "the original's expiry, kept for a re-send");
  t.same(properties, {
    [RECORD_KEY.deviceId]: 'child-9',
    room: 'boiler',
    $deadLetterReason: 'mqtt5-0x87-not-authorized',
    $deadLetterLane: 'upstream',
    $deadLetterSeq: '2',
    $deadLetterAttempts: '1',
  });
});

t.test('the attempt ledger: budgets per message, a permanent refusal sticks, settled charges go', async (t) => {
  const ledger = new AttemptLedger(3);
  t.equal(ledger.charge('up', 7, 'connection-lost', 0), false);
  t.equal(ledger.charge('up', 8, 'connection-lost', 0), false, 'another message has its own budget');
  t.equal(ledger.charge('up', 7, 'mqtt5-0x97-quota-exceeded', 0), false);
  t.equal(ledger.attempts('up', 7), 2, "8's charge did not reset 7's");
  t.equal(ledger.charge('up', 7, 'connection-lost', 0), true, 'the third attempt spends the budget');
  t.match(ledger.spent('up', 7), { attempts: 3, reason: 'connection-lost' });

  const permanent = ledger.charge('up', 9, 'mqtt5-0x87-not-authorized', 0, true);
  t.equal(permanent, true, 'a permanent refusal needs no second try');
  ledger.lettered('up', 9);
  // mosquitto 2.0.11 can close the connection right after a refusal: that loss must not undo it.
  t.equal(ledger.charge('up', 9, 'connection-lost', 0), true, 'a later loss keeps it given up');
  t.match(ledger.spent('up', 9), { reason: 'mqtt5-0x87-not-authorized', lettered: true });

  ledger.charge('up', 20, 'connection-lost', 9);
  t.equal(ledger.attempts('up', 7), 0, 'charges at or below the acked cursor are dropped');
  t.equal(ledger.spent('other', 7), null, 'lanes are separate');
});
