//! The engine over a disk that fills up: an acknowledgement that needs the
//! store waits for it, the client's further input waits too, and what was
//! never stored is never acknowledged, not even in a closing connection's
//! last bytes.

use super::*;
use crate::store::{LogFile, Storage};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// Files in memory, on a disk that can be made full.
#[derive(Clone, Default)]
struct Disk {
    files: Arc<Mutex<HashMap<String, Vec<u8>>>>,
    full: Arc<AtomicBool>,
}

impl Disk {
    fn with_file<T>(&self, name: &str, f: impl FnOnce(&mut Vec<u8>) -> T) -> T {
        let mut files = self.files.lock().expect("disk lock");
        f(files.entry(name.to_string()).or_default())
    }
}

struct DiskFile {
    disk: Disk,
    name: String,
}

impl LogFile for DiskFile {
    fn append(&mut self, data: &[u8]) -> io::Result<()> {
        if self.disk.full.load(Ordering::SeqCst) {
            return Err(io::Error::from_raw_os_error(28)); // ENOSPC
        }
        self.disk
            .with_file(&self.name, |f| f.extend_from_slice(data));
        Ok(())
    }

    fn sync_data(&mut self) -> io::Result<()> {
        Ok(())
    }

    fn truncate(&mut self, len: u64) -> io::Result<()> {
        let len = usize::try_from(len).expect("a small file");
        self.disk.with_file(&self.name, |f| f.truncate(len));
        Ok(())
    }
}

impl Storage for Disk {
    fn prepare(&mut self) -> io::Result<()> {
        Ok(())
    }

    fn open(&mut self, name: &str) -> io::Result<(Box<dyn LogFile>, Vec<u8>)> {
        let content = self.with_file(name, |f| f.clone());
        Ok((self.file(name), content))
    }

    fn create(&mut self, name: &str) -> io::Result<Box<dyn LogFile>> {
        self.with_file(name, Vec::clear);
        Ok(self.file(name))
    }

    fn rename(&mut self, from: &str, to: &str) -> io::Result<()> {
        let mut files = self.files.lock().expect("disk lock");
        let content = files.remove(from).unwrap_or_default();
        files.insert(to.to_string(), content);
        Ok(())
    }

    fn remove(&mut self, name: &str) -> io::Result<()> {
        self.files.lock().expect("disk lock").remove(name);
        Ok(())
    }

    fn sync_dir(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Disk {
    fn file(&self, name: &str) -> Box<dyn LogFile> {
        Box::new(DiskFile {
            disk: self.clone(),
            name: name.to_string(),
        })
    }
}

/// An engine with a store on `disk`, a persistent session "sub" offline
/// with a QoS 1 subscription to `t` (so a QoS 1 PUBLISH to `t` must be
/// stored before it is acknowledged), and a connected publisher with this
/// keep-alive.
fn publisher_over(disk: &Disk, keep_alive: u16) -> (Harness, Client) {
    let mut h = Harness::with_storage(config(), Some(Box::new(disk.clone())));
    let (sub, _) = h.connect(V4, "sub", false);
    h.subscribe(sub, "t", QoS::AtLeastOnce);
    h.send(sub, &disconnect());
    let (publ, _) = h.connect_with(V4, &connect(V4, "pub", true, keep_alive, Properties::NONE));
    (h, publ)
}

fn pubacks(h: &mut Harness, c: Client) -> Vec<u16> {
    h.received(c)
        .into_iter()
        .map(|p| match p {
            Packet::PubAck(ack) => ack.pkid,
            other => panic!("expected PUBACK, got {other:?}"),
        })
        .collect()
}

#[test]
fn a_publish_the_full_disk_could_not_store_is_not_acknowledged_at_close_either() {
    let disk = Disk::default();
    let (mut h, publ) = publisher_over(&disk, 10);
    disk.full.store(true, Ordering::SeqCst);
    h.send(publ, &publish("t", QoS::AtLeastOnce, 1, b"unstored"));
    assert_eq!(pubacks(&mut h, publ), [] as [u16; 0], "held");
    // The keep-alive ends the connection (gracefully: its last bytes are
    // written); the held PUBACK is not among them.
    h.advance(Duration::from_secs(16));
    assert!(h.is_closed(publ), "keep-alive");
    assert_eq!(pubacks(&mut h, publ), [] as [u16; 0]);
}

#[test]
fn a_held_publisher_is_not_read_until_the_store_works_again() {
    let disk = Disk::default();
    let (mut h, publ) = publisher_over(&disk, 0);
    disk.full.store(true, Ordering::SeqCst);
    h.send(publ, &publish("t", QoS::AtLeastOnce, 1, b"first"));
    assert_eq!(pubacks(&mut h, publ), [] as [u16; 0], "held");
    // What the client sends next stays unread while the store fails.
    let mut wire = Wire::default();
    let second = publish("t", QoS::AtLeastOnce, 2, b"second");
    protocol::encode(&second, V4, &mut wire.bytes).expect("encodable");
    let sent = wire.bytes.len();
    h.deliver(publ, &mut wire);
    assert_eq!(wire.bytes.len(), sent, "not read while the store fails");
    // Space again: after the store's retry the first PUBACK goes out and
    // the client is read again.
    disk.full.store(false, Ordering::SeqCst);
    h.advance(Duration::from_secs(6));
    assert_eq!(pubacks(&mut h, publ), [1]);
    h.resume(publ, &mut wire);
    assert!(wire.bytes.is_empty(), "read again");
    assert_eq!(pubacks(&mut h, publ), [2]);
}
