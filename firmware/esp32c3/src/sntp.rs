//! The SNTP packet (RFC 4330): building the request and checking the answer. No I/O, so that it
//! can be checked on a host; `clock` does the exchange.

/// Seconds from 1900-01-01 (NTP era 0) to 1970-01-01.
const NTP_UNIX_OFFSET: u64 = 2_208_988_800;
/// 2020-01-01 in Unix milliseconds: an earlier answer is refused as implausible.
const PLAUSIBLE_UNIX_MS: u64 = 1_577_836_800_000;

/// Why an SNTP answer was not used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SntpError {
    /// Shorter than 48 bytes.
    Short,
    /// Not a server-mode answer.
    NotServer,
    /// Leap indicator 3: the server is not synchronised.
    Unsynchronised,
    /// Stratum 0 (kiss-o'-death) or above 15.
    Stratum(u8),
    /// The originate timestamp is not what we sent (stale or spoofed answer).
    NotOurs,
    /// A transmit time before 2020.
    Implausible,
}

/// The request: LI 0, version 4, mode 3 (client); our `nonce` as transmit timestamp, which the
/// server echoes as originate timestamp.
pub fn request(nonce: [u8; 8]) -> [u8; 48] {
    let mut packet = [0u8; 48];
    packet[0] = 0x23;
    packet[40..48].copy_from_slice(&nonce);
    packet
}

/// The server's transmit time in Unix milliseconds, after checking the answer.
pub fn parse_reply(reply: &[u8], nonce: [u8; 8]) -> Result<u64, SntpError> {
    let reply: &[u8; 48] = reply
        .get(..48)
        .and_then(|r| r.try_into().ok())
        .ok_or(SntpError::Short)?;
    if reply[0] & 0x07 != 4 {
        return Err(SntpError::NotServer);
    }
    if reply[0] >> 6 == 3 {
        return Err(SntpError::Unsynchronised);
    }
    if !(1..=15).contains(&reply[1]) {
        return Err(SntpError::Stratum(reply[1]));
    }
    if reply[24..32] != nonce {
        return Err(SntpError::NotOurs);
    }
    let seconds = u64::from(u32::from_be_bytes([
        reply[40], reply[41], reply[42], reply[43],
    ]));
    let fraction = u64::from(u32::from_be_bytes([
        reply[44], reply[45], reply[46], reply[47],
    ]));
    // Era 1 starts in 2036: a small seconds value means the counter has wrapped (RFC 4330 §3).
    let seconds = if seconds < 0x8000_0000 {
        seconds + (1 << 32)
    } else {
        seconds
    };
    let unix_ms = (seconds - NTP_UNIX_OFFSET) * 1000 + ((fraction * 1000) >> 32);
    if unix_ms < PLAUSIBLE_UNIX_MS {
        return Err(SntpError::Implausible);
    }
    Ok(unix_ms)
}
