import type { Clock } from '../clock.js';
import { loadSettingsFile, saveSettingsFile } from './settings-file.js';
import { UplinkError } from './types.js';
import { isJsonObject } from '../json.js';
import { optionSpec } from '../config/schema.js';
import { STORAGE_QUOTA_BYTES_MAX } from '../config/storage.js';

/**
 * Settings the cloud may push to a gateway: the ring log's TTL and quota and the drain's bandwidth cap.
 * They override the board's values (the baseline) key by key; removing an override restores the baseline.
 *
 * - mqtt: a retained JSON document on the config topic, `{ "ttlSecs": n, "quotaBytes": n, "bytesPerSecMax": n }`.
 *   It is the whole state: keys it leaves out fall back to the board, an empty payload clears them all,
 *   and a key outpost does not know refuses the document (a typo must not pass silently).
 * - azure: the same keys among the gateway twin's desired properties. A twin GET at each connect is the
 *   whole state; a desired patch changes only the keys it names (null removes one), as IoT Hub defines.
 *   Other desired properties belong to other modules and are left alone.
 *
 * A document with any bad value is refused whole, with a reason, and counted; nothing crashes.
 */
export interface CloudSettings {
  ttlSecs?: number;
  quotaBytes?: number;
  bytesPerSecMax?: number;
}
export type SettingName = keyof CloudSettings;

/** Settings renamed to the units-last rule, by their old name: still read, with a warning; both given refuse. */
const DEPRECATED_NAMES: Readonly<Record<string, SettingName>> = { maxBytesPerSec: 'bytesPerSecMax' };

/** The cloud overrides board.json's storage options, so it gets their ranges, from the one schema table. */
const TTL_SECS_RANGE = optionSpec('storage.ttlSecs').int!;

/** [min, max, unit] per setting; the store checks the quota against its segment size on top. */
const SETTING_RULES: Record<SettingName, readonly [number, number, string]> = {
  ttlSecs: [TTL_SECS_RANGE.min, TTL_SECS_RANGE.max, 's'],
  quotaBytes: [1, STORAGE_QUOTA_BYTES_MAX, 'bytes'],
  bytesPerSecMax: [0, 1024 ** 3, 'bytes/s'],
};
const SETTING_NAMES = Object.keys(SETTING_RULES) as SettingName[];
/** A settings document is a few dozen bytes; a large one is refused unparsed. */
export const SETTINGS_DOCUMENT_BYTES_MAX = 4 * 1024;

/** Where settings take effect: the ring log (may refuse, e.g. a quota below its minimum) and the pump. */
export interface SettingsTarget {
  applyStore(settings: { ttlSecs: number; quotaBytes: number }): void;
  setBytesPerSecMax(bytesPerSec: number): void;
}

export interface SettingsStatus {
  /** What is in force: the board's values with the cloud's overrides on top. */
  effective: Required<CloudSettings>;
  overrides: CloudSettings;
  /** `mqtt:<topic>`, `twin`, `saved:<source>` (loaded from the data dir), or null while the board's values hold. */
  source: string | null;
  /** Documents accepted since start (the saved one included). */
  accepted: number;
  refused: number;
  lastRefusal: { reason: string; source: string; atWallMs: number } | null;
}

function checkValue(name: SettingName, value: unknown): number {
  const [min, max, unit] = SETTING_RULES[name];
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new UplinkError(
      'INVALID',
      `"${name}" must be an integer from ${min} to ${max} ${unit}, got ${JSON.stringify(value)}`,
    );
  }
  return value;
}

/** Keys in a fixed order, so two equal override sets serialise equally (and an unchanged one is not rewritten). */
function canonical(settings: CloudSettings): CloudSettings {
  const out: CloudSettings = {};
  for (const name of SETTING_NAMES) if (settings[name] !== undefined) out[name] = settings[name];
  return out;
}

export class CloudSettingsManager {
  private overrides: CloudSettings = {};
  private source: string | null = null;
  private accepted = 0;
  private refused = 0;
  private lastRefusal: SettingsStatus['lastRefusal'] = null;
  private writing: Promise<void> | null = null;
  /** A newer state arrived while a write ran: one more write follows, never a queue of them. */
  private writeAgain = false;

  constructor(
    private readonly opts: {
      dataDir: string;
      /** The board's values, in force where the cloud sets nothing. */
      baseline: Required<CloudSettings>;
      target: SettingsTarget;
      clock: Clock;
      onError: (err: Error) => void;
    },
  ) {}

  /** Applies the saved overrides, if any; a bad or unreadable file is reported and the board's values hold. */
  async load(): Promise<void> {
    try {
      const doc = await loadSettingsFile(this.opts.dataDir);
      if (doc !== null) this.replaceWith(doc.overrides, `saved:${doc.source}`, true, false);
    } catch (err) {
      this.opts.onError(err as Error);
    }
  }

  /** An mqtt config message: the whole state as JSON; empty clears every override. */
  fromConfigMessage(payload: Buffer, source: string): boolean {
    if (payload.length > SETTINGS_DOCUMENT_BYTES_MAX)
      return this.refuse(`${payload.length} bytes is over ${SETTINGS_DOCUMENT_BYTES_MAX}`, source);
    if (payload.length === 0) return this.replaceWith({}, source, true);
    let doc: unknown;
    try {
      doc = JSON.parse(payload.toString('utf8'));
    } catch (err) {
      return this.refuse(`not JSON: ${(err as Error).message}`, source);
    }
    return this.replaceWith(doc, source, true);
  }

  /** The twin's full desired properties (GET at connect): the settings keys among them are the whole state. */
  fromTwinDesired(desired: Record<string, unknown>): boolean {
    return this.replaceWith(desired, 'twin', false);
  }

  /** A desired-properties patch: only the keys it names change; null removes an override. */
  fromTwinPatch(patch: Record<string, unknown>): boolean {
    const changes = this.renamed(patch, 'twin');
    if (changes === null) return false;
    const next: Record<string, unknown> = { ...this.overrides };
    for (const name of SETTING_NAMES) {
      if (!(name in changes)) continue;
      if (changes[name] === null) delete next[name];
      else next[name] = changes[name];
    }
    return this.replaceWith(next, 'twin', false);
  }

  status(): SettingsStatus {
    return {
      effective: this.effective(this.overrides),
      overrides: { ...this.overrides },
      source: this.source,
      accepted: this.accepted,
      refused: this.refused,
      lastRefusal: this.lastRefusal,
    };
  }

  /** Waits for the write in progress (stop, tests). */
  async flush(): Promise<void> {
    while (this.writing !== null) await this.writing;
  }

  private effective(overrides: CloudSettings): Required<CloudSettings> {
    return { ...this.opts.baseline, ...overrides };
  }

  /** Validates `doc` as a whole state, applies it, persists it when it changed. `strict` refuses unknown keys. */
  private replaceWith(doc: unknown, source: string, strict: boolean, save = true): boolean {
    if (!isJsonObject(doc)) return this.refuse('expected a JSON object', source);
    const renamed = this.renamed(doc, source);
    if (renamed === null) return false;
    const next: CloudSettings = {};
    try {
      for (const [key, value] of Object.entries(renamed)) {
        if (SETTING_NAMES.includes(key as SettingName))
          next[key as SettingName] = checkValue(key as SettingName, value);
        else if (strict)
          throw new UplinkError('INVALID', `unknown setting "${key}"; known: ${SETTING_NAMES.join(', ')}`);
      }
      const effective = this.effective(next);
      // The store validates first and changes nothing when it refuses, so a refused document leaves all as it was.
      this.opts.target.applyStore({ ttlSecs: effective.ttlSecs, quotaBytes: effective.quotaBytes });
      this.opts.target.setBytesPerSecMax(effective.bytesPerSecMax);
    } catch (err) {
      return this.refuse((err as Error).message, source);
    }
    const changed = JSON.stringify(canonical(next)) !== JSON.stringify(canonical(this.overrides));
    this.overrides = canonical(next);
    this.source = Object.keys(this.overrides).length > 0 ? source : null;
    this.accepted += 1;
    // A retained document comes again at every connect; rewriting an unchanged file would only wear the flash.
    if (changed && save) this.persist();
    return true;
  }

  /**
   * `doc` with each deprecated name (DEPRECATED_NAMES) replaced by the current one, with a warning naming the
   * source and the field; null (refused, counted) when a document gives both names.
   */
  private renamed(doc: Record<string, unknown>, source: string): Record<string, unknown> | null {
    let out = doc;
    for (const [old, current] of Object.entries(DEPRECATED_NAMES)) {
      if (!(old in doc)) continue;
      if (current in doc) {
        this.refuse(`both "${current}" and "${old}" given ("${old}" is the deprecated name of "${current}")`, source);
        return null;
      }
      const warning = `cloud settings from ${source}: "${old}" is deprecated: name it "${current}"`;
      this.opts.onError(new UplinkError('INVALID', warning));
      const { [old]: value, ...rest } = out;
      out = { ...rest, [current]: value };
    }
    return out;
  }

  private refuse(reason: string, source: string): false {
    this.refused += 1;
    this.lastRefusal = { reason, source, atWallMs: this.opts.clock.wallMs() };
    this.opts.onError(new UplinkError('INVALID', `cloud settings from ${source} refused: ${reason}`));
    return false;
  }

  private persist(): void {
    if (this.writing !== null) {
      this.writeAgain = true;
      return;
    }
    const doc = { overrides: this.overrides, source: this.source ?? 'board', savedAtWallMs: this.opts.clock.wallMs() };
    this.writing = saveSettingsFile(this.opts.dataDir, doc)
      .catch((err: Error) =>
        this.opts.onError(new UplinkError('IO', `cannot save cloud settings: ${err.message}`, { cause: err })),
      )
      .finally(() => {
        this.writing = null;
        if (this.writeAgain) {
          this.writeAgain = false;
          this.persist();
        }
      });
  }
}
