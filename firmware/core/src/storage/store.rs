//! [`EventStore`]: the state log and the queue, driven in the one order that keeps the seq
//! unique and the hash chain unbroken across power cuts. The contract is in the parent module's
//! docs; the reasoning for each step is next to it below.

use alloc::vec::Vec;
use core::ops::Range;

use embedded_storage::nor_flash::NorFlash;
use prov_schemas::Hash32;

use super::StorageError;
use super::queue::{Entry, MAX_MESSAGE_LEN, Queue};
use super::state::{ChainState, StateRecord};

/// Where the state log and the queue live in the flash (each a whole number of erase sectors,
/// at least two; they must not overlap).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    /// The state log region.
    pub state: Range<u32>,
    /// The queue region.
    pub queue: Range<u32>,
}

/// A point of the device's hash chain: a message's seq and the BLAKE3 of its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ChainPoint {
    /// The message's `prov:seq` (0: before the first message).
    pub seq: u64,
    /// BLAKE3 of the message ([`Hash32::ZERO`] before the first message).
    pub hash: Hash32,
}

impl ChainPoint {
    /// Before the device's first message: the first event gets seq 1 and `prov:prev` = zero.
    pub const GENESIS: ChainPoint = ChainPoint {
        seq: 0,
        hash: Hash32::ZERO,
    };
}

/// A seq handed out by [`EventStore::reserve`], durable before it is returned: put `seq` and
/// `prev` in the event's payload, sign, and pass the message to [`EventStore::commit`].
///
/// Not `Clone`: a reservation is committed at most once. Dropping it without committing leaves
/// a gap in the seq (the next message still chains to `prev`).
#[derive(Debug, PartialEq, Eq)]
#[must_use = "a reservation burns a seq; commit the signed message or accept the gap"]
pub struct Reservation {
    seq: u64,
    prev: Hash32,
    max_len: usize,
}

impl Reservation {
    /// The `prov:seq` to sign.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The `prov:prev` to sign: BLAKE3 of the newest message that reached the queue.
    pub fn prev(&self) -> Hash32 {
        self.prev
    }

    /// The message size the queue's space was checked for.
    pub fn max_len(&self) -> usize {
        self.max_len
    }
}

/// The device's durable event store: state log + queue on one flash (see the module docs).
#[derive(Debug)]
pub struct EventStore<F> {
    flash: F,
    layout: Layout,
    state: ChainState,
    queue: Queue,
    /// The newest message that reached the queue (ahead of the state log until the next record).
    chain: ChainPoint,
    dropped: u32,
    needs_reopen: bool,
}

impl<F: NorFlash> EventStore<F> {
    /// Provisioning: erases both regions and starts the chain after `resume`
    /// ([`ChainPoint::GENESIS`] for a new device; for a device whose state was lost, the newest
    /// `(seq, hash)` the gateway holds for it, so seqs are never reused).
    pub fn format(
        mut flash: F,
        layout: Layout,
        resume: ChainPoint,
    ) -> Result<Self, StorageError<F::Error>> {
        check_layout::<F>(&layout)?;
        let first = StateRecord {
            reserved: resume.seq,
            last_seq: resume.seq,
            last_hash: resume.hash,
            released: resume.seq,
        };
        let queue = Queue::format(&mut flash, layout.queue.clone())?;
        let state = ChainState::format(&mut flash, layout.state.clone(), first)?;
        Ok(EventStore {
            flash,
            layout,
            state,
            queue,
            chain: resume,
            dropped: 0,
            needs_reopen: false,
        })
    }

    /// Boot: recovers the state and the queue, and reconciles the chain head.
    pub fn open(mut flash: F, layout: Layout) -> Result<Self, StorageError<F::Error>> {
        check_layout::<F>(&layout)?;
        let state = ChainState::open(&mut flash, layout.state.clone())?;
        let record = *state.current();
        let queue = Queue::open(&mut flash, layout.queue.clone(), record.released)?;
        if let Some(newest) = queue.newest_seq()
            && newest > record.reserved
        {
            // Only a rolled-back state partition can do this; seqs would be reused.
            return Err(StorageError::StateBehindQueue {
                queue: newest,
                state: record.reserved,
            });
        }
        // Every record carries the newest message durable when it was written, and the queue
        // only erases after such a record, so the chain head is either in the record or is the
        // one message pushed after it (power lost between `commit` and the next record).
        let mut chain = ChainPoint {
            seq: record.last_seq,
            hash: record.last_hash,
        };
        if let Some(entry) = queue.newest_complete(&mut flash)?
            && entry.seq() > record.last_seq
        {
            let bytes = queue.read_vec(&mut flash, &entry)?;
            chain = ChainPoint {
                seq: entry.seq(),
                hash: Hash32::blake3(&bytes),
            };
        }
        Ok(EventStore {
            flash,
            layout,
            state,
            queue,
            chain,
            dropped: 0,
            needs_reopen: false,
        })
    }

    /// Reopens from flash (what a reboot does), e.g. after [`StorageError::NeedsReopen`].
    pub fn reopen(self) -> Result<Self, StorageError<F::Error>> {
        EventStore::open(self.flash, self.layout)
    }

    /// Hands out the next seq for a message of at most `max_len` bytes.
    ///
    /// Checks the queue's space first: if the message could not be queued, fails with
    /// [`StorageError::QueueFull`], counts a dropped event and consumes no seq. Otherwise writes
    /// the reservation (with the current chain head) to the state log before returning, so the
    /// seq is never handed out again, whatever happens next. If that write fails the seq is
    /// skipped anyway (the record may have landed).
    pub fn reserve(&mut self, max_len: usize) -> Result<Reservation, StorageError<F::Error>> {
        self.check_usable()?;
        if max_len == 0 || max_len > MAX_MESSAGE_LEN {
            return Err(StorageError::MessageSize {
                got: max_len,
                max: MAX_MESSAGE_LEN,
            });
        }
        let free = self.queue.free_bytes();
        if max_len > free {
            self.dropped = self.dropped.saturating_add(1);
            return Err(StorageError::QueueFull {
                need: max_len,
                free,
            });
        }
        let current = *self.state.current();
        let seq = current
            .reserved
            .checked_add(1)
            .ok_or(StorageError::SeqExhausted {
                last: current.reserved,
            })?;
        let record = StateRecord {
            reserved: seq,
            last_seq: self.chain.seq,
            last_hash: self.chain.hash,
            released: current.released,
        };
        self.state.append(&mut self.flash, record)?;
        Ok(Reservation {
            seq,
            prev: self.chain.hash,
            max_len,
        })
    }

    /// Queues the signed message for `reservation`; durable when this returns `Ok`, and from
    /// then on the chain head (the next reservation's `prev` is its BLAKE3).
    ///
    /// If a write fails, reads back whether the message is complete in the queue anyway and
    /// answers accordingly; if even that fails, the store refuses further writes with
    /// [`StorageError::NeedsReopen`] until [`EventStore::reopen`].
    pub fn commit(
        &mut self,
        reservation: Reservation,
        message: &[u8],
    ) -> Result<(), StorageError<F::Error>> {
        self.check_usable()?;
        let newest = self.state.current().reserved;
        if reservation.seq != newest {
            return Err(StorageError::StaleReservation {
                got: reservation.seq,
                newest,
            });
        }
        if message.len() > reservation.max_len {
            return Err(StorageError::ExceedsReservation {
                seq: reservation.seq,
                got: message.len(),
                reserved: reservation.max_len,
            });
        }
        let hash = Hash32::blake3(message);
        match self.queue.push(&mut self.flash, reservation.seq, message) {
            Ok(()) => {
                self.chain = ChainPoint {
                    seq: reservation.seq,
                    hash,
                };
                Ok(())
            }
            Err(error) => match self.queue.newest_complete(&mut self.flash) {
                Ok(Some(entry)) if entry.seq() == reservation.seq => {
                    // Every chunk landed despite the error: the message is queued.
                    self.chain = ChainPoint {
                        seq: reservation.seq,
                        hash,
                    };
                    Ok(())
                }
                Ok(_) => Err(error),
                Err(_) => {
                    self.needs_reopen = true;
                    Err(error)
                }
            },
        }
    }

    /// Applies the gateway's receipt (never a broker PUBACK): every message with seq ≤
    /// `receipt` may now be erased when its space is needed. Returns the released seq.
    ///
    /// The receipt is clamped to the newest queued message. It is recorded in the state log
    /// (with the current chain head, as every record is) before the queue may reuse the space it
    /// frees. If power is lost before the record lands, those messages come back after the
    /// reboot and are published again; the gateway stores a message once (SPEC §4). A receipt
    /// that does not advance writes nothing.
    pub fn release_through(&mut self, receipt: u64) -> Result<u64, StorageError<F::Error>> {
        self.check_usable()?;
        let current = *self.state.current();
        let target = receipt.min(self.chain.seq);
        if target <= self.queue.released() {
            return Ok(self.queue.released());
        }
        // `current.released` can be ahead of the queue after a failed append (the record may
        // have landed); records never go backwards.
        let record = StateRecord {
            reserved: current.reserved,
            last_seq: self.chain.seq,
            last_hash: self.chain.hash,
            released: target.max(current.released),
        };
        self.state.append(&mut self.flash, record)?;
        Ok(self.queue.release_through(target))
    }

    /// The oldest queued message not yet covered by a receipt (start of a drain).
    pub fn first_unreleased(&mut self) -> Result<Option<Entry>, StorageError<F::Error>> {
        self.queue.first_unreleased(&mut self.flash)
    }

    /// The oldest queued message with seq above `after` (resume a drain after a broker
    /// reconnect, from the last seq published on this connection).
    pub fn first_after(&mut self, after: u64) -> Result<Option<Entry>, StorageError<F::Error>> {
        self.queue.first_after(&mut self.flash, after)
    }

    /// The queued message after `entry`, in seq order.
    pub fn next(&mut self, entry: &Entry) -> Result<Option<Entry>, StorageError<F::Error>> {
        self.queue.next(&mut self.flash, entry)
    }

    /// Reads a queued message into `buf`; returns its length.
    pub fn read(&mut self, entry: &Entry, buf: &mut [u8]) -> Result<usize, StorageError<F::Error>> {
        self.queue.read(&mut self.flash, entry, buf)
    }

    /// Reads a queued message into a new vector.
    pub fn read_vec(&mut self, entry: &Entry) -> Result<Vec<u8>, StorageError<F::Error>> {
        self.queue.read_vec(&mut self.flash, entry)
    }

    /// The newest message that reached the queue: the next message's `prev` is its hash.
    pub fn chain_head(&self) -> ChainPoint {
        self.chain
    }

    /// The highest seq handed out.
    pub fn last_reserved(&self) -> u64 {
        self.state.current().reserved
    }

    /// The highest receipt applied.
    pub fn released(&self) -> u64 {
        self.queue.released()
    }

    /// The largest message that could be reserved now.
    pub fn free_bytes(&self) -> usize {
        self.queue.free_bytes()
    }

    /// Events refused with [`StorageError::QueueFull`] since boot (RAM only: counting them on
    /// flash would spend writes while the flash is full; report it in a status event).
    pub fn dropped(&self) -> u32 {
        self.dropped
    }

    /// The flash.
    pub fn flash(&self) -> &F {
        &self.flash
    }

    /// The flash, mutable (tests use it to schedule faults).
    pub fn flash_mut(&mut self) -> &mut F {
        &mut self.flash
    }

    /// Gives the flash back.
    pub fn into_flash(self) -> F {
        self.flash
    }

    fn check_usable(&self) -> Result<(), StorageError<F::Error>> {
        if self.needs_reopen {
            Err(StorageError::NeedsReopen)
        } else {
            Ok(())
        }
    }
}

fn check_layout<F: NorFlash>(layout: &Layout) -> Result<(), StorageError<F::Error>> {
    let (a, b) = (&layout.state, &layout.queue);
    if a.start < b.end && b.start < a.end {
        return Err(StorageError::BadRegion {
            start: b.start,
            end: b.end,
            reason: "queue overlaps the state region",
        });
    }
    Ok(())
}
