// The page's own code that needs no browser: the Digital Link → canonical mapping every scan and
// every page load goes through (SPEC §1), and the vendored jsQR being the npm package's file.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { LinkError, checkDigitOk, encodeComponent, parseDigitalLink } from '../../www/dl.js';

test('brand hosts, path prefixes, qualifiers and queries map to the canonical item key', () => {
  const item = '/01/09506000134352/21/ABC123';
  for (const input of [
    item,
    `https://id.gs1.org${item}`,
    'https://brand.example.com/01/09506000134352/10/LOT-7/21/ABC123?17=281130',
    'https://brand.example.com/some/prefix/01/09506000134352/22/2A/10/L1/21/ABC123#x',
    'HTTPS://Brand.Example.COM/01/9506000134352/21/ABC123?17=281130&3103=000500',
    '/01/09506000134352/21/%41BC123',
  ]) {
    const l = parseDigitalLink(input);
    assert.equal(l.kind, 'item', input);
    assert.equal(l.path, item, input);
    assert.equal(l.uri, `https://id.gs1.org${item}`);
  }
  assert.deepEqual(parseDigitalLink('https://x.example/01/09506000134352/10/PWD-2611?17=281130'),
    { kind: 'lot', gtin: '09506000134352', lot: 'PWD-2611', path: '/01/09506000134352/10/PWD-2611',
      uri: 'https://id.gs1.org/01/09506000134352/10/PWD-2611' });
  assert.equal(parseDigitalLink('/00/106141412345678908').path, '/00/106141412345678908');
});

test('serials are percent-encoded outside RFC 3986 unreserved, uppercase hex', () => {
  assert.equal(parseDigitalLink('/01/09506000134352/21/a%2fb+c%3A').path, '/01/09506000134352/21/a%2Fb%2Bc%3A');
  assert.equal(encodeComponent('A-._~z!'), 'A-._~z%21');
});

test('misread or foreign codes are refused with a reason', () => {
  for (const [input, why] of [
    ['/01/09506000134353/21/ABC123', /check digit/],
    ['/00/106141412345678907', /check digit/],
    ['/01/0950600013/21/ABC123', /not a GTIN/],
    ['/01/09506000134352', /kind of product/],
    ['/01/09506000134352/21/ABC123/10/L1', /unexpected/],
    ['/01/09506000134352/21/' + 'X'.repeat(21), /1–20/],
    ['/01/09506000134352/21/caf%C3%A9', /1–20 GS1 characters/],
    ['/01/09506000134352/21/%zz', /percent-encoding/],
    ['https://example.com/hello', /not a GS1 Digital Link/],
    ['mailto:a@b.example', /not a web address/],
    ['', /not a GS1 Digital Link/],
  ]) {
    assert.throws(() => parseDigitalLink(input), (e) => e instanceof LinkError && why.test(e.message), input);
  }
  assert.ok(checkDigitOk('09506000134352'));
  assert.ok(!checkDigitOk('09506000134353'));
});

test('the vendored jsQR is the npm package\'s file, byte for byte', () => {
  const web = new URL('../../', import.meta.url);
  const vendored = readFileSync(new URL('www/vendor/jsQR.js', web), 'utf8');
  const upstream = readFileSync(new URL('node_modules/jsqr/dist/jsQR.js', web), 'utf8');
  const begin = '// ---- begin node_modules/jsqr/dist/jsQR.js ----\n';
  const end = '\n// ---- end node_modules/jsqr/dist/jsQR.js ----\n';
  const body = vendored.slice(vendored.indexOf(begin) + begin.length, vendored.indexOf(end));
  assert.equal(body, upstream);
  const version = JSON.parse(readFileSync(new URL('node_modules/jsqr/package.json', web), 'utf8')).version;
  assert.ok(vendored.startsWith(`// jsQR ${version} `), 'the header names the vendored version');
  assert.equal(readFileSync(new URL('www/vendor/LICENSE-jsQR', web), 'utf8'),
    readFileSync(new URL('node_modules/jsqr/LICENSE', web), 'utf8'));
});
