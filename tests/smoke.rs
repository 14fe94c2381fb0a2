mod common;
use common::*;

#[test]
fn pub_sub_qos1_round_trip() {
    let b = TestBroker::start();
    let (mut sub, _) = Raw::mqtt(b.addr, "sub", true);
    sub.subscribe(1, &[("a/+", 1)]);
    let (mut publ, _) = Raw::mqtt(b.addr, "pub", true);
    publ.send(&publish_packet("a/b", b"hi", 1, 7, false, false));
    publ.expect(&[0x40, 2, 0, 7]);
    let p = sub.read_publish();
    assert_eq!(
        (p.topic.as_str(), &p.payload[..], p.qos, p.dup),
        ("a/b", &b"hi"[..], 1, false)
    );
}
