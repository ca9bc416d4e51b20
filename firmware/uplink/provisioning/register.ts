import provisioningDevice from 'azure-iot-provisioning-device';
import { Mqtt } from 'azure-iot-provisioning-device-mqtt';
import { SymmetricKeySecurityClient } from 'azure-iot-security-symmetric-key';
import { X509Security } from 'azure-iot-security-x509';
import { deriveDeviceKey } from './cache.js';
import type { LoadedProvisioning } from './files.js';

// CommonJS: Node's ESM loader does not see the class through the package's re-export.
const { ProvisioningDeviceClient } = provisioningDevice;

/**
 * One registration with DPS through the real provisioning SDK over MQTT: the SDK sends
 * `$dps/registrations/PUT/iotdps-register/?$rid=`, polls `iotdps-get-operationstatus` at the interval DPS
 * names in `retry-after` (also after a 429), and hands back the registration state.
 */

export interface Assignment {
  assignedHub: string;
  deviceId: string;
  /** The key to use with the hub: derived (group), the enrollment's (individual), undefined (X.509). */
  deviceKey: string | undefined;
  /** DPS's substatus: initialAssignment, deviceDataMigrated, deviceDataReset, reprovisionedToInitialAssignment. */
  substatus: string | undefined;
}

/**
 * DPS's "no" about this enrollment: `disabled` (enrollment or registration disabled), `unauthorized` (a wrong
 * key, a certificate DPS does not trust, an unknown registration), `not-found`, `failed` (DPS could not
 * assign: no hub linked, allocation failed). Only fixed outside the gateway, so retried slowly.
 */
export type DpsRefusalReason = 'disabled' | 'unauthorized' | 'not-found' | 'failed';

export class ProvisioningError extends Error {
  constructor(
    /** `refused`: DPS said no; `unavailable`: DPS was not reached or did not finish (network, timeout, 5xx). */
    readonly kind: 'refused' | 'unavailable',
    readonly reason: DpsRefusalReason | 'unreachable' | 'timeout' | 'throttled',
    message: string,
    /** The last `retry-after` DPS sent, ms; the next attempt waits at least this long. */
    readonly retryAfterMs: number | null,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'ProvisioningError';
  }
}

export interface RegisterOptions {
  loaded: LoadedProvisioning;
  registrationId: string;
  /** The whole registration, polling included, ms; then it is cancelled (the SDK polls a 429 forever). */
  timeoutMs: number;
  /** Aborts the registration at once (the gateway is stopping). */
  signal?: AbortSignal;
}

/** What the SDK's MQTT transport keeps inside; the CA and the response topics are reached through it. */
interface TransportInternals {
  _mqttBase?: { setOptions(options: { ca?: string }): void; on(event: 'message', l: (topic: string) => void): void };
}

/** Registers once; resolves with the assignment or rejects with a ProvisioningError. */
/** Each security package carries its own copy of azure-iot-common's types; the objects are what create() takes. */
type Security = Parameters<typeof ProvisioningDeviceClient.create>[3];

/** The SDK security client of an attestation, and the device key (group keys: derived for this registration). */
function securityFor(
  a: RegisterOptions['loaded']['attestation'],
  registrationId: string,
): { security: Security; deviceKey: string | undefined } {
  const deviceKey =
    a.kind === 'x509' ? undefined : a.kind === 'group-key' ? deriveDeviceKey(a.keyBase64, registrationId) : a.keyBase64;
  const security =
    a.kind === 'x509'
      ? new X509Security(registrationId, { cert: a.cert, key: a.key })
      : new SymmetricKeySecurityClient(registrationId, deviceKey!);
  return { security: security as unknown as Security, deviceKey };
}

export async function register(opts: RegisterOptions): Promise<Assignment> {
  const { loaded, registrationId } = opts;
  const transport = new Mqtt();
  // The transport emits 'error' for a connection lost while no request waits (after a cancel, say): the
  // registration's own callback carries every failure that matters, and an unheard 'error' would end the process.
  transport.on('error', () => {});
  const base = (transport as unknown as TransportInternals)._mqttBase;
  // The SDK's provisioning transport has no CA option of its own; without this a private CA could not be used.
  if (base === undefined) {
    throw new ProvisioningError('unavailable', 'unreachable', 'the provisioning SDK changed: no MQTT base', null);
  }
  if (loaded.ca !== undefined) base.setOptions({ ca: loaded.ca });
  let retryAfterMs: number | null = null;
  let lastStatus: number | null = null;
  base.on('message', (topic) => {
    const match = /^\$dps\/registrations\/res\/(\d+)\/\?(.*)$/.exec(topic);
    if (match === null) return;
    lastStatus = Number(match[1]);
    const after = Number(new URLSearchParams(match[2]).get('retry-after'));
    if (Number.isFinite(after) && after > 0) retryAfterMs = after * 1000;
  });
  const { security, deviceKey } = securityFor(loaded.attestation, registrationId);
  const client = ProvisioningDeviceClient.create(
    loaded.config.globalEndpoint,
    loaded.config.idScope,
    transport,
    security,
  );
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), opts.timeoutMs)));
  const stopped = new Promise<'stopped'>((resolve) => {
    if (opts.signal?.aborted) resolve('stopped');
    opts.signal?.addEventListener('abort', () => resolve('stopped'), { once: true });
  });
  try {
    const outcome = await Promise.race([client.register(), timedOut, stopped]);
    if (outcome === 'stopped') {
      await abort(client);
      const what = 'DPS registration abandoned: the gateway is stopping';
      throw new ProvisioningError('unavailable', 'timeout', what, null);
    }
    if (outcome === 'timeout') {
      await abort(client);
      const throttled = lastStatus === 429;
      throw new ProvisioningError(
        'unavailable',
        throttled ? 'throttled' : 'timeout',
        `DPS registration did not ` +
          `finish within ${opts.timeoutMs} ms${throttled ? ' (DPS is throttling: 429)' : ''}`,
        retryAfterMs,
      );
    }
    const state = outcome as { assignedHub?: string; deviceId?: string; substatus?: string } | undefined;
    if (!state?.assignedHub || !state.deviceId) {
      const what = 'DPS answered "assigned" without a hub or device id';
      throw new ProvisioningError('refused', 'failed', what, retryAfterMs);
    }
    return { assignedHub: state.assignedHub, deviceId: state.deviceId, deviceKey, substatus: state.substatus };
  } catch (err) {
    if (err instanceof ProvisioningError) throw err;
    throw classify(err as Error, retryAfterMs);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Ends a registration for good. The SDK's cancel() only drops the request on the wire: its polling state
 * machine, waiting out a retry-after, would register again when the timer fires, on a fresh connection.
 * Disconnecting that state machine clears its timers, fails the pending register() and closes the
 * connection. It is private to the SDK (both registration classes keep it under this name); if it moved,
 * cancel() is the fallback.
 */
async function abort(client: { cancel(callback: (err?: Error) => void): void }): Promise<void> {
  const machine = (client as unknown as { _pollingStateMachine?: { disconnect(cb: (err?: Error) => void): void } })
    ._pollingStateMachine;
  await new Promise<void>((resolve) => {
    if (machine === undefined) client.cancel(() => resolve());
    else machine.disconnect(() => resolve());
  });
}

/** DPS's refusals by the SDK's error, the rest (socket errors, 5xx, its own timeouts) as unavailable. */
function classify(err: Error, retryAfterMs: number | null): ProvisioningError {
  const result = (
    err as {
      result?: { status?: string; errorCode?: number; message?: string; registrationState?: { errorMessage?: string } };
    }
  ).result;
  const detail = result?.registrationState?.errorMessage ?? result?.message ?? err.message;
  const refused = (reason: DpsRefusalReason, what: string) =>
    new ProvisioningError('refused', reason, `DPS refused the registration: ${what} (${detail})`, retryAfterMs, {
      cause: err,
    });
  if (result?.status === 'disabled') return refused('disabled', 'the enrollment is disabled');
  if (err.name === 'DeviceRegistrationFailedError') return refused('failed', 'registration failed');
  if (err.name === 'UnauthorizedError' || /not authori[sz]ed/i.test(err.message)) {
    return refused('unauthorized', 'not authorized (wrong key or certificate, or no such enrollment)');
  }
  if (err.name === 'DeviceNotFoundError') return refused('not-found', 'no such enrollment');
  return new ProvisioningError(
    'unavailable',
    'unreachable',
    `DPS not reached: ${err.name}: ${err.message}`,
    retryAfterMs,
    { cause: err },
  );
}
