//! The memory store's claimed nonces: a sharded open-addressing table built so that a claim
//! touches one cache line. Tables of millions of entries miss the cache on nearly every
//! claim; a general-purpose table that keeps its control bytes apart from its slots misses
//! twice. Here the slots to compare sit in one 64-byte bucket, and a probe walks on to the
//! next bucket, which the hardware prefetches.
//!
//! A nonce is kept as a 128-bit fingerprint: two independently keyed 64-bit hashes of its
//! bytes. The first places the entry (and places it again when a shard is rebuilt), the
//! second tells apart nonces that share the first. Two different nonces share both with
//! odds of about 2^-128 per pair; such a meeting could only make a fresh nonce look
//! replayed, never let a replay through, since one nonce always has one fingerprint. The
//! keys are per process and random, so callers who choose nonces cannot aim them at one
//! slot. Nothing is on the heap per entry: no allocation per claim, none to free in a sweep.
//!
//! An expired entry is as good as absent: a claim of its nonce is fresh and overwrites it,
//! and a claim of another nonce may take its slot. A sweep deletes expired entries the
//! way linear probing allows, moving later entries of the same run back so that no probe
//! chain is left cut. A shard grows only when its live entries need the room.

use std::sync::{Mutex, MutexGuard};

// aHash with per-process random keys: several times faster than SipHash on short keys and
// still keyed.
use ahash::RandomState;

use super::memory::poisoned;
use crate::error::Result;
use crate::model::Claim;

pub(crate) const SHARDS: usize = 256;
const SLOTS: usize = 2;
const MIN_BUCKETS: usize = 8;

/// One entry; all zeroes marks a slot never used. Times are microseconds since the epoch.
#[derive(Clone, Copy, Default)]
struct Slot {
    hash: u64,
    check: u64,
    expires_at: i64,
}

impl Slot {
    fn is_empty(&self) -> bool {
        self.hash == 0 && self.check == 0
    }
}

/// The slots one probe step compares: one cache line.
#[derive(Clone, Copy, Default)]
#[repr(align(64))]
struct Bucket([Slot; SLOTS]);

/// One shard: a power-of-two number of buckets, probed linearly from the bucket the hash's
/// low bits name. `filled` counts the filled slots, live or expired; it stays at most three
/// quarters of the slots, so every probe meets an empty slot.
#[derive(Default)]
struct Shard {
    buckets: Vec<Bucket>,
    filled: usize,
}

impl Shard {
    fn claim(&mut self, hash: u64, check: u64, expires_at: i64, now: i64) -> Claim {
        if (self.filled + 1) * 4 > self.buckets.len() * SLOTS * 3 {
            self.make_room(now);
        }
        let mask = self.buckets.len() - 1;
        let mut b = hash as usize & mask;
        // The first slot a new entry may take: an expired one, else the empty one that ends
        // the probe. The probe must still run to that end, in case the nonce is further on.
        let mut free = None;
        loop {
            for s in 0..SLOTS {
                let slot = &mut self.buckets[b].0[s];
                if slot.hash == hash && slot.check == check {
                    if slot.expires_at > now {
                        return Claim::Replayed;
                    }
                    slot.expires_at = expires_at;
                    return Claim::Fresh;
                }
                if slot.is_empty() {
                    let (fb, fs) = free.unwrap_or((b, s));
                    if free.is_none() {
                        self.filled += 1;
                    }
                    self.buckets[fb].0[fs] = Slot { hash, check, expires_at };
                    return Claim::Fresh;
                }
                if free.is_none() && slot.expires_at <= now {
                    free = Some((b, s));
                }
            }
            b = (b + 1) & mask;
        }
    }

    fn used(&self, hash: u64, check: u64, now: i64) -> bool {
        if self.buckets.is_empty() {
            return false;
        }
        let mask = self.buckets.len() - 1;
        let mut b = hash as usize & mask;
        loop {
            for slot in &self.buckets[b].0 {
                if slot.hash == hash && slot.check == check {
                    return slot.expires_at > now;
                }
                if slot.is_empty() {
                    return false;
                }
            }
            b = (b + 1) & mask;
        }
    }

    fn live(&self, now: i64) -> impl Iterator<Item = &Slot> {
        self.buckets.iter().flat_map(|b| &b.0).filter(move |s| !s.is_empty() && s.expires_at > now)
    }

    /// Frees slots for a new entry: drops the expired entries in place, then grows if the
    /// live ones alone fill more than eleven sixteenths of the shard. A shard never
    /// shrinks, so one whose live set comes and goes is not rebuilt over and over; its
    /// memory follows the largest live set it has held.
    fn make_room(&mut self, now: i64) {
        self.sweep(now);
        if (self.filled + 1) * 16 > self.buckets.len() * SLOTS * 11 {
            self.grow();
        }
    }

    /// Moves every entry into a table where they and one more fill at most half.
    fn grow(&mut self) {
        let buckets = ((self.filled + 1) * 2).div_ceil(SLOTS).next_power_of_two().max(MIN_BUCKETS);
        let old = std::mem::replace(&mut self.buckets, vec![Bucket::default(); buckets]);
        self.filled = 0;
        for entry in old.iter().flat_map(|b| &b.0).filter(|s| !s.is_empty()) {
            self.place(*entry);
        }
    }

    /// Puts an entry known to be absent in the first empty slot of its probe.
    fn place(&mut self, entry: Slot) {
        let mask = self.buckets.len() - 1;
        let mut b = entry.hash as usize & mask;
        loop {
            if let Some(slot) = self.buckets[b].0.iter_mut().find(|s| s.is_empty()) {
                *slot = entry;
                self.filled += 1;
                return;
            }
            b = (b + 1) & mask;
        }
    }

    /// Deletes the expired entries in place, keeping the shard's size. Returns how many
    /// went.
    fn sweep(&mut self, now: i64) -> u64 {
        let mut removed = 0;
        for p in 0..self.buckets.len() * SLOTS {
            // What moves into the freed slot may have expired too.
            while self.slot(p).is_some_and(|s| s.expires_at <= now) {
                self.delete_at(p);
                removed += 1;
            }
        }
        self.filled -= removed;
        removed as u64
    }

    /// Empties the slot at flat position `hole` without cutting a probe chain: the entries
    /// after it, up to the next empty slot, move back into the hole when their probe
    /// starts at or before it (the classic deletion for linear probing, over slots in probe
    /// order; an entry's probe starts at the first slot of its home bucket).
    fn delete_at(&mut self, mut hole: usize) {
        let slots = self.buckets.len() * SLOTS;
        let mask = self.buckets.len() - 1;
        let mut next = hole;
        loop {
            next = (next + 1) % slots;
            let Some(entry) = self.slot(next) else { break };
            let home = (entry.hash as usize & mask) * SLOTS;
            // Whether the entry's probe starts after the hole, going round from the hole
            // to the entry: then it must stay where it is.
            let starts_after_hole =
                if hole <= next { hole < home && home <= next } else { home > hole || home <= next };
            if !starts_after_hole {
                self.buckets[hole / SLOTS].0[hole % SLOTS] = entry;
                hole = next;
            }
        }
        self.buckets[hole / SLOTS].0[hole % SLOTS] = Slot::default();
    }

    /// The entry at flat position `p`, if any.
    fn slot(&self, p: usize) -> Option<Slot> {
        Some(self.buckets[p / SLOTS].0[p % SLOTS]).filter(|s| !s.is_empty())
    }
}

/// Claimed nonces in shards, so concurrent claimers rarely meet on one lock.
pub(crate) struct NonceTable {
    shards: Vec<Mutex<Shard>>,
    placement: RandomState,
    check: RandomState,
}

impl std::fmt::Debug for NonceTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NonceTable")
    }
}

impl NonceTable {
    pub(crate) fn new() -> NonceTable {
        NonceTable {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            placement: RandomState::new(),
            check: RandomState::new(),
        }
    }

    /// The nonce's fingerprint (never all zeroes) and its shard, locked. The shard comes
    /// from the high half of the placing hash, the bucket from the low bits.
    fn locate(&self, nonce: &str) -> Result<(u64, u64, MutexGuard<'_, Shard>)> {
        let hash = self.placement.hash_one(nonce);
        let check = self.check.hash_one(nonce).max(1);
        let shard = &self.shards[(hash >> 32) as usize % SHARDS];
        Ok((hash, check, lock(shard)?))
    }

    /// Claims `nonce` until `expires_at`, both in microseconds since the epoch.
    pub(crate) fn claim(&self, nonce: &str, expires_at: i64, now: i64) -> Result<Claim> {
        let (hash, check, mut shard) = self.locate(nonce)?;
        Ok(shard.claim(hash, check, expires_at, now))
    }

    pub(crate) fn used(&self, nonce: &str, now: i64) -> Result<bool> {
        let (hash, check, shard) = self.locate(nonce)?;
        Ok(shard.used(hash, check, now))
    }

    pub(crate) fn count_live(&self, now: i64) -> Result<u64> {
        let mut total = 0;
        for shard in &self.shards {
            total += lock(shard)?.live(now).count() as u64;
        }
        Ok(total)
    }

    /// Deletes the expired entries of one shard; returns how many there were.
    pub(crate) fn delete_expired_in(&self, shard: usize, now: i64) -> Result<u64> {
        Ok(lock(&self.shards[shard])?.sweep(now))
    }
}

#[cfg(test)]
impl NonceTable {
    fn slots(&self) -> usize {
        self.shards.iter().map(|s| s.lock().unwrap().buckets.len() * SLOTS).sum()
    }
}

fn lock(shard: &Mutex<Shard>) -> Result<MutexGuard<'_, Shard>> {
    shard.lock().map_err(|_| poisoned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000_000_000;
    const LATER: i64 = NOW + 300_000_000;

    #[test]
    fn many_similar_nonces_are_told_apart() {
        let table = NonceTable::new();
        let nonces: Vec<String> = (0..200_000).map(|i| format!("n-{i}")).collect();
        assert!(nonces.iter().all(|n| table.claim(n, LATER, NOW).unwrap() == Claim::Fresh));
        assert!(nonces.iter().all(|n| table.claim(n, LATER, NOW).unwrap() == Claim::Replayed));
        assert!(nonces.iter().all(|n| table.used(n, NOW).unwrap()));
        assert!(!table.used("n-200000", NOW).unwrap());
        assert_eq!(table.count_live(NOW).unwrap(), 200_000);
    }

    #[test]
    fn expired_entries_are_absent_and_swept_once() {
        let table = NonceTable::new();
        for i in 0..50_000 {
            table.claim(&format!("old-{i}"), NOW + 1, NOW).unwrap();
            table.claim(&format!("kept-{i}"), LATER, NOW).unwrap();
        }
        let after = NOW + 1;
        // Nonces placed behind entries that have since expired are still found.
        assert!((0..50_000).all(|i| table.claim(&format!("kept-{i}"), LATER, after).unwrap() == Claim::Replayed));
        // An expired nonce claims fresh again, and new nonces reuse expired slots without
        // hiding the entries whose probes pass through them.
        assert_eq!(table.claim("old-7", LATER, after).unwrap(), Claim::Fresh);
        for i in 0..50_000 {
            assert_eq!(table.claim(&format!("new-{i}"), LATER, after).unwrap(), Claim::Fresh);
        }
        assert_eq!(table.claim("old-7", LATER, after).unwrap(), Claim::Replayed);
        assert!((0..50_000).all(|i| table.claim(&format!("new-{i}"), LATER, after).unwrap() == Claim::Replayed));
        assert_eq!(table.count_live(after).unwrap(), 100_001);
        let swept: u64 = (0..SHARDS).map(|s| table.delete_expired_in(s, after).unwrap()).sum();
        let again: u64 = (0..SHARDS).map(|s| table.delete_expired_in(s, after).unwrap()).sum();
        // Expired entries taken over by new claims are gone already; the rest go once.
        assert!(swept > 0 && swept < 50_000, "{swept}");
        assert_eq!(again, 0);
        assert_eq!(table.count_live(after).unwrap(), 100_001);
        assert!((0..50_000).all(|i| table.used(&format!("kept-{i}"), after).unwrap()));
        assert!(table.used("old-7", after).unwrap() && !table.used("old-8", after).unwrap());
        assert!((0..50_000).all(|i| table.used(&format!("new-{i}"), after).unwrap()));
    }

    #[test]
    fn a_steady_live_set_keeps_its_memory_without_sweeps() {
        let table = NonceTable::new();
        let mut sizes = Vec::new();
        // Time moves one tick per claim and every nonce lives 200,000 ticks: the live set
        // stays at 200,000 while two million nonces pass through.
        for k in 0..2_000_000i64 {
            let claim = table.claim(&format!("n-{k}"), NOW + k + 200_000, NOW + k).unwrap();
            assert_eq!(claim, Claim::Fresh);
            if k % 100_000 == 0 {
                sizes.push(table.slots());
            }
        }
        assert_eq!(sizes[5], sizes[19], "{sizes:?}");
        assert!(sizes[19] <= 4 * 200_000, "{} slots for 200,000 live nonces", sizes[19]);
        assert_eq!(table.count_live(NOW + 1_999_999).unwrap(), 200_000);
    }

    /// Small shards wrap their probes round the end often; a plain map says what every
    /// answer must be through claims, expiries and sweeps.
    #[test]
    fn answers_match_a_plain_map_through_claims_and_sweeps() {
        let table = NonceTable::new();
        let mut model: std::collections::HashMap<String, i64> = std::collections::HashMap::new();
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut random = move |bound: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % bound
        };
        let mut now = NOW;
        for step in 0..300_000 {
            now += random(3) as i64;
            let nonce = format!("m-{}", random(6_000));
            let expires_at = now + 1 + random(6_000) as i64;
            let fresh = model.get(&nonce).is_none_or(|&until| until <= now);
            if fresh {
                model.insert(nonce.clone(), expires_at);
            }
            let expected = if fresh { Claim::Fresh } else { Claim::Replayed };
            assert_eq!(table.claim(&nonce, expires_at, now).unwrap(), expected, "step {step}, {nonce}");
            if step % 1_000 == 0 {
                for shard in 0..SHARDS {
                    table.delete_expired_in(shard, now).unwrap();
                }
                model.retain(|_, until| *until > now);
                assert_eq!(table.count_live(now).unwrap(), model.len() as u64, "step {step}");
                for (nonce, _) in model.iter() {
                    assert!(table.used(nonce, now).unwrap(), "step {step}: {nonce} lost");
                }
            }
        }
    }
}
