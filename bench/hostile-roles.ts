// The processes of `npm run bench -- hostile`: the gateway's hub, the flood, and the well-behaved children.
import net from 'node:net';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import mqttPacket from 'mqtt-packet';
import { startHub } from '../firmware/hub/index.js';
import { RingLog } from '../firmware/store/log.js';
import { freshDir, removeDir, send } from './harness.js';

export const GOOD_CHILDREN = 5;
export const GATEWAY_ID = 'gw-bench';
/** The unit's WatchdogSec=… / 2 is seconds; a 100 ms tick shows any stall of the event loop well below that. */
const WATCHDOG_TICK_MS = 100;
/** Idle unauthenticated connections the flood keeps open at once (the flood reached 4,100). */
const FLOOD_IDLE_SOCKETS = 4_100;
/** New idle connections per tick as the hub closes them: 2,000 a second at most. */
const FLOOD_NEW_SOCKETS_PER_TICK = 20;
/** Bad-password CONNECTs and oversize packet headers the flood sends per 10 ms tick, each on a new socket. */
const FLOOD_ATTEMPTS_PER_TICK = 4;
const FLOOD_TICK_MS = 10;
/** What a well-behaved child publishes: a small telemetry reading. */
const GOOD_BODY = Buffer.from(JSON.stringify({ temp: 21.5, humidity: 40, seq: 0 }));

/**
 * The hub as the gateway runs it (real ring log on disk, identities from a scope broker), with a watchdog
 * tick measuring the longest gap between ticks. Stops when the parent says so and reports.
 */
export async function gateway(keysJson: string, lift: boolean): Promise<Record<string, unknown>> {
  const { AedesBroker } = await import('../test/support/brokers.js');
  const { publishScope } = await import('../firmware/ops/scope-cli.js');
  const { scopeDocument } = await import('../test/support/hub-fixture.js');
  const keys = JSON.parse(keysJson) as Record<string, string>;
  const dir = await freshDir('hostile');
  const broker = await AedesBroker.start();
  const children = Object.entries(keys).map(([deviceId, key]) => ({ deviceId, key }));
  await publishScope({ url: broker.url }, GATEWAY_ID, scopeDocument(GATEWAY_ID, 1, children));
  const log = await RingLog.open({ dir: join(dir, 'log') });
  // Lifted, the per-child rate limit does not cap the good children: the run measures the hub's capacity.
  const rate = lift ? { publishRatePerSec: 100_000, publishBurst: 100_000 } : {};
  const hub = await startHub({
    config: { hub: { tcp: { port: 0 }, tls: false, ...rate } },
    gatewayId: GATEWAY_ID,
    log,
    dataDir: join(dir, 'data'),
    scopeBroker: { url: broker.url },
    onError: () => {},
  });
  await hub.refreshIdentities();
  let last = performance.now();
  let gapMaxMs = 0;
  const tick = setInterval(() => {
    const now = performance.now();
    gapMaxMs = Math.max(gapMaxMs, now - last);
    last = now;
  }, WATCHDOG_TICK_MS);
  await send({ ready: true, port: hub.status().ports.tcp! });
  const cpuStart = process.cpuUsage();
  const wallStart = performance.now();
  await new Promise<void>((resolve) => process.once('message', () => resolve()));
  clearInterval(tick);
  const cpu = process.cpuUsage(cpuStart);
  const refusals = hub.status().refusals;
  await hub.stop();
  await log.close();
  await broker.stop();
  await removeDir(dir);
  const cpuPct = Math.round(((cpu.user + cpu.system) / 1000 / (performance.now() - wallStart)) * 100);
  return { watchdogGapMaxMs: Math.round(gapMaxMs - WATCHDOG_TICK_MS), refusals: JSON.stringify(refusals), cpuPct };
}

/** Any address in 127/8 is loopback on Linux: a flood from many "hosts". */
function floodAddress(n: number): string {
  return `127.${1 + (Math.floor(n / 65_024) % 254)}.${Math.floor(n / 254) % 256}.${1 + (n % 254)}`;
}

/** Idle connections, bad-password CONNECTs and oversize packet headers at the hub for `secs`. */
export async function flood(port: number, secs: number): Promise<Record<string, unknown>> {
  const counts = { opened: 0, authAttempts: 0, oversize: 0 };
  let open = 0;
  let n = 0;
  const connect = (onConnect: (s: net.Socket) => void) => {
    const socket = net.connect({ port, host: '127.0.0.1', localAddress: floodAddress(n++) });
    open += 1;
    socket.on('error', () => {});
    socket.once('close', () => (open -= 1));
    socket.once('connect', () => onConnect(socket));
    return socket;
  };
  const badConnect = mqttPacket.generate({
    cmd: 'connect',
    clientId: 'child-0',
    username: 'x/child-0/?api-version=2021-04-12',
    protocolVersion: 4,
    password: Buffer.from('SharedAccessSignature sr=x&sig=bad&se=1'),
    keepalive: 60,
    clean: true,
  });
  const oversize = Buffer.from([0x10, 0x80, 0x80, 0x80, 0x40]);
  const deadline = Date.now() + secs * 1000;
  const sockets = new Set<net.Socket>();
  while (Date.now() < deadline) {
    for (let i = 0; i < FLOOD_NEW_SOCKETS_PER_TICK && open < FLOOD_IDLE_SOCKETS; i += 1) {
      const s = connect(() => {});
      sockets.add(s);
      s.once('close', () => sockets.delete(s));
      counts.opened += 1;
    }
    for (let i = 0; i < FLOOD_ATTEMPTS_PER_TICK; i += 1) {
      connect((s) => s.write(badConnect));
      connect((s) => s.write(oversize));
      counts.authAttempts += 1;
      counts.oversize += 1;
    }
    await new Promise((r) => setTimeout(r, FLOOD_TICK_MS));
  }
  for (const s of sockets) s.destroy();
  const cpu = process.cpuUsage();
  return { ...counts, cpuPct: Math.round(((cpu.user + cpu.system) / 1000 / (secs * 1000)) * 100) };
}

export interface GoodResult {
  acked: number;
  perSecond: number[];
  latenciesMs: number[];
  disconnects: number;
}

/** GOOD_CHILDREN children, each publishing QoS 1 and waiting for its PUBACK, for `secs`. */
export async function goodChildren(port: number, keys: Record<string, string>, secs: number): Promise<GoodResult> {
  const { sasPassword, HUB_HOST } = await import('../test/support/hub-fixture.js');
  const result: GoodResult = { acked: 0, perSecond: new Array<number>(secs).fill(0), latenciesMs: [], disconnects: 0 };
  const connect = ([id, key]: [string, string]) =>
    mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, {
      clientId: id,
      username: `${HUB_HOST}/${id}/?api-version=2021-04-12`,
      password: sasPassword(id, key),
      protocolVersion: 4,
      reconnectPeriod: 0,
    });
  const clients: MqttClient[] = await Promise.all(Object.entries(keys).map(connect));
  const startedMs = performance.now();
  const deadlineMs = startedMs + secs * 1000;
  await Promise.all(
    clients.map(async (client) => {
      let gone = false;
      client.once('close', () => {
        gone = true;
        if (performance.now() < deadlineMs) result.disconnects += 1;
      });
      while (!gone && performance.now() < deadlineMs) {
        const sentMs = performance.now();
        try {
          await client.publishAsync(`devices/${client.options.clientId}/messages/events/`, GOOD_BODY, { qos: 1 });
        } catch {
          return;
        }
        const now = performance.now();
        result.latenciesMs.push(now - sentMs);
        result.acked += 1;
        const second = Math.floor((now - startedMs) / 1000);
        if (second < secs) result.perSecond[second] += 1;
      }
    }),
  );
  await Promise.all(clients.map((c) => c.endAsync(true)));
  return result;
}
