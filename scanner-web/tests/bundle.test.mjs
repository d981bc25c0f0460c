// The wasm verifier on product provenance bundles (SPEC §6): schemas/vectors/bundle.json
// (item ABC123 over the vector log, and its hand-picked invalid variants), mutation sweeps,
// trust taken only from the configuration, malformed input, and the time for the 50-event
// bundle of schemas/vectors/bundle-50.json.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { loadVerifier } from '../js/verifier.js';

const root = new URL('../../', import.meta.url);
const vec = (name) => JSON.parse(readFileSync(new URL(`schemas/vectors/${name}`, root), 'utf8'));
const v = await loadVerifier(readFileSync(new URL('scanner-web/dist/verifier.wasm', root)));
const { trust, bundle, invalid } = vec('bundle.json');
const large = vec('bundle-50.json');

/** Applies an invalid case's patches (schemas/vectors/README.md) to a copy of `b`. */
function patched(b, patches) {
  const replace = (x, from, to) => (typeof x === 'string' ? x.split(from).join(to)
    : Array.isArray(x) ? x.map((y) => replace(y, from, to))
      : x && typeof x === 'object'
        ? Object.fromEntries(Object.entries(x).map(([k, y]) => [k, replace(y, from, to)])) : x);
  let out = structuredClone(b);
  for (const p of patches) {
    if (p.op === 'replace_all') out = replace(out, p.from, p.to);
    else {
      let o = out;
      for (const k of p.path.slice(0, -1)) o = o[k];
      o[p.path.at(-1)] = p.value;
    }
  }
  return out;
}

/** Flips the lowest bit of byte `i` of a base64 text's bytes. */
function flipB64(text, i) {
  const b = Buffer.from(text, 'base64');
  b[(i + b.length) % b.length] ^= 0x01;
  return b.toString('base64');
}

const ats = (r) => r.failures.map((f) => f.at);

test("ABC123's bundle verifies, with every event related to the product", () => {
  const r = v.verifyBundle(bundle, trust);
  assert.deepEqual(r.failures, []);
  assert.equal(r.verdict, 'verified');
  assert.equal(r.product, bundle.product);
  assert.equal(r.checkpoint.verified, true);
  assert.equal(r.events.length, 8);
  assert.ok(r.events.every((e) => e.verified));
  assert.deepEqual(r.events.map((e) => e.relation),
    ['lot', 'product', 'product', 'container', 'container', 'container', 'container', 'container']);
  const sensor = r.events.find((e) => e.bizStep === 'sensor_reporting');
  assert.equal(sensor.sensorException, true);
  assert.deepEqual(sensor.sensorReports.map((s) => [s.type, s.value, s.exception]),
    [['Temperature', 9.5, 'ALARM_CONDITION'], ['RelativeHumidity', 41.25, undefined]]);
  assert.ok(r.events.every((e) => e.clockSynced === true && e.registration.operator === 'operator:factory-a'));
  // The lot is linked by GTIN only (the vector commissioning declares none): said, not failed.
  assert.deepEqual(r.warnings.map((w) => w.at), ['product']);
});

test('every hand-picked invalid variant fails exactly where it says', () => {
  assert.ok(invalid.length >= 10);
  for (const c of invalid) {
    const r = v.verifyBundle(patched(bundle, c.patches), trust);
    assert.equal(r.verdict, 'not_verified', c.name);
    assert.deepEqual(ats(r), c.failures.map((f) => f.at), `${c.name}: ${JSON.stringify(r.failures)}`);
    c.failures.forEach((f, i) => assert.ok(r.failures[i].error.startsWith(f.error),
      `${c.name}: ${r.failures[i].error} does not start with ${f.error}`));
  }
});

test('trust comes from the configuration only, never from the bundle', () => {
  // The bundle names a gateway key; a page pinning another one rejects its checkpoint.
  const r = v.verifyBundle(bundle, { ...trust, gateway_key: large.trust.gateway_key });
  assert.equal(r.verdict, 'not_verified');
  assert.deepEqual(ats(r), ['checkpoint']);
  // No trusted operator: every registration fails, nothing else.
  const r2 = v.verifyBundle(bundle, { ...trust, operator_keys: {} });
  assert.deepEqual(ats(r2), bundle.events.map((_, i) => `events[${i}].registration.cose`));
  assert.ok(r2.failures.every((f) => f.error.includes('not a trusted operator')));
  // An unreadable configuration is a failure at `trust`.
  for (const bad of [{}, { ...trust, gateway_key: 'x' }, { ...trust, operator_keys: { 'line1-packer': 'AA==' } }]) {
    assert.deepEqual(ats(v.verifyBundle(bundle, bad)), ['trust']);
  }
});

test('a flipped byte in any COSE, proof hash or the checkpoint is named', () => {
  bundle.events.forEach((e, k) => {
    const len = Buffer.from(e.cose, 'base64').length;
    for (const i of [0, 1, 5, len >> 1, len - 64, len - 33, len - 1]) {
      const r = v.verifyBundle(patched(bundle, [{ op: 'set', path: ['events', k, 'cose'], value: flipB64(e.cose, i) }]), trust);
      assert.equal(r.verdict, 'not_verified');
      assert.ok(ats(r).includes(`events[${k}].cose`), `event ${k} byte ${i}: ${JSON.stringify(r.failures)}`);
      assert.ok(ats(r).includes(`events[${k}].proof`));
      assert.ok(ats(r).every((a) => a.startsWith(`events[${k}]`)), JSON.stringify(r.failures));
    }
    for (const field of ['proof', 'registration']) {
      const proof = field === 'proof' ? e.proof : e.registration.proof;
      const lines = proof.split('\n');
      for (let h = 2; lines[h] !== ''; h++) {
        const bad = lines.slice();
        bad[h] = flipB64(bad[h], h);
        const path = field === 'proof' ? ['events', k, 'proof'] : ['events', k, 'registration', 'proof'];
        const r = v.verifyBundle(patched(bundle, [{ op: 'set', path, value: bad.join('\n') }]), trust);
        assert.deepEqual(r.failures, [{ at: path.join('.').replace(/\.(\d+)/, '[$1]'),
          error: 'inclusion proof does not match the checkpoint root' }]);
      }
    }
  });
  // Every byte of the checkpoint, everywhere it appears (over the product's own commissioning
  // alone, to keep the sweep quick).
  const note = bundle.checkpoint;
  const one = { ...bundle, events: [bundle.events[1]] };
  assert.equal(v.verifyBundle(one, trust).verdict, 'verified');
  for (let i = 0; i < note.length; i++) {
    const flipped = note.slice(0, i) + String.fromCharCode(note.charCodeAt(i) ^ 1) + note.slice(i + 1);
    const r = v.verifyBundle(patched(one, [{ op: 'replace_all', from: note, to: flipped }]), trust);
    assert.equal(r.verdict, 'not_verified', `checkpoint byte ${i}`);
    assert.equal(r.failures[0].at, 'checkpoint', `checkpoint byte ${i}: ${JSON.stringify(r.failures)}`);
  }
  // The bundle's own checkpoint changed but not the proofs': every proof says so.
  const r = v.verifyBundle({ ...bundle, checkpoint: note.replace(/\n— /, '\n— x') }, trust);
  assert.equal(r.verdict, 'not_verified');
  assert.ok(ats(r).includes('events[0].proof'));
});

test('malformed input of any kind gives a report, never a trap', () => {
  const text = JSON.stringify(bundle);
  for (let cut = 0; cut < text.length; cut += 97) {
    assert.equal(v.verifyBundle(text.slice(0, cut), trust).verdict, 'not_verified');
  }
  for (const odd of ['', 'null', '[]', '{}', '{"events": [{}]}', '{"events": 5}', '\u0000\u00ff',
    JSON.stringify({ ...bundle, events: [] })]) {
    assert.equal(v.verifyBundle(odd, trust).verdict, 'not_verified', odd);
  }
  let seed = 7;
  const rand = () => (seed = (seed * 1103515245 + 12345) >>> 0) >>> 8;
  for (let n = 0; n < 300; n++) {
    const junk = Uint8Array.from({ length: rand() % 400 }, () => rand() & 0xff);
    assert.equal(v.verifyEvent(junk, junk).ok, false);
    assert.equal(v.verifyRegistryRecord(junk, trust).ok, false);
    assert.equal(v.verifyInclusion(junk).ok, false);
    assert.equal(v.verifyConsistency(junk).ok, false);
    assert.equal(v.openCheckpoint(junk, trust.gateway_key).ok, false);
    assert.equal(v.verifyTlogProof(junk, junk, trust.gateway_key).ok, false);
    assert.equal(v.verifyChain([Buffer.from(junk).toString('hex')], trust.gateway_key).ok, false);
    assert.equal(v.verifyBundle(junk, trust).verdict, 'not_verified');
  }
});

test('the 50-event bundle verifies fast', (t) => {
  const text = JSON.stringify(large.bundle);
  const first = performance.now();
  const r = v.verifyBundle(text, large.trust);
  const cold = performance.now() - first;
  assert.deepEqual(r.failures, []);
  assert.deepEqual(r.warnings, []); // Its lot is declared by the commissioning event.
  assert.equal(r.events.length, 50);
  assert.equal(r.events.filter((e) => e.sensorException).length, 1);
  const times = [];
  for (let i = 0; i < 5; i++) {
    const t0 = performance.now();
    assert.equal(v.verifyBundle(text, large.trust).verdict, 'verified');
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  t.diagnostic(`50-event bundle: first ${cold.toFixed(0)} ms, median ${times[2].toFixed(0)} ms`);
  assert.ok(times[2] < 2000, `median ${times[2]} ms`);
});
