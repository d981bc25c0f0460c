//! The device key in a flash data partition: written once by provisioning, read at boot.
//!
//! ```text
//! 0   magic "PKEY"
//! 4   version  u8   = 1
//! 5   curve    u8   = 1 (P-256)
//! 6   reserved [2]  = 0xFF 0xFF
//! 8   scalar   [32] big-endian P-256 private scalar
//! 40  crc32    u32  CRC-32 of bytes 0..40
//! ```
//!
//! Rejections are explicit ([`KeySlotError`]): an erased slot (never provisioned) is not the same
//! fault as a corrupt one, and neither may fall back to some default key. Provisioning refuses
//! to overwrite a slot that is not blank: replacing a device key changes the device's identity
//! (a new registration record, SPEC §4), so it must be a deliberate erase first.
//!
//! The key sits in plain flash: on the ESP32-C3 enable flash encryption in production, or use
//! the ATECC608 signer, whose key never leaves the chip (FIELD-NOTES "Device keys").

use core::fmt;

use embedded_storage::nor_flash::{NorFlash, ReadNorFlash};
use p256::elliptic_curve::zeroize::Zeroize as _;
use prov_schemas::keys::{KeyError, PublicKey, SecretKey};

use super::{FlashOp, crc32, is_blank, read, write_padded};

/// Bytes of a key record.
pub const KEY_RECORD_LEN: usize = 44;

const MAGIC: [u8; 4] = *b"PKEY";
const VERSION: u8 = 1;
const CURVE_P256: u8 = 1;

/// A key slot could not be read or written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeySlotError<E: fmt::Debug> {
    /// The flash driver failed.
    #[error("flash {op} at {addr:#x} failed: {error:?}")]
    Flash {
        /// The operation.
        op: FlashOp,
        /// Its address.
        addr: u32,
        /// The driver's error.
        error: E,
    },
    /// The slot is erased: the device was never provisioned.
    #[error("key slot at {addr:#x} is blank (not provisioned)")]
    Blank {
        /// Slot address.
        addr: u32,
    },
    /// The slot does not start with the key magic.
    #[error("key slot at {addr:#x} starts {got:02x?}, want {want:02x?}")]
    BadMagic {
        /// Slot address.
        addr: u32,
        /// Bytes found.
        got: [u8; 4],
        /// Bytes expected.
        want: [u8; 4],
    },
    /// A record version or curve this firmware does not know.
    #[error("key slot at {addr:#x}: {field} is {got}, want {want}")]
    Unsupported {
        /// Slot address.
        addr: u32,
        /// `version` or `curve`.
        field: &'static str,
        /// Value found.
        got: u8,
        /// Value supported.
        want: u8,
    },
    /// The record fails its checksum (worn or torn).
    #[error("key slot at {addr:#x}: crc32 is {got:#010x}, computed {want:#010x}")]
    Checksum {
        /// Slot address.
        addr: u32,
        /// Stored CRC.
        got: u32,
        /// Computed CRC.
        want: u32,
    },
    /// The scalar is not a valid P-256 private key.
    #[error("key slot at {addr:#x}: {error}")]
    BadScalar {
        /// Slot address.
        addr: u32,
        /// Why.
        error: KeyError,
    },
    /// Provisioning found data in the slot; erase it deliberately first.
    #[error("key slot at {addr:#x} is not blank; erase it before provisioning a new key")]
    NotBlank {
        /// Slot address.
        addr: u32,
    },
    /// The flash's `READ_SIZE` or `WRITE_SIZE` is beyond what the storage code supports.
    #[error("flash {what} is {got}, supported up to {max}")]
    Geometry {
        /// Which constant.
        what: &'static str,
        /// Its value.
        got: usize,
        /// The supported maximum.
        max: usize,
    },
    /// Read-back after provisioning did not return the written key.
    #[error("key slot at {addr:#x} did not read back as written")]
    Verify {
        /// Slot address.
        addr: u32,
    },
}

/// Reads and checks the key at `addr`.
pub fn load<F: ReadNorFlash>(
    flash: &mut F,
    addr: u32,
) -> Result<SecretKey, KeySlotError<F::Error>> {
    let mut raw = [0u8; KEY_RECORD_LEN];
    read(flash, addr, &mut raw).map_err(|e| flash_error(e, addr))?;
    let result = parse(addr, &raw);
    raw.zeroize();
    result
}

/// Provisioning: writes `scalar` to the blank slot at `addr` (a `WRITE_SIZE`-aligned address in
/// an erased data partition), reads it back, and returns the public key to register.
pub fn provision<F: NorFlash>(
    flash: &mut F,
    addr: u32,
    scalar: &[u8; 32],
) -> Result<PublicKey, KeySlotError<F::Error>> {
    // Refuse a bad scalar before writing anything.
    let key =
        SecretKey::from_slice(scalar).map_err(|error| KeySlotError::BadScalar { addr, error })?;
    let mut existing = [0u8; KEY_RECORD_LEN];
    read(flash, addr, &mut existing).map_err(|e| flash_error(e, addr))?;
    if !is_blank(&existing) {
        existing.zeroize();
        return Err(KeySlotError::NotBlank { addr });
    }
    let mut record = encode(scalar);
    let written = write_padded(flash, addr, &record).map_err(|e| flash_error(e, addr));
    record.zeroize();
    written?;
    let loaded = load(flash, addr)?;
    if loaded.public_key() != key.public_key() {
        return Err(KeySlotError::Verify { addr });
    }
    Ok(key.public_key())
}

fn encode(scalar: &[u8; 32]) -> [u8; KEY_RECORD_LEN] {
    let mut out = [0u8; KEY_RECORD_LEN];
    out[0..4].copy_from_slice(&MAGIC);
    out[4] = VERSION;
    out[5] = CURVE_P256;
    out[6] = 0xff;
    out[7] = 0xff;
    out[8..40].copy_from_slice(scalar);
    let crc = crc32(&out[..40]);
    out[40..44].copy_from_slice(&crc.to_le_bytes());
    out
}

fn parse<E: fmt::Debug>(
    addr: u32,
    raw: &[u8; KEY_RECORD_LEN],
) -> Result<SecretKey, KeySlotError<E>> {
    if is_blank(raw) {
        return Err(KeySlotError::Blank { addr });
    }
    if raw[0..4] != MAGIC {
        return Err(KeySlotError::BadMagic {
            addr,
            got: [raw[0], raw[1], raw[2], raw[3]],
            want: MAGIC,
        });
    }
    let got = u32::from_le_bytes([raw[40], raw[41], raw[42], raw[43]]);
    let want = crc32(&raw[..40]);
    if got != want {
        return Err(KeySlotError::Checksum { addr, got, want });
    }
    for (field, got, want) in [("version", raw[4], VERSION), ("curve", raw[5], CURVE_P256)] {
        if got != want {
            return Err(KeySlotError::Unsupported {
                addr,
                field,
                got,
                want,
            });
        }
    }
    SecretKey::from_slice(&raw[8..40]).map_err(|error| KeySlotError::BadScalar { addr, error })
}

fn flash_error<E: fmt::Debug>(error: super::StorageError<E>, addr: u32) -> KeySlotError<E> {
    match error {
        super::StorageError::Flash {
            op, addr, error, ..
        } => KeySlotError::Flash { op, addr, error },
        super::StorageError::Geometry { what, got, max } => {
            KeySlotError::Geometry { what, got, max }
        }
        // `read` and `write_padded` report nothing else.
        _ => KeySlotError::Verify { addr },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signer::{FlashKeySigner, Signer as _};
    use crate::storage::mem_flash::{MemFlash, MemFlashError, Tear};

    type Flash = MemFlash<4096, 1024, 4>;
    const SLOT: u32 = 1024;

    fn scalar(name: &str) -> [u8; 32] {
        // The same derivation as `SecretKey::test_key`.
        let mut h = blake3::Hasher::new();
        h.update(b"prov test key v1:");
        h.update(name.as_bytes());
        *h.finalize().as_bytes()
    }

    #[test]
    fn provision_then_load_and_sign() {
        let mut flash = Flash::new();
        let public = provision(&mut flash, SLOT, &scalar("dev1")).unwrap();
        assert_eq!(public, SecretKey::test_key("dev1").unwrap().public_key());
        let mut signer = FlashKeySigner::load(&mut flash, SLOT).unwrap();
        assert_eq!(signer.public_key(), public);
        let sig = signer.sign(b"m").unwrap();
        assert_eq!(sig, SecretKey::test_key("dev1").unwrap().sign(b"m"));
    }

    #[test]
    fn blank_and_corrupt_slots_are_distinct_errors() {
        let mut flash = Flash::new();
        assert_eq!(
            load(&mut flash, SLOT).unwrap_err(),
            KeySlotError::Blank { addr: SLOT }
        );
        provision(&mut flash, SLOT, &scalar("dev1")).unwrap();
        let good = flash.as_bytes()[SLOT as usize..SLOT as usize + KEY_RECORD_LEN].to_vec();

        flash.as_bytes_mut()[SLOT as usize + 20] ^= 0x01;
        assert!(matches!(
            load(&mut flash, SLOT),
            Err(KeySlotError::Checksum { addr: SLOT, .. })
        ));

        flash.as_bytes_mut()[SLOT as usize..SLOT as usize + KEY_RECORD_LEN].copy_from_slice(&good);
        flash.as_bytes_mut()[SLOT as usize] = b'X';
        assert_eq!(
            load(&mut flash, SLOT).unwrap_err(),
            KeySlotError::BadMagic {
                addr: SLOT,
                got: *b"XKEY",
                want: *b"PKEY"
            }
        );

        // A future version with a valid CRC is refused by name.
        let mut v2 = [0u8; KEY_RECORD_LEN];
        v2.copy_from_slice(&good);
        v2[4] = 2;
        let crc = crc32(&v2[..40]);
        v2[40..].copy_from_slice(&crc.to_le_bytes());
        flash.as_bytes_mut()[SLOT as usize..SLOT as usize + KEY_RECORD_LEN].copy_from_slice(&v2);
        assert_eq!(
            load(&mut flash, SLOT).unwrap_err(),
            KeySlotError::Unsupported {
                addr: SLOT,
                field: "version",
                got: 2,
                want: 1
            }
        );
    }

    #[test]
    fn provisioning_refuses_bad_scalars_and_overwrites() {
        let mut flash = Flash::new();
        assert!(matches!(
            provision(&mut flash, SLOT, &[0u8; 32]),
            Err(KeySlotError::BadScalar {
                addr: SLOT,
                error: KeyError::SecretZero
            })
        ));
        assert!(matches!(
            provision(&mut flash, SLOT, &[0xffu8; 32]),
            Err(KeySlotError::BadScalar { .. })
        ));
        assert_eq!(flash.writes(), 0, "nothing written for a bad scalar");
        provision(&mut flash, SLOT, &scalar("a")).unwrap();
        assert_eq!(
            provision(&mut flash, SLOT, &scalar("b")),
            Err(KeySlotError::NotBlank { addr: SLOT })
        );
    }

    #[test]
    fn power_cut_during_provisioning_never_yields_a_wrong_key() {
        for tear in [
            Tear::Nothing,
            Tear::Half,
            Tear::Prefix(9),
            Tear::Prefix(43),
            Tear::All,
        ] {
            for op in 0..11 {
                let mut flash = Flash::new();
                flash.cut_power_at(op, tear);
                let result = provision(&mut flash, SLOT, &scalar("dev1"));
                flash.power_on();
                match load(&mut flash, SLOT) {
                    Ok(key) => {
                        assert_eq!(
                            key.public_key(),
                            SecretKey::test_key("dev1").unwrap().public_key()
                        );
                    }
                    Err(KeySlotError::Blank { .. } | KeySlotError::Checksum { .. }) => {
                        assert!(result.is_err());
                    }
                    Err(other) => panic!("unexpected {other:?}"),
                }
            }
        }
    }

    #[test]
    fn flash_errors_carry_the_address() {
        let mut flash = Flash::new();
        flash.fail_op(0);
        assert_eq!(
            provision(&mut flash, SLOT, &scalar("a")),
            Err(KeySlotError::Flash {
                op: FlashOp::Write,
                addr: SLOT,
                error: MemFlashError::Injected {
                    op: FlashOp::Write,
                    index: 0
                }
            })
        );
    }
}
