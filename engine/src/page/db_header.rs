//! The database file header: two checksummed copies, the newest valid one wins.
//!
//! Copy 0 lives at byte 0 and copy 1 at byte 4096, whatever the page size; data pages start at
//! page number [`first_data_page`]. Each copy is 512 bytes (little-endian; the rest of its
//! 4 KiB slot is zero):
//! ```text
//!   0  [8]  magic "BJETDB\0\0"
//!   8  u32  crc32c of bytes 12..512
//!  12  u8   file type (2 = database)
//!  13  u8   slot (0 or 1: which copy this is)
//!  14  u16  format version (2; 1 had no content totals and is refused)
//!  16  u32  page size
//!  20  u32  state (1 JustCreated, 2 DirtyShutdown, 3 CleanShutdown)
//!  24  u64  sequence: +1 at every header write; the valid copy with the highest wins
//!  32  [16] database signature: random id
//!  48  u64  database signature: creation time, µs since the Unix epoch
//!  56  [16] log stream signature: random id
//!  72  u64  log stream signature: creation time
//!  80  u32  log generations required, min (0 when clean)
//!  84  u32  log generations required, max (0 when clean)
//!  88  u64  last consistent log position (generation << 32 | offset)
//!  96  u64  checkpoint: log position where recovery starts
//! 104  u64  catalog root page (0: no tables)
//! 112  u64  next page: the first page never allocated (the file may be longer)
//! 120  u64  first page of the persisted free list (0: none)
//! 128  u64  state version: number of the last transaction included
//! 136  u64  repair count
//! 144  u64  checksum errors seen
//! 152  u32,u32,u64  last full backup: generations low, high, time (0 if none)
//! 168  u32,u32,u64  last incremental backup: generations low, high, time
//! 184  u64  log timeline
//! 192  u64  content: entries of every table at the checkpoint
//! 200  u64  content: database checksum at the checkpoint (the sum of the tables')
//! 208..512 zero
//! ```

use super::format::{read_u32, read_u64, PAGE_SIZES};
use crate::log::{LogPosition, StreamSignature};

/// Bytes of one header copy.
pub const HEADER_BYTES: usize = 512;
/// Byte offset of each copy.
pub const HEADER_OFFSETS: [u64; 2] = [0, 4096];
/// The file type byte of a database.
pub const DATABASE_FILE_TYPE: u8 = 2;
/// The header format version.
pub const HEADER_FORMAT_VERSION: u16 = 2;

// Each copy fits its 4 KiB slot, and the two slots fill the 8 KiB before the first data page.
const _: () = {
    assert!(HEADER_BYTES == 512 && HEADER_BYTES <= 4096);
    assert!(HEADER_OFFSETS[0] == 0 && HEADER_OFFSETS[1] == 4096);
};
const MAGIC: &[u8; 8] = b"BJETDB\0\0";

/// The first data page: the pages before it hold the two header copies.
pub fn first_data_page(page_size: usize) -> u64 {
    8192u64.div_ceil(page_size as u64)
}

/// Whether the database was closed cleanly.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum DbState {
    /// Created, never checkpointed with data.
    JustCreated,
    /// Open, or crashed: recovery replays the log from the checkpoint.
    DirtyShutdown,
    /// Closed cleanly: every change is in the file; no log is required.
    CleanShutdown,
}

impl DbState {
    fn code(self) -> u32 {
        match self {
            Self::JustCreated => 1,
            Self::DirtyShutdown => 2,
            Self::CleanShutdown => 3,
        }
    }

    fn from_code(code: u32) -> Option<Self> {
        match code {
            1 => Some(Self::JustCreated),
            2 => Some(Self::DirtyShutdown),
            3 => Some(Self::CleanShutdown),
            _ => None,
        }
    }
}

/// A backup recorded in the header (filled by the backup feature).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct BackupRecord {
    /// Lowest generation in the backup.
    pub low_generation: u32,
    /// Highest generation in the backup.
    pub high_generation: u32,
    /// When it was taken, µs since the Unix epoch.
    pub time_micros: u64,
}

/// One decoded header copy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DbHeader {
    /// Page size in bytes.
    pub page_size: u32,
    /// Clean or dirty.
    pub state: DbState,
    /// Write sequence.
    pub sequence: u64,
    /// The database's own signature.
    pub signature: StreamSignature,
    /// The log stream this database belongs to.
    pub log_signature: StreamSignature,
    /// Log generations required (min, max); (0, 0) when clean.
    pub log_required: (u32, u32),
    /// Position up to which the database is consistent.
    pub last_consistent: LogPosition,
    /// Where recovery starts.
    pub checkpoint: LogPosition,
    /// Catalog root page (0 when there are no tables).
    pub catalog_root: u64,
    /// First page never allocated.
    pub next_page: u64,
    /// First free-list page (0: none).
    pub free_list: u64,
    /// The last transaction included.
    pub state_version: u64,
    /// Times the database was repaired.
    pub repair_count: u64,
    /// Checksum errors seen while reading.
    pub checksum_errors: u64,
    /// Last full backup.
    pub last_full_backup: BackupRecord,
    /// Last incremental backup.
    pub last_incremental_backup: BackupRecord,
    /// The log timeline.
    pub timeline: u64,
    /// The content at the checkpoint: every table's entries and the database checksum.
    pub content: crate::content::ContentTotals,
}

impl DbHeader {
    /// Encodes the header as copy `slot`.
    pub fn encode(&self, slot: u8) -> [u8; HEADER_BYTES] {
        assert!(slot < 2, "header slot {slot}");
        assert!(PAGE_SIZES.contains(&(self.page_size as usize)));
        let mut bytes = [0u8; HEADER_BYTES];
        let mut writer = FieldWriter::new(&mut bytes);
        writer.bytes(MAGIC);
        writer.u32(0);
        writer.bytes(&[DATABASE_FILE_TYPE, slot]);
        writer.bytes(&HEADER_FORMAT_VERSION.to_le_bytes());
        writer.u32(self.page_size);
        writer.u32(self.state.code());
        writer.u64(self.sequence);
        writer.signature(&self.signature);
        writer.signature(&self.log_signature);
        writer.u32(self.log_required.0);
        writer.u32(self.log_required.1);
        writer.u64(self.last_consistent.to_u64());
        writer.u64(self.checkpoint.to_u64());
        for value in [
            self.catalog_root,
            self.next_page,
            self.free_list,
            self.state_version,
            self.repair_count,
            self.checksum_errors,
        ] {
            writer.u64(value);
        }
        writer.backup(&self.last_full_backup);
        writer.backup(&self.last_incremental_backup);
        writer.u64(self.timeline);
        writer.u64(self.content.entries);
        writer.u64(self.content.checksum);
        let checksum = crc32c::crc32c(&bytes[12..]);
        bytes[8..12].copy_from_slice(&checksum.to_le_bytes());
        bytes
    }

    /// Decodes one copy; the error says what is wrong with it.
    pub fn decode(bytes: &[u8]) -> Result<(Self, u8), String> {
        if bytes.len() < HEADER_BYTES {
            return Err(format!("only {} bytes", bytes.len()));
        }
        if bytes[..HEADER_BYTES].iter().all(|&byte| byte == 0) {
            return Err("not initialised (all zeros)".into());
        }
        if &bytes[..8] != MAGIC {
            return Err("bad magic".into());
        }
        let stored = read_u32(bytes, 8);
        let computed = crc32c::crc32c(&bytes[12..HEADER_BYTES]);
        if stored != computed {
            return Err(format!(
                "bad checksum: stored {stored:#010x}, computed {computed:#010x}"
            ));
        }
        Self::decode_fields(bytes)
    }

    fn decode_fields(bytes: &[u8]) -> Result<(Self, u8), String> {
        if bytes[12] != DATABASE_FILE_TYPE {
            return Err(format!("file type {} is not a database", bytes[12]));
        }
        let version = u16::from_le_bytes([bytes[14], bytes[15]]);
        if version == 1 {
            return Err(
                "format version 1, written by an earlier release of BlueJet (before \
                        content checksums): this release reads version 2; copy its tables with \
                        the earlier release's `bluejet dump` into a new database"
                    .into(),
            );
        }
        if version != HEADER_FORMAT_VERSION {
            return Err(format!("unknown format version {version}"));
        }
        let page_size = read_u32(bytes, 16);
        if !PAGE_SIZES.contains(&(page_size as usize)) {
            return Err(format!("invalid page size {page_size}"));
        }
        let state = DbState::from_code(read_u32(bytes, 20))
            .ok_or_else(|| format!("unknown state {}", read_u32(bytes, 20)))?;
        let header = Self {
            page_size,
            state,
            sequence: read_u64(bytes, 24),
            signature: read_signature(bytes, 32),
            log_signature: read_signature(bytes, 56),
            log_required: (read_u32(bytes, 80), read_u32(bytes, 84)),
            last_consistent: LogPosition::from_u64(read_u64(bytes, 88)),
            checkpoint: LogPosition::from_u64(read_u64(bytes, 96)),
            catalog_root: read_u64(bytes, 104),
            next_page: read_u64(bytes, 112),
            free_list: read_u64(bytes, 120),
            state_version: read_u64(bytes, 128),
            repair_count: read_u64(bytes, 136),
            checksum_errors: read_u64(bytes, 144),
            last_full_backup: read_backup(bytes, 152),
            last_incremental_backup: read_backup(bytes, 168),
            timeline: read_u64(bytes, 184),
            content: crate::content::ContentTotals {
                entries: read_u64(bytes, 192),
                checksum: read_u64(bytes, 200),
            },
        };
        header.check_bounds()?;
        Ok((header, bytes[13]))
    }

    /// Page numbers in the header must lie inside the allocated range.
    fn check_bounds(&self) -> Result<(), String> {
        let first = first_data_page(self.page_size as usize);
        if self.next_page > super::format::MAX_PAGE_NUMBER {
            return Err(format!("next page {} beyond any file", self.next_page));
        }
        if self.next_page < first {
            return Err(format!(
                "next page {} below first data page",
                self.next_page
            ));
        }
        for (name, page) in [
            ("catalog root", self.catalog_root),
            ("free list", self.free_list),
        ] {
            if page != 0 && (page < first || page >= self.next_page) {
                return Err(format!("{name} page {page} outside the file's pages"));
            }
        }
        Ok(())
    }
}

fn read_signature(bytes: &[u8], offset: usize) -> StreamSignature {
    let mut id = [0u8; 16];
    id.copy_from_slice(&bytes[offset..offset + 16]);
    StreamSignature {
        id,
        created_micros: read_u64(bytes, offset + 16),
    }
}

fn read_backup(bytes: &[u8], offset: usize) -> BackupRecord {
    BackupRecord {
        low_generation: read_u32(bytes, offset),
        high_generation: read_u32(bytes, offset + 4),
        time_micros: read_u64(bytes, offset + 8),
    }
}

struct FieldWriter<'a> {
    bytes: &'a mut [u8],
    at: usize,
}

impl<'a> FieldWriter<'a> {
    fn new(bytes: &'a mut [u8]) -> Self {
        Self { bytes, at: 0 }
    }

    fn bytes(&mut self, data: &[u8]) {
        self.bytes[self.at..self.at + data.len()].copy_from_slice(data);
        self.at += data.len();
    }

    fn u32(&mut self, value: u32) {
        self.bytes(&value.to_le_bytes());
    }

    fn u64(&mut self, value: u64) {
        self.bytes(&value.to_le_bytes());
    }

    fn signature(&mut self, signature: &StreamSignature) {
        self.bytes(&signature.id);
        self.u64(signature.created_micros);
    }

    fn backup(&mut self, backup: &BackupRecord) {
        self.u32(backup.low_generation);
        self.u32(backup.high_generation);
        self.u64(backup.time_micros);
    }
}

/// The condition of one header copy as read from disk.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CopyCondition {
    /// Valid, with this sequence number.
    Valid(u64),
    /// Damaged or missing, with the reason.
    Damaged(String),
}

/// Both copies as read, and the one in use.
#[derive(Clone, Debug)]
pub struct HeaderRead {
    /// The newest valid copy.
    pub header: DbHeader,
    /// Which slot it came from.
    pub slot: u8,
    /// The condition of copy 0 and copy 1.
    pub conditions: [CopyCondition; 2],
}

/// Picks the newest valid copy of two raw header slots; `Err` lists why both are unusable.
pub fn choose(copies: [&[u8]; 2]) -> Result<HeaderRead, [String; 2]> {
    let decoded = copies.map(DbHeader::decode);
    let conditions = [0, 1].map(|slot| match &decoded[slot] {
        Ok((header, stored_slot)) if *stored_slot as usize == slot => {
            CopyCondition::Valid(header.sequence)
        }
        Ok((_, stored_slot)) => {
            CopyCondition::Damaged(format!("copy of slot {stored_slot} found in slot {slot}"))
        }
        Err(reason) => CopyCondition::Damaged(reason.clone()),
    });
    let best = [0u8, 1]
        .into_iter()
        .filter(|&slot| matches!(conditions[slot as usize], CopyCondition::Valid(_)))
        .max_by_key(|&slot| {
            decoded[slot as usize]
                .as_ref()
                .map(|(h, _)| h.sequence)
                .ok()
        });
    match best {
        Some(slot) => {
            let (header, _) = decoded[slot as usize].clone().expect("valid copy decodes");
            Ok(HeaderRead {
                header,
                slot,
                conditions,
            })
        }
        None => Err(conditions.map(|condition| match condition {
            CopyCondition::Damaged(reason) => reason,
            CopyCondition::Valid(_) => unreachable!("no valid copy"),
        })),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> DbHeader {
        DbHeader {
            page_size: 8192,
            state: DbState::DirtyShutdown,
            sequence: 7,
            signature: StreamSignature::generate(),
            log_signature: StreamSignature::generate(),
            log_required: (3, 5),
            last_consistent: LogPosition::new(5, 100),
            checkpoint: LogPosition::new(3, 40),
            catalog_root: 9,
            next_page: 20,
            free_list: 0,
            state_version: 11,
            repair_count: 0,
            checksum_errors: 1,
            last_full_backup: BackupRecord::default(),
            last_incremental_backup: BackupRecord::default(),
            timeline: 1,
            content: crate::content::ContentTotals {
                entries: 3,
                checksum: u64::MAX - 1,
            },
        }
    }

    #[test]
    fn the_newest_valid_copy_wins_and_a_damaged_one_is_named() {
        let older = sample();
        let newer = DbHeader {
            sequence: 8,
            ..sample()
        };
        let zero = older.encode(0);
        let mut one = newer.encode(1);
        let read = choose([&zero, &one]).unwrap();
        assert_eq!((read.slot, read.header.sequence), (1, 8));
        one[300] ^= 4;
        let read = choose([&zero, &one]).unwrap();
        assert_eq!(read.slot, 0);
        assert!(matches!(read.conditions[1], CopyCondition::Damaged(_)));
        assert!(choose([&[0u8; 512], &one]).is_err());
    }
}
