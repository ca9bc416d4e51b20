import { systemClock, type Clock } from '../clock.js';
import type { IdentityCache } from '../auth/cache.js';
import type { DeviceScopeSource } from '../auth/scope-api.js';
import type { ScopeSync } from '../auth/scope-sync.js';
import type { SideChannelBroker } from '../side-channel.js';
import type { RingLog } from '../store/log.js';
import type { TwinRefusal } from '../twin/store.js';
import type { EdgeTwinStatus } from '../twin/edge-sync.js';
import type { IdentityTwins } from '../uplink/edge/twins.js';
import type { ResyncHook } from '../uplink/pump-options.js';
import type { UplinkTransport } from '../uplink/types.js';
import { parseHubConfig, readHubTls } from './config.js';
import { EndpointDelivery } from './endpoints.js';
import { MethodAcl } from './method-acl.js';
import { CLOUD_INVOKE_METHOD, MethodBroker, cloudMethodHandler, type MethodTarget } from './methods.js';
import { parseRoutes } from '../router/routes.js';
import { Router } from '../router/router.js';
import { HubServer, type ServerHandlers } from './server.js';
import type { Refusal } from './refusals.js';
import { handleInbound, type InboundContext } from './inbound.js';
import { DESIRED_SUBSCRIPTION, DEVICEBOUND_SUBSCRIPTION } from './topics.js';
import { startIdentity } from './identity.js';
import { startTwins, type HubTwins } from './twins.js';
import { ChildEvents, type ChildEvent } from './presence.js';

export { RouteError } from '../router/condition.js';

/** What the hub needs of the uplink service: a place to run work on every (re)connect, and its link state. */
export interface HubUplink {
  addResyncHook(hook: ResyncHook): void;
  /** True while connected; the periodic and unknown-device identity refreshes run only then. */
  isLinkUp?(): boolean;
  /** Identities a scope refresh added or changed: edge mode retries those IoT Hub refused, and re-sends. */
  identitiesReturned?(identities: string[]): void;
}

export interface StartHubOptions {
  /** board.json's `hub` and `routes` sections, unvalidated. */
  config: { hub?: unknown; routes?: unknown };
  /** Names the config file in errors. Default "board.json". */
  configFile?: string;
  gatewayId: string;
  log: RingLog;
  /** Identity cache, key file and twins live here. */
  dataDir: string;
  clock?: Clock;
  uplink?: HubUplink;
  /** mqtt uplinks: the broker the retained scope document is read from, and twins are synced through. */
  scopeBroker?: SideChannelBroker;
  /** azure edge mode: children are read from IoT Hub's device-scope API as the gateway's $edgeHub. */
  deviceScope?: DeviceScopeSource;
  /**
   * The uplink's IoT Hub host: children's standard connection strings name it, so their tokens are accepted.
   * Read at every CONNECT, since a provisioned gateway's hub is known only once assigned, and may change.
   */
  cloudHostNames?: () => readonly string[];
  onError?: (err: Error) => void;
}

export interface HubStatus {
  connected: string[];
  refusals: Partial<Record<Refusal, number>>;
  /** Unacknowledged records per local endpoint lane, by "<connection id>/inputs/<name>" (modules: "<d>/<m>/inputs/<name>"). */
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

export async function startHub(opts: StartHubOptions): Promise<HubService> {
  const config = parseHubConfig(opts.config, opts.configFile, opts.gatewayId);
  const routes = parseRoutes(config.routes, opts.configFile, opts.gatewayId);
  const clock = opts.clock ?? systemClock;
  const onError = opts.onError ?? (() => {});
  const tlsMaterial = await readHubTls(config);
  const ref: ServerRef = { current: null };
  const { cache, scope, auth } = await startIdentity({
    config,
    gatewayId: opts.gatewayId,
    dataDir: opts.dataDir,
    clock,
    scopeBroker: opts.scopeBroker,
    deviceScope: opts.deviceScope,
    cloudHostNames: opts.cloudHostNames,
    onError,
    isOnline: opts.uplink?.isLinkUp?.bind(opts.uplink),
    onChange: (change) => {
      ref.current?.updateTrust(tlsMaterial, cache.trustBundle);
      opts.uplink?.identitiesReturned?.([...change.added, ...change.updated]);
    },
  });
  const target = serverTarget(ref);
  // A device-scope source means azure edge mode: each child's twin is its own in IoT Hub.
  const edge =
    opts.deviceScope === undefined
      ? undefined
      : { isLinkUp: () => opts.uplink?.isLinkUp?.() ?? false, connected: () => ref.current?.connected() ?? [] };
  const twins = await startTwins({
    gatewayId: opts.gatewayId,
    dataDir: opts.dataDir,
    target,
    broker: opts.scopeBroker,
    edge,
    onError,
  });
  const router = await Router.create(opts.log, routes);
  const methods = new MethodBroker(target, config.methodTimeoutSecs * 1000);
  const inboundContext: InboundContext = {
    router,
    twins: twins.store,
    methods,
    target,
    methodAcl: new MethodAcl(config.methods.allow),
    onMethodRefused: (callerId: string) => ref.current?.count('method-acl', { clientId: callerId }),
    ...(twins.edge === null ? {} : { cloudTwins: twins.edge }),
  };
  const endpoints = router.localEndpoints().map((e) => new EndpointDelivery(e, target));
  const resumeChild = (id: string) => {
    for (const e of endpoints) if (e.deviceId === id) e.resume();
    void twins.sync.deliver(id).catch(onError);
  };
  const events = new ChildEvents(onError);
  const handlers = childHandlers({ inboundContext, endpoints, methods, twins, events, resumeChild });
  ref.current = await HubServer.start(
    config,
    auth,
    clock,
    handlers,
    { material: tlsMaterial, trustBundle: cache.trustBundle },
    (text) => onError(new Error(text)),
  );
  const revoked = cache.onRevoked((ids) => ids.forEach((id) => ref.current?.drop(id)));
  addResyncHooks(opts.uplink, scope, twins, methods, opts.deviceScope !== undefined);
  scope.start();

  return hubService(ref, { router, endpoints, cache, scope, twins, methods, events, revoked, target });
}

/** The hub's server: null before it started and once it stopped. */
interface ServerRef {
  current: HubServer | null;
}

/** The children as the hub's parts reach them: through the server while it runs. */
function serverTarget(ref: ServerRef): MethodTarget {
  return {
    isConnected: (id) => ref.current?.isConnected(id) ?? false,
    isSubscribed: (id, filter) => ref.current?.isSubscribed(id, filter) ?? false,
    deliver: (id, t, p, qos) => ref.current?.deliver(id, t, p, qos) ?? Promise.reject(new Error('hub stopped')),
  };
}

/** What the server tells the hub of its children: publishes to handle, and their comings and goings. */
function childHandlers(c: {
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
function hubService(
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

/** The hub's work on every uplink (re)connect: the scope read, both twin syncs, the cloud's method handler. */
function addResyncHooks(
  uplink: HubUplink | undefined,
  scope: ScopeSync,
  twins: HubTwins,
  methods: MethodBroker,
  edgeMode: boolean,
): void {
  if (uplink === undefined) return;
  uplink.addResyncHook(scope.hook);
  uplink.addResyncHook(twins.sync.hook);
  if (twins.mqtt !== null) uplink.addResyncHook(twins.mqtt.hook);
  if (twins.edge !== null) uplink.addResyncHook(twins.edge.hook);
  const registered = new WeakSet<UplinkTransport>();
  uplink.addResyncHook({
    name: 'hub-methods',
    run: async (transport) => {
      // Edge mode (children read from the device-scope API): the cloud calls a child by its own id instead.
      if (edgeMode) return;
      if (transport.onMethod === undefined || registered.has(transport)) return;
      registered.add(transport);
      transport.onMethod(CLOUD_INVOKE_METHOD, cloudMethodHandler(methods));
    },
  });
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
