//! The real file system, through `std::fs`.

use super::{FileHandle, FileSystem, OpenMode};
use parking_lot::Mutex;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileExt, OpenOptionsExt};
use std::path::Path;
use std::sync::Arc;

/// The operating system's file system.
#[derive(Clone, Copy, Debug, Default)]
pub struct OsFileSystem;

struct OsFile {
    file: File,
    /// Why a sync of this handle failed, if one did. Held across each `fdatasync`, so two
    /// syncs of one handle never run at once: Linux reports a writeback error to one sync
    /// of an open file only, and the other, running alongside, could return success for data
    /// that never reached the disk. After a failure every later sync fails too (an fsync
    /// error is fatal for the handle; recovery happens from the log).
    sync_failure: Mutex<Option<String>>,
}

impl FileHandle for OsFile {
    fn read_at(&self, buffer: &mut [u8], offset: u64) -> io::Result<usize> {
        self.file.read_at(buffer, offset)
    }
    fn write_at(&self, data: &[u8], offset: u64) -> io::Result<()> {
        self.file.write_all_at(data, offset)
    }
    fn sync_data(&self) -> io::Result<()> {
        let mut failure = self.sync_failure.lock();
        if let Some(reason) = failure.as_ref() {
            return Err(io::Error::other(format!(
                "an earlier sync of this file failed: {reason}"
            )));
        }
        self.file
            .sync_data()
            .inspect_err(|error| *failure = Some(error.to_string()))
    }
    fn set_len(&self, length: u64) -> io::Result<()> {
        self.file.set_len(length)
    }
    fn size(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }
    #[cfg(target_os = "linux")]
    fn start_writeback(&self, offset: u64, length: u64) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        let (Ok(offset), Ok(length)) = (i64::try_from(offset), i64::try_from(length)) else {
            return Ok(());
        };
        // The one `unsafe` in the engine: `sync_file_range` has no safe wrapper in std or
        // rustix.
        #[allow(unsafe_code)]
        // SAFETY: the descriptor is open for as long as `self.file` lives, and
        // `sync_file_range` only reads its integer arguments.
        let result = unsafe {
            libc::sync_file_range(
                self.file.as_raw_fd(),
                offset,
                length,
                libc::SYNC_FILE_RANGE_WRITE,
            )
        };
        match result {
            0 => Ok(()),
            _ => Err(io::Error::last_os_error()),
        }
    }
    #[cfg(target_os = "linux")]
    fn reread_from_device(&self) -> io::Result<()> {
        self.sync_data()?;
        // Clean pages only are evicted, which after the sync is all of them (unless another
        // process keeps the file mapped, which BlueJet never does).
        rustix::fs::fadvise(&self.file, 0, None, rustix::fs::Advice::DontNeed)
            .map_err(io::Error::from)
    }
    fn allocate(&self, length: u64) -> io::Result<()> {
        use rustix::fs::{fallocate, FallocateFlags};
        match fallocate(&self.file, FallocateFlags::empty(), 0, length) {
            Ok(()) => Ok(()),
            // A file system without fallocate still gets the size; space is then taken as
            // the log is written.
            Err(rustix::io::Errno::OPNOTSUPP) => self.file.set_len(length),
            Err(errno) => Err(errno.into()),
        }
    }
}

/// A file opened for writing must have one name: a hard link elsewhere (a `cp -al` "copy"
/// of a live database) would let a writer that owns the other directory write into this
/// database's files behind its ownership lock (found by an adversarial operator).
fn refuse_shared_inode(file: &File, path: &Path) -> io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let links = file.metadata()?.nlink();
    if links <= 1 {
        return Ok(());
    }
    Err(io::Error::other(format!(
        "{} has {links} hard links: a file BlueJet writes must have one name (copy it instead)",
        path.display()
    )))
}

impl FileSystem for OsFileSystem {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<Arc<dyn FileHandle>> {
        let mut options = OpenOptions::new();
        options.read(true);
        match mode {
            OpenMode::Read => {}
            OpenMode::ReadWrite => {
                options.write(true);
            }
            OpenMode::CreateNew => {
                // Files hold mail: readable by their owner only, whatever the umask (which
                // can only remove bits from 0600).
                options.write(true).create_new(true).mode(0o600);
            }
        }
        // Never blocks in `open`: a FIFO (or a device) planted under a name BlueJet reads
        // would hang it there (found by an adversarial test); it is refused below instead.
        // Regular files ignore O_NONBLOCK.
        options.custom_flags(libc::O_NONBLOCK);
        let file = options.open(path)?;
        if !file.metadata()?.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} is not a regular file", path.display()),
            ));
        }
        if mode == OpenMode::ReadWrite {
            refuse_shared_inode(&file, path)?;
        }
        Ok(Arc::new(OsFile {
            file,
            sync_failure: Mutex::new(None),
        }))
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }
    fn list(&self, directory: &Path) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(directory)? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                if let Some(name) = entry.file_name().to_str() {
                    names.push(name.to_owned());
                }
            }
        }
        names.sort();
        Ok(names)
    }
    fn sync_directory(&self, directory: &Path) -> io::Result<()> {
        File::open(directory)?.sync_all()
    }
    fn create_directory(&self, directory: &Path) -> io::Result<()> {
        // Directories of mail files: owner only, whatever the umask, as for files.
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(directory)
    }
    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }
    fn remove_directory(&self, directory: &Path) -> io::Result<()> {
        fs::remove_dir(directory)
    }
    fn lock_exclusive(
        &self,
        path: &Path,
        holder: &super::Holder,
    ) -> io::Result<super::LockAttempt> {
        super::lock::os_lock_exclusive(path, holder)
    }
    fn probe_lock(&self, path: &Path) -> io::Result<super::LockProbe> {
        super::lock::os_probe(path)
    }
}
