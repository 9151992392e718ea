//! The common header every database page starts with, and its checksum.
//!
//! Layout (little-endian), 32 bytes:
//! ```text
//!   0  u32  crc32c of the page number (u64 LE) followed by bytes 4..page_size
//!   4  u8   page type (see [`PageType`])
//!   5  u8   page format version (1)
//!   6  u16  entry count (meaning depends on the type)
//!   8  u64  page number
//!  16  u64  log position of the last change (generation << 32 | offset)
//!  24  u64  link: leftmost child (branch), next page (long value, free list), else 0
//! ```
//! Keying the checksum by the page number makes a page read from the wrong place fail.

use crate::log::LogPosition;

/// Bytes of the common page header.
pub const PAGE_HEADER_BYTES: usize = 32;
/// The page format version this build writes and reads.
pub const PAGE_FORMAT_VERSION: u8 = 1;
/// No page number reaches this (8 PiB of 8 KiB pages): a bound on every page number read
/// from disk, so that no offset computed from one overflows.
pub const MAX_PAGE_NUMBER: u64 = 1 << 40;
/// Page sizes a database may use.
pub const PAGE_SIZES: [usize; 4] = [4096, 8192, 16384, 32768];

// The layout the format states, checked when the crate compiles: every page size a power of
// two that holds the header copies' 4 KiB slots, and the common header as documented.
const _: () = {
    assert!(PAGE_HEADER_BYTES == 32);
    let mut index = 0;
    while index < PAGE_SIZES.len() {
        assert!(PAGE_SIZES[index].is_power_of_two() && PAGE_SIZES[index] >= 4096);
        index += 1;
    }
    assert!(MAX_PAGE_NUMBER.checked_mul(32768).is_some());
};

/// What a page holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum PageType {
    /// An inner B+tree node: keys and child page numbers.
    Branch = 1,
    /// A B+tree leaf: keys and values.
    Leaf = 2,
    /// A piece of a long value.
    LongValue = 3,
    /// A piece of the persisted free-page list.
    FreeList = 4,
}

impl PageType {
    /// The type for a type byte, if it is one.
    pub fn from_byte(byte: u8) -> Option<Self> {
        match byte {
            1 => Some(Self::Branch),
            2 => Some(Self::Leaf),
            3 => Some(Self::LongValue),
            4 => Some(Self::FreeList),
            _ => None,
        }
    }

    /// A short lowercase name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Branch => "branch",
            Self::Leaf => "leaf",
            Self::LongValue => "long value",
            Self::FreeList => "free list",
        }
    }
}

/// Why a page read from disk cannot be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PageProblem {
    /// Every byte is zero: the page was never written.
    NotInitialised,
    /// The checksum does not match (a torn write, bit rot, or a page from another place).
    BadChecksum {
        /// The checksum stored in the page.
        stored: u32,
        /// The checksum computed over the content.
        computed: u32,
    },
    /// The checksum matches but the page says it is another page.
    WrongPageNumber {
        /// The page number stored inside.
        found: u64,
    },
    /// An unknown page type or format version.
    UnknownFormat {
        /// The type byte.
        page_type: u8,
        /// The version byte.
        version: u8,
    },
    /// The page verifies but its content is inconsistent.
    Malformed(String),
}

impl std::fmt::Display for PageProblem {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotInitialised => write!(formatter, "page not initialised (all zeros)"),
            Self::BadChecksum { stored, computed } => write!(
                formatter,
                "bad checksum: stored {stored:#010x}, computed {computed:#010x}"
            ),
            Self::WrongPageNumber { found } => {
                write!(
                    formatter,
                    "wrong page number: the page says it is page {found}"
                )
            }
            Self::UnknownFormat { page_type, version } => write!(
                formatter,
                "unknown page type {page_type} or format version {version}"
            ),
            Self::Malformed(reason) => write!(formatter, "malformed page: {reason}"),
        }
    }
}

/// The checksum of a page, keyed by its page number.
pub fn page_checksum(page_number: u64, page: &[u8]) -> u32 {
    let seed = crc32c::crc32c(&page_number.to_le_bytes());
    crc32c::crc32c_append(seed, &page[4..])
}

/// Writes the common header fields and seals the page with its checksum.
pub fn seal(page: &mut [u8], page_type: PageType, count: u16, number: u64, lsn: LogPosition) {
    assert!(PAGE_SIZES.contains(&page.len()), "page size {}", page.len());
    page[4] = page_type as u8;
    page[5] = PAGE_FORMAT_VERSION;
    page[6..8].copy_from_slice(&count.to_le_bytes());
    page[8..16].copy_from_slice(&number.to_le_bytes());
    page[16..24].copy_from_slice(&lsn.to_u64().to_le_bytes());
    let checksum = page_checksum(number, page);
    page[0..4].copy_from_slice(&checksum.to_le_bytes());
}

/// Checks a page read from disk at `number`: checksum, page number, type and version.
pub fn verify(page: &[u8], number: u64) -> Result<PageType, PageProblem> {
    let stored = read_u32(page, 0);
    let computed = page_checksum(number, page);
    if stored != computed {
        if page.iter().all(|&byte| byte == 0) {
            return Err(PageProblem::NotInitialised);
        }
        let found = read_u64(page, 8);
        if found != number && page_checksum(found, page) == stored {
            return Err(PageProblem::WrongPageNumber { found });
        }
        return Err(PageProblem::BadChecksum { stored, computed });
    }
    let found = read_u64(page, 8);
    if found != number {
        return Err(PageProblem::WrongPageNumber { found });
    }
    match PageType::from_byte(page[4]) {
        Some(page_type) if page[5] == PAGE_FORMAT_VERSION => Ok(page_type),
        _ => Err(PageProblem::UnknownFormat {
            page_type: page[4],
            version: page[5],
        }),
    }
}

/// The page type byte, unchecked.
pub fn page_type(page: &[u8]) -> Option<PageType> {
    PageType::from_byte(page[4])
}

/// The entry count field.
pub fn count(page: &[u8]) -> u16 {
    read_u16(page, 6)
}

/// The log position of the page's last change.
pub fn lsn(page: &[u8]) -> LogPosition {
    LogPosition::from_u64(read_u64(page, 16))
}

/// The link field (leftmost child or next page).
pub fn link(page: &[u8]) -> u64 {
    read_u64(page, 24)
}

/// Sets the link field (before sealing).
pub fn set_link(page: &mut [u8], link: u64) {
    page[24..32].copy_from_slice(&link.to_le_bytes());
}

/// A little-endian u16 at `offset`; the caller has bounded `offset`.
pub fn read_u16(bytes: &[u8], offset: usize) -> u16 {
    u16::from_le_bytes([bytes[offset], bytes[offset + 1]])
}

/// A little-endian u32 at `offset`.
pub fn read_u32(bytes: &[u8], offset: usize) -> u32 {
    let mut word = [0; 4];
    word.copy_from_slice(&bytes[offset..offset + 4]);
    u32::from_le_bytes(word)
}

/// A little-endian u64 at `offset`.
pub fn read_u64(bytes: &[u8], offset: usize) -> u64 {
    let mut word = [0; 8];
    word.copy_from_slice(&bytes[offset..offset + 8]);
    u64::from_le_bytes(word)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_page_verifies_only_at_its_own_number() {
        let mut page = vec![0u8; 4096];
        page[100] = 7;
        seal(&mut page, PageType::Leaf, 3, 42, LogPosition::new(2, 64));
        assert_eq!(verify(&page, 42), Ok(PageType::Leaf));
        assert_eq!(
            verify(&page, 43),
            Err(PageProblem::WrongPageNumber { found: 42 })
        );
        page[200] ^= 1;
        assert!(matches!(
            verify(&page, 42),
            Err(PageProblem::BadChecksum { .. })
        ));
        assert_eq!(verify(&[0u8; 4096], 5), Err(PageProblem::NotInitialised));
        assert_eq!(lsn(&page), LogPosition::new(2, 64));
    }
}
