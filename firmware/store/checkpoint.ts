import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import type { StoreFile, StoreFs } from './fs.js';

/*
 * Two alternating checkpoint slots in one file, each in its own 4 KiB page so a torn write of one slot
 * can never damage the other. A slot is: u32 crc of the rest, u32 magic, then the fields below. The valid
 * slot with the higher generation wins; a write goes to the other slot, so a crash mid-write leaves the
 * previous checkpoint intact. Written at a bounded rate (checkpointIntervalMs), never once per ack.
 */
export const CHECKPOINT_FILE = 'checkpoint';
/** One slot per 4 KiB page (a flash page and the ext4 block), so a torn write stays inside its slot. */
export const CHECKPOINT_SLOT_BYTES = 4096;
const CHECKPOINT_MAGIC = 0x4b43504f; // 'OPCK'
/** Lanes a checkpoint slot can describe: 4 KiB / (1 + 48 + 16) bytes per lane, with room for the header. */
export const LANES_MAX = 48;
/** A lane's name in a slot, bytes: 48 lanes of 1 + 48 + 16 bytes fit one page with the header. */
export const LANE_NAME_BYTES_MAX = 48;
/** crc, magic, generation, clocks, lane count and last segment (42 bytes) before the lanes, rounded up. */
const SLOT_HEADER_BYTES = 48;

export interface LaneCursor {
  /** Everything ≤ ackedSeq is delivered. */
  ackedSeq: number;
  /** The next sequence number the lane would assign; keeps seqs unique even if every segment is gone. */
  nextSeq: number;
}

export interface CheckpointState {
  generation: number;
  /** Store-clock ms when written: the anchor the store clock resumes from after a restart. */
  storeMs: number;
  /** Wall-clock ms when written, and whether the wall clock was NTP-synchronised then. */
  wallMs: number;
  wallSynced: boolean;
  /** Highest segment number ever created, so numbers keep rising even after every segment is deleted. */
  lastSegmentNo: number;
  lanes: Map<string, LaneCursor>;
}

export function encodeCheckpoint(state: CheckpointState): Buffer {
  const slot = Buffer.alloc(CHECKPOINT_SLOT_BYTES);
  slot.writeUInt32LE(CHECKPOINT_MAGIC, 4);
  slot.writeDoubleLE(state.generation, 8);
  slot.writeDoubleLE(state.storeMs, 16);
  slot.writeDoubleLE(state.wallMs, 24);
  slot[32] = state.wallSynced ? 1 : 0;
  slot.writeUInt16LE(state.lanes.size, 34);
  slot.writeDoubleLE(state.lastSegmentNo, 36);
  let pos = SLOT_HEADER_BYTES;
  for (const [name, cursor] of state.lanes) {
    const nameBytes = Buffer.from(name, 'utf8');
    slot[pos] = nameBytes.length;
    pos += 1 + nameBytes.copy(slot, pos + 1);
    slot.writeDoubleLE(cursor.ackedSeq, pos);
    slot.writeDoubleLE(cursor.nextSeq, pos + 8);
    pos += 16;
  }
  slot.writeUInt32LE(crc32(slot.subarray(4)), 0);
  return slot;
}

/** Returns null for a slot that is blank, torn or damaged. */
export function decodeCheckpoint(slot: Buffer): CheckpointState | null {
  if (slot.length < CHECKPOINT_SLOT_BYTES) return null;
  if (slot.readUInt32LE(4) !== CHECKPOINT_MAGIC) return null;
  if (crc32(slot.subarray(4, CHECKPOINT_SLOT_BYTES)) !== slot.readUInt32LE(0)) return null;
  const laneCount = slot.readUInt16LE(34);
  if (laneCount > LANES_MAX) return null;
  const lanes = new Map<string, LaneCursor>();
  let pos = SLOT_HEADER_BYTES;
  for (let i = 0; i < laneCount; i++) {
    const nameBytes = slot[pos]!;
    if (nameBytes === 0 || nameBytes > LANE_NAME_BYTES_MAX) return null;
    const name = slot.toString('utf8', pos + 1, pos + 1 + nameBytes);
    pos += 1 + nameBytes;
    lanes.set(name, { ackedSeq: slot.readDoubleLE(pos), nextSeq: slot.readDoubleLE(pos + 8) });
    pos += 16;
  }
  return {
    generation: slot.readDoubleLE(8),
    storeMs: slot.readDoubleLE(16),
    wallMs: slot.readDoubleLE(24),
    wallSynced: slot[32] === 1,
    lastSegmentNo: slot.readDoubleLE(36),
    lanes,
  };
}

export class CheckpointFile {
  private constructor(
    private readonly file: StoreFile,
    private readonly readOnly: boolean,
  ) {}

  /**
   * Opens (creating if needed) the checkpoint file and returns the newest valid state, if any. The caller
   * must sync `dir` before relying on a newly created file's name.
   */
  static async open(
    fs: StoreFs,
    dir: string,
    readOnly: boolean,
  ): Promise<{ checkpoint: CheckpointFile | null; state: CheckpointState | null }> {
    const path = join(dir, CHECKPOINT_FILE);
    const names = await fs.readdir(dir);
    if (!names.includes(CHECKPOINT_FILE)) {
      if (readOnly) return { checkpoint: null, state: null };
      // Created empty: a slot that was never written reads as blank, and the caller syncs the directory.
      const file = await fs.open(path, 'create');
      return { checkpoint: new CheckpointFile(file, false), state: null };
    }
    const file = await fs.open(path, readOnly ? 'read' : 'readwrite');
    const both = Buffer.alloc(2 * CHECKPOINT_SLOT_BYTES);
    await file.read(both, 0);
    const a = decodeCheckpoint(both.subarray(0, CHECKPOINT_SLOT_BYTES));
    const b = decodeCheckpoint(both.subarray(CHECKPOINT_SLOT_BYTES));
    const state = a && b ? (a.generation >= b.generation ? a : b) : (a ?? b);
    if (readOnly) {
      await file.close();
      return { checkpoint: null, state };
    }
    return { checkpoint: new CheckpointFile(file, readOnly), state };
  }

  /** Durably writes `state` into the slot its generation selects; the other slot keeps the previous one. */
  async write(state: CheckpointState): Promise<void> {
    if (this.readOnly) throw new Error('checkpoint opened read-only');
    const slot = (state.generation % 2) * CHECKPOINT_SLOT_BYTES;
    await this.file.write(encodeCheckpoint(state), slot);
    await this.file.datasync();
  }

  close(): Promise<void> {
    return this.file.close();
  }
}
