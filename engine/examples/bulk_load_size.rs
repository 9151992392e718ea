//! The directory a bulk load leaves, with circular logging on or off: the store benchmark's
//! load (random 24-byte keys, 150-byte values, one transaction) into a fresh directory, then
//! its size after the commit, after one more checkpoint, and after a clean close.
//!
//! `cargo run --release -p bluejet-engine --example bulk_load_size -- KEYS on|off [DIR]`
//! (DIR: where the database goes, default a temporary directory, removed afterwards).

use bluejet_engine::{Database, Options};
use std::path::Path;

const KEY_BYTES: usize = 24;
const VALUE_BYTES: usize = 150;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: bulk_load_size KEYS on|off [DIR]";
    let keys: u64 = arguments.first().ok_or(usage)?.parse()?;
    let circular = match arguments.get(1).map(String::as_str) {
        Some("on") => true,
        Some("off") => false,
        _ => return Err(usage.into()),
    };
    let parent = arguments.get(2).map(std::path::PathBuf::from);
    let scratch = match &parent {
        Some(parent) => tempfile::tempdir_in(parent)?,
        None => tempfile::tempdir()?,
    };
    let directory = scratch.path().join("db");
    let options = Options {
        circular_logging: circular,
        cache_bytes: 1 << 30,
        ..Options::default()
    };
    let db = Database::open(&directory, options)?;
    let started = std::time::Instant::now();
    let mut write = db.begin_write()?;
    write.create_table("kv")?;
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    for _ in 0..keys {
        let mut key = [0u8; KEY_BYTES];
        for chunk in key.chunks_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            chunk.copy_from_slice(&state.to_le_bytes()[..chunk.len()]);
        }
        let value = [state.to_le_bytes(); VALUE_BYTES / 8 + 1].concat();
        write.insert("kv", &key, &value[..VALUE_BYTES])?;
    }
    write.commit()?;
    let seconds = started.elapsed().as_secs_f64();
    let raw = keys * (KEY_BYTES + VALUE_BYTES) as u64;
    println!(
        "circular logging {}: {keys} keys, {:.1} MiB raw, loaded in {seconds:.1} s",
        if circular { "on" } else { "off" },
        mib(raw)
    );
    report("after the commit", &directory, raw)?;
    db.checkpoint()?;
    report("after a checkpoint", &directory, raw)?;
    db.close()?;
    report("after a clean close", &directory, raw)?;
    Ok(())
}

fn report(when: &str, directory: &Path, raw: u64) -> std::io::Result<()> {
    let (total, log) = sizes(directory)?;
    println!(
        "  {when:<20} directory {:>8.1} MiB ({:.2}x raw), of which log {:>8.1} MiB",
        mib(total),
        total as f64 / raw as f64,
        mib(log)
    );
    Ok(())
}

/// Bytes of every file in `directory`, and of its log files (`E00*`).
fn sizes(directory: &Path) -> std::io::Result<(u64, u64)> {
    let mut total = 0;
    let mut log = 0;
    for entry in std::fs::read_dir(directory)? {
        let entry = entry?;
        let bytes = entry.metadata()?.len();
        total += bytes;
        if entry.file_name().to_string_lossy().starts_with("E00") {
            log += bytes;
        }
    }
    Ok((total, log))
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1 << 20) as f64
}
