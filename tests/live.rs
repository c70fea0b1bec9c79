//! Always live: a viewer that falls behind gets the newest frame, not a queue of old ones; many
//! viewers share one encode; a stalled viewer costs the others nothing.

use crate::common::*;
use camstream::error_line;
use camstream::receiver::{self, ReceiverConfig};
use camstream::sender::MIN_FRAMES_IN_FLIGHT;
use camstream::stats::{FrameLog, ReceiverStats};
use camstream::wire::protocol::Codec;
use camstream::Stop;
use std::io::{Read, Write};
use std::thread;
use std::time::Duration;

#[test]
fn a_viewer_that_stops_acking_holds_two_frames_then_resumes_at_the_newest() {
    let mut config = config("test:320x240", Codec::Jpeg);
    config.fps = Some(100.0);
    let sender = start_sender(config);
    let mut viewer = TestViewer::connect(sender.addr);
    // Not acking: the sender stops after what may be in flight, however long we wait.
    let held: Vec<u64> = (0..MIN_FRAMES_IN_FLIGHT as u64)
        .map(|_| viewer.frame().unwrap().header.seq)
        .collect();
    assert!(
        !viewer.frame_arrives_within(Duration::from_millis(500)),
        "a frame beyond the {MIN_FRAMES_IN_FLIGHT} in flight was sent"
    );
    for seq in &held {
        viewer.ack(*seq);
    }
    // What comes next is a fresh frame: the ~50 captured meanwhile were skipped, not queued.
    let next = viewer.frame().unwrap().header.seq;
    let last_held = held[held.len() - 1];
    assert!(
        next > last_held + 10,
        "after frame {last_held} came {next}: old frames were queued"
    );
    drop(viewer);
    let report = sender.finish();
    assert!(report.frames_skipped >= next - last_held - 1, "{report:?}");
}

#[test]
fn many_viewers_share_one_encode_of_each_frame() {
    let mut config = config("test:160x120", Codec::Jpeg);
    config.fps = Some(100.0);
    let sender = start_sender(config);
    let addr = sender.addr;
    let watchers: Vec<_> = (0..3)
        .map(|_| thread::spawn(move || watch(addr, 40).1))
        .collect();
    let seen: Vec<Vec<Received>> = watchers.into_iter().map(|w| w.join().unwrap()).collect();
    let report = sender.finish();
    assert!(seen.iter().all(|frames| frames.len() == 40));
    // Each viewer may have been sent up to MIN_FRAMES_IN_FLIGHT more than it read before leaving.
    assert!(
        (120..=120 + 3 * MIN_FRAMES_IN_FLIGHT as u64).contains(&report.frames_sent),
        "{report:?}"
    );
    assert!(
        report.frames_encoded < report.frames_sent,
        "each viewer got its own encode: {report:?}"
    );
    // Where two viewers got the same frame, they got the same bytes.
    let mut shared = 0;
    for frame in &seen[0] {
        for other in seen[1..].iter().flatten() {
            if other.header.seq == frame.header.seq {
                assert_eq!(other.data, frame.data);
                shared += 1;
            }
        }
    }
    assert!(shared > 0, "no frame was seen by two viewers");
}

#[test]
fn a_stalled_viewer_does_not_slow_the_others() {
    let mut config = config("test:640x480", Codec::Raw);
    config.fps = Some(60.0);
    let sender = start_sender(config);
    // Greets, then never reads again: without flow control its writer would fill the socket.
    let mut stalled = TestViewer::connect(sender.addr);
    stalled.frame().unwrap();
    let (_, frames, _) = watch(sender.addr, 60);
    assert_eq!(frames.len(), 60);
    assert!(frames.windows(2).all(|w| w[0].header.seq < w[1].header.seq));
    for frame in &frames {
        assert_eq!(frame.data, pattern_frame(640, 480, frame.header.seq));
    }
    // The sender still ends promptly, cutting off the viewer that stopped reading.
    let report = sender.finish();
    assert!(report.frames_skipped > 0, "{report:?}");
    drop(stalled);
}

#[test]
fn viewers_beyond_max_viewers_are_refused_and_the_others_served() {
    let mut config = config("test:160x120", Codec::Jpeg);
    config.max_viewers = 1;
    let sender = start_sender(config);
    let mut first = TestViewer::connect(sender.addr);
    let seq = first.frame().unwrap().header.seq;
    first.ack(seq);
    let err = receiver::run(
        &receiver_config(sender.addr, 5),
        &Stop::default(),
        &mut ReceiverStats::default(),
    )
    .unwrap_err();
    // Told why, in a message: with --once that is an error at once.
    assert!(
        error_line(&err).ends_with(": sender is full, 1 of 1 viewers"),
        "{}",
        error_line(&err)
    );
    // A receiver of the last version is sent the stream's hello instead, which it cannot read
    // either, and so says which version the sender speaks, as it always has.
    let mut old = std::net::TcpStream::connect(sender.addr).unwrap();
    let hello = [
        &1u32.to_le_bytes()[..],
        b"CAMS",
        &4u32.to_le_bytes(),
        &[0; 12],
    ]
    .concat();
    old.write_all(&[&(hello.len() as u64).to_le_bytes()[..], &hello].concat())
        .unwrap();
    old.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut answer = Vec::new();
    old.read_to_end(&mut answer).unwrap();
    assert_eq!(
        answer.get(8..20),
        Some(&[&0u32.to_le_bytes()[..], b"CAMS", &5u32.to_le_bytes()].concat()[..])
    );
    assert!(first.frame().is_some(), "the first viewer lost its stream");
    drop(first);
    // Once the sender has seen it leave, there is room again.
    let served = (0..100).any(|_| {
        let mut stats = ReceiverStats::default();
        let config = receiver_config(sender.addr, 3);
        let ok = receiver::run(&config, &Stop::default(), &mut stats).is_ok();
        if !ok {
            thread::sleep(Duration::from_millis(50));
        }
        ok && stats.report().frames == 3
    });
    assert!(served, "no room after the first viewer left");
}

#[test]
fn the_frame_log_has_a_line_per_frame_shown() {
    let sender = start_sender(config("test:160x120", Codec::Jpeg));
    let dir = TempDir::new("frame-log");
    let path = dir.0.join("frames.csv");
    let config = ReceiverConfig {
        frame_log: Some(path.clone()),
        ..receiver_config(sender.addr, 10)
    };
    let mut stats = ReceiverStats::default();
    receiver::run(&config, &Stop::default(), &mut stats).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some(FrameLog::HEADER));
    let rows: Vec<Vec<f64>> = lines
        .map(|line| line.split(',').map(|v| v.parse().unwrap()).collect())
        .collect();
    assert_eq!(rows.len(), 10);
    for row in &rows {
        let [_, captured, arrived, shown, latency_ms, bytes] = row[..] else {
            panic!("{row:?}")
        };
        assert!(captured <= arrived && arrived <= shown, "{row:?}");
        assert!(
            (latency_ms - (shown - captured) / 1000.0).abs() < 0.01,
            "{row:?}"
        );
        assert!(bytes > 100.0, "{row:?}");
    }
    assert!(rows.windows(2).all(|w| w[0][0] < w[1][0]));
    assert_eq!(stats.report().frames, 10);
}

/// Sends `signal` ("STOP", "CONT") to a running program.
fn signal(program: &mut Program, signal: libc::c_int) {
    let pid = program.child().id() as libc::pid_t;
    // SAFETY: a signal to a child this test started and has not waited for.
    assert_eq!(unsafe { libc::kill(pid, signal) }, 0, "signalling {pid}");
}

#[test]
fn a_receiver_that_stops_gives_its_seat_back_and_reconnects_when_it_wakes() {
    let (sender, addr) = spawn_sender(&["--max-viewers", "1", "--viewer-timeout", "2"]);
    let receiver = |extra: &[&str]| {
        let mut args = vec!["--connect", &addr, "--headless", "--code", TEST_CODE];
        args.extend_from_slice(extra);
        Program::start(&mut command(RECEIVER, &args))
    };
    let mut first = receiver(&[]);
    first.wait_for_line("connected to");
    signal(&mut first, libc::SIGSTOP);
    let stopped = std::time::Instant::now();
    // The seat is the stopped receiver's until the sender gives up on it (2 s): the second
    // is told so, and waits.
    let second = receiver(&["--frames", "5", "--stats"]);
    second.wait_for_line("waiting: sender is full, 1 of 1 viewers");
    let output = second.wait_with_output();
    let waited = stopped.elapsed();
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{log}\n{}", sender.log());
    let stats: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(stats["frames"], 5, "{log}");
    assert!(
        waited < Duration::from_secs(2 + 5),
        "served after {waited:?}"
    );
    let dropped = sender.wait_for_line("stalled for 2 s; dropped");
    assert!(dropped.contains("viewer 127.0.0.1:"), "{dropped}");
    // Woken, the first receiver finds its connection reset and connects again by itself.
    signal(&mut first, libc::SIGCONT);
    let lost = first.wait_for_line("waiting for");
    assert!(lost.contains("reset"), "{lost}");
    let again = || first.log().matches("connected to").count() >= 2;
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while !again() && std::time::Instant::now() < deadline {
        thread::sleep(Duration::from_millis(100));
    }
    assert!(again(), "{}", first.log());
}
