//! The Rust API, as a program of the user's own uses it: [`camstream::Receiver`] against a
//! sender in the same process.

use crate::common::*;
use camstream::{Codec, PairingMode, Receiver, ReceiverOptions};
use std::net::TcpListener;
use std::thread;
use std::time::{Duration, SystemTime};

const WAIT: Duration = Duration::from_secs(10);

fn receive(receiver: &mut Receiver) -> camstream::Frame {
    receiver
        .recv_timeout(WAIT)
        .unwrap()
        .expect("a frame within 10 s")
}

#[test]
fn raw_frames_come_pixel_for_pixel_with_their_numbers_and_capture_times() {
    let sender = start_sender(config("test:160x120", Codec::Raw));
    let mut receiver = Receiver::connect(&sender.addr.to_string(), PairingMode::Insecure).unwrap();
    let mut last = None;
    for _ in 0..10 {
        let frame = receive(&mut receiver);
        assert_eq!(
            (frame.width, frame.height, frame.codec),
            (160, 120, Codec::Raw)
        );
        assert!(
            frame.bgr == pattern_frame(160, 120, frame.seq),
            "frame {}",
            frame.seq
        );
        assert_eq!(frame.encoded, frame.bgr);
        assert!(
            last.is_none_or(|last| frame.seq > last),
            "{} after {last:?}",
            frame.seq
        );
        last = Some(frame.seq);
        // Captured in this process a moment ago: the clocks are one.
        let age = SystemTime::now()
            .duration_since(frame.capture_time)
            .unwrap();
        assert!(age < Duration::from_secs(1), "{age:?}");
        assert!(frame.latency <= age, "{:?} > {age:?}", frame.latency);
    }
    let stats = receiver.stats();
    assert_eq!(stats.frames, 10);
    assert!(stats.latency_ms.is_some());
}

#[test]
fn jpeg_frames_come_close_to_the_original_over_a_paired_connection() {
    let sender = start_sender(camstream::sender::SenderConfig {
        pairing: paired(),
        ..config("test:160x120", Codec::Jpeg)
    });
    let mut receiver = Receiver::connect(&sender.addr.to_string(), paired()).unwrap();
    for _ in 0..5 {
        let frame = receive(&mut receiver);
        assert_eq!(frame.codec, Codec::Jpeg);
        assert_eq!(&frame.encoded[..2], [0xff, 0xd8]);
        let quality = psnr(&frame.bgr, &pattern_frame(160, 120, frame.seq));
        assert!(quality > 30.0, "frame {}: {quality:.1} dB", frame.seq);
    }
}

#[test]
fn a_wrong_code_is_an_error_naming_it() {
    let sender = start_sender(camstream::sender::SenderConfig {
        pairing: paired(),
        ..config("test:160x120", Codec::Jpeg)
    });
    let wrong = PairingMode::Code("1-wrong-code".into());
    let error = Receiver::connect(&sender.addr.to_string(), wrong)
        .err()
        .unwrap();
    assert!(
        camstream::error_line(&error).ends_with("pairing code did not match"),
        "{error:#}"
    );
}

#[test]
fn a_slow_consumer_gets_the_newest_frame_with_the_skipped_ones_counted() {
    let sender = start_sender(config("test:160x120", Codec::Jpeg));
    let mut receiver = Receiver::connect(&sender.addr.to_string(), PairingMode::Insecure).unwrap();
    let before = receive(&mut receiver).seq;
    // About 15 frames at 30 fps: the sender keeps the newest for us, not a queue.
    thread::sleep(Duration::from_millis(500));
    // What was already on its way (about a round trip's worth) comes first.
    let seqs: Vec<u64> = (0..4).map(|_| receive(&mut receiver).seq).collect();
    assert!(seqs[3] >= before + 12, "{before} then {seqs:?}");
    assert!(receiver.stats().dropped >= 10, "{:?}", receiver.stats());
}

#[test]
fn a_restarted_sender_is_followed_unless_asked_not_to() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let ten_frames = || camstream::sender::SenderConfig {
        frames: Some(10),
        ..config("test:160x120", Codec::Raw)
    };
    let first = start_sender_on(ten_frames(), listener);
    let mut following = Receiver::connect(&addr.to_string(), PairingMode::Insecure).unwrap();
    let options = ReceiverOptions {
        reconnect: false,
        ..ReceiverOptions::default()
    };
    let mut once =
        Receiver::connect_with(&addr.to_string(), PairingMode::Insecure, options).unwrap();
    let once = thread::spawn(move || once.by_ref().map(Result::unwrap).count());
    let mut seqs = Vec::new();
    while seqs.len() < 10 {
        seqs.push(receive(&mut following).seq);
    }
    first.join();
    // The clean end: the one that does not reconnect has seen all there was.
    assert!((1..=10).contains(&once.join().unwrap()));
    let second = start_sender_on(ten_frames(), TcpListener::bind(addr).unwrap());
    let frame = receive(&mut following);
    assert!(frame.bgr == pattern_frame(160, 120, frame.seq));
    assert_eq!(following.stats().reconnects, 1);
    drop(second);
}
