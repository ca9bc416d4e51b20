import t from 'tap';
import { formatReport } from '../../../../firmware/ops/format.js';
import { buildReport, IngestRate, RecentErrors } from '../../../../firmware/ops/report.js';
import type { Gateway } from '../../../support/dps-fixture.js';
import { dpsWorld, randomKey, received, until } from '../../../support/dps-fixture.js';

/**
 * DPS saying no, or not yet, with the real provisioning SDK against the DPS emulator: refusals with a status
 * that says so, retry-after honoured, and registrations that never loop nor hold up a stop.
 */

t.test('a disabled enrollment is refused with a clear status and nothing is sent', async (t) => {
  const world = await dpsWorld(t);
  const key = randomKey();
  world.dps.addEnrollment({ kind: 'symmetric', registrationId: 'pump-0003', key, enabled: false });
  const gateway = await world.boot(
    { registrationId: 'pump-0003', symmetricKeyFile: await world.file('k', key) },
    'pump-0003',
  );
  await gateway.append(1, 3);
  await until('the refusal', () => gateway.service.status().provisioning?.state === 'refused');
  const status = gateway.service.status();
  t.match(status.provisioning, { refusal: 'disabled', assignedHub: null, lastError: /enrollment is disabled/ });
  t.ok(status.provisioning!.nextAttemptInMs! > 0, 'the next registration waits');
  t.equal(status.link, 'backoff');
  t.equal(status.backlog.records, 3, 'the backlog stays stored');
  t.equal(world.hubA.telemetry.length + world.hubB.telemetry.length, 0);
  const line = new RegExp(
    '^dps: {7}refused \\(disabled\\), pump-0003 in 0ne00000A0A, registering because no ' +
      'identity in the data directory, next registration in \\d+s; DPS refused the registration: the enrollment is ' +
      'disabled',
    'm',
  );
  t.match(statusText(gateway), line, 'outpost status says so');
});

/** `outpost status` as the operator reads it, from this gateway's uplink and log. */
function statusText(gateway: Gateway): string {
  const uplink = gateway.service.status();
  const status = {
    variant: 'rpi4',
    gatewayId: 'gw',
    link: uplink.link,
    uplink,
    store: gateway.log.stats(),
    hub: null,
    devices: [],
    update: null,
  };
  return formatReport(
    buildReport(status, {
      ingest: new IngestRate(),
      errors: new RecentErrors(),
      ttlSecs: 7200,
      startedMonoMs: 0,
      nowMonoMs: 0,
      metricsPort: null,
    }),
  );
}

t.test('a wrong group key is refused by DPS as unauthorized', async (t) => {
  const world = await dpsWorld(t);
  world.dps.addEnrollment({ kind: 'symmetric-group', name: 'pumps', groupKey: randomKey() });
  const gateway = await world.boot(
    { registrationId: 'pump-0004', groupKeyFile: await world.file('g', randomKey()) },
    'pump-0004',
  );
  await until('the refusal', () => gateway.service.status().provisioning?.state === 'refused');
  t.match(gateway.service.status().provisioning, { refusal: 'unauthorized', lastError: /not authorized/ });
  t.match(gateway.service.status().lastError, { message: /not provisioned|registering with DPS/ });
});

t.test("DPS's retry-after is honoured within a registration and across attempts", async (t) => {
  const world = await dpsWorld(t);
  const groupKey = randomKey();
  world.dps.addEnrollment({ kind: 'symmetric-group', name: 'pumps', groupKey });
  const keyFile = await world.file('group.key', groupKey);
  world.dps.throttle(1, 2);
  const patient = await world.boot({ registrationId: 'pump-0005', groupKeyFile: keyFile }, 'pump-0005');
  await until('assigned after the 429', () => patient.service.status().provisioning?.state === 'provisioned');
  const [first, second] = world.dps.requestTimesMs;
  // Timers may fire up to a millisecond early against Date.now().
  t.ok(second! - first! >= 1_990, `the SDK waited out retry-after=2 (${second! - first!} ms)`);
  t.equal(patient.service.status().provisioning?.attempts, 1, 'within one registration');
  await patient.stop();

  // A registration cut short by the gateway's own timeout (3 s: enough for the emulator's two 1 s polls, less
  // than the SDK's wait for this retry-after) still leaves DPS's retry-after in force.
  world.dps.throttle(1, 4);
  const start = world.dps.requestTimesMs.length;
  const hurried = await world.boot({ registrationId: 'pump-0006', groupKeyFile: keyFile }, 'pump-0006', {
    registrationTimeoutMs: 3_000,
  });
  await until('assigned on the second attempt', () => hurried.service.status().provisioning?.state === 'provisioned');
  const [a, b] = world.dps.requestTimesMs.slice(start);
  t.ok(b! - a! >= 3_990, `the next registration waited for retry-after=4 (${b! - a!} ms)`);
  t.match(hurried.service.status().provisioning, { attempts: 2, assignments: 1 });
});

t.test('a hub that refuses what DPS keeps assigning is not a registration loop: registrations back off', async (t) => {
  const world = await dpsWorld(t);
  const groupKey = randomKey();
  world.dps.addEnrollment({ kind: 'symmetric-group', name: 'pumps', groupKey });
  const gateway = await world.boot(
    { registrationId: 'pump-0007', groupKeyFile: await world.file('g', groupKey) },
    'pump-0007',
    { registrationBackoff: { baseMs: 1_000, maxMs: 4_000, random: () => 0.999 } },
  );
  await gateway.append(1, 1);
  await until('delivered', () => received(world.hubA).size === 1);
  // Disabled on the hub: DPS still assigns it there, and the hub refuses every connect. DPS answers at once,
  // so only the gateway's own spacing keeps registrations apart.
  world.dps.retryAfterSecs = 0;
  world.dps.assigningPolls = 0;
  world.disableOnHub('pump-0007');
  const windowMs = 8_000;
  const start = Date.now();
  await until('the window to pass', () => Date.now() - start >= windowMs, windowMs + 1_000);
  const registrations = world.dps.requestTimesMs.filter((at) => at >= start).length;
  // Spaced by about 1, 2, 4 s (jitter pinned near the ceiling): at most 4 in 8 s; a loop makes dozens.
  t.ok(registrations >= 2 && registrations <= 4, `${registrations} registrations in ${windowMs} ms`);
  t.match(gateway.service.status().provisioning, { reason: /refused pump-0007: azure-unauthorized/ });
});

t.test(
  'a stop during a registration DPS keeps waiting (retry-after 60 s) takes well under the stop budget',
  async (t) => {
    const world = await dpsWorld(t);
    const groupKey = randomKey();
    world.dps.addEnrollment({ kind: 'symmetric-group', name: 'pumps', groupKey });
    world.dps.throttle(1, 60);
    const gateway = await world.boot(
      { registrationId: 'pump-0009', groupKeyFile: await world.file('g', groupKey) },
      'pump-0009',
    );
    await until('the throttled registration', () => world.dps.requests.length === 1);
    t.equal(gateway.service.status().provisioning?.state, 'provisioning');
    const start = Date.now();
    await gateway.stop();
    // The service's stop budget is 5 s for everything; before the abort, a stop waited out the registration.
    t.ok(Date.now() - start < 2_000, `stopped in ${Date.now() - start} ms`);
  },
);
