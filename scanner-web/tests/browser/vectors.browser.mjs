// The wasm verifier passes the shared vectors inside Chromium: the very cases Node runs
// (../vector-cases.mjs, also run by ../vectors.test.mjs), loaded as ES modules into a page,
// with the module fetched over HTTP as the page loads it. A static server is enough here (the
// vectors need no gateway); a failing case is reported by name with its message.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { launch } from './harness.mjs';
import { startDevServer } from './dev-server.mjs';

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

test('the shared vectors pass in Chromium, case by case', async (t) => {
  const page = await browser.newPage();
  await page.goto(`${server.base}/tests/browser/blank.html`);
  const results = await page.evaluate(async () => {
    const { vectorCases } = await import('/tests/vector-cases.mjs');
    const { default: assert } = await import('/tests/browser/mini-assert.mjs');
    const { loadVerifier } = await import('/scanner/verifier.js');
    const v = await loadVerifier('/scanner/verifier.wasm');
    const files = ['keys.json', 'log.json', 'events.json', 'registry.json', 'invalid.json'];
    const loaded = Object.fromEntries(await Promise.all(files.map(async (f) => [f, await (await fetch(`/vectors/${f}`)).json()])));
    const vec = (name) => structuredClone(loaded[name]);
    const out = [];
    for (const [name, fn] of vectorCases({ v, vec, assert })) {
      const t0 = performance.now();
      try {
        fn();
        out.push({ name, ok: true, ms: performance.now() - t0 });
      } catch (e) {
        out.push({ name, ok: false, error: e.message });
      }
    }
    return { userAgent: navigator.userAgent, out };
  });
  t.diagnostic(results.userAgent);
  assert.ok(results.out.length >= 5, `only ${results.out.length} cases`);
  for (const r of results.out) {
    t.diagnostic(`${r.ok ? 'pass' : 'FAIL'} ${r.name}${r.ok ? ` (${r.ms.toFixed(0)} ms)` : `: ${r.error}`}`);
  }
  assert.deepEqual(results.out.filter((r) => !r.ok), []);
});

test('a case that is false fails in the browser too (the harness can fail)', async () => {
  const page = await browser.newPage();
  await page.goto(`${server.base}/tests/browser/blank.html`);
  const error = await page.evaluate(async () => {
    const { default: assert } = await import('/tests/browser/mini-assert.mjs');
    try {
      assert.deepEqual({ a: [1, 2] }, { a: [1, 3] }, 'differs');
      return null;
    } catch (e) {
      return e.message;
    }
  });
  assert.match(error ?? '', /differs/);
});
