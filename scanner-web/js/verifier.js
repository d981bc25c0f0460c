// Loader of the wasm provenance verifier (scanner-web/verifier, built by build-wasm.sh into
// dist/verifier.wasm). Browsers and Node; no dependencies. The module's calling convention:
// inputs are copied into buffers from its `alloc`, each export returns `(ptr << 32) | len` of a
// UTF-8 JSON result, and every buffer is handed back to `dealloc` once (src/wasm.rs).
const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

/** `source`: a URL (string or URL, fetched), a Response, or the module's bytes. */
export async function loadVerifier(source) {
  let bytes = source;
  if (typeof source === 'string' || source instanceof URL) source = await fetch(source);
  if (typeof Response !== 'undefined' && source instanceof Response) {
    if (!source.ok) throw new Error(`verifier: HTTP ${source.status} for ${source.url}`);
    bytes = await source.arrayBuffer();
  }
  const module = await WebAssembly.compile(bytes);
  let x = (await WebAssembly.instantiate(module, {})).exports;

  const put = (input) => {
    const b = typeof input === 'string' ? encoder.encode(input)
      : input instanceof Uint8Array ? input : new Uint8Array(input);
    const ptr = x.alloc(b.length);
    new Uint8Array(x.memory.buffer, ptr, b.length).set(b); // after alloc: memory may have grown
    return [ptr, b.length];
  };
  const call = (name, ...inputs) => {
    const args = inputs.map(put);
    let packed;
    try {
      packed = x[name](...args.flat());
    } catch (e) {
      // A trap (never expected) leaves the heap unknown: start again from a fresh instance.
      x = new WebAssembly.Instance(module, {}).exports;
      throw new Error(`verifier: ${name} trapped: ${e.message}`);
    }
    for (const [ptr, len] of args) x.dealloc(ptr, len);
    const ptr = Number(BigInt.asUintN(64, packed) >> 32n), len = Number(packed & 0xffffffffn);
    const text = decoder.decode(new Uint8Array(x.memory.buffer, ptr, len));
    x.dealloc(ptr, len);
    return JSON.parse(text);
  };
  const json = (v) => (typeof v === 'string' ? v : JSON.stringify(v));

  return {
    /** SPEC §6: the report `{verdict, product, checkpoint, failures, warnings, events}`. */
    verifyBundle: (bundle, trust) => call('verify_bundle', json(bundle), json(trust)),
    // The primitive checks: `{ok: true, result}` or `{ok: false, error, message}`.
    verifyEvent: (message, keySec1) => call('verify_event', message, keySec1),
    verifyRegistryRecord: (message, trust) => call('verify_registry_record', message, json(trust)),
    verifyInclusion: (input) => call('verify_inclusion', json(input)),
    verifyConsistency: (input) => call('verify_consistency', json(input)),
    openCheckpoint: (note, gatewayKey) => call('open_checkpoint', note, gatewayKey),
    verifyTlogProof: (proof, entry, gatewayKey) => call('verify_tlog_proof', proof, entry, gatewayKey),
    treeRoot: (leafHashesHex) => call('tree_root', json({ leaf_hashes_hex: leafHashesHex })),
    verifyChain: (blocksHex, gatewayKey) =>
      call('verify_chain', json({ blocks_hex: blocksHex }), gatewayKey),
  };
}
