// One child process of `npm run bench -- fleet`: a "cell" of gateways, each the real uplink code — a Pump
// with the real mqtt transport and backoff, on its own MemoryLane backlog — behind the same fault proxy.
// The parent drives it over IPC (start, append, mark, status, stop) and signals the link-up with SIGUSR2,
// which the cell hands to every pump's wake() as the runtime does for a modem hook.
//
// One process plays 50 gateways on a shared core, and mqtt.js's connect() costs milliseconds of CPU: timed
// where it runs, 50 connects that separate devices would start in the same millisecond come out one after
// another (the herd measured at the simulator's speed), and a cell that gets no CPU for a while runs every
// timer due meanwhile at once (bunching jittered ones). So each attempt is timed when the gateway's uplink
// code had it due (Pump.connectDueAtMonoMs: the end of the sleep before it), link-up sleeps from the moment
// this cell heard of the link-up, which the parent lines up across cells; when it went out is kept too.
import { createMqttTransport } from '../firmware/uplink/mqtt.js';
import { Pump } from '../firmware/uplink/pump.js';
import type { UplinkTransport } from '../firmware/uplink/types.js';
import { MemoryLane } from '../test/support/memory-lane.js';
import { send } from './harness.js';

/** "Jitter off": the backoff sleeps its whole ceiling (classic exponential backoff) and a wake connects at once. */
const NO_JITTER_DRAW = 1 - 1e-9;

export interface CellArgs {
  url: string;
  gatewayIds: string[];
  jitter: boolean;
}

export interface GatewayReport {
  id: string;
  link: string;
  acked: number;
  durable: number;
  connects: number;
  throttled: number;
  /** Ceiling of the next backoff delay, ms. */
  ceilingMs: number;
  /** Epoch ms (performance.timeOrigin based) of the first publish after the last mark; null if none yet. */
  firstPublishAtMs: number | null;
}

interface Gateway {
  id: string;
  lane: MemoryLane;
  pump: Pump;
  firstPublishAtMs: number | null;
  /** Epoch ms of each connect attempt since the last mark: when it was due (the end of its backoff sleep). */
  attemptsAtMs: number[];
  /** Epoch ms each of those connects went out (mqtt.js's connect(), the SYN): later when the cell is busy. */
  sentAtMs: number[];
}

/** Connect attempts kept per gateway per phase; a phase makes a handful. */
const ATTEMPTS_KEPT_MAX = 10_000;

type Command =
  { id: number; cmd: 'start' | 'mark' | 'status' | 'attempts' | 'stop' } | { id: number; cmd: 'append'; count: number };

const epochMs = (): number => performance.timeOrigin + performance.now();

function gateway(args: CellArgs, id: string): Gateway {
  const lane = new MemoryLane('upstream');
  const real = createMqttTransport({ url: args.url, gatewayId: id });
  const g: Gateway = {
    id,
    lane,
    pump: undefined as unknown as Pump,
    firstPublishAtMs: null,
    attemptsAtMs: [],
    sentAtMs: [],
  };
  // "Draining" is seen where it happens: the first publish this gateway puts on a connection.
  const transport: UplinkTransport = {
    ...real,
    connect() {
      const dueAtMonoMs = g.pump.connectDueAtMonoMs;
      if (g.attemptsAtMs.length < ATTEMPTS_KEPT_MAX) {
        g.attemptsAtMs.push(dueAtMonoMs === null ? epochMs() : performance.timeOrigin + dueAtMonoMs);
        g.sentAtMs.push(epochMs());
      }
      return real.connect();
    },
    publish(message) {
      g.firstPublishAtMs ??= epochMs();
      return real.publish(message);
    },
  };
  const backoff = args.jitter ? {} : { random: () => NO_JITTER_DRAW };
  const linkUpJitterMsMax = args.jitter ? undefined : 0;
  g.pump = new Pump({ gatewayId: id, transport, lanes: [{ lane }], backoff, linkUpJitterMsMax });
  return g;
}

function report(g: Gateway): GatewayReport {
  const s = g.pump.status();
  const { id, lane, firstPublishAtMs } = g;
  return {
    id,
    link: s.link,
    acked: lane.ackedSeq(),
    durable: lane.lastDurableSeq(),
    connects: s.connects,
    throttled: s.throttled.total,
    ceilingMs: s.backoffCeilingMs,
    firstPublishAtMs,
  };
}

export async function runCell(args: CellArgs): Promise<Record<string, unknown>> {
  const gateways = args.gatewayIds.map((id) => gateway(args, id));
  /** Epoch ms this cell handled the last link-up signal; null before one. */
  let noticeAtMs: number | null = null;
  process.on('SIGUSR2', () => {
    noticeAtMs = epochMs();
    for (const g of gateways) g.pump.wake('SIGUSR2');
  });
  let finish: () => void = () => {};
  const finished = new Promise<void>((resolve) => (finish = resolve));
  process.on('message', (raw) => {
    const command = raw as Command;
    void handle(command).then((reply) => send({ reply: command.id, ...reply }));
  });
  async function handle(command: Command): Promise<Record<string, unknown>> {
    switch (command.cmd) {
      case 'start':
        for (const g of gateways) g.pump.start();
        return {};
      case 'append':
        for (const g of gateways) {
          for (let i = 0; i < command.count; i += 1) {
            await g.lane.append({ body: Buffer.from(String(g.lane.lastDurableSeq() + 1)) });
          }
        }
        return {};
      case 'mark':
        for (const g of gateways) {
          g.firstPublishAtMs = null;
          g.attemptsAtMs = [];
          g.sentAtMs = [];
        }
        return {};
      case 'attempts':
        return {
          attemptsAtMs: JSON.stringify(gateways.flatMap((g) => g.attemptsAtMs)),
          sentAtMs: JSON.stringify(gateways.flatMap((g) => g.sentAtMs)),
          noticeAtMs: noticeAtMs ?? -1,
        };
      case 'status':
        return { gateways: JSON.stringify(gateways.map(report)) };
      case 'stop':
        await Promise.all(gateways.map((g) => g.pump.stop(2_000)));
        finish();
        return {};
    }
  }
  await send({ ready: true });
  await finished;
  return { gateways: gateways.length };
}
