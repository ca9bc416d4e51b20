import { join } from 'node:path';
import { nodeFs, type StoreFs } from './fs.js';
import { emptySegment, parseSegmentName, scanSegment } from './segment.js';

export interface SegmentVerdict {
  lane: string;
  segment: string;
  bytes: number;
  records: number;
  firstSeq: number;
  lastSeq: number;
  sealed: boolean;
  damage: Array<{ fromByte: number; toByte: number; kind: 'corrupt' | 'torn-tail' }>;
}

/** Reads every record of every segment and checks its CRC, without changing anything on disk. */
export async function verifyLog(dir: string, recordBytesMax: number, fs: StoreFs = nodeFs): Promise<SegmentVerdict[]> {
  const out: SegmentVerdict[] = [];
  const lanesDir = join(dir, 'lanes');
  for (const lane of (await fs.readdir(lanesDir)).sort()) {
    const names = (await fs.readdir(join(lanesDir, lane))).filter((n) => parseSegmentName(n)).sort();
    for (const name of names) {
      const parsed = parseSegmentName(name)!;
      const seg = emptySegment(parsed.no, parsed.baseSeq, join(lanesDir, lane, name));
      const file = await fs.open(seg.path, 'read');
      try {
        const size = await file.size();
        const scan = await scanSegment(file, size, seg, recordBytesMax);
        const damage: SegmentVerdict['damage'] = scan.damage.map((d) => ({ ...d, kind: 'corrupt' as const }));
        if (scan.validEnd < size) damage.push({ fromByte: scan.validEnd, toByte: size, kind: 'torn-tail' });
        out.push({
          lane,
          segment: name,
          bytes: size,
          records: seg.records,
          firstSeq: seg.firstSeq,
          lastSeq: seg.lastSeq,
          sealed: scan.sealed,
          damage,
        });
      } finally {
        await file.close();
      }
    }
  }
  return out;
}
