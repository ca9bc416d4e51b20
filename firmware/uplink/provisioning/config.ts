import { dirname, resolve } from 'node:path';
import type { ConfigNode } from '../../config/node.js';
import { fieldsOf } from '../../config/schema.js';
import { checkRegistrationIdTemplate } from './registration-id.js';

/**
 * board.json `uplink.provisioning` (azure only): the gateway finds its IoT Hub and device identity through
 * the Device Provisioning Service instead of a connection string. The section holds the enrollment, never a
 * per-device secret, so one board file (one image) serves the whole fleet: the group key or certificate
 * files it names are the same on every gateway of the group, and the registration id comes from the board
 * itself (serial number, machine id, host name).
 */

/** How the gateway proves itself to DPS (and then, with what DPS hands back, to IoT Hub). */
export type Attestation =
  /** Group enrollment: the device key is derived from the group key and the registration id. */
  | { kind: 'group-key'; keyFile: string }
  /** Individual enrollment with its own symmetric key. */
  | { kind: 'symmetric-key'; keyFile: string }
  /** Individual or group X.509 enrollment; the same certificate authenticates to IoT Hub. */
  | { kind: 'x509'; certFile: string; keyFile: string };

export interface ProvisioningConfig {
  /** DPS host, optionally with a port (`localhost:8883`): the SDK dials `mqtts://<globalEndpoint>`. */
  globalEndpoint: string;
  idScope: string;
  /** The template as written; resolved at start (registration-id.ts). */
  registrationIdTemplate: string;
  attestation: Attestation;
}

/** DPS's global device endpoint: it routes each ID scope to its instance, so no gateway needs the instance name. */
export const GLOBAL_ENDPOINT_DEFAULT = 'global.azure-devices-provisioning.net';
/** Every systemd machine has a machine id, unique per installation; a Pi's serial is not there on other boards. */
export const REGISTRATION_ID_TEMPLATE_DEFAULT = '{machineId}';
/** A host name with an optional port; no scheme (the SDK adds mqtts://). */
const ENDPOINT_PATTERN = /^[A-Za-z0-9.-]{1,253}(:\d{1,5})?$/;
/**
 * DPS ID scopes are "0ne" and 8 hexadecimal digits (the portal's "ID Scope"); anything else is a paste of
 * the wrong field, which DPS would only refuse at the first connect.
 */
const ID_SCOPE_PATTERN = /^0ne[0-9A-Fa-f]{8}$/;

/** Parses `$.uplink.provisioning`; file paths are resolved against the board file's folder. */
export function parseProvisioning(node: ConfigNode, boardFile: string): ProvisioningConfig {
  node.keys(fieldsOf('uplink.provisioning'));
  const baseDir = dirname(resolve(boardFile));
  const file = (key: string) => {
    const path = node.field(key).optionalString();
    return path === undefined ? undefined : resolve(baseDir, path);
  };
  const templateNode = node.field('registrationId');
  const registrationIdTemplate = templateNode.string({ default: REGISTRATION_ID_TEMPLATE_DEFAULT });
  const problem = checkRegistrationIdTemplate(registrationIdTemplate);
  if (problem !== null) templateNode.fail(problem);
  return {
    globalEndpoint: node.field('globalEndpoint').string({
      default: GLOBAL_ENDPOINT_DEFAULT,
      pattern: ENDPOINT_PATTERN,
      describe: 'a host name with an optional :port',
    }),
    idScope: node.field('idScope').string({ pattern: ID_SCOPE_PATTERN, describe: 'a DPS ID scope like "0ne00000A0A"' }),
    registrationIdTemplate,
    attestation: parseAttestation(node, file),
  };
}

function parseAttestation(node: ConfigNode, file: (key: string) => string | undefined): Attestation {
  const groupKeyFile = file('groupKeyFile');
  const symmetricKeyFile = file('symmetricKeyFile');
  const certFile = file('certPath');
  const keyFile = file('keyPath');
  const given = [groupKeyFile, symmetricKeyFile, certFile ?? keyFile].filter((f) => f !== undefined).length;
  const one = 'exactly one of groupKeyFile, symmetricKeyFile, certPath with keyPath';
  if (given !== 1) node.field('groupKeyFile').fail(one);
  if (groupKeyFile !== undefined) return { kind: 'group-key', keyFile: groupKeyFile };
  if (symmetricKeyFile !== undefined) return { kind: 'symmetric-key', keyFile: symmetricKeyFile };
  if (certFile !== undefined && keyFile !== undefined) return { kind: 'x509', certFile, keyFile };
  return node.field(certFile ? 'keyPath' : 'certPath').fail('certPath and keyPath given together');
}
