// Timing of the scanner page in Debian's Chromium (a benchmark: it prints figures, asserts
// nothing). Two measurements, each unthrottled and with the CPU throttled 4× through the
// DevTools protocol (`Emulation.setCPUThrottlingRate`, as issue 5 asks):
//
// 1. page load → verdict for a product served by the real gateway (`prov demo`): each run a
//    fresh browser context (empty HTTP cache, as a first scan), timed by the page itself from
//    navigation start to the verdict being shown (#verdict's data-load-ms), plus the verifier
//    call alone (data-verify-ms). Target: ≤ 2 s throttled.
// 2. in-browser verification of schemas/vectors/bundle-50.json (50 events): each run a fresh
//    page that loads the verifier and calls verifyBundle once ("first call", what a page does:
//    the module's code is still in its baseline tier) and then 5 more times ("warm").
//    Target: ≤ 150 ms unthrottled.
//
// Usage (from scanner-web/, after `npm ci` and a gateway build):
//   node bench/verify-bench.mjs [--runs N] [--static]
// --static measures (1) against tests/browser/dev-server.mjs (the vector bundle of item ABC123)
// instead of the gateway.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { CHROMIUM, ROOT, startDemo, waitForProduct } from '../tests/browser/harness.mjs';
import { startDevServer } from '../tests/browser/dev-server.mjs';

const args = process.argv.slice(2);
const RUNS = Number(args[args.indexOf('--runs') + 1]) || 9;
const STATIC = args.includes('--static');

const FLAGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

function stats(xs) {
  const s = xs.slice().sort((a, b) => a - b);
  const q = (p) => s[Math.min(s.length - 1, Math.ceil(p * s.length) - 1)];
  return { n: s.length, median: q(0.5), p95: q(0.95), min: s[0], max: s.at(-1) };
}
const fmt = (st) => `median ${st.median.toFixed(0)} ms, p95 ${st.p95.toFixed(0)} ms (min ${st.min.toFixed(0)}, max ${st.max.toFixed(0)}, n=${st.n})`;

async function throttledPage(context, rate) {
  const page = await context.newPage();
  const cdp = await context.newCDPSession(page);
  await cdp.send('Emulation.setCPUThrottlingRate', { rate });
  return page;
}

async function pageLoad(browser, url, rate) {
  const load = [], verify = [];
  for (let i = 0; i < RUNS; i++) {
    const context = await browser.newContext({ viewport: { width: 360, height: 780 } });
    const page = await throttledPage(context, rate);
    await page.goto(url);
    await page.waitForSelector('#verdict:not([data-verdict="loading"])', { timeout: 60000 });
    const d = await page.$eval('#verdict', (v) => ({ ...v.dataset }));
    if (d.verdict !== 'verified') throw new Error(`${url}: ${d.verdict}`);
    load.push(Number(d.loadMs));
    verify.push(Number(d.verifyMs));
    await context.close();
  }
  return { load: stats(load), verify: stats(verify) };
}

async function bundle50(browser, base, rate) {
  const text = readFileSync(join(ROOT, 'schemas/vectors/bundle-50.json'), 'utf8');
  const first = [], warm = [];
  for (let i = 0; i < RUNS; i++) {
    const context = await browser.newContext();
    const page = await throttledPage(context, rate);
    await page.goto(`${base}/tests/browser/blank.html`);
    const r = await page.evaluate(async (vector) => {
      const { bundle, trust } = JSON.parse(vector);
      const { loadVerifier } = await import('/scanner/verifier.js');
      const v = await loadVerifier('/scanner/verifier.wasm');
      const json = JSON.stringify(bundle);
      const time = () => {
        const t0 = performance.now();
        const report = v.verifyBundle(json, trust);
        if (report.verdict !== 'verified' || report.events.length !== 50) throw new Error(JSON.stringify(report.failures));
        return performance.now() - t0;
      };
      const f = time();
      const w = [];
      for (let k = 0; k < 5; k++) w.push(time());
      return { first: f, warm: w };
    }, text);
    first.push(r.first);
    warm.push(...r.warm);
    await context.close();
  }
  return { first: stats(first), warm: stats(warm) };
}

const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: FLAGS });
const dev = await startDevServer();
let demo = null;
try {
  let url;
  if (STATIC) {
    url = `${dev.base}/01/09506000134352/21/ABC123`;
  } else {
    demo = await startDemo({ seed: 1, runTag: 'BENCH', products: 1, timeout: 240000 });
    await waitForProduct(demo.base, demo.products[0].path);
    url = demo.base + demo.products[0].path;
  }
  const version = browser.version();
  console.log(`Chromium ${version}, ${RUNS} runs each; page: ${url}${STATIC ? ' (dev server)' : ' (prov demo)'}`);
  for (const rate of [1, 4]) {
    const p = await pageLoad(browser, url, rate);
    console.log(`CPU ×${rate}  page load → verdict: ${fmt(p.load)}`);
    console.log(`CPU ×${rate}    of which verifyBundle: ${fmt(p.verify)}`);
    const b = await bundle50(browser, dev.base, rate);
    console.log(`CPU ×${rate}  bundle-50 verifyBundle, first call: ${fmt(b.first)}`);
    console.log(`CPU ×${rate}  bundle-50 verifyBundle, warm: ${fmt(b.warm)}`);
  }
} finally {
  await browser.close();
  await dev.close();
  await demo?.stop();
}
