#!/usr/bin/env python3
"""Where the gateway's CPU goes, from a `perf record --call-graph dwarf` of `prov gateway run`
(the ingest bench's `--perf FILE`).

    perf script -i FILE -F comm,tid,ip,sym --no-inline > FILE.script
    python3 docs/bench/perf-breakdown.py FILE.script

Each sample is attributed to the first category (in the order below) whose frame pattern
appears anywhere on its stack, so the categories add up to 100 %. Samples that never reach
one of them are grouped by their thread name.
"""
import collections
import sys

# (category, substrings of a frame, any of which marks the category). Order matters: the
# first category that matches a sample's stack wins (inner steps before outer ones).
CATEGORIES = [
    ("verify: ECDSA P-256 (ring)", ["VerifyBackend>::verify_es256", "ring::signature::UnparsedPublicKey"]),
    ("verify: sled reads (duplicate/registry/chain lookups)", ["<prov_gateway::index::Indexes as prov_gateway::index::Read>", "sled::tree::Tree::get"]),
    ("verify: BLAKE3 / CBOR / COSE parse, rest", ["prov_gateway::verify::Verifier<B>::prepare", "prov_gateway::verify::Verifier<B>::verify_batch", "prov_gateway::verify::Verifier<B>::finish"]),
    ("sequence: log append + fdatasync", ["prov_ledger::store::log::LogStore::sequence"]),
    ("index: sled apply_batch (writes)", ["prov_gateway::index::Indexes::apply_batch", "prov_gateway::index::Staged"]),
    ("receipts: receipt_seq (sled reads)", ["prov_gateway::pipeline::receipt_seq"]),
    ("acks/receipts handed to rumqttc (block_on)", ["MqttOutbox as prov_gateway::pipeline::Outbox"]),
    ("publish: integrate + tree fsync + sign + chain fsync", ["prov_ledger::store::publish", "prov_ledger::store::log::LogStore::integrate"]),
    ("disk_usage / metrics", ["LogStore::disk_usage"]),
    ("quarantine", ["prov_gateway::quarantine"]),
    ("pipeline: rest (batching, channel, bookkeeping)", ["prov_gateway::pipeline::Pipeline::"]),
    ("MQTT ingest (rumqttc event loop, tokio)", ["rumqttc::", "prov_gateway::ingest::poll"]),
    ("HTTP (warp/hyper: checkpoint polls, metrics)", ["warp::", "hyper::"]),
    ("sled background (flusher, epoch GC)", ["sled::", "crossbeam_epoch::"]),
]


def main(path):
    counts = collections.Counter()
    leafs = collections.Counter()
    total = 0
    stack, comm = [], None

    def flush():
        nonlocal total
        if comm is None:
            return
        total += 1
        for name, pats in CATEGORIES:
            if any(p in f for f in stack for p in pats):
                counts[name] += 1
                break
        else:
            counts["other: thread " + comm] += 1
        if stack:
            leafs[stack[0]] += 1

    with open(path, errors="replace") as f:
        for line in f:
            if not line.strip():
                flush()
                stack, comm = [], None
            elif not line[0].isspace():
                flush()
                stack, comm = [], line.split()[0]
            else:
                parts = line.strip().split(None, 1)
                stack.append(parts[1] if len(parts) > 1 else "?")
    flush()
    print(f"{total} samples")
    for name, n in counts.most_common():
        print(f"{100 * n / total:6.1f} %  {name}")
    print("\ntop self (leaf) symbols:")
    for name, n in leafs.most_common(20):
        print(f"{100 * n / total:6.1f} %  {name[:110]}")


if __name__ == "__main__":
    main(sys.argv[1])
