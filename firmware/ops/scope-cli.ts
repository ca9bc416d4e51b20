import { readFile } from 'node:fs/promises';
import mqtt from 'mqtt';
import { parseScopeDocument, ScopeError } from '../auth/identity.js';
import { scopeTopic, sideChannelOptions, type SideChannelBroker } from '../side-channel.js';
import type { LoadedBoard } from '../config/types.js';
import { azureHubHost, parseUplinkConfig } from '../uplink/config.js';
import { loadUplinkFiles } from '../uplink/uplink-files.js';

/**
 * `outpost scope publish [--board FILE] <scope.json>`: gives the gateway of board.json its scope document (the
 * children it may authenticate, format in firmware/auth/identity.ts), validated exactly as the gateway will,
 * over the board's own uplink:
 *  - mqtt: a retained QoS 1 message on `outpost/<gatewayId>/scope` at the uplink's broker, with its credentials;
 *  - azure: the gateway twin's desired property `outpostScope`. That needs IoT Hub's service side (the
 *    azure-iothub SDK and a service policy), which outpost does not ship: the desired patch is printed on
 *    stdout with the `az iot hub device-twin update` command that applies it.
 * The document holds device keys: use mqtts:// and a broker ACL that lets only the gateway read the topic.
 */

/** A scope document lists every child of a gateway; a few MiB is far beyond any real one. */
const SCOPE_FILE_BYTES_MAX = 4 * 1024 * 1024;
/** The broker must answer within this, ms; a publish is one round trip. */
const PUBLISH_TIMEOUT_MS = 10_000;
const USAGE = 'usage: outpost scope publish [--board FILE] <scope.json>';

export interface ScopeCliIo {
  out: (text: string) => void;
  err: (text: string) => void;
}

export async function publishScope(broker: SideChannelBroker, gatewayId: string, document: unknown): Promise<void> {
  parseScopeDocument(document, gatewayId);
  const client = await mqtt.connectAsync(
    broker.url,
    sideChannelOptions(broker, { reconnectPeriodMs: 0, connectTimeoutMs: PUBLISH_TIMEOUT_MS }),
  );
  try {
    await client.publishAsync(scopeTopic(gatewayId), JSON.stringify(document), { qos: 1, retain: true });
  } finally {
    await client.endAsync();
  }
}

/** `args` after `scope`; returns the exit code: 0 done, 1 refused or failed, 2 usage. */
export async function runScopeCli(args: string[], board: LoadedBoard, io: ScopeCliIo): Promise<number> {
  const positional = args.filter((arg, i) => !arg.startsWith('-') && args[i - 1] !== '--board');
  if (positional[0] !== 'publish' || positional.length !== 2) {
    io.err(`${USAGE}\n`);
    return 2;
  }
  const file = positional[1]!;
  const gatewayId = board.identity.gatewayId;
  let document: unknown;
  try {
    const bytes = await readFile(file);
    if (bytes.length > SCOPE_FILE_BYTES_MAX) throw new ScopeError(`larger than ${SCOPE_FILE_BYTES_MAX} bytes`);
    document = JSON.parse(bytes.toString('utf8'));
    parseScopeDocument(document, gatewayId);
  } catch (err) {
    io.err(`${file}: ${(err as Error).message}\n`);
    return 1;
  }
  const uplink = parseUplinkConfig(board.uplink, board.file, board.variant);
  if (uplink.protocol === 'mqtt') {
    const transport = await loadUplinkFiles(uplink, gatewayId);
    if (transport.protocol !== 'mqtt') throw new Error('an mqtt uplink loaded as another protocol');
    const { url, username, password, ca, cert, key } = transport;
    await publishScope({ url, username, password, ca, cert, key }, gatewayId, document);
    const devices = countDevices(document);
    io.out(
      `published the scope for ${gatewayId} (${devices} devices) to ${scopeTopic(gatewayId)}` +
        ` at ${url}, retained\n`,
    );
    return 0;
  }
  if (uplink.protocol === 'azure') {
    const transport = await loadUplinkFiles(uplink, gatewayId);
    const host = transport.protocol === 'azure' ? azureHubHost(transport.connectionString) : undefined;
    const hubName = host?.split('.')[0] ?? '<hub>';
    io.out(`${JSON.stringify({ outpostScope: document })}\n`);
    io.err(
      'outpost cannot write a device twin itself (that needs the IoT Hub service SDK, azure-iothub, which is not\n' +
        'installed, and a service policy): the desired patch is on stdout. Apply it with the Azure CLI:\n' +
        `  outpost scope publish ${file} > scope-patch.json\n` +
        `  az iot hub device-twin update --hub-name ${hubName} --device-id ${gatewayId} \\\n` +
        '      --desired "$(cat scope-patch.json)"\n',
    );
    return 0;
  }
  io.err(`${board.file}: the uplink is "${uplink.protocol}": there is no cloud to hold a scope document\n`);
  return 1;
}

function countDevices(document: unknown): number {
  const devices = (document as { devices?: unknown }).devices;
  return Array.isArray(devices) ? devices.length : 0;
}
