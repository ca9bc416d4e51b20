import type { Clock } from '../clock.js';
import type { RingLog } from '../store/log.js';
import type { Pump, ResyncHook } from './pump.js';
import { CloudSettingsManager } from './settings.js';
import type { UplinkTransport } from './types.js';

/** The uplink's cloud-pushed settings: loaded before the first connect, re-read on each, followed live. */
export interface UplinkSettings {
  readonly manager: CloudSettingsManager;
  /** First on every connect (see settingsHook). */
  readonly hook: ResyncHook;
  /** Stops following pushes and saves what is in force. */
  stop(): Promise<void>;
}

/** Loads the saved settings (so they hold before the first connect) and follows the transport's pushes. */
export async function startSettings(o: {
  dataDir: string;
  log: RingLog;
  /** board.json's cap, bytes per second (0: none): the baseline the cloud's override. */
  bytesPerSecMax: number;
  transport: UplinkTransport;
  pump: Pump;
  clock: Clock;
  onError: (err: Error) => void;
}): Promise<UplinkSettings> {
  const { log, pump } = o;
  const manager = new CloudSettingsManager({
    dataDir: o.dataDir,
    // The log's settings at start are the board's (storage section); the cloud's override them.
    baseline: { ttlSecs: log.opts.ttlSecs, quotaBytes: log.opts.quotaBytes, bytesPerSecMax: o.bytesPerSecMax },
    target: { applyStore: (s) => log.applySettings(s), setBytesPerSecMax: (n) => pump.setBytesPerSecMax(n) },
    clock: o.clock,
    onError: o.onError,
  });
  await manager.load();
  const unsubscribes = listenForSettings(o.transport, manager);
  return {
    manager,
    hook: settingsHook(o.transport, manager),
    async stop() {
      for (const unsubscribe of unsubscribes) unsubscribe();
      await manager.flush();
    },
  };
}

/** Settings pushed while connected: desired-property patches (azure) or config topic messages (mqtt). */
function listenForSettings(transport: UplinkTransport, settings: CloudSettingsManager): Array<() => void> {
  const out: Array<() => void> = [];
  if (transport.twin !== undefined) out.push(transport.twin.onDesired((patch) => void settings.fromTwinPatch(patch)));
  const topic = transport.configTopic;
  if (topic !== undefined)
    out.push(topic.onMessage((payload) => void settings.fromConfigMessage(payload, `mqtt:${topic.topic}`)));
  return out;
}

/**
 * First on every connect. azure: a twin GET, since patches sent while offline were missed. mqtt: a
 * SUBSCRIBE, which makes the broker send the retained document; it is applied when it arrives (normally in
 * the same round trip as the SUBACK) rather than waited for, because a broker with no document sends nothing.
 */
function settingsHook(transport: UplinkTransport, settings: CloudSettingsManager): ResyncHook {
  return {
    name: 'settings',
    async run() {
      if (transport.twin !== undefined) settings.fromTwinDesired((await transport.twin.get()).desired);
      else if (transport.configTopic !== undefined) await transport.configTopic.subscribe();
    },
  };
}
