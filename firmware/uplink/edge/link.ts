import type { SecureContext } from 'node:tls';
import azureDevice from 'azure-iot-device';
import { Mqtt } from 'azure-iot-device-mqtt';
import { createAzureTransport, type DeviceClient } from '../azure.js';
import { attachDownlink, type Downlink, type DownlinkKind, type DownlinkSink } from '../azure-downlink.js';
import type { UplinkTransport } from '../types.js';
import {
  ON_BEHALF_OF_TOKEN_TTL_SECS,
  authChain,
  onBehalfOfToken,
  splitIdentity,
  type EdgeHubCredentials,
} from './token.js';

// azure-iot-device is CommonJS; Node's ESM loader cannot see the re-exported names.
const { Client, SharedAccessSignatureAuthenticationProvider } = azureDevice;

/** One identity's upstream connection: the azure transport, and when its current token stops being valid. */
export interface IdentityLink {
  readonly identity: string;
  readonly transport: UplinkTransport;
  /** Wall-clock expiry of the token the current connection was opened with, ms; 0 before the first connect. */
  tokenExpiresAtWallMs(): number;
  /** Wall-clock time that token was made, ms; 0 before the first connect. */
  tokenIssuedAtWallMs(): number;
  /**
   * Cloud-to-device messages and direct methods of the identity, wanted or not (as its child subscribes at
   * the local hub): applied to the open connection now and to every later one. Absent on links without a sink.
   */
  downlink?: { set(kind: DownlinkKind, on: boolean): Promise<void> };
}

export interface IdentityLinkOptions {
  identity: string;
  credentials: EdgeHubCredentials;
  ca?: string;
  /**
   * The TLS context every link of the gateway shares (edge/index.ts): one parsed CA store for all of them.
   * Without it each connect makes its own from `ca` (the SDK passes only `ca` on to mqtt.js).
   */
  secureContext?: SecureContext;
  keepaliveSecs?: number;
  /** Wall clock for token expiry (IoT Hub compares `se` with its own UTC clock). */
  wallMs: () => number;
  /** Token lifetime, seconds (tests shorten it to see a renewal). */
  tokenTtlSecs?: number;
  /** Where the identity's C2D messages and method calls go (edge/cloud.ts); without it none are received. */
  sink?: DownlinkSink;
}

/** The part of the SDK's MqttBase (transport._mqtt) that opens the mqtt.js client. */
interface SdkMqttBase {
  mqttProvider: { connect(uri: string, options: Record<string, unknown>): unknown };
}

/**
 * The SDK's MQTT transport with edgeHub's `auth-chain` appended to the CONNECT user name, as the C# SDK's
 * MqttIotHubAdapter does when it is given an authentication chain, and the shared TLS context handed to
 * mqtt.js (which passes its options on to tls.connect). The Node SDK builds the user name in
 * `_getBaseTransportConfig` and opens mqtt.js through `_mqtt.mqttProvider` (private, but the only places:
 * pinned by the edge tests, which read the chain at the emulator and the context at tls.connect); a function
 * rather than a subclass because the SDK calls `new transportCtor(provider)`.
 */
function authChainMqtt(chain: string, secureContext?: SecureContext): new (provider: unknown) => unknown {
  return function AuthChainMqtt(provider: unknown) {
    const transport = new Mqtt(provider as ConstructorParameters<typeof Mqtt>[0]);
    type WithConfig = { _getBaseTransportConfig(c: unknown): { username: string }; _mqtt?: SdkMqttBase };
    const inner = transport as unknown as WithConfig;
    const base = inner._getBaseTransportConfig.bind(transport);
    inner._getBaseTransportConfig = (credentials) => {
      const config = base(credentials);
      config.username += `&auth-chain=${encodeURIComponent(chain)}`;
      return config;
    };
    const mqttBase = inner._mqtt;
    if (secureContext !== undefined && mqttBase !== undefined) {
      const mqtt = mqttBase.mqttProvider;
      mqttBase.mqttProvider = { connect: (uri, options) => mqtt.connect(uri, { ...options, secureContext }) };
    }
    return transport;
  } as unknown as new (provider: unknown) => unknown;
}

/**
 * A connection to IoT Hub as `identity` (a child `dev` or a module `dev/mod`), authenticated on its behalf.
 * `Client.fromAuthenticationProvider` with the identity's own device and module id, not
 * `fromSharedAccessSignature`, which would take the identity from the token's resource (the `$edgeHub` module).
 * A fresh token per connect: the pool renews a link by reconnecting it before its token runs out.
 */
export function createIdentityLink(options: IdentityLinkOptions): IdentityLink {
  const { identity, credentials } = options;
  const { deviceId, moduleId } = splitIdentity(identity);
  const ttlSecs = options.tokenTtlSecs ?? ON_BEHALF_OF_TOKEN_TTL_SECS;
  const transportCtor = authChainMqtt(authChain(identity, credentials.gatewayId), options.secureContext);
  let expiresAtWallMs = 0;
  let issuedAtWallMs = 0;
  const createClient = (): DeviceClient => {
    issuedAtWallMs = options.wallMs();
    const expirySecs = Math.ceil(issuedAtWallMs / 1000) + ttlSecs;
    expiresAtWallMs = expirySecs * 1000;
    const provider = new SharedAccessSignatureAuthenticationProvider({
      host: credentials.hostName,
      deviceId,
      ...(moduleId === undefined ? {} : { moduleId }),
      sharedAccessSignature: onBehalfOfToken(credentials, expirySecs),
    });
    return Client.fromAuthenticationProvider(provider, transportCtor);
  };
  const module = moduleId === undefined ? '' : `;ModuleId=${moduleId}`;
  const downlink = options.sink === undefined ? undefined : linkDownlink(options.sink);
  const transport = createAzureTransport({
    connectionString: `HostName=${credentials.hostName};DeviceId=${deviceId}${module}`,
    ...(options.ca === undefined ? {} : { ca: options.ca }),
    ...(options.keepaliveSecs === undefined ? {} : { keepaliveSecs: options.keepaliveSecs }),
    createClient,
    ...(downlink === undefined ? {} : { onOpen: downlink.opened }),
  });
  if (downlink !== undefined) transport.onDisconnect(downlink.closed);
  return {
    identity,
    transport,
    tokenExpiresAtWallMs: () => expiresAtWallMs,
    tokenIssuedAtWallMs: () => issuedAtWallMs,
    ...(downlink === undefined ? {} : { downlink: { set: downlink.set } }),
  };
}

/**
 * The subscriptions a link's connections should hold. Only an open connection is told: the SDK's
 * enableC2D/enableMethods on a closed one would open it by itself, outside the pool's pacing.
 */
function linkDownlink(sink: DownlinkSink) {
  const wanted = new Set<DownlinkKind>();
  let current: Downlink | null = null;
  return {
    async opened(client: DeviceClient): Promise<void> {
      const attached = attachDownlink(client, sink);
      for (const kind of [...wanted]) await attached.set(kind, true);
      current = attached;
    },
    closed(): void {
      current = null;
    },
    async set(kind: DownlinkKind, on: boolean): Promise<void> {
      if (wanted.has(kind) === on) return;
      if (on) wanted.add(kind);
      else wanted.delete(kind);
      await current?.set(kind, on);
    },
  };
}
