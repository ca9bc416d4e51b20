import { randomBytes, randomUUID } from 'node:crypto';

/**
 * IoT Hub's identity registry as the emulator keeps it: devices and modules with the fields of the service
 * API's Device / Module JSON (deviceId, generationId, etag, status, authentication, capabilities.iotEdge,
 * deviceScope, parentScopes; https://learn.microsoft.com/rest/api/iothub/service/devices). Parent/child is
 * IoT Hub's scope model (https://learn.microsoft.com/azure/iot-edge/how-to-connect-downstream-device): an
 * IoT Edge device owns a scope `ms-azure-iot-edge://<id>-<generationId>`; a child lists it in `parentScopes`,
 * and a leaf (non-edge) child also carries it as its own `deviceScope`.
 */

export type IdentityStatus = 'enabled' | 'disabled';
/** The service API's AuthenticationType names. */
export type AuthenticationType = 'sas' | 'selfSigned' | 'certificateAuthority' | 'none';

export interface Authentication {
  symmetricKey: { primaryKey: string | null; secondaryKey: string | null };
  x509Thumbprint: { primaryThumbprint: string | null; secondaryThumbprint: string | null };
  type: AuthenticationType;
}

export interface DeviceIdentity {
  deviceId: string;
  generationId: string;
  etag: string;
  status: IdentityStatus;
  authentication: Authentication;
  capabilities: { iotEdge: boolean };
  /** An edge device's own scope; a leaf child's parent's scope; undefined for an unparented leaf. */
  deviceScope?: string;
  parentScopes: string[];
}

export interface ModuleIdentity {
  deviceId: string;
  moduleId: string;
  generationId: string;
  etag: string;
  managedBy: string;
  authentication: Authentication;
}

export interface DeviceOptions {
  /** `sas` (default: two fresh keys), `selfSigned` (thumbprints given), `certificateAuthority` (CN = id). */
  type?: AuthenticationType;
  primaryKey?: string;
  secondaryKey?: string;
  primaryThumbprint?: string;
  secondaryThumbprint?: string;
  iotEdge?: boolean;
  status?: IdentityStatus;
}

/** The reserved module IoT Edge creates on every edge device; its keys sign on-behalf-of tokens. */
export const EDGE_HUB_MODULE_ID = '$edgeHub';
/** The other module IoT Hub creates with an edge device. */
const EDGE_AGENT_MODULE_ID = '$edgeAgent';

export function newSymmetricKey(): string {
  return randomBytes(32).toString('base64');
}

function authentication(options: DeviceOptions): Authentication {
  const type = options.type ?? 'sas';
  const sas = type === 'sas';
  return {
    symmetricKey: {
      primaryKey: sas ? (options.primaryKey ?? newSymmetricKey()) : null,
      secondaryKey: sas ? (options.secondaryKey ?? newSymmetricKey()) : null,
    },
    x509Thumbprint: {
      primaryThumbprint: options.primaryThumbprint?.toUpperCase() ?? null,
      secondaryThumbprint: options.secondaryThumbprint?.toUpperCase() ?? null,
    },
    type,
  };
}

/** IoT Hub's etags are opaque quoted strings; a new one on every change lets a reader notice. */
function newEtag(): string {
  return randomBytes(6).toString('base64');
}

export class Registry {
  private readonly devices = new Map<string, DeviceIdentity>();
  private readonly modules = new Map<string, ModuleIdentity>();
  private readonly changeListeners = new Set<(deviceId: string, moduleId?: string) => void>();

  /** Called after an identity is removed, disabled or has its credentials or scope changed. */
  onChange(listener: (deviceId: string, moduleId?: string) => void): void {
    this.changeListeners.add(listener);
  }

  addDevice(deviceId: string, options: DeviceOptions = {}): DeviceIdentity {
    if (this.devices.has(deviceId)) throw new Error(`409001 DeviceAlreadyExists: "${deviceId}"`);
    const generationId = randomUUID().replaceAll('-', '').slice(0, 18);
    const iotEdge = options.iotEdge ?? false;
    const device: DeviceIdentity = {
      deviceId,
      generationId,
      etag: newEtag(),
      status: options.status ?? 'enabled',
      authentication: authentication(options),
      capabilities: { iotEdge },
      deviceScope: iotEdge ? `ms-azure-iot-edge://${deviceId}-${generationId}` : undefined,
      parentScopes: [],
    };
    this.devices.set(deviceId, device);
    // IoT Hub creates an edge device's two system modules with it, each with its own keys.
    if (iotEdge) {
      for (const moduleId of [EDGE_AGENT_MODULE_ID, EDGE_HUB_MODULE_ID]) this.addModule(deviceId, moduleId);
    }
    return device;
  }

  addModule(deviceId: string, moduleId: string, options: DeviceOptions = {}): ModuleIdentity {
    if (!this.devices.has(deviceId)) throw new Error(`404001 DeviceNotFound: "${deviceId}"`);
    const key = `${deviceId}/${moduleId}`;
    if (this.modules.has(key)) throw new Error(`409301 ModuleAlreadyExistsOnDevice: "${key}"`);
    const module: ModuleIdentity = {
      deviceId,
      moduleId,
      generationId: randomUUID().replaceAll('-', '').slice(0, 18),
      etag: newEtag(),
      managedBy: moduleId.startsWith('$') ? 'iotEdge' : '',
      authentication: authentication(options),
    };
    this.modules.set(key, module);
    return module;
  }

  device(deviceId: string): DeviceIdentity | undefined {
    return this.devices.get(deviceId);
  }

  module(deviceId: string, moduleId: string): ModuleIdentity | undefined {
    return this.modules.get(`${deviceId}/${moduleId}`);
  }

  modulesOf(deviceId: string): ModuleIdentity[] {
    return [...this.modules.values()].filter((module) => module.deviceId === deviceId);
  }

  /** Deleting a device deletes its modules too, as IoT Hub does. */
  removeDevice(deviceId: string): void {
    if (!this.devices.delete(deviceId)) throw new Error(`404001 DeviceNotFound: "${deviceId}"`);
    for (const module of this.modulesOf(deviceId)) this.modules.delete(`${deviceId}/${module.moduleId}`);
    this.changed(deviceId);
  }

  removeModule(deviceId: string, moduleId: string): void {
    if (!this.modules.delete(`${deviceId}/${moduleId}`)) throw new Error(`404010 ModuleNotFound: "${moduleId}"`);
    this.changed(deviceId, moduleId);
  }

  /** A module's keys replaced (the registry API's PUT, `az iot hub module-identity renew-key`): a new etag. */
  setModuleKeys(deviceId: string, moduleId: string, primaryKey: string, secondaryKey: string): ModuleIdentity {
    const module = this.modules.get(`${deviceId}/${moduleId}`);
    if (module === undefined) throw new Error(`404010 ModuleNotFound: "${moduleId}"`);
    module.authentication = authentication({ primaryKey, secondaryKey });
    module.etag = newEtag();
    this.changed(deviceId, moduleId);
    return module;
  }

  setStatus(deviceId: string, status: IdentityStatus): void {
    const device = this.required(deviceId);
    device.status = status;
    device.etag = newEtag();
    this.changed(deviceId);
  }

  /** `az iot hub device-identity children add --device-id <gateway> --child-list <child>`. */
  addChild(gatewayId: string, childId: string): void {
    const gateway = this.required(gatewayId);
    const child = this.required(childId);
    if (!gateway.capabilities.iotEdge) throw new Error(`400004 "${gatewayId}" is not an IoT Edge device`);
    // A device has one parent in IoT Hub's model: adding it to a new gateway moves it.
    child.parentScopes = [gateway.deviceScope!];
    if (!child.capabilities.iotEdge) child.deviceScope = gateway.deviceScope;
    child.etag = newEtag();
    this.changed(childId);
  }

  removeChild(gatewayId: string, childId: string): void {
    const gateway = this.required(gatewayId);
    const child = this.required(childId);
    child.parentScopes = child.parentScopes.filter((scope) => scope !== gateway.deviceScope);
    if (!child.capabilities.iotEdge && child.deviceScope === gateway.deviceScope) child.deviceScope = undefined;
    child.etag = newEtag();
    this.changed(childId);
  }

  /** True when `childId` is a device whose parent is `gatewayId`'s scope. */
  isChildOf(childId: string, gatewayId: string): boolean {
    const scope = this.devices.get(gatewayId)?.deviceScope;
    return scope !== undefined && (this.devices.get(childId)?.parentScopes.includes(scope) ?? false);
  }

  /**
   * What the device-scope API lists for an edge device: the device itself, its children, and the modules of
   * each, in a stable order so that paging with a continuation link neither skips nor repeats.
   */
  targetScope(gatewayId: string): { devices: DeviceIdentity[]; modules: ModuleIdentity[] } {
    const gateway = this.devices.get(gatewayId);
    if (gateway === undefined) return { devices: [], modules: [] };
    const devices = [gateway, ...[...this.devices.values()].filter((d) => this.isChildOf(d.deviceId, gatewayId))];
    const modules = devices.flatMap((device) => this.modulesOf(device.deviceId));
    return { devices, modules };
  }

  private required(deviceId: string): DeviceIdentity {
    const device = this.devices.get(deviceId);
    if (device === undefined) throw new Error(`404001 DeviceNotFound: "${deviceId}"`);
    return device;
  }

  private changed(deviceId: string, moduleId?: string): void {
    for (const listener of this.changeListeners) listener(deviceId, moduleId);
  }
}

/** The symmetric keys an identity may sign with, primary first. */
export function keysOf(auth: Authentication): string[] {
  if (auth.type !== 'sas') return [];
  return [auth.symmetricKey.primaryKey, auth.symmetricKey.secondaryKey].filter((k): k is string => k !== null);
}
