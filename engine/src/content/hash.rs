//! The hash of one entry: XXH3 (64 bits) with a fixed seed over the table name, the key and
//! the value, each preceded by its length so that no two entries share an input.

use xxhash_rust::xxh3::Xxh3;

/// The seed of every entry hash ("BlueJet" and a format byte): fixed, so that checksums are
/// comparable across copies, builds and machines.
const SEED: u64 = 0x0142_6c75_654a_6574;

/// The hash of an entry `key` → `value` of `table`.
///
/// ```
/// use bluejet_engine::format::content::entry_hash;
/// assert_ne!(entry_hash("a", b"k", b"v"), entry_hash("a", b"k", b"w"));
/// assert_ne!(entry_hash("a", b"kv", b""), entry_hash("a", b"k", b"v"));
/// ```
pub fn entry_hash(table: &str, key: &[u8], value: &[u8]) -> u64 {
    let mut hasher = EntryHasher::new(table, key, value.len() as u64);
    hasher.update(value);
    hasher.finish()
}

/// An entry hash computed from a value read in pieces (a long value, page by page).
pub struct EntryHasher {
    state: Xxh3,
    remaining: u64,
}

impl EntryHasher {
    /// Starts the hash of an entry whose value is `length` bytes long.
    pub fn new(table: &str, key: &[u8], length: u64) -> Self {
        let mut state = Xxh3::with_seed(SEED);
        state.update(&(table.len() as u64).to_le_bytes());
        state.update(table.as_bytes());
        state.update(&(key.len() as u64).to_le_bytes());
        state.update(key);
        state.update(&length.to_le_bytes());
        Self {
            state,
            remaining: length,
        }
    }

    /// Adds the next piece of the value.
    pub fn update(&mut self, piece: &[u8]) {
        assert!(
            piece.len() as u64 <= self.remaining,
            "more value than announced"
        );
        self.remaining -= piece.len() as u64;
        self.state.update(piece);
    }

    /// The hash, once the whole value went in.
    pub fn finish(self) -> u64 {
        assert_eq!(self.remaining, 0, "value shorter than announced");
        self.state.digest()
    }
}
