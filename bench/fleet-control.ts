// The parent's side of `npm run bench -- fleet`: the cells (fleet-cell.ts) as child processes it can command,
// and the far side, a consumer straight at mosquitto that counts what arrived per gateway.
import type { ChildProcess } from 'node:child_process';
import mqtt, { type MqttClient } from 'mqtt';
import { setTimeout as sleep } from 'node:timers/promises';
import type { GatewayReport } from './fleet-cell.js';
import { runChild, type ChildResult } from './harness.js';

/** How often the parent looks at a condition it waits for, ms. */
const POLL_MS = 200;

export const epochMs = (): number => performance.timeOrigin + performance.now();

/** Waits for `check` to hold, at most `timeoutMs`; the error names what was awaited. */
export async function until(what: string, check: () => Promise<boolean> | boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`fleet bench: timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(POLL_MS);
  }
}

/** One cell process: commands go out over IPC with an id, replies come back with it. */
export class Cell {
  private nextId = 1;
  private readonly waiting = new Map<number, { resolve: (msg: ChildResult) => void; reject: (err: Error) => void }>();
  private child: ChildProcess | null = null;
  readonly done: Promise<ChildResult>;

  private constructor(args: Record<string, unknown>, ready: () => void) {
    this.done = runChild('fleet', 'cell', args, {
      onMessage: (msg, child) => {
        this.child = child;
        if (msg.ready) ready();
        const waiter = this.waiting.get(Number(msg.reply));
        this.waiting.delete(Number(msg.reply));
        waiter?.resolve(msg);
      },
    });
    // A cell that dies fails the commands it was given, rather than leaving the run waiting on them.
    const orphan = (why: string) => {
      for (const waiter of this.waiting.values()) waiter.reject(new Error(`fleet cell ${why}`));
      this.waiting.clear();
    };
    this.done.then(
      () => orphan('exited'),
      (err: Error) => orphan(`failed: ${err.message}`),
    );
  }

  static async start(args: Record<string, unknown>): Promise<Cell> {
    let ready: () => void = () => {};
    const started = new Promise<void>((resolve) => (ready = resolve));
    const cell = new Cell(args, ready);
    const early = cell.done.then(() => Promise.reject(new Error('fleet cell exited before it was ready')));
    await Promise.race([started, early]);
    return cell;
  }

  command(cmd: string, extra: Record<string, unknown> = {}): Promise<ChildResult> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      this.child!.send({ id, cmd, ...extra });
    });
  }

  async status(): Promise<GatewayReport[]> {
    return JSON.parse(String((await this.command('status')).gateways)) as GatewayReport[];
  }

  /** The link-up a modem hook announces: SIGUSR2, which the cell hands to every pump's wake(). */
  signalLinkUp(): void {
    this.child!.kill('SIGUSR2');
  }
}

/**
 * Every gateway's connect attempts since the last mark, epoch ms: when due, and when sent. With `linkUpAtMs`
 * (when the parent signalled the link-up), each cell's attempts due after it heard the signal are moved by
 * its lateness in hearing it: separate devices hear a modem's notice at once, cells on a loaded machine not.
 */
export async function fleetAttempts(
  cells: Cell[],
  linkUpAtMs?: number,
): Promise<{ dueAtMs: number[]; sentAtMs: number[] }> {
  const replies = await Promise.all(cells.map((c) => c.command('attempts')));
  const due = replies.flatMap((r) => {
    const times = JSON.parse(String(r.attemptsAtMs)) as number[];
    const notice = Number(r.noticeAtMs);
    if (linkUpAtMs === undefined || notice < linkUpAtMs) return times;
    return times.map((at) => (at >= notice ? at - (notice - linkUpAtMs) : at));
  });
  return { dueAtMs: due, sentAtMs: replies.flatMap((r) => JSON.parse(String(r.sentAtMs)) as number[]) };
}

export async function fleetStatus(cells: Cell[]): Promise<GatewayReport[]> {
  return (await Promise.all(cells.map((c) => c.status()))).flat();
}

/** The cloud's side: every message that reached the broker, per gateway, from a persistent QoS 1 session. */
export class Consumer {
  received = 0;
  private readonly seen = new Map<string, Set<number>>();

  private constructor(private readonly client: MqttClient) {}

  static async start(url: string): Promise<Consumer> {
    const client = mqtt.connect(url, {
      clientId: `fleet-consumer-${process.pid}`,
      clean: false,
      reconnectPeriod: 100,
      protocolVersion: 5,
      properties: { sessionExpiryInterval: 3_600 },
    });
    const consumer = new Consumer(client);
    client.on('error', () => {});
    client.on('message', (topic, payload) => consumer.note(topic.split('/')[1] ?? '', Number(payload.toString())));
    await new Promise<void>((resolve) => client.once('connect', () => resolve()));
    await client.subscribeAsync('outpost/+/+/telemetry', { qos: 1 });
    return consumer;
  }

  private note(gatewayId: string, seq: number): void {
    this.received += 1;
    let seqs = this.seen.get(gatewayId);
    if (seqs === undefined) this.seen.set(gatewayId, (seqs = new Set()));
    seqs.add(seq);
  }

  /** Distinct seqs 1..upTo of this gateway that arrived. */
  distinct(gatewayId: string, upTo: number): number {
    let n = 0;
    const seqs = this.seen.get(gatewayId);
    for (let seq = 1; seq <= upTo; seq += 1) if (seqs?.has(seq)) n += 1;
    return n;
  }

  get distinctTotal(): number {
    let n = 0;
    for (const seqs of this.seen.values()) n += seqs.size;
    return n;
  }

  close(): Promise<void> {
    return this.client.endAsync(true);
  }
}

/** The p-th percentile (0..100) by nearest rank; a gateway that never got there counts as Infinity. */
export function percentile(values: number[], p: number): number {
  const sorted = values.filter((v) => !Number.isNaN(v)).sort((a, b) => a - b);
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}
