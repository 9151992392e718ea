//! A simulated disk for crash and fault tests.
//!
//! Every file has a *written* image (what reads see) and a *durable* image (what survives a
//! crash). `sync_data` makes a file's written image durable; `sync_directory` makes the
//! creations, renames and removals in that directory durable, in the order they happened.
//! [`SimulatedFileSystem::crash`] throws away everything that was not synced, and, with a
//! seeded generator, may instead keep or drop each 4 KiB page of an unsynced write whole, or
//! keep, drop or garble it sector by sector, in any order, and keep any prefix of the unsynced
//! directory operations. Handles opened
//! before a crash fail afterwards. [`SimulatedFileSystem::fail_at`] fails the Nth operation.
//!
//! Three behaviours of real disks and of Linux go beyond dropping unsynced writes:
//! - **A failed sync lies afterwards** (Linux): the writes it should have made durable are
//!   marked clean without reaching the disk. Reads keep returning them, a later sync succeeds
//!   without writing them, and a crash loses them. Only
//!   [`FileHandle::reread_from_device`] (evicting the cached pages) shows what the disk holds.
//! - **A synced write can be lost** ([`SimulatedFileSystem::lose_synced_write`]): a sector or
//!   a page of it reads back as zeros or as what it replaced.
//! - **A directory is an entry in its parent**: a created directory (and everything in it)
//!   is lost at a crash unless its parent was synced after the creation.

use super::{FileHandle, FileSystem, OpenMode};
use parking_lot::Mutex;
use rand::{Rng, SeedableRng};
use rand_pcg::Pcg64;
use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The size of the unit a torn write tears at.
pub const SECTOR_BYTES: usize = 512;
/// Unit of the kernel's writeback: a page survives a crash whole, not at all, or torn.
pub const PAGE_BYTES: usize = 4096;

/// How an injected fault behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultMode {
    /// Only the Nth operation fails.
    Once,
    /// The Nth operation and every later one fail.
    Persistent,
    /// The Nth and later writes fail as a full disk would (ENOSPC); syncs still work.
    DiskFull,
}

#[derive(Clone, Debug)]
enum PendingWrite {
    Data { offset: usize, bytes: Vec<u8> },
    Length(usize),
}

#[derive(Default)]
struct Inode {
    /// What reads return (the page cache).
    written: Vec<u8>,
    /// What the disk holds.
    durable: Vec<u8>,
    /// Writes not yet on the disk, oldest first. `durable` with these applied in order is
    /// `written`, unless a failed sync dropped some (then `written` holds bytes the disk
    /// never will).
    pending: Vec<PendingWrite>,
    /// The latest synced writes (bounded), for [`SimulatedFileSystem::lose_synced_write`].
    synced: Vec<SyncedWrite>,
    /// Successful syncs of this file that made a data write durable.
    data_syncs: u64,
}

/// A write a sync made durable, with the bytes it replaced on the disk.
#[derive(Clone, Debug)]
struct SyncedWrite {
    offset: usize,
    replaced: Vec<u8>,
    /// `Inode::data_syncs` of the sync that made it durable.
    sync: u64,
}

/// Synced writes remembered per file.
const SYNCED_HISTORY: usize = 256;

impl Inode {
    /// Applies the pending writes to the disk image (a successful sync).
    fn make_durable(&mut self) {
        let pending = std::mem::take(&mut self.pending);
        let writes_data = pending
            .iter()
            .any(|write| matches!(write, PendingWrite::Data { .. }));
        if writes_data {
            self.data_syncs += 1;
        }
        for write in pending {
            match write {
                PendingWrite::Length(length) => self.durable.resize(length, 0),
                PendingWrite::Data { offset, bytes } => {
                    // What the disk held there, zeros past its end.
                    let end = (offset + bytes.len()).min(self.durable.len());
                    let mut replaced = self.durable.get(offset..end).unwrap_or(&[]).to_vec();
                    replaced.resize(bytes.len(), 0);
                    write_into(&mut self.durable, offset, &bytes);
                    self.synced.push(SyncedWrite {
                        offset,
                        replaced,
                        sync: self.data_syncs,
                    });
                }
            }
        }
        let excess = self.synced.len().saturating_sub(SYNCED_HISTORY);
        self.synced.drain(..excess);
    }

    /// Whether a later synced write covers part of synced write `index`: losing it then
    /// shows nothing of it, and reverting its bytes would undo the later write instead.
    fn overwritten_later(&self, index: usize) -> bool {
        let write = &self.synced[index];
        let range = write.offset..write.offset + write.replaced.len();
        self.synced[index + 1..].iter().any(|later| {
            later.offset < range.end && range.start < later.offset + later.replaced.len()
        })
    }

    /// A sync failed, with Linux's semantics: the dirty pages are marked clean and never
    /// written; reads still return them until they are evicted.
    fn fail_sync(&mut self) {
        self.pending.clear();
    }
}

#[derive(Clone, Debug)]
enum DirectoryOperation {
    Link(PathBuf, usize),
    Rename(PathBuf, PathBuf),
    Remove(PathBuf),
    /// A directory created (an entry in its parent).
    MakeDirectory(PathBuf),
}

impl DirectoryOperation {
    fn directory(&self) -> Option<&Path> {
        match self {
            DirectoryOperation::Link(path, _)
            | DirectoryOperation::Rename(path, _)
            | DirectoryOperation::Remove(path)
            | DirectoryOperation::MakeDirectory(path) => path.parent(),
        }
    }

    fn apply(&self, names: &mut BTreeMap<PathBuf, usize>, directories: &mut BTreeSet<PathBuf>) {
        match self {
            DirectoryOperation::MakeDirectory(path) => {
                directories.insert(path.clone());
            }
            DirectoryOperation::Link(path, inode) => {
                names.insert(path.clone(), *inode);
            }
            DirectoryOperation::Rename(from, to) => {
                if let Some(inode) = names.remove(from) {
                    names.insert(to.clone(), inode);
                }
            }
            DirectoryOperation::Remove(path) => {
                names.remove(path);
            }
        }
    }
}

#[derive(Default)]
struct State {
    inodes: Vec<Inode>,
    names: BTreeMap<PathBuf, usize>,
    durable_names: BTreeMap<PathBuf, usize>,
    pending_directory: Vec<DirectoryOperation>,
    directories: BTreeSet<PathBuf>,
    /// Directories whose creation is durable (synced in their parent).
    durable_directories: BTreeSet<PathBuf>,
    epoch: u64,
    operations: u64,
    fault: Option<(u64, FaultMode)>,
    syncs: u64,
    /// `sync_data` calls so far, successful or not.
    sync_attempts: u64,
    /// The `sync_data` call (by `sync_attempts`) that fails, once (see
    /// [`SimulatedFileSystem::fail_sync_at`]).
    sync_fault: Option<u64>,
    /// How long a sync takes to return after it took its snapshot (see
    /// [`SimulatedFileSystem::set_sync_delay`]).
    sync_delay: std::time::Duration,
}

impl State {
    /// Counts one operation and says whether it must fail.
    fn tick(&mut self, is_write: bool) -> io::Result<()> {
        self.operations += 1;
        let Some((at, mode)) = self.fault else {
            return Ok(());
        };
        let failing = match mode {
            FaultMode::Once => self.operations == at,
            FaultMode::Persistent => self.operations >= at,
            FaultMode::DiskFull => self.operations >= at && is_write,
        };
        if !failing {
            return Ok(());
        }
        if mode == FaultMode::DiskFull {
            return Err(io::Error::from_raw_os_error(28));
        }
        Err(io::Error::other(format!(
            "injected fault at operation {}",
            self.operations
        )))
    }

    fn inode(&mut self, epoch: u64, inode: usize) -> io::Result<&mut Inode> {
        if epoch != self.epoch {
            return Err(io::Error::other("handle opened before a simulated crash"));
        }
        Ok(&mut self.inodes[inode])
    }
}

/// A simulated disk. Cloning gives another handle on the same disk.
#[derive(Clone, Default)]
pub struct SimulatedFileSystem {
    state: Arc<Mutex<State>>,
    /// Ownership locks, in memory (they are not files on this disk).
    locks: Arc<super::simulated_locks::SimulatedLocks>,
}

struct SimulatedFile {
    state: Arc<Mutex<State>>,
    inode: usize,
    epoch: u64,
    writable: bool,
}

impl SimulatedFileSystem {
    /// A new, empty disk.
    pub fn new() -> Self {
        Self::default()
    }

    /// Fails the operation numbered `operation` (counting from the next one as
    /// `operations() + 1`), once or from then on.
    pub fn fail_at(&self, operation: u64, mode: FaultMode) {
        self.state.lock().fault = Some((operation, mode));
    }

    /// Fails the `nth` call of `sync_data` from now on (1 is the next), once, as Linux fails
    /// an fsync on a write-back error: EIO, the unsynced writes of that file are dropped from
    /// the disk's future but reads keep returning them.
    pub fn fail_sync_at(&self, nth: u64) {
        let mut state = self.state.lock();
        state.sync_fault = Some(state.sync_attempts + nth);
    }

    /// Removes the injected faults (of `fail_at` and `fail_sync_at`).
    pub fn clear_fault(&self) {
        let mut state = self.state.lock();
        state.fault = None;
        state.sync_fault = None;
    }

    /// How many operations were counted so far.
    pub fn operations(&self) -> u64 {
        self.state.lock().operations
    }

    /// Makes every `sync_data` return `delay` after it made the file durable (outside the
    /// disk's lock), so that other threads' writes overlap a sync in flight as they do on a
    /// real disk; a sync still covers only what was written before it began.
    pub fn set_sync_delay(&self, delay: std::time::Duration) {
        self.state.lock().sync_delay = delay;
    }

    /// How many `sync_data` calls succeeded so far.
    pub fn syncs(&self) -> u64 {
        self.state.lock().syncs
    }

    /// A crash that loses every unsynced write and directory operation.
    pub fn crash_clean(&self) {
        let mut state = self.state.lock();
        for inode in &mut state.inodes {
            inode.written = inode.durable.clone();
            inode.pending.clear();
        }
        state.pending_directory.clear();
        Self::finish_crash(&mut state);
    }

    /// A crash where every unsynced write is, per page or sector and in a random order, kept,
    /// dropped or garbled, and a random prefix of the unsynced directory operations is kept.
    pub fn crash(&self, seed: u64) {
        let mut random = Pcg64::seed_from_u64(seed);
        let mut state = self.state.lock();
        for inode in &mut state.inodes {
            let mut image = inode.durable.clone();
            let mut pending = std::mem::take(&mut inode.pending);
            shuffle(&mut pending, &mut random);
            for write in pending {
                apply_torn(&mut image, write, &mut random);
            }
            inode.durable = image.clone();
            inode.written = image;
        }
        let pending = std::mem::take(&mut state.pending_directory);
        let kept = random.random_range(0..=pending.len());
        let State {
            durable_names,
            durable_directories,
            ..
        } = &mut *state;
        for operation in &pending[..kept] {
            operation.apply(durable_names, durable_directories);
        }
        Self::finish_crash(&mut state);
    }

    fn finish_crash(state: &mut State) {
        // A directory whose entry in its parent was lost takes everything below it along. (A
        // directory never created through `create_directory` came with the disk.)
        let lost: BTreeSet<PathBuf> = state
            .directories
            .difference(&state.durable_directories)
            .cloned()
            .collect();
        let survives = |path: &Path| path.ancestors().all(|ancestor| !lost.contains(ancestor));
        state.durable_names.retain(|path, _| survives(path));
        state.durable_directories.retain(|path| survives(path));
        state.directories = state.durable_directories.clone();
        state.names = state.durable_names.clone();
        state.epoch += 1;
        state.fault = None;
        state.sync_fault = None;
    }

    /// Loses one synced write of a file whose path `select` accepts, as a disk that
    /// acknowledged a write it then lost: one of its sectors or pages reads back as zeros, or
    /// as the bytes it replaced. Only writes of a sync followed by a later sync of data to
    /// the same file are chosen (the loss of the newest write of a file cannot be told from a
    /// crash before it, by any reader), and of those only writes no later synced write
    /// overlaps. Returns the file and the byte range lost, if any
    /// write could be chosen.
    pub fn lose_synced_write(
        &self,
        seed: u64,
        select: impl Fn(&Path) -> bool,
    ) -> Option<(PathBuf, std::ops::Range<usize>)> {
        let mut random = Pcg64::seed_from_u64(seed);
        let mut state = self.state.lock();
        let choices: Vec<(PathBuf, usize, usize)> = state
            .names
            .iter()
            .filter(|(path, _)| select(path))
            .flat_map(|(path, &inode)| {
                let node = &state.inodes[inode];
                node.synced
                    .iter()
                    .enumerate()
                    .filter(|(index, write)| {
                        write.sync < node.data_syncs && !node.overwritten_later(*index)
                    })
                    .map(move |(index, _)| (path.clone(), inode, index))
            })
            .collect();
        if choices.is_empty() {
            return None;
        }
        let (path, inode, index) = choices[random.random_range(0..choices.len())].clone();
        let node = &mut state.inodes[inode];
        let write = node.synced[index].clone();
        let unit = if random.random_bool(0.5) {
            SECTOR_BYTES
        } else {
            PAGE_BYTES
        };
        let units = write.replaced.len().div_ceil(unit);
        let first = random.random_range(0..units) * unit;
        let last = (first + unit).min(write.replaced.len());
        let bytes = match random.random_bool(0.5) {
            true => vec![0; last - first],
            false => write.replaced[first..last].to_vec(),
        };
        let range = write.offset + first..write.offset + last;
        for image in [&mut node.durable, &mut node.written] {
            if image.len() >= range.end {
                image[range.clone()].copy_from_slice(&bytes);
            }
        }
        Some((path, range))
    }

    /// The written content of a file, if it exists (for tests that damage files).
    pub fn read_file(&self, path: &Path) -> Option<Vec<u8>> {
        let state = self.state.lock();
        let inode = *state.names.get(path)?;
        Some(state.inodes[inode].written.clone())
    }

    /// Replaces a file's content, durably (for tests that damage files).
    pub fn write_file_durably(&self, path: &Path, bytes: &[u8]) {
        let mut state = self.state.lock();
        let mut ancestor = path.parent();
        while let Some(directory) = ancestor {
            state.directories.insert(directory.to_owned());
            state.durable_directories.insert(directory.to_owned());
            ancestor = directory.parent();
        }
        let inode = match state.names.get(path) {
            Some(&inode) => inode,
            None => {
                state.inodes.push(Inode::default());
                let inode = state.inodes.len() - 1;
                state.names.insert(path.to_owned(), inode);
                state.durable_names.insert(path.to_owned(), inode);
                inode
            }
        };
        let node = &mut state.inodes[inode];
        node.written = bytes.to_vec();
        node.durable = bytes.to_vec();
        node.pending.clear();
    }
}

fn shuffle<T>(items: &mut [T], random: &mut Pcg64) {
    for index in (1..items.len()).rev() {
        let other = random.random_range(0..=index);
        items.swap(index, other);
    }
}

/// Applies one unsynced write to a crashed image: page by page (4 KiB, as the kernel writes
/// back), each page kept whole, dropped whole, or torn (each sector kept, dropped or garbled),
/// a third of the time each. Whole pages matter: a later page that survives whole while an
/// earlier one is torn is the case recovery must not take for damage, and with sectors alone a
/// multi-sector segment would almost never survive.
fn apply_torn(image: &mut Vec<u8>, write: PendingWrite, random: &mut Pcg64) {
    match write {
        PendingWrite::Length(length) => {
            if random.random_bool(0.5) {
                image.resize(length, 0);
            }
        }
        PendingWrite::Data { offset, bytes } => {
            for (index, page) in bytes.chunks(PAGE_BYTES).enumerate() {
                let start = offset + index * PAGE_BYTES;
                match random.random_range(0..3u32) {
                    0 => write_into(image, start, page),
                    1 => {}
                    _ => tear_into(image, start, page, random),
                }
            }
        }
    }
}

/// Writes `bytes` at `offset` sector by sector, each kept, dropped or garbled.
fn tear_into(image: &mut Vec<u8>, offset: usize, bytes: &[u8], random: &mut Pcg64) {
    for (index, chunk) in bytes.chunks(SECTOR_BYTES).enumerate() {
        let start = offset + index * SECTOR_BYTES;
        match random.random_range(0..10u32) {
            0..=3 => write_into(image, start, chunk),
            4..=7 => {}
            _ => {
                let garbage: Vec<u8> = (0..chunk.len()).map(|_| random.random()).collect();
                write_into(image, start, &garbage);
            }
        }
    }
}

fn write_into(image: &mut Vec<u8>, offset: usize, bytes: &[u8]) {
    let end = offset + bytes.len();
    if image.len() < end {
        image.resize(end, 0);
    }
    image[offset..end].copy_from_slice(bytes);
}

impl FileHandle for SimulatedFile {
    fn read_at(&self, buffer: &mut [u8], offset: u64) -> io::Result<usize> {
        let mut state = self.state.lock();
        let inode = state.inode(self.epoch, self.inode)?;
        let offset = usize::try_from(offset).map_err(io::Error::other)?;
        if offset >= inode.written.len() {
            return Ok(0);
        }
        let count = buffer.len().min(inode.written.len() - offset);
        buffer[..count].copy_from_slice(&inode.written[offset..offset + count]);
        Ok(count)
    }

    fn write_at(&self, data: &[u8], offset: u64) -> io::Result<()> {
        if !self.writable {
            return Err(io::Error::new(
                io::ErrorKind::PermissionDenied,
                "read-only handle",
            ));
        }
        let mut state = self.state.lock();
        state.tick(true)?;
        let inode = state.inode(self.epoch, self.inode)?;
        write_into(
            &mut inode.written,
            usize::try_from(offset).map_err(io::Error::other)?,
            data,
        );
        inode.pending.push(PendingWrite::Data {
            offset: usize::try_from(offset).map_err(io::Error::other)?,
            bytes: data.to_vec(),
        });
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        let mut state = self.state.lock();
        state.sync_attempts += 1;
        let failing = match state.tick(false) {
            Err(error) => Some(error),
            Ok(()) if state.sync_fault == Some(state.sync_attempts) => {
                Some(io::Error::from_raw_os_error(5))
            }
            Ok(()) => None,
        };
        if let Some(error) = failing {
            state.inode(self.epoch, self.inode)?.fail_sync();
            return Err(error);
        }
        state.inode(self.epoch, self.inode)?.make_durable();
        state.syncs += 1;
        let delay = state.sync_delay;
        drop(state);
        if !delay.is_zero() {
            std::thread::sleep(delay);
        }
        Ok(())
    }

    fn set_len(&self, length: u64) -> io::Result<()> {
        let mut state = self.state.lock();
        state.tick(true)?;
        let inode = state.inode(self.epoch, self.inode)?;
        let length = usize::try_from(length).map_err(io::Error::other)?;
        inode.written.resize(length, 0);
        inode.pending.push(PendingWrite::Length(length));
        Ok(())
    }

    fn size(&self) -> io::Result<u64> {
        let mut state = self.state.lock();
        Ok(state.inode(self.epoch, self.inode)?.written.len() as u64)
    }

    fn reread_from_device(&self) -> io::Result<()> {
        self.sync_data()?;
        let mut state = self.state.lock();
        let inode = state.inode(self.epoch, self.inode)?;
        inode.written = inode.durable.clone();
        Ok(())
    }
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{}: no such file", path.display()),
    )
}

impl FileSystem for SimulatedFileSystem {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn FileHandle>> {
        let mut state = self.state.lock();
        let inode = match (mode, state.names.get(path).copied()) {
            (OpenMode::CreateNew, Some(_)) => {
                return Err(io::Error::new(io::ErrorKind::AlreadyExists, "file exists"));
            }
            (OpenMode::CreateNew, None) => {
                state.tick(true)?;
                state.inodes.push(Inode::default());
                let inode = state.inodes.len() - 1;
                state.names.insert(path.to_owned(), inode);
                let operation = DirectoryOperation::Link(path.to_owned(), inode);
                state.pending_directory.push(operation);
                inode
            }
            (_, Some(inode)) => inode,
            (_, None) => return Err(not_found(path)),
        };
        Ok(Arc::new(SimulatedFile {
            state: Arc::clone(&self.state),
            inode,
            epoch: state.epoch,
            writable: mode != OpenMode::Read,
        }))
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut state = self.state.lock();
        state.tick(false)?;
        let inode = state.names.remove(from).ok_or_else(|| not_found(from))?;
        state.names.insert(to.to_owned(), inode);
        let operation = DirectoryOperation::Rename(from.to_owned(), to.to_owned());
        state.pending_directory.push(operation);
        Ok(())
    }

    fn remove(&self, path: &Path) -> io::Result<()> {
        let mut state = self.state.lock();
        state.tick(false)?;
        state.names.remove(path).ok_or_else(|| not_found(path))?;
        let operation = DirectoryOperation::Remove(path.to_owned());
        state.pending_directory.push(operation);
        Ok(())
    }

    fn list(&self, directory: &Path) -> io::Result<Vec<String>> {
        let state = self.state.lock();
        if !state.directories.contains(directory) {
            return Err(not_found(directory));
        }
        let names = state
            .names
            .keys()
            .filter(|path| path.parent() == Some(directory))
            .filter_map(|path| path.file_name()?.to_str().map(str::to_owned))
            .collect();
        Ok(names)
    }

    fn sync_directory(&self, directory: &Path) -> io::Result<()> {
        let mut state = self.state.lock();
        state.tick(false)?;
        let pending = std::mem::take(&mut state.pending_directory);
        let (synced, kept): (Vec<_>, Vec<_>) = pending
            .into_iter()
            .partition(|operation| operation.directory() == Some(directory));
        let State {
            durable_names,
            durable_directories,
            ..
        } = &mut *state;
        for operation in &synced {
            operation.apply(durable_names, durable_directories);
        }
        state.pending_directory = kept;
        Ok(())
    }

    fn create_directory(&self, directory: &Path) -> io::Result<()> {
        let mut state = self.state.lock();
        let mut path = Some(directory);
        let mut created = Vec::new();
        while let Some(current) = path {
            if state.directories.insert(current.to_owned()) {
                created.push(current.to_owned());
            }
            path = current.parent();
        }
        // Outermost first, as `mkdir -p` creates them; a root has no parent to record it in.
        for current in created.into_iter().rev() {
            match current.parent() {
                Some(_) => {
                    let operation = DirectoryOperation::MakeDirectory(current);
                    state.pending_directory.push(operation);
                }
                None => {
                    state.durable_directories.insert(current);
                }
            }
        }
        Ok(())
    }

    fn exists(&self, path: &Path) -> bool {
        let state = self.state.lock();
        state.names.contains_key(path) || state.directories.contains(path)
    }

    /// A lock taken before a simulated crash counts as released by it.
    fn lock_exclusive(
        &self,
        path: &Path,
        holder: &super::Holder,
    ) -> io::Result<super::LockAttempt> {
        let epoch = self.state.lock().epoch;
        Ok(self.locks.lock(path, holder, epoch))
    }

    fn probe_lock(&self, path: &Path) -> io::Result<super::LockProbe> {
        let epoch = self.state.lock().epoch;
        Ok(self.locks.probe(path, epoch))
    }
}
