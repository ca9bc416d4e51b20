import { readFile } from 'node:fs/promises';
import type { SerialBusConfig } from '../../firmware/config/types.js';
import type { Timers } from '../timers.js';
import { FakeSerialStream } from './fake.js';
import type { SerialOpener, SerialStream } from '../serial-port.js';

/** Replay files are small captures; a larger one is refused rather than held in memory. */
export const SIM_REPLAY_FILE_BYTES_MAX = 1024 * 1024;

/**
 * The sim board's serial device: replays a text file line by line (CRLF-terminated, as on the wire), one
 * line every replayLineIntervalMs, looping forever. Lines starting with "#" are comments and skipped.
 */
export function createSimSerial(config: SerialBusConfig, timers: Timers): SerialOpener {
  return {
    async open(): Promise<SerialStream> {
      if (!config.replayFile) throw new Error(`serial bus "${config.id}": no replayFile`);
      const text = await readFile(config.replayFile, 'latin1');
      if (text.length > SIM_REPLAY_FILE_BYTES_MAX)
        throw new Error(`${config.replayFile} exceeds ${SIM_REPLAY_FILE_BYTES_MAX} bytes`);
      const lines = text
        .split('\n')
        .map((line) => line.replace(/\r$/, ''))
        .filter((line) => line !== '' && !line.startsWith('#'));
      const stream = new FakeSerialStream();
      let index = 0;
      let cancel: () => void = () => {};
      const tick = (): void => {
        if (stream.isClosed || lines.length === 0) return;
        stream.inject(`${lines[index]}\r\n`);
        index = (index + 1) % lines.length;
        cancel = timers.setTimeout(tick, config.replayLineIntervalMs);
      };
      stream.onClose(() => cancel());
      cancel = timers.setTimeout(tick, config.replayLineIntervalMs);
      return stream;
    },
  };
}
