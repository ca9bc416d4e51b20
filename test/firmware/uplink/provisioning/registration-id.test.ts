import t from 'tap';
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { deriveDeviceKey } from '../../../../firmware/uplink/provisioning/cache.js';
import {
  checkRegistrationIdTemplate,
  resolveRegistrationId,
  type RegistrationIdSources,
} from '../../../../firmware/uplink/provisioning/registration-id.js';
import { tempDir } from '../../../support/tmp.js';

/** The registration id from the board's own identifiers, and the group enrollment's key derivation. */

function sources(t: Parameters<typeof tempDir>[0], files: Record<string, string>): RegistrationIdSources {
  const dir = tempDir(t);
  for (const [name, text] of Object.entries(files)) writeFileSync(path.join(dir, name), text);
  return {
    serialPaths: [path.join(dir, 'proc-serial'), path.join(dir, 'sys-serial')],
    machineIdPath: path.join(dir, 'machine-id'),
    hostname: () => 'Pump-House-7',
  };
}

t.test('placeholders come from the device tree, machine-id and host name, lower-cased', async (t) => {
  // The device tree's strings end in NUL, as /proc/device-tree/serial-number does on a Pi.
  const src = sources(t, { 'sys-serial': '10000000ABCDEF12\0', 'machine-id': '3d1219c7c4c5404aaa1f6d2a48adfda4\n' });
  t.equal(await resolveRegistrationId('pump-{serial}', src), 'pump-10000000abcdef12', 'the second serial path');
  t.equal(await resolveRegistrationId('{machineId}', src), '3d1219c7c4c5404aaa1f6d2a48adfda4');
  t.equal(await resolveRegistrationId('{hostname}.{serial}', src), 'pump-house-7.10000000abcdef12');
  t.equal(await resolveRegistrationId('site-7', src), 'site-7', 'literal');
});

t.test('a missing or empty source, or an id DPS would refuse, is an error naming it', async (t) => {
  const src = sources(t, { 'machine-id': '' });
  await t.rejects(
    resolveRegistrationId('{serial}', src),
    /\{serial\}: none of .*proc-serial, .*sys-serial exists \(not a Raspberry Pi\? use \{machineId\}\)/,
  );
  await t.rejects(resolveRegistrationId('{machineId}', src), /\{machineId\}: .*machine-id is empty/);
  await t.rejects(resolveRegistrationId('gw.', src), /registration id "gw\." \(from "gw\."\) breaks DPS's rules/);
  t.match(checkRegistrationIdTemplate('gw-{mac}'), /not \{mac\}/);
  t.match(checkRegistrationIdTemplate('gw/1'), /letters, digits/);
  t.equal(checkRegistrationIdTemplate('gw-{serial}'), null);
});

t.test(
  'the group device key is base64(HMAC-SHA256(base64decode(group key), registration id)), as openssl computes it',
  async (t) => {
    const groupKey = Buffer.from('an example group key, 32 bytes!!').toString('base64');
    const hexKey = Buffer.from(groupKey, 'base64').toString('hex');
    const mac = execFileSync('openssl', ['dgst', '-sha256', '-mac', 'HMAC', '-macopt', `hexkey:${hexKey}`, '-binary'], {
      input: 'pump-0001',
    });
    t.equal(deriveDeviceKey(groupKey, 'pump-0001'), mac.toString('base64'));
  },
);
