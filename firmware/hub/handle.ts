import type { IdentityCache } from '../auth/cache.js';
import type { ScopeSync } from '../auth/scope-sync.js';
import type { TwinRefusal } from '../twin/store.js';
import type { EdgeTwinStatus } from '../twin/edge-sync.js';
import type { IdentityTwins } from '../uplink/edge/twins.js';
import type { EndpointDelivery } from './endpoints.js';
import { handleInbound, type InboundContext } from './inbound.js';
import type { MethodBroker, MethodTarget } from './methods.js';
import type { ChildEvent, ChildEvents } from './presence.js';
import type { Refusal } from './refusals.js';
import type { Router } from '../router/router.js';
import type { HubServer, ServerHandlers } from './server.js';
import { DESIRED_SUBSCRIPTION, DEVICEBOUND_SUBSCRIPTION } from './topics.js';
import type { HubTwins } from './twins.js';

/** The started hub's handle and status, and the wiring between its server and its parts (index.ts starts it). */

export interface HubStatus {
  connected: string[];
  refusals: Partial<Record<Refusal, number>>;
  /**
   * Unacknowledged records per local endpoint lane, by "<connection id>/inputs/<name>"
   * (modules: "<d>/<m>/inputs/<name>").
   */
  localBacklog: Record<string, number>;
  unrouted: number;
  /** `targetedReads`: scope reads set off by unknown device ids. */
  identities: { devices: number; scopeVersion: number; syncs: number; errors: number; targetedReads: number };
  /** Twin store disk use and children's reported patches refused (by reason: size, disk budget, twin count). */
  twins: { bytes: number; refusals: Partial<Record<TwinRefusal, number>>; edge?: EdgeTwinStatus };
  ports: { tcp: number | null; tls: number | null };
}

/** The children at the hub, for edge mode's cloud → child relay (firmware/uplink/edge/cloud.ts LocalChildren). */
export interface HubChildren {
  connected(): string[];
  isSubscribed(id: string, filter: string): boolean;
  deliver(id: string, topic: string, payload: Buffer, qos: 1): Promise<void>;
  invoke(id: string, method: string, payload: Buffer, timeoutMs: number): ReturnType<MethodBroker['invoke']>;
  onChange(listener: (event: ChildEvent) => void): () => void;
}

export interface HubService {
  router: Router;
  methods: MethodBroker;
  children: HubChildren;
  status(): HubStatus;
  /** Re-reads the scope now (operator command, tests); rejects if the cloud cannot be read. */
  refreshIdentities(): Promise<void>;
  /** Edge mode: the uplink's children's connections, once it has started, for the children's own twins. */
  attachIdentityTwins(links: IdentityTwins): void;
  /** Every twin change so far on disk; the hub keeps serving. */
  saveTwins(): Promise<void>;
  stop(): Promise<void>;
}

/** The hub's server: null before it started and once it stopped. */
export interface ServerRef {
  current: HubServer | null;
}

/** The children as the hub's parts reach them: through the server while it runs. */
export function serverTarget(ref: ServerRef): MethodTarget {
  return {
    isConnected: (id) => ref.current?.isConnected(id) ?? false,
    isSubscribed: (id, filter) => ref.current?.isSubscribed(id, filter) ?? false,
    deliver: (id, t, p, qos) => ref.current?.deliver(id, t, p, qos) ?? Promise.reject(new Error('hub stopped')),
  };
}

/** What the server tells the hub of its children: publishes to handle, and their comings and goings. */
export function childHandlers(c: {
  inboundContext: InboundContext;
  endpoints: EndpointDelivery[];
  methods: MethodBroker;
  twins: HubTwins;
  events: ChildEvents;
  resumeChild: (id: string) => void;
}): ServerHandlers {
  const { inboundContext, endpoints, methods, twins, events, resumeChild } = c;
  return {
    onPublish: (deviceId, inbound, payload) => handleInbound(inboundContext, deviceId, inbound, payload),
    onConnected: (id) => {
      resumeChild(id);
      twins.edge?.childConnected(id);
      events.emit({ id, kind: 'connected' });
    },
    onDisconnected: (id) => {
      for (const e of endpoints) if (e.deviceId === id) e.pause();
      methods.onDisconnected(id);
      events.emit({ id, kind: 'disconnected' });
    },
    onSubscribed: (id, filter) => {
      if (filter === DEVICEBOUND_SUBSCRIPTION(id) || filter === DESIRED_SUBSCRIPTION) resumeChild(id);
      events.emit({ id, kind: 'subscribed', filter });
    },
  };
}

/** The handle of a started hub. */
export function hubService(
  ref: ServerRef,
  parts: Omit<HubParts, 'server'> & {
    methods: MethodBroker;
    events: ChildEvents;
    revoked: () => void;
    target: MethodTarget;
  },
): HubService {
  const { router, endpoints, cache, scope, twins, methods, events, revoked, target } = parts;
  return {
    router,
    methods,
    children: {
      connected: () => ref.current?.connected() ?? [],
      isSubscribed: target.isSubscribed,
      deliver: target.deliver,
      invoke: (id, method, payload, timeoutMs) => methods.invoke(id, method, payload, timeoutMs),
      onChange: (listener) => events.on(listener),
    },
    refreshIdentities: () => scope.refresh(),
    attachIdentityTwins: (links) => twins.edge?.attach(links),
    saveTwins: () => twins.store.flush(),
    status: () => hubStatus({ server: ref.current, router, endpoints, cache, scope, twins }),
    async stop() {
      scope.stop();
      twins.sync.close();
      twins.edge?.close();
      await twins.mqtt?.close();
      revoked();
      methods.stop();
      for (const e of endpoints) e.close();
      const s = ref.current;
      ref.current = null;
      await s?.stop();
      cache.close();
      await twins.store.flush();
      twins.store.close();
    },
  };
}

interface HubParts {
  server: HubServer | null;
  router: Router;
  endpoints: EndpointDelivery[];
  cache: IdentityCache;
  scope: ScopeSync;
  twins: HubTwins;
}

function hubStatus({ server, router, endpoints, cache, scope, twins }: HubParts): HubStatus {
  const local = router.localEndpoints();
  return {
    connected: server?.connected() ?? [],
    refusals: Object.fromEntries(server?.refusals ?? []),
    localBacklog: Object.fromEntries(
      endpoints.map((e, i) => [`${local[i].deviceId}/inputs/${local[i].input}`, e.backlog()]),
    ),
    unrouted: router.unrouted,
    identities: {
      devices: cache.size,
      scopeVersion: cache.scopeVersion,
      syncs: scope.syncs,
      errors: scope.errors,
      targetedReads: scope.targetedReads,
    },
    twins: {
      bytes: twins.store.bytes,
      refusals: Object.fromEntries(twins.store.refusals),
      ...(twins.edge === null ? {} : { edge: twins.edge.status() }),
    },
    ports: server?.ports() ?? { tcp: null, tls: null },
  };
}
