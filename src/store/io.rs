//! The store's file I/O, behind a small interface: the directory it lives
//! in ([`Storage`]) and its open files ([`LogFile`]). [`DirStorage`] is
//! the real one; tests put one in front of the store that injects faults
//! (short writes, ENOSPC, EIO on fsync, EMFILE) and simulates power cuts.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

/// One open file of the store, written only at its end.
pub trait LogFile: Send {
    /// Appends all of `data`; on error some prefix may have been written.
    fn append(&mut self, data: &[u8]) -> io::Result<()>;
    /// `fdatasync`: what was appended is on stable storage.
    fn sync_data(&mut self) -> io::Result<()>;
    /// Cuts the file to `len` bytes (what a failed append left after it).
    fn truncate(&mut self, len: u64) -> io::Result<()>;
}

/// The directory of the store: files by name.
pub trait Storage: Send {
    /// Creates the directory if needed (and makes its entry durable).
    fn prepare(&mut self) -> io::Result<()>;
    /// Opens `name` for appending, creating it if missing; with its content.
    fn open(&mut self, name: &str) -> io::Result<(Box<dyn LogFile>, Vec<u8>)>;
    /// Creates `name` empty (replacing any file of that name).
    fn create(&mut self, name: &str) -> io::Result<Box<dyn LogFile>>;
    /// Renames `from` over `to`, atomically.
    fn rename(&mut self, from: &str, to: &str) -> io::Result<()>;
    /// Deletes `name`; a missing file is not an error.
    fn remove(&mut self, name: &str) -> io::Result<()>;
    /// `fsync` of the directory: renames and creations are durable.
    fn sync_dir(&mut self) -> io::Result<()>;
}

/// Files in a directory of the file system.
pub struct DirStorage {
    dir: PathBuf,
}

impl DirStorage {
    pub fn new(dir: &Path) -> DirStorage {
        DirStorage {
            dir: dir.to_path_buf(),
        }
    }
}

fn sync_path(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

impl LogFile for File {
    fn append(&mut self, data: &[u8]) -> io::Result<()> {
        self.write_all(data)
    }
    fn sync_data(&mut self) -> io::Result<()> {
        File::sync_data(self)
    }
    fn truncate(&mut self, len: u64) -> io::Result<()> {
        self.set_len(len)
    }
}

impl Storage for DirStorage {
    fn prepare(&mut self) -> io::Result<()> {
        if self.dir.exists() && !self.dir.is_dir() {
            // create_dir_all would only say "File exists".
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a directory (persistence_location names the directory the store goes in)",
            ));
        }
        if !self.dir.is_dir() {
            std::fs::create_dir_all(&self.dir)?;
            // The new directory's own entry, so a power cut keeps it.
            if let Some(parent) = self.dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                sync_path(parent)?;
            }
        }
        Ok(())
    }

    fn open(&mut self, name: &str) -> io::Result<(Box<dyn LogFile>, Vec<u8>)> {
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(self.dir.join(name))?;
        let mut data = Vec::new();
        file.read_to_end(&mut data)?;
        Ok((Box::new(file), data))
    }

    fn create(&mut self, name: &str) -> io::Result<Box<dyn LogFile>> {
        // Append mode (writes always at the end, also after a truncate),
        // which cannot be combined with truncating on open.
        self.remove(name)?;
        let file = OpenOptions::new()
            .append(true)
            .create_new(true)
            .open(self.dir.join(name))?;
        Ok(Box::new(file))
    }

    fn rename(&mut self, from: &str, to: &str) -> io::Result<()> {
        std::fs::rename(self.dir.join(from), self.dir.join(to))
    }

    fn remove(&mut self, name: &str) -> io::Result<()> {
        match std::fs::remove_file(self.dir.join(name)) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }

    fn sync_dir(&mut self) -> io::Result<()> {
        sync_path(&self.dir)
    }
}
