//! A set of needles that changes one at a time, searched in time that does
//! not depend on how many there are.
//!
//! The process's credential set changes with every token minted and every
//! token that expires; an automaton built over the whole set (Aho-Corasick)
//! would be rebuilt on each change, and that rebuild is what made `serve`
//! slow down as tokens accumulated. Here each needle is filed under its
//! last [`KEY_BYTES`] bytes: a search reads each position's 8-byte window
//! once, asks a 64 Kbit filter, and only on a hit the map, then compares
//! the few needles filed there. Adding or removing a needle is a map
//! insert or removal. Credentials are random at the end (tokens, keys,
//! signatures), so a key rarely holds more than one needle.
//!
//! Needles and the text are compared after [`fold`]: `+` and space are one
//! character, so form encoding's `+` for a space needs no view of its own
//! (a false match redacts a little more, never less).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// Every needle is at least this long; its last this-many bytes are its key.
pub const KEY_BYTES: usize = 8;
const FILTER_BITS: usize = 1 << 16;

/// `+` and space as one, for every comparison.
pub fn fold(b: u8) -> u8 {
    if b == b'+' { b' ' } else { b }
}

/// `bytes` folded; borrowed when nothing changes.
pub fn folded(bytes: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    if bytes.contains(&b'+') {
        bytes.iter().map(|&b| fold(b)).collect::<Vec<u8>>().into()
    } else {
        bytes.into()
    }
}

/// A multiply-and-shift hash: the keys are already 8 bytes of text.
#[derive(Default)]
pub struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }
    fn write_u64(&mut self, key: u64) {
        self.0 = mix(self.0 ^ key);
    }
}

fn mix(key: u64) -> u64 {
    (key ^ (key >> 31)).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// A needle's handle, to remove it again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Slot(u32);

#[derive(Default)]
pub struct Needles {
    by_key: HashMap<u64, Vec<u32>, BuildHasherDefault<KeyHasher>>,
    slots: Vec<Option<Box<[u8]>>>,
    free: Vec<u32>,
    /// One bit per hashed key; rebuilt after removals.
    filter: Vec<u64>,
    filter_stale: bool,
    longest: usize,
    count: usize,
}

fn key_of(window: &[u8]) -> u64 {
    let mut key = [0u8; KEY_BYTES];
    key.copy_from_slice(window);
    u64::from_le_bytes(key)
}

fn filter_bit(key: u64) -> usize {
    (mix(key) >> 48) as usize
}

impl Needles {
    /// How many needles there are.
    pub fn len(&self) -> usize {
        self.count
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The longest needle's length in bytes.
    pub fn longest(&self) -> usize {
        self.longest
    }

    /// File `needle` (at least [`KEY_BYTES`] long; shorter ones are refused).
    pub fn insert(&mut self, needle: &[u8]) -> Option<Slot> {
        if needle.len() < KEY_BYTES {
            return None;
        }
        let needle: Box<[u8]> = needle.iter().map(|&b| fold(b)).collect();
        let key = key_of(&needle[needle.len() - KEY_BYTES..]);
        self.longest = self.longest.max(needle.len());
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot as usize] = Some(needle);
                slot
            }
            None => {
                self.slots.push(Some(needle));
                (self.slots.len() - 1) as u32
            }
        };
        self.by_key.entry(key).or_default().push(slot);
        if self.filter.is_empty() {
            self.filter = vec![0; FILTER_BITS / 64];
        }
        let bit = filter_bit(key);
        self.filter[bit / 64] |= 1 << (bit % 64);
        self.count += 1;
        Some(Slot(slot))
    }

    /// Forget a needle. The filter and the longest length are brought up to
    /// date by [`tidy`](Self::tidy), once after a batch of removals.
    pub fn remove(&mut self, Slot(slot): Slot) {
        let Some(needle) = self.slots.get_mut(slot as usize).and_then(Option::take) else {
            return;
        };
        let key = key_of(&needle[needle.len() - KEY_BYTES..]);
        if let Some(filed) = self.by_key.get_mut(&key) {
            filed.retain(|&s| s != slot);
            if filed.is_empty() {
                self.by_key.remove(&key);
            }
        }
        self.free.push(slot);
        self.count -= 1;
        self.filter_stale = true;
    }

    /// The filter and the longest length again, after removals: `O(needles)`.
    pub fn tidy(&mut self) {
        if !self.filter_stale {
            return;
        }
        self.filter_stale = false;
        self.filter.iter_mut().for_each(|word| *word = 0);
        for key in self.by_key.keys() {
            let bit = filter_bit(*key);
            self.filter[bit / 64] |= 1 << (bit % 64);
        }
        self.longest = self
            .slots
            .iter()
            .flatten()
            .map(|n| n.len())
            .max()
            .unwrap_or(0);
        if self.free.len() == self.slots.len() {
            self.slots.clear();
            self.free.clear();
        }
    }

    /// Push the `(start, end)` of every needle in `view` (already folded).
    pub fn find(&self, view: &[u8], found: &mut Vec<(usize, usize)>) {
        if self.count == 0 || view.len() < KEY_BYTES {
            return;
        }
        for end in KEY_BYTES..=view.len() {
            let key = key_of(&view[end - KEY_BYTES..end]);
            let bit = filter_bit(key);
            if self.filter[bit / 64] & (1 << (bit % 64)) == 0 {
                continue;
            }
            let Some(filed) = self.by_key.get(&key) else {
                continue;
            };
            for &slot in filed {
                if let Some(needle) = &self.slots[slot as usize]
                    && end >= needle.len()
                    && view[end - needle.len()..end] == needle[..]
                {
                    found.push((end - needle.len(), end));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spans(needles: &Needles, text: &str) -> Vec<(usize, usize)> {
        let mut found = Vec::new();
        needles.find(&folded(text.as_bytes()), &mut found);
        found
    }

    #[test]
    fn finds_every_needle_and_forgets_removed_ones() {
        let mut needles = Needles::default();
        let a = needles.insert(b"secret-one-1234").unwrap();
        needles.insert(b"another secret").unwrap();
        // Same key (last 8 bytes) as the first: both are compared.
        needles.insert(b"ret-one-1234").unwrap();
        assert_eq!(needles.insert(b"short"), None);
        let text = "a secret-one-1234 and another+secret";
        assert_eq!(spans(&needles, text), [(2, 17), (5, 17), (22, 36)]);
        needles.remove(a);
        needles.tidy();
        assert_eq!(spans(&needles, text), [(5, 17), (22, 36)]);
        assert_eq!(needles.len(), 2);
        assert_eq!(needles.longest(), 14);
    }

    #[test]
    fn slots_are_reused_so_churn_does_not_grow_the_set() {
        let mut needles = Needles::default();
        for round in 0..10_000 {
            let slot = needles
                .insert(format!("token-{round:012}").as_bytes())
                .unwrap();
            needles.remove(slot);
        }
        needles.tidy();
        assert!(needles.is_empty());
        assert!(needles.slots.is_empty() && needles.by_key.is_empty());
    }
}
