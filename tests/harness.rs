//! The test harness itself. A blocking read with a timeout fails with
//! EINTR whenever its thread takes a signal (SA_RESTART does not restart
//! it). CI once failed `sigterm_stops_cleanly_and_publishes_wills` with
//! "CONNACK, got EOF" while the broker had sent the CONNACK: the harness
//! took the interrupted read for the end of the connection.

mod common;
use common::*;
use std::os::unix::thread::JoinHandleExt;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

#[test]
fn a_read_interrupted_by_a_signal_goes_on_waiting() {
    // A handler, so that the signal interrupts rather than being ignored
    // or ending the process.
    signal_hook::flag::register(
        signal_hook::consts::SIGUSR1,
        Arc::new(AtomicBool::new(false)),
    )
    .expect("SIGUSR1 handler");
    let b = TestBroker::start();
    let (mut sub, _) = Raw::mqtt(b.addr, "sub", true);
    sub.subscribe(1, &[("t", 0)]);
    let reader = std::thread::spawn(move || sub.read_publish());
    // Interrupt the reader while it waits for the PUBLISH (it waits up to
    // WAIT; these signals come within 200 ms).
    for _ in 0..10 {
        std::thread::sleep(Duration::from_millis(20));
        // SAFETY: the thread has not been joined, so its pthread_t is valid.
        let rc = unsafe { libc::pthread_kill(reader.as_pthread_t(), libc::SIGUSR1) };
        assert_eq!(rc, 0, "pthread_kill");
    }
    let (mut publ, _) = Raw::mqtt(b.addr, "pub", true);
    publ.send(&publish_packet(
        "t",
        b"after the signals",
        0,
        0,
        false,
        false,
    ));
    let got = reader.join().expect("the reader kept waiting");
    assert_eq!(got.payload, b"after the signals");
}
