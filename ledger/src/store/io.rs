//! File plumbing shared by the log and the chain: positional writes with the test seam for
//! write failures, directory fsync, advisory locks, and `io::Error` → [`StoreError`] context.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::StoreError;

/// Wraps an I/O error with the operation and the path it concerned.
pub(crate) fn io_err(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> StoreError {
    let path = path.to_path_buf();
    move |source| StoreError::Io { op, path, source }
}

/// The test seam for write failures: how many more bytes writes may put on disk before failing
/// with `ENOSPC` (`None`: no limit). A write that crosses the limit puts the bytes up to it on
/// disk first, as a real full disk can, so the rollback of a partial write is exercised.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct WriteBudget(pub(crate) Option<u64>);

impl WriteBudget {
    /// `write_all_at`, charged against the budget.
    pub(crate) fn write_all_at(&mut self, file: &File, buf: &[u8], offset: u64) -> io::Result<()> {
        if let Some(left) = self.0.as_mut() {
            let len = buf.len() as u64;
            if len > *left {
                let part = buf.get(..*left as usize).unwrap_or_default();
                file.write_all_at(part, offset)?;
                *left = 0;
                return Err(io::Error::from(io::ErrorKind::StorageFull));
            }
            *left -= len;
        }
        file.write_all_at(buf, offset)
    }
}

/// Makes a directory's entries (files created, renamed or removed in it) durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("fsync directory", dir))
}

/// Creates `dir` and any missing ancestors, durably: each new directory's entry in its parent is
/// fsynced, so that files made durable inside it cannot vanish with it after a power cut.
pub(crate) fn create_dir_durable(dir: &Path) -> Result<(), StoreError> {
    let mut missing = Vec::new();
    let mut next = Some(dir);
    while let Some(d) = next {
        if d.as_os_str().is_empty() || d.is_dir() {
            break;
        }
        missing.push(d);
        next = d.parent();
    }
    if missing.is_empty() {
        return Ok(());
    }
    std::fs::create_dir_all(dir).map_err(io_err("create directory", dir))?;
    for d in missing.iter().rev() {
        sync_dir(&parent_dir(d))?;
    }
    Ok(())
}

/// Takes an exclusive advisory lock on `path` (created if missing), held while the file is open.
pub(crate) fn lock_file(file: &File, path: &Path) -> Result<(), StoreError> {
    match file.try_lock() {
        Ok(()) => Ok(()),
        Err(std::fs::TryLockError::WouldBlock) => Err(StoreError::Locked {
            path: path.to_path_buf(),
        }),
        Err(std::fs::TryLockError::Error(e)) => Err(io_err("lock", path)(e)),
    }
}

/// Reads exactly `len` bytes at `offset`.
pub(crate) fn read_at(
    file: &File,
    path: &Path,
    offset: u64,
    len: usize,
) -> Result<Vec<u8>, StoreError> {
    let mut buf = vec![0u8; len];
    file.read_exact_at(&mut buf, offset)
        .map_err(io_err("read", path))?;
    Ok(buf)
}

/// The parent directory of a file path (`.` for a bare file name).
pub(crate) fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}
