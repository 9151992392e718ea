//! The keys of a node being changed, with the first eight bytes of each kept beside them.
//!
//! A binary search over separately allocated keys misses the CPU cache at every probe; the
//! prefixes, in one array, settle almost every comparison without touching the key.

use std::cmp::Ordering;
use std::ops::{Index, Range};

/// Keys in ascending order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Keys {
    keys: Vec<Vec<u8>>,
    prefixes: Vec<u64>,
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
    /// Keys from a vector already in order.
    pub fn from_vec(keys: Vec<Vec<u8>>) -> Self {
        let prefixes = keys.iter().map(|key| prefix(key)).collect();
        Self { keys, prefixes }
    }

    /// The keys as a vector.
    pub fn into_vec(self) -> Vec<Vec<u8>> {
        self.keys
    }

    /// The keys as a slice.
    pub fn as_slice(&self) -> &[Vec<u8>] {
        &self.keys
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The keys in order.
    pub fn iter(&self) -> std::slice::Iter<'_, Vec<u8>> {
        self.keys.iter()
    }

    /// Binary search: `Ok(index)` of `key`, or `Err(index)` where it would go.
    pub fn search(&self, key: &[u8]) -> Result<usize, usize> {
        let wanted = prefix(key);
        let (mut low, mut high) = (0, self.keys.len());
        while low < high {
            let middle = (low + high) / 2;
            let order = match self.prefixes[middle].cmp(&wanted) {
                Ordering::Equal => self.keys[middle].as_slice().cmp(key),
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

    /// Inserts `key` at `index`.
    pub fn insert(&mut self, index: usize, key: Vec<u8>) {
        self.prefixes.insert(index, prefix(&key));
        self.keys.insert(index, key);
    }

    /// Removes the key at `index`.
    pub fn remove(&mut self, index: usize) -> Vec<u8> {
        self.prefixes.remove(index);
        self.keys.remove(index)
    }

    /// Appends a key greater than every other.
    pub fn push(&mut self, key: Vec<u8>) {
        self.prefixes.push(prefix(&key));
        self.keys.push(key);
    }

    /// Removes the last key.
    pub fn pop(&mut self) -> Option<Vec<u8>> {
        self.prefixes.pop();
        self.keys.pop()
    }

    /// Replaces the key at `index`; returns the old one.
    pub fn replace(&mut self, index: usize, key: Vec<u8>) -> Vec<u8> {
        self.prefixes[index] = prefix(&key);
        std::mem::replace(&mut self.keys[index], key)
    }

    /// Splits off the keys from `at`.
    pub fn split_off(&mut self, at: usize) -> Keys {
        Keys {
            keys: self.keys.split_off(at),
            prefixes: self.prefixes.split_off(at),
        }
    }

    /// Appends keys all greater than these.
    pub fn append(&mut self, other: Keys) {
        self.keys.extend(other.keys);
        self.prefixes.extend(other.prefixes);
    }

    /// Replaces the keys in `range` with `keys`.
    pub fn splice(&mut self, range: Range<usize>, keys: Vec<Vec<u8>>) {
        self.prefixes
            .splice(range.clone(), keys.iter().map(|key| prefix(key)));
        self.keys.splice(range, keys);
    }
}

impl Index<usize> for Keys {
    type Output = Vec<u8>;

    fn index(&self, index: usize) -> &Vec<u8> {
        &self.keys[index]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
