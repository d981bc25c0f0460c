// The subset of node:assert/strict that vector-cases.mjs uses, for running those cases inside
// the browser (which has no node:assert). Same semantics for the values the cases compare
// (JSON-like data, typed arrays): strict equality, structural deep equality with the same keys.
class AssertionError extends Error {}

function fail(message, detail) {
  throw new AssertionError(message ? `${message} (${detail})` : detail);
}

function deepEq(a, b) {
  if (Object.is(a, b)) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Object.getPrototypeOf(a) !== Object.getPrototypeOf(b)) return false;
  if (ArrayBuffer.isView(a)) return a.length === b.length && a.every((x, i) => Object.is(x, b[i]));
  const ka = Object.keys(a), kb = Object.keys(b);
  if (ka.length !== kb.length) return false;
  return ka.every((k) => Object.hasOwn(b, k) && deepEq(a[k], b[k]));
}

const show = (x) => { try { return JSON.stringify(x)?.slice(0, 300); } catch { return String(x); } };

export default {
  equal(actual, expected, message) {
    if (!Object.is(actual, expected)) fail(message, `${show(actual)} !== ${show(expected)}`);
  },
  ok(value, message) {
    if (!value) fail(message, `${show(value)} is not truthy`);
  },
  deepEqual(actual, expected, message) {
    if (!deepEq(actual, expected)) fail(message, `${show(actual)} is not deeply equal to ${show(expected)}`);
  },
  match(text, re, message) {
    if (typeof text !== 'string' || !re.test(text)) fail(message, `${show(text)} does not match ${re}`);
  },
};
