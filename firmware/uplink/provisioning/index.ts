import type { Clock } from '../../clock.js';
import type { BackoffOptions } from '../backoff.js';
import type { UplinkTransport } from '../types.js';
import { loadIdentity } from './cache.js';
import { loadProvisioningFiles, type ProvisionedUplinkConfig } from './files.js';
import { Provisioner } from './provisioner.js';
import { resolveRegistrationId, type RegistrationIdSources } from './registration-id.js';
import { createProvisionedTransport } from './transport.js';

export type { ProvisioningStatus } from './provisioner.js';
export type { ProvisionedUplinkConfig } from './files.js';

export interface ProvisionedUplinkOptions {
  config: ProvisionedUplinkConfig;
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
}

/** The transport of an azure uplink with a `provisioning` section, with its provisioner (for status). */
export async function startProvisionedUplink(opts: ProvisionedUplinkOptions): Promise<{
  transport: UplinkTransport;
  provisioner: Provisioner;
}> {
  const loaded = await loadProvisioningFiles(opts.config);
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
  const transport = createProvisionedTransport({ provisioner, loaded, keepaliveSecs: opts.config.keepaliveSecs });
  return { transport, provisioner };
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
