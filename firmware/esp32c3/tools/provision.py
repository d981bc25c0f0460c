#!/usr/bin/env python3
"""Builds the 4 KiB image of an ESP32-C3 device's `provkey` partition (partitions.csv).

The image holds, in one erase sector:

  0x000  the device key slot, in the format of firmware/core/src/storage/key_slot.rs
         (omitted with --no-key, for a device that signs with an ATECC608);
  0x100  the one-shot format token of firmware/esp32c3/src/token.rs: "format the event store,
         the chain resuming after (seq, hash)"; the firmware uses it only when the store's state
         region is blank, then clears it.

Everything else is 0xFF (erased). Write it with:

    espflash write-bin 0x1F0000 provkey.bin

Only the Python standard library is needed. A new key is drawn from `secrets`; the script
prints its public key (SEC1 uncompressed, hex) for the device's registration record
(SPEC.md section 4); the device logs the same key and its fingerprint at every boot.

The private scalar is written nowhere but the image: keep the image as secret as the key, and
delete it once flashed (or use the ATECC608, whose key never leaves the chip).
"""

import argparse
import secrets
import struct
import sys
import zlib

SECTOR = 4096
KEY_SLOT_OFFSET = 0x000
TOKEN_OFFSET = 0x100

# P-256 (SEC 2 / FIPS 186-4).
P = 0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF
A = P - 3
N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
GX = 0x6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296
GY = 0x4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5


def _add(p1, p2):
    if p1 is None:
        return p2
    if p2 is None:
        return p1
    (x1, y1), (x2, y2) = p1, p2
    if x1 == x2 and (y1 + y2) % P == 0:
        return None
    if p1 == p2:
        lam = (3 * x1 * x1 + A) * pow(2 * y1, -1, P) % P
    else:
        lam = (y2 - y1) * pow(x2 - x1, -1, P) % P
    x3 = (lam * lam - x1 - x2) % P
    return x3, (lam * (x1 - x3) - y1) % P


def public_key(scalar: int) -> bytes:
    """SEC1 uncompressed public key of `scalar` (65 bytes)."""
    point, addend = None, (GX, GY)
    while scalar:
        if scalar & 1:
            point = _add(point, addend)
        addend = _add(addend, addend)
        scalar >>= 1
    x, y = point
    return b"\x04" + x.to_bytes(32, "big") + y.to_bytes(32, "big")


def key_record(scalar: bytes) -> bytes:
    """The 44-byte key slot record: "PKEY", version 1, curve 1 (P-256), FF FF, scalar, CRC-32."""
    body = b"PKEY" + bytes([1, 1, 0xFF, 0xFF]) + scalar
    return body + struct.pack("<I", zlib.crc32(body))


def format_token(seq: int, prev_hash: bytes) -> bytes:
    """The 52-byte format token: "PFMT", version 1, FF FF FF, seq u64 LE, hash, CRC-32."""
    body = b"PFMT" + bytes([1, 0xFF, 0xFF, 0xFF]) + struct.pack("<Q", seq) + prev_hash
    return body + struct.pack("<I", zlib.crc32(body))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="provkey.bin", help="image file (default provkey.bin)")
    key = parser.add_mutually_exclusive_group()
    key.add_argument("--scalar-hex", help="use this 64-hex-digit private scalar instead of a new one")
    key.add_argument("--no-key", action="store_true", help="no key slot (SIGNER=atecc608)")
    parser.add_argument("--resume-seq", type=int, default=0,
                        help="the chain resumes after this seq (re-provisioning; default 0: new device)")
    parser.add_argument("--resume-hash", default="",
                        help="BLAKE3 hex of message --resume-seq, as the gateway holds it")
    args = parser.parse_args()

    if args.resume_seq < 0 or args.resume_seq >= 2**64 - 1:
        parser.error("--resume-seq out of range")
    if args.resume_seq == 0:
        if args.resume_hash:
            parser.error("--resume-hash needs --resume-seq > 0")
        prev_hash = bytes(32)
    else:
        try:
            prev_hash = bytes.fromhex(args.resume_hash)
        except ValueError:
            parser.error("--resume-hash is not hex")
        if len(prev_hash) != 32 or prev_hash == bytes(32):
            parser.error("--resume-hash must be the 64-hex-digit, non-zero BLAKE3 of that message")

    image = bytearray(b"\xff" * SECTOR)
    public = None
    if not args.no_key:
        if args.scalar_hex:
            scalar = int(args.scalar_hex, 16)
        else:
            scalar = secrets.randbelow(N - 1) + 1
        if not 0 < scalar < N:
            parser.error("the scalar must be in 1..n-1")
        record = key_record(scalar.to_bytes(32, "big"))
        image[KEY_SLOT_OFFSET:KEY_SLOT_OFFSET + len(record)] = record
        public = public_key(scalar)
    token = format_token(args.resume_seq, prev_hash)
    image[TOKEN_OFFSET:TOKEN_OFFSET + len(token)] = token

    with open(args.out, "wb") as out:
        out.write(image)
    print(f"wrote {args.out} ({len(image)} bytes): "
          f"{'no key slot' if public is None else 'key slot'}, "
          f"format token resuming after seq {args.resume_seq}")
    if public is not None:
        print(f"public key (SEC1 uncompressed): {public.hex()}")
    print("flash it with: espflash write-bin 0x1F0000 " + args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
