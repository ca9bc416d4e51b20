import { createAzureTransport } from '../azure.js';
import { sdkRefusal } from '../azure-refusal.js';
import { UplinkError, type MethodHandler, type TwinChannel, type UplinkTransport } from '../types.js';
import type { ProvisionedIdentity } from './cache.js';
import type { LoadedProvisioning } from './files.js';
import type { Provisioner } from './provisioner.js';

/**
 * The azure transport over the identity DPS assigned. It keeps the transport contract (types.ts): connect()
 * is one attempt that never waits on DPS — with no identity yet it starts a registration in the background
 * and fails at once, and the provisioner wakes the pump when the assignment is in; the pump's own backoff
 * and connect timeout apply to hub connects only. When the hub refuses the identity on connect (the device
 * was moved to another hub, or deleted), the provisioner registers again and the next connect goes to
 * whatever hub DPS names; the pump's cursor is untouched, so the backlog follows the gateway there.
 */

/** The SDK's errors that mean the hub does not take this identity, not that the network failed. */
const IDENTITY_REFUSALS = new Set(['azure-unauthorized', 'azure-device-not-found']);

export interface ProvisionedTransportOptions {
  provisioner: Provisioner;
  loaded: LoadedProvisioning;
  keepaliveSecs?: number;
  /** The hub accepted `identity` (edge mode confirms or sets up its `$edgeHub` module then). */
  onAccepted?: (identity: ProvisionedIdentity) => void;
}

export function createProvisionedTransport(opts: ProvisionedTransportOptions): UplinkTransport {
  const { provisioner, loaded } = opts;
  const listeners = new Set<(cause: Error) => void>();
  const desiredListeners = new Set<(patch: Record<string, unknown>) => void>();
  const methods = new Map<string, MethodHandler>();
  let inner: UplinkTransport | null = null;
  let innerIdentity: ProvisionedIdentity | null = null;

  /** The azure transport for `identity`, built again when the identity changed. */
  function transportFor(identity: ProvisionedIdentity): UplinkTransport {
    if (inner !== null && innerIdentity === identity) return inner;
    void inner?.destroy();
    const built = azureTransportFor(identity, loaded, opts.keepaliveSecs);
    built.onDisconnect((cause) => {
      if (inner === built) for (const listener of listeners) listener(cause);
    });
    for (const listener of desiredListeners) built.twin!.onDesired(listener);
    for (const [name, handler] of methods) built.onMethod!(name, handler);
    inner = built;
    innerIdentity = identity;
    return built;
  }

  async function connect(): Promise<void> {
    if (provisioner.registerIfDue()) {
      throw new UplinkError('CONNECT', 'registering with DPS (the uplink connects once assigned)');
    }
    const identity = provisioner.identity();
    if (identity === null) throw new UplinkError('CONNECT', provisioner.waitingFor());
    const transport = transportFor(identity);
    try {
      await transport.connect();
    } catch (err) {
      throw hubRefusal(provisioner, identity, err as Error);
    }
    provisioner.accepted();
    opts.onAccepted?.(identity);
  }

  function current(): UplinkTransport {
    if (inner === null) throw new UplinkError('DISCONNECTED', 'not connected to IoT Hub (not provisioned)');
    return inner;
  }

  return {
    protocol: 'azure',
    connect,
    publish: async (message) => current().publish(message),
    probe: async (timeoutMs) => (inner === null ? false : inner.probe(timeoutMs)),
    onDisconnect(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    destroy: async () => inner?.destroy(),
    close: async () => inner?.close(),
    twin: forwardingTwin(
      () => current().twin!,
      desiredListeners,
      () => inner?.twin,
    ),
    onMethod(name, handler) {
      methods.set(name, handler);
      inner?.onMethod!(name, handler);
    },
  };
}

/** A connect's error; when the hub refused the identity itself, the provisioner is told (it registers again). */
function hubRefusal(provisioner: Provisioner, identity: ProvisionedIdentity, err: Error): Error {
  const refusal = sdkRefusal(err.cause);
  if (refusal === null || !IDENTITY_REFUSALS.has(refusal.reason)) return err;
  provisioner.refusedByHub(identity, refusal.reason);
  return new UplinkError('CONNECT', `${err.message}; registering with DPS again`, { cause: err });
}

/** The azure transport (azure.ts) for an identity: SAS with the device key, or the enrollment's certificate. */
function azureTransportFor(
  identity: ProvisionedIdentity,
  loaded: LoadedProvisioning,
  keepaliveSecs: number | undefined,
): UplinkTransport {
  const a = loaded.attestation;
  const auth = a.kind === 'x509' ? 'x509=true' : `SharedAccessKey=${identity.deviceKey}`;
  return createAzureTransport({
    connectionString: `HostName=${identity.assignedHub};DeviceId=${identity.deviceId};${auth}`,
    ca: loaded.ca,
    ...(a.kind === 'x509' ? { cert: a.cert, key: a.key } : {}),
    keepaliveSecs,
  });
}

/**
 * The twin of whichever transport is current. Desired listeners are kept here as well, since the settings
 * and twin hooks subscribe once at start and each new identity's transport must hear them too.
 */
function forwardingTwin(
  current: () => TwinChannel,
  desiredListeners: Set<(patch: Record<string, unknown>) => void>,
  live: () => TwinChannel | undefined,
): TwinChannel {
  return {
    get: async () => current().get(),
    patchReported: async (patch) => current().patchReported(patch),
    onDesired(listener) {
      desiredListeners.add(listener);
      const off = live()?.onDesired(listener);
      return () => {
        desiredListeners.delete(listener);
        off?.();
      };
    },
  };
}
