import t from 'tap';
import { spawnSync } from 'node:child_process';
import { closeSync, constants, cpSync, openSync, writeFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createTestCa } from '../../support/tls-certs.js';
import { tempDir } from '../../support/tmp.js';
import { bundleGateway, isReady, startGateway } from './gateway-process.js';

/** The gateway process through start-up and stop, as systemd and a modem hook drive it. */

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

function boardDir(t: Parameters<typeof tempDir>[0], board: Record<string, unknown>): string {
  const dir = tempDir(t);
  cpSync(join(ROOT, 'boards'), join(dir, 'boards'), { recursive: true });
  writeFileSync(join(dir, 'board.json'), JSON.stringify(board));
  return join(dir, 'board.json');
}

t.test('SIGUSR2 during start-up (a modem hook at boot) does not kill the gateway', async (t) => {
  // The hub's TLS certificate and key are FIFOs: start-up blocks reading them until the test writes them,
  // so the signal lands while runtime.start() is certainly under way.
  const dir = tempDir(t);
  const certPath = join(dir, 'hub.crt');
  const keyPath = join(dir, 'hub.key');
  for (const fifo of [certPath, keyPath]) t.equal(spawnSync('mkfifo', [fifo]).status, 0, `mkfifo ${fifo}`);
  const ca = await createTestCa();
  t.teardown(() => ca.dispose());
  const server = await ca.issue('localhost', ['localhost']);
  const board = boardDir(t, { board: 'sim', identity: { gatewayId: 'gw-life' }, hub: { tls: { port: 0, certPath, keyPath } } });
  const gw = startGateway(await bundleGateway(tempDir(t)), ['run', '--board', board], {
    OUTPOST_DATA_DIR: tempDir(t), OUTPOST_HUB_PORT: '0', OUTPOST_LOG_LEVEL: 'debug',
  });
  await gw.waitFor((l) => l.msg === 'board sections', 'the board loaded');
  gw.proc.kill('SIGUSR2');
  // A FIFO's open blocks until both ends are there. Should the gateway have died, the test's own reader
  // lets the writes finish, so nothing is left hanging.
  const fed = Promise.all([writeFile(certPath, server.cert), writeFile(keyPath, server.key)]);
  t.teardown(async () => {
    for (const fifo of [certPath, keyPath]) closeSync(openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK));
    await fed.catch(() => {});
  });
  await gw.waitFor(isReady, 'ready after the SIGUSR2');
  gw.proc.kill('SIGTERM');
  t.equal(await gw.exited(), 0, gw.output());
});
