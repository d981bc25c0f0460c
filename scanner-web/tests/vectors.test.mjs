// The wasm verifier (dist/verifier.wasm, built by ../build-wasm.sh) over the shared vectors
// (schemas/vectors/), in Node. The cases live in vector-cases.mjs, which the browser suite
// (browser/vectors.browser.mjs) runs inside Chromium too.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { loadVerifier } from '../js/verifier.js';
import { vectorCases } from './vector-cases.mjs';

const root = new URL('../../', import.meta.url);
const vec = (name) => JSON.parse(readFileSync(new URL(`schemas/vectors/${name}`, root), 'utf8'));
const v = await loadVerifier(readFileSync(new URL('scanner-web/dist/verifier.wasm', root)));

for (const [name, fn] of vectorCases({ v, vec, assert })) test(name, fn);
