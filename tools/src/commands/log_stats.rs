//! `log dump --stats`: what a range of the log holds, summed up as pg_waldump's `--stats`
//! does: records by kind, transactions, commit rate and bytes per generation.

use crate::output;
use crate::records::{kind_name, RecordRow};
use bluejet_engine::format::record::kind;
use serde::Serialize;
use std::collections::BTreeMap;

/// Records of one kind.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct KindStats {
    /// How many.
    pub count: u64,
    /// Their framed bytes (header and payload).
    pub bytes: u64,
}

/// Records of one generation.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct GenerationStats {
    /// The generation.
    pub generation: u32,
    /// Records in the range from it.
    pub records: u64,
    /// Their framed bytes.
    pub bytes: u64,
}

/// The statistics of the records of a range.
#[derive(Clone, Debug, Default, Serialize)]
pub struct LogStats {
    /// Records counted.
    pub records: u64,
    /// Their framed bytes.
    pub bytes: u64,
    /// Count and bytes by kind name (`put`, `commit`...).
    pub by_kind: BTreeMap<String, KindStats>,
    /// Commit records: transactions committed.
    pub transactions_committed: u64,
    /// Rollback records: transactions rolled back.
    pub transactions_rolled_back: u64,
    /// The earliest commit time in the range (µs since the Unix epoch).
    pub first_commit_micros: Option<u64>,
    /// The latest commit time in the range.
    pub last_commit_micros: Option<u64>,
    /// Commits over the time between the first and the last commit (`None` with fewer than
    /// two distinct commit times).
    pub commits_per_second: Option<f64>,
    /// Records and bytes per generation, in order.
    pub generations: Vec<GenerationStats>,
}

impl LogStats {
    /// Counts one record.
    pub fn add(&mut self, row: &RecordRow) {
        let bytes = row.encoded_bytes as u64;
        self.records += 1;
        self.bytes += bytes;
        let by_kind = self.by_kind.entry(kind_name(row.kind)).or_default();
        by_kind.count += 1;
        by_kind.bytes += bytes;
        match row.kind {
            kind::COMMIT => self.commit(row.time_micros),
            kind::ROLLBACK => self.transactions_rolled_back += 1,
            _ => {}
        }
        let generation = row.position.generation;
        if self.generations.last().map(|g| g.generation) != Some(generation) {
            self.generations.push(GenerationStats {
                generation,
                ..GenerationStats::default()
            });
        }
        if let Some(last) = self.generations.last_mut() {
            last.records += 1;
            last.bytes += bytes;
        }
    }

    fn commit(&mut self, time: Option<u64>) {
        self.transactions_committed += 1;
        if let Some(time) = time {
            self.first_commit_micros = Some(self.first_commit_micros.map_or(time, |t| t.min(time)));
            self.last_commit_micros = Some(self.last_commit_micros.map_or(time, |t| t.max(time)));
        }
        self.commits_per_second = match (self.first_commit_micros, self.last_commit_micros) {
            (Some(first), Some(last)) if last > first => {
                Some(self.transactions_committed as f64 * 1e6 / (last - first) as f64)
            }
            _ => None,
        };
    }

    /// The statistics as text lines.
    pub fn text(&self) -> Vec<String> {
        let mut lines = vec![
            format!("records: {} in {}", self.records, output::bytes(self.bytes)),
            format!("  {:<12} {:>10} {:>12}", "kind", "count", "bytes"),
        ];
        for (name, stats) in &self.by_kind {
            lines.push(format!(
                "  {name:<12} {:>10} {:>12}",
                stats.count, stats.bytes
            ));
        }
        lines.push(format!(
            "transactions: {} committed, {} rolled back",
            self.transactions_committed, self.transactions_rolled_back
        ));
        lines.push(self.rate_text());
        lines.push(format!(
            "  {:<12} {:>10} {:>12}",
            "generation", "records", "bytes"
        ));
        for generation in &self.generations {
            lines.push(format!(
                "  {:<12} {:>10} {:>12}",
                generation.generation, generation.records, generation.bytes
            ));
        }
        lines
    }

    fn rate_text(&self) -> String {
        let (Some(first), Some(last)) = (self.first_commit_micros, self.last_commit_micros) else {
            return "commits: none with a time".into();
        };
        let rate = self
            .commits_per_second
            .map_or_else(|| "-".to_owned(), |rate| format!("{rate:.1}"));
        format!(
            "commits: {} to {} ({:.3} s): {rate} commits/s",
            output::time(first),
            output::time(last),
            (last - first) as f64 / 1e6
        )
    }
}
