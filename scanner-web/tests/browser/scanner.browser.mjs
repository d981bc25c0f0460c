// The scanner page in Debian's Chromium against the real gateway (`prov demo`, its own data
// directory, an ephemeral loopback port):
// - the fake camera (tests/fixtures/qr.mjpeg, a brand-host Digital Link with a lot qualifier
//   and a query attribute) is scanned with "Scan another product" and the page lands on the
//   canonical path of that item, showing "Verified" with every event of its bundle;
// - a proxy between the page and the gateway changes one byte of the bundle (an event's COSE, a
//   proof, the checkpoint) and the page says "Not verified", naming what failed; an unknown
//   product says "Unknown product"; the resolver's 400 and a dropped connection are errors; a
//   high lookup count is a counterfeit warning;
// - axe-core finds no accessibility violation on the verified, unknown and not-verified pages
//   (and with the scanner dialog open), and nothing overflows a 360 px wide viewport.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { parseDigitalLink } from '../../www/dl.js';
import {
  QR_FIXTURE, failuresOf, getJson, launch, startDemo, startProxy, verdictOf, waitForProduct,
} from './harness.mjs';

/** What tests/fixtures/qr.mjpeg holds (tests/fixtures/README.md). */
const FIXTURE_URI = 'https://brand.example.com/01/09506000134352/10/PWDQR1-1/21/QR1000001?17=281130';
const SCANNED = parseDigitalLink(FIXTURE_URI).path;
/** The run tag that makes the demo's first item the fixture's (serial = tag, line, count). */
const RUN_TAG = 'QR';
const AXE = fileURLToPath(new URL('../../node_modules/axe-core/axe.min.js', import.meta.url));

let demo;
let proxy;
let browser;
let product; // The first product the demo printed: its path and bundle.

before(async () => {
  demo = await startDemo({ seed: 1, runTag: RUN_TAG, products: 2, timeout: 240000 });
  proxy = await startProxy(demo.base);
  browser = await launch();
  product = demo.products[0];
  product.bundle = await waitForProduct(demo.base, product.path);
});

after(async () => {
  await browser?.close();
  await proxy?.close();
  await demo?.stop();
});

test('the canonical path of the fixture is the item key', () => {
  assert.equal(SCANNED, '/01/09506000134352/21/QR1000001');
});

test('fake camera: "Scan another product" lands on the scanned item, verified, with all its events', async (t) => {
  const cam = await launch({ camera: QR_FIXTURE });
  try {
    const page = await cam.newPage();
    const start = demo.products.find((p) => p.path !== SCANNED) ?? demo.products[0];
    await page.goto(demo.base + start.path);
    assert.equal((await verdictOf(page)).verdict, 'verified', `start page ${start.path}`);
    await waitForProduct(demo.base, SCANNED);
    const before = (await getJson(demo.base + SCANNED)).body.events.length;
    // The very bundle the page verifies (the line keeps producing: the item's pallet may gain
    // events between two fetches).
    const seen = page.waitForResponse((r) => new URL(r.url()).pathname === SCANNED
      && /json/.test(r.request().headers().accept ?? ''), { timeout: 60000 });
    const t0 = Date.now();
    await page.click('#scan-button');
    await page.waitForURL((u) => u.pathname === SCANNED, { timeout: 60000 });
    t.diagnostic(`scanned and navigated from ${start.path} to ${SCANNED} in ${Date.now() - t0} ms`);
    const verdict = await verdictOf(page);
    const bundle = await (await seen).json();
    const after = (await getJson(demo.base + SCANNED)).body.events.length;

    t.diagnostic(`${SCANNED}: ${verdict.heading}, ${verdict.eventCount} events, verified in ${verdict.verifyMs} ms`);
    assert.equal(verdict.verdict, 'verified', JSON.stringify(await failuresOf(page)));
    assert.equal(verdict.heading, 'Verified');
    assert.equal(bundle.product, `https://id.gs1.org${SCANNED}`);
    assert.equal(Number(verdict.eventCount), bundle.events.length);
    assert.ok(before <= bundle.events.length && bundle.events.length <= after,
      `${before} ≤ ${bundle.events.length} ≤ ${after}`);
    const steps = await page.$$eval('#timeline > li', (lis) => lis.map((li) => li.dataset.step));
    assert.equal(steps.length, bundle.events.length);
    for (const s of ['commissioned', 'packed', 'palletized']) assert.ok(steps.includes(s), `${s} in ${steps}`);
    assert.equal(await page.$eval('#product-title', (h) => h.textContent), 'Item QR1000001');
    if (typeof bundle.lookups === 'number') {
      assert.equal(await page.$eval('#lookups', (s) => s.dataset.lookups), String(bundle.lookups));
    }
  } finally {
    await cam.close();
  }
});

/** Flips the lowest bit of byte `i` (negative: from the end) of a base64 text's bytes. */
function flipB64(text, i) {
  const b = Buffer.from(text, 'base64');
  b[(i + b.length) % b.length] ^= 0x01;
  return b.toString('base64');
}

async function pageThroughProxy(rewrite) {
  proxy.rewrite = rewrite;
  const count = proxy.rewritten;
  const page = await browser.newPage();
  try {
    await page.goto(proxy.base + product.path);
    const verdict = await verdictOf(page);
    assert.equal(proxy.rewritten, count + 1, 'the proxy rewrote the bundle once');
    return { verdict, failures: await failuresOf(page), page };
  } finally {
    proxy.rewrite = null;
  }
}

test('tampering: one byte changed in an event\'s COSE is named', async () => {
  const k = product.bundle.events.length - 1;
  const { verdict, failures, page } = await pageThroughProxy((b) => {
    b.events[k].cose = flipB64(b.events[k].cose, -10); // In the signature.
    return b;
  });
  assert.equal(verdict.verdict, 'not_verified');
  assert.equal(verdict.heading, 'Not verified');
  const ats = failures.map((f) => f.at);
  assert.ok(ats.includes(`events[${k}].cose`), JSON.stringify(failures));
  assert.ok(ats.every((a) => a.startsWith(`events[${k}]`)), JSON.stringify(failures));
  const cose = failures.find((f) => f.at === `events[${k}].cose`);
  assert.match(cose.text, new RegExp(`event ${k + 1} \\(.*\\): its signed message`));
  assert.match(cose.text, /bad signature/);
  // The event is flagged in the journey too.
  assert.equal(await page.$eval(`#timeline li[data-index="${k}"]`, (li) => li.dataset.verified), 'false');
  await page.close();
});

test('tampering: one byte changed in a proof is named', async () => {
  const k = product.bundle.events.findIndex((e) => e.proof.split('\n')[2] !== '');
  assert.ok(k >= 0);
  const { verdict, failures, page } = await pageThroughProxy((b) => {
    const lines = b.events[k].proof.split('\n');
    lines[2] = flipB64(lines[2], 7);
    b.events[k].proof = lines.join('\n');
    return b;
  });
  assert.equal(verdict.verdict, 'not_verified');
  assert.deepEqual(failures.map((f) => f.at), [`events[${k}].proof`]);
  assert.match(failures[0].text, /its log proof/);
  assert.match(failures[0].text, /inclusion proof does not match the checkpoint root/);
  await page.close();
});

test('tampering: one byte changed in the checkpoint is named', async () => {
  const { verdict, failures, page } = await pageThroughProxy((b) => {
    // The root hash, changed everywhere the checkpoint appears (the bundle's and every proof's
    // copy), as a forger would: the proofs still embed "the" checkpoint.
    const note = b.checkpoint;
    const lines = note.split('\n');
    lines[2] = flipB64(lines[2], 0);
    const forged = lines.join('\n');
    const swap = (x) => (typeof x === 'string' ? x.split(note).join(forged)
      : Array.isArray(x) ? x.map(swap)
        : x && typeof x === 'object' ? Object.fromEntries(Object.entries(x).map(([key, y]) => [key, swap(y)])) : x);
    return swap(b);
  });
  assert.equal(verdict.verdict, 'not_verified');
  assert.equal(failures[0].at, 'checkpoint', JSON.stringify(failures));
  assert.match(failures[0].text, /the log checkpoint/);
  assert.match(failures[0].text, /signature does not verify|not signed/);
  assert.equal(await page.$eval('#log-facts', (d) => d.textContent.includes('NOT valid')), true);
  await page.close();
});

test('a high lookup count is a counterfeit warning (and does not change the verdict)', async () => {
  // The count is the resolver's, not signed: the proxy makes it high.
  const { verdict, page } = await pageThroughProxy((b) => ({ ...b, lookups: 250 }));
  assert.equal(verdict.verdict, 'verified');
  const box = await page.$eval('#lookups', (s) => ({ ...s.dataset, hidden: s.hidden, text: s.textContent }));
  assert.equal(box.hidden, false);
  assert.equal(box.lookups, '250');
  assert.equal(box.warning, 'true');
  assert.match(box.text, /looked up 250 times.*counterfeit/s);
  await page.close();
  // The real count (each bundle served is one lookup): a warning only from 20 (the default).
  const normal = await browser.newPage();
  await normal.goto(demo.base + product.path);
  await verdictOf(normal);
  const real = await normal.$eval('#lookups', (s) => ({ ...s.dataset }));
  assert.ok(Number(real.lookups) >= 1, JSON.stringify(real));
  assert.equal(real.warning, String(Number(real.lookups) >= 20));
  await normal.close();
});

test('an unknown product says "Unknown product"', async () => {
  const page = await browser.newPage();
  await page.goto(`${demo.base}/01/09506000134352/21/NOSUCH9`);
  const v = await verdictOf(page);
  assert.equal(v.verdict, 'unknown');
  assert.equal(v.heading, 'Unknown product');
  await page.close();
});

test('the resolver\'s 400 and a network failure are errors, with the resolver\'s reason', async () => {
  const page = await browser.newPage();
  try {
    // The page's bundle request sent to a malformed path (a wrong check digit): the gateway's
    // own 400 reaches the page.
    proxy.redirect = (path) => path.replace('/01/09506000134352/', '/01/09506000134353/');
    await page.goto(proxy.base + product.path);
    const bad = await verdictOf(page);
    assert.equal(bad.verdict, 'error');
    assert.equal(bad.status, '400');
    assert.match(await page.$eval('#verdict-detail', (p) => p.textContent), /HTTP 400 \(malformed identifier: .*check digit/);
    proxy.redirect = null;
    // The connection to the resolver dropped.
    proxy.cut = () => true;
    await page.goto(proxy.base + product.path);
    const cut = await verdictOf(page);
    assert.equal(cut.verdict, 'error');
    assert.match(await page.$eval('#verdict-detail', (p) => p.textContent), /could not be reached/);
  } finally {
    proxy.redirect = null;
    proxy.cut = null;
    await page.close();
  }
});

async function axeViolations(page) {
  await page.addScriptTag({ path: AXE });
  return page.evaluate(async () => {
    // eslint-disable-next-line no-undef
    const r = await axe.run(document, { resultTypes: ['violations'] });
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, nodes: v.nodes.map((n) => n.target.join(' ')) }));
  });
}

async function overflow(page) {
  return page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
}

test('accessibility: no axe-core violations and no horizontal overflow at 360 px', async () => {
  const page = await browser.newPage();
  assert.equal(page.viewportSize().width, 360);
  const pages = {
    verified: async () => page.goto(demo.base + product.path),
    unknown: async () => page.goto(`${demo.base}/01/09506000134352/21/NOSUCH9`),
    not_verified: async () => {
      proxy.rewrite = (b) => {
        b.events[0].cose = flipB64(b.events[0].cose, -5);
        return b;
      };
      await page.goto(proxy.base + product.path);
    },
  };
  try {
    for (const [want, open] of Object.entries(pages)) {
      await open();
      assert.equal((await verdictOf(page)).verdict, want);
      assert.deepEqual(await axeViolations(page), [], `${want} page`);
      assert.ok(await overflow(page) <= 0, `${want} page overflows by ${await overflow(page)} px`);
    }
  } finally {
    proxy.rewrite = null;
  }
  // The scanner dialog (this browser has no camera: the dialog says so).
  await page.goto(demo.base + product.path);
  await verdictOf(page);
  await page.click('#scan-button');
  await page.waitForSelector('#scanner[data-state="unavailable"]');
  assert.deepEqual(await axeViolations(page), [], 'scanner dialog');
  assert.ok(await overflow(page) <= 0);
  await page.click('#scanner-close');
  assert.equal(await page.$eval('#scanner', (d) => d.open), false);
  await page.close();
});
