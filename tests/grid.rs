//! Many senders in one place: [`camstream::Hub`] in a program's own code, and the `receiver`
//! program given several `--connect`s (a grid; its window is in `gui.rs`).

use crate::common::{self, command, config, pattern_frame, start_sender, start_sender_on};
use crate::common::{Program, TempDir, TestViewer, RECEIVER, SENDER};
use camstream::{Codec, Hub, PairingMode, ReceiverOptions};
use std::io::Write;
use std::net::TcpListener;
use std::process::Stdio;
use std::thread;
use std::time::{Duration, Instant};

const WAIT: Duration = Duration::from_secs(10);

fn next(hub: &mut Hub) -> (usize, camstream::Frame) {
    hub.recv_timeout(WAIT)
        .unwrap()
        .expect("a frame within 10 s")
}

#[test]
fn a_hub_yields_each_senders_frames_pixel_for_pixel_with_its_number() {
    let small = start_sender(config("test:160x120", Codec::Raw));
    let large = start_sender(camstream::sender::SenderConfig {
        pairing: common::paired(),
        ..config("test:320x240", Codec::Raw)
    });
    let mut hub = Hub::new();
    assert_eq!(
        hub.add(&small.addr.to_string(), PairingMode::Insecure)
            .unwrap(),
        0
    );
    assert_eq!(
        hub.add(&large.addr.to_string(), common::paired()).unwrap(),
        1
    );
    let mut seen = [0; 2];
    while seen.iter().any(|&n| n < 5) {
        let (sender, frame) = next(&mut hub);
        let (width, height) = [(160, 120), (320, 240)][sender];
        assert_eq!((frame.width, frame.height), (width, height));
        assert!(frame.bgr == pattern_frame(width, height, frame.seq));
        seen[sender] += 1;
        assert!(
            seen.iter().sum::<i32>() < 100,
            "{seen:?}: not taken in turn"
        );
    }
    let senders = hub.close();
    assert_eq!(senders[0].sender, small.addr.to_string());
    assert_eq!(senders[1].sender, large.addr.to_string());
    for (sender, seen) in senders.iter().zip(seen) {
        assert_eq!(sender.taken, seen as u64);
        assert!(sender.receiver.as_ref().unwrap().frames >= sender.taken);
    }
}

#[test]
fn a_slow_hub_caller_gets_each_senders_newest_frame_with_the_skipped_ones_counted() {
    let senders = [
        start_sender(config("test:160x120", Codec::Jpeg)),
        start_sender(config("test:160x120", Codec::Jpeg)),
    ];
    let mut hub = Hub::new();
    for sender in &senders {
        hub.add(&sender.addr.to_string(), PairingMode::Insecure)
            .unwrap();
    }
    let mut last = [None; 2];
    while last.iter().any(Option::is_none) {
        let (sender, frame) = next(&mut hub);
        last[sender] = Some(frame.seq);
    }
    // About 15 frames of each at 30 fps: the hub keeps each sender's newest, not a queue.
    thread::sleep(Duration::from_millis(500));
    let taken: Vec<_> = (0..2).map(|_| next(&mut hub)).collect();
    assert_ne!(taken[0].0, taken[1].0, "each sender in turn");
    for (sender, frame) in &taken {
        let before = last[*sender].unwrap();
        assert!(frame.seq >= before + 12, "{before} then {}", frame.seq);
    }
    thread::sleep(Duration::from_millis(300));
    for state in hub.senders() {
        assert!(state.skipped >= 10, "{state:?}");
    }
}

#[test]
fn a_hub_follows_a_restarted_sender_and_says_when_one_has_ended() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let restarted = start_sender_on(common::ten_raw_frames(), listener);
    let ending = start_sender(common::ten_raw_frames());
    let mut hub = Hub::new();
    hub.add(&addr.to_string(), PairingMode::Insecure).unwrap();
    let once = ReceiverOptions {
        reconnect: false,
        ..ReceiverOptions::default()
    };
    let ended = hub
        .add_with(&ending.addr.to_string(), PairingMode::Insecure, once)
        .unwrap();
    restarted.join();
    ending.join();
    let deadline = Instant::now() + WAIT;
    while !hub.senders()[ended].ended {
        assert!(Instant::now() < deadline, "{:?}", hub.senders());
        let _ = hub.recv_timeout(Duration::from_millis(100));
    }
    assert!(!hub.senders()[0].ended, "the other is waited for");
    let _again = start_sender_on(common::ten_raw_frames(), TcpListener::bind(addr).unwrap());
    let (sender, frame) = loop {
        let (sender, frame) = next(&mut hub);
        // Frames of the first stream may still be waiting to be taken.
        if hub.senders()[0].receiver.as_ref().unwrap().reconnects == 1 {
            break (sender, frame);
        }
    };
    assert_eq!(sender, 0);
    assert!(frame.bgr == pattern_frame(160, 120, frame.seq));
}

const CODES: [&str; 2] = ["12-brave-heron", "34-calm-otter"];

/// Two test senders, each with a code of its own (`CODES`).
fn senders_with_own_codes() -> Vec<(Program, String)> {
    CODES
        .iter()
        .map(|code| {
            let mut args = common::TEST_SENDER_ARGS[..5].to_vec();
            args.extend(["--code", code]);
            common::started_sender(Program::start(&mut command(SENDER, &args)))
        })
        .collect()
}

/// The receiver program showing `senders` for 20 frames each with `args`, `typed` at its
/// prompts; what it printed, and its log. It must succeed.
fn grid_typing<'a>(
    senders: &'a [(Program, String)],
    mut args: Vec<&'a str>,
    typed: &str,
) -> (std::process::Output, String) {
    args.extend(["--headless", "--frames", "20", "--stats"]);
    for (_, addr) in senders {
        args.extend(["--connect", addr.as_str()]);
    }
    let mut child = command(RECEIVER, &args)
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{typed}").unwrap();
    let output = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "{log}");
    (output, log)
}

#[test]
fn the_receiver_shows_several_senders_asking_each_code_in_turn_and_records_each() {
    let senders = senders_with_own_codes();
    let dir = TempDir::new("grid");
    let recording = dir.0.join("cams.mkv");
    let args = vec!["--record", recording.to_str().unwrap()];
    let typed = format!("{}\n{}", CODES[0], CODES[1]);
    let (output, log) = grid_typing(&senders, args, &typed);
    for (_, addr) in &senders {
        let asked = format!("pairing code shown by the sender {addr} [required]");
        assert!(log.contains(&asked), "{log}");
    }
    let lines = common::stats_lines(&output.stdout);
    assert_eq!(lines.len(), 2, "{lines:?}");
    for (i, (stats, (_, addr))) in lines.iter().zip(&senders).enumerate() {
        assert_eq!(stats["sender"], addr.as_str());
        let taken = stats["taken"].as_u64().unwrap();
        assert!(taken >= 20, "{stats}");
        // Each sender's frames, as they came, in its own file.
        let file = dir.0.join(format!("cams-{}.mkv", i + 1));
        let played = common::source_frames(&file);
        assert!(played.len() as u64 >= taken, "{} in {file:?}", played.len());
        assert!(played.iter().all(|frame| frame.len() == 160 * 120 * 3));
    }
}

#[test]
fn a_grid_reads_each_sender_from_its_pairing_on_while_the_next_code_is_asked_again() {
    let senders = senders_with_own_codes();
    // The second code is mistyped: asked again after a second's lockout, in which the first
    // sender, already paired, must be read from (unread, it would drop frames).
    let typed = format!("{}\n00-wrong-code\n{}", CODES[0], CODES[1]);
    let (output, log) = grid_typing(&senders, Vec::new(), &typed);
    assert!(log.contains("wrong code; try again in 1 s"), "{log}");
    let lines = common::stats_lines(&output.stdout);
    assert_eq!(lines.len(), 2, "{lines:?}");
    let first = &lines[0];
    assert_eq!(first["sender"], senders[0].1.as_str());
    assert_eq!(first["dropped"], 0, "{first}");
    // Its frames came while the grid could not show them yet: counted as skipped.
    assert!(first["skipped"].as_u64().unwrap() > 10, "{first}");
}

#[test]
fn a_sender_that_lets_the_grid_in_only_later_is_waited_for_and_no_reconnection() {
    let full = ["--max-viewers", "1"];
    let senders: Vec<(Program, String)> = [&[][..], &full[..]]
        .iter()
        .map(|extra| {
            let args = [&common::TEST_SENDER_ARGS[..], extra].concat();
            common::started_sender(Program::start(&mut command(SENDER, &args)))
        })
        .collect();
    let full_addr = senders[1].1.as_str();
    let occupant = TestViewer::connect_with(full_addr.parse().unwrap(), &common::paired());
    let mut args = vec!["--headless", "--frames", "20", "--stats"];
    args.extend(["--code", common::TEST_CODE]);
    for (_, addr) in &senders {
        args.extend(["--connect", addr.as_str()]);
    }
    let child = command(RECEIVER, &args).spawn().unwrap();
    thread::sleep(Duration::from_secs(1));
    drop(occupant);
    let output = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{log}");
    assert!(
        log.contains(&format!(
            "{full_addr} refused us for now; its tile waits for it"
        )),
        "{log}"
    );
    assert!(
        log.contains(&format!("connected to {full_addr} in")),
        "{log}"
    );
    assert!(!log.contains("again"), "{log}");
    let lines = common::stats_lines(&output.stdout);
    assert_eq!(lines[1]["sender"], full_addr);
    assert_eq!(lines[1]["reconnects"], 0, "{}", lines[1]);
    assert!(lines[1]["taken"].as_u64().unwrap() >= 20, "{}", lines[1]);
}

#[test]
fn several_codes_must_be_one_for_all_or_one_each() {
    let output = command(
        RECEIVER,
        &[
            "--connect",
            "127.0.0.1:1",
            "--connect",
            "127.0.0.1:2",
            "--connect",
            "127.0.0.1:3",
            "--code",
            "1-a-b",
            "--code",
            "2-c-d",
        ],
    )
    .output()
    .unwrap();
    assert!(!output.status.success());
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(
        log.contains("--code given 2 times for 3 senders: give one for all of them, or one for each --connect"),
        "{log}"
    );
}
