import path from 'node:path';
import { startHub } from '../../firmware/hub/index.js';
import { RingLog } from '../../firmware/store/log.js';

/**
 * A hub in its own process, for tests that need process-wide settings the test runner's process must not
 * take (NODE_EXTRA_CA_CERTS: a CA Node then trusts the way it trusts a public one). TLS listener only.
 * usage: hub-child.ts <dir> <scope broker url> <server cert path> <server key path>
 * Prints `{"tls": <port>}` once listening; on SIGTERM prints `{"refusals": {...}}` and exits.
 */

const [dir, brokerUrl, certPath, keyPath] = process.argv.slice(2);
const log = await RingLog.open({ dir: path.join(dir!, 'log') });
const hub = await startHub({
  config: { hub: { tcp: false, tls: { host: '127.0.0.1', port: 0, certPath, keyPath } } },
  gatewayId: 'gw-1',
  log,
  dataDir: path.join(dir!, 'data'),
  scopeBroker: { url: brokerUrl! },
});
await hub.refreshIdentities();
process.stdout.write(`${JSON.stringify({ tls: hub.status().ports.tls })}\n`);
process.once('SIGTERM', () => {
  process.stdout.write(`${JSON.stringify({ refusals: hub.status().refusals })}\n`);
  void hub
    .stop()
    .then(() => log.close())
    .then(() => process.exit(0));
});
