import type { Clock } from '../../clock.js';
import type { BackoffOptions } from '../backoff.js';
import type { UplinkTransport } from '../types.js';
import { loadIdentity, type ProvisionedIdentity } from './cache.js';
import { EdgeHubModule } from './edge-hub.js';
import { loadProvisioningFiles, type LoadedProvisioning, type ProvisionedUplinkConfig } from './files.js';
import type { RegistryAccess } from './module-registry.js';
import { Provisioner } from './provisioner.js';
import { resolveRegistrationId, type RegistrationIdSources } from './registration-id.js';
import { createProvisionedTransport } from './transport.js';

export type { ProvisioningStatus } from './provisioner.js';
export type { EdgeHubModule, EdgeHubModuleStatus } from './edge-hub.js';
export type { ProvisionedUplinkConfig } from './files.js';

export interface ProvisionedUplinkOptions {
  config: ProvisionedUplinkConfig;
  /** The files as this start read them (start-files.ts); read here when not given. */
  loaded?: LoadedProvisioning;
  gatewayId: string;
  dataDir: string;
  clock?: Clock;
  onError: (err: Error) => void;
  /** Called when DPS assigned a (new) identity: the pump should connect now. */
  onAssigned: () => void;
  /** Registration backoff and timeout, for tests. */
  backoff?: BackoffOptions;
  timeoutMs?: number;
  sources?: RegistrationIdSources;
  /** Edge mode: the gateway sets its `$edgeHub` module up on the hub it is assigned (edge-hub.ts). */
  edgeHub?: { onReady: () => void; backoff?: BackoffOptions };
}

/** The transport of an azure uplink with a `provisioning` section, with its provisioner (for status). */
export async function startProvisionedUplink(opts: ProvisionedUplinkOptions): Promise<{
  transport: UplinkTransport;
  provisioner: Provisioner;
  edgeHub: EdgeHubModule | null;
}> {
  const loaded = opts.loaded ?? (await loadProvisioningFiles(opts.config));
  const registrationId = await resolveRegistrationId(loaded.config.registrationIdTemplate, opts.sources);
  const provisioner = new Provisioner({
    loaded,
    registrationId,
    gatewayId: opts.gatewayId,
    dataDir: opts.dataDir,
    clock: opts.clock,
    backoff: opts.backoff,
    timeoutMs: opts.timeoutMs,
    onAssigned: opts.onAssigned,
    onError: opts.onError,
  });
  await provisioner.load();
  const edgeHub =
    opts.edgeHub === undefined
      ? null
      : new EdgeHubModule({
          dataDir: opts.dataDir,
          identity: () => provisioner.identity(),
          access: (identity) => registryAccess(identity, loaded),
          clock: opts.clock,
          ...(opts.edgeHub.backoff === undefined ? {} : { backoff: opts.edgeHub.backoff }),
          onReady: opts.edgeHub.onReady,
          onError: opts.onError,
        });
  await edgeHub?.load();
  const transport = createProvisionedTransport({
    provisioner,
    loaded,
    keepaliveSecs: opts.config.keepaliveSecs,
    ...(edgeHub === null ? {} : { onAccepted: (identity: ProvisionedIdentity) => edgeHub.ensure(identity) }),
  });
  return { transport, provisioner, edgeHub };
}

/** The registry reached as the device itself: its SAS key, or the enrollment's certificate. */
function registryAccess(identity: ProvisionedIdentity, loaded: LoadedProvisioning): RegistryAccess {
  const a = loaded.attestation;
  return {
    hostName: identity.assignedHub,
    deviceId: identity.deviceId,
    ...(a.kind === 'x509' ? { cert: a.cert, key: a.key } : { deviceKey: identity.deviceKey! }),
    ...(loaded.ca === undefined ? {} : { ca: loaded.ca }),
  };
}

/** The IoT Hub the cache names (children's SAS tokens may name it as audience); none before the first assignment. */
export async function provisionedHubHosts(
  config: ProvisionedUplinkConfig,
  dataDir: string,
  sources?: RegistrationIdSources,
): Promise<string[]> {
  const registrationId = await resolveRegistrationId(config.provisioning.registrationIdTemplate, sources);
  const cached = await loadIdentity(dataDir, config.provisioning.idScope, registrationId, () => {});
  return cached === null ? [] : [cached.assignedHub];
}
