//! The real world: senders that restart, connections that go quiet, viewers that misbehave.

use crate::common::*;
use camstream::media::capture::Next;
use camstream::media::source::Source;
use camstream::receiver::{self, ReceiverConfig};
use camstream::stats::ReceiverStats;
use camstream::wire::protocol::Codec;
use camstream::Stop;
use std::net::TcpListener;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

#[test]
fn a_receiver_rides_out_three_sender_restarts_and_a_camera_loss() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    // Each sender ends its stream by itself after ten frames have gone out.
    // Raw, as the camera's: one recording holds them all (a stream of another codec would be
    // left out of it), losslessly.
    let sender_config = || {
        let mut config = config("test:160x120", Codec::Raw);
        config.frames = Some(10);
        config
    };
    let first = start_sender_on(sender_config(), listener);
    let dir = TempDir::new("restarts");
    let recording = dir.0.join("all.mkv");
    let stop = Stop::default();
    let receiving = {
        let (stop, recording) = (stop.clone(), recording.clone());
        thread::spawn(move || {
            let config = ReceiverConfig {
                frames: None,
                once: false,
                record: Some(recording),
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
    // Then a sender whose camera is unplugged for a while.
    let (camera_sender, camera) = start_camera_sender(TcpListener::bind(addr).unwrap());
    thread::sleep(Duration::from_millis(1500));
    camera.store(UNPLUGGED, Ordering::SeqCst);
    thread::sleep(Duration::from_secs(2));
    camera.store(WORKING, Ordering::SeqCst);
    thread::sleep(Duration::from_secs(4));
    stop.raise();
    let report = receiving.join().unwrap().unwrap();
    sent += camera_sender.finish().frames_sent;
    assert_eq!(report.reconnects, 4, "{report:?}");
    assert_eq!(report.frames, sent, "{report:?}");
    assert_eq!(report.dropped, 0, "{report:?}");
    // The recording holds every frame shown: the camera's (raw, so recorded losslessly) end
    // with "NO SIGNAL" cards and then live video again.
    let recorded = source_frames(&recording);
    assert_eq!(recorded.len() as u64, report.frames);
    let stamped = |frame: &Vec<u8>| frame[..160 * 3].windows(8).any(|w| w == b"CAMSTRM!");
    let last_card = recorded
        .iter()
        .rposition(|f| !stamped(f) && brightness(f) < 80);
    let last_card = last_card.expect("no NO SIGNAL card was shown");
    let live_after = recorded.len() - last_card - 1;
    assert!(
        live_after >= 10,
        "only {live_after} frames after the camera came back"
    );
    assert!(recorded[last_card + 1..].iter().all(stamped));
}

fn brightness(pixels: &[u8]) -> u64 {
    pixels.iter().map(|&b| u64::from(b)).sum::<u64>() / pixels.len() as u64
}

/// A sender of raw frames from a fake camera; returns it and the camera's switch.
fn start_camera_sender(listener: TcpListener) -> (RunningSender, Arc<AtomicU8>) {
    let (opener, mode) = fake_camera(Duration::from_millis(33));
    let input = Source::live(opener).unwrap();
    let sender = start_sender_with(config("0", Codec::Raw), input, listener);
    (sender, mode)
}

/// Whether a raw frame is the test pattern (its first row carries the pattern's stamp).
fn is_pattern(frame: &Received) -> bool {
    let row = &frame.data[..frame.header.width as usize * 3];
    row.windows(8).any(|w| w == b"CAMSTRM!")
}

/// Reads and acks frames until one satisfies `wanted`; returns it and how long it took.
fn frame_where(
    viewer: &mut TestViewer,
    wanted: impl Fn(&Received) -> bool,
) -> (Received, Duration) {
    let started = Instant::now();
    loop {
        let frame = viewer.frame().expect("the stream ended");
        viewer.ack(frame.header.seq);
        if wanted(&frame) {
            return (frame, started.elapsed());
        }
        assert!(started.elapsed() < Duration::from_secs(20), "waited 20 s");
    }
}

/// The camera goes away (`lose`), viewers get a dark "NO SIGNAL" picture at a low rate within a
/// couple of seconds, and the video comes back by itself when the camera does.
fn camera_loss_and_return(lose: u8) {
    let (sender, camera) = start_camera_sender(TcpListener::bind("127.0.0.1:0").unwrap());
    let mut viewer = TestViewer::connect(sender.addr);
    frame_where(&mut viewer, is_pattern);
    camera.store(lose, Ordering::SeqCst);
    let (card, noticed) = frame_where(&mut viewer, |f| !is_pattern(f));
    assert!(
        noticed < Duration::from_secs(3),
        "noticed after {noticed:?}"
    );
    let mean = brightness(&card.data);
    assert!(mean < 80, "not a dark card: mean {mean}");
    let (_, next_card) = frame_where(&mut viewer, |_| true);
    assert!(
        next_card > Duration::from_millis(300),
        "cards {next_card:?} apart"
    );
    camera.store(WORKING, Ordering::SeqCst);
    let (_, back) = frame_where(&mut viewer, is_pattern);
    assert!(back < Duration::from_secs(6), "back after {back:?}");
    drop(viewer);
    let report = sender.finish();
    assert!(report.frames_sent > 5, "{report:?}");
}

#[test]
fn an_unplugged_camera_shows_no_signal_then_comes_back() {
    camera_loss_and_return(UNPLUGGED);
}

#[test]
fn a_frozen_camera_shows_no_signal_then_comes_back() {
    camera_loss_and_return(FROZEN);
}

/// The sender's writer threads in this process (other tests' senders have one viewer each).
fn writer_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .filter(|name| name.trim() == camstream::sender::WRITER_THREAD)
        .count()
}

#[test]
fn a_flood_of_bad_connections_leaves_the_viewers_served_with_bounded_threads() {
    let sender = start_sender(config("test:160x120", Codec::Jpeg));
    let mut viewer = TestViewer::connect(sender.addr);
    frame_where(&mut viewer, |_| true);
    let mut most = writer_threads();
    let mut silent = Vec::new();
    for n in 0..300 {
        let Ok(mut peer) = std::net::TcpStream::connect(sender.addr) else {
            continue;
        };
        match n % 3 {
            // Connects and leaves, or sends garbage, or says nothing and stays.
            0 => drop(peer),
            1 => {
                let _ = std::io::Write::write_all(&mut peer, &[0x5a; 64]);
            }
            _ => silent.push(peer),
        }
        if n % 50 == 0 {
            frame_where(&mut viewer, |_| true);
        }
        most = most.max(writer_threads());
    }
    // One thread per connection admitted: never more than --max-viewers of them plus the spare
    // connections for browsers (plus one for each of the other tests here that may be running).
    let bound =
        camstream::sender::DEFAULT_MAX_VIEWERS as usize + camstream::sender::SPARE_CONNECTIONS + 3;
    assert!((2..=bound).contains(&most), "{most} writer threads");
    frame_where(&mut viewer, |_| true);
    drop(silent);
    drop(viewer);
    // Once the silent ones are gone, a real receiver gets in.
    let served = (0..200).any(|_| {
        let mut stats = ReceiverStats::default();
        let ok = receiver::run(
            &receiver_config(sender.addr, 3),
            &Stop::default(),
            &mut stats,
        )
        .is_ok();
        if !ok {
            thread::sleep(Duration::from_millis(50));
        }
        ok
    });
    assert!(served, "no room after the flood");
}

#[test]
fn a_looped_file_plays_again_from_its_first_frame() {
    let dir = TempDir::new("loop");
    let clip = dir.0.join("clip.mkv");
    write_pattern_video(&clip, 160, 120, 5, 100.0);
    let originals = source_frames(&clip);
    let mut config = config(clip.to_str().unwrap(), Codec::Raw);
    config.looping = true;
    config.frames = Some(12);
    let sender = start_sender(config);
    let (_, frames, ended) = watch(sender.addr, usize::MAX);
    assert!(ended);
    assert_eq!(frames.len(), 12);
    for (n, frame) in frames.iter().enumerate() {
        assert_eq!(
            frame.header.seq, n as u64,
            "numbering goes on across the loop"
        );
        assert!(
            frame.data == originals[n % 5],
            "frame {n} is not file frame {}",
            n % 5
        );
    }
    sender.join();
}

/// A 90-frame video file in `dir` whose middle third is scrambled, deterministically.
fn damaged_clip(dir: &TempDir) -> std::path::PathBuf {
    damaged_clip_every(dir, 1)
}

/// The same, with only every `nth` byte of the middle third scrambled.
fn damaged_clip_every(dir: &TempDir, nth: usize) -> std::path::PathBuf {
    let clip = dir.0.join("clip.avi");
    write_pattern_video(&clip, 160, 120, 90, 200.0);
    let mut bytes = std::fs::read(&clip).unwrap();
    let (from, to) = (bytes.len() * 3 / 10, bytes.len() * 6 / 10);
    let mut state = 2_463_534_242u32;
    for byte in bytes[from..to].iter_mut().step_by(nth) {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        *byte = state as u8;
    }
    std::fs::write(&clip, bytes).unwrap();
    clip
}

#[test]
fn a_damaged_file_is_played_past_its_damage() {
    let dir = TempDir::new("damaged");
    let clip = damaged_clip(&dir);
    let sender = start_sender(config(clip.to_str().unwrap(), Codec::Raw));
    let (_, frames, ended) = watch(sender.addr, usize::MAX);
    assert!(ended, "the end of the file ends the stream cleanly");
    // Frames from after the damage arrive: the last third of the file at least.
    let last = frames.last().unwrap().header.seq;
    assert!(
        frames.len() > 60 && last >= 60,
        "{} frames, the last {last}",
        frames.len()
    );
    sender.join();
}

#[test]
fn a_file_damaged_here_and_there_plays_to_its_end() {
    // A byte in 700 scrambled: many frames decode, some do not, and a seek past one may land
    // before it again. This used to replay the same stretch for minutes.
    let dir = TempDir::new("damaged-sparse");
    let clip = damaged_clip_every(&dir, 700);
    let sender = start_sender(config(clip.to_str().unwrap(), Codec::Raw));
    let addr = sender.addr;
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(watch(addr, usize::MAX));
    });
    let (_, frames, ended) = finished
        .recv_timeout(Duration::from_secs(60))
        .expect("the file ends within a minute");
    assert!(ended);
    let last = frames.last().unwrap().header.seq;
    assert!(last >= 60, "{} frames, the last {last}", frames.len());
    sender.join();
}

#[test]
fn a_damaged_file_does_not_bury_the_programs_own_lines() {
    let dir = TempDir::new("damaged-log");
    let clip = damaged_clip(&dir);
    let sender = Program::spawn(
        env!("CARGO_BIN_EXE_sender"),
        &[
            "--listen",
            "127.0.0.1:0",
            "--source",
            clip.to_str().unwrap(),
            "--no-preview",
            "--insecure",
            // Decoded, not passed on as it came: FFmpeg then reports each damaged picture.
            "--quality",
            "80",
        ],
    );
    let addr = listening_addr(&sender);
    let receiver = Program::spawn(
        env!("CARGO_BIN_EXE_receiver"),
        &["--connect", &addr, "--headless", "--insecure", "--once"],
    );
    let received = receiver.wait_with_output();
    let receiver_log = String::from_utf8_lossy(&received.stderr).into_owned();
    assert!(received.status.success(), "{receiver_log}");
    sender.wait_for_line("ending the stream");
    let sent = sender.wait_with_output();
    let log = String::from_utf8_lossy(&sent.stderr).into_owned();
    // FFmpeg's line for each damaged frame is counted, not printed: one line says so, and one
    // more at exit says how many came after it.
    assert!(
        !log.lines().any(|line| line.starts_with('[')),
        "FFmpeg's own lines:\n{log}"
    );
    let reports: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("FFmpeg reported"))
        .collect();
    assert!(reports[0].contains("(e.g. ["), "the sender said:\n{log}");
    assert!(reports.len() <= 2, "the sender said:\n{log}");
    assert!(
        reports[1..].iter().all(|l| l.contains(" more problem")),
        "the sender said:\n{log}"
    );
    // Our own line for the frames stepped over: the first stretch, then the rest at the end.
    let skips = log
        .lines()
        .filter(|l| l.contains("that could not be read"))
        .count();
    assert!((1..=2).contains(&skips), "the sender said:\n{log}");
    assert!(log.lines().count() <= 12, "the sender said:\n{log}");
    assert!(
        receiver_log.lines().count() <= 10,
        "the receiver said:\n{receiver_log}"
    );
}

/// A live source reading a fake camera that delivers a frame every 5 ms.
fn fake_source() -> (Source, Arc<AtomicU8>) {
    let (opener, mode) = fake_camera(Duration::from_millis(5));
    (Source::live(opener).unwrap(), mode)
}

/// Takes frames until `until` says stop or 10 s pass; returns what the last call said.
fn take_until(source: &mut Source, until: impl Fn(&Next) -> bool) -> Next {
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let next = source
            .next_into(&mut out, Duration::from_millis(20))
            .unwrap();
        if until(&next) || Instant::now() > deadline {
            return next;
        }
    }
}

#[test]
fn frames_taken_are_the_newest_and_never_repeated() {
    let (mut source, _mode) = fake_source();
    let mut out = Vec::new();
    let mut last = 0;
    for _ in 0..5 {
        thread::sleep(Duration::from_millis(30));
        assert!(matches!(
            source.next_into(&mut out, Duration::from_secs(1)).unwrap(),
            Next::Frame(_)
        ));
        // Several frames were read meanwhile; the one taken is the latest, not the next.
        assert!(out[0] > last.max(1), "{} after {last}", out[0]);
        last = out[0];
    }
}

#[test]
fn an_unplugged_source_is_lost_then_reopened() {
    let (mut source, mode) = fake_source();
    take_until(&mut source, |n| matches!(n, Next::Frame(_)));
    mode.store(UNPLUGGED, Ordering::SeqCst);
    let lost = take_until(&mut source, |n| matches!(n, Next::Lost { .. }));
    assert!(
        matches!(&lost, Next::Lost { why, .. } if why == "it stopped delivering frames"),
        "{lost:?}"
    );
    mode.store(WORKING, Ordering::SeqCst);
    let back = take_until(&mut source, |n| matches!(n, Next::Frame(_)));
    assert!(matches!(back, Next::Frame(_)), "{back:?}");
}

#[test]
fn a_camera_that_comes_back_at_another_size_is_scaled_to_the_stream() {
    let (sender, camera) = start_camera_sender(TcpListener::bind("127.0.0.1:0").unwrap());
    let mut viewer = TestViewer::connect(sender.addr);
    assert_eq!((viewer.hello.width, viewer.hello.height), (160, 120));
    frame_where(&mut viewer, is_pattern);
    camera.store(UNPLUGGED, Ordering::SeqCst);
    frame_where(&mut viewer, |f| !is_pattern(f));
    camera.store(BIGGER, Ordering::SeqCst);
    // The camera's 320x240 pictures arrive at the stream's 160x120 (the viewer checks every
    // frame against the hello), as video again, not the dark card.
    let (back, took) = frame_where(&mut viewer, |f| brightness(&f.data) > 80);
    assert!(took < Duration::from_secs(6), "back after {took:?}");
    for frame in std::iter::once(back).chain((0..10).map(|_| frame_where(&mut viewer, |_| true).0))
    {
        assert_eq!((frame.header.width, frame.header.height), (160, 120));
        assert_eq!(frame.data.len(), 160 * 120 * 3);
        assert!(brightness(&frame.data) > 80, "frame {}", frame.header.seq);
    }
    drop(viewer);
    sender.finish();
}

#[test]
fn a_read_that_blocks_is_noticed_and_replaced() {
    let (mut source, mode) = fake_source();
    take_until(&mut source, |n| matches!(n, Next::Frame(_)));
    mode.store(FROZEN, Ordering::SeqCst);
    let started = Instant::now();
    let lost = take_until(&mut source, |n| matches!(n, Next::Lost { .. }));
    assert!(
        matches!(&lost, Next::Lost { why, .. } if why.starts_with("it delivered nothing")),
        "{lost:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    mode.store(WORKING, Ordering::SeqCst);
    let back = take_until(&mut source, |n| matches!(n, Next::Frame(_)));
    assert!(matches!(back, Next::Frame(_)), "{back:?}");
}
