import { readFile } from 'node:fs/promises';
import mqtt from 'mqtt';
import { parseScopeDocument } from '../firmware/auth/identity.js';
import { scopeTopic, type ScopeBrokerOptions } from '../firmware/auth/scope-sync.js';

/**
 * Publishes a gateway's scope document (the equivalent of adding children to a parent in IoT Hub) as a
 * retained QoS 1 message on `outpost/<gatewayId>/scope`, after validating it exactly as the gateway will.
 *
 *   node dist/publish-scope.js <brokerUrl> <gatewayId> <scope.json> [--username u --password p --ca ca.pem]
 *
 * The format is documented in firmware/auth/identity.ts. The document holds device keys: use mqtts:// and a
 * broker ACL that lets only the gateway read the topic.
 */

export async function publishScope(broker: ScopeBrokerOptions, gatewayId: string, document: unknown): Promise<void> {
  parseScopeDocument(document, gatewayId);
  const client = await mqtt.connectAsync(broker.url, {
    ca: broker.ca, cert: broker.cert, key: broker.key, username: broker.username, password: broker.password,
    clean: true, reconnectPeriod: 0, connectTimeout: 10_000,
  });
  try {
    await client.publishAsync(scopeTopic(gatewayId), JSON.stringify(document), { qos: 1, retain: true });
  } finally {
    await client.endAsync();
  }
}

async function main(argv: string[]): Promise<void> {
  const [url, gatewayId, file, ...rest] = argv;
  if (!url || !gatewayId || !file) throw new Error('usage: publish-scope <brokerUrl> <gatewayId> <scope.json> [--username u] [--password p] [--ca file]');
  const flags = new Map<string, string>();
  for (let i = 0; i + 1 < rest.length; i += 2) flags.set(rest[i], rest[i + 1]);
  const ca = flags.get('--ca');
  const document = JSON.parse(await readFile(file, 'utf8')) as unknown;
  await publishScope({ url, username: flags.get('--username'), password: flags.get('--password'), ...(ca ? { ca: await readFile(ca) } : {}) }, gatewayId, document);
  process.stdout.write(`published scope for ${gatewayId} to ${url}\n`);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main(process.argv.slice(2)).catch((err: Error) => {
    process.stderr.write(`publish-scope: ${err.message}\n`);
    process.exitCode = 1;
  });
}
