//! Embedding midge in a Rust program that owns its loop.
//!
//! Run: `cargo run --example embed` then, in another terminal,
//! `mosquitto_sub -t 'greetings/#' -v` and `mosquitto_pub -t commands/x -m hi`.
//! Stops after 60 seconds or on Ctrl-C.

use midge::protocol::QoS;
use midge::{AuthDecision, Broker, Config, Event};
use std::time::{Duration, Instant};

fn main() -> std::io::Result<()> {
    let mut config = Config::default();
    config.set("port", "1883").map_err(std::io::Error::other)?;
    let mut broker = Broker::new(config)?;
    broker.handle_signals()?;

    // The host is a local client: it subscribes with a callback...
    broker.subscribe("commands/#", QoS::AtLeastOnce, |m| {
        println!(
            "command on {}: {}",
            m.topic,
            String::from_utf8_lossy(m.payload)
        );
    })?;
    // ...sees who comes and goes, and decides who may connect.
    broker.set_event_callback(|e| match e {
        Event::Connected {
            client_id, addr, ..
        } => println!("{client_id} connected from {addr}"),
        Event::Disconnected {
            client_id, reason, ..
        } => println!("{client_id} left: {reason}"),
    });
    broker.set_authenticator(|c| match c.username {
        Some("intruder") => AuthDecision::NotAuthorized,
        _ => AuthDecision::Accept,
    });

    // The host's own loop: here a tick every second; a real program would
    // put `broker.as_raw_fd()` in its own poll set next to its other fds.
    let start = Instant::now();
    let mut next_tick = Instant::now();
    while !broker.is_shutting_down() && start.elapsed() < Duration::from_secs(60) {
        let now = Instant::now();
        if now >= next_tick {
            let uptime = start.elapsed().as_secs().to_string();
            broker.publish("greetings/uptime", uptime.as_bytes(), QoS::AtMostOnce, true)?;
            next_tick = now + Duration::from_secs(1);
        }
        broker.poll_once(Some(next_tick.saturating_duration_since(now)))?;
    }
    broker.shutdown();
    Ok(())
}
