import { existsSync } from 'node:fs';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { chromium, type Browser } from 'playwright-core';
import { IdentityCache } from '../../../firmware/auth/cache.js';
import { parseScopeDocument } from '../../../firmware/auth/identity.js';
import { freePort } from '../../support/brokers.js';
import { mqttChild, newKey, sasPassword, scopeDocument } from '../../support/hub-fixture.js';
import { startPageGateway } from '../../support/page-gateway.js';

const CHROMIUM = '/usr/bin/chromium';
const PASSWORD = 'correct horse battery';
const CHILD = 'sensor-7';
/** Messages the child publishes while the uplink is cut. */
const PUBLISHED = 25;
/** A page that has not shown a change by then is broken, not slow (the live stream sends every second). */
const SEEN_TIMEOUT_MS = 15_000;

/** Debian's headless chromium, closed when the test ends. */
async function launchBrowser(t: Test): Promise<Browser> {
  const browser: Browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  t.teardown(() => browser.close());
  return browser;
}

if (!existsSync(CHROMIUM)) {
  t.comment(`skipped: ${CHROMIUM} is absent (Debian's chromium package runs the page test)`);
  t.pass('skipped without chromium');
} else {
  t.test('a technician logs in, sees the backlog grow with the uplink cut, and switches the relay', async (t) => {
    const key = newKey();
    // The uplink points at a closed loopback port: the link is down for the whole test.
    const gw = await startPageGateway(t, {
      password: PASSWORD,
      board: { uplink: { protocol: 'mqtt', url: `mqtt://127.0.0.1:${await freePort()}` } },
      beforeStart: async (dataDir) => {
        const cache = await IdentityCache.open(dataDir);
        const scope = scopeDocument('outpost-page', 1, [{ deviceId: CHILD, key }]);
        await cache.applyScope(parseScopeDocument(scope, 'outpost-page'), Date.now());
        cache.close();
      },
    });
    const browser = await launchBrowser(t);
    const context = await browser.newContext({ ignoreHTTPSErrors: true, viewport: { width: 412, height: 1400 } });
    const page = await context.newPage();
    const consoleErrors: string[] = [];
    page.on('console', (m) => void (m.type() === 'error' && consoleErrors.push(m.text())));
    t.saveFixture = true;
    const artefacts = t.testdir({});

    await page.goto(`https://127.0.0.1:${gw.port}/`);
    t.match(new URL(page.url()).pathname, '/login', 'an unauthenticated visit lands on the login page');
    await page.fill('input[name="password"]', PASSWORD);
    await Promise.all([page.waitForURL(`https://127.0.0.1:${gw.port}/`), page.click('button[type="submit"]')]);
    const wait = { timeout: SEEN_TIMEOUT_MS };
    const shown = () => /^\d+$/.test(document.getElementById('backlog-records')?.textContent ?? '');
    await page.waitForFunction(shown, null, wait);
    const before = Number(await page.textContent('#backlog-records'));
    t.not(await page.textContent('#link'), 'up (mqtt)', 'the page shows the link is not up');

    const hubPort = gw.runtime.status().hub!.ports.tcp!;
    const child = await mqttChild(hubPort, CHILD, sasPassword(CHILD, key));
    t.teardown(() => child.endAsync());
    for (let i = 0; i < PUBLISHED; i++) {
      await child.publishAsync(`devices/${CHILD}/messages/events/`, `reading ${i}`, { qos: 1 });
    }
    await page.waitForFunction(
      (want) => Number(document.getElementById('backlog-records')?.textContent) >= want,
      before + PUBLISHED,
      wait,
    );
    const after = Number(await page.textContent('#backlog-records'));
    t.ok(after >= before + PUBLISHED, 'the backlog number grew by what the child published');
    await page.waitForFunction((id) => document.getElementById('children')?.textContent?.includes(id), CHILD, wait);
    t.ok(await page.locator('#chart canvas').count(), 'the backlog chart is drawn');
    await page.screenshot({ path: join(artefacts, 'backlog.png'), fullPage: true });

    await page.click('tr[data-device="relay1"] button');
    const relayOn = () => document.querySelector('tr[data-device="relay1"]')?.textContent?.includes('on=true');
    await page.waitForFunction(relayOn, null, wait);
    const atDriver = await gw.runtime.invokeDeviceMethod('relay1', 'get', null);
    t.same(atDriver.payload, { on: true }, 'the relay is on at the driver');
    t.match(await page.textContent('#method-result'), /relay1\.switch: 200/);
    await page.screenshot({ path: join(artefacts, 'relay.png'), fullPage: true });
    const logged = gw.logs().some((l) => l.page === 'method' && l.deviceId === 'relay1' && l.status === 200);
    t.ok(logged, 'the switch is logged');
    t.same(consoleErrors, [], 'no errors in the browser console (a CSP violation would be one)');
  });
}
