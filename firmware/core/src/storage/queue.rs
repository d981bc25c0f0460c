//! A ring of flash erase sectors holding signed messages until the gateway's receipt covers them.
//!
//! # Why not `sequential-storage`
//!
//! `sequential-storage` 8 builds for the ESP32-C3 and is power-fail safe, but its queue stores
//! an item within one page (a 16 KiB SPEC message does not fit a 4 KiB sector), is async-only
//! and needs `MultiwriteNorFlash`; and we need "release everything up to seq N", not "pop one".
//! The format below is small enough to test exhaustively (`tests/queue.rs`, `tests/powercut.rs`).
//!
//! # On-flash format
//!
//! Each sector in use starts with a sector header, then entries at `WRITE_SIZE`-aligned offsets:
//!
//! ```text
//! sector header (16 bytes, padded):  "PQS1" | epoch u64 | crc32
//! entry header  (32 bytes, padded):  "QE" | kind=1 | 0 | seq u64 | total u32 | offset u32
//!                                    | chunk_len u32 | data_crc u32 | header_crc u32
//! entry data    (chunk_len bytes, padded with 0xFF to WRITE_SIZE)
//! ```
//!
//! A message is one or more *chunks* written in order; a chunk never crosses a sector boundary,
//! so every sector can be parsed on its own and any message up to 16 KiB fits any sector size.
//! A message is valid only if all its chunks are present, contiguous and match their CRCs.
//!
//! Sectors are used in rotation. Opening a sector erases it and writes its header with the next
//! epoch; at boot the ring is the run of sectors with valid headers and consecutive epochs
//! ending at the highest epoch (the head). Sectors outside it are free (and are always erased
//! again before use, so an interrupted erase is harmless).
//!
//! # Power cuts
//!
//! The header of an entry is written before its data. A torn header (bad CRC) ends that
//! sector: nothing after it is trusted, and writing resumes in the next sector. A torn data
//! write leaves an entry whose CRC fails; its length is known from its header, so later entries
//! are still found. Either way the message being written is incomplete and is never offered;
//! `push` had not returned `Ok`, so nobody relied on it.
//!
//! # Releasing
//!
//! Publishing does not free anything, and neither does the broker's PUBACK. Only
//! [`Queue::release_through`] with the gateway's receipt marks messages up to that seq as
//! released; a sector is erased (when its space is needed) only once every chunk in it belongs
//! to a released message, and only the oldest sector of the ring. The queue keeps the released
//! seq in RAM: its owner ([`super::EventStore`]) makes it durable in the state log first and
//! hands it back to [`Queue::open`] at boot, so the queue itself only ever appends and erases.
//!
//! # Full
//!
//! [`Queue::push`] refuses a message that does not fit with [`StorageError::QueueFull`], leaving
//! everything queued intact; [`Queue::free_bytes`] says beforehand whether it would fit.
//!
//! # Wear
//!
//! Each sector is erased once per trip around the ring: a ring of `n` sectors of `E` bytes takes
//! about `n * (E - 16) / (message + 32)` messages per erase of each sector.

use alloc::vec;
use alloc::vec::Vec;
use core::ops::Range;

use embedded_storage::nor_flash::{NorFlash, ReadNorFlash};

use super::{
    MAX_ALIGN, StorageError, check_region, crc32, crc32_update, erase, is_blank, read, round_up,
    write_padded,
};

/// Largest message the queue accepts (SPEC §2: 16 KiB).
pub const MAX_MESSAGE_LEN: usize = prov_schemas::cose::MAX_MESSAGE_LEN;

const SECTOR_MAGIC: [u8; 4] = *b"PQS1";
const SECTOR_HEADER_RAW: usize = 16;
const ENTRY_MAGIC: [u8; 2] = *b"QE";
const ENTRY_HEADER_RAW: usize = 32;
const KIND_CHUNK: u8 = 1;

/// A position in the queue region: sector index and byte offset within it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Pos {
    sector: u32,
    off: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Header {
    seq: u64,
    total: u32,
    offset: u32,
    chunk_len: u32,
    data_crc: u32,
}

enum Decoded {
    Blank,
    Garbage,
    Valid(Header),
}

impl Header {
    fn encode(&self) -> [u8; ENTRY_HEADER_RAW] {
        let mut out = [0u8; ENTRY_HEADER_RAW];
        out[0..2].copy_from_slice(&ENTRY_MAGIC);
        out[2] = KIND_CHUNK;
        out[3] = 0;
        out[4..12].copy_from_slice(&self.seq.to_le_bytes());
        out[12..16].copy_from_slice(&self.total.to_le_bytes());
        out[16..20].copy_from_slice(&self.offset.to_le_bytes());
        out[20..24].copy_from_slice(&self.chunk_len.to_le_bytes());
        out[24..28].copy_from_slice(&self.data_crc.to_le_bytes());
        let crc = crc32(&out[..28]);
        out[28..32].copy_from_slice(&crc.to_le_bytes());
        out
    }

    fn decode(bytes: &[u8; ENTRY_HEADER_RAW]) -> Decoded {
        if is_blank(bytes) {
            return Decoded::Blank;
        }
        let u32_at = |at: usize| {
            u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
        };
        if bytes[0..2] != ENTRY_MAGIC || bytes[2] != KIND_CHUNK || u32_at(28) != crc32(&bytes[..28])
        {
            return Decoded::Garbage;
        }
        let mut seq = [0u8; 8];
        seq.copy_from_slice(&bytes[4..12]);
        Decoded::Valid(Header {
            seq: u64::from_le_bytes(seq),
            total: u32_at(12),
            offset: u32_at(16),
            chunk_len: u32_at(20),
            data_crc: u32_at(24),
        })
    }
}

fn encode_sector_header(epoch: u64) -> [u8; SECTOR_HEADER_RAW] {
    let mut out = [0u8; SECTOR_HEADER_RAW];
    out[0..4].copy_from_slice(&SECTOR_MAGIC);
    out[4..12].copy_from_slice(&epoch.to_le_bytes());
    let crc = crc32(&out[..12]);
    out[12..16].copy_from_slice(&crc.to_le_bytes());
    out
}

fn decode_sector_header(bytes: &[u8; SECTOR_HEADER_RAW]) -> Option<u64> {
    let crc = u32::from_le_bytes([bytes[12], bytes[13], bytes[14], bytes[15]]);
    if bytes[0..4] != SECTOR_MAGIC || crc != crc32(&bytes[..12]) {
        return None;
    }
    let mut epoch = [0u8; 8];
    epoch.copy_from_slice(&bytes[4..12]);
    Some(u64::from_le_bytes(epoch))
}

#[derive(Debug, Clone, Copy, Default)]
struct SectorMeta {
    in_ring: bool,
    epoch: u64,
    /// Highest seq of any entry header in the sector (complete message or not).
    max_seq: Option<u64>,
}

/// A complete, checksummed message found in the queue, in seq order. Read it with
/// [`Queue::read`]; continue with [`Queue::next`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    seq: u64,
    len: u32,
    start: Pos,
    start_epoch: u64,
    end: Pos,
    end_epoch: u64,
}

impl Entry {
    /// The message's seq.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The message's length in bytes.
    pub fn message_len(&self) -> usize {
        self.len as usize
    }
}

/// The queue over a flash region (two or more erase sectors). See the module docs.
#[derive(Debug, Clone)]
pub struct Queue {
    base: u32,
    sectors: u32,
    sector_size: u32,
    align: u32,
    sh_len: u32,
    hdr_len: u32,
    meta: Vec<SectorMeta>,
    head: Option<u32>,
    head_off: u32,
    ring_len: u32,
    next_epoch: u64,
    released: u64,
    newest: Option<u64>,
    newest_start: Option<Pos>,
}

impl Queue {
    /// Erases the region and opens an empty queue.
    pub fn format<F: NorFlash>(
        flash: &mut F,
        region: Range<u32>,
    ) -> Result<Queue, StorageError<F::Error>> {
        check_region(flash, &region, 2)?;
        erase(flash, region.start, region.end)?;
        Queue::open(flash, region, 0)
    }

    /// Boot: finds the ring and the write position by reading the sector and entry headers (no
    /// message data is read). `released` is the last receipt applied, kept durable by the owner.
    pub fn open<F: NorFlash>(
        flash: &mut F,
        region: Range<u32>,
        released: u64,
    ) -> Result<Queue, StorageError<F::Error>> {
        let sectors = check_region(flash, &region, 2)?;
        let sector_size = F::ERASE_SIZE as u32;
        let align = F::WRITE_SIZE as u32;
        let sh_len = round_up(SECTOR_HEADER_RAW as u32, align);
        let hdr_len = round_up(ENTRY_HEADER_RAW as u32, align);
        if sh_len as usize > MAX_ALIGN || sh_len + hdr_len + align > sector_size {
            return Err(StorageError::Geometry {
                what: "ERASE_SIZE (too small for the queue's headers)",
                got: sector_size as usize,
                max: MAX_ALIGN,
            });
        }
        let mut queue = Queue {
            base: region.start,
            sectors,
            sector_size,
            align,
            sh_len,
            hdr_len,
            meta: vec![SectorMeta::default(); sectors as usize],
            head: None,
            head_off: sector_size,
            ring_len: 0,
            next_epoch: 1,
            released,
            newest: None,
            newest_start: None,
        };
        // Sector headers.
        let mut epochs: Vec<Option<u64>> = vec![None; sectors as usize];
        for s in 0..sectors {
            let mut raw = [0u8; SECTOR_HEADER_RAW];
            read(flash, queue.sector_addr(s), &mut raw)?;
            epochs[s as usize] = decode_sector_header(&raw);
        }
        let max_epoch = epochs.iter().flatten().copied().max();
        if let Some(max) = max_epoch {
            queue.next_epoch = max.saturating_add(1);
        }
        let Some(head) =
            (0..sectors).find(|&s| epochs[s as usize] == max_epoch && max_epoch.is_some())
        else {
            return Ok(queue);
        };
        // The ring: consecutive epochs walking back from the head.
        let mut ring = vec![head];
        let mut cur = head;
        while (ring.len() as u32) < sectors {
            let prev = (cur + sectors - 1) % sectors;
            match (epochs[prev as usize], epochs[cur as usize]) {
                (Some(p), Some(c)) if p.checked_add(1) == Some(c) => {
                    ring.push(prev);
                    cur = prev;
                }
                _ => break,
            }
        }
        ring.reverse();
        for &s in &ring {
            let meta = &mut queue.meta[s as usize];
            meta.in_ring = true;
            meta.epoch = epochs[s as usize].unwrap_or(0);
        }
        queue.ring_len = ring.len() as u32;
        queue.head = Some(head);
        // Entry headers, oldest sector first.
        for &s in &ring {
            let mut off = sh_len;
            let end = loop {
                if !queue.room_for_entry(off) {
                    break off;
                }
                let pos = Pos { sector: s, off };
                match queue.read_header(flash, pos)? {
                    Decoded::Blank => break off,
                    Decoded::Garbage => break sector_size,
                    Decoded::Valid(h) if !queue.fits(off, &h) => break sector_size,
                    Decoded::Valid(h) => {
                        queue.note_header(pos, &h);
                        off = queue.after(pos, &h).off;
                    }
                }
            };
            if s == head {
                queue.head_off = end;
            }
        }
        Ok(queue)
    }

    /// Appends a message; durable when this returns `Ok`.
    ///
    /// `seq` must be above every seq the queue has seen. Fails with
    /// [`StorageError::QueueFull`] (nothing written) when the message does not fit even after
    /// reclaiming the sectors that hold only released messages.
    pub fn push<F: NorFlash>(
        &mut self,
        flash: &mut F,
        seq: u64,
        message: &[u8],
    ) -> Result<(), StorageError<F::Error>> {
        let len = message.len();
        if len == 0 || len > MAX_MESSAGE_LEN {
            return Err(StorageError::MessageSize {
                got: len,
                max: MAX_MESSAGE_LEN,
            });
        }
        if let Some(newest) = self.newest
            && seq <= newest
        {
            return Err(StorageError::SeqNotIncreasing { got: seq, newest });
        }
        let free = self.free_bytes();
        if len > free {
            return Err(StorageError::QueueFull { need: len, free });
        }
        // From here on the seq counts as used, even if a write fails half way.
        self.newest = Some(seq);
        self.newest_start = None;
        let mut done = 0usize;
        while done < len {
            if self.head.is_none() || !self.room_for_entry(self.head_off) {
                self.open_sector(flash)?;
            }
            let head = self
                .head
                .ok_or(StorageError::QueueFull { need: len, free })?;
            let room = (self.sector_size - self.head_off - self.hdr_len) as usize;
            let n = room.min(len - done);
            let chunk = &message[done..done + n];
            let header = Header {
                seq,
                total: len as u32,
                offset: done as u32,
                chunk_len: n as u32,
                data_crc: crc32(chunk),
            };
            let pos = Pos {
                sector: head,
                off: self.head_off,
            };
            // Account for the entry before writing it: a failed write may still have landed.
            self.note_header(pos, &header);
            if let Err(e) = self.write_entry(flash, pos, &header, chunk) {
                // The slot may be torn: close the sector, the next push opens a new one.
                self.head_off = self.sector_size;
                return Err(e);
            }
            self.head_off = self.after(pos, &header).off;
            done += n;
        }
        Ok(())
    }

    /// Marks every message with seq ≤ `receipt` as released (the gateway's receipt, clamped to
    /// the newest seq queued); returns the released seq. RAM only: the owner persists it.
    pub fn release_through(&mut self, receipt: u64) -> u64 {
        let clamped = receipt.min(self.newest.unwrap_or(0));
        self.released = self.released.max(clamped);
        self.released
    }

    /// The highest receipt applied.
    pub fn released(&self) -> u64 {
        self.released
    }

    /// The highest seq the queue has seen (complete or not), if any.
    pub fn newest_seq(&self) -> Option<u64> {
        self.newest
    }

    /// The largest message that [`Queue::push`] would accept now.
    pub fn free_bytes(&self) -> usize {
        let head_room = match self.head {
            Some(_) if self.room_for_entry(self.head_off) => {
                (self.sector_size - self.head_off - self.hdr_len) as usize
            }
            _ => 0,
        };
        let fresh = (self.sectors - self.ring_len + self.reclaimable()) as usize;
        let per_sector = (self.sector_size - self.sh_len - self.hdr_len) as usize;
        head_room
            .saturating_add(fresh.saturating_mul(per_sector))
            .min(MAX_MESSAGE_LEN)
    }

    /// The oldest complete message not yet released, if any.
    pub fn first_unreleased<F: ReadNorFlash>(
        &self,
        flash: &mut F,
    ) -> Result<Option<Entry>, StorageError<F::Error>> {
        self.first_after(flash, self.released)
    }

    /// The oldest complete message with seq above `after`, if any (scans from the oldest sector).
    pub fn first_after<F: ReadNorFlash>(
        &self,
        flash: &mut F,
        after: u64,
    ) -> Result<Option<Entry>, StorageError<F::Error>> {
        match self.tail() {
            Some(tail) => self.find_from(
                flash,
                Pos {
                    sector: tail,
                    off: self.sh_len,
                },
                after,
            ),
            None => Ok(None),
        }
    }

    /// The complete message after `entry`, if any. Continues where `entry` ended; falls back to
    /// a scan from the oldest sector if `entry`'s sector was reclaimed meanwhile.
    pub fn next<F: ReadNorFlash>(
        &self,
        flash: &mut F,
        entry: &Entry,
    ) -> Result<Option<Entry>, StorageError<F::Error>> {
        if self.holds(entry.end.sector, entry.end_epoch) {
            self.find_from(flash, entry.end, entry.seq)
        } else {
            self.first_after(flash, entry.seq)
        }
    }

    /// Reads `entry`'s bytes into `buf` (re-checking every chunk's CRC); returns the length.
    pub fn read<F: ReadNorFlash>(
        &self,
        flash: &mut F,
        entry: &Entry,
        buf: &mut [u8],
    ) -> Result<usize, StorageError<F::Error>> {
        let len = entry.message_len();
        let got = buf.len();
        let out = buf
            .get_mut(..len)
            .ok_or(StorageError::BufferTooSmall { got, want: len })?;
        let corrupt = |what| StorageError::Corrupt {
            seq: entry.seq,
            addr: self.addr(entry.start),
            what,
        };
        if !self.holds(entry.start.sector, entry.start_epoch) {
            return Err(corrupt("its sector was reclaimed"));
        }
        let Decoded::Valid(first) = self.read_header(flash, entry.start)? else {
            return Err(corrupt("first chunk header is gone"));
        };
        if first.seq != entry.seq || first.offset != 0 || first.total != entry.len {
            return Err(corrupt("first chunk header changed"));
        }
        match self.walk(flash, entry.start, first, Some(out))? {
            Some(_) => Ok(len),
            None => Err(corrupt("a chunk is missing or fails its CRC")),
        }
    }

    /// Reads `entry`'s bytes into a new vector.
    pub fn read_vec<F: ReadNorFlash>(
        &self,
        flash: &mut F,
        entry: &Entry,
    ) -> Result<Vec<u8>, StorageError<F::Error>> {
        let mut out = vec![0u8; entry.message_len()];
        self.read(flash, entry, &mut out)?;
        Ok(out)
    }

    /// The newest message, if it is complete (used at boot to recover the chain head).
    pub fn newest_complete<F: ReadNorFlash>(
        &self,
        flash: &mut F,
    ) -> Result<Option<Entry>, StorageError<F::Error>> {
        let (Some(newest), Some(start)) = (self.newest, self.newest_start) else {
            return Ok(None);
        };
        if !self.meta[start.sector as usize].in_ring {
            return Ok(None);
        }
        match self.read_header(flash, start)? {
            Decoded::Valid(h) if h.seq == newest && h.offset == 0 => Ok(self
                .walk(flash, start, h, None)?
                .map(|end| self.entry(start, &h, end))),
            _ => Ok(None),
        }
    }

    /// Number of sectors in the region.
    pub fn sectors(&self) -> u32 {
        self.sectors
    }

    // --- internals -------------------------------------------------------------------------

    fn sector_addr(&self, sector: u32) -> u32 {
        self.base + sector * self.sector_size
    }

    fn addr(&self, pos: Pos) -> u32 {
        self.sector_addr(pos.sector) + pos.off
    }

    /// Whether an entry (header plus at least one word of data) fits at `off`.
    fn room_for_entry(&self, off: u32) -> bool {
        off + self.hdr_len + self.align <= self.sector_size
    }

    /// Whether a CRC-valid header is also self-consistent at `off`.
    fn fits(&self, off: u32, h: &Header) -> bool {
        h.chunk_len >= 1
            && h.total >= 1
            && h.total as usize <= MAX_MESSAGE_LEN
            && h.offset
                .checked_add(h.chunk_len)
                .is_some_and(|e| e <= h.total)
            && u64::from(off)
                + u64::from(self.hdr_len)
                + u64::from(round_up(h.chunk_len, self.align))
                <= u64::from(self.sector_size)
    }

    fn after(&self, pos: Pos, h: &Header) -> Pos {
        Pos {
            sector: pos.sector,
            off: pos.off + self.hdr_len + round_up(h.chunk_len, self.align),
        }
    }

    fn tail(&self) -> Option<u32> {
        self.head
            .map(|h| (h + self.sectors - (self.ring_len.max(1) - 1)) % self.sectors)
    }

    fn holds(&self, sector: u32, epoch: u64) -> bool {
        self.meta
            .get(sector as usize)
            .is_some_and(|m| m.in_ring && m.epoch == epoch)
    }

    /// Sectors at the tail of the ring that hold only released messages (never the head).
    fn reclaimable(&self) -> u32 {
        let (Some(head), Some(tail)) = (self.head, self.tail()) else {
            return 0;
        };
        let mut count = 0;
        let mut s = tail;
        while s != head
            && self.meta[s as usize]
                .max_seq
                .is_none_or(|m| m <= self.released)
        {
            count += 1;
            s = (s + 1) % self.sectors;
        }
        count
    }

    fn note_header(&mut self, pos: Pos, h: &Header) {
        let meta = &mut self.meta[pos.sector as usize];
        meta.max_seq = Some(meta.max_seq.map_or(h.seq, |m| m.max(h.seq)));
        if self.newest.is_none_or(|n| h.seq >= n) {
            if self.newest != Some(h.seq) {
                self.newest_start = None;
            }
            self.newest = Some(h.seq);
            if h.offset == 0 {
                self.newest_start = Some(pos);
            }
        }
    }

    fn entry(&self, start: Pos, first: &Header, end: Pos) -> Entry {
        Entry {
            seq: first.seq,
            len: first.total,
            start,
            start_epoch: self.meta[start.sector as usize].epoch,
            end,
            end_epoch: self.meta[end.sector as usize].epoch,
        }
    }

    fn read_header<F: ReadNorFlash>(
        &self,
        flash: &mut F,
        pos: Pos,
    ) -> Result<Decoded, StorageError<F::Error>> {
        let mut raw = [0u8; ENTRY_HEADER_RAW];
        read(flash, self.addr(pos), &mut raw)?;
        Ok(Header::decode(&raw))
    }

    /// The next valid entry header at or after `pos`, following the ring up to the write head.
    fn next_header<F: ReadNorFlash>(
        &self,
        flash: &mut F,
        mut pos: Pos,
    ) -> Result<Option<(Pos, Header)>, StorageError<F::Error>> {
        let Some(head) = self.head else {
            return Ok(None);
        };
        loop {
            if pos.sector == head && pos.off >= self.head_off {
                return Ok(None);
            }
            // Blank: the sector's data ended here. Garbage: a torn header ended it. Either way
            // the ring continues in the next sector.
            if self.room_for_entry(pos.off)
                && let Decoded::Valid(h) = self.read_header(flash, pos)?
                && self.fits(pos.off, &h)
            {
                return Ok(Some((pos, h)));
            }
            if pos.sector == head {
                return Ok(None);
            }
            pos = Pos {
                sector: (pos.sector + 1) % self.sectors,
                off: self.sh_len,
            };
        }
    }

    /// The first complete message with seq above `after`, scanning from `pos`.
    fn find_from<F: ReadNorFlash>(
        &self,
        flash: &mut F,
        mut pos: Pos,
        after: u64,
    ) -> Result<Option<Entry>, StorageError<F::Error>> {
        while let Some((p, h)) = self.next_header(flash, pos)? {
            if h.offset == 0
                && h.seq > after
                && let Some(end) = self.walk(flash, p, h, None)?
            {
                return Ok(Some(self.entry(p, &h, end)));
            }
            pos = self.after(p, &h);
        }
        Ok(None)
    }

    /// Follows a message's chunks from its first one, checking continuity and CRCs and copying
    /// the data to `out` if given. Returns the position after its last chunk if it is complete.
    fn walk<F: ReadNorFlash>(
        &self,
        flash: &mut F,
        start: Pos,
        first: Header,
        mut out: Option<&mut [u8]>,
    ) -> Result<Option<Pos>, StorageError<F::Error>> {
        let (seq, total) = (first.seq, first.total);
        let (mut pos, mut h) = (start, first);
        let mut done = 0u32;
        loop {
            if h.seq != seq || h.total != total || h.offset != done {
                return Ok(None);
            }
            let data = self.addr(pos) + self.hdr_len;
            let crc = match out.as_deref_mut() {
                Some(out) => {
                    let dst = &mut out[done as usize..(done + h.chunk_len) as usize];
                    read(flash, data, dst)?;
                    crc32(dst)
                }
                None => {
                    let mut crc = !0u32;
                    let mut bounce = [0u8; MAX_ALIGN];
                    let mut got = 0u32;
                    while got < h.chunk_len {
                        let n = (h.chunk_len - got).min(MAX_ALIGN as u32);
                        let part = &mut bounce[..n as usize];
                        read(flash, data + got, part)?;
                        crc = crc32_update(crc, part);
                        got += n;
                    }
                    !crc
                }
            };
            if crc != h.data_crc {
                return Ok(None);
            }
            done += h.chunk_len;
            let end = self.after(pos, &h);
            if done == total {
                return Ok(Some(end));
            }
            match self.next_header(flash, end)? {
                Some((p, next)) => {
                    pos = p;
                    h = next;
                }
                None => return Ok(None),
            }
        }
    }

    /// Opens the next sector of the ring: reclaims the tail if the ring is full, erases, writes
    /// the sector header.
    fn open_sector<F: NorFlash>(&mut self, flash: &mut F) -> Result<(), StorageError<F::Error>> {
        let target = match self.head {
            Some(h) => (h + 1) % self.sectors,
            None => 0,
        };
        if self.meta[target as usize].in_ring {
            // The ring is full and `target` is its tail.
            if self.reclaimable() == 0 {
                return Err(StorageError::QueueFull {
                    need: 1,
                    free: self.free_bytes(),
                });
            }
            self.ring_len -= 1;
        }
        // From here the sector is free until its new header lands.
        self.meta[target as usize] = SectorMeta::default();
        let start = self.sector_addr(target);
        erase(flash, start, start + self.sector_size)?;
        let epoch = self.next_epoch;
        self.next_epoch = epoch.saturating_add(1);
        write_padded(flash, start, &encode_sector_header(epoch))?;
        self.meta[target as usize] = SectorMeta {
            in_ring: true,
            epoch,
            max_seq: None,
        };
        self.ring_len += 1;
        self.head = Some(target);
        self.head_off = self.sh_len;
        Ok(())
    }

    fn write_entry<F: NorFlash>(
        &self,
        flash: &mut F,
        pos: Pos,
        header: &Header,
        chunk: &[u8],
    ) -> Result<(), StorageError<F::Error>> {
        let addr = self.addr(pos);
        write_padded(flash, addr, &header.encode())?;
        write_padded(flash, addr + self.hdr_len, chunk)
    }
}
