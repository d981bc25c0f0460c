//! Event times and time-zone offsets in the one spelling the payload admits.
//!
//! EPCIS accepts any `xsd:dateTime`; SPEC §2 narrows `eventTime` to `YYYY-MM-DDTHH:MM:SS.sssZ`
//! (UTC, milliseconds) so that a time has exactly one text form and therefore one payload
//! encoding. [`EventTime`] checks the shape *and* the calendar (no February 30th, no hour 24, no
//! leap second) once, and converts to and from Unix milliseconds for devices and the gateway.

use alloc::string::{String, ToString};
use core::fmt;

/// A time or offset text was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not a valid {what}: {reason}")]
pub struct TimeError {
    /// What was being parsed (`time`, `time zone offset`).
    pub what: &'static str,
    /// The text found (at most 40 characters of it).
    pub value: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

fn time_error(what: &'static str, value: &str, reason: &'static str) -> TimeError {
    TimeError {
        what,
        value: value.chars().take(40).collect(),
        reason,
    }
}

/// Earliest year accepted: Unix time 0 (a device whose clock never synchronised reports 1970).
pub const MIN_YEAR: u32 = 1970;
/// Latest year accepted: four digits.
pub const MAX_YEAR: u32 = 9999;

/// A UTC instant with millisecond precision, spelled `YYYY-MM-DDTHH:MM:SS.sssZ`, years 1970–9999.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventTime([u8; 24]);

fn is_leap(year: u32) -> bool {
    (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400)
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(year) => 29,
        2 => 28,
        _ => 0,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
fn days_from_civil(year: u32, month: u32, day: u32) -> i64 {
    let y = i64::from(year) - i64::from(month <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from((month + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The (year, month, day) of a day count since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

fn num(bytes: &[u8]) -> u32 {
    bytes
        .iter()
        .fold(0, |acc, b| acc * 10 + u32::from(b.wrapping_sub(b'0')))
}

fn write_num(out: &mut [u8], mut n: u64) {
    for slot in out.iter_mut().rev() {
        *slot = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

/// The largest Unix millisecond count accepted: 9999-12-31T23:59:59.999Z.
pub const MAX_UNIX_MILLIS: u64 = 253_402_300_799_999;

impl EventTime {
    /// Parses `YYYY-MM-DDTHH:MM:SS.sssZ`, checking that the date exists.
    pub fn parse(text: &str) -> Result<EventTime, TimeError> {
        let err = |reason| time_error("time", text, reason);
        let bytes: [u8; 24] = text
            .as_bytes()
            .try_into()
            .map_err(|_| err("want YYYY-MM-DDTHH:MM:SS.sssZ (24 characters)"))?;
        for (i, b) in bytes.iter().enumerate() {
            let ok = match i {
                4 | 7 => *b == b'-',
                10 => *b == b'T',
                13 | 16 => *b == b':',
                19 => *b == b'.',
                23 => *b == b'Z',
                _ => b.is_ascii_digit(),
            };
            if !ok {
                return Err(err("want YYYY-MM-DDTHH:MM:SS.sssZ"));
            }
        }
        let year = num(&bytes[0..4]);
        let month = num(&bytes[5..7]);
        let day = num(&bytes[8..10]);
        if !(MIN_YEAR..=MAX_YEAR).contains(&year) {
            return Err(err("year outside 1970-9999"));
        }
        if !(1..=12).contains(&month) {
            return Err(err("month outside 01-12"));
        }
        if day < 1 || day > days_in_month(year, month) {
            return Err(err("no such day in that month"));
        }
        if num(&bytes[11..13]) > 23 {
            return Err(err("hour outside 00-23"));
        }
        if num(&bytes[14..16]) > 59 {
            return Err(err("minute outside 00-59"));
        }
        if num(&bytes[17..19]) > 59 {
            return Err(err("second outside 00-59"));
        }
        Ok(EventTime(bytes))
    }

    /// The time `millis` milliseconds after 1970-01-01T00:00:00.000Z (at most
    /// [`MAX_UNIX_MILLIS`]).
    pub fn from_unix_millis(millis: u64) -> Result<EventTime, TimeError> {
        if millis > MAX_UNIX_MILLIS {
            return Err(time_error("time", &millis.to_string(), "after 9999-12-31"));
        }
        let days = (millis / 86_400_000) as i64;
        let ms_of_day = millis % 86_400_000;
        let (year, month, day) = civil_from_days(days);
        let mut out = *b"0000-00-00T00:00:00.000Z";
        write_num(&mut out[0..4], year as u64);
        write_num(&mut out[5..7], u64::from(month));
        write_num(&mut out[8..10], u64::from(day));
        write_num(&mut out[11..13], ms_of_day / 3_600_000);
        write_num(&mut out[14..16], ms_of_day / 60_000 % 60);
        write_num(&mut out[17..19], ms_of_day / 1000 % 60);
        write_num(&mut out[20..23], ms_of_day % 1000);
        Ok(EventTime(out))
    }

    /// Milliseconds since 1970-01-01T00:00:00.000Z.
    pub fn unix_millis(&self) -> u64 {
        let b = &self.0;
        let days = days_from_civil(num(&b[0..4]), num(&b[5..7]), num(&b[8..10]));
        let ms_of_day = u64::from(num(&b[11..13])) * 3_600_000
            + u64::from(num(&b[14..16])) * 60_000
            + u64::from(num(&b[17..19])) * 1000
            + u64::from(num(&b[20..23]));
        // `parse` admits years from 1970 only, so `days` is never negative.
        days.max(0) as u64 * 86_400_000 + ms_of_day
    }

    /// The text form.
    pub fn as_str(&self) -> &str {
        // Only ASCII is ever stored.
        core::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl fmt::Display for EventTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for EventTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EventTime({})", self.as_str())
    }
}

/// A site's offset from UTC, spelled `±HH:MM`, from `-14:00` to `+14:00`. `-00:00` is refused
/// (write `+00:00`) so that each offset has one spelling.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TzOffset([u8; 6]);

impl TzOffset {
    /// UTC: `+00:00`.
    pub const UTC: TzOffset = TzOffset(*b"+00:00");

    /// Parses `±HH:MM`.
    pub fn parse(text: &str) -> Result<TzOffset, TimeError> {
        let err = |reason| time_error("time zone offset", text, reason);
        let bytes: [u8; 6] = text.as_bytes().try_into().map_err(|_| err("want ±HH:MM"))?;
        let shape = matches!(bytes[0], b'+' | b'-')
            && bytes[3] == b':'
            && [1, 2, 4, 5].iter().all(|&i| bytes[i].is_ascii_digit());
        if !shape {
            return Err(err("want ±HH:MM"));
        }
        let (hours, minutes) = (num(&bytes[1..3]), num(&bytes[4..6]));
        if minutes > 59 {
            return Err(err("minutes outside 00-59"));
        }
        if hours * 60 + minutes > 14 * 60 {
            return Err(err("beyond ±14:00"));
        }
        if bytes[0] == b'-' && hours == 0 && minutes == 0 {
            return Err(err("write +00:00, not -00:00"));
        }
        Ok(TzOffset(bytes))
    }

    /// The offset in minutes east of UTC.
    pub fn minutes(&self) -> i16 {
        let m = (num(&self.0[1..3]) * 60 + num(&self.0[4..6])) as i16;
        if self.0[0] == b'-' { -m } else { m }
    }

    /// The offset for `minutes` east of UTC (within ±14:00).
    pub fn from_minutes(minutes: i16) -> Result<TzOffset, TimeError> {
        if minutes.unsigned_abs() > 14 * 60 {
            return Err(time_error(
                "time zone offset",
                &minutes.to_string(),
                "beyond ±14:00",
            ));
        }
        let abs = u64::from(minutes.unsigned_abs());
        let mut out = *b"+00:00";
        if minutes < 0 {
            out[0] = b'-';
        }
        write_num(&mut out[1..3], abs / 60);
        write_num(&mut out[4..6], abs % 60);
        Ok(TzOffset(out))
    }

    /// The text form.
    pub fn as_str(&self) -> &str {
        core::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl fmt::Display for TzOffset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for TzOffset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TzOffset({})", self.as_str())
    }
}

macro_rules! text_serde {
    ($ty:ident, $expecting:literal) => {
        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<$ty, D::Error> {
                struct V;
                impl serde::de::Visitor<'_> for V {
                    type Value = $ty;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str($expecting)
                    }
                    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<$ty, E> {
                        $ty::parse(v).map_err(E::custom)
                    }
                }
                d.deserialize_str(V)
            }
        }
    };
}
pub(crate) use text_serde;

text_serde!(EventTime, "a time YYYY-MM-DDTHH:MM:SS.sssZ");
text_serde!(TzOffset, "a time zone offset ±HH:MM");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_millis_round_trip_at_edges() {
        for ms in [
            0,
            1,
            86_399_999,
            951_782_400_000,
            1_709_164_800_123,
            MAX_UNIX_MILLIS,
        ] {
            let t = EventTime::from_unix_millis(ms).unwrap();
            assert_eq!(t.unix_millis(), ms, "{t}");
            assert_eq!(EventTime::parse(t.as_str()), Ok(t));
        }
        assert_eq!(
            EventTime::from_unix_millis(951_782_400_000)
                .unwrap()
                .as_str(),
            "2000-02-29T00:00:00.000Z"
        );
    }
}
