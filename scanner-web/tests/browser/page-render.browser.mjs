// What the page shows for the shared vector bundles (schemas/vectors/bundle.json, item ABC123,
// and bundle-50.json), verified in Chromium under their pinned trust: the journey's steps in
// time order with places, the sensor excursion highlighted in words, the signing devices, the
// log facts. These bundles have kinds of event the demo line may not have made yet (a lot's
// transformation, a cold-room excursion, receiving, unpacking). Served by the dev server: this
// is about the page's rendering, the gateway is exercised by scanner.browser.mjs.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, launch, verdictOf } from './harness.mjs';
import { startDevServer } from './dev-server.mjs';

const vec = (n) => JSON.parse(readFileSync(join(ROOT, 'schemas/vectors', n), 'utf8'));
let server;
let browser;
before(async () => {
  server = await startDevServer();
  browser = await launch();
});
after(async () => {
  await browser?.close();
  await server?.close();
});

test('item ABC123: journey, excursion, devices and log, as verified', async () => {
  const page = await browser.newPage();
  await page.goto(`${server.base}/01/09506000134352/21/ABC123`);
  const v = await verdictOf(page);
  assert.equal(v.verdict, 'verified');
  assert.equal(v.eventCount, '8');
  assert.ok(Number(v.verifyMs) > 0 && Number(v.loadMs) >= Number(v.verifyMs));
  const steps = await page.$$eval('#timeline > li', (lis) => lis.map((li) => [li.dataset.step, li.querySelector('h3').textContent,
    li.querySelector('time').getAttribute('datetime'), li.querySelector('.where')?.textContent ?? null]));
  assert.deepEqual(steps.map((s) => s[0]),
    ['produced', 'commissioned', 'packed', 'palletized', 'sensor', 'assembling', 'shipped', 'shipped']);
  const times = steps.map((s) => s[2]);
  assert.deepEqual(times, times.slice().sort(), 'in time order');
  assert.equal(steps[1][3], 'At GLN 9506000134376');
  // The excursion: flagged on the step and highlighted, in words, in the readings.
  assert.equal(await page.$eval('#timeline li[data-step="sensor"]', (li) => li.querySelector('[data-flag="excursion"]') !== null), true);
  const rows = await page.$$eval('#sensor-list tbody tr', (trs) => trs.map((tr) => [tr.className, tr.textContent]));
  assert.deepEqual(rows, [['excursion', 'Temperature9.5 °CExcursion (alarm condition)'], ['', 'Relative Humidity41.25 g/m³Normal']]);
  // Seven devices, dock-shipper with two events, each with its registration.
  const devices = await page.$$eval('#device-list li', (lis) => lis.map((li) => li.textContent));
  assert.equal(devices.length, 7);
  assert.ok(devices.some((d) => /^dock-shipper — 2 events · registered by operator:factory-a/.test(d)), devices.join('\n'));
  assert.match(await page.$eval('#log-facts', (d) => d.textContent), /factory-a\.example\/line-logs\/1.*19.*valid, by the pinned gateway key/);
  // A remark of the verifier is shown, not a failure.
  assert.deepEqual(await page.$$eval('#failures li', (l) => l.length), 0);
  assert.match(await page.$eval('#warnings', (w) => w.textContent), /linked to the product by its GTIN only/);
  await page.close();
});

test('the 50-event bundle: every event on the timeline, received and unpacked included', async () => {
  const { bundle } = vec('bundle-50.json');
  const other = await startDevServer({ pin: 'bundle-50.json' });
  const page = await browser.newPage();
  await page.goto(`${other.base}${new URL(bundle.product).pathname}`);
  const v = await verdictOf(page);
  assert.equal(v.verdict, 'verified');
  assert.equal(Number(v.eventCount), 50);
  const steps = await page.$$eval('#timeline > li', (lis) => lis.map((li) => li.dataset.step));
  assert.equal(steps.length, 50);
  for (const s of ['commissioned', 'packed', 'shipped', 'received', 'unpacked', 'sensor']) assert.ok(steps.includes(s), s);
  assert.equal(await page.$$eval('#sensor-list tr.excursion', (r) => r.length), 1);
  await page.close();
  await other.close();
});
