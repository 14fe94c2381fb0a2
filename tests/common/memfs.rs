//! An in-memory [`Storage`] for the store, which injects faults (a full
//! disk, EIO on fdatasync, EMFILE, a failing directory fsync) and knows
//! what a power cut would leave: what was fdatasynced, any prefix of the
//! writes since, the last one torn at a 512-byte sector, and only the
//! renames and creations a directory fsync made durable.
//!
//! A failed fdatasync loses its writes for good (as Linux does: the pages
//! are marked clean), though reads still see them: the "fsyncgate"
//! lesson, where a later fdatasync succeeds without them.

use midge::store::{LogFile, Storage};
use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};

pub const SECTOR: usize = 512;
const ENOSPC: i32 = 28;
const EIO: i32 = 5;
const EMFILE: i32 = 24;

#[derive(Clone, Debug)]
enum Op {
    Write { at: usize, data: Vec<u8> },
    Truncate(usize),
}

fn apply(file: &mut Vec<u8>, op: &Op) {
    match op {
        Op::Write { at, data } => {
            if file.len() < at + data.len() {
                file.resize(at + data.len(), 0);
            }
            file[*at..at + data.len()].copy_from_slice(data);
        }
        Op::Truncate(len) => file.resize(*len, 0),
    }
}

#[derive(Default, Clone)]
struct Inode {
    /// What is on the platter.
    durable: Vec<u8>,
    /// What reads see.
    current: Vec<u8>,
    /// Changes since the last fdatasync, in order.
    ops: Vec<Op>,
}

/// Faults to inject; change them while the store runs.
#[derive(Default)]
pub struct Faults {
    /// Free bytes (None: no limit): an append past them writes what fits
    /// and fails with ENOSPC.
    pub space: Option<usize>,
    /// The next this many fdatasyncs fail with EIO.
    pub failing_syncs: usize,
    /// Opening and creating files fail with EMFILE while set.
    pub no_files: bool,
    /// Files that can still be opened or created (None: no limit); then
    /// EMFILE.
    pub files_left: Option<usize>,
    /// The next this many directory fsyncs fail with EIO.
    pub failing_dir_syncs: usize,
    /// How long an fdatasync takes (a slow disk).
    pub sync_delay: std::time::Duration,
}

impl Faults {
    /// True if no file may be opened now; counts one off `files_left`.
    fn take_file(&mut self) -> bool {
        match &mut self.files_left {
            _ if self.no_files => true,
            Some(0) => true,
            Some(n) => {
                *n -= 1;
                false
            }
            None => false,
        }
    }
}

/// Files by name, as a power cut left them.
pub type Image = HashMap<String, Vec<u8>>;

#[derive(Default)]
struct State {
    inodes: Vec<Inode>,
    names: HashMap<String, usize>,
    durable_names: HashMap<String, usize>,
    faults: Faults,
    creates: usize,
    syncs: usize,
    /// While recording: what a power cut just before each fdatasync could
    /// have left, every variant, with the fdatasyncs done before it.
    crashes: Option<Vec<(usize, Image)>>,
}

impl State {
    /// Files as they are on the platter, with inode `ino` as `file`.
    fn image_with(&self, ino: usize, file: &[u8]) -> Image {
        self.durable_names
            .iter()
            .map(|(name, &i)| {
                let data = if i == ino {
                    file.to_vec()
                } else {
                    self.inodes[i].durable.clone()
                };
                (name.clone(), data)
            })
            .collect()
    }

    /// Every state inode `ino` may be found in after a power cut now.
    fn crash_images(&self, ino: usize) -> Vec<Image> {
        let inode = &self.inodes[ino];
        let mut file = inode.durable.clone();
        let mut out = vec![self.image_with(ino, &file)];
        for op in &inode.ops {
            if let Op::Write { at, data } = op {
                let end = at + data.len();
                // Torn: whole sectors of it landed, the rest did not.
                let mut cut = (at / SECTOR + 1) * SECTOR;
                while cut < end {
                    let mut torn = file.clone();
                    apply(
                        &mut torn,
                        &Op::Write {
                            at: *at,
                            data: data[..cut - at].to_vec(),
                        },
                    );
                    out.push(self.image_with(ino, &torn));
                    cut += SECTOR;
                }
                // The size grew, the data did not land.
                let mut zeros = file.clone();
                zeros.resize(zeros.len().max(end), 0);
                out.push(self.image_with(ino, &zeros));
            }
            apply(&mut file, op);
            out.push(self.image_with(ino, &file));
        }
        out
    }
}

/// The file system; clones share it.
#[derive(Clone, Default)]
pub struct MemFs(Arc<Mutex<State>>);

impl MemFs {
    pub fn new() -> MemFs {
        MemFs::default()
    }

    /// A file system holding `image`, all of it durable.
    pub fn from_image(image: &Image) -> MemFs {
        let fs = MemFs::new();
        {
            let mut s = fs.state();
            for (name, data) in image {
                let ino = s.inodes.len();
                s.inodes.push(Inode {
                    durable: data.clone(),
                    current: data.clone(),
                    ops: Vec::new(),
                });
                s.names.insert(name.clone(), ino);
            }
            s.durable_names = s.names.clone();
        }
        fs
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn faults(&self, change: impl FnOnce(&mut Faults)) {
        change(&mut self.state().faults);
    }

    /// Tries to create a file so far (compactions started or attempted).
    pub fn creates(&self) -> usize {
        self.state().creates
    }

    /// Directory fsyncs still to fail.
    pub fn state_dir_failures_left(&self) -> usize {
        self.state().faults.failing_dir_syncs
    }

    /// Successful fdatasyncs so far.
    pub fn syncs(&self) -> usize {
        self.state().syncs
    }

    /// From now on, keeps what a power cut before each fdatasync could leave.
    pub fn record_crashes(&self) {
        self.state().crashes = Some(Vec::new());
    }

    /// The power cuts recorded so far: (successful fdatasyncs before it,
    /// images).
    pub fn crashes(&self) -> Vec<(usize, Image)> {
        self.state().crashes.clone().unwrap_or_default()
    }

    /// What a power cut now would leave at the least: synced data under
    /// synced names.
    pub fn durable(&self) -> Image {
        let s = self.state();
        s.image_with(usize::MAX, &[])
    }

    /// What reads see now (a clean restart after the broker stopped).
    pub fn current(&self) -> Image {
        let s = self.state();
        s.names
            .iter()
            .map(|(n, &i)| (n.clone(), s.inodes[i].current.clone()))
            .collect()
    }

    pub fn storage(&self) -> Box<dyn Storage> {
        Box::new(self.clone())
    }

    fn file(&self, ino: usize) -> Box<dyn LogFile> {
        Box::new(MemFile {
            fs: self.clone(),
            ino,
        })
    }
}

/// True if `hay` holds `needle`.
pub fn holds(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

struct MemFile {
    fs: MemFs,
    ino: usize,
}

impl LogFile for MemFile {
    fn append(&mut self, data: &[u8]) -> io::Result<()> {
        let mut s = self.fs.state();
        let fits = s
            .faults
            .space
            .map_or(data.len(), |free| free.min(data.len()));
        if let Some(free) = &mut s.faults.space {
            *free -= fits;
        }
        let inode = &mut s.inodes[self.ino];
        let op = Op::Write {
            at: inode.current.len(),
            data: data[..fits].to_vec(),
        };
        apply(&mut inode.current, &op);
        inode.ops.push(op);
        if fits < data.len() {
            return Err(io::Error::from_raw_os_error(ENOSPC));
        }
        Ok(())
    }

    fn sync_data(&mut self) -> io::Result<()> {
        let delay = self.fs.state().faults.sync_delay;
        std::thread::sleep(delay); // unlocked: tests look meanwhile
        let mut s = self.fs.state();
        if s.faults.failing_syncs > 0 {
            s.faults.failing_syncs -= 1;
            s.inodes[self.ino].ops.clear(); // lost, though still read
            return Err(io::Error::from_raw_os_error(EIO));
        }
        let images = s.crashes.is_some().then(|| s.crash_images(self.ino));
        let done = s.syncs;
        if let (Some(all), Some(images)) = (&mut s.crashes, images) {
            all.extend(images.into_iter().map(|i| (done, i)));
        }
        let inode = &mut s.inodes[self.ino];
        for op in std::mem::take(&mut inode.ops) {
            apply(&mut inode.durable, &op);
        }
        s.syncs += 1;
        Ok(())
    }

    fn truncate(&mut self, len: u64) -> io::Result<()> {
        let mut s = self.fs.state();
        let inode = &mut s.inodes[self.ino];
        let freed = inode.current.len().saturating_sub(len as usize);
        let op = Op::Truncate(len as usize);
        apply(&mut inode.current, &op);
        inode.ops.push(op);
        if let Some(free) = &mut s.faults.space {
            *free += freed;
        }
        Ok(())
    }
}

impl Storage for MemFs {
    fn prepare(&mut self) -> io::Result<()> {
        Ok(())
    }

    fn open(&mut self, name: &str) -> io::Result<(Box<dyn LogFile>, Vec<u8>)> {
        let mut s = self.state();
        if s.faults.take_file() {
            return Err(io::Error::from_raw_os_error(EMFILE));
        }
        let ino = match s.names.get(name) {
            Some(&ino) => ino,
            None => {
                s.inodes.push(Inode::default());
                let ino = s.inodes.len() - 1;
                s.names.insert(name.to_string(), ino);
                ino
            }
        };
        let data = s.inodes[ino].current.clone();
        drop(s);
        Ok((self.file(ino), data))
    }

    fn create(&mut self, name: &str) -> io::Result<Box<dyn LogFile>> {
        let mut s = self.state();
        s.creates += 1;
        if s.faults.take_file() {
            return Err(io::Error::from_raw_os_error(EMFILE));
        }
        s.inodes.push(Inode::default());
        let ino = s.inodes.len() - 1;
        s.names.insert(name.to_string(), ino);
        drop(s);
        Ok(self.file(ino))
    }

    fn rename(&mut self, from: &str, to: &str) -> io::Result<()> {
        let mut s = self.state();
        let ino = s.names.remove(from).ok_or(io::ErrorKind::NotFound)?;
        if let Some(old) = s.names.insert(to.to_string(), ino) {
            let freed = s.inodes[old].current.len();
            if let Some(free) = &mut s.faults.space {
                *free += freed;
            }
        }
        Ok(())
    }

    fn remove(&mut self, name: &str) -> io::Result<()> {
        let mut s = self.state();
        if let Some(ino) = s.names.remove(name) {
            let freed = s.inodes[ino].current.len();
            if let Some(free) = &mut s.faults.space {
                *free += freed;
            }
        }
        Ok(())
    }

    fn sync_dir(&mut self) -> io::Result<()> {
        let mut s = self.state();
        if s.faults.failing_dir_syncs > 0 {
            s.faults.failing_dir_syncs -= 1;
            return Err(io::Error::from_raw_os_error(EIO));
        }
        s.durable_names = s.names.clone();
        Ok(())
    }
}
