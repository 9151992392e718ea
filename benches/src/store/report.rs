//! The results: every phase's figure per engine with BlueJet's ratios to SQLite and redb,
//! then one summary table and the disk's floors.

use super::floor::{Floor, FLOOR_OPS};
use super::workload::{Shape, RECORD_BYTES};
use std::fmt::Write;

/// The engine columns, in order: BlueJet's stays even while it is not enabled, so the report
/// keeps its shape and says "n/a".
pub const COLUMNS: [&str; 3] = ["sqlite", "redb", "bluejet"];
/// The engine every ratio is taken of.
const OURS: &str = "bluejet";
/// The engines it is compared with.
const OTHERS: [&str; 2] = ["sqlite", "redb"];

/// What a figure measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Metric {
    /// Phase 1: seconds to insert every key in one transaction.
    BulkLoad,
    /// Phase 2: durable single-insert commits per second, one thread.
    SingleCommits,
    /// Phase 3: seconds for the batched commits.
    BatchedCommits,
    /// Phase 4: durable single-insert commits per second over all threads.
    ConcurrentCommits,
    /// Phase 5: point reads per second, one thread.
    Reads1Thread,
    /// Phase 5: point reads per second, two threads.
    Reads2Threads,
    /// Phase 6: range reads per second.
    RangeReads,
    /// Phase 7: seconds to remove half the loaded keys in one transaction.
    Removal,
    /// Phase 8: bytes of the store's directory after the bulk load.
    SizeBytes,
    /// Phase 8: those bytes over the raw bytes of the keys and values loaded.
    SizeRatio,
}

impl Metric {
    /// Every metric, in report order.
    pub const ALL: [Metric; 10] = [
        Metric::BulkLoad,
        Metric::SingleCommits,
        Metric::BatchedCommits,
        Metric::ConcurrentCommits,
        Metric::Reads1Thread,
        Metric::Reads2Threads,
        Metric::RangeReads,
        Metric::Removal,
        Metric::SizeBytes,
        Metric::SizeRatio,
    ];

    /// Short name, for progress lines and the summary table.
    pub fn label(self) -> &'static str {
        match self {
            Metric::BulkLoad => "1 bulk load",
            Metric::SingleCommits => "2 single commits",
            Metric::BatchedCommits => "3 batched commits",
            Metric::ConcurrentCommits => "4 concurrent commits",
            Metric::Reads1Thread => "5 reads, 1 thread",
            Metric::Reads2Threads => "5 reads, 2 threads",
            Metric::RangeReads => "6 range reads",
            Metric::Removal => "7 removal",
            Metric::SizeBytes => "8 size after load",
            Metric::SizeRatio => "8 size / raw",
        }
    }

    /// What exactly was done, with the counts of `shape`.
    pub fn title(self, shape: &Shape) -> String {
        let s = shape;
        match self {
            Metric::BulkLoad => format!("1. bulk load: {} inserts, one commit", grouped(s.keys)),
            Metric::SingleCommits => format!(
                "2. {} durable commits of one insert, 1 thread",
                grouped(s.single_commits)
            ),
            Metric::BatchedCommits => format!(
                "3. {} durable commits of {} inserts each",
                grouped(s.batches),
                grouped(s.batch_size)
            ),
            Metric::ConcurrentCommits => format!(
                "4. {} threads x {} durable single-insert commits at once",
                s.threads,
                grouped(s.commits_per_thread)
            ),
            Metric::Reads1Thread => format!("5. {} random reads, 1 thread", grouped(s.reads)),
            Metric::Reads2Threads => format!("5. {} random reads, 2 threads", grouped(s.reads)),
            Metric::RangeReads => format!(
                "6. {} range reads of {} entries",
                grouped(s.ranges),
                s.range_length
            ),
            Metric::Removal => format!("7. removal of {} keys, one commit", grouped(s.removals())),
            Metric::SizeBytes => "8. whole directory after the bulk load".to_string(),
            Metric::SizeRatio => format!(
                "8. size after the bulk load / raw bytes ({} x {RECORD_BYTES} = {})",
                grouped(s.keys),
                grouped(s.keys * RECORD_BYTES)
            ),
        }
    }

    /// The unit of the figure.
    pub fn unit(self) -> &'static str {
        match self {
            Metric::BulkLoad | Metric::BatchedCommits | Metric::Removal => "s",
            Metric::SingleCommits | Metric::ConcurrentCommits => "commits/s",
            Metric::Reads1Thread | Metric::Reads2Threads => "reads/s",
            Metric::RangeReads => "ranges/s",
            Metric::SizeBytes => "bytes",
            Metric::SizeRatio => "x raw",
        }
    }

    /// Whether a larger figure is the better one (rates), or a smaller (time, bytes).
    pub fn higher_is_better(self) -> bool {
        self.unit().ends_with("/s")
    }

    /// The figure in this metric's unit, as printed.
    pub fn format(self, value: f64) -> String {
        match self.unit() {
            "s" => format!("{value:.3}"),
            "x raw" => format!("{value:.2}"),
            _ => grouped(rounded(value)),
        }
    }
}

/// One measured figure.
#[derive(Clone, Copy, Debug)]
pub struct Figure {
    /// What it measures.
    pub metric: Metric,
    /// In the metric's unit.
    pub value: f64,
}

impl Figure {
    /// `label: value unit`, for progress lines.
    pub fn describe(&self) -> String {
        let metric = self.metric;
        format!(
            "{}: {} {}",
            metric.label(),
            metric.format(self.value),
            metric.unit()
        )
    }
}

/// Every figure of one engine.
#[derive(Clone, Debug)]
pub struct EngineResults {
    /// The engine's column name.
    pub engine: &'static str,
    /// Its figures, one per metric.
    pub figures: Vec<Figure>,
}

/// The figure of `engine` for `metric`, if that engine ran.
fn figure(results: &[EngineResults], engine: &str, metric: Metric) -> Option<f64> {
    let engine = results.iter().find(|result| result.engine == engine)?;
    let found = engine
        .figures
        .iter()
        .find(|figure| figure.metric == metric)?;
    Some(found.value)
}

/// BlueJet's figure over `other`'s, or "n/a" when either is missing.
fn ratio(results: &[EngineResults], other: &str, metric: Metric) -> String {
    match (
        figure(results, OURS, metric),
        figure(results, other, metric),
    ) {
        (Some(ours), Some(theirs)) if theirs > 0.0 => format!("{:.2}", ours / theirs),
        _ => "n/a".to_string(),
    }
}

/// The whole report: per phase, the summary table, the floors.
pub fn render(shape: &Shape, results: &[EngineResults], floors: &[Floor]) -> String {
    let mut text = String::new();
    text += "\n== Per phase (ratios are BlueJet's figure / the other's: for rates above 1 \
             is better, for seconds and bytes below 1)\n";
    for metric in Metric::ALL {
        text += &phase_block(shape, results, metric);
    }
    text += "\n== Summary\n";
    text += &summary_table(results);
    if !floors.is_empty() {
        text += &floor_block(results, floors);
    }
    text
}

/// One phase: a line per engine and BlueJet's ratios.
fn phase_block(shape: &Shape, results: &[EngineResults], metric: Metric) -> String {
    let better = if metric.higher_is_better() {
        "higher"
    } else {
        "lower"
    };
    let mut block = format!(
        "\n{} [{}, {better} is better]\n",
        metric.title(shape),
        metric.unit()
    );
    for engine in COLUMNS {
        let value = figure(results, engine, metric).map_or_else(
            || "n/a (not run)".to_string(),
            |value| format!("{} {}", metric.format(value), metric.unit()),
        );
        writeln!(block, "    {engine:<8} {value}").expect("writing to a String");
    }
    let ratios: Vec<String> = OTHERS
        .iter()
        .map(|other| format!("{OURS}/{other} {}", ratio(results, other, metric)))
        .collect();
    writeln!(block, "    {}", ratios.join("   ")).expect("writing to a String");
    block
}

/// Rows of metrics, columns of engines, then BlueJet's ratios.
fn summary_table(results: &[EngineResults]) -> String {
    let mut header = vec!["phase".to_string(), "unit".to_string()];
    header.extend(COLUMNS.iter().map(|engine| engine.to_string()));
    header.extend(OTHERS.iter().map(|other| format!("{OURS}/{other}")));
    let mut rows = vec![header];
    for metric in Metric::ALL {
        let mut row = vec![metric.label().to_string(), metric.unit().to_string()];
        row.extend(COLUMNS.iter().map(|engine| {
            figure(results, engine, metric).map_or_else(|| "n/a".to_string(), |v| metric.format(v))
        }));
        row.extend(OTHERS.iter().map(|other| ratio(results, other, metric)));
        rows.push(row);
    }
    table(&rows)
}

/// The floors, and each engine's single-thread commit rate as a share of the append floor.
fn floor_block(results: &[EngineResults], floors: &[Floor]) -> String {
    let mut block = format!(
        "\n== Floors (same disk, {} synced {RECORD_BYTES}-byte writes each)\n",
        grouped(FLOOR_OPS)
    );
    for floor in floors {
        let rate = grouped(rounded(floor.ops_per_second));
        writeln!(block, "    {:<24} {rate} ops/s", floor.name).expect("writing to a String");
    }
    if let Some(append) = floors.first() {
        let shares: Vec<String> = COLUMNS
            .iter()
            .map(|engine| {
                let share = figure(results, engine, Metric::SingleCommits).map_or_else(
                    || "n/a".into(),
                    |v| format!("{:.2}", v / append.ops_per_second),
                );
                format!("{engine} {share}")
            })
            .collect();
        writeln!(
            block,
            "    single commits / {}: {}",
            append.name,
            shares.join(", ")
        )
        .expect("writing to a String");
    }
    block
}

/// A plain-text table: the first row is the header, the first two columns align left and
/// the figures right.
fn table(rows: &[Vec<String>]) -> String {
    let columns = rows.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..columns)
        .map(|column| rows.iter().map(|row| row[column].len()).max().unwrap_or(0))
        .collect();
    let mut text = String::new();
    for (index, row) in rows.iter().enumerate() {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(column, (cell, &width))| match column {
                0 | 1 => format!("{cell:<width$}"),
                _ => format!("{cell:>width$}"),
            })
            .collect();
        writeln!(text, "| {} |", cells.join(" | ")).expect("writing to a String");
        if index == 0 {
            let rule: Vec<String> = widths.iter().map(|&width| "-".repeat(width)).collect();
            writeln!(text, "|-{}-|", rule.join("-|-")).expect("writing to a String");
        }
    }
    text
}

/// A measured figure (non-negative) rounded for printing; `as` from a float saturates, so
/// an absurd figure prints as the largest number rather than wrapping.
#[allow(clippy::cast_possible_truncation)]
fn rounded(value: f64) -> usize {
    value.round() as usize
}

/// `1234567` as `1,234,567`.
pub fn grouped(number: usize) -> String {
    let digits = number.to_string();
    let groups: Vec<&str> = digits
        .as_bytes()
        .rchunks(3)
        .rev()
        .map(|group| std::str::from_utf8(group).expect("ASCII digits"))
        .collect();
    groups.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_grouped_by_thousands() {
        assert_eq!(grouped(0), "0");
        assert_eq!(grouped(999), "999");
        assert_eq!(grouped(1_000), "1,000");
        assert_eq!(grouped(1_234_567), "1,234,567");
    }

    #[test]
    fn ratios_need_bluejet_and_the_other_engine() {
        let run = |engine, value| EngineResults {
            engine,
            figures: vec![Figure {
                metric: Metric::BulkLoad,
                value,
            }],
        };
        let without = [run("sqlite", 2.0)];
        assert_eq!(ratio(&without, "sqlite", Metric::BulkLoad), "n/a");
        let with = [run("sqlite", 2.0), run("bluejet", 1.0)];
        assert_eq!(ratio(&with, "sqlite", Metric::BulkLoad), "0.50");
        assert_eq!(ratio(&with, "redb", Metric::BulkLoad), "n/a");
    }
}
