// `node scripts/ota-sign.js --sign-key <file> [--url URL] <tarball> ...`: writes the signed manifest beside
// release tarballs already built (npm run release -- --sign-key does the same while building).
import { readSigningKey, signTarball } from './pack/sign.js';

const args = process.argv.slice(2);
const option = (name) => {
  const i = args.indexOf(name);
  if (i < 0) return undefined;
  const [, value] = args.splice(i, 2);
  return value;
};
const keyFile = option('--sign-key');
const url = option('--url') ?? '';
if (!keyFile || args.length === 0) {
  console.error('usage: node scripts/ota-sign.js --sign-key <file> [--url URL] <tarball> ...');
  process.exit(2);
}
const key = readSigningKey(keyFile);
for (const tarball of args) console.log(`signed ${tarball}: ${await signTarball(tarball, key, url)}`);
