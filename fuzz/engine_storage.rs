//! The `engine` target's store: a directory in memory, which the engines
//! of one run share (a restart reads what the engine before it wrote).

use midge::store::{LogFile, Storage};
use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex};

/// A store's directory in memory, shared by the engines of one run.
#[derive(Clone, Default)]
pub struct MemStorage(Arc<Mutex<HashMap<String, Vec<u8>>>>);

/// One file of a [`MemStorage`].
struct MemFile {
    dir: MemStorage,
    name: String,
}

impl MemStorage {
    fn with<T>(&self, f: impl FnOnce(&mut HashMap<String, Vec<u8>>) -> T) -> T {
        let mut files = self.0.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut files)
    }

    fn file(&self, name: &str) -> Box<dyn LogFile> {
        Box::new(MemFile {
            dir: self.clone(),
            name: name.to_string(),
        })
    }
}

impl LogFile for MemFile {
    fn append(&mut self, data: &[u8]) -> io::Result<()> {
        let name = &self.name;
        self.dir.with(|files| {
            files
                .entry(name.clone())
                .or_default()
                .extend_from_slice(data)
        });
        Ok(())
    }

    fn sync_data(&mut self) -> io::Result<()> {
        Ok(())
    }

    fn truncate(&mut self, len: u64) -> io::Result<()> {
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        self.dir.with(|files| {
            if let Some(f) = files.get_mut(&self.name) {
                f.truncate(len);
            }
        });
        Ok(())
    }
}

impl Storage for MemStorage {
    fn prepare(&mut self) -> io::Result<()> {
        Ok(())
    }

    fn open(&mut self, name: &str) -> io::Result<(Box<dyn LogFile>, Vec<u8>)> {
        let content = self.with(|files| files.entry(name.to_string()).or_default().clone());
        Ok((self.file(name), content))
    }

    fn create(&mut self, name: &str) -> io::Result<Box<dyn LogFile>> {
        self.with(|files| files.insert(name.to_string(), Vec::new()));
        Ok(self.file(name))
    }

    fn rename(&mut self, from: &str, to: &str) -> io::Result<()> {
        self.with(|files| {
            let content = files.remove(from).unwrap_or_default();
            files.insert(to.to_string(), content);
        });
        Ok(())
    }

    fn remove(&mut self, name: &str) -> io::Result<()> {
        self.with(|files| files.remove(name));
        Ok(())
    }

    fn sync_dir(&mut self) -> io::Result<()> {
        Ok(())
    }
}
