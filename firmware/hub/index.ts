import { systemClock, type Clock } from '../clock.js';
import type { DeviceScopeSource } from '../auth/scope-api.js';
import type { ScopeSync } from '../auth/scope-sync.js';
import type { SideChannelBroker } from '../side-channel.js';
import type { RingLog } from '../store/log.js';
import type { ResyncHook } from '../uplink/pump-options.js';
import type { UplinkTransport } from '../uplink/types.js';
import { parseHubConfig, readHubTls } from './config.js';
import { EndpointDelivery } from './endpoints.js';
import { MethodAcl } from './method-acl.js';
import { CLOUD_INVOKE_METHOD, MethodBroker, cloudMethodHandler } from './methods.js';
import { parseRoutes } from '../router/routes.js';
import { Router } from '../router/router.js';
import { HubServer } from './server.js';
import type { InboundContext } from './inbound.js';
import { startIdentity } from './identity.js';
import { startTwins, type HubTwins } from './twins.js';
import { childHandlers, hubService, serverTarget, type HubService, type ServerRef } from './handle.js';
import { ChildEvents } from './presence.js';

export { RouteError } from '../router/condition.js';
export type { HubChildren, HubService, HubStatus } from './handle.js';

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
