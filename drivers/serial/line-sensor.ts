import type { ConfigNode } from '../../firmware/config/node.js';
import { defineDriver, type DriverContext, type DriverInstance, type ReadingValues } from '../model.js';
import { SerialLines } from './line-device.js';
import { SERIAL_LINE_BYTES_MAX } from './lines.js';
import type { SerialOpener } from '../serial-port.js';

/** A reading with more fields than this is not a sensor line; it is dropped as malformed. */
export const LINE_SENSOR_FIELDS_MAX = 32;
const FIELD_NAME = /^[A-Za-z_][A-Za-z0-9_.-]{0,63}$/;

export interface LineSensorSettings {
  /** "json": one JSON object of scalars per line; "keyvalue": `name=value` pairs separated by spaces or commas. */
  format: 'json' | 'keyvalue';
  /** Longest line kept, in bytes. Default SERIAL_LINE_BYTES_MAX. */
  lineBytesMax: number;
}

/** Parses one line; a string is the reason the line is malformed. */
export function parseSensorLine(line: string, format: LineSensorSettings['format']): ReadingValues | string {
  const values: ReadingValues = {};
  let entries: [string, unknown][];
  if (format === 'json') {
    let parsed: unknown;
    try {
      parsed = JSON.parse(line);
    } catch {
      return 'not JSON';
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return 'not a JSON object';
    entries = Object.entries(parsed);
  } else {
    entries = [];
    for (const pair of line.trim().split(/[\s,]+/)) {
      const eq = pair.indexOf('=');
      if (eq <= 0) return `"${pair.slice(0, 20)}" is not name=value`;
      const raw = pair.slice(eq + 1);
      const number = Number(raw);
      entries.push([pair.slice(0, eq), raw !== '' && Number.isFinite(number) ? number : raw]);
    }
  }
  if (entries.length === 0) return 'no fields';
  if (entries.length > LINE_SENSOR_FIELDS_MAX) return `more than ${LINE_SENSOR_FIELDS_MAX} fields`;
  for (const [name, value] of entries) {
    if (!FIELD_NAME.test(name)) return `bad field name "${name.slice(0, 20)}"`;
    if (value !== null && !['number', 'string', 'boolean'].includes(typeof value))
      return `field "${name}" is not a scalar`;
    values[name] = value as ReadingValues[string];
  }
  return values;
}

/** A sensor that prints one reading per line (many Arduino-based and industrial sensors do). */
class LineSensor implements DriverInstance {
  private readonly lines: SerialLines;

  constructor(
    private readonly ctx: DriverContext<LineSensorSettings>,
    opener: SerialOpener,
  ) {
    this.lines = new SerialLines(ctx as DriverContext<unknown>, opener, ctx.settings.lineBytesMax, (line) =>
      this.onLine(line),
    );
  }

  init(): Promise<void> {
    return this.lines.open();
  }

  close(): Promise<void> {
    return this.lines.close();
  }

  private onLine(line: string): void {
    const result = parseSensorLine(line, this.ctx.settings.format);
    if (typeof result === 'string') this.ctx.malformed(result);
    else this.ctx.emit(result);
  }
}

export const lineSensorDriver = defineDriver<LineSensorSettings, 'serial'>({
  compatible: 'outpost,serial-line-sensor',
  busKind: 'serial',
  sensor: 'line-sensor',
  settingsFields: ['format', 'lineBytesMax'],
  parseSettings(node: ConfigNode): LineSensorSettings {
    return {
      format: node.field('format').oneOf(['json', 'keyvalue']),
      lineBytesMax: node
        .field('lineBytesMax')
        .integer({ min: 16, max: 4096, unit: 'bytes', default: SERIAL_LINE_BYTES_MAX }),
    };
  },
  claims: () => ['the port'],
  create: (ctx, opener) => new LineSensor(ctx, opener),
});
