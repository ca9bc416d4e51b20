import type { TwinAnswer } from '../twin/edge-sync.js';
import type { TwinStore } from '../twin/store.js';
import { patchProblem, type Props } from '../twin/merge.js';
import type { MethodAcl } from './method-acl.js';
import type { MethodBroker, MethodTarget } from './methods.js';
import type { Router } from '../router/router.js';
import { topic, type Inbound } from './topics.js';

/**
 * What the hub does with each accepted publish. Resolving means "done, PUBACK it": telemetry only once
 * durable in every lane it was routed to; twin and method requests once answered or handed off.
 */

export interface InboundContext {
  router: Router;
  twins: TwinStore;
  methods: MethodBroker;
  target: MethodTarget;
  methodAcl: MethodAcl;
  /** Counts a call the method allow-list refused. */
  onMethodRefused(callerId: string): void;
  /** Edge mode: children's own twins in IoT Hub, through which their GET and PATCH go while online. */
  cloudTwins?: CloudTwins;
}

/** The part of EdgeTwinSync (firmware/twin/edge-sync.ts) a child's twin request uses. */
export interface CloudTwins {
  /** IoT Hub's twin while the child's connection is up; null: the cache answers. */
  get(deviceId: string): Promise<TwinAnswer | null>;
  /** Sends the patch through, then caches it; IoT Hub's refusal; null: the cache takes it as offline. */
  report(deviceId: string, patch: Props): Promise<{ version: number } | { refused: string } | null>;
}

type Reply = (t: string, body: Buffer) => Promise<void>;

async function twinGet(ctx: InboundContext, deviceId: string, rid: string, reply: Reply): Promise<void> {
  const cloud = (await ctx.cloudTwins?.get(deviceId)) ?? null;
  if (cloud !== null) return reply(topic.twinResponse(200, rid), json(cloud));
  const twin = ctx.twins.get(deviceId);
  await reply(
    topic.twinResponse(200, rid),
    json({
      desired: { ...twin.desired, $version: twin.desiredVersion },
      reported: { ...twin.reported, $version: twin.reportedVersion },
    }),
  );
}

/** Online (edge mode) through IoT Hub first; otherwise into the cache, which pushes it when the link returns. */
async function twinReported(
  ctx: InboundContext,
  deviceId: string,
  rid: string,
  payload: Buffer,
  reply: Reply,
): Promise<void> {
  const parsed = parseJson(payload);
  const problem = parsed === null ? 'body is not JSON' : patchProblem(parsed.value);
  if (problem !== null) return reply(topic.twinResponse(400, rid), badRequest(problem));
  const patch = parsed!.value as Props;
  try {
    const online = (await ctx.cloudTwins?.report(deviceId, patch)) ?? null;
    if (online !== null && 'refused' in online) {
      return reply(topic.twinResponse(400, rid), badRequest(online.refused));
    }
    const version = online?.version ?? (await ctx.twins.patchReported(deviceId, patch));
    await reply(topic.twinResponse(204, rid, version), Buffer.alloc(0));
  } catch (err) {
    await reply(topic.twinResponse(400, rid), badRequest((err as Error).message));
  }
}

const json = (value: unknown) => Buffer.from(JSON.stringify(value));

/**
 * IoT Hub's error code for a request it refuses as invalid (400004, ArgumentInvalid). The device SDKs tell a
 * failed twin request by an `errorCode` in the body, not by the status in the topic (azure-iot-device-mqtt's
 * twin client ignores the status): a 400 without one reaches the child's code as a success.
 */
const ARGUMENT_INVALID_ERROR_CODE = 400004;
const badRequest = (message: string) => json({ errorCode: ARGUMENT_INVALID_ERROR_CODE, message });

function parseJson(payload: Buffer): { value: unknown } | null {
  try {
    return { value: JSON.parse(payload.toString('utf8')) };
  } catch {
    return null;
  }
}

export async function handleInbound(
  ctx: InboundContext,
  deviceId: string,
  inbound: Inbound,
  payload: Buffer,
): Promise<void> {
  const reply = (t: string, body: Buffer) => ctx.target.deliver(deviceId, t, body, 0).catch(() => {});
  switch (inbound.kind) {
    case 'telemetry':
      await ctx.router.submit(deviceId, payload, inbound.properties, {
        contentType: inbound.contentType,
        contentEncoding: inbound.contentEncoding,
        outputName: inbound.outputName,
      });
      return;
    case 'twin-get':
      return twinGet(ctx, deviceId, inbound.rid, reply);
    case 'twin-reported':
      return twinReported(ctx, deviceId, inbound.rid, payload, reply);
    case 'method-response':
      ctx.methods.onResponse(deviceId, inbound.rid, inbound.status, payload);
      return;
    case 'method-call':
      if (!ctx.methodAcl.allows(deviceId, inbound.targetId, inbound.method)) {
        ctx.onMethodRefused(deviceId);
        const message =
          `"${deviceId}" may not call "${inbound.method}" on "${inbound.targetId}"` + ' (board.json hub.methods.allow)';
        return void (await reply(topic.methodCallResult(403, inbound.rid), json({ message })));
      }
      // Not awaited: the caller's PUBACK must not wait on another device; the answer comes on its own topic.
      void ctx.methods
        .invoke(inbound.targetId, inbound.method, payload, undefined, deviceId)
        .then((result) => reply(topic.methodCallResult(result.status, inbound.rid), result.payload));
      return;
  }
}
