import { createHash } from 'node:crypto';
import type { Lane } from '../store/lane.js';
import type { RingLog } from '../store/log.js';
import { RECORD_KEY } from '../uplink/message.js';
import { evaluate, type RoutedMessage } from './condition.js';
import type { Endpoint, Route } from './routes.js';
import { UPSTREAM_LANE } from '../store/names.js';

/**
 * The router: every message from a child or from the gateway's own drivers goes through here. Each matching
 * route's endpoint gets the message appended to its durable lane — `$upstream` to the lane the drain pump
 * reads, a local endpoint to its own lane delivered by the hub — and `submit` resolves once all are durable.
 */

/** Local endpoints per gateway; each is a lane, and the log has at most 48 of those. */
export const LOCAL_ENDPOINTS_MAX = 16;
/** Properties the router keeps on a local record besides the application ones. */
export const LOCAL_KEY = { input: '$input', ...RECORD_KEY } as const;

export interface SubmitMeta {
  contentType?: string;
  contentEncoding?: string;
  /** The module output the message was sent to (`$.on`); none for devices and plain sendEvent. */
  outputName?: string;
  /** A reading of the gateway's own driver (RECORD_KEY.gatewayDevice): it goes up as the gateway. */
  gatewayDevice?: boolean;
}

/** A lane-safe name for a local endpoint: short, stable across restarts, no user text in file names. */
export function endpointLaneName(deviceId: string, input: string): string {
  return `ep-${createHash('sha256').update(`${deviceId}/${input}`).digest('hex').slice(0, 24)}`;
}

export interface LocalEndpointLane {
  deviceId: string;
  input: string;
  lane: Lane;
}

/** A route's output filter: null takes every message, '*' any sent to an output, else that output only. */
function outputMatches(fromOutput: string | null, outputName: string): boolean {
  if (fromOutput === null) return true;
  if (fromOutput === '*') return outputName !== '';
  return fromOutput === outputName;
}

export class Router {
  /** Messages no route matched; IoT Edge drops those too. */
  unrouted = 0;

  private constructor(
    private readonly routes: Route[],
    private readonly upstream: Lane,
    private readonly locals: Map<string, LocalEndpointLane>,
  ) {}

  static async create(log: RingLog, routes: Route[]): Promise<Router> {
    const upstream = await log.lane(UPSTREAM_LANE);
    const locals = new Map<string, LocalEndpointLane>();
    for (const route of routes) {
      if (route.endpoint.kind !== 'local') continue;
      const name = endpointLaneName(route.endpoint.deviceId, route.endpoint.input);
      if (locals.has(name)) continue;
      if (locals.size >= LOCAL_ENDPOINTS_MAX)
        throw new Error(`routes name more than ${LOCAL_ENDPOINTS_MAX} local endpoints ("LOCAL_ENDPOINTS_MAX")`);
      locals.set(name, { deviceId: route.endpoint.deviceId, input: route.endpoint.input, lane: await log.lane(name) });
    }
    return new Router(routes, upstream, locals);
  }

  localEndpoints(): LocalEndpointLane[] {
    return [...this.locals.values()];
  }

  /**
   * Routes one message; resolves with the number of endpoints it went to once it is durable in all of them.
   * Appends start synchronously, in call order, so one producer's messages keep their order in every lane.
   */
  submit(
    deviceId: string,
    body: Buffer,
    properties: Record<string, string> = {},
    meta: SubmitMeta = {},
  ): Promise<number> {
    const message: RoutedMessage = {
      deviceId,
      properties,
      contentType: meta.contentType ?? '',
      contentEncoding: meta.contentEncoding ?? '',
      body,
    };
    const targets = new Map<string, Endpoint>();
    for (const route of this.routes) {
      if (route.fromDeviceId !== null && route.fromDeviceId !== deviceId) continue;
      if (!outputMatches(route.fromOutput, meta.outputName ?? '')) continue;
      if (route.condition !== null && !evaluate(route.condition, message)) continue;
      const key =
        route.endpoint.kind === 'upstream'
          ? '$upstream'
          : endpointLaneName(route.endpoint.deviceId, route.endpoint.input);
      targets.set(key, route.endpoint);
    }
    if (targets.size === 0) {
      this.unrouted += 1;
      return Promise.resolve(0);
    }
    const base: Record<string, string> = { ...properties, [RECORD_KEY.deviceId]: deviceId };
    if (message.contentType) base[RECORD_KEY.contentType] = message.contentType;
    if (message.contentEncoding) base[RECORD_KEY.contentEncoding] = message.contentEncoding;
    if (meta.outputName) base[RECORD_KEY.outputName] = meta.outputName;
    if (meta.gatewayDevice) base[RECORD_KEY.gatewayDevice] = '1';
    const appends = [...targets].map(([key, endpoint]) => {
      if (endpoint.kind === 'upstream') return this.upstream.append({ body, properties: base });
      return this.locals.get(key)!.lane.append({ body, properties: { ...base, [LOCAL_KEY.input]: endpoint.input } });
    });
    return Promise.all(appends).then(() => appends.length);
  }
}
