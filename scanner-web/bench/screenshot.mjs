// Writes docs/scanner-page.png: the product page at phone width (360 px wide, full page, 1×
// device pixels), in Debian's Chromium, once the page has verified the product.
//
// By default the product is the first one of the real gateway (`prov demo --seed 1`). With
// --vector, it is item ABC123 of the shared test vectors (schemas/vectors/bundle.json, served by
// tests/browser/dev-server.mjs), whose journey shows every kind of step, a lot, a sensor
// excursion and seven signing devices.
//
// Usage (from scanner-web/): node bench/screenshot.mjs [--vector] [--out PATH]
import { join } from 'node:path';
import { ROOT, launch, startDemo, verdictOf, waitForProduct } from '../tests/browser/harness.mjs';
import { startDevServer } from '../tests/browser/dev-server.mjs';

const args = process.argv.slice(2);
const VECTOR = args.includes('--vector');
const OUT = args.includes('--out') ? args[args.indexOf('--out') + 1] : join(ROOT, 'docs/scanner-page.png');

let server = null;
let demo = null;
const browser = await launch({ viewport: { width: 360, height: 780 }, deviceScaleFactor: 1 });
try {
  let url;
  if (VECTOR) {
    server = await startDevServer();
    url = `${server.base}/01/09506000134352/21/ABC123`;
  } else {
    demo = await startDemo({ seed: 1, runTag: 'DEMO', products: 1, timeout: 240000 });
    await waitForProduct(demo.base, demo.products[0].path);
    url = demo.base + demo.products[0].path;
  }
  const page = await browser.newPage();
  await page.goto(url);
  const v = await verdictOf(page);
  if (v.verdict !== 'verified') throw new Error(`${url}: ${v.verdict}`);
  await page.screenshot({ path: OUT, fullPage: true });
  console.log(`wrote ${OUT} (${url}: ${v.heading}, ${v.eventCount} events)`);
} finally {
  await browser.close();
  await server?.close();
  await demo?.stop();
}
