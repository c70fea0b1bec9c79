//! The real world: senders that restart, connections that go quiet, viewers that misbehave.

mod common;

use camstream::protocol::Codec;
use camstream::receiver::{self, ReceiverConfig};
use camstream::stats::ReceiverStats;
use camstream::Stop;
use common::*;
use std::net::TcpListener;
use std::thread;

#[test]
fn the_receiver_rides_out_three_sender_restarts() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    // Each sender ends its stream by itself after ten frames have gone out.
    let sender_config = || {
        let mut config = config("test:160x120", Codec::Jpeg);
        config.frames = Some(10);
        config
    };
    let first = start_sender_on(sender_config(), listener);
    let stop = Stop::default();
    let receiving = {
        let stop = stop.clone();
        thread::spawn(move || {
            let config = ReceiverConfig {
                frames: None,
                once: false,
                ..receiver_config(addr, 0)
            };
            let mut stats = ReceiverStats::default();
            receiver::run(&config, &stop, &mut stats).map(|()| stats.report())
        })
    };
    let mut sent = first.join().frames_sent;
    for _ in 0..3 {
        // The same port again, as a restarted sender would have it.
        let listener = TcpListener::bind(addr).unwrap();
        sent += start_sender_on(sender_config(), listener)
            .join()
            .frames_sent;
    }
    stop.raise();
    let report = receiving.join().unwrap().unwrap();
    assert_eq!(report.reconnects, 3, "{report:?}");
    assert_eq!(report.frames, sent, "{report:?}");
    assert_eq!(report.dropped, 0, "{report:?}");
}
