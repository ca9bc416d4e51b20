import net from 'node:net';
import mqttPacket from 'mqtt-packet';
import t from 'tap';
import { RingLog } from '../../../firmware/store/log.js';
import { parseUplinkConfig } from '../../../firmware/uplink/config.js';
import { startUplink } from '../../../firmware/uplink/service.js';
import { AedesBroker } from '../../support/brokers.js';
import { FaultProxy } from '../../support/fault-proxy.js';
import { tempDir } from '../../support/tmp.js';
import { until } from '../../support/until.js';

/** Every wait here ends on a condition; this bounds it. */
const WAIT_MS_MAX = 20_000;

async function uplinkFor(t: Parameters<typeof tempDir>[0], section: Record<string, unknown>, errors: string[]) {
  const dir = tempDir(t);
  const log = await RingLog.open({ dir });
  t.teardown(() => log.close());
  const service = await startUplink({
    config: parseUplinkConfig(section, `${dir}/board.json`),
    gatewayId: 'gw-1',
    log,
    dataDir: dir,
    onError: (err) => errors.push(err.message),
  });
  t.teardown(() => service.stop());
  return { log, service };
}

t.test(
  'board.json keepaliveSecs reaches the CONNECT packet; connectTimeoutMs is the limit a silent broker hits',
  async (t) => {
    const connects: Array<{ keepalive: number }> = [];
    const silent = net.createServer((socket) => {
      const parser = mqttPacket.parser({ protocolVersion: 4 });
      parser.on(
        'packet',
        (packet) => packet.cmd === 'connect' && connects.push(packet as unknown as { keepalive: number }),
      );
      socket.on('data', (d) => parser.parse(d));
      socket.on('error', () => {});
    });
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    t.teardown(() => new Promise<void>((resolve) => silent.close(() => resolve())));
    const errors: string[] = [];
    await uplinkFor(
      t,
      {
        protocol: 'mqtt',
        url: `mqtt://127.0.0.1:${(silent.address() as net.AddressInfo).port}`,
        protocolVersion: 4,
        keepaliveSecs: 77,
        connectTimeoutMs: 400,
        backoff: { baseMs: 60_000, maxMs: 60_000 },
      },
      errors,
    );
    await until('a CONNECT', () => connects.length > 0, WAIT_MS_MAX);
    t.equal(connects[0]!.keepalive, 77);
    await until('the connect to time out', () => errors.length > 0, WAIT_MS_MAX);
    t.match(errors[0], /connect took longer than 400 ms/, "the board's connect timeout, not the 15 s default");
  },
);

t.test('board.json publishTimeoutMs is the limit a black-holed link hits', async (t) => {
  const broker = await AedesBroker.start();
  t.teardown(() => broker.stop());
  const proxy = await FaultProxy.start({ targetPort: broker.port });
  t.teardown(() => proxy.close());
  const errors: string[] = [];
  const { log, service } = await uplinkFor(
    t,
    { protocol: 'mqtt', url: `mqtt://127.0.0.1:${proxy.port}`, protocolVersion: 4, publishTimeoutMs: 300 },
    errors,
  );
  await until('the link up', () => service.status().link === 'up', WAIT_MS_MAX);
  proxy.blackhole();
  await (await log.lane('upstream')).append({ body: Buffer.from('{"n":1}') });
  await until('the publish to time out', () => errors.some((e) => /no PUBACK/.test(e)), WAIT_MS_MAX);
  t.match(
    errors.find((e) => /no PUBACK/.test(e)),
    /no PUBACK for 300 ms/,
    "the board's publish timeout, not the 20 s default",
  );
  proxy.pass();
});
