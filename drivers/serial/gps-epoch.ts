import type { GgaFix, RmcFix } from './nmea.js';

/**
 * A receiver reports each navigation epoch (usually one per second) as a burst of sentences that all carry
 * the epoch's UTC time: at 9600 baud a GGA + RMC pair takes about 150 ms to arrive. A reading must come
 * from one epoch only, so sentences are gathered per epoch here and the epoch is handed on once, whole.
 */
export interface GpsEpoch {
  /** The epoch's UTC time of day in ms; null for receivers that leave the time empty before a fix. */
  timeMs: number | null;
  /** Every GGA of the epoch in arrival order, with its talker (GP, GL, GN...). */
  ggas: { talker: string; gga: GgaFix }[];
  rmc: RmcFix | undefined;
  /** The date from a ZDA of the epoch (YYYY-MM-DD), if the receiver sends one. */
  zdaDate: string | null;
}

/**
 * Most sentences one epoch may hold: one GGA per constellation (GPS, GLONASS, Galileo, BeiDou, QZSS, NavIC)
 * and a GN one, an RMC and a ZDA make 9; the margin is for odd talkers. More is a broken or hostile stream,
 * refused so the epoch's memory stays bounded.
 */
export const GPS_EPOCH_SENTENCES_MAX = 16;
/**
 * How many recent epochs teach which sentences make a whole epoch. One is not enough: after a sentence lost
 * to a bad checksum, the next epoch would be cut short and reported without it. A sentence the receiver
 * stops sending delays readings to the start of the following epoch for this many epochs, then is forgotten.
 */
const GPS_EPOCH_SHAPE_EPOCHS = 3;

type AddResult = 'added' | 'late' | 'refused';

interface OpenEpoch {
  epoch: GpsEpoch;
  /** talker + type of every sentence seen for this epoch, including any that came after it was handed on. */
  addresses: Set<string>;
  delivered: boolean;
}

/**
 * Gathers sentences into epochs. An epoch ends when a sentence with another time arrives, or when a sentence
 * repeats (a receiver without a time repeats its empty one). It is delivered as soon as it holds every
 * sentence the last few epochs held (the way gpsd learns the sentence that ends a receiver's cycle), else
 * when it ends, so the first epoch after start is delivered when the second begins.
 */
export class GpsEpochAssembler {
  private current: OpenEpoch | undefined;
  private readonly recentShapes: Set<string>[] = [];

  constructor(private readonly onEpoch: (epoch: GpsEpoch) => void) {}

  /** Files a sentence under its epoch; `apply` writes what the sentence says into it. */
  add(address: string, timeMs: number | null, apply: (epoch: GpsEpoch) => void): AddResult {
    let open = this.current;
    if (open !== undefined && open.epoch.timeMs === timeMs && !open.addresses.has(address)) {
      if (open.addresses.size >= GPS_EPOCH_SENTENCES_MAX) return 'refused';
      open.addresses.add(address);
      if (open.delivered) return 'late';
      apply(open.epoch);
    } else {
      if (open !== undefined) this.end(open);
      const epoch: GpsEpoch = { timeMs, ggas: [], rmc: undefined, zdaDate: null };
      open = { epoch, addresses: new Set([address]), delivered: false };
      this.current = open;
      apply(open.epoch);
    }
    if (this.isWhole(open.addresses)) this.deliver(open);
    return 'added';
  }

  private end(open: OpenEpoch): void {
    this.deliver(open);
    this.recentShapes.push(open.addresses);
    if (this.recentShapes.length > GPS_EPOCH_SHAPE_EPOCHS) this.recentShapes.shift();
  }

  private deliver(open: OpenEpoch): void {
    if (open.delivered) return;
    open.delivered = true;
    this.onEpoch(open.epoch);
  }

  private isWhole(addresses: Set<string>): boolean {
    if (this.recentShapes.length === 0) return false;
    return this.recentShapes.every((shape) => [...shape].every((address) => addresses.has(address)));
  }
}
