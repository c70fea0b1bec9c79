//! The Rust API, as a program of the user's own uses it: [`camstream::Receiver`] against a
//! sender in the same process, and [`camstream::Sender`] serving the program's own frames.

use crate::common::*;
use camstream::{Codec, PairingMode, Receiver, ReceiverOptions, Sender, SenderOptions, Stop};
use std::net::{SocketAddr, TcpListener};
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
        assert_eq!(frame.encoded(), &*frame.bgr);
        // Not copied out: the pixels are where they arrived, behind the message's header.
        let (buffer, at) = frame.bgr.clone().into_parts();
        assert!(
            at.start > 0 && at.end <= buffer.len(),
            "{at:?} in {}",
            buffer.len()
        );
        assert!(
            last.is_none_or(|last| frame.seq > last),
            "{} after {last:?}",
            frame.seq
        );
        last = Some(frame.seq);
        // Captured in this process a moment ago: the clocks are one, give or take what the
        // clock offset's measurement is off by (well under a millisecond here).
        let now = SystemTime::now();
        let slack = Duration::from_millis(5);
        assert!(frame.capture_time <= now + slack);
        let age = now.duration_since(frame.capture_time).unwrap_or_default();
        assert!(age < Duration::from_secs(1), "{age:?}");
        assert!(
            frame.latency <= age + slack,
            "{:?} > {age:?}",
            frame.latency
        );
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
        assert_eq!(&frame.encoded()[..2], [0xff, 0xd8]);
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
    let first = start_sender_on(ten_raw_frames(), listener);
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
    let second = start_sender_on(ten_raw_frames(), TcpListener::bind(addr).unwrap());
    let frame = receive(&mut following);
    assert!(frame.bgr == pattern_frame(160, 120, frame.seq));
    assert_eq!(following.stats().reconnects, 1);
    drop(second);
}

/// A sender of a program's raw frames, in the clear.
fn raw_in_the_clear() -> SenderOptions {
    SenderOptions {
        codec: Codec::Raw,
        pairing: Some(PairingMode::Insecure),
        ..SenderOptions::default()
    }
}

/// Frame `k` of a program's own: the pattern's frame `k`, its first 8 bytes `k` itself.
fn program_frame(k: u64) -> Vec<u8> {
    let mut frame = pattern_frame(160, 120, k);
    frame[..8].copy_from_slice(&k.to_le_bytes());
    frame
}

/// A sender of the program's own frames, sending frame after frame at about 30 fps on its own
/// thread until `stop` is raised; frame 0 is sent before this returns, so viewers can connect.
fn sending(options: SenderOptions) -> (SocketAddr, Option<String>, Stop, thread::JoinHandle<()>) {
    let mut sender = Sender::bind("127.0.0.1:0", options).unwrap();
    sender.send(&program_frame(0), 160, 120).unwrap();
    let (addr, code) = (sender.local_addr(), sender.code().map(str::to_owned));
    let stop = Stop::default();
    let sending = {
        let stop = stop.clone();
        thread::spawn(move || {
            for k in 1.. {
                if stop.is_raised() {
                    break;
                }
                thread::sleep(Duration::from_millis(33));
                sender.send(&program_frame(k), 160, 120).unwrap();
            }
            sender.close().unwrap();
        })
    };
    (addr, code, stop, sending)
}

#[test]
fn a_programs_raw_frames_reach_a_receiver_byte_for_byte() {
    let options = raw_in_the_clear();
    let (addr, code, stop, sending) = sending(options);
    assert_eq!(code, None);
    let mut receiver = Receiver::connect(&addr.to_string(), PairingMode::Insecure).unwrap();
    let mut last = 0;
    for _ in 0..10 {
        let frame = receive(&mut receiver);
        let k = u64::from_le_bytes(frame.bgr[..8].try_into().unwrap());
        assert!(frame.bgr == program_frame(k), "frame {}", frame.seq);
        assert!(k > last || last == 0, "{k} after {last}");
        last = k;
    }
    stop.raise();
    sending.join().unwrap();
}

#[test]
fn a_programs_frames_are_paired_with_the_code_it_made_and_jpeg_by_default() {
    let (addr, code, stop, sending) = sending(SenderOptions::default());
    let code = code.expect("a new code by default");
    let mut receiver = Receiver::connect(&addr.to_string(), PairingMode::Code(code)).unwrap();
    let frame = receive(&mut receiver);
    assert_eq!(frame.codec, Codec::Jpeg);
    let k = (0..1000)
        .max_by(|a, b| {
            let (a, b) = (
                psnr(&frame.bgr, &program_frame(*a)),
                psnr(&frame.bgr, &program_frame(*b)),
            );
            a.total_cmp(&b)
        })
        .unwrap();
    let quality = psnr(&frame.bgr, &program_frame(k));
    assert!(quality > 30.0, "{quality:.1} dB against frame {k}");
    stop.raise();
    sending.join().unwrap();
}

#[test]
fn a_frame_of_another_size_is_refused_naming_both() {
    let mut sender = Sender::bind("127.0.0.1:0", SenderOptions::default()).unwrap();
    let short = sender.send(&[0; 10], 160, 120).unwrap_err();
    assert_eq!(
        short.to_string(),
        "a 160x120 BGR frame is 57600 bytes, not 10"
    );
    sender.send(&program_frame(0), 160, 120).unwrap();
    let other = sender.send(&vec![0; 320 * 240 * 3], 320, 240).unwrap_err();
    assert_eq!(
        other.to_string(),
        "this stream's frames are 160x120 (the first one's size), not 320x240"
    );
}

#[test]
fn sending_never_waits_for_a_viewer_that_takes_nothing() {
    let options = raw_in_the_clear();
    let mut sender = Sender::bind("127.0.0.1:0", options).unwrap();
    sender.send(&program_frame(0), 160, 120).unwrap();
    // A viewer that reads one frame and then nothing, never acking.
    let mut stalled = TestViewer::connect(sender.local_addr());
    assert!(stalled.frame().is_some());
    let started = std::time::Instant::now();
    for k in 1..=300 {
        sender.send(&program_frame(k), 160, 120).unwrap();
    }
    // 300 copies of 57 kB: milliseconds; a send that waited on the viewer would take seconds.
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    sender.close().unwrap();
}

#[test]
fn a_program_can_make_only_the_frames_a_viewer_is_ready_for() {
    let options = raw_in_the_clear();
    let mut sender = Sender::bind("127.0.0.1:0", options).unwrap();
    assert!(
        sender.wait_wanted(Duration::ZERO),
        "the first frame starts the stream"
    );
    sender.send(&program_frame(0), 160, 120).unwrap();
    assert!(
        !sender.wait_wanted(Duration::from_millis(200)),
        "nobody is watching"
    );
    let mut receiver =
        Receiver::connect(&sender.local_addr().to_string(), PairingMode::Insecure).unwrap();
    // Each frame is made only once the receiver is ready for it, so none is replaced unseen:
    // each one made is shown (after frame 0, the newest when it connected).
    let mut shown = Vec::new();
    for k in 1..=10 {
        assert!(sender.wait_wanted(WAIT), "frame {k} not wanted");
        sender.send(&program_frame(k), 160, 120).unwrap();
        while shown.last() != Some(&k) {
            let frame = receive(&mut receiver);
            let index = u64::from_le_bytes(frame.bgr[..8].try_into().unwrap());
            assert!(frame.bgr == program_frame(index), "frame {}", frame.seq);
            shown.push(index);
        }
    }
    // Frame 0 is not shown only if frame 1 was made before the sender took it.
    let first = shown[0];
    assert!(first <= 1, "{shown:?}");
    assert_eq!(shown, (first..=10).collect::<Vec<_>>());
    sender.close().unwrap();
}

#[test]
fn a_program_making_frames_as_wanted_serves_a_viewer_that_comes_after_a_long_silence() {
    let options = raw_in_the_clear();
    let mut sender = Sender::bind("127.0.0.1:0", options).unwrap();
    let address = sender.local_addr().to_string();
    sender.send(&program_frame(0), 160, 120).unwrap();
    let mut next = 1;
    let mut serve = |sender: &mut Sender, receiver: &mut Receiver| {
        assert!(sender.wait_wanted(WAIT), "frame {next} not wanted");
        // A program a little slower than the sender's own poll.
        thread::sleep(Duration::from_millis(50));
        sender.send(&program_frame(next), 160, 120).unwrap();
        next += 1;
        let frame = receive(receiver);
        let index = u64::from_le_bytes(frame.bgr[..8].try_into().unwrap());
        assert!(
            frame.bgr == program_frame(index),
            "frame {}: no program frame",
            frame.seq
        );
    };
    let mut first = Receiver::connect(&address, PairingMode::Insecure).unwrap();
    serve(&mut sender, &mut first);
    drop(first);
    // Longer than the 5 s after which a program that sends nothing shows NO SIGNAL: nobody
    // asked for a frame meanwhile, so that is no silence.
    thread::sleep(Duration::from_millis(5500));
    let mut second = Receiver::connect(&address, PairingMode::Insecure).unwrap();
    for _ in 0..3 {
        serve(&mut sender, &mut second);
    }
    sender.close().unwrap();
}
