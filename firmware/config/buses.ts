import { dirname, resolve } from 'node:path';
import type { ConfigNode } from './node.js';
import type { BusConfig, GpioBusConfig, SerialBusConfig, SimInputConfig } from './types.js';

/** Bus and device ids become parts of message properties and log lines: keep them plain. */
export const BUS_ID_PATTERN = /^[a-z0-9][a-z0-9-]{0,31}$/;
/** Rates a Pi UART and common USB adapters accept (termios standard speeds). */
const SERIAL_BAUD_RATES = [1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600];
/** A replayed capture's line interval, ms: a receiver sends at least once a minute; slower is a typo. */
const SERIAL_REPLAY_INTERVAL_MS_MAX = 60_000;
/** BCM pins on the 40-pin header (Raspberry Pi GPIO documentation, "GPIO pinout"). */
const SIM_PIN_MAX = 27;
/** The sim GPIO's toggle period, ms: faster would flood the log with edges and say nothing more. */
const SIM_TOGGLE_PERIOD_MS_MIN = 100;
/** And at most once a day, ms: slower is a test that never sees an edge. */
const SIM_TOGGLE_PERIOD_MS_MAX = 86_400_000;
/** Faster than this, a simulated pulse input would flood the event loop of a small board. */
const SIM_PULSES_PER_SEC_MAX = 1000;

export function parseBuses(node: ConfigNode): Record<string, BusConfig> {
  const buses: Record<string, BusConfig> = {};
  for (const id of node.keys()) {
    const busNode = node.field(id);
    if (!BUS_ID_PATTERN.test(id)) busNode.fail('a bus id of lowercase letters, digits and "-" (at most 32)');
    buses[id] = parseBus(id, busNode);
  }
  return buses;
}

function parseBus(id: string, node: ConfigNode): BusConfig {
  const kind = node.field('kind').oneOf(['gpio', 'i2c', 'serial']);
  if (kind === 'gpio') return parseGpioBus(id, node);
  if (kind === 'i2c') {
    node.keys(['kind', 'provider', 'device']);
    const provider = node.field('provider').oneOf(['i2c-dev', 'sim']);
    const device =
      provider === 'i2c-dev'
        ? node.field('device').string({ pattern: /^\/dev\/i2c-\d+$/, describe: 'an i2c-dev path like "/dev/i2c-1"' })
        : node.field('device').string({ default: `sim:${id}` });
    return { id, kind, provider, device };
  }
  return parseSerialBus(id, node);
}

function parseGpioBus(id: string, node: ConfigNode): GpioBusConfig {
  node.keys(['kind', 'provider', 'chipLabel', 'sysfsRoot', 'simInputs']);
  const provider = node.field('provider').oneOf(['sysfs', 'sim']);
  const simInputs: Record<number, SimInputConfig> = {};
  const inputsNode = node.field('simInputs');
  if (!inputsNode.missing) {
    if (provider !== 'sim') inputsNode.fail('nothing (simInputs is for provider "sim" only)');
    for (const key of inputsNode.keys()) {
      const pinNode = inputsNode.field(key);
      const pin = Number(key);
      if (!/^\d+$/.test(key) || pin > SIM_PIN_MAX) pinNode.fail(`a BCM pin number 0-${SIM_PIN_MAX} as key`);
      simInputs[pin] = parseSimInput(pinNode);
    }
  }
  return {
    id,
    kind: 'gpio',
    provider,
    chipLabel: node.field('chipLabel').string(),
    sysfsRoot: node.field('sysfsRoot').string({ default: '/sys/class/gpio' }),
    simInputs,
  };
}

function parseSimInput(node: ConfigNode): SimInputConfig {
  const kind = node.field('kind').oneOf(['toggle', 'pulses']);
  if (kind === 'toggle') {
    node.keys(['kind', 'periodMs']);
    const periodMs = node
      .field('periodMs')
      .integer({ min: SIM_TOGGLE_PERIOD_MS_MIN, max: SIM_TOGGLE_PERIOD_MS_MAX, unit: 'ms' });
    return { kind, periodMs };
  }
  node.keys(['kind', 'pulsesPerSec']);
  return {
    kind,
    pulsesPerSec: node.field('pulsesPerSec').integer({ min: 1, max: SIM_PULSES_PER_SEC_MAX, unit: 'Hz' }),
  };
}

function parseSerialBus(id: string, node: ConfigNode): SerialBusConfig {
  node.keys(['kind', 'provider', 'path', 'baudRate', 'replayFile', 'replayLineIntervalMs']);
  const provider = node.field('provider').oneOf(['serialport', 'sim']);
  const baudNode = node.field('baudRate');
  const baudRate = baudNode.missing ? 9600 : (baudNode.value as number);
  if (!SERIAL_BAUD_RATES.includes(baudRate)) baudNode.fail(`a standard baud rate (${SERIAL_BAUD_RATES.join(', ')})`);
  const replayNode = node.field('replayFile');
  let replayFile: string | undefined;
  if (provider === 'sim') {
    // Relative to the file that names it, so a board.json override can point at its own replay file.
    replayFile = resolve(
      dirname(replayNode.file),
      replayNode.string({ describe: 'a text file to replay (required for provider "sim")' }),
    );
  } else if (!replayNode.missing) {
    replayNode.fail('nothing (replayFile is for provider "sim" only)');
  }
  return {
    id,
    kind: 'serial',
    provider,
    path: provider === 'sim' ? node.field('path').string({ default: `sim:${id}` }) : node.field('path').string(),
    baudRate,
    replayFile,
    replayLineIntervalMs: node.field('replayLineIntervalMs').integer({
      min: 1,
      max: SERIAL_REPLAY_INTERVAL_MS_MAX,
      unit: 'ms',
      default: 250,
    }),
  };
}
