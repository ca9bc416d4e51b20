import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { loadBoard } from '../../../firmware/board/board.js';
import { checkBoard, runBoardCheckCli } from '../../../firmware/board/check.js';
import { ConfigError } from '../../../firmware/config/errors.js';

const ROOT = new URL('../../../', import.meta.url).pathname;
const BOARDS_DIR = join(ROOT, 'boards');
const boardFiles = readdirSync(BOARDS_DIR).filter((name) => name.endsWith('.json'));
const realBoards = Object.fromEntries(boardFiles.map((name) => [name, readFileSync(join(BOARDS_DIR, name), 'utf8')]));

/** A temp tree with the real boards/ and the given board.json (and extra variant files). */
function tree(t: Test, board: unknown, extraBoards: Record<string, unknown> = {}): string {
  const boards: Record<string, string> = { ...realBoards };
  for (const [name, json] of Object.entries(extraBoards))
    boards[name] = typeof json === 'string' ? json : JSON.stringify(json);
  return t.testdir({ 'board.json': typeof board === 'string' ? board : JSON.stringify(board), boards, 'sim-data': {} });
}

async function loadError(t: Test, dir: string): Promise<ConfigError> {
  const error = await loadBoard(join(dir, 'board.json')).then(
    () => t.fail('loadBoard should have thrown'),
    (caught: unknown) => caught,
  );
  t.type(error, ConfigError);
  return error as ConfigError;
}

const simBoard = { board: 'sim', identity: { gatewayId: 'gw-1' } };

t.test('every variant file in boards/ passes board check', async (t) => {
  t.ok(boardFiles.length >= 4, 'the shipped variants are present');
  for (const name of ['rpi4.json', 'rpi5.json', 'rpi-zero-2w.json', 'sim.json']) t.ok(boardFiles.includes(name), name);
  for (const name of boardFiles) {
    const result = await checkBoard(join(BOARDS_DIR, name));
    t.ok(result.ok, `${name}: ${result.ok ? result.summary : result.error.message}`);
  }
});

t.test('the shipped board.json selects the sim board and loads with storage defaults', async (t) => {
  const board = await loadBoard(join(ROOT, 'board.json'));
  t.equal(board.variant, 'sim');
  t.equal(board.variantFile, join(BOARDS_DIR, 'sim.json'));
  t.equal(board.storage.dataDir, join(ROOT, 'data'), 'dataDir resolves against board.json');
  t.match(board.storage, {
    segmentBytes: 16 * 1024 * 1024,
    recordBytesMax: 264 * 1024,
    quotaBytes: 1024 ** 3,
    quotaPolicy: 'drop-oldest',
    ttlSecs: 7200,
    syncMode: 'always',
    syncIntervalMs: 10,
    checkpointIntervalMs: 1000,
  });
  const gps = board.buses['serial0'];
  t.match(
    gps,
    { provider: 'sim', replayFile: join(BOARDS_DIR, 'sim-data', 'gps-track.nmea') },
    'replay file resolves against sim.json',
  );
  t.same(
    board.devices.filter((d) => d.status !== 'okay').map((d) => d.id),
    [],
    'sim enables every base device',
  );
});

t.test('variants inherit the base and override it; board.json overrides the variant', async (t) => {
  const dir = tree(t, {
    board: 'rpi5',
    identity: { gatewayId: 'pump-house-7' },
    storage: { segmentBytes: 4 * 1024 * 1024, quotaBytes: 64 * 1024 * 1024, quotaPolicy: 'reject-new' },
    devices: { gps: { status: 'okay' }, env: { address: 119 } },
    uplink: { protocol: 'mqtt', url: 'mqtts://broker.example:8883' },
  });
  const board = await loadBoard(join(dir, 'board.json'));
  t.match(board.buses['gpio'], { chipLabel: 'pinctrl-rp1', provider: 'sysfs' });
  t.match(board.buses['serial0'], { path: '/dev/ttyAMA0', baudRate: 9600 });
  t.match(
    board.devices.find((d) => d.id === 'env'),
    { settings: { address: 0x77 }, pollIntervalMs: 60000 },
  );
  t.equal(board.devices.find((d) => d.id === 'gps')?.status, 'okay');
  t.match(board.storage, {
    segmentBytes: 4 * 1024 * 1024,
    quotaBytes: 64 * 1024 * 1024,
    quotaPolicy: 'reject-new',
    ttlSecs: 7200,
  });
  t.same(
    board.uplink,
    { protocol: 'mqtt', url: 'mqtts://broker.example:8883' },
    'the uplink section is kept for the runtime',
  );
  t.equal(board.identity.gatewayId, 'pump-house-7');
});

const cases: { name: string; board?: unknown; extra?: Record<string, unknown>; message: string | RegExp }[] = [
  {
    name: 'unknown variant',
    board: { board: 'rpi3', identity: { gatewayId: 'gw' } },
    message: /^board\.json: \$\.board: expected the name of a variant file in .*boards, got "rpi3"$/,
  },
  {
    name: 'a sync mode that acknowledges records before they are durable (store tests and benchmarks only)',
    board: { ...simBoard, storage: { syncMode: 'interval' } },
    message: /^board\.json: \$\.storage\.syncMode: expected .*"always".*, got "interval"$/,
  },
  {
    name: 'out-of-range segmentBytes names the unit',
    board: { ...simBoard, storage: { segmentBytes: 12 } },
    message: 'board.json: $.storage.segmentBytes: expected an integer between 1048576 and 1073741824 (bytes), got 12',
  },
  {
    name: 'quota smaller than four segments',
    board: { ...simBoard, storage: { segmentBytes: 1048576, quotaBytes: 2097152 } },
    message:
      'board.json: $.storage.quotaBytes: expected an integer between 4194304 and 1099511627776 ' +
      '(bytes, at least 4 × segmentBytes), got 2097152',
  },
  {
    name: 'a typo in a storage field',
    board: { ...simBoard, storage: { ttlSec: 60 } },
    message:
      /^board\.json: \$\.storage\.ttlSec: expected one of the known fields dataDir, segmentBytes, .*, got "ttlSec"$/,
  },
  {
    name: 'bad quotaPolicy',
    board: { ...simBoard, storage: { quotaPolicy: 'drop-newest' } },
    message: 'board.json: $.storage.quotaPolicy: expected one of "drop-oldest", "reject-new", got "drop-newest"',
  },
  {
    name: 'missing gateway id',
    board: { board: 'sim', identity: {} },
    message:
      'board.json: $.identity.gatewayId: expected a gateway id (IoT Hub device id rules), ' +
      'got nothing (the field is missing)',
  },
  {
    name: 'a device override with an address the part cannot have',
    board: { ...simBoard, devices: { env: { address: '0x40' } } },
    message:
      'board.json: $.devices.env.address: expected an I2C address, one of 0x76, 0x77 ' +
      '(number or "0x.." string), got "0x40"',
  },
  {
    name: 'an error inside a variant names the variant file',
    board: { board: 'custom', identity: { gatewayId: 'gw' } },
    extra: {
      'custom.json': {
        variant: 'custom',
        extends: 'rpi-base',
        devices: { climate: { status: 'okay', repeatability: 'extreme' } },
      },
    },
    message:
      'boards/custom.json: $.devices.climate.repeatability: expected one of "high", "medium", "low", got "extreme"',
  },
  {
    name: 'a value inherited from the base names the base file',
    board: { board: 'custom', identity: { gatewayId: 'gw' } },
    extra: {
      'broken-base.json': {
        variant: 'broken-base',
        buses: { i2c: { kind: 'i2c', provider: 'i2c-dev', device: '/dev/i2c' } },
      },
      'custom.json': { variant: 'custom', extends: 'broken-base' },
    },
    message: 'boards/broken-base.json: $.buses.i2c.device: expected an i2c-dev path like "/dev/i2c-1", got "/dev/i2c"',
  },
  {
    name: 'unknown compatible',
    board: { ...simBoard, devices: { fridge: { compatible: 'acme,thermo', bus: 'i2c-1' } } },
    message: new RegExp(
      /^board\.json: \$\.devices\.fridge\.compatible: /.source +
        /expected one of "bosch,bme280", .*"nmea,gps".*, got "acme,thermo"$/.source,
    ),
  },
  {
    name: 'a device on a bus of the wrong kind',
    board: { ...simBoard, devices: { env2: { compatible: 'bosch,bme280', bus: 'gpio', address: 119 } } },
    message:
      'board.json: $.devices.env2.bus: expected the id of a i2c bus declared under "buses" ("i2c-1"), got "gpio"',
  },
  {
    name: 'two enabled devices at one address',
    board: { ...simBoard, devices: { env2: { compatible: 'bosch,bme280', bus: 'i2c-1', address: 118 } } },
    message:
      'board.json: $.devices.env2: expected a device not sharing address 0x76 on bus "i2c-1" with device "env", ' +
      'got an object',
  },
  {
    name: 'two devices on one GPIO pin',
    board: { ...simBoard, devices: { bell: { compatible: 'outpost,gpio-input', bus: 'gpio', pin: 22 } } },
    message:
      'board.json: $.devices.bell: expected a device not sharing pin 22 on bus "gpio" with device "relay1", ' +
      'got an object',
  },
  {
    name: 'pollIntervalMs on an event-driven driver',
    board: { ...simBoard, devices: { door: { pollIntervalMs: 1000 } } },
    message: new RegExp(
      /^board\.json: \$\.devices\.door\.pollIntervalMs: /.source +
        /expected one of the known fields compatible, bus, status, label, cloudIdentity, pin, /.source,
    ),
  },
  {
    name: 'a cloudIdentity that is neither "gateway" nor "own"',
    board: { ...simBoard, devices: { env: { cloudIdentity: 'self' } } },
    message: 'board.json: $.devices.env.cloudIdentity: expected one of "gateway", "own", got "self"',
  },
  {
    name: 'a cloudIdentity that is not a string, set in a variant',
    board: { board: 'custom', identity: { gatewayId: 'gw' } },
    extra: { 'custom.json': { variant: 'custom', extends: 'sim', devices: { adc: { cloudIdentity: true } } } },
    message: 'boards/custom.json: $.devices.adc.cloudIdentity: expected one of "gateway", "own", got true',
  },
  {
    name: 'variant field that does not match the file name',
    board: { board: 'custom', identity: { gatewayId: 'gw' } },
    extra: { 'custom.json': { variant: 'rpi4', extends: 'rpi-base' } },
    message: 'boards/custom.json: $.variant: expected one of "custom", got "rpi4"',
  },
  {
    name: 'a cycle of extends',
    board: { board: 'loop-a', identity: { gatewayId: 'gw' } },
    extra: {
      'loop-a.json': { variant: 'loop-a', extends: 'loop-b' },
      'loop-b.json': { variant: 'loop-b', extends: 'loop-a' },
    },
    message: new RegExp(
      /^boards\/loop-[ab]\.json: \$\.extends: /.source +
        /expected a chain of at most 4 variant files \(is there a cycle\?\), got "loop-[ab]"$/.source,
    ),
  },
  {
    name: 'not JSON at all',
    board: '{ "board": "sim", }',
    message: /^board\.json: \$: expected valid JSON, got .*JSON/,
  },
];

t.test('broken board files give errors naming file, JSON path and expectation', async (t) => {
  for (const c of cases) {
    await t.test(c.name, async (t) => {
      const dir = tree(t, c.board, c.extra);
      const cwd = process.cwd();
      process.chdir(dir);
      try {
        const error = await loadError(t, dir);
        if (typeof c.message === 'string') t.equal(error.message, c.message);
        else t.match(error.message, c.message);
      } finally {
        process.chdir(cwd);
      }
    });
  }
});

t.test('outpost board check prints one line per file and returns the exit code', async (t) => {
  const dir = tree(t, { ...simBoard, storage: { segmentBytes: 12 } });
  const out: string[] = [];
  const err: string[] = [];
  const io = { out: (line: string) => out.push(line), err: (line: string) => err.push(line) };
  const cwd = process.cwd();
  process.chdir(dir);
  t.teardown(() => process.chdir(cwd));
  t.equal(await runBoardCheckCli(['boards/rpi4.json', 'boards/sim.json'], io), 0);
  t.match(out, [
    /^ok {4}boards\/rpi4\.json: variant rpi4: 3 buses, 8 devices \(4 okay, 4 disabled\)$/,
    /^ok {4}boards\/sim\.json/,
  ]);
  t.equal(await runBoardCheckCli([], io, {}), 1, 'default file is board.json, which is broken here');
  t.equal(
    err.at(-1),
    'error board.json: $.storage.segmentBytes: expected an integer between 1048576 and 1073741824 (bytes), got 12',
  );
  t.equal(
    await runBoardCheckCli([], io, { OUTPOST_BOARD: 'boards/sim.json' }),
    0,
    'OUTPOST_BOARD names the active board, as for outpost run',
  );
  t.match(out.at(-1), /^ok {4}boards\/sim\.json: /);
  t.equal(await runBoardCheckCli(['--all'], io), 2, 'unknown option is a usage error');
  t.equal(await runBoardCheckCli(['missing.json'], io), 1);
  t.equal(err.at(-1), 'error missing.json: $: expected a readable board file, got ENOENT');
});
