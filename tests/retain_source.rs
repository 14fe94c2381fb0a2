//! `check_retain_source` (mosquitto's fix for CVE-2018-12546): a retained
//! message is not sent to a new subscription once the client that
//! published it may no longer write to its topic, under the ACL in force
//! at delivery: after a SIGHUP reload, and after a restart (the publisher
//! is stored with the message).

mod common;
use common::process::{temp_file, Process};
use common::*;

/// w and v may write under r/, s reads everything.
const ACL_BEFORE: &str = "user w\ntopic write r/#\nuser v\ntopic write r/#\nuser s\ntopic read #\n";
/// w has lost r/ except r/keep.
const ACL_AFTER: &str =
    "user w\ntopic write r/keep\nuser v\ntopic write r/#\nuser s\ntopic read #\n";

fn connect(p: &Process, id: &str, user: &str) -> Raw {
    let mut c = Raw::connect(p.addr);
    c.send(&connect_user_packet(id, user, true));
    c.expect(&[0x20, 2, 0, 0]);
    c
}

fn publish_retained(c: &mut Raw, topic: &str, pkid: u16) {
    c.send(&publish_packet(topic, b"v", 1, pkid, true, false));
    c.expect(&[0x40, 2, 0, pkid as u8]);
}

/// w's r/a and r/keep, then v's r/v and (last) r/zz.
fn publish_all(p: &Process) {
    let mut w = connect(p, "w-client", "w");
    publish_retained(&mut w, "r/a", 1);
    publish_retained(&mut w, "r/keep", 2);
    let mut v = connect(p, "v-client", "v");
    publish_retained(&mut v, "r/v", 1);
    publish_retained(&mut v, "r/zz", 2);
}

/// The retained topics user s gets for an exact subscription to r/a and
/// then r/#, in the order received: scans run in subscription order and
/// r/zz is the last one of r/#, so nothing can come after it.
fn retained_seen(p: &Process) -> Vec<String> {
    let mut s = connect(p, "s-client", "s");
    s.subscribe(1, &[("r/a", 0), ("r/#", 0)]);
    let mut seen = Vec::new();
    while seen.last().map(String::as_str) != Some("r/zz") {
        let m = s.read_publish();
        assert!(m.retain, "{} sent as retained", m.topic);
        seen.push(m.topic);
    }
    s.ping();
    seen
}

#[test]
fn a_retained_message_is_withheld_once_its_publisher_may_no_longer_write() {
    let acl = temp_file("retain-source-hup.acl", ACL_BEFORE);
    let mut p = Process::with_config(
        "retain-source-hup.conf",
        &format!("acl_file {}\n", acl.display()),
    );
    publish_all(&p);
    let all = ["r/a", "r/a", "r/keep", "r/v", "r/zz"];
    assert_eq!(retained_seen(&p), all);
    std::fs::write(&acl, ACL_AFTER).unwrap();
    p.signal("-HUP");
    p.wait_for("password and ACL files reloaded");
    assert_eq!(retained_seen(&p), ["r/keep", "r/v", "r/zz"]);
}

#[test]
fn the_publisher_of_a_retained_message_is_stored_with_it() {
    let acl = temp_file("retain-source-store.acl", ACL_BEFORE);
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("retain-source-store");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let conf = format!(
        "acl_file {}\npersistence true\npersistence_location {}\n",
        acl.display(),
        dir.display()
    );
    let mut p = Process::with_config("retain-source-store.conf", &conf);
    publish_all(&p);
    p.signal("-TERM");
    assert!(p.exit_status().success());
    std::fs::write(&acl, ACL_AFTER).unwrap();
    let p = Process::with_config("retain-source-store.conf", &conf);
    assert_eq!(retained_seen(&p), ["r/keep", "r/v", "r/zz"]);
}

#[test]
fn check_retain_source_false_sends_every_retained_message() {
    let acl = temp_file("retain-source-off.acl", ACL_BEFORE);
    let mut p = Process::with_config(
        "retain-source-off.conf",
        &format!("acl_file {}\ncheck_retain_source false\n", acl.display()),
    );
    publish_all(&p);
    std::fs::write(&acl, ACL_AFTER).unwrap();
    p.signal("-HUP");
    p.wait_for("password and ACL files reloaded");
    assert_eq!(retained_seen(&p), ["r/a", "r/a", "r/keep", "r/v", "r/zz"]);
}

/// A retained Will is the client's message too: withheld once the client
/// may no longer write to the Will's topic.
#[test]
fn a_retained_will_carries_its_client_as_source() {
    let acl = temp_file("retain-source-will.acl", ACL_BEFORE);
    let mut p = Process::with_config(
        "retain-source-will.conf",
        &format!("acl_file {}\n", acl.display()),
    );
    let mut will = Raw::connect(p.addr);
    let mut packet = connect_with_will("w-will", true, 60, "r/a", b"gone", 1, true);
    // The same CONNECT with user name w: flag 0x80 and the field last.
    packet[9] |= 0x80;
    packet.extend_from_slice(&[0, 1, b'w']);
    packet[1] += 3;
    will.send(&packet);
    will.expect(&[0x20, 2, 0, 0]);
    drop(will); // closed without DISCONNECT: the Will is published
    p.wait_for("(w-will): closed");
    let mut v = connect(&p, "v-client", "v");
    publish_retained(&mut v, "r/zz", 1);
    assert_eq!(retained_seen(&p), ["r/a", "r/a", "r/zz"]);
    std::fs::write(&acl, ACL_AFTER).unwrap();
    p.signal("-HUP");
    p.wait_for("password and ACL files reloaded");
    assert_eq!(retained_seen(&p), ["r/zz"]);
}
