//! The keys of a node being changed: their bytes in one buffer, with the first eight bytes
//! of each kept beside them.
//!
//! One buffer instead of one allocation per key makes copying a page for change (hundreds
//! of keys in a branch) a few allocations; the prefixes, in one array, settle almost every
//! comparison of a binary search without touching the key bytes.

use std::cmp::Ordering;
use std::ops::{Index, Range};

/// Keys in ascending order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Keys {
    /// Every key's bytes, in order.
    bytes: Vec<u8>,
    /// Where each key starts in `bytes`; it ends where the next starts.
    starts: Vec<u32>,
    prefixes: Vec<u64>,
}

/// A key's start in the buffer as stored.
fn key_offset(at: usize) -> u32 {
    u32::try_from(at).expect("a node's key bytes fit u32: a node holds a few pages' worth of keys")
}

/// The first eight bytes, big-endian and zero-padded: ordered like the keys themselves
/// (equal prefixes compare the whole keys).
fn prefix(key: &[u8]) -> u64 {
    let mut bytes = [0u8; 8];
    let length = key.len().min(8);
    bytes[..length].copy_from_slice(&key[..length]);
    u64::from_be_bytes(bytes)
}

impl Keys {
    /// Keys from an iterator already in order.
    pub fn from_keys<'k>(keys: impl IntoIterator<Item = &'k [u8]>) -> Self {
        Self::from_keys_sized(keys, 0, 0)
    }

    /// Keys from an iterator already in order, with room reserved for `count` keys of
    /// `bytes` bytes in all (hints: a copy of a page's keys then allocates three times, not
    /// once per doubling).
    pub fn from_keys_sized<'k>(
        keys: impl IntoIterator<Item = &'k [u8]>,
        count: usize,
        bytes: usize,
    ) -> Self {
        let mut all = Self {
            bytes: Vec::with_capacity(bytes),
            starts: Vec::with_capacity(count),
            prefixes: Vec::with_capacity(count),
        };
        for key in keys {
            all.starts.push(key_offset(all.bytes.len()));
            all.prefixes.push(prefix(key));
            all.bytes.extend_from_slice(key);
        }
        all
    }

    /// Keys from a vector already in order.
    pub fn from_vec(keys: Vec<Vec<u8>>) -> Self {
        Self::from_keys(keys.iter().map(Vec::as_slice))
    }

    /// The keys as separate vectors.
    pub fn into_vec(self) -> Vec<Vec<u8>> {
        self.iter().map(<[u8]>::to_vec).collect()
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.starts.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.starts.is_empty()
    }

    fn span(&self, index: usize) -> Range<usize> {
        let start = self.starts[index] as usize;
        let end = self
            .starts
            .get(index + 1)
            .map_or(self.bytes.len(), |&end| end as usize);
        start..end
    }

    /// The keys in order.
    pub fn iter(&self) -> impl Iterator<Item = &[u8]> + '_ {
        (0..self.len()).map(|index| &self[index])
    }

    /// Binary search: `Ok(index)` of `key`, or `Err(index)` where it would go.
    pub fn search(&self, key: &[u8]) -> Result<usize, usize> {
        let wanted = prefix(key);
        let (mut low, mut high) = (0, self.len());
        while low < high {
            let middle = (low + high) / 2;
            let order = match self.prefixes[middle].cmp(&wanted) {
                Ordering::Equal => self[middle].cmp(key),
                order => order,
            };
            match order {
                Ordering::Less => low = middle + 1,
                Ordering::Greater => high = middle,
                Ordering::Equal => return Ok(middle),
            }
        }
        Err(low)
    }

    /// Shifts the starts of keys from `index` on by `delta` bytes.
    fn shift(&mut self, index: usize, delta: isize) {
        for start in &mut self.starts[index..] {
            *start = key_offset(
                usize::try_from(*start as isize + delta).expect("a key starts inside the buffer"),
            );
        }
    }

    /// Inserts `key` at `index`.
    pub fn insert(&mut self, index: usize, key: Vec<u8>) {
        let at = self
            .starts
            .get(index)
            .map_or(self.bytes.len(), |&s| s as usize);
        self.bytes.splice(at..at, key.iter().copied());
        self.shift(index, key.len() as isize);
        self.starts.insert(index, key_offset(at));
        self.prefixes.insert(index, prefix(&key));
    }

    /// Removes the key at `index`.
    pub fn remove(&mut self, index: usize) -> Vec<u8> {
        let span = self.span(index);
        let key: Vec<u8> = self.bytes.drain(span.clone()).collect();
        self.starts.remove(index);
        self.prefixes.remove(index);
        self.shift(index, -(span.len() as isize));
        key
    }

    /// Appends a key greater than every other.
    pub fn push(&mut self, key: Vec<u8>) {
        debug_assert!(
            self.is_empty() || self[self.len() - 1] < *key,
            "keys out of order"
        );
        self.starts.push(key_offset(self.bytes.len()));
        self.prefixes.push(prefix(&key));
        self.bytes.extend_from_slice(&key);
    }

    /// Removes the last key.
    pub fn pop(&mut self) -> Option<Vec<u8>> {
        let start = self.starts.pop()? as usize;
        self.prefixes.pop();
        Some(self.bytes.split_off(start))
    }

    /// Replaces the key at `index`; returns the old one.
    pub fn replace(&mut self, index: usize, key: Vec<u8>) -> Vec<u8> {
        let span = self.span(index);
        let old: Vec<u8> = self
            .bytes
            .splice(span.clone(), key.iter().copied())
            .collect();
        self.shift(index + 1, key.len() as isize - span.len() as isize);
        self.prefixes[index] = prefix(&key);
        old
    }

    /// Splits off the keys from `at`.
    pub fn split_off(&mut self, at: usize) -> Keys {
        if at == self.len() {
            return Keys::default();
        }
        let first = self.starts[at];
        let mut starts = self.starts.split_off(at);
        for start in &mut starts {
            *start -= first;
        }
        Keys {
            bytes: self.bytes.split_off(first as usize),
            starts,
            prefixes: self.prefixes.split_off(at),
        }
    }

    /// Appends keys all greater than these.
    pub fn append(&mut self, other: Keys) {
        let base = key_offset(self.bytes.len());
        self.starts
            .extend(other.starts.iter().map(|start| start + base));
        self.bytes.extend_from_slice(&other.bytes);
        self.prefixes.extend(other.prefixes);
    }

    /// Replaces the keys in `range` with `keys`.
    pub fn splice(&mut self, range: Range<usize>, keys: Vec<Vec<u8>>) {
        let mut tail = self.split_off(range.end);
        self.split_off(range.start);
        for key in keys {
            self.push(key);
        }
        self.append(std::mem::take(&mut tail));
    }
}

impl Index<usize> for Keys {
    type Output = [u8];

    fn index(&self, index: usize) -> &[u8] {
        &self.bytes[self.span(index)]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edits_keep_every_key_where_it_belongs() {
        let mut keys = Keys::from_vec(vec![b"b".to_vec(), b"dd".to_vec(), b"f".to_vec()]);
        keys.insert(0, b"a".to_vec());
        keys.insert(2, b"ccc".to_vec());
        keys.push(b"g".to_vec());
        assert_eq!(keys.remove(3), b"dd");
        assert_eq!(keys.replace(1, b"bbbb".to_vec()), b"b");
        let tail = keys.split_off(3);
        keys.splice(1..2, vec![b"b1".to_vec(), b"b2".to_vec()]);
        keys.append(tail);
        assert_eq!(keys.pop(), Some(b"g".to_vec()));
        let expected: Vec<&[u8]> = vec![b"a", b"b1", b"b2", b"ccc", b"f"];
        assert_eq!(keys.iter().collect::<Vec<_>>(), expected);
        assert_eq!(keys.search(b"ccc"), Ok(3));
        assert_eq!(keys.search(b"d"), Err(4));
    }

    #[test]
    fn search_agrees_with_a_plain_binary_search() {
        let mut all: Vec<Vec<u8>> = vec![
            b"".to_vec(),
            b"a".to_vec(),
            b"a\0".to_vec(),
            b"a\0\0\0\0\0\0\0\0".to_vec(),
            b"a\x01".to_vec(),
            b"abcdefgh".to_vec(),
            b"abcdefghi".to_vec(),
            b"abcdefgi".to_vec(),
            b"b".to_vec(),
        ];
        all.sort();
        let keys = Keys::from_vec(all.clone());
        let probes =
            all.iter()
                .cloned()
                .chain([b"a\0\0".to_vec(), b"abcdefgha".to_vec(), b"c".to_vec()]);
        for probe in probes {
            assert_eq!(keys.search(&probe), all.binary_search(&probe), "{probe:?}");
        }
    }
}
