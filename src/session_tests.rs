//! Unit tests of [`crate::session`].

use super::*;

fn delivery(qos: QoS) -> Delivery {
    Delivery {
        msg: Arc::new(Message::new("t".into(), Bytes::new())),
        qos,
        retain: false,
        seq: 0,
        sub_id: 0,
        shared: false,
    }
}

#[test]
fn pkids_skip_zero_and_ids_in_flight() {
    let mut s = Session::new("c".into(), false);
    s.next_pkid = u16::MAX - 1;
    let a = s.alloc_pkid();
    assert_eq!(a, u16::MAX);
    s.send(1, delivery(QoS::AtLeastOnce));
    assert_eq!(s.alloc_pkid(), 2, "0 and the in-flight 1 are skipped");
}

#[test]
fn after_a_wrap_only_the_ids_then_in_flight_are_skipped() {
    let mut s = Session::new("c".into(), false);
    s.next_pkid = u16::MAX - 2;
    let last = s.alloc_pkid();
    s.send(last, delivery(QoS::AtLeastOnce));
    s.send(3, delivery(QoS::ExactlyOnce));
    // Wrap: 65534 and 3 are in flight; ids given in this lap are not.
    let mut given = Vec::new();
    for _ in 0..65_534 {
        let id = s.alloc_pkid();
        given.push(id);
        if id == 2 {
            s.send(id, delivery(QoS::AtLeastOnce));
        }
    }
    assert_eq!(&given[..3], &[u16::MAX, 1, 2][..]);
    assert_eq!(given[3], 4, "3 is still in flight");
    assert!(!given.contains(&last) && !given.contains(&3));
    assert_eq!(*given.last().unwrap(), u16::MAX);
    // Next lap: 2, 3 and 65534 are in flight.
    assert_eq!((s.alloc_pkid(), s.alloc_pkid()), (1, 4));
}

#[test]
fn pubrec_moves_to_the_back_in_arrival_order() {
    let mut s = Session::new("c".into(), false);
    for pkid in [1, 2] {
        s.send(pkid, delivery(QoS::ExactlyOnce));
    }
    assert_eq!(s.pubrec(2), (true, Some(0)));
    assert_eq!(s.pubrec(1), (true, Some(0)));
    assert_eq!(s.pubrec(1), (true, None), "already released");
    let order: Vec<u16> = s.flow().inflight.iter().map(|f| f.pkid).collect();
    assert_eq!(order, vec![2, 1]);
    assert!(
        s.puback(1).is_none(),
        "a QoS 2 id is not completed by PUBACK"
    );
    assert!(s.pubcomp(1).is_some() && s.pubcomp(2).is_some());
    s.tidy();
    assert!(s.flow.is_none(), "the traffic state is freed when empty");
}

#[test]
fn a_filter_subscribed_again_restarts_its_scan() {
    let mut s = Session::new("c".into(), true);
    let (a, b): (Arc<str>, Arc<str>) = ("a/#".into(), "b/#".into());
    s.start_scan(a.clone(), QoS::AtMostOnce, false, 0);
    s.start_scan(b, QoS::AtLeastOnce, false, 0);
    if let Some(first) = s.flow_mut().scans.front_mut() {
        first.next = 5;
    }
    s.start_scan(a.clone(), QoS::ExactlyOnce, false, 0);
    let scans: Vec<(&str, QoS, usize)> = s
        .flow()
        .scans
        .iter()
        .map(|x| (&*x.filter, x.qos, x.next))
        .collect();
    assert_eq!(
        scans,
        vec![("a/#", QoS::ExactlyOnce, 0), ("b/#", QoS::AtLeastOnce, 0)],
        "restarted in place"
    );
    s.subscribe(a.clone(), QoS::ExactlyOnce.into());
    assert!(s.unsubscribe(&a));
    assert_eq!(
        s.flow().scans.front().map(|x| x.next),
        Some(usize::MAX),
        "cancelled"
    );
    assert!(s.owes());
    assert_eq!(s.next_qos(), None, "owed messages are still to be found");
}

#[test]
fn window_cap_0_is_no_maximum_but_the_packet_ids() {
    let mut s = Session::new("c".into(), true);
    s.start_window(0);
    assert_eq!(s.window(), START_WINDOW);
    for _ in 0..70_000 {
        s.ack_while_full = true;
        s.grow_window(0);
    }
    assert_eq!(s.window(), 65_535);
}

#[test]
fn inflight_bytes_follow_every_way_out_of_the_window() {
    let mut s = Session::new("c".into(), false);
    s.start_window(100);
    let sized = |seq: u64, len: usize| Delivery {
        msg: Arc::new(Message::new("t".into(), Bytes::from(vec![0; len]))),
        qos: QoS::AtLeastOnce,
        retain: false,
        seq,
        sub_id: 0,
        shared: false,
    };
    for (pkid, len) in [(1, 10), (2, 20), (3, 40)] {
        s.send(pkid, sized(u64::from(pkid), len));
    }
    assert!(s.window_open(71) && !s.window_open(70));
    assert!(s.puback(1).is_some());
    s.replay_done(2);
    assert_eq!(s.flow().inflight_bytes, 40);
    s.retain_deliveries(|_| false);
    assert_eq!(s.flow().inflight_bytes, 0);
}

#[test]
fn owed_retained_messages_are_checked_like_queued_ones() {
    let mut s = Session::new("c".into(), false);
    let owed = (delivery(QoS::AtMostOnce).msg, QoS::AtMostOnce, 0);
    s.flow_mut().owed.push_back(owed);
    s.start_scan("#".into(), QoS::AtMostOnce, false, 0);
    assert_eq!(s.retain_deliveries(|_| false), vec![0]);
    assert!(s.flow().owed.is_empty());
    let filtered = s.flow().scans.front().map(|x| x.filtered);
    assert_eq!(filtered, Some(true), "what the scan finds is checked");
}

#[test]
fn queue_bound_and_overflow_policies() {
    let mut s = Session::new("c".into(), false);
    let mut evicted = Vec::new();
    let mut d = delivery(QoS::AtLeastOnce);
    d.seq = 1;
    assert!(s.enqueue(d, (1, 0), Overflow::DropNewest, &mut evicted));
    let newest = delivery(QoS::AtLeastOnce);
    assert!(!s.enqueue(newest, (1, 0), Overflow::DropNewest, &mut evicted));
    let oldest = delivery(QoS::AtLeastOnce);
    assert!(s.enqueue(oldest, (1, 0), Overflow::DropOldest, &mut evicted));
    assert_eq!((s.flow().queue.len(), s.dropped, evicted), (1, 2, vec![1]));
}

/// Subscribing and unsubscribing cost the same with 1,000 or 40,000
/// subscriptions in place (the list was scanned and grown one slot at a
/// time: 25k / 50k / 100k subscriptions took 0.9 s / 7.1 s / 66 s).
#[test]
fn subscribing_costs_the_same_at_any_count() {
    let time_at = |n: usize| {
        let mut s = Session::new("c".into(), false);
        for i in 0..n {
            s.subscribe(format!("f/{i}").into(), QoS::AtMostOnce.into());
        }
        let extra: Vec<Arc<str>> = (0..500).map(|i| format!("x/{i}").into()).collect();
        (0..5)
            .map(|_| {
                let t = std::time::Instant::now();
                for f in &extra {
                    s.subscribe(f.clone(), QoS::AtLeastOnce.into());
                }
                for f in &extra {
                    assert!(s.unsubscribe(f));
                }
                t.elapsed()
            })
            .min()
            .unwrap_or_default()
    };
    let (few, many) = (time_at(1_000), time_at(40_000));
    assert!(many < few * 5, "at 1,000: {few:?}, at 40,000: {many:?}");
}

/// A member leaving a group gives up its queued shared messages and its
/// unacknowledged QoS 1 ones; a QoS 2 one sent once, and messages of its
/// own subscriptions, stay [MQTT-4.8.2-4].
#[test]
fn shared_messages_are_taken_for_another_member() {
    let mut s = Session::new("c".into(), false);
    s.start_window(100);
    let d = |qos, shared, len| Delivery {
        shared,
        msg: Arc::new(Message::new("t".into(), Bytes::from(vec![0; len]))),
        ..delivery(qos)
    };
    s.send(1, d(QoS::AtLeastOnce, true, 1));
    s.send(2, d(QoS::ExactlyOnce, true, 2));
    s.send(3, d(QoS::AtLeastOnce, false, 4));
    s.push(d(QoS::ExactlyOnce, true, 8));
    s.push(d(QoS::AtMostOnce, false, 16));
    let taken = s.take_shared(|_| true);
    let lens: Vec<_> = taken.iter().map(|d| d.msg.payload.len()).collect();
    assert_eq!(lens, vec![1, 8]);
    let pkids: Vec<_> = s.flow().inflight.iter().map(|f| f.pkid).collect();
    assert_eq!(pkids, vec![2, 3]);
    assert_eq!(s.flow().inflight_bytes, 6);
    assert_eq!((s.flow().queue.len(), s.flow().queued_bytes), (1, 16));
    assert!(s.take_shared(|_| false).is_empty());
}
