/**
 * Child process of the switch power-cut test: applies one release with every SlotFs call reported to a file
 * (writeSync: a SIGKILL keeps what write(2) returned) and, when told, SIGKILLs itself just before the
 * operation with that number, so the parent sees the layout the cut left.
 * usage: switch-child <tarball> <manifest.json> <releasesDir> <stateDir> <killAt (0 = never)> <report>
 */
import { openSync, readFileSync, writeSync } from 'node:fs';
import { applyRelease } from '../../../firmware/ota/apply.js';
import { parseManifest } from '../../../firmware/ota/manifest.js';
import { realSlotFs, type SlotFs } from '../../../firmware/ota/slots.js';

const [tarball, manifestFile, releasesDir, stateDir, killAtText, reportFile] = process.argv.slice(2);
const report = openSync(reportFile!, 'a');
const killAt = Number(killAtText);
let n = 0;

function step<A extends unknown[]>(name: string, op: (...args: A) => Promise<void>): (...args: A) => Promise<void> {
  return async (...args: A) => {
    n++;
    writeSync(report, `${n} ${name} ${JSON.stringify(args)}\n`);
    if (n === killAt) process.kill(process.pid, 'SIGKILL');
    await op(...args);
  };
}

const fs: SlotFs = {
  symlink: step('symlink', realSlotFs.symlink),
  rename: step('rename', realSlotFs.rename),
  syncPath: step('sync', realSlotFs.syncPath),
  writeFile: step('write', realSlotFs.writeFile),
  rm: step('rm', realSlotFs.rm),
};
const manifest = parseManifest(readFileSync(manifestFile!, 'utf8'), manifestFile!);
await applyRelease(tarball!, manifest, { releasesDir: releasesDir!, stateDir: stateDir! }, { healthSecs: 30, fs });
writeSync(report, 'done\n');
