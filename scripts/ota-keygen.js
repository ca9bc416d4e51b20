// `node scripts/ota-keygen.js <name>`: a new ed25519 key pair for signing OTA releases. Writes <name>.key
// (the private key, PKCS#8 PEM, 0600: keep it off the build farm's shared disks) and <name>.pem (the public
// key, SPKI PEM: give it to install.sh with OUTPOST_OTA_KEYS, it lands in /etc/outpost/ota-keys/). A second
// key is a rotation: install both public keys, sign with the new one, remove the old one later.
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, writeFileSync } from 'node:fs';

const name = process.argv[2];
if (!name || name.startsWith('-')) {
  console.error('usage: node scripts/ota-keygen.js <name>   (writes <name>.key and <name>.pem)');
  process.exit(2);
}
for (const file of [`${name}.key`, `${name}.pem`]) {
  if (existsSync(file)) {
    console.error(`ota-keygen: ${file} exists; not overwriting a key`);
    process.exit(1);
  }
}
const { privateKey, publicKey } = generateKeyPairSync('ed25519');
writeFileSync(`${name}.key`, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600, flag: 'wx' });
writeFileSync(`${name}.pem`, publicKey.export({ type: 'spki', format: 'pem' }), { mode: 0o644, flag: 'wx' });
console.log(`ota-keygen: ${name}.key (private, 0600) and ${name}.pem (public)`);
