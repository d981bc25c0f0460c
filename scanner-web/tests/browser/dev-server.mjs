// A development stand-in for the gateway's static part, for work on the page without a gateway
// and for the tests that need none (the vectors in the browser, the page's rendering of the
// vector bundles): serves www/ at /scanner/, the loader and the wasm, a config.json pinning the
// shared test vectors' keys, the bundles of schemas/vectors/bundle.json and bundle-50.json at
// their product paths (index.html for browsers), schemas/vectors/ at /vectors/ and tests/ at
// /tests/. The tests of the scanner, tampering and accessibility use the real gateway instead.
// `node tests/browser/dev-server.mjs` prints its URL and serves until stopped.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, WEB, startStatic } from './harness.mjs';

/** `pin`: the vector file whose trust config.json pins (bundle.json or bundle-50.json). */
export async function startDevServer({ pin = 'bundle.json' } = {}) {
  const vec = (n) => JSON.parse(readFileSync(join(ROOT, 'schemas/vectors', n), 'utf8'));
  const { bundle } = vec('bundle.json');
  const large = vec('bundle-50.json');
  const { trust } = vec(pin);
  const index = readFileSync(join(WEB, 'www/index.html'));
  const product = (b) => (req) => (/json/.test(req.headers.accept ?? '')
    ? { body: JSON.stringify(b) } : { type: 'text/html; charset=utf-8', body: index });
  return startStatic({
    mounts: { '/scanner/': join(WEB, 'www'), '/scanner/verifier.js': join(WEB, 'js/verifier.js'),
      '/scanner/verifier.wasm': join(WEB, 'dist/verifier.wasm'), '/vectors/': join(ROOT, 'schemas/vectors'),
      '/tests/': join(WEB, 'tests') },
    routes: {
      '/scanner/config.json': () => ({ body: JSON.stringify({ resolver: '', trust }) }),
      [new URL(bundle.product).pathname]: product(bundle),
      [new URL(large.bundle.product).pathname]: product(large.bundle),
    },
    // Like the gateway's resolver: the page for any other Digital Link a browser opens; for the
    // page's JSON request, 404 (unknown product).
    fallback: (req, path) => {
      if (!/^\/(01|00)\//.test(path)) return null;
      if (!/json/.test(req.headers.accept ?? '')) return { type: 'text/html; charset=utf-8', body: index };
      return { status: 404, body: JSON.stringify({ error: 'not_found', detail: `no events name ${path}` }) };
    },
  });
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const s = await startDevServer();
  console.log(`dev server: ${s.base}/scanner/`);
}
