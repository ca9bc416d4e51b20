import { cpSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { createLogger } from '../../../firmware/log/logger.js';
import { REDACTED, registerSecret } from '../../../firmware/log/redact.js';
import { freePort } from '../../support/brokers.js';
import { tempDir } from '../../support/tmp.js';
import { bundleGateway, isReady, startGateway } from '../../support/gateway-process.js';

const ROOT = new URL('../../../', import.meta.url).pathname;
const SAS_KEY = 'c2VjcmV0LWtleS1mb3ItdGVzdHMtMTIzNDU2Nzg5MA==';
const SAS_TOKEN =
  'SharedAccessSignature sr=myhub.example.net%2Fdevices%2Fchild-1' +
  '&sig=Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MA%3D%3D&se=1900000000';
/** The config error for the mistyped url scheme below: it names the field and shows the password redacted. */
const TYPO_URL_ERROR = new RegExp(
  /board\.json: \$\.uplink\.url: expected mqtt:\/\/host:port or mqtts:\/\/host:port, /.source +
    /got "mqttx:\/\/gw:\[redacted\]@127\.0\.0\.1:1"/.source,
);
const PEM =
  '-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7\n-----END PRIVATE KEY-----';

function capture(): { write(line: string): void; text(): string; lines(): Array<Record<string, unknown>> } {
  const chunks: string[] = [];
  return {
    write: (line: string) => void chunks.push(line),
    text: () => chunks.join(''),
    lines: () =>
      chunks
        .join('')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

/** A gateway directory: the real boards/ beside a board.json with the given extra sections. */
function gatewayDir(t: Parameters<typeof tempDir>[0], extra: Record<string, unknown>): string {
  const dir = tempDir(t);
  cpSync(join(ROOT, 'boards'), join(dir, 'boards'), { recursive: true });
  writeFileSync(
    join(dir, 'board.json'),
    JSON.stringify({ board: 'sim', identity: { gatewayId: 'gw-log' }, storage: { dataDir: './data' }, ...extra }),
  );
  return dir;
}

t.test('errors carrying SAS tokens, keys, connection strings and PEM keys are scrubbed in every field', async (t) => {
  const out = capture();
  const logger = createLogger({ destination: out, level: 'debug' });
  const err = new Error(
    `auth failed for token ${SAS_TOKEN} via HostName=h.example.net;DeviceId=d;SharedAccessKey=${SAS_KEY}`,
  );
  err.cause = new Error(`bad key file:\n${PEM}`);
  logger.error(
    {
      err,
      config: { url: 'mqtts://gw:hunter2pass@broker:8883', password: 'hunter3pass', nested: { primaryKey: SAS_KEY } },
    },
    `publish refused: ${SAS_TOKEN}`,
  );
  logger.warn(`login with {"password":"json-secret-1"} failed`);
  logger.debug({ headers: { authorization: 'Bearer abcdefghijklmnop' } }, 'request');
  const text = out.text();
  for (const secret of [
    SAS_KEY,
    'Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MA',
    'hunter2pass',
    'hunter3pass',
    'MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7',
    'json-secret-1',
    'abcdefghijklmnop',
  ]) {
    t.notOk(text.includes(secret), `${secret.slice(0, 12)}… is not in the log`);
  }
  const [first, second, third] = out.lines();
  t.equal(first!.level, 'error', 'levels are labels journald users can grep');
  t.match(String(first!.msg), /publish refused: SharedAccessSignature \[redacted\]/);
  t.match(JSON.stringify(first!.err), /SharedAccessKey=\[redacted\]/, 'the stack and the cause are scrubbed too');
  t.match(JSON.stringify(first!.err), /DeviceId=d/, 'what is not secret stays readable');
  t.same((first!.config as { nested: unknown }).nested, { primaryKey: REDACTED });
  t.equal((first!.config as { url: string }).url, `mqtts://gw:${REDACTED}@broker:8883`);
  t.equal(second!.level, 'warn');
  t.equal(third!.level, 'debug');
});

t.test('a registered secret is removed even where no pattern recognises it', async (t) => {
  const out = capture();
  registerSecret('bare-uplink-secret-42');
  createLogger({ destination: out }).warn(
    { detail: 'server said: bare-uplink-secret-42 is wrong' },
    'login bare-uplink-secret-42',
  );
  t.notOk(out.text().includes('bare-uplink-secret-42'));
  t.equal(out.lines()[0]!.msg, `login ${REDACTED}`);
});

t.test('real gateway flows: a config typo and a refused uplink never print the password', async (t) => {
  const bundle = await bundleGateway(tempDir(t));

  await t.test(
    'a mistyped url scheme fails start-up with a config error naming the field, not the password',
    async (t) => {
      const dir = gatewayDir(t, { uplink: { protocol: 'mqtt', url: 'mqttx://gw:TypoSecret-77@127.0.0.1:1' } });
      const gw = startGateway(bundle, ['run', '--board', join(dir, 'board.json')], { OUTPOST_HUB_PORT: '0' });
      t.equal(await gw.exited(), 1);
      const fatal = gw.lines().find((l) => l.level === 'fatal');
      t.match(String(fatal?.msg), TYPO_URL_ERROR);
      t.notOk(gw.output().includes('TypoSecret-77'), gw.output());
    },
  );

  await t.test(
    'connect errors carry the url with its credentials: logged scrubbed, and so is the debug config dump',
    async (t) => {
      const closedPort = await freePort();
      const dir = gatewayDir(t, {
        uplink: {
          protocol: 'mqtt',
          url: `mqtt://gw:UrlSecret-88@127.0.0.1:${closedPort}`,
          username: 'gw',
          password: 'FieldSecret-99',
        },
      });
      const gw = startGateway(bundle, ['run', '--board', join(dir, 'board.json')], {
        OUTPOST_HUB_PORT: '0',
        OUTPOST_LOG_LEVEL: 'debug',
      });
      await gw.waitFor(isReady, 'ready');
      const warning = await gw.waitFor((l) => l.level === 'warn' && l.source === 'uplink', 'an uplink error');
      gw.proc.kill('SIGTERM');
      t.equal(await gw.exited(), 0);
      t.match(
        String(warning.msg),
        new RegExp(`uplink: cannot connect to mqtt://gw:\\[redacted\\]@127\\.0\\.0\\.1:${closedPort}`),
      );
      const dump = gw.lines().find((l) => l.msg === 'board sections') as
        { uplink: Record<string, unknown> } | undefined;
      t.equal(dump?.uplink.password, REDACTED, 'the password field is redacted by name');
      t.equal(dump?.uplink.username, 'gw', 'the user name is not a secret');
      for (const secret of ['UrlSecret-88', 'FieldSecret-99'])
        t.notOk(gw.output().includes(secret), `${secret} is not in the output`);
    },
  );

  await t.test('an azure connection string is redacted in the config dump and in every connect error', async (t) => {
    const closedPort = await freePort();
    const connectionString = `HostName=127.0.0.1:${closedPort};DeviceId=gw-log;SharedAccessKey=${SAS_KEY}`;
    const dir = gatewayDir(t, { uplink: { protocol: 'azure', connectionString } });
    const gw = startGateway(bundle, ['run', '--board', join(dir, 'board.json')], {
      OUTPOST_HUB_PORT: '0',
      OUTPOST_LOG_LEVEL: 'debug',
    });
    await gw.waitFor(isReady, 'ready');
    await gw.waitFor((l) => l.level === 'warn' && l.source === 'uplink', 'an uplink error');
    gw.proc.kill('SIGTERM');
    t.equal(await gw.exited(), 0);
    t.notOk(gw.output().includes(SAS_KEY), 'the key is not in the output');
    t.notOk(gw.output().includes(encodeURIComponent(SAS_KEY)), 'nor its URL-encoded form');
    const dump = gw.lines().find((l) => l.msg === 'board sections') as { uplink: Record<string, unknown> } | undefined;
    t.equal(dump?.uplink.connectionString, REDACTED);
  });
});
