//! The checkpoint file `E00.chk`: where recovery starts.
//!
//! Two copies of 128 bytes, at offsets 0 and 4096 so a torn write of one can never reach the
//! other. An update writes copy 0, syncs, then writes copy 1 and syncs. A reader takes the
//! valid copy with the higher sequence. Layout of one copy (little-endian):
//! ```text
//!   0  u32  crc32c of bytes 4..128
//!   4  [8]  magic "BLUEJET\0"
//!  12  u8   file type (2 = checkpoint)
//!  13  u8   copy index (0 or 1)
//!  14  u16  format version (1)
//!  16  u64  update sequence
//!  24  [16] stream signature id
//!  40  u64  stream signature creation time (µs)
//!  48  u32  checkpoint generation
//!  52  u32  checkpoint offset
//!  56  u64  time of the update (µs)
//!  64  u64  timeline
//!  72  [56] reserved, 0
//! ```

use super::header::{u32_at, u64_at, FILE_TYPE_CHECKPOINT, FILE_TYPE_OFFSET, MAGIC};
use super::{LogPosition, StreamSignature};
use crate::error::LogError;
use crate::file::{FileHandle, FileSystem, OpenMode};
use std::path::Path;
use std::sync::Arc;

/// Bytes of one checkpoint copy.
pub const CHECKPOINT_COPY_BYTES: usize = 128;
/// Distance between the two copies.
pub const CHECKPOINT_COPY_STRIDE: usize = 4096;
/// Size of the checkpoint file.
pub const CHECKPOINT_FILE_BYTES: usize = 2 * CHECKPOINT_COPY_STRIDE;

// A copy fits its stride, so no sector holds both copies.
const _: () =
    assert!(CHECKPOINT_COPY_BYTES <= CHECKPOINT_COPY_STRIDE && CHECKPOINT_COPY_STRIDE >= 4096);
const CHECKPOINT_VERSION: u16 = 1;

/// The content of a checkpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// Where recovery starts.
    pub position: LogPosition,
    /// The stream the checkpoint belongs to.
    pub signature: StreamSignature,
    /// The timeline at the last update.
    pub timeline: u64,
    /// Update count; increases with every update.
    pub sequence: u64,
    /// Time of the last update, µs since the Unix epoch.
    pub updated_micros: u64,
}

/// The state of one copy on disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CopyState {
    /// The copy checks out.
    Valid(Checkpoint),
    /// The copy is damaged, and why.
    Damaged(String),
}

/// Both copies as read, and the checkpoint they give.
#[derive(Clone, Debug)]
pub struct CheckpointRead {
    /// The checkpoint in force: the valid copy with the higher sequence.
    pub checkpoint: Checkpoint,
    /// Copy 0 and copy 1.
    pub copies: [CopyState; 2],
}

impl Checkpoint {
    /// Encodes copy `index` (0 or 1).
    pub fn encode(&self, index: u8) -> [u8; CHECKPOINT_COPY_BYTES] {
        assert!(index < 2, "two copies");
        let mut bytes = [0u8; CHECKPOINT_COPY_BYTES];
        bytes[4..12].copy_from_slice(&MAGIC);
        bytes[FILE_TYPE_OFFSET] = FILE_TYPE_CHECKPOINT;
        bytes[13] = index;
        bytes[14..16].copy_from_slice(&CHECKPOINT_VERSION.to_le_bytes());
        bytes[16..24].copy_from_slice(&self.sequence.to_le_bytes());
        bytes[24..40].copy_from_slice(&self.signature.id);
        bytes[40..48].copy_from_slice(&self.signature.created_micros.to_le_bytes());
        bytes[48..52].copy_from_slice(&self.position.generation.to_le_bytes());
        bytes[52..56].copy_from_slice(&self.position.offset.to_le_bytes());
        bytes[56..64].copy_from_slice(&self.updated_micros.to_le_bytes());
        bytes[64..72].copy_from_slice(&self.timeline.to_le_bytes());
        let checksum = crc32c::crc32c(&bytes[4..]);
        bytes[0..4].copy_from_slice(&checksum.to_le_bytes());
        bytes
    }

    /// Decodes copy `index` from its bytes.
    pub fn decode(input: &[u8], index: u8) -> Result<Self, String> {
        let bytes = input
            .get(..CHECKPOINT_COPY_BYTES)
            .ok_or_else(|| format!("copy {index} is truncated"))?;
        if bytes.iter().all(|&b| b == 0) {
            return Err(format!("copy {index} was never written"));
        }
        if bytes[4..12] != MAGIC {
            return Err(format!("copy {index}: bad magic"));
        }
        let stored = u32_at(bytes, 0);
        if stored != crc32c::crc32c(&bytes[4..]) {
            return Err(format!("copy {index}: bad checksum"));
        }
        if bytes[FILE_TYPE_OFFSET] != FILE_TYPE_CHECKPOINT || bytes[13] != index {
            return Err(format!("copy {index}: wrong file type or copy index"));
        }
        let version = u16::from_le_bytes([bytes[14], bytes[15]]);
        if version != CHECKPOINT_VERSION {
            return Err(format!("copy {index}: unsupported version {version}"));
        }
        if bytes[72..].iter().any(|&b| b != 0) {
            return Err(format!("copy {index}: reserved bytes not zero"));
        }
        let mut id = [0u8; 16];
        id.copy_from_slice(&bytes[24..40]);
        Ok(Self {
            sequence: u64_at(bytes, 16),
            signature: StreamSignature {
                id,
                created_micros: u64_at(bytes, 40),
            },
            position: LogPosition::new(u32_at(bytes, 48), u32_at(bytes, 52)),
            updated_micros: u64_at(bytes, 56),
            timeline: u64_at(bytes, 64),
        })
    }
}

/// Decodes both copies of a checkpoint file image.
pub fn decode_file(path: &Path, image: &[u8]) -> Result<CheckpointRead, LogError> {
    let copy = |index: u8| {
        let start = index as usize * CHECKPOINT_COPY_STRIDE;
        let bytes = image.get(start..).unwrap_or(&[]);
        match Checkpoint::decode(bytes, index) {
            Ok(checkpoint) => CopyState::Valid(checkpoint),
            Err(reason) => CopyState::Damaged(reason),
        }
    };
    let copies = [copy(0), copy(1)];
    let best = copies
        .iter()
        .filter_map(|state| match state {
            CopyState::Valid(checkpoint) => Some(*checkpoint),
            CopyState::Damaged(_) => None,
        })
        .max_by_key(|checkpoint| checkpoint.sequence);
    match best {
        Some(checkpoint) => Ok(CheckpointRead { checkpoint, copies }),
        None => Err(LogError::BadCheckpoint {
            path: path.to_owned(),
            reason: "both copies are damaged".into(),
        }),
    }
}

/// Reads the checkpoint file at `path`.
pub fn read(fs: &dyn FileSystem, path: &Path) -> Result<CheckpointRead, LogError> {
    let file = fs
        .open(path, OpenMode::Read)
        .map_err(|e| LogError::io(path, "open checkpoint", e))?;
    let length = file
        .size()
        .map_err(|e| LogError::io(path, "stat checkpoint", e))?;
    let length = usize::try_from(length.min(CHECKPOINT_FILE_BYTES as u64))
        .expect("at most CHECKPOINT_FILE_BYTES, a usize");
    let mut image = vec![0u8; length];
    file.read_exact_at(&mut image, 0)
        .map_err(|e| LogError::io(path, "read checkpoint", e))?;
    decode_file(path, &image)
}

/// A checkpoint file open for updates.
pub struct CheckpointFile {
    path: std::path::PathBuf,
    file: Arc<dyn FileHandle>,
    current: Checkpoint,
}

impl CheckpointFile {
    /// Creates a new checkpoint file durably: written under a temporary name, synced, renamed
    /// into place and the directory synced, so `E00.chk` never exists without valid copies.
    pub fn create(
        fs: &dyn FileSystem,
        path: &Path,
        checkpoint: Checkpoint,
    ) -> Result<Self, LogError> {
        let temporary = path.with_extension("chk.new");
        if fs.exists(&temporary) {
            fs.remove(&temporary)
                .map_err(|e| LogError::io(&temporary, "remove old checkpoint draft", e))?;
        }
        let file = fs
            .open(&temporary, OpenMode::CreateNew)
            .map_err(|e| LogError::io(&temporary, "create checkpoint", e))?;
        let mut image = vec![0u8; CHECKPOINT_FILE_BYTES];
        image[..CHECKPOINT_COPY_BYTES].copy_from_slice(&checkpoint.encode(0));
        let second = CHECKPOINT_COPY_STRIDE..CHECKPOINT_COPY_STRIDE + CHECKPOINT_COPY_BYTES;
        image[second].copy_from_slice(&checkpoint.encode(1));
        file.write_at(&image, 0)
            .and_then(|()| file.sync_data())
            .map_err(|e| LogError::io(&temporary, "write checkpoint", e))?;
        fs.rename(&temporary, path)
            .map_err(|e| LogError::io(path, "rename checkpoint into place", e))?;
        let directory = path.parent().unwrap_or(Path::new("."));
        fs.sync_directory(directory)
            .map_err(|e| LogError::io(directory, "sync directory", e))?;
        Ok(Self {
            path: path.to_owned(),
            file,
            current: checkpoint,
        })
    }

    /// Opens an existing checkpoint file.
    pub fn open(fs: &dyn FileSystem, path: &Path) -> Result<(Self, CheckpointRead), LogError> {
        let read = read(fs, path)?;
        let file = fs
            .open(path, OpenMode::ReadWrite)
            .map_err(|e| LogError::io(path, "open checkpoint", e))?;
        let this = Self {
            path: path.to_owned(),
            file,
            current: read.checkpoint,
        };
        Ok((this, read))
    }

    /// The checkpoint in force.
    pub fn current(&self) -> Checkpoint {
        self.current
    }

    /// Moves the checkpoint forward to `position`, durably: copy 0, sync, copy 1, sync.
    pub fn advance(&mut self, position: LogPosition, timeline: u64) -> Result<(), LogError> {
        if position < self.current.position {
            return Err(LogError::CheckpointBackwards {
                current: self.current.position,
                requested: position,
            });
        }
        let next = Checkpoint {
            position,
            timeline,
            sequence: self.current.sequence + 1,
            updated_micros: super::signature::now_micros(),
            ..self.current
        };
        for index in 0..2u8 {
            let offset = index as u64 * CHECKPOINT_COPY_STRIDE as u64;
            self.file
                .write_at(&next.encode(index), offset)
                .and_then(|()| self.file.sync_data())
                .map_err(|e| LogError::io(&self.path, "update checkpoint", e))?;
        }
        self.current = next;
        Ok(())
    }
}
