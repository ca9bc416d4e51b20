import type { OptionSpec } from './schema-types.js';

const AZURE: OptionSpec['protocols'] = ['azure'];
/** The least a provisioning section needs beside the field under test: a scope and one attestation. */
const SCOPE = { idScope: '0ne00000A0A' };
const ONE_OF = 'one of groupKeyFile, symmetricKeyFile, certPath';
const GROUP = { ...SCOPE, groupKeyFile: '/etc/outpost/dps-group-key' };

/** board.json `uplink.provisioning` (firmware/uplink/provisioning/config.ts parses it). */
export const PROVISIONING_OPTIONS: readonly OptionSpec[] = [
  {
    path: 'uplink.provisioning.idScope',
    type: 'string',
    default: 'required with provisioning',
    protocols: AZURE,
    range: '"0ne" and 8 hex digits',
    example: '0ne00000A0A',
    invalid: 'HostName=hub',
    with: { groupKeyFile: GROUP.groupKeyFile },
    doc:
      "The DPS instance's ID scope. With a provisioning section there is no connection string: the gateway " +
      'registers with DPS at first start and keeps the assigned hub and identity in the data directory.',
  },
  {
    path: 'uplink.provisioning.globalEndpoint',
    type: 'string',
    default: '"global.azure-devices-provisioning.net"',
    protocols: AZURE,
    range: 'host[:port]',
    example: 'global.azure-devices-provisioning.net',
    invalid: 'mqtts://x',
    with: GROUP,
    doc: 'The DPS endpoint (mqtts, port 8883 unless given).',
  },
  {
    path: 'uplink.provisioning.registrationId',
    type: 'string',
    default: '"{machineId}"',
    protocols: AZURE,
    range: 'placeholders {serial} {machineId} {hostname}; a-z 0-9 - . _ :',
    example: 'pump-{serial}',
    invalid: 'gw-{mac}',
    with: GROUP,
    doc:
      'Registration id template: {serial} from the device tree (Raspberry Pi), {machineId} from ' +
      '/etc/machine-id, {hostname}. Lower-cased. Without identity.gatewayId it is also the gateway id.',
  },
  {
    path: 'uplink.provisioning.groupKeyFile',
    type: 'file path',
    default: ONE_OF,
    protocols: AZURE,
    example: '/etc/outpost/dps-group-key',
    invalid: 3,
    with: SCOPE,
    doc:
      'Symmetric-key group enrollment: a file holding the group key (base64); the device key is ' +
      "HMAC-SHA256(group key, registration id). Relative to board.json's folder.",
  },
  {
    path: 'uplink.provisioning.symmetricKeyFile',
    type: 'file path',
    default: ONE_OF,
    protocols: AZURE,
    example: 'dps-device-key',
    invalid: '',
    with: SCOPE,
    doc: "Individual symmetric-key enrollment: a file holding the device's own key (base64).",
  },
  {
    path: 'uplink.provisioning.certPath',
    type: 'PEM file path',
    default: ONE_OF,
    protocols: AZURE,
    example: 'certs/device.pem',
    invalid: false,
    with: { ...SCOPE, keyPath: 'certs/device.key' },
    doc:
      'X.509 enrollment (individual, or a group whose CA issued it; CN = registration id): the device ' +
      'certificate chain, also used with IoT Hub. With keyPath.',
  },
  {
    path: 'uplink.provisioning.keyPath',
    type: 'PEM file path',
    default: 'none',
    protocols: AZURE,
    example: 'certs/device.key',
    invalid: '',
    with: { ...SCOPE, certPath: 'certs/device.pem' },
    doc: 'Private key of certPath.',
  },
];
