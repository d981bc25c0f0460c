// GS1 Digital Link → the canonical identifier the resolver is asked about (SPEC §1).
//
// A QR code may carry a brand's own host, a path prefix, qualifiers the key does not need
// (`/22/{cpv}`, `/10/{lot}` before `/21/`) and query attributes (`?17=YYMMDD`); the page and the
// camera scanner both map what they read to the canonical form before asking the resolver:
// an item is `/01/{GTIN-14}/21/{serial}` (lot and query dropped), a lot `/01/{GTIN-14}/10/{lot}`,
// a logistic unit `/00/{SSCC-18}`. Check digits are verified here so that a misread code is
// said at once instead of being sent to the resolver. Pure functions, no DOM: Node imports this
// file in the browser tests to check the mapping itself.

export const CANONICAL_HOST = 'https://id.gs1.org';

/** A code the page cannot look up, with a message for people. */
export class LinkError extends Error {}

// GS1 AI 82 character set (serials and lots), GS General Specifications figure 7.11-1.
const AI82 = /^[!"%&'()*+,\-./0-9:;<=>?A-Z_a-z]{1,20}$/;
const UNRESERVED = /[A-Za-z0-9\-._~]/;

/** GS1 mod-10 check digit over all digits but the last, compared with the last. */
export function checkDigitOk(digits) {
  let sum = 0;
  const body = digits.slice(0, -1);
  for (let i = 0; i < body.length; i++) {
    // Weights 3, 1, 3, … counted from the rightmost digit of the body.
    sum += Number(body[body.length - 1 - i]) * (i % 2 === 0 ? 3 : 1);
  }
  return (10 - (sum % 10)) % 10 === Number(digits.at(-1));
}

/** Percent-encodes every byte outside RFC 3986 "unreserved", with uppercase hex (SPEC §1). */
export function encodeComponent(text) {
  let out = '';
  for (const ch of text) {
    if (UNRESERVED.test(ch)) {
      out += ch;
      continue;
    }
    for (const b of new TextEncoder().encode(ch)) out += `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

function decodeSegment(seg, what) {
  try {
    return decodeURIComponent(seg);
  } catch {
    throw new LinkError(`the ${what} is not valid percent-encoding`);
  }
}

function gtin14(value) {
  if (!/^(\d{8}|\d{12}|\d{13}|\d{14})$/.test(value)) {
    throw new LinkError(`"${value}" is not a GTIN (8, 12, 13 or 14 digits)`);
  }
  const g = value.padStart(14, '0');
  if (!checkDigitOk(g)) throw new LinkError(`GTIN ${value} has a wrong check digit`);
  return g;
}

function ai82(value, what) {
  if (!AI82.test(value)) throw new LinkError(`the ${what} "${value}" is not 1–20 GS1 characters`);
  return value;
}

// Per primary key: the qualifiers it may take, in the order the Digital Link grammar fixes.
const QUALIFIERS = { '01': ['22', '10', '21'], '00': [] };

/**
 * Reads a Digital Link given as a full URI (any host, any path prefix, any query) or as a path.
 * Returns `{kind: 'item'|'lot'|'sscc', path, uri, gtin?, serial?, lot?, sscc?}` where `path`
 * is the canonical path (what to ask the resolver) and `uri` the canonical URI (what a bundle's
 * `product` must be). Throws a LinkError for anything else.
 */
export function parseDigitalLink(input) {
  let path = String(input ?? '').trim();
  if (/^[a-z][a-z0-9+.-]*:/i.test(path)) {
    let url;
    try {
      url = new URL(path);
    } catch {
      throw new LinkError('not a web address');
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new LinkError('not a web address');
    path = url.pathname;
  } else {
    path = path.split(/[?#]/)[0];
  }
  const segs = path.split('/').filter((s) => s !== '');
  // The first primary key with a value after it; anything before it is the host's own prefix.
  const start = segs.findIndex((s, i) => s in QUALIFIERS && i + 1 < segs.length);
  if (start < 0) throw new LinkError('not a GS1 Digital Link of an item, lot or logistic unit');
  const key = segs[start];
  const allowed = QUALIFIERS[key];
  const values = {};
  let next = 0;
  for (let i = start + 2; i < segs.length; i += 2) {
    const ai = segs[i];
    const at = allowed.indexOf(ai, next);
    if (at < 0) throw new LinkError(`unexpected "/${ai}/" in the Digital Link`);
    if (i + 1 >= segs.length) throw new LinkError(`"/${ai}/" has no value`);
    values[ai] = decodeSegment(segs[i + 1], `/${ai}/ value`);
    next = at + 1;
  }
  const primary = decodeSegment(segs[start + 1], 'key');
  if (key === '00') {
    if (!/^\d{18}$/.test(primary)) throw new LinkError(`"${primary}" is not an SSCC (18 digits)`);
    if (!checkDigitOk(primary)) throw new LinkError(`SSCC ${primary} has a wrong check digit`);
    return finish({ kind: 'sscc', sscc: primary }, `/00/${primary}`);
  }
  const gtin = gtin14(primary);
  if (values['21'] !== undefined) {
    const serial = ai82(values['21'], 'serial');
    return finish({ kind: 'item', gtin, serial }, `/01/${gtin}/21/${encodeComponent(serial)}`);
  }
  if (values['10'] !== undefined) {
    const lot = ai82(values['10'], 'lot');
    return finish({ kind: 'lot', gtin, lot }, `/01/${gtin}/10/${encodeComponent(lot)}`);
  }
  throw new LinkError('this code names a kind of product, not one item or lot: nothing to trace');
}

function finish(fields, path) {
  return { ...fields, path, uri: CANONICAL_HOST + path };
}

/** Splits a location URI (`https://id.gs1.org/414/{GLN}`) into a readable GLN, or returns it. */
export function glnOf(uri) {
  const m = /^https:\/\/id\.gs1\.org\/414\/(\d{13})(?:\/254\/(.+))?$/.exec(uri ?? '');
  if (!m) return uri ?? '';
  return m[2] ? `${m[1]} (${decodeSegment(m[2], 'extension')})` : m[1];
}
