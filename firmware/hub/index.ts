import { systemClock, type Clock } from '../clock.js';
import { Authenticator } from '../auth/authenticator.js';
import { IdentityCache } from '../auth/cache.js';
import type { DeviceScopeSource } from '../auth/scope-api.js';
import { ScopeSync, type ScopeBrokerOptions } from '../auth/scope-sync.js';
import type { RingLog } from '../store/log.js';
import { TwinStore, type TwinRefusal } from '../twin/store.js';
import { MqttTwinSync } from '../twin/mqtt-sync.js';
import { TwinSync } from '../twin/sync.js';
import type { ResyncHook } from '../uplink/pump-options.js';
import type { UplinkTransport } from '../uplink/types.js';
import { parseHubConfig, readHubTls } from './config.js';
import { EndpointDelivery } from './endpoints.js';
import { MethodAcl } from './method-acl.js';
import { CLOUD_INVOKE_METHOD, MethodBroker, cloudMethodHandler } from './methods.js';
import { parseRoutes } from './routes.js';
import { Router } from './router.js';
import { HubServer } from './server.js';
import type { Refusal } from './refusals.js';
import { handleInbound } from './inbound.js';
import { ChildEvents, type ChildEvent } from './presence.js';
import { DESIRED_SUBSCRIPTION, DEVICEBOUND_SUBSCRIPTION, topic } from './topics.js';

export { RouteError } from './condition.js';

/** What the hub needs of the uplink service: a place to run work on every (re)connect, and its link state. */
export interface HubUplink {
  addResyncHook(hook: ResyncHook): void;
  /** True while connected; the periodic and unknown-device identity refreshes run only then. */
  isLinkUp?(): boolean;
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
  scopeBroker?: ScopeBrokerOptions;
  /** azure edge mode: children are read from IoT Hub's device-scope API as the gateway's $edgeHub. */
  deviceScope?: DeviceScopeSource;
  /** The uplink's IoT Hub host: children's standard connection strings name it, so their tokens are accepted. */
  cloudHostNames?: readonly string[];
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
  twins: { bytes: number; refusals: Partial<Record<TwinRefusal, number>> };
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
  const cache = await IdentityCache.open(opts.dataDir, onError);
  const twins = await TwinStore.open(opts.dataDir);
  const router = await Router.create(opts.log, routes);
  let server: HubServer | null = null;
  const scope = new ScopeSync({
    cache, gatewayId: opts.gatewayId, clock, refreshSecs: config.identityRefreshSecs, broker: opts.scopeBroker, onError,
    deviceScope: opts.deviceScope,
    isOnline: opts.uplink?.isLinkUp?.bind(opts.uplink),
    onChange: () => server?.updateTrust(tlsMaterial, cache.trustBundle),
  });
  const audiences = [...config.hostNames, ...(opts.cloudHostNames ?? [])];
  const auth = new Authenticator(cache, clock, audiences, config, (id) => scope.requestDevice(id));
  const target = {
    isConnected: (id: string) => server?.isConnected(id) ?? false,
    isSubscribed: (id: string, filter: string) => server?.isSubscribed(id, filter) ?? false,
    deliver: (id: string, t: string, p: Buffer, qos: 0 | 1) => server?.deliver(id, t, p, qos) ?? Promise.reject(new Error('hub stopped')),
  };
  const methods = new MethodBroker(target, config.methodTimeoutSecs * 1000);
  const inboundContext = {
    router, twins, methods, target, methodAcl: new MethodAcl(config.methods.allow),
    onMethodRefused: (callerId: string) => server?.count('method-acl', { clientId: callerId }),
  };
  const endpoints = router.localEndpoints().map((e) => new EndpointDelivery(e, target));
  const twinSync = new TwinSync({
    store: twins, gatewayId: opts.gatewayId, onError,
    deliverDesired: async (id, patch, version) => {
      if (!target.isSubscribed(id, DESIRED_SUBSCRIPTION)) return false;
      return target.deliver(id, topic.desiredPatch(version), Buffer.from(JSON.stringify({ ...patch, $version: version })), 0).then(() => true, () => false);
    },
  });
  const resumeChild = (id: string) => {
    for (const e of endpoints) if (e.deviceId === id) e.resume();
    void twinSync.deliver(id).catch(onError);
  };
  const events = new ChildEvents(onError);
  server = await HubServer.start(config, auth, clock, {
    onPublish: (deviceId, inbound, payload) => handleInbound(inboundContext, deviceId, inbound, payload),
    onConnected: (id) => {
      resumeChild(id);
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
  }, { material: tlsMaterial, trustBundle: cache.trustBundle }, (text) => onError(new Error(text)));
  const revoked = cache.onRevoked((ids) => ids.forEach((id) => server?.drop(id)));
  const registered = new WeakSet<UplinkTransport>();
  opts.uplink?.addResyncHook(scope.hook);
  opts.uplink?.addResyncHook(twinSync.hook);
  const mqttTwins = opts.scopeBroker === undefined ? null : new MqttTwinSync({
    store: twins, gatewayId: opts.gatewayId, broker: opts.scopeBroker, onError, deliver: (id) => twinSync.deliver(id),
  });
  if (mqttTwins !== null) opts.uplink?.addResyncHook(mqttTwins.hook);
  opts.uplink?.addResyncHook({
    name: 'hub-methods',
    run: async (transport) => {
      // Edge mode (children read from the device-scope API): the cloud calls a child by its own id instead.
      if (opts.deviceScope !== undefined) return;
      if (transport.onMethod === undefined || registered.has(transport)) return;
      registered.add(transport);
      transport.onMethod(CLOUD_INVOKE_METHOD, cloudMethodHandler(methods));
    },
  });
  scope.start();

  return {
    router,
    methods,
    children: {
      connected: () => server?.connected() ?? [],
      isSubscribed: target.isSubscribed,
      deliver: target.deliver,
      invoke: (id, method, payload, timeoutMs) => methods.invoke(id, method, payload, timeoutMs),
      onChange: (listener) => events.on(listener),
    },
    refreshIdentities: () => scope.refresh(),
    saveTwins: () => twins.flush(),
    status: () => ({
      connected: server?.connected() ?? [],
      refusals: Object.fromEntries(server?.refusals ?? []),
      localBacklog: Object.fromEntries(endpoints.map((e, i) => [`${router.localEndpoints()[i].deviceId}/inputs/${router.localEndpoints()[i].input}`, e.backlog()])),
      unrouted: router.unrouted,
      identities: {
        devices: cache.size, scopeVersion: cache.scopeVersion, syncs: scope.syncs, errors: scope.errors,
        targetedReads: scope.targetedReads,
      },
      twins: { bytes: twins.bytes, refusals: Object.fromEntries(twins.refusals) },
      ports: server?.ports() ?? { tcp: null, tls: null },
    }),
    async stop() {
      scope.stop();
      twinSync.close();
      await mqttTwins?.close();
      revoked();
      methods.stop();
      for (const e of endpoints) e.close();
      const s = server;
      server = null;
      await s?.stop();
      cache.close();
      await twins.flush();
      twins.close();
    },
  };
}
