//! Generation files as replication handles them: names in the replica's areas, whole-file
//! reads with a bound, headers, and zstd-compressed shipping.

use crate::error::ReplError;
use crate::sealed::read_file;
use bluejet_engine::file::{FileSystem, OpenMode};
use bluejet_engine::format::generation_header::GenerationHeader;
use bluejet_engine::format::generation_header::HEADER_BYTES;
use bluejet_engine::log::MAX_GENERATION_BYTES;
use bluejet_engine::{BaseName, LogFileName};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

/// Suffix of a compressed shipped file.
pub const COMPRESSED_SUFFIX: &str = ".zst";

/// The generation files in `directory`: generation to file name (`E0000000007.log`, or with
/// `.zst` when compressed). Other names (temporary files, junk) are left out.
pub fn list_generations(
    fs: &dyn FileSystem,
    directory: &Path,
    base: BaseName,
) -> Result<BTreeMap<u32, Vec<String>>, ReplError> {
    let names = fs
        .list(directory)
        .map_err(|error| ReplError::io(directory, "listing", error))?;
    let mut found: BTreeMap<u32, Vec<String>> = BTreeMap::new();
    for name in names {
        let plain = name.strip_suffix(COMPRESSED_SUFFIX).unwrap_or(&name);
        if let Some(LogFileName::Closed(generation)) = base.classify(plain) {
            found.entry(generation).or_default().push(name);
        }
    }
    Ok(found)
}

/// Reads a generation file whole, decompressing a `.zst` one; at most the largest
/// generation size either way.
pub fn read_generation(fs: &dyn FileSystem, path: &Path) -> Result<Vec<u8>, ReplError> {
    let compressed = path.extension().is_some_and(|extension| extension == "zst");
    let bytes = read_file(fs, path, MAX_GENERATION_BYTES)?;
    if !compressed {
        return Ok(bytes);
    }
    let mut decoder = zstd::stream::Decoder::new(&bytes[..])
        .map_err(|error| ReplError::io(path, "decompressing", error))?;
    let mut image = Vec::new();
    (&mut decoder)
        .take(MAX_GENERATION_BYTES + 1)
        .read_to_end(&mut image)
        .map_err(|error| ReplError::io(path, "decompressing", error))?;
    if image.len() as u64 > MAX_GENERATION_BYTES {
        return Err(ReplError::BadReplicaFile {
            path: path.to_owned(),
            reason: format!("decompresses to more than {MAX_GENERATION_BYTES} bytes"),
        });
    }
    Ok(image)
}

/// The header of the generation file at `path` (uncompressed), reading only its start.
pub fn read_header(fs: &dyn FileSystem, path: &Path) -> Result<GenerationHeader, ReplError> {
    let file = fs
        .open(path, OpenMode::Read)
        .map_err(|error| ReplError::io(path, "opening", error))?;
    let mut bytes = [0u8; HEADER_BYTES];
    file.read_exact_at(&mut bytes, 0)
        .map_err(|error| ReplError::io(path, "reading the header of", error))?;
    GenerationHeader::decode(&bytes).map_err(|problem| ReplError::BadReplicaFile {
        path: path.to_owned(),
        reason: format!("unreadable generation header: {problem:?}"),
    })
}

/// Compresses a generation image for shipping (zstd level 1: fast, and log records of mail
/// compress well even so).
pub fn compress(image: &[u8]) -> Vec<u8> {
    zstd::bulk::compress(image, 1).expect("compressing into memory cannot fail")
}

/// Commit records in a generation's record stream.
pub fn count_commits(stream: &[u8]) -> u64 {
    use bluejet_engine::format::record::{kind, read_record};
    let mut offset = 0;
    let mut commits = 0;
    while let Ok(record) = read_record(&stream[offset..]) {
        commits += (record.kind == kind::COMMIT) as u64;
        offset += record.encoded_len();
    }
    commits
}

/// The generation number and the commits of the current generation (`E00.log`) in
/// `directory`, if it can be read (a torn tail is ignored).
pub fn current_commits(
    fs: &dyn FileSystem,
    directory: &Path,
    base: BaseName,
) -> Option<(u32, u64)> {
    use bluejet_engine::format::scan::{scan, ScanMode};
    let path = directory.join(base.current());
    let image = read_file(fs, &path, MAX_GENERATION_BYTES).ok()?;
    let scanned = scan(&path, &image, ScanMode::Current).ok()?;
    Some((scanned.header.generation, count_commits(&scanned.stream)))
}
