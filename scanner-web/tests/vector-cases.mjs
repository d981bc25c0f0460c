// The wasm verifier's cases over the shared vectors (schemas/vectors/), judged like the Rust
// core judges them (tests/src/invalid.rs, tests/tests/vectors.rs): every valid vector accepted,
// every invalid one rejected with the very error the Rust core records, every mutation rejected.
//
// One list of cases, run twice: by Node (vectors.test.mjs, with node:assert) and inside Chromium
// (browser/vectors.browser.mjs, with a small assert of the same shape), so that the browser
// runs exactly what Node runs. Hence no Node API here: bytes are Uint8Arrays, hex and base64 are
// converted by hand.

/** Hex → bytes. */
export const hex = (h) => Uint8Array.from(h.match(/../g) ?? [], (x) => parseInt(x, 16));
/** Bytes → hex. */
export const toHex = (b) => Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
/** Hex → base64. */
export const b64 = (h) => btoa(String.fromCharCode(...hex(h)));
const utf8 = (text) => new TextEncoder().encode(text);

/**
 * The cases, as `[name, fn]`: `v` is a loaded verifier (js/verifier.js), `vec(name)` returns the
 * parsed vector file, `assert` offers `equal`, `ok`, `deepEqual` and `match` (strict).
 */
export function vectorCases({ v, vec, assert }) {
  const cases = [];
  const case_ = (name, fn) => cases.push([name, fn]);
  const keys = vec('keys.json');
  const gatewayKey = keys.gateway.verifier_key;
  const trust = {
    gateway_key: gatewayKey,
    operator_keys: { [keys.operator.kid]: b64(keys.operator.public_sec1_hex) },
  };
  const deviceKey = (id) => hex(keys.devices.find((d) => d.device_id === id).public_sec1_hex);
  const log = vec('log.json');
  const entries = log.entries_hex.map(hex);

  /** Runs one case of `invalid.json`'s kinds, like the Rust judge `evaluate`. */
  function evaluate(kind, input) {
    switch (kind) {
      case 'event': return v.verifyEvent(hex(input.message_hex), deviceKey(input.verify_with));
      case 'registry': return v.verifyRegistryRecord(hex(input.message_hex), trust);
      case 'inclusion': return v.verifyInclusion(input);
      case 'consistency': return v.verifyConsistency(input);
      case 'checkpoint': return v.openCheckpoint(input.note, gatewayKey);
      case 'chain': return v.verifyChain(input.blocks_hex, gatewayKey);
      default: throw new Error(`unknown kind ${kind}`);
    }
  }

  const rootOf = (size) => {
    const r = v.treeRoot(log.leaf_hashes_hex.slice(0, size));
    assert.equal(r.ok, true);
    return r.result.root_hex;
  };

  case_('every valid signed message verifies, decoding to its JSON payload', () => {
    const events = vec('events.json').messages;
    assert.equal(events.length, 10);
    for (const m of events) {
      const r = v.verifyEvent(hex(m.message_hex), deviceKey(m.kid));
      assert.equal(r.ok, true, `${m.name}: ${r.message}`);
      assert.deepEqual(r.result.event, m.payload, m.name);
      assert.equal(r.result.blake3_hex, m.message_blake3_hex);
    }
    for (const m of vec('registry.json').messages) {
      const r = v.verifyRegistryRecord(hex(m.message_hex), trust);
      assert.equal(r.ok, true, `${m.name}: ${r.message}`);
      assert.deepEqual(r.result.record, m.payload, m.name);
    }
  });

  case_('every invalid case is rejected with the error the Rust core records', () => {
    const cases = vec('invalid.json').cases;
    assert.ok(cases.length >= 20);
    for (const c of cases) {
      const r = evaluate(c.kind, c.input);
      assert.equal(r.ok, false, `${c.name} accepted`);
      assert.equal(r.error, c.error, c.name);
    }
  });

  case_('every byte of every signed message matters', () => {
    let mutants = 0;
    const all = [
      ...vec('events.json').messages.map((m) => ['event', m]),
      ...vec('registry.json').messages.map((m) => ['registry', m]),
    ];
    for (const [kind, m] of all) {
      const msg = hex(m.message_hex);
      const check = (bad) => (kind === 'event'
        ? v.verifyEvent(bad, deviceKey(m.kid)) : v.verifyRegistryRecord(bad, trust));
      for (let i = 0; i < msg.length; i++) {
        const bad = msg.slice();
        bad[i] ^= i % 2 ? 0x80 : 0x01;
        const r = check(bad);
        assert.equal(r.ok, false, `${m.name}: byte ${i} mutated and accepted`);
        assert.ok(r.error.length > 0);
        mutants++;
      }
      assert.equal(check(msg.slice(0, -1)).ok, false);
      assert.equal(check(Uint8Array.from([...msg, 0])).ok, false);
    }
    assert.ok(mutants > 2500, `only ${mutants} mutants`);
  });

  case_('the log: tree roots, inclusion proofs, tlog-proofs, consistency, checkpoints, chain', () => {
    const cps = log.checkpoints;
    const last = cps.at(-1);
    for (const c of cps) {
      assert.equal(rootOf(c.size), c.root_hex);
      const r = v.openCheckpoint(c.note, gatewayKey);
      assert.equal(r.ok, true, r.message);
      assert.deepEqual(r.result.checkpoint, { origin: log.origin, size: c.size, root_hex: c.root_hex });
    }
    let tlog = 0;
    for (const inc of log.inclusion) {
      const input = {
        index: inc.index, size: inc.size, leaf_hash_hex: log.leaf_hashes_hex[inc.index],
        proof_hex: inc.proof_hex, root_hex: rootOf(inc.size),
      };
      assert.equal(v.verifyInclusion(input).ok, true, `inclusion ${inc.index}/${inc.size}`);
      assert.equal(v.verifyInclusion({ ...input, index: inc.index + 1 }).ok, false);
      if (!inc.tlog_proof) continue;
      const r = v.verifyTlogProof(inc.tlog_proof, entries[inc.index], gatewayKey);
      assert.equal(r.ok, true, r.message);
      assert.equal(r.result.index, inc.index);
      assert.equal(r.result.checkpoint.root_hex, last.root_hex);
      const other = entries[(inc.index + 1) % entries.length];
      assert.equal(v.verifyTlogProof(inc.tlog_proof, other, gatewayKey).ok, false);
      tlog++;
    }
    assert.equal(tlog, entries.length);
    for (const con of log.consistency) {
      const input = {
        size1: con.size1, size2: con.size2, proof_hex: con.proof_hex,
        root1_hex: rootOf(con.size1), root2_hex: rootOf(con.size2),
      };
      assert.equal(v.verifyConsistency(input).ok, true, `consistency ${con.size1}→${con.size2}`);
      for (let p = 0; p < con.proof_hex.length; p++) {
        const bad = con.proof_hex.slice();
        bad[p] = (bad[p][0] === '0' ? '1' : '0') + bad[p].slice(1);
        assert.equal(v.verifyConsistency({ ...input, proof_hex: bad }).ok, false);
      }
    }
    const blocks = log.chain.map((b) => b.block_hex);
    const r = v.verifyChain(blocks, gatewayKey);
    assert.equal(r.ok, true, r.message);
    assert.equal(r.result.checkpoint.size, last.size);
  });

  case_('every byte of a tlog-proof, of every checkpoint and of every chain block matters', () => {
    const flip = (text, i) => {
      const b = utf8(text);
      b[i] ^= 0x01;
      return b;
    };
    // The proofs of the first, a middle and the last entry (each ends with the checkpoint note).
    for (const index of [0, 9, entries.length - 1]) {
      const text = log.inclusion.find((x) => x.index === index && x.tlog_proof).tlog_proof;
      for (let i = 0; i < utf8(text).length; i++) {
        assert.equal(v.verifyTlogProof(flip(text, i), entries[index], gatewayKey).ok, false,
          `tlog-proof ${index}: byte ${i}`);
      }
    }
    for (const c of log.checkpoints) {
      for (let i = 0; i < utf8(c.note).length; i++) {
        assert.equal(v.openCheckpoint(flip(c.note, i), gatewayKey).ok, false, `checkpoint byte ${i}`);
      }
    }
    const blocks = log.chain.map((b) => b.block_hex);
    blocks.forEach((block, b) => {
      for (let i = 0; i < block.length / 2; i++) {
        const bad = blocks.slice();
        const bytes = hex(block);
        bytes[i] ^= 0x01;
        bad[b] = toHex(bytes);
        const r = v.verifyChain(bad, gatewayKey);
        assert.equal(r.ok, false, `block ${b} byte ${i}`);
        assert.match(r.error, /^ChainError \{ block: (\d+)/);
        assert.ok(Number(r.error.match(/block: (\d+)/)[1]) <= b);
      }
    });
  });
  return cases;
}
