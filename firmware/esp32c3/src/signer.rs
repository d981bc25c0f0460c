//! The board's key store, chosen by `SIGNER`: both of the core's [`Signer`]s behind one type,
//! so the device type does not depend on the configuration.

use esp_hal::delay::Delay;
use prov_firmware::signer::{Atecc608Signer, FlashKeySigner, Signer, SignerError};
use prov_schemas::keys::{PublicKey, Signature};

use crate::bus::SharedI2c;

/// The device key: in RAM from the `provkey` partition, or inside an ATECC608.
pub enum BoardSigner {
    /// `SIGNER=flash`.
    Flash(FlashKeySigner),
    /// `SIGNER=atecc608`.
    Atecc608(Atecc608Signer<SharedI2c, Delay>),
}

impl core::fmt::Debug for BoardSigner {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            BoardSigner::Flash(_) => f.write_str("BoardSigner::Flash"),
            BoardSigner::Atecc608(s) => write!(f, "BoardSigner::Atecc608(slot {})", s.slot()),
        }
    }
}

impl Signer for BoardSigner {
    fn public_key(&self) -> PublicKey {
        match self {
            BoardSigner::Flash(s) => s.public_key(),
            BoardSigner::Atecc608(s) => s.public_key(),
        }
    }

    fn sign(&mut self, message: &[u8]) -> Result<Signature, SignerError> {
        match self {
            BoardSigner::Flash(s) => s.sign(message),
            BoardSigner::Atecc608(s) => s.sign(message),
        }
    }
}
