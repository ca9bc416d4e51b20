import fsp from 'node:fs/promises';
import { syncBuiltinESMExports } from 'node:module';
import { symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { loadBoard } from '../../../firmware/board/board.js';
import { Runtime } from '../../../firmware/runtime.js';
import { hubCerts, until } from '../../support/hub-fixture.js';
import { IotHubEmulator } from '../../support/iothub-emulator.js';
import { tempDir } from '../../support/tmp.js';
import { dpsEdgeWorld } from '../../support/dps-edge-gateway.js';

/**
 * A gateway's start reads each of the uplink's files once (firmware/uplink/uplink-files.ts): read again by the
 * hub, the device scope, the edge uplink and the transport, a file replaced between two reads would give them
 * different credentials. A whole edge-mode gateway (Runtime) against the IoT Hub emulator, its fs reads counted.
 */

const BOARDS_DIR = new URL('../../../boards', import.meta.url).pathname;

/**
 * Counts fs/promises readFile calls per path until stop(). The store, the hub and the uplink import readFile by
 * name: syncBuiltinESMExports makes those bindings see the counting one too.
 */
function countReads(t: { teardown(fn: () => void): void }): { of(file: string): number; stop(): void } {
  const reads = new Map<string, number>();
  const realReadFile = fsp.readFile;
  const counting = (file: Parameters<typeof fsp.readFile>[0], ...rest: unknown[]) => {
    reads.set(String(file), (reads.get(String(file)) ?? 0) + 1);
    return (realReadFile as (...args: unknown[]) => Promise<unknown>)(file, ...rest);
  };
  const setReadFile = (fn: unknown) => {
    (fsp as { readFile: unknown }).readFile = fn;
    syncBuiltinESMExports();
  };
  setReadFile(counting);
  const stop = () => setReadFile(realReadFile);
  t.teardown(stop);
  return { of: (file) => reads.get(file) ?? 0, stop };
}

t.test('one start reads the connection string, $edgeHub and CA files once each', async (t) => {
  const dir = tempDir(t, 'outpost-files-once-');
  const certs = await hubCerts(dir);
  t.teardown(() => certs.ca.dispose());
  const cloud = await IotHubEmulator.start();
  t.teardown(() => cloud.stop());
  const connections = cloud.createEdgeDevice('gw');
  const files = { cs: path.join(dir, 'gw.cs'), edgeHub: path.join(dir, 'edgehub.cs'), ca: path.join(dir, 'ca.pem') };
  writeFileSync(files.cs, `${connections.device}\n`);
  writeFileSync(files.edgeHub, `${connections.edgeHub}\n`);
  writeFileSync(files.ca, cloud.ca.cert);
  symlinkSync(BOARDS_DIR, path.join(dir, 'boards'));
  const uplink = {
    protocol: 'azure',
    connectionStringFile: 'gw.cs',
    caFile: 'ca.pem',
    azure: { edgeHubConnectionStringFile: 'edgehub.cs' },
    backoff: { baseMs: 50, maxMs: 500 },
  };
  const hub = { tcp: false, tls: { port: 0, certPath: certs.certPath, keyPath: certs.keyPath } };
  const boardFile = path.join(dir, 'board.json');
  writeFileSync(boardFile, JSON.stringify({ board: 'sim', identity: { gatewayId: 'gw' }, uplink, hub }));
  const board = await loadBoard(boardFile, { files: true });

  const reads = countReads(t);
  const runtime = new Runtime(board, { dataDir: path.join(dir, 'data') });
  await runtime.start();
  reads.stop();
  t.teardown(() => runtime.stop());
  await until('the uplink connected', () => runtime.status().uplink?.link === 'up');

  t.same(
    { cs: reads.of(files.cs), edgeHub: reads.of(files.edgeHub), ca: reads.of(files.ca) },
    { cs: 1, edgeHub: 1, ca: 1 },
    'each uplink file read once by the start',
  );
});

t.test('a DPS edge-mode start reads the CA and the group key once each', async (t) => {
  const w = await dpsEdgeWorld(t, 'edge');
  const files = { ca: path.join(w.dir, 'ca.pem'), groupKey: path.join(w.dir, 'group.key') };
  // Before the fix the CA was read three times: by the provisioner, for the children's connections and for
  // the device scope.
  const board = await loadBoard(path.join(w.dir, 'board.json'), { files: true });
  const reads = countReads(t);
  const runtime = new Runtime(board, { dataDir: path.join(w.dir, 'data') });
  await runtime.start();
  reads.stop();
  t.teardown(() => runtime.stop());
  await until('provisioned and up', () => runtime.status().link === 'up', 60_000);
  t.same(
    { ca: reads.of(files.ca), groupKey: reads.of(files.groupKey) },
    { ca: 1, groupKey: 1 },
    'each DPS file read once by the start',
  );
});
