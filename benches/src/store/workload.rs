//! The keys, values and read positions of a run, drawn once from a fixed seed before any
//! engine runs: every engine gets exactly the same records in the same order, and drawing
//! them costs no engine any measured time.

use rand::{Rng, RngCore, SeedableRng};
use rand_pcg::Pcg64;

/// Bytes of a key, as in the redb benchmark.
pub const KEY_BYTES: usize = 24;
/// Bytes of a value, as in the redb benchmark.
pub const VALUE_BYTES: usize = 150;
/// Raw bytes of one entry, the yardstick of the size ratio.
pub const RECORD_BYTES: usize = KEY_BYTES + VALUE_BYTES;
/// The one seed: runs are reproducible and comparable across machines.
pub const SEED: u64 = 0xB1E5_7E70;

/// One key and its value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Random key.
    pub key: [u8; KEY_BYTES],
    /// Random value.
    pub value: [u8; VALUE_BYTES],
}

/// How much each phase does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape {
    /// Inserts of the bulk load.
    pub keys: usize,
    /// Durable single-insert commits on one thread.
    pub single_commits: usize,
    /// Durable commits of the batched phase.
    pub batches: usize,
    /// Inserts per batch.
    pub batch_size: usize,
    /// Threads committing at once.
    pub threads: usize,
    /// Durable single-insert commits per thread.
    pub commits_per_thread: usize,
    /// Point reads of loaded keys (per thread count, split between the threads).
    pub reads: usize,
    /// Range reads starting at loaded keys.
    pub ranges: usize,
    /// Entries per range read.
    pub range_length: usize,
}

impl Shape {
    /// The benchmark's shape with `keys` inserts in the bulk load.
    pub fn standard(keys: usize) -> Self {
        Self {
            keys,
            single_commits: 1_000,
            batches: 100,
            batch_size: 1_000,
            threads: 8,
            commits_per_thread: 1_000,
            reads: 1_000_000,
            ranges: 200_000,
            range_length: 10,
        }
    }

    /// A few of everything: for tests of the adapters and the phases.
    pub fn tiny() -> Self {
        Self {
            keys: 200,
            single_commits: 5,
            batches: 3,
            batch_size: 10,
            threads: 3,
            commits_per_thread: 4,
            reads: 300,
            ranges: 50,
            range_length: 10,
        }
    }

    /// Keys removed in the removal phase: the first half of the loaded ones.
    pub fn removals(&self) -> usize {
        self.keys / 2
    }
}

/// Everything the phases insert and look up, in the order they use it.
pub struct Dataset {
    /// What it was drawn for.
    pub shape: Shape,
    /// Inserted by the bulk load.
    pub loaded: Vec<Record>,
    /// Inserted one per commit.
    pub singles: Vec<Record>,
    /// Inserted `batch_size` per commit.
    pub batched: Vec<Record>,
    /// Inserted one per commit, `commits_per_thread` by each thread.
    pub concurrent: Vec<Record>,
    /// Indices into `loaded` of the point reads.
    pub read_picks: Vec<usize>,
    /// Indices into `loaded` of the range reads' first keys.
    pub range_picks: Vec<usize>,
}

impl Dataset {
    /// Draws every record and pick of `shape` from [`SEED`].
    pub fn generate(shape: &Shape) -> Self {
        let mut rng = Pcg64::seed_from_u64(SEED);
        Self {
            shape: *shape,
            loaded: records(&mut rng, shape.keys),
            singles: records(&mut rng, shape.single_commits),
            batched: records(&mut rng, shape.batches * shape.batch_size),
            concurrent: records(&mut rng, shape.threads * shape.commits_per_thread),
            read_picks: picks(&mut rng, shape.reads, shape.keys),
            range_picks: picks(&mut rng, shape.ranges, shape.keys),
        }
    }
}

/// `count` records of random bytes.
fn records(rng: &mut Pcg64, count: usize) -> Vec<Record> {
    (0..count)
        .map(|_| {
            let mut record = Record {
                key: [0; KEY_BYTES],
                value: [0; VALUE_BYTES],
            };
            rng.fill_bytes(&mut record.key);
            rng.fill_bytes(&mut record.value);
            record
        })
        .collect()
}

/// `count` uniform indices below `below`.
fn picks(rng: &mut Pcg64, count: usize, below: usize) -> Vec<usize> {
    (0..count).map(|_| rng.random_range(0..below)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_draws_the_same_data() {
        let first = Dataset::generate(&Shape::tiny());
        let second = Dataset::generate(&Shape::tiny());
        assert_eq!(first.loaded, second.loaded);
        assert_eq!(first.read_picks, second.read_picks);
    }

    #[test]
    fn the_phases_draw_distinct_keys() {
        let data = Dataset::generate(&Shape::tiny());
        let mut keys: Vec<_> = [&data.loaded, &data.singles, &data.batched, &data.concurrent]
            .into_iter()
            .flatten()
            .map(|record| record.key)
            .collect();
        let drawn = keys.len();
        keys.sort_unstable();
        keys.dedup();
        assert_eq!(keys.len(), drawn);
    }
}
