//! Block mode, on the passive's disk: the log bytes received as the active wrote them, one
//! file per generation in `<instance>/blocks/`, synced before they are acknowledged.
//!
//! A file `blocks/<base><generation:08X>.blocks` holds the generation's 128-byte header
//! (its own magic, version and checksum, as in the generation file) followed by the
//! generation's record stream from offset 0, appended and synced as it arrives. Records carry
//! their own checksums, so a reader keeps the longest prefix of whole, valid records and a
//! torn append loses only bytes that were never acknowledged. A failover turns the file into
//! a closed generation ([`bluejet_engine::format::log_image::closed_image`]) that is inspected and
//! replayed like a shipped one.

use crate::error::ReplError;
use bluejet_engine::file::{FileHandle, FileSystem, OpenMode};
use bluejet_engine::format::generation_header::{GenerationHeader, HEADER_BYTES};
use bluejet_engine::format::log_image::whole_records;
use bluejet_engine::format::scan::stream_capacity;
use bluejet_engine::BaseName;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A generation received whole: its stream length and the digest of its file on the active
/// (`<file>.end`, a sealed file written when the active said the generation ended).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BlockEnd {
    /// The generation.
    pub generation: u32,
    /// Its stream length.
    pub length: u32,
    /// crc32c of its whole file on the active.
    pub digest: u32,
}

/// The directory of block files under an instance.
pub const BLOCKS_DIRECTORY: &str = "blocks";

/// The block files of one instance.
#[derive(Clone)]
pub struct BlockStore {
    fs: Arc<dyn FileSystem>,
    directory: PathBuf,
    base: BaseName,
}

/// One generation's block file, open for appending.
pub struct BlockFile {
    file: Arc<dyn FileHandle>,
    path: PathBuf,
    header: GenerationHeader,
    length: u32,
}

impl BlockStore {
    /// The block files of the instance `instance`, for the log stream `base`.
    pub fn new(fs: Arc<dyn FileSystem>, instance: &Path, base: BaseName) -> Self {
        Self {
            fs,
            directory: instance.join(BLOCKS_DIRECTORY),
            base,
        }
    }

    /// The file of `generation`.
    pub fn path(&self, generation: u32) -> PathBuf {
        let closed = self.base.closed(generation);
        let stem = closed.strip_suffix(".log").unwrap_or(&closed);
        self.directory.join(format!("{stem}.blocks"))
    }

    /// The sealed file saying `generation` was received whole.
    fn end_path(&self, generation: u32) -> PathBuf {
        let mut path = self.path(generation).into_os_string();
        path.push(".end");
        PathBuf::from(path)
    }

    /// Records that a generation was received whole (synced).
    pub fn mark_complete(&self, end: &BlockEnd) -> Result<(), ReplError> {
        crate::sealed::write(self.fs.as_ref(), &self.end_path(end.generation), end)
    }

    /// How `generation` ended, if it was received whole.
    pub fn completion(&self, generation: u32) -> Option<BlockEnd> {
        crate::sealed::read(self.fs.as_ref(), &self.end_path(generation))
            .ok()
            .flatten()
            .filter(|end: &BlockEnd| end.generation == generation)
    }

    /// Starts the file of `header`'s generation anew (anything there before is replaced),
    /// with the header written and synced.
    pub fn create(&self, header: &GenerationHeader) -> Result<BlockFile, ReplError> {
        let path = self.path(header.generation);
        let io = |operation: &'static str| {
            let path = path.clone();
            move |error| ReplError::io(&path, operation, error)
        };
        self.fs
            .create_directory_durably(&self.directory)
            .map_err(|error| ReplError::io(&self.directory, "creating", error))?;
        for old in [path.clone(), self.end_path(header.generation)] {
            if self.fs.exists(&old) {
                self.fs
                    .remove(&old)
                    .map_err(|error| ReplError::io(&old, "removing", error))?;
            }
        }
        let file = self
            .fs
            .open(&path, OpenMode::CreateNew)
            .map_err(io("creating"))?;
        file.write_at(&header.encode(), 0).map_err(io("writing"))?;
        // The whole generation's space now, as the log prepares its files: an append then
        // writes inside the file, and its sync has no size to make durable. The reader keeps
        // whole records only, so the zeros after the stream read as its end.
        let capacity = stream_capacity(u64::from(header.generation_bytes));
        file.allocate(HEADER_BYTES as u64 + capacity)
            .map_err(io("allocating"))?;
        file.sync_data().map_err(io("syncing"))?;
        self.fs
            .sync_directory(&self.directory)
            .map_err(|error| ReplError::io(&self.directory, "syncing", error))?;
        Ok(BlockFile {
            file,
            path: path.clone(),
            header: *header,
            length: 0,
        })
    }

    /// The generations that have a block file, in order (other names are ignored).
    pub fn generations(&self) -> Result<Vec<u32>, ReplError> {
        let names = match self.fs.list(&self.directory) {
            Ok(names) => names,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(error) => return Err(ReplError::io(&self.directory, "listing", error)),
        };
        let mut generations: Vec<u32> = names
            .iter()
            .filter_map(|name| self.generation_of(name))
            .collect();
        generations.sort_unstable();
        Ok(generations)
    }

    /// The generation a file name is for, if it is exactly a block file's name.
    fn generation_of(&self, name: &str) -> Option<u32> {
        let stem = name.strip_suffix(".blocks")?;
        let generation = stem.strip_prefix(self.base.as_str())?;
        if generation.len() != 8 || !generation.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let generation = u32::from_str_radix(generation, 16).ok()?;
        (self.path(generation).file_name()?.to_str()? == name).then_some(generation)
    }

    /// The header and the whole records of `generation`'s block file.
    pub fn read(&self, generation: u32) -> Result<(GenerationHeader, Vec<u8>), ReplError> {
        let path = self.path(generation);
        let bad = |reason: String| ReplError::BadReplicaFile {
            path: path.clone(),
            reason,
        };
        let file = self
            .fs
            .open(&path, OpenMode::Read)
            .map_err(|error| ReplError::io(&path, "opening", error))?;
        let size = file
            .size()
            .map_err(|error| ReplError::io(&path, "reading the size of", error))?;
        let mut header = [0; HEADER_BYTES];
        file.read_exact_at(&mut header, 0)
            .map_err(|error| ReplError::io(&path, "reading", error))?;
        let header =
            GenerationHeader::decode(&header).map_err(|problem| bad(problem.to_string()))?;
        if header.generation != generation {
            return Err(bad(format!("it holds generation {}", header.generation)));
        }
        // The stream of a generation is bounded by its file's capacity: a longer file is
        // not trusted, and nothing larger is read into memory.
        let capacity = stream_capacity(u64::from(header.generation_bytes));
        let stream_bytes = size.saturating_sub(HEADER_BYTES as u64);
        if stream_bytes > capacity {
            return Err(bad(format!(
                "{stream_bytes} stream bytes, more than a generation of {} bytes holds",
                header.generation_bytes
            )));
        }
        let mut stream = vec![
            0;
            usize::try_from(stream_bytes)
                .expect("checked above: at most a generation's capacity")
        ];
        file.read_exact_at(&mut stream, HEADER_BYTES as u64)
            .map_err(|error| ReplError::io(&path, "reading", error))?;
        stream.truncate(whole_records(&stream));
        Ok((header, stream))
    }

    /// Removes the block files of generations up to `generation` (they are no longer needed:
    /// the copy holds those generations' closed files).
    pub fn remove_through(&self, generation: u32) -> Result<(), ReplError> {
        let old: Vec<u32> = self
            .generations()?
            .into_iter()
            .filter(|&held| held <= generation)
            .collect();
        for held in &old {
            for path in [self.end_path(*held), self.path(*held)] {
                match self.fs.remove(&path) {
                    Err(error) if error.kind() != std::io::ErrorKind::NotFound => {
                        return Err(ReplError::io(&path, "removing", error))
                    }
                    _ => {}
                }
            }
        }
        if !old.is_empty() {
            self.fs
                .sync_directory(&self.directory)
                .map_err(|error| ReplError::io(&self.directory, "syncing", error))?;
        }
        Ok(())
    }
}

impl BlockFile {
    /// Appends `bytes` at the end of the stream and syncs them; an error leaves the file
    /// untrusted (the caller drops it and starts the generation anew).
    pub fn append(&mut self, bytes: &[u8]) -> Result<(), ReplError> {
        let capacity = stream_capacity(u64::from(self.header.generation_bytes));
        let end = u64::from(self.length) + bytes.len() as u64;
        if end > capacity {
            return Err(ReplError::BadReplicaFile {
                path: self.path.clone(),
                reason: format!("{end} stream bytes would not fit in the generation"),
            });
        }
        let at = HEADER_BYTES as u64 + u64::from(self.length);
        self.file
            .write_at(bytes, at)
            .map_err(|error| ReplError::io(&self.path, "writing", error))?;
        self.file
            .sync_data()
            .map_err(|error| ReplError::io(&self.path, "syncing", error))?;
        self.length =
            u32::try_from(end).expect("checked above: within a generation, at most 64 MiB");
        Ok(())
    }

    /// The stream bytes held (all synced).
    pub fn length(&self) -> u32 {
        self.length
    }

    /// The generation.
    pub fn generation(&self) -> u32 {
        self.header.generation
    }

    /// The generation's header.
    pub fn header(&self) -> &GenerationHeader {
        &self.header
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bluejet_engine::file::OsFileSystem;
    use bluejet_engine::format::record::{frame_into, kind};
    use bluejet_engine::format::segment::SEGMENT_BYTES;
    use bluejet_engine::log::StreamSignature;

    const GENERATION_BYTES: u32 = 1 << 20;

    fn header(generation: u32) -> GenerationHeader {
        GenerationHeader {
            generation,
            signature: StreamSignature::generate(),
            timeline: 1,
            created_micros: 1,
            previous_created_micros: 0,
            previous_digest: 0,
            segment_bytes: u32::try_from(SEGMENT_BYTES).expect("a segment is 4 KiB"),
            generation_bytes: GENERATION_BYTES,
            base_name: BaseName::default().bytes(),
        }
    }

    fn store(root: &Path) -> BlockStore {
        BlockStore::new(Arc::new(OsFileSystem), root, BaseName::default())
    }

    fn records(count: usize) -> Vec<u8> {
        let mut stream = Vec::new();
        for i in 0..count {
            frame_into(&mut stream, kind::COMMIT, &(i as u64).to_le_bytes());
        }
        stream
    }

    #[test]
    fn a_torn_append_keeps_the_whole_records_before_it() {
        let root = tempfile::tempdir().unwrap();
        let store = store(root.path());
        let mut file = store.create(&header(7)).unwrap();
        let whole = records(3);
        file.append(&whole).unwrap();
        // A crash in the middle of the next append: half a record, then garbage.
        let next = records(1);
        file.append(&next[..next.len() / 2]).unwrap();
        file.append(&[0xee; 5]).unwrap();
        let (read, stream) = store.read(7).unwrap();
        assert_eq!(read.generation, 7);
        assert_eq!(stream, whole);
        assert_eq!(store.generations().unwrap(), vec![7]);
    }

    #[test]
    fn a_file_named_for_another_generation_or_too_long_is_refused_by_name() {
        let root = tempfile::tempdir().unwrap();
        let store = store(root.path());
        store.create(&header(3)).unwrap();
        std::fs::rename(store.path(3), store.path(4)).unwrap();
        let error = store.read(4).unwrap_err().to_string();
        assert!(
            error.contains("generation 3") && error.contains(".blocks"),
            "{error}"
        );
        let mut file = store.create(&header(5)).unwrap();
        let too_long = vec![0; GENERATION_BYTES as usize];
        assert!(file.append(&too_long).is_err());
        // Grown behind the store's back: refused, nothing that large read.
        let path = store.path(5);
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(u64::from(GENERATION_BYTES) * 2)
            .unwrap();
        let error = store.read(5).unwrap_err().to_string();
        assert!(error.contains("stream bytes"), "{error}");
    }

    #[test]
    fn names_that_are_not_exactly_a_block_files_are_ignored() {
        let root = tempfile::tempdir().unwrap();
        let store = store(root.path());
        store.create(&header(0x1a)).unwrap();
        let directory = root.path().join(BLOCKS_DIRECTORY);
        for junk in [
            "E000001a.blocks.x",
            "E00000001a.blocks",
            "X000001A.blocks",
            "E00zzzzzz.blocks",
        ] {
            std::fs::write(directory.join(junk), b"junk").unwrap();
        }
        assert_eq!(store.generations().unwrap(), vec![0x1a]);
        store.remove_through(0x1a).unwrap();
        assert!(store.generations().unwrap().is_empty());
    }
}
