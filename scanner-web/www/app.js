// The scanner page: reads the product from the address, fetches its provenance bundle (SPEC §6)
// from the resolver, verifies it here with the wasm verifier under the keys pinned in
// /scanner/config.json (never the bundle's own), and shows the verdict, the journey, the sensor
// readings, the signing devices and the lookup count; "Scan another product" reads a QR code
// with the camera.
//
// Everything shown comes from the verifier's report, and everything from the bundle or the
// resolver is untrusted text: it is only ever set with textContent, never parsed as HTML.
// Hooks for tests and measurements: #verdict carries data-verdict (loading | verified |
// not_verified | unknown | error | none), data-event-count, data-verify-ms (the verifier call)
// and data-load-ms (navigation start → verdict shown); #failures items carry data-at.
import { parseDigitalLink, LinkError, glnOf } from '/scanner/dl.js';
import { loadVerifier } from '/scanner/verifier.js';

const $ = (id) => document.getElementById(id);

/** Default lookup count from which the page warns of a possibly copied code. */
const LOOKUP_WARNING = 20;

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') e.className = v;
    else if (k.startsWith('data-') || k.startsWith('aria-') || k === 'role' || k === 'datetime' || k === 'scope' || k === 'title') e.setAttribute(k, String(v));
    else e[k] = v;
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function setVerdict(state, heading, detail, extra = {}) {
  const v = $('verdict');
  v.dataset.verdict = state;
  for (const [k, val] of Object.entries(extra)) v.dataset[k] = String(val);
  v.dataset.loadMs = performance.now().toFixed(1);
  $('verdict-heading').textContent = heading;
  $('verdict-detail').textContent = detail;
  document.title = `${heading} — Product provenance check`;
}

// ---- Text for people -------------------------------------------------------------------------

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** `2026-11-24T07:30:00.000Z` with offset `+01:00` → `24 Nov 2026, 08:30 (UTC+01:00)`. */
function localTime(eventTime, offset) {
  const t = Date.parse(eventTime ?? '');
  if (Number.isNaN(t)) return eventTime ?? 'unknown time';
  const m = /^([+-])(\d\d):(\d\d)$/.exec(offset ?? '');
  const shift = m ? (m[1] === '-' ? -1 : 1) * (Number(m[2]) * 60 + Number(m[3])) : 0;
  const d = new Date(t + shift * 60000);
  const hh = String(d.getUTCHours()).padStart(2, '0');
  const mm = String(d.getUTCMinutes()).padStart(2, '0');
  return `${d.getUTCDate()} ${MONTHS[d.getUTCMonth()]} ${d.getUTCFullYear()}, ${hh}:${mm} (UTC${m ? offset : ''})`;
}

const UNITS = { CEL: '°C', FAH: '°F', KEL: 'K', P1: '%', A93: 'g/m³', MBR: 'mbar', KPA: 'kPa', LUX: 'lx' };

function reading(s) {
  if (s.value === undefined) return '—';
  const unit = UNITS[s.uom] ?? (s.uom ? ` ${s.uom}` : '');
  return `${s.value}${unit.startsWith(' ') || unit === '' ? unit : ` ${unit}`}`;
}

function idText(uri) {
  const m = /^https:\/\/id\.gs1\.org\/(01|00|414)\/(.+)$/.exec(uri ?? '');
  if (!m) return uri ?? '';
  if (m[1] === '00') return `logistic unit ${m[2]}`;
  if (m[1] === '414') return `location ${glnOf(uri)}`;
  const [gtin, , rest] = m[2].split(/\/(10|21)\//);
  if (/\/21\//.test(m[2])) return `item ${decodeURIComponent(rest)} (GTIN ${gtin})`;
  if (/\/10\//.test(m[2])) return `lot ${decodeURIComponent(rest)} (GTIN ${gtin})`;
  return `GTIN ${gtin}`;
}

function placeName(config, uri) {
  if (!uri) return null;
  const gln = glnOf(uri);
  const name = config.places?.[gln];
  return name ? `${name} (GLN ${gln})` : `GLN ${gln}`;
}

/** The journey step of an event: `[key, title]`. */
function stepOf(e) {
  switch (e.bizStep) {
    case 'commissioning':
      return e.type === 'TransformationEvent' || e.relation === 'lot' || e.relation === 'input'
        ? ['produced', 'Lot produced'] : ['commissioned', 'Commissioned'];
    case 'packing':
      return e.relation === 'product' ? ['packed', 'Packed into a case'] : ['palletized', 'Palletized'];
    case 'shipping':
      return ['shipped', e.type === 'TransactionEvent' ? 'Shipped (transaction recorded)' : 'Shipped'];
    case 'receiving':
      return ['received', 'Received'];
    case 'sensor_reporting':
      return ['sensor', e.sensorException ? 'Sensor reading: excursion' : 'Sensor reading'];
    case 'unpacking':
      return ['unpacked', 'Unpacked'];
    default: {
      const words = (e.bizStep ?? e.type ?? 'event').replace(/_/g, ' ');
      return [e.bizStep ?? 'other', words.charAt(0).toUpperCase() + words.slice(1)];
    }
  }
}

const RELATION = {
  product: () => 'this item',
  container: (via) => `its ${idText(via)}`,
  lot: (via) => `its ${idText(via)}`,
  input: (via) => `ingredient ${idText(via)}`,
};

/** Where a failure is, for people: `events[3].proof` → "event 4 (Shipped): its log proof". */
function failurePlace(at, report) {
  const m = /^events\[(\d+)\](?:\.(.+))?$/.exec(at);
  if (!m) {
    return { checkpoint: 'the log checkpoint', product: 'the product', trust: 'the page\'s pinned keys', bundle: 'the bundle', events: 'the events' }[at] ?? at;
  }
  const e = report.events[Number(m[1])];
  const title = e ? stepOf(e)[1] : 'unknown';
  const part = {
    cose: 'its signed message', proof: 'its log proof', device_key: 'its device key',
    leaf_index: 'its log position', registration: 'its device registration',
    'registration.cose': 'its device registration', 'registration.proof': 'the log proof of its device registration',
    'registration.leaf_index': 'the log position of its device registration',
  }[m[2] ?? ''] ?? (m[2] ? m[2] : 'the event');
  return `event ${Number(m[1]) + 1} (${title}): ${part}`;
}

// ---- Rendering the report --------------------------------------------------------------------

function renderFailures(list, items, report, cls) {
  list.replaceChildren(...items.map((f) => el('li', { 'data-at': f.at, class: cls },
    el('strong', {}, failurePlace(f.at, report)), ' — ', f.error, ' ', el('code', {}, `[${f.at}]`))));
  list.hidden = items.length === 0;
}

function renderTimeline(config, report) {
  const order = report.events.map((e, i) => [e, i])
    .sort((a, b) => (a[0].eventTime ?? '').localeCompare(b[0].eventTime ?? '') || a[1] - b[1]);
  const items = order.map(([e, i]) => {
    const [key, title] = stepOf(e);
    const place = placeName(config, e.bizLocation ?? e.readPoint);
    const via = e.relation && e.relation !== 'product' ? RELATION[e.relation](e.via) : null;
    return el('li', { class: `step${e.verified ? '' : ' unverified'}${e.sensorException ? ' excursion' : ''}`, 'data-step': key, 'data-index': i, 'data-verified': String(e.verified) },
      el('h3', {}, title),
      el('p', { class: 'when' }, el('time', { datetime: e.eventTime }, localTime(e.eventTime, e.eventTimeZoneOffset))),
      place && el('p', { class: 'where' }, `At ${place}`),
      via && el('p', { class: 'via' }, `Recorded for ${via}`),
      el('p', { class: 'by' }, `Signed by device ${e.device ?? 'unknown'}${e.seq ? `, message #${e.seq}` : ''}`),
      e.clockSynced === false && el('p', { class: 'flag clock', 'data-flag': 'clock' },
        'Device clock not synchronised: this time is the device\'s own estimate.'),
      e.sensorException && el('p', { class: 'flag excursion', 'data-flag': 'excursion' },
        'A sensor reported an excursion (see the sensor readings).'),
      !e.verified && el('p', { class: 'flag bad', 'data-flag': 'unverified' }, 'This event did not verify.'));
  });
  $('timeline').replaceChildren(...items);
  $('timeline').dataset.eventCount = String(items.length);
  $('journey').hidden = items.length === 0;
}

function renderSensors(config, report) {
  const tables = report.events.filter((e) => e.sensorReports?.length).map((e) => {
    const place = placeName(config, e.bizLocation ?? e.readPoint);
    return el('table', { class: `sensor${e.sensorException ? ' excursion' : ''}`, 'data-index': e.index },
      el('caption', {}, `${localTime(e.eventTime, e.eventTimeZoneOffset)}${place ? `, ${place}` : ''} — device ${e.device ?? 'unknown'}`),
      el('thead', {}, el('tr', {}, el('th', { scope: 'col' }, 'Measurement'), el('th', { scope: 'col' }, 'Value'), el('th', { scope: 'col' }, 'Status'))),
      el('tbody', {}, e.sensorReports.map((s) => el('tr', { class: s.exception ? 'excursion' : '', 'data-exception': s.exception },
        el('th', { scope: 'row' }, String(s.type ?? '').replace(/^gs1:/, '').replace(/([a-z])([A-Z])/g, '$1 $2')),
        el('td', {}, reading(s)),
        el('td', {}, s.exception ? el('strong', {}, `Excursion (${s.exception.replace(/_/g, ' ').toLowerCase()})`) : 'Normal')))));
  });
  $('sensor-list').replaceChildren(...tables);
  $('sensors').hidden = tables.length === 0;
}

function renderDevices(report) {
  const byDevice = new Map();
  for (const e of report.events) {
    if (!e.device) continue;
    const d = byDevice.get(e.device) ?? { events: 0, verified: true, registration: e.registration };
    d.events += 1;
    d.verified &&= e.verified;
    d.registration ??= e.registration;
    byDevice.set(e.device, d);
  }
  const items = [...byDevice].map(([id, d]) => el('li', { 'data-device': id, 'data-verified': String(d.verified) },
    el('strong', {}, id), ` — ${d.events} event${d.events === 1 ? '' : 's'}`,
    d.registration
      ? el('span', { class: 'small' }, ` · registered by ${d.registration.operator} on ${localTime(d.registration.registered_at)} · key `,
        el('code', { title: d.registration.key_fingerprint }, d.registration.key_fingerprint.slice(0, 16)))
      : el('span', { class: 'small' }, ' · no valid registration'),
    d.verified ? '' : el('span', { class: 'flag bad' }, ' · did not verify')));
  $('device-list').replaceChildren(...items);
  $('devices').hidden = items.length === 0;
}

function renderLog(report) {
  const cp = report.checkpoint;
  if (!cp) return;
  const fact = (k, v) => [el('dt', {}, k), el('dd', {}, v)];
  $('log-facts').replaceChildren(
    ...fact('Log', cp.origin),
    ...fact('Entries', String(cp.size)),
    ...fact('Root hash', el('code', { class: 'hash' }, cp.root_hex)),
    ...fact('Checkpoint signature', cp.verified ? 'valid, by the pinned gateway key' : 'NOT valid under the pinned gateway key'));
  $('log').hidden = false;
}

function renderLookups(config, bundle) {
  const n = bundle?.lookups;
  if (typeof n !== 'number') return;
  const limit = config.lookup_warning ?? LOOKUP_WARNING;
  const box = $('lookups');
  box.dataset.lookups = String(n);
  const warn = n >= limit;
  box.dataset.warning = String(warn);
  box.classList.toggle('warn', warn);
  $('lookups-text').textContent = warn
    ? `This code has been looked up ${n} times. A genuine item is scanned only a few times: this many scans can mean the code was copied onto counterfeits.`
    : `This code has been looked up ${n} time${n === 1 ? '' : 's'} (as reported by the resolver).`;
  box.hidden = false;
}

function showReport(config, link, bundle, report, verifyMs) {
  const failures = report.failures.slice();
  // The resolver could answer with another product's (valid) bundle: that is not this product.
  if (report.product && report.product !== link.uri) {
    failures.push({ at: 'product', error: `the bundle is about ${report.product}, not the scanned ${link.uri}` });
  }
  const ok = report.verdict === 'verified' && failures.length === 0;
  const n = report.events.length;
  const extra = { eventCount: n, verifyMs: verifyMs.toFixed(1), failureCount: failures.length };
  if (ok) {
    const cp = report.checkpoint;
    setVerdict('verified', 'Verified',
      `All ${n} events of this product's history are signed by registered devices and included in the log ${cp.origin} (${cp.size} entries), checked in your browser.`, extra);
  } else {
    setVerdict('not_verified', 'Not verified',
      `${failures.length} check${failures.length === 1 ? '' : 's'} failed. Do not trust this product's history:`, extra);
  }
  renderFailures($('failures'), failures, report, 'failure');
  renderFailures($('warnings'), report.warnings.filter((w) => w.at !== 'gateway_key'), report, 'warning');
  renderLookups(config, bundle);
  if (bundle?.truncated) {
    $('journey-note').textContent = `The resolver sent ${n} of ${bundle.total_events ?? 'more'} events (its configured cap).`;
    $('journey-note').hidden = false;
  }
  renderTimeline(config, report);
  renderSensors(config, report);
  renderDevices(report);
  renderLog(report);
}

// ---- Loading -----------------------------------------------------------------------------------

async function fetchJson(url, what) {
  const r = await fetch(url, { headers: { Accept: 'application/json' }, cache: 'no-store' });
  if (!r.ok) throw new Error(`${what}: HTTP ${r.status}`);
  return r.json();
}

async function check(link) {
  // The page's own configuration: the resolver to ask and the keys to trust.
  let config;
  try {
    config = await fetchJson('/scanner/config.json', 'configuration');
    if (!config?.trust) throw new Error('configuration: no pinned keys');
  } catch (e) {
    setVerdict('error', 'Could not check this product', `This page is misconfigured (${e.message}).`);
    return;
  }
  const verifier = loadVerifier('/scanner/verifier.wasm');
  verifier.catch(() => {}); // Reported below, once awaited.
  let response;
  try {
    response = await fetch(`${config.resolver ?? ''}${link.path}`, { headers: { Accept: 'application/json' }, cache: 'no-store' });
  } catch (e) {
    setVerdict('error', 'Could not check this product', `The resolver could not be reached (${e.message}). Check your connection and try again.`);
    return;
  }
  const text = await response.text().catch(() => '');
  if (response.status === 404) {
    setVerdict('unknown', 'Unknown product',
      'The resolver has no history for this code. It may not be registered yet — or it may be a counterfeit code.');
    return;
  }
  if (!response.ok) {
    let detail = '';
    try {
      const body = JSON.parse(text);
      detail = [body.error, body.detail].filter(Boolean).join(': ');
    } catch { /* Not JSON: the status says it. */ }
    setVerdict('error', 'Could not check this product',
      `The resolver answered HTTP ${response.status}${detail ? ` (${detail})` : ''}.`, { status: response.status });
    return;
  }
  let bundle = null;
  try {
    bundle = JSON.parse(text);
  } catch { /* The verifier reports it as a failure at `bundle`. */ }
  let v;
  try {
    v = await verifier;
  } catch (e) {
    setVerdict('error', 'Could not check this product', `The verifier did not load (${e.message}).`);
    return;
  }
  const t0 = performance.now();
  const report = v.verifyBundle(text, config.trust);
  const verifyMs = performance.now() - t0;
  showReport(config, link, bundle, report, verifyMs);
}

function describe(link) {
  if (link.kind === 'item') return [`Item ${link.serial}`, `GTIN ${link.gtin} · serial ${link.serial}`];
  if (link.kind === 'lot') return [`Lot ${link.lot}`, `GTIN ${link.gtin} · lot ${link.lot}`];
  return [`Logistic unit ${link.sscc}`, `SSCC ${link.sscc}`];
}

// ---- Camera scanner ----------------------------------------------------------------------------

let stream = null;
let scanning = false;

function stopCamera() {
  scanning = false;
  stream?.getTracks().forEach((t) => t.stop());
  stream = null;
}

/** A function from the video element to the text of a QR code in view (or null). */
async function makeDetector(dialog) {
  if ('BarcodeDetector' in globalThis) {
    try {
      if ((await globalThis.BarcodeDetector.getSupportedFormats()).includes('qr_code')) {
        const d = new globalThis.BarcodeDetector({ formats: ['qr_code'] });
        dialog.dataset.decoder = 'barcode-detector';
        return async (video) => (await d.detect(video))[0]?.rawValue ?? null;
      }
    } catch { /* Fall back to jsQR. */ }
  }
  const { default: jsQR } = await import('/scanner/vendor/jsQR.js');
  dialog.dataset.decoder = 'jsqr';
  const canvas = document.createElement('canvas');
  const ctx = canvas.getContext('2d', { willReadFrequently: true });
  return async (video) => {
    const scale = Math.min(1, 640 / (video.videoWidth || 1));
    const w = Math.round(video.videoWidth * scale), h = Math.round(video.videoHeight * scale);
    if (!w || !h) return null;
    canvas.width = w;
    canvas.height = h;
    ctx.drawImage(video, 0, 0, w, h);
    const code = jsQR(ctx.getImageData(0, 0, w, h).data, w, h, { inversionAttempts: 'attemptBoth' });
    return code?.data ?? null;
  };
}

async function openScanner() {
  const dialog = $('scanner');
  const status = $('scanner-status');
  const video = $('scanner-video');
  dialog.showModal();
  dialog.dataset.state = 'starting';
  status.textContent = 'Starting the camera…';
  if (!navigator.mediaDevices?.getUserMedia) {
    dialog.dataset.state = 'unavailable';
    status.textContent = 'This browser cannot use a camera here (it needs a secure, https:// page).';
    return;
  }
  try {
    stream = await navigator.mediaDevices.getUserMedia({ video: { facingMode: 'environment' }, audio: false });
  } catch (e) {
    dialog.dataset.state = 'unavailable';
    status.textContent = `The camera is not available (${e.name === 'NotAllowedError' ? 'permission denied' : e.message}).`;
    return;
  }
  if (!dialog.open) return stopCamera();
  video.srcObject = stream;
  await video.play().catch(() => {});
  const detect = await makeDetector(dialog);
  dialog.dataset.state = 'scanning';
  status.textContent = 'Point the camera at the product\'s QR code.';
  scanning = true;
  let lastBad = null;
  while (scanning) {
    let text = null;
    try {
      text = await detect(video);
    } catch { /* A frame not ready yet: try the next one. */ }
    if (text && text !== lastBad) {
      try {
        const link = parseDigitalLink(text);
        dialog.dataset.state = 'found';
        dialog.dataset.scanned = text;
        status.textContent = `Found ${describe(link)[0]}: opening its history…`;
        stopCamera();
        location.assign(link.path);
        return;
      } catch (e) {
        lastBad = text;
        status.textContent = `That QR code is not a product code (${e instanceof LinkError ? e.message : 'unreadable'}). Try another.`;
      }
    }
    await new Promise((r) => setTimeout(r, 120));
  }
}

// ---- Start ---------------------------------------------------------------------------------------

function start() {
  $('scan-button').addEventListener('click', () => openScanner());
  $('scanner-close').addEventListener('click', () => $('scanner').close());
  $('scanner').addEventListener('close', stopCamera);
  const path = location.pathname;
  if (path === '/' || path === '/scanner' || path.startsWith('/scanner/')) {
    $('product-title').textContent = 'Check a product';
    setVerdict('none', 'No product yet', 'Scan a product\'s QR code to check where it comes from.');
    return;
  }
  let link;
  try {
    link = parseDigitalLink(path);
  } catch (e) {
    $('product-title').textContent = 'Not a product code';
    setVerdict('error', 'Could not check this product', `This address is not a product code: ${e.message}.`);
    return;
  }
  const [title, id] = describe(link);
  $('product-title').textContent = title;
  $('product-id').textContent = id;
  check(link).catch((e) => setVerdict('error', 'Could not check this product', `Unexpected error: ${e.message}`));
}

start();
