import t from 'tap';
import { parseSasToken, verifySas, makeSasToken } from '../../../firmware/auth/sas.js';
import { parseRoute } from '../../../firmware/router/routes.js';
import { RouteError, evaluate } from '../../../firmware/router/condition.js';
import { classifyPublish } from '../../../firmware/hub/topics.js';
import { prng, testSeed } from '../../support/prng.js';
import { newKey } from '../../support/hub-fixture.js';

/** Seeded, bounded fuzzing of everything that parses a child's or an operator's text. */

const seed = testSeed();
t.comment(`seed ${seed} (replay with OUTPOST_SEED=${seed})`);
const random = prng(seed);
const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)];
const ALPHABET = 'abcAZ09%=&/+ $.\n\\"\'()*<>!#:@-_';
const ITERATIONS = 3_000;

function mutate(text: string): string {
  const chars = [...text];
  const edits = 1 + Math.floor(random() * 4);
  for (let i = 0; i < edits; i += 1) {
    const at = Math.floor(random() * (chars.length + 1));
    const op = random();
    if (op < 0.33) chars.splice(at, 1);
    else if (op < 0.66) chars.splice(at, 0, pick([...ALPHABET]));
    else if (chars.length > 0) chars[at % chars.length] = pick([...ALPHABET]);
  }
  return chars.join('');
}

function randomText(maxChars: number): string {
  return Array.from({ length: Math.floor(random() * maxChars) }, () => pick([...ALPHABET])).join('');
}

t.test('SAS tokens: random and mutated tokens never crash and are never accepted', async (t) => {
  const key = newKey();
  const nowMs = Date.UTC(2030, 0, 1);
  const check = {
    deviceId: 'dev-1',
    audiences: ['hub.example.net'],
    keys: [key],
    nowMs,
    skewSecs: 300,
    lifetimeSecsMax: 86_400,
  };
  const valid = makeSasToken('hub.example.net/devices/dev-1', key, nowMs / 1000 + 3_600);
  const parsed = parseSasToken(valid);
  t.ok(parsed !== null && verifySas(parsed, check) === null, 'the valid token is accepted');
  let accepted = 0;
  for (let i = 0; i < ITERATIONS; i += 1) {
    const candidate = random() < 0.7 ? mutate(valid) : 'SharedAccessSignature ' + randomText(120);
    const token = parseSasToken(candidate);
    if (token === null || verifySas(token, check) !== null) continue;
    // A mutation may only be accepted if it still says exactly what was signed (e.g. an equivalent encoding).
    if (token.resourceRaw !== parsed!.resourceRaw || token.expiryRaw !== parsed!.expiryRaw) accepted += 1;
  }
  t.equal(accepted, 0, 'no forged token accepted');
  t.equal(parseSasToken(valid + '&sr=other'), null, 'a repeated field is refused');
  t.equal(parseSasToken('SharedAccessSignature ' + 'a'.repeat(5_000)), null, 'oversized token refused');
});

t.test('topics: random topics never crash; another device never classifies as ours', async (t) => {
  const bases = [
    'devices/dev-1/messages/events/',
    '$iothub/twin/GET/?$rid=1',
    '$iothub/methods/res/200/?$rid=9',
    '$outpost/methods/POST/dev-2/m/?$rid=3',
  ];
  const strays: string[] = [];
  for (let i = 0; i < ITERATIONS; i += 1) {
    const topic = random() < 0.7 ? mutate(pick(bases)) : randomText(80);
    const inbound = classifyPublish('dev-1', topic);
    if (inbound?.kind === 'telemetry' && !topic.startsWith('devices/dev-1/messages/events')) strays.push(topic);
  }
  t.same(strays, [], "telemetry accepted only on the device's own topic");
  t.equal(classifyPublish('dev-1', 'devices/dev-2/messages/events/'), null);
});

t.test('routes: random and mutated routes parse or fail with RouteError; conditions evaluate safely', async (t) => {
  const bases = [
    "FROM /messages/* WHERE temp > 30 AND ($deviceId = 'a' OR NOT IS_DEFINED(x)) INTO $upstream",
    'FROM /messages/devices/a/* WHERE $body.level.x = "high" INTO BrokeredEndpoint("/devices/b/inputs/in1")',
    'FROM /messages/* INTO $upstream',
  ];
  const message = {
    deviceId: 'a',
    properties: { temp: '35', x: '1' },
    contentType: 'application/json',
    contentEncoding: 'utf-8',
    body: Buffer.from('{"level":{"x":"high"}}'),
  };
  let parsedCount = 0;
  let notBoolean = 0;
  for (let i = 0; i < ITERATIONS; i += 1) {
    const text = random() < 0.8 ? mutate(pick(bases)) : randomText(200);
    try {
      const route = parseRoute('fuzz', text);
      parsedCount += 1;
      if (route.condition !== null && typeof evaluate(route.condition, message) !== 'boolean') notBoolean += 1;
    } catch (err) {
      if (!(err instanceof RouteError)) throw err;
    }
  }
  t.equal(notBoolean, 0, 'every parsed condition evaluates to a boolean');
  t.ok(parsedCount > 0, `${parsedCount} mutated routes still parsed`);
  const deep = `FROM /messages/* WHERE ${'('.repeat(40)}a = 1${')'.repeat(40)} INTO $upstream`;
  t.throws(() => parseRoute('deep', deep), /nested deeper/, 'nesting is bounded');
  t.throws(
    () => parseRoute('bad', 'FROM /messages/* INTO $elsewhere'),
    /route "bad": expected \$upstream or BrokeredEndpoint/,
    'errors name the route and what was expected',
  );
});
