// What the browser tests and the bench scripts share: Debian's Chromium driven by playwright-core
// (which downloads no browser), the real gateway's `prov demo` as a child process, a relaying
// proxy that can rewrite bundles, and a small static server (for the vector suite, which needs
// no gateway). Loopback only, ephemeral ports, temporary directories removed at the end.
import { spawn, execFileSync } from 'node:child_process';
import { createServer, request as httpRequest } from 'node:http';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, extname, normalize, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const WEB = join(ROOT, 'scanner-web');
export const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
export const PROV = process.env.PROV_BIN ?? join(ROOT, 'target/debug/prov');
export const QR_FIXTURE = join(WEB, 'tests/fixtures/qr.mjpeg');

/** FIELD-NOTES "Browser": the flags that work as root in a container. */
const FLAGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

/**
 * Launches headless Chromium with a fresh user-data dir (a persistent context, so the directory
 * is ours and is removed on close; playwright-core adds `--headless` and `--user-data-dir`
 * itself). `camera`: an MJPEG file for the fake camera.
 * Returns `{context, newPage(), close()}`.
 */
export async function launch({ camera = null, viewport = { width: 360, height: 780 }, deviceScaleFactor = 1 } = {}) {
  if (!existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM} (apt-get install chromium)`);
  const profile = mkdtempSync(join(tmpdir(), 'prov-chromium-'));
  const args = [...FLAGS];
  if (camera) {
    args.push('--use-fake-ui-for-media-stream', '--use-fake-device-for-media-stream',
      `--use-file-for-fake-video-capture=${camera}`);
  }
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM, headless: true, args, viewport, deviceScaleFactor,
  });
  return {
    context,
    newPage: async () => context.newPage(),
    close: async () => {
      await context.close().catch(() => {});
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

/** Waits until the page's verdict is final; returns `#verdict`'s data attributes. */
export async function verdictOf(page, timeout = 20000) {
  await page.waitForSelector('#verdict:not([data-verdict="loading"])', { timeout });
  return page.$eval('#verdict', (v) => ({ ...v.dataset, heading: v.querySelector('h2').textContent }));
}

/** The failures the page lists: `[{at, text}]`. */
export async function failuresOf(page) {
  return page.$$eval('#failures li', (lis) => lis.map((li) => ({ at: li.dataset.at, text: li.textContent })));
}

// ---- The real gateway ------------------------------------------------------------------------

/** Builds `target/debug/prov` if it is missing (the tests need the real gateway). */
export function ensureGateway() {
  if (process.env.PROV_BIN || existsSync(PROV)) return;
  execFileSync('cargo', ['build', '-q', '-p', 'prov-gateway', '--bin', 'prov'], { cwd: ROOT, stdio: 'inherit' });
}

/**
 * Starts `prov demo` on an ephemeral loopback port with its own data directory.
 * Resolves once it has printed the gateway URL and `products` product URLs.
 * Returns `{base, products: [{url, path, label}], proc, stop()}`.
 */
export async function startDemo({ seed = 1, products = 2, runTag = 'BT', timeout = 120000 } = {}) {
  ensureGateway();
  const dir = mkdtempSync(join(tmpdir(), 'prov-demo-'));
  const proc = spawn(PROV, ['demo', '--http', '127.0.0.1:0', '--data-dir', join(dir, 'data'), '--seed', String(seed),
    '--run-tag', runTag, '--products', String(products)], {
    cwd: dir, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? 'warn' },
  });
  let out = '';
  let err = '';
  const found = { base: null, products: [] };
  const done = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`prov demo: no ${products} products within ${timeout} ms\nstdout:\n${out}\nstderr:\n${err.slice(-4000)}`)), timeout);
    const parse = () => {
      for (const line of out.split('\n')) {
        const gw = /^demo: gateway (http:\/\/127\.0\.0\.1:\d+)\/?/.exec(line);
        if (gw) found.base = gw[1];
        const page = /(http:\/\/127\.0\.0\.1:\d+)(\/01\/\d{14}\/21\/\S+)\s*$/.exec(line);
        if (page && !/label/i.test(line) && !found.products.some((p) => p.path === page[2])) {
          found.products.push({ url: page[1] + page[2], path: page[2], label: null });
        }
        const label = /label:\s*(\S+)/.exec(line);
        if (label && found.products.length) {
          const p = found.products.find((x) => label[1].includes(x.path)) ?? found.products.at(-1);
          p.label ??= label[1];
        }
      }
      if (found.base && found.products.length >= products) {
        clearTimeout(timer);
        resolve();
      }
    };
    proc.stdout.on('data', (d) => { out += d; parse(); });
    proc.stderr.on('data', (d) => { err += d; });
    proc.on('exit', (code) => { clearTimeout(timer); reject(new Error(`prov demo exited (${code})\nstdout:\n${out}\nstderr:\n${err.slice(-4000)}`)); });
  });
  const stop = async () => {
    if (proc.exitCode === null) {
      const exited = new Promise((r) => proc.once('exit', r));
      proc.kill('SIGTERM');
      const t = setTimeout(() => proc.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(t);
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await done;
  } catch (e) {
    await stop();
    throw e;
  }
  return { base: found.base, products: found.products, proc, stop, output: () => out };
}

/** GETs `url` as JSON (the bundle), with `Accept: application/json`. */
export async function getJson(url) {
  const r = await fetch(url, { headers: { Accept: 'application/json' } });
  return { status: r.status, body: await r.json().catch(() => null) };
}

/** Waits until the resolver answers 200 for `path` (a product is made before it is logged). */
export async function waitForProduct(base, path, timeout = 60000) {
  const until = Date.now() + timeout;
  for (;;) {
    const r = await getJson(base + path);
    if (r.status === 200 && r.body?.events?.length) return r.body;
    if (Date.now() > until) throw new Error(`${path}: still HTTP ${r.status} after ${timeout} ms`);
    await new Promise((res) => setTimeout(res, 250));
  }
}

// ---- Servers -----------------------------------------------------------------------------------

function listen(server) {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => {
    const { port } = server.address();
    resolve({ base: `http://127.0.0.1:${port}`, close: () => new Promise((r) => { server.closeAllConnections?.(); server.close(r); }) });
  }));
}

/**
 * A proxy in front of `target` that relays everything and, for bundle responses (JSON with
 * `events`), lets `rewrite(bundle)` change them (return the new object, or undefined to relay
 * the original bytes). For requests asking for JSON, `redirect(path)` may send the request to
 * another path of the target (the page then gets the target's real answer for that path) and
 * `cut(path)` may drop the connection (a network failure). Set them while it runs:
 * `proxy.rewrite = …`.
 */
export async function startProxy(target) {
  const state = { rewrite: null, redirect: null, cut: null, rewritten: 0 };
  const server = createServer((req, res) => {
    let path = req.url;
    if (/json/.test(req.headers.accept ?? '') && !path.startsWith('/scanner/')) {
      if (state.cut?.(path)) {
        req.socket.destroy();
        return;
      }
      path = state.redirect?.(path) ?? path;
    }
    const up = httpRequest(`${target}${path}`, { method: req.method, headers: { ...req.headers, host: new URL(target).host, 'accept-encoding': 'identity' } }, (upRes) => {
      const chunks = [];
      upRes.on('data', (c) => chunks.push(c));
      upRes.on('end', () => {
        let body = Buffer.concat(chunks);
        const headers = { ...upRes.headers };
        if (state.rewrite && /json/.test(headers['content-type'] ?? '') && upRes.statusCode === 200) {
          const json = JSON.parse(body.toString('utf8'));
          if (Array.isArray(json.events)) {
            const changed = state.rewrite(json);
            if (changed !== undefined) {
              body = Buffer.from(JSON.stringify(changed));
              state.rewritten++;
            }
          }
        }
        delete headers['transfer-encoding'];
        headers['content-length'] = String(body.length);
        res.writeHead(upRes.statusCode, headers);
        res.end(body);
      });
    });
    up.on('error', (e) => { res.writeHead(502); res.end(String(e)); });
    req.pipe(up);
  });
  const s = await listen(server);
  return Object.assign(state, s);
}

const TYPES = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.mjs': 'text/javascript', '.css': 'text/css',
  '.json': 'application/json', '.wasm': 'application/wasm', '.png': 'image/png', '.svg': 'image/svg+xml' };

/**
 * A static server: `mounts` maps URL prefixes to directories (or a URL to a file), `routes`
 * maps exact paths to `(req) => ({status, type, body})`, and `fallback(req, path)` may answer
 * anything else (or return null for a 404). Only what is mounted is served.
 */
export async function startStatic({ mounts = {}, routes = {}, fallback = null }) {
  const server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url, 'http://x').pathname);
    const send = (status, type, body) => { res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' }); res.end(body); };
    if (routes[path]) {
      const r = routes[path](req);
      return send(r.status ?? 200, r.type ?? 'application/json', r.body);
    }
    for (const [prefix, dir] of Object.entries(mounts)) {
      if (path !== prefix && !path.startsWith(prefix.endsWith('/') ? prefix : `${prefix}/`)) continue;
      let file = prefix.endsWith('/') ? normalize(join(dir, path.slice(prefix.length))) : dir;
      if (existsSync(file) && statSync(file).isDirectory()) file = join(file, 'index.html');
      if (prefix.endsWith('/') && !file.startsWith(dir.endsWith(sep) ? dir : dir + sep)) break;
      if (existsSync(file) && statSync(file).isFile()) return send(200, TYPES[extname(file)] ?? 'application/octet-stream', readFileSync(file));
    }
    const r = fallback?.(req, path);
    if (r) return send(r.status ?? 200, r.type ?? 'application/json', r.body);
    send(404, 'application/json', JSON.stringify({ error: 'not_found', detail: path }));
  });
  return listen(server);
}
