//! Microchip ATECC608A/B secure element over I2C: the device key is generated and kept inside
//! the chip; the firmware only ever sees the public key and signatures.
//!
//! The full datasheet is under NDA, so every opcode, mode, size, CRC detail and timing here is
//! taken from Microchip's open CryptoAuthLib sources (github.com/MicrochipTech/cryptoauthlib):
//!
//! - `lib/calib/calib_command.h`: opcodes, modes, packet and response sizes;
//! - `lib/calib/calib_command.c`: `atCRC` (CRC-16, polynomial 0x8005, register initialised to
//!   0, data bits fed least-significant first, result sent little-endian) computed over the
//!   packet from the count byte to the last data byte; `atCheckCrc`; `isATCAError` status codes;
//! - `lib/calib/calib_execution.c`: the transaction sequence (`calib_execute_command`: wake if
//!   needed, send word address 0x03 + packet, wait, receive, idle after every command) and the
//!   receive (`calib_execute_receive`: write word address 0x00, read the count byte, then the
//!   rest), the ATECC608 "M0" execution-time table and polling;
//! - `lib/calib/calib_basic.c`: `calib_wakeup_i2c` (a byte to the general-call address 0x00
//!   holds SDA low long enough at 100 kHz, then the wake delay, then a 4-byte read),
//!   `calib_idle` (word address 0x02), `calib_sleep` (0x01);
//! - `lib/hal/atca_hal.c`: `hal_check_wake` (`04 11 33 43` awake, `04 07 C4 40` self-test
//!   failed; note that `C4 40` is not the `atCRC` of `04 07`, which is `40 C2`, so both forms
//!   are accepted as a self-test failure);
//! - `lib/calib/calib_genkey.c` (`calib_get_pubkey`: GenKey mode 0x00), `calib_info.c` (Info
//!   mode 0x00 revision), `calib_random.c` (Random mode 0x00 seed update), `calib_nonce.c`
//!   (`calib_nonce_load`: pass-through mode 0x03 | target), `calib_sign.c` (`calib_sign` for the
//!   ATECC608: Random to update the seed, Nonce pass-through of the 32-byte digest into the
//!   Message Digest Buffer (mode 0x43), then Sign mode 0xA0 = external | source MsgDigBuf).
//!
//! The wake pulse (SDA low ≥ 60 µs) comes from addressing 0x00 on a bus clocked at 100 kHz or
//! less; embedded-hal cannot change the clock, so run the bus at 100 kHz (the ATECC608 is not a
//! throughput device: a signature takes ~50–220 ms in the chip). The chip answers a command
//! only when done, NACKing its address while busy; this driver waits the typical execution time
//! from CryptoAuthLib's table, then polls every 2 ms for up to 2.5 s (CryptoAuthLib's
//! `ATCA_POLLING_*` defaults), which also covers the slower clock-divider modes and the
//! ATECC608B (CryptoAuthLib supports only polling for it).
//!
//! The chip's ECDSA nonces are random, and it does not normalise `s`; [`crate::signer`] makes
//! the signature low-S (SPEC §2).

use embedded_hal::delay::DelayNs;
use embedded_hal::i2c::I2c;

/// The factory-default 7-bit address (0xC0 in CryptoAuthLib's 8-bit notation).
pub const DEFAULT_ADDRESS: u8 = 0x60;

/// Wait after the wake pulse before reading the wake response (CryptoAuthLib's default
/// `wake_delay`, tWHI).
pub const WAKE_DELAY_US: u32 = 1_500;

/// Opcodes (`calib_command.h`).
pub mod opcode {
    /// Info.
    pub const INFO: u8 = 0x30;
    /// GenKey.
    pub const GENKEY: u8 = 0x40;
    /// Nonce.
    pub const NONCE: u8 = 0x16;
    /// Random.
    pub const RANDOM: u8 = 0x1b;
    /// Sign.
    pub const SIGN: u8 = 0x41;
}

/// Info mode: device revision (`INFO_MODE_REVISION`).
pub const INFO_MODE_REVISION: u8 = 0x00;
/// GenKey mode: compute the public key of the private key in a slot (`GENKEY_MODE_PUBLIC`).
pub const GENKEY_MODE_PUBLIC: u8 = 0x00;
/// Random mode: update the seed (`RANDOM_SEED_UPDATE`).
pub const RANDOM_SEED_UPDATE: u8 = 0x00;
/// Nonce mode: pass-through (`NONCE_MODE_PASSTHROUGH`).
pub const NONCE_MODE_PASSTHROUGH: u8 = 0x03;
/// Nonce mode bits: target the Message Digest Buffer (`NONCE_MODE_TARGET_MSGDIGBUF`).
pub const NONCE_MODE_TARGET_MSGDIGBUF: u8 = 0x40;
/// Sign mode: external message (`SIGN_MODE_EXTERNAL`).
pub const SIGN_MODE_EXTERNAL: u8 = 0x80;
/// Sign mode bits: message from the Message Digest Buffer (`SIGN_MODE_SOURCE_MSGDIGBUF`).
pub const SIGN_MODE_SOURCE_MSGDIGBUF: u8 = 0x20;

/// Highest key slot id (`ATCA_KEY_ID_MAX`).
pub const MAX_SLOT: u8 = 15;

const WORD_RESET: u8 = 0x00;
const WORD_SLEEP: u8 = 0x01;
const WORD_IDLE: u8 = 0x02;
const WORD_COMMAND: u8 = 0x03;

/// Largest response: count + 72 bytes + CRC (`ATCA_RSP_SIZE_MAX`).
const RSP_SIZE_MAX: usize = 75;
/// Largest command packet this driver sends: count, opcode, p1, p2 (2), 32 data, CRC (2).
const CMD_SIZE_MAX: usize = 7 + 32;

const WAKE_OK: [u8; 4] = [0x04, 0x11, 0x33, 0x43];
const WAKE_SELFTEST_FAILED: [u8; 4] = [0x04, 0x07, 0xc4, 0x40];

/// Poll interval while the chip is busy (`ATCA_POLLING_FREQUENCY_TIME_MSEC`).
pub const POLL_INTERVAL_MS: u32 = 2;
/// Longest time to keep polling (`ATCA_POLLING_MAX_TIME_MSEC`).
pub const POLL_MAX_MS: u32 = 2_500;

/// CryptoAuthLib's `atCRC`: CRC-16 with polynomial 0x8005, register initialised to 0, each
/// byte's bits fed least-significant first, no final XOR. On the wire it is little-endian.
pub fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &byte in data {
        for bit in 0..8 {
            let data_bit = (byte >> bit) & 1;
            let crc_bit = (crc >> 15) as u8;
            crc <<= 1;
            if data_bit != crc_bit {
                crc ^= 0x8005;
            }
        }
    }
    crc
}

/// Typical execution time in ms of `opcode` on an ATECC608 with the default clock divider
/// (CryptoAuthLib `calib_execution.c`, `device_execution_time_608_m0`); 1 ms for anything else.
pub fn execution_time_ms(opcode: u8) -> u32 {
    match opcode {
        opcode::INFO => 5,
        opcode::GENKEY => 115,
        opcode::NONCE => 20,
        opcode::RANDOM => 23,
        opcode::SIGN => 115,
        _ => 1,
    }
}

/// The status byte of a 4-byte response (`isATCAError`, plus the datasheet's watchdog code as
/// listed by the Linux `atmel-i2c` driver).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// 0x00: success.
    Success,
    /// 0x01: CheckMac or Verify miscompare.
    Miscompare,
    /// 0x03: parse error (illegal length, opcode or parameter).
    ParseError,
    /// 0x05: ECC fault (computation error; retry).
    EccFault,
    /// 0x07: self-test error.
    SelfTestError,
    /// 0x08: random-number generator health-test error.
    HealthTestError,
    /// 0x0F: execution error (command not allowed in this state or configuration, e.g. the slot
    /// is not a private key or the zones are not locked).
    ExecutionError,
    /// 0x11: the chip has just woken and received no command.
    AfterWake,
    /// 0xEE: the watchdog is about to expire (the chip will sleep).
    WatchdogAboutToExpire,
    /// 0xFF: the chip saw a CRC or communication error in the command.
    CommunicationError,
    /// Any other byte.
    Other(u8),
}

impl Status {
    /// Decodes a status byte.
    pub fn from_byte(byte: u8) -> Status {
        match byte {
            0x00 => Status::Success,
            0x01 => Status::Miscompare,
            0x03 => Status::ParseError,
            0x05 => Status::EccFault,
            0x07 => Status::SelfTestError,
            0x08 => Status::HealthTestError,
            0x0f => Status::ExecutionError,
            0x11 => Status::AfterWake,
            0xee => Status::WatchdogAboutToExpire,
            0xff => Status::CommunicationError,
            other => Status::Other(other),
        }
    }
}

/// An ATECC608 operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AteccError<E: core::fmt::Debug> {
    /// The I2C transfer failed.
    #[error("I2C error: {0:?}")]
    I2c(E),
    /// The wake response was not `04 11 33 43`.
    #[error("wake response {got:02x?}, want 04 11 33 43")]
    WakeFailed {
        /// The 4 bytes read.
        got: [u8; 4],
    },
    /// The chip woke but reports a failed power-on self test (`04 07 C4 40`).
    #[error("chip reports a failed power-on self test")]
    SelfTestFailed,
    /// The response's count byte is outside `4..=75`.
    #[error("response count byte {got} for opcode {opcode:#04x} is outside 4..=75")]
    BadCount {
        /// The command's opcode.
        opcode: u8,
        /// The count byte.
        got: u8,
    },
    /// The response's CRC did not match.
    #[error("response CRC for opcode {opcode:#04x} is {got:#06x}, computed {want:#06x}")]
    Crc {
        /// The command's opcode.
        opcode: u8,
        /// The CRC received.
        got: u16,
        /// The CRC computed.
        want: u16,
    },
    /// The chip returned an error status.
    #[error("opcode {opcode:#04x} failed with status {status:?}")]
    Status {
        /// The command's opcode.
        opcode: u8,
        /// The status.
        status: Status,
    },
    /// A valid response of the wrong size for the command.
    #[error("opcode {opcode:#04x} answered {got} bytes, want {want}")]
    UnexpectedLength {
        /// The command's opcode.
        opcode: u8,
        /// The count received.
        got: u8,
        /// The count expected.
        want: u8,
    },
    /// No response within the polling time.
    #[error("no response to opcode {opcode:#04x} after {polls} polls; last error {last:?}")]
    Timeout {
        /// The command's opcode.
        opcode: u8,
        /// Receive attempts made.
        polls: u32,
        /// The last I2C error.
        last: E,
    },
    /// A key slot outside 0..=15.
    #[error("slot {slot} is outside 0..=15")]
    InvalidSlot {
        /// The slot asked for.
        slot: u8,
    },
}

impl<E: core::fmt::Debug> AteccError<E> {
    /// Converts the I2C error type (e.g. to `embedded_hal::i2c::ErrorKind`).
    pub fn map_i2c<E2: core::fmt::Debug>(self, f: impl Fn(E) -> E2) -> AteccError<E2> {
        match self {
            AteccError::I2c(e) => AteccError::I2c(f(e)),
            AteccError::WakeFailed { got } => AteccError::WakeFailed { got },
            AteccError::SelfTestFailed => AteccError::SelfTestFailed,
            AteccError::BadCount { opcode, got } => AteccError::BadCount { opcode, got },
            AteccError::Crc { opcode, got, want } => AteccError::Crc { opcode, got, want },
            AteccError::Status { opcode, status } => AteccError::Status { opcode, status },
            AteccError::UnexpectedLength { opcode, got, want } => {
                AteccError::UnexpectedLength { opcode, got, want }
            }
            AteccError::Timeout {
                opcode,
                polls,
                last,
            } => AteccError::Timeout {
                opcode,
                polls,
                last: f(last),
            },
            AteccError::InvalidSlot { slot } => AteccError::InvalidSlot { slot },
        }
    }
}

/// Builds the bytes written for a command: word address 0x03, then count, opcode, param1,
/// param2 (little-endian), data, CRC-16 (little-endian) over count..data. Returns the length.
/// Callers pass at most 32 data bytes.
fn command_packet(
    opcode: u8,
    param1: u8,
    param2: u16,
    data: &[u8],
    out: &mut [u8; 1 + CMD_SIZE_MAX],
) -> usize {
    let data = &data[..data.len().min(CMD_SIZE_MAX - 7)];
    let count = 7 + data.len();
    out[0] = WORD_COMMAND;
    out[1] = count as u8;
    out[2] = opcode;
    out[3] = param1;
    out[4..6].copy_from_slice(&param2.to_le_bytes());
    out[6..6 + data.len()].copy_from_slice(data);
    let crc = crc16(&out[1..1 + count - 2]);
    out[1 + count - 2..1 + count].copy_from_slice(&crc.to_le_bytes());
    1 + count
}

/// An ATECC608 on an I2C bus.
#[derive(Debug)]
pub struct Atecc608<I2C, D> {
    i2c: I2C,
    delay: D,
    address: u8,
}

impl<I2C: I2c, D: DelayNs> Atecc608<I2C, D> {
    /// A chip at [`DEFAULT_ADDRESS`].
    pub fn new(i2c: I2C, delay: D) -> Self {
        Self::with_address(i2c, delay, DEFAULT_ADDRESS)
    }

    /// A chip at a 7-bit `address` (e.g. 0x35 for a TrustFLEX part).
    pub fn with_address(i2c: I2C, delay: D, address: u8) -> Self {
        Atecc608 {
            i2c,
            delay,
            address,
        }
    }

    /// Wakes the chip and checks its wake response.
    pub fn wake(&mut self) -> Result<(), AteccError<I2C::Error>> {
        // The general-call write is expected to be NACKed: its only purpose is the SDA-low pulse.
        let _ = self.i2c.write(0x00, &[0x01]);
        self.delay.delay_us(WAKE_DELAY_US);
        let mut got = [0u8; 4];
        self.i2c
            .read(self.address, &mut got)
            .map_err(AteccError::I2c)?;
        let crc_ok = crc16(&got[..2]).to_le_bytes() == [got[2], got[3]];
        match got {
            WAKE_OK => Ok(()),
            // CryptoAuthLib's literal (whose CRC bytes do not match `atCRC` of `04 07`), and the
            // same status with a valid CRC.
            WAKE_SELFTEST_FAILED => Err(AteccError::SelfTestFailed),
            [0x04, 0x07, _, _] if crc_ok => Err(AteccError::SelfTestFailed),
            _ => Err(AteccError::WakeFailed { got }),
        }
    }

    /// Puts the chip in idle mode (keeps TempKey and the Message Digest Buffer).
    pub fn idle(&mut self) -> Result<(), AteccError<I2C::Error>> {
        self.i2c
            .write(self.address, &[WORD_IDLE])
            .map_err(AteccError::I2c)
    }

    /// Puts the chip to sleep (lowest power; clears volatile state).
    pub fn sleep(&mut self) -> Result<(), AteccError<I2C::Error>> {
        self.i2c
            .write(self.address, &[WORD_SLEEP])
            .map_err(AteccError::I2c)
    }

    /// The 4-byte device revision (Info mode 0); bytes 2..4 are `60 02` on an ATECC608A and
    /// `60 03` on an ATECC608B.
    pub fn info_revision(&mut self) -> Result<[u8; 4], AteccError<I2C::Error>> {
        let mut rsp = [0u8; RSP_SIZE_MAX];
        self.execute(opcode::INFO, INFO_MODE_REVISION, 0, &[], 7, &mut rsp)?;
        let mut out = [0u8; 4];
        out.copy_from_slice(&rsp[1..5]);
        Ok(out)
    }

    /// 32 random bytes (Random mode 0, updating the seed). Before the configuration zone is
    /// locked the chip returns a fixed `FF FF 00 00` pattern.
    pub fn random(&mut self) -> Result<[u8; 32], AteccError<I2C::Error>> {
        let mut rsp = [0u8; RSP_SIZE_MAX];
        self.execute(opcode::RANDOM, RANDOM_SEED_UPDATE, 0, &[], 35, &mut rsp)?;
        let mut out = [0u8; 32];
        out.copy_from_slice(&rsp[1..33]);
        Ok(out)
    }

    /// The public key `X || Y` (big-endian) of the private key in `slot` (GenKey mode 0).
    pub fn public_key(&mut self, slot: u8) -> Result<[u8; 64], AteccError<I2C::Error>> {
        check_slot(slot)?;
        let mut rsp = [0u8; RSP_SIZE_MAX];
        self.execute(
            opcode::GENKEY,
            GENKEY_MODE_PUBLIC,
            u16::from(slot),
            &[],
            67,
            &mut rsp,
        )?;
        let mut out = [0u8; 64];
        out.copy_from_slice(&rsp[1..65]);
        Ok(out)
    }

    /// Signs a 32-byte digest with the private key in `slot`, as CryptoAuthLib's `calib_sign`
    /// does on an ATECC608: Random (seed update), Nonce pass-through into the Message Digest
    /// Buffer, Sign external. Returns `r || s` as the chip produced it (not normalised).
    pub fn sign_digest(
        &mut self,
        slot: u8,
        digest: &[u8; 32],
    ) -> Result<[u8; 64], AteccError<I2C::Error>> {
        check_slot(slot)?;
        let mut rsp = [0u8; RSP_SIZE_MAX];
        self.execute(opcode::RANDOM, RANDOM_SEED_UPDATE, 0, &[], 35, &mut rsp)?;
        self.execute(
            opcode::NONCE,
            NONCE_MODE_PASSTHROUGH | NONCE_MODE_TARGET_MSGDIGBUF,
            0,
            digest,
            4,
            &mut rsp,
        )?;
        self.execute(
            opcode::SIGN,
            SIGN_MODE_EXTERNAL | SIGN_MODE_SOURCE_MSGDIGBUF,
            u16::from(slot),
            &[],
            67,
            &mut rsp,
        )?;
        let mut out = [0u8; 64];
        out.copy_from_slice(&rsp[1..65]);
        Ok(out)
    }

    /// Gives the bus and the delay back.
    pub fn release(self) -> (I2C, D) {
        (self.i2c, self.delay)
    }

    /// One command as `calib_execute_command` runs it: wake, send, wait, poll for the response,
    /// check CRC and status, idle (always, as CryptoAuthLib does, ignoring the idle's result).
    /// `want` is the expected response count byte.
    fn execute(
        &mut self,
        opcode: u8,
        param1: u8,
        param2: u16,
        data: &[u8],
        want: u8,
        rsp: &mut [u8; RSP_SIZE_MAX],
    ) -> Result<(), AteccError<I2C::Error>> {
        self.wake()?;
        let result = self.send_receive(opcode, param1, param2, data, want, rsp);
        let _ = self.idle();
        result
    }

    fn send_receive(
        &mut self,
        opcode: u8,
        param1: u8,
        param2: u16,
        data: &[u8],
        want: u8,
        rsp: &mut [u8; RSP_SIZE_MAX],
    ) -> Result<(), AteccError<I2C::Error>> {
        let mut packet = [0u8; 1 + CMD_SIZE_MAX];
        let len = command_packet(opcode, param1, param2, data, &mut packet);
        self.i2c
            .write(self.address, &packet[..len])
            .map_err(AteccError::I2c)?;
        self.delay.delay_ms(execution_time_ms(opcode));
        let max_polls = POLL_MAX_MS / POLL_INTERVAL_MS;
        let mut polls = 0;
        let count = loop {
            polls += 1;
            match self.receive(opcode, rsp) {
                Ok(count) => break count,
                Err(ReceiveError::Fatal(e)) => return Err(e),
                Err(ReceiveError::Busy(last)) => {
                    if polls >= max_polls {
                        return Err(AteccError::Timeout {
                            opcode,
                            polls,
                            last,
                        });
                    }
                    self.delay.delay_ms(POLL_INTERVAL_MS);
                }
            }
        };
        let body = usize::from(count) - 2;
        let got = u16::from_le_bytes([rsp[body], rsp[body + 1]]);
        let crc = crc16(&rsp[..body]);
        if got != crc {
            return Err(AteccError::Crc {
                opcode,
                got,
                want: crc,
            });
        }
        if count == 4 && rsp[1] != 0x00 {
            return Err(AteccError::Status {
                opcode,
                status: Status::from_byte(rsp[1]),
            });
        }
        if count != want {
            return Err(AteccError::UnexpectedLength {
                opcode,
                got: count,
                want,
            });
        }
        Ok(())
    }

    /// `calib_execute_receive`: word address 0x00, count byte, rest. An I2C error means the chip
    /// is still busy (it NACKs its address while executing).
    fn receive(
        &mut self,
        opcode: u8,
        rsp: &mut [u8; RSP_SIZE_MAX],
    ) -> Result<u8, ReceiveError<I2C::Error>> {
        self.i2c
            .write(self.address, &[WORD_RESET])
            .map_err(ReceiveError::Busy)?;
        self.i2c
            .read(self.address, &mut rsp[..1])
            .map_err(ReceiveError::Busy)?;
        let count = rsp[0];
        if !(4..=RSP_SIZE_MAX as u8).contains(&count) {
            return Err(ReceiveError::Fatal(AteccError::BadCount {
                opcode,
                got: count,
            }));
        }
        self.i2c
            .read(self.address, &mut rsp[1..usize::from(count)])
            .map_err(|e| ReceiveError::Fatal(AteccError::I2c(e)))?;
        Ok(count)
    }
}

enum ReceiveError<E: core::fmt::Debug> {
    Busy(E),
    Fatal(AteccError<E>),
}

fn check_slot<E: core::fmt::Debug>(slot: u8) -> Result<(), AteccError<E>> {
    if slot > MAX_SLOT {
        Err(AteccError::InvalidSlot { slot })
    } else {
        Ok(())
    }
}
