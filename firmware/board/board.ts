import { access } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { DRIVERS } from '../../drivers/registry.js';
import { parseBuses } from '../config/buses.js';
import { DEVICE_ID_PATTERN, parseDevices, type DeviceSchemas } from '../config/devices.js';
import { readHubTls, parseHubConfig } from '../hub/config.js';
import { parseUplinkConfig } from '../uplink/config.js';
import { checkDeviceId, loadUplinkFiles } from '../uplink/uplink-files.js';
import type { ProvisioningConfig } from '../uplink/provisioning/config.js';
import { loadProvisioningFiles } from '../uplink/provisioning/files.js';
import { resolveRegistrationId } from '../uplink/provisioning/registration-id.js';
import { collect, collectAsync, ConfigError, throwCollected } from '../config/errors.js';
import { fieldsOf } from '../config/schema.js';
import { displayPath, LayeredDocument, readJsonObject } from '../config/layers.js';
import { isJsonObject } from '../json.js';
import type { ConfigNode } from '../config/node.js';
import { parseMetrics } from '../config/metrics.js';
import { parseOta } from '../config/ota.js';
import { parsePage } from '../config/page.js';
import { parseStorage, type StorageConfig } from '../config/storage.js';
import type { BusConfig, DeviceConfig, LoadedBoard } from '../config/types.js';

/** A variant may extend a base which may extend another; deeper chains are a mistake (or a cycle). */
export const BOARD_EXTENDS_DEPTH_MAX = 4;
export const VARIANT_NAME_PATTERN = /^[a-z0-9][a-z0-9-]{0,63}$/;

const TOP_FIELDS = [
  'board',
  'identity',
  'uplink',
  'storage',
  'routes',
  'hub',
  'buses',
  'devices',
  'metrics',
  'ota',
  'page',
];
const VARIANT_FIELDS = ['variant', 'extends', 'description', 'buses', 'devices', 'storage'];
/** Sections of board.json layered over the variant; the rest belong to board.json alone. */
const OVERRIDABLE_FIELDS = ['buses', 'devices', 'storage'];

interface VariantLayer {
  file: string;
  json: Record<string, unknown>;
}

interface Hardware {
  description: string;
  buses: Record<string, BusConfig>;
  devices: DeviceConfig[];
  storage: StorageConfig;
}

export interface LoadBoardOptions {
  /** Where variant files live. Default: boards/ next to board.json. */
  boardsDir?: string;
  /**
   * Also read the files the board names (uplink certificates and connection string file, the hub's TLS chain
   * and key), as `run` and `board check` do. `outpost status` and `outpost log` only need the data directory
   * and may run as a user who cannot read a key.
   */
  files?: boolean;
  /** The drivers devices are validated against. Default: every driver outpost ships (drivers/registry.ts). */
  drivers?: DeviceSchemas;
}

/**
 * Loads the active board: board.json, the variant it names and the bases that variant extends, merged and
 * validated, and every section `run` uses (uplink, hub, routes, metrics) validated by the same code `run`
 * uses. Each section is checked even when another failed; the problems are thrown together (ConfigErrors),
 * each naming the file, the JSON path and what was expected.
 */
export async function loadBoard(boardJsonPath: string, opts: LoadBoardOptions = {}): Promise<LoadedBoard> {
  const file = resolve(boardJsonPath);
  const top = await readJsonObject(file);
  const topDoc = new LayeredDocument(file);
  topDoc.apply(top, file);
  const topNode = topDoc.root();
  const errors: ConfigError[] = [];
  collect(errors, () => topNode.keys(TOP_FIELDS));
  const variantNode = topNode.field('board');
  const variant = collect(errors, () =>
    variantNode.string({ pattern: VARIANT_NAME_PATTERN, describe: 'a variant ' + 'name like "rpi4"' }),
  );
  const boardsDir = opts.boardsDir === undefined ? await defaultBoardsDir(file) : resolve(opts.boardsDir);
  const layers =
    variant === undefined
      ? undefined
      : await collectAsync(errors, () => loadVariantChain(boardsDir, variant, variantNode));
  const hardware =
    layers === undefined
      ? undefined
      : collect(errors, () => {
          const merged = new LayeredDocument(file);
          for (const layer of layers)
            merged.apply(
              pick(
                layer.json,
                VARIANT_FIELDS.filter((f) => f !== 'variant' && f !== 'extends'),
              ),
              layer.file,
            );
          merged.apply(pick(top, OVERRIDABLE_FIELDS), file);
          return parseHardware(merged.root(), opts.drivers ?? DRIVERS);
        });
  const metrics = collect(errors, () => parseMetrics(topNode.field('metrics')));
  const page = collect(errors, () => parsePage(topNode.field('page'), dirname(file)));
  const ota = collect(errors, () => parseOta(topNode.field('ota'), dirname(file)));
  const uplink = collect(errors, () => parseUplinkConfig(top['uplink'], file, variant));
  const provisioning = uplink?.protocol === 'azure' ? uplink.provisioning : undefined;
  // A provisioning section that failed is reported once, as itself, not again as a missing gateway id.
  const uplinkValue = top['uplink'];
  const dpsAsked = isJsonObject(uplinkValue) && uplinkValue['provisioning'] !== undefined;
  const gatewayId = await collectAsync(errors, () => parseIdentity(topNode.field('identity'), provisioning, dpsAsked));
  const hub = collect(errors, () => parseHubConfig({ hub: top['hub'], routes: top['routes'] }, file, gatewayId));
  if (gatewayId !== undefined) collect(errors, () => checkConnectionDeviceId(top['uplink'], file, gatewayId));
  if (opts.files && errors.length === 0) {
    if (provisioning !== undefined && uplink?.protocol === 'azure')
      await collectAsync(errors, () => loadProvisioningFiles({ ...uplink, provisioning }));
    else if (uplink?.protocol === 'mqtt' || uplink?.protocol === 'azure')
      await collectAsync(errors, () => loadUplinkFiles(uplink, gatewayId!));
    if (hub !== undefined) await collectAsync(errors, () => readHubTls(hub));
  }
  throwCollected(errors);
  return {
    file,
    variant: variant!,
    variantFile: layers![layers!.length - 1]!.file,
    description: hardware!.description,
    identity: { gatewayId: gatewayId! },
    storage: { ...hardware!.storage, dataDir: resolve(dirname(file), hardware!.storage.dataDir) },
    uplink: top['uplink'],
    routes: top['routes'],
    hub: top['hub'],
    metrics: metrics ?? null,
    page: page ?? null,
    ota: ota!,
    buses: hardware!.buses,
    devices: hardware!.devices,
  };
}

/** Checked even when the rest of the uplink is wrong: a gateway under another IoT Hub identity is its own mistake. */
function checkConnectionDeviceId(uplink: unknown, file: string, gatewayId: string): void {
  const connectionString = isJsonObject(uplink) ? uplink['connectionString'] : undefined;
  if (typeof connectionString !== 'string') return;
  checkDeviceId({ boardFile: displayPath(file), connectionStringFile: undefined }, connectionString, gatewayId);
}

/**
 * With DPS the gateway id may be left out, so one board file fits a fleet: it is then the registration id
 * (DPS's group enrollments name the device after it).
 */
async function parseIdentity(
  node: ConfigNode,
  provisioning: ProvisioningConfig | undefined,
  dpsAsked: boolean,
): Promise<string | undefined> {
  if (!node.missing || !dpsAsked) node.keys(fieldsOf('identity'));
  const idNode = node.missing ? node : node.field('gatewayId');
  if (idNode.missing && dpsAsked && provisioning === undefined) return undefined;
  if (idNode.missing && provisioning !== undefined) {
    try {
      return await resolveRegistrationId(provisioning.registrationIdTemplate);
    } catch (err) {
      const why = (err as Error).message;
      return idNode.fail(`a gateway id, or a registration id from uplink.provisioning.registrationId (${why})`);
    }
  }
  return idNode.string({ pattern: DEVICE_ID_PATTERN, describe: 'a gateway id (IoT Hub device id rules)' });
}

/** Validates one variant file from boards/ (with the bases it extends) on its own, without a board.json. */
export async function loadVariant(
  variantFile: string,
  drivers: DeviceSchemas = DRIVERS,
): Promise<Hardware & { variant: string }> {
  const file = resolve(variantFile);
  const variant = basename(file, '.json');
  const layers = await loadVariantChain(dirname(file), variant, undefined);
  const merged = new LayeredDocument(file);
  for (const layer of layers)
    merged.apply(pick(layer.json, ['description', 'buses', 'devices', 'storage']), layer.file);
  return { variant, ...parseHardware(merged.root(), drivers) };
}

function parseHardware(root: ConfigNode, drivers: DeviceSchemas): Hardware {
  const buses = parseBuses(root.field('buses'));
  return {
    description: root.field('description').string({ default: '' }),
    buses,
    devices: root.field('devices').missing ? [] : parseDevices(root.field('devices'), buses, drivers),
    storage: parseStorage(root.field('storage')),
  };
}

/** Base first, the named variant last. `reference` is the field that named the variant, for errors. */
async function loadVariantChain(
  boardsDir: string,
  variant: string,
  reference: ConfigNode | undefined,
): Promise<VariantLayer[]> {
  const chain: VariantLayer[] = [];
  let name = variant;
  let ref = reference;
  for (let depth = 0; ; depth++) {
    if (depth >= BOARD_EXTENDS_DEPTH_MAX) {
      ref?.fail(`a chain of at most ${BOARD_EXTENDS_DEPTH_MAX} variant files (is there a cycle?)`);
    }
    const file = join(boardsDir, `${name}.json`);
    if (ref && !(await exists(file))) ref.fail(`the name of a variant file in ${displayPath(boardsDir)}`);
    const json = await readJsonObject(file);
    const doc = new LayeredDocument(file);
    doc.apply(json, file);
    const node = doc.root();
    node.keys(VARIANT_FIELDS);
    node.field('variant').oneOf([name]);
    chain.unshift({ file, json });
    const extendsNode = node.field('extends');
    if (extendsNode.missing) return chain;
    name = extendsNode.string({ pattern: VARIANT_NAME_PATTERN, describe: 'the name of a base variant file' });
    ref = extendsNode;
  }
}

/**
 * boards/ beside board.json; a board file kept inside a boards/ folder itself (the annotated examples in
 * boards/examples/) takes its variants from that folder.
 */
async function defaultBoardsDir(file: string): Promise<string> {
  const beside = join(dirname(file), 'boards');
  if (await exists(beside)) return beside;
  for (let dir = dirname(file), depth = 0; depth < 2; depth++, dir = dirname(dir))
    if (basename(dir) === 'boards') return dir;
  return beside;
}

async function exists(file: string): Promise<boolean> {
  try {
    await access(file);
    return true;
  } catch {
    return false;
  }
}

function pick(json: Record<string, unknown>, keys: readonly string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const key of keys) if (json[key] !== undefined) out[key] = json[key];
  return out;
}

export { ConfigError };
