import t from 'tap';
import type { MqttClient } from 'mqtt';
import { parseHubConfig } from '../../../firmware/hub/config.js';
import { PENDING_METHODS_PER_CALLER_MAX, PENDING_METHODS_PER_TARGET_MAX } from '../../../firmware/hub/methods.js';
import { until } from '../../support/hub-fixture.js';
import { connectChild, hostileHub } from '../../support/hostile-hub.js';

/** Child-to-child direct methods: default deny with an allow-list, and no caller can fill the pending table. */

/** A child that answers every method with 200 and its name, or (silent) never answers. */
async function methodChild(h: Parameters<typeof connectChild>[0], id: string, answers: boolean) {
  const client = await connectChild(h, id);
  const results: Array<{ status: number; rid: string; body: string }> = [];
  client.on('message', (topic, payload) => {
    const call = /^\$iothub\/methods\/POST\/([^/]+)\/\?\$rid=(.+)$/.exec(topic);
    if (call !== null && answers)
      client.publish(`$iothub/methods/res/200/?$rid=${call[2]}`, JSON.stringify({ from: id, method: call[1] }));
    const result = /^\$outpost\/methods\/res\/(\d+)\/\?\$rid=(.+)$/.exec(topic);
    if (result !== null) results.push({ status: Number(result[1]), rid: result[2], body: payload.toString() });
  });
  await client.subscribeAsync(['$iothub/methods/POST/#', '$outpost/methods/res/#'], { qos: 0 });
  return { client, results };
}

async function call(client: MqttClient, target: string, method: string, rid: string | number): Promise<void> {
  await client.publishAsync(`$outpost/methods/POST/${target}/${method}/?$rid=${rid}`, '{}', { qos: 1 });
}

t.test('child-to-child methods are denied unless hub.methods.allow names them; the cloud is unaffected', async (t) => {
  const allow = { 'child-0': ['child-1/reboot', 'child-2/get*'], '*': ['child-2/ping'] };
  const h = await hostileHub(t, { hub: { methods: { allow } } });
  const [c0, c1, c2] = await Promise.all([0, 1, 2].map((i) => methodChild(h, `child-${i}`, true)));
  t.teardown(() => Promise.all([c0, c1, c2].map((c) => c.client.endAsync(true))));
  await call(c0.client, 'child-1', 'reboot', 1);
  await call(c0.client, 'child-1', 'shutdown', 2);
  await call(c0.client, 'child-2', 'getLevel', 3);
  await call(c1.client, 'child-2', 'ping', 4);
  await call(c1.client, 'child-0', 'reboot', 5);
  await call(c1.client, 'child-1', 'reboot', 6);
  await until('six answers', () => c0.results.length === 3 && c1.results.length === 3);
  const statuses = (r: typeof c0.results) => Object.fromEntries(r.map((x) => [x.rid, x.status]));
  t.same(
    statuses(c0.results),
    { 1: 200, 2: 403, 3: 200 },
    'child-0: an allowed method, one not on the list, a pattern',
  );
  t.same(statuses(c1.results), { 4: 200, 5: 403, 6: 403 }, "child-1: '*' rules only, and not even a call on itself");
  const denied = JSON.parse(c0.results.find((r) => r.rid === '2')!.body) as { message: string };
  t.match(
    denied.message,
    /"child-0" may not call "shutdown" on "child-1" \(board\.json hub\.methods\.allow\)/,
    'the refusal names caller, method and target',
  );
  t.equal(h.hub.status().refusals['method-acl'], 3, 'refusals counted');
  const cloud = await h.hub.methods.invoke('child-1', 'shutdown', Buffer.from('{}'));
  t.equal(cloud.status, 200, 'the cloud (and the gateway) may call any method');
});

t.test('hub.methods.allow errors name the file and the entry', async (t) => {
  const parse = (methods: unknown) => () => parseHubConfig({ hub: { methods } }, '/etc/outpost/board.json');
  t.throws(
    parse({ allow: { 'child-0': ['child-1'] } }),
    /\/etc\/outpost\/board\.json: \$\.hub\.methods\.allow\["child-0"\]\[0\]: expected "<target>\/<method>"/,
  );
  t.throws(parse({ allow: { 'child-0': 'child-1/x' } }), /\$\.hub\.methods\.allow\["child-0"\]: expected a list/);
  t.throws(
    parse({ allow: { 'a/b/c': ['child-1/x'] } }),
    /\$\.hub\.methods\.allow\["a\/b\/c"\]: expected a caller that is a device id/,
  );
  t.throws(parse({ deny: {} }), /\$\.hub\.methods\.deny: expected one of the known fields allow/);
  t.same(
    parseHubConfig({ hub: { methods: { allow: { 'd/m': ['x/y/z'] } } } }).methods.allow,
    [{ caller: 'd/m', target: 'x/y', method: 'z' }],
    'module caller and target',
  );
  t.same(parseHubConfig({}).methods.allow, [], 'default: nothing allowed');
});

t.test("a child calling without waiting fills only its own share of the pending table, not the cloud's", async (t) => {
  const calls = 300;
  const h = await hostileHub(t, {
    hub: { publishRatePerSec: 10_000, publishBurst: 10_000, methods: { allow: { '*': ['*/*'] } } },
  });
  const silent = await methodChild(h, 'child-0', false);
  const answering = await methodChild(h, 'child-2', true);
  const other = await methodChild(h, 'child-1', true);
  t.teardown(() => Promise.all([silent, answering, other].map((c) => c.client.endAsync(true))));
  for (let i = 0; i < calls; i += 1) await call(silent.client, 'child-0', 'hang', i);
  await until(
    'the calls over its share answered 429',
    () => silent.results.length === calls - PENDING_METHODS_PER_CALLER_MAX,
  );
  t.ok(
    silent.results.every((r) => r.status === 429 && /PENDING_METHODS_PER_CALLER_MAX/.test(r.body)),
    'each with the limit named',
  );
  const fromCloud = await h.hub.methods.invoke('child-2', 'ping', Buffer.from('{}'));
  t.equal(fromCloud.status, 200, 'the cloud still reaches another child');
  await call(other.client, 'child-2', 'ping', 'x');
  await until('child-1 answered', () => other.results.length === 1);
  t.equal(other.results[0].status, 200, 'so does another child');
  const toSilent = await h.hub.methods.invoke('child-0', 'ping', Buffer.from('{}'));
  t.equal(toSilent.status, 429, `a target with ${PENDING_METHODS_PER_TARGET_MAX} calls unanswered takes no more`);
  t.match(toSilent.payload.toString(), /PENDING_METHODS_PER_TARGET_MAX/);
});
