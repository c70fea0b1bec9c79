//! H.264 end to end: frames decode close to the source, a viewer starts at a keyframe however
//! rarely they come, and one that stalls and resumes never shows a broken picture.

use crate::common::*;
use camstream::config::Bitrate;
use camstream::media::codec::{self, Decoder, EncoderSettings};
use camstream::receiver;
use camstream::sender::SenderConfig;
use camstream::stats::ReceiverStats;
use camstream::wire::connection::{MessageReader, MessageWriter};
use camstream::wire::protocol::{self, Codec, FrameHeader, Message, StreamHello};
use camstream::Stop;
use std::thread;
use std::time::{Duration, Instant};

const WIDTH: u32 = 320;
const HEIGHT: u32 = 240;

fn h264_sender(keyframe_interval: f64) -> RunningSender {
    start_sender(SenderConfig {
        keyframe_interval,
        ..config("test:320x240", Codec::H264)
    })
}

/// Decodes `frame` and returns its PSNR against the test pattern's frame of the same number.
fn quality(decoder: &mut Box<dyn Decoder>, frame: &Received) -> f64 {
    let picture = decoder
        .decode(&frame.header, &frame.data)
        .unwrap()
        .expect("a picture for every frame");
    psnr(picture.bgr, &pattern_frame(WIDTH, HEIGHT, frame.header.seq))
}

#[test]
fn h264_frames_arrive_close_to_the_original_and_start_with_a_keyframe() {
    let sender = h264_sender(2.0);
    let (hello, frames, _) = watch(sender.addr, 40);
    assert_eq!(hello.codec, Codec::H264);
    assert!(frames[0].header.keyframe, "the first frame a viewer gets");
    let mut decoder = codec::format(Codec::H264).decoder().unwrap();
    for frame in &frames {
        let db = quality(&mut decoder, frame);
        assert!(db > 30.0, "frame {} psnr {db:.1} dB", frame.header.seq);
    }
    // A JPEG frame of this pattern at q90 is about 10 KB; an H.264 one, a fraction of it.
    let bytes: usize = frames[1..].iter().map(|f| f.data.len()).sum();
    assert!(
        bytes / (frames.len() - 1) < 4000,
        "{} bytes a frame",
        bytes / 39
    );
}

#[test]
fn a_viewer_joining_a_stream_with_rare_keyframes_starts_within_a_second() {
    let sender = h264_sender(10.0);
    let (_, first, _) = watch(sender.addr, 10);
    assert!(first[0].header.keyframe);
    // Past the first keyframe; the next regular one is 10 s away.
    thread::sleep(Duration::from_millis(300));
    let joined = Instant::now();
    let mut viewer = TestViewer::connect(sender.addr);
    let frame = viewer.frame().unwrap();
    let waited = joined.elapsed();
    assert!(
        frame.header.keyframe,
        "frame {} is no keyframe",
        frame.header.seq
    );
    assert!(
        waited < Duration::from_millis(1500),
        "first picture after {waited:?}"
    );
    let mut decoder = codec::format(Codec::H264).decoder().unwrap();
    assert!(quality(&mut decoder, &frame) > 30.0);
}

#[test]
fn a_viewer_stopped_for_3_s_resumes_on_a_keyframe_and_never_shows_a_broken_picture() {
    let sender = h264_sender(10.0);
    let mut viewer = TestViewer::connect(sender.addr);
    let mut decoder = codec::format(Codec::H264).decoder().unwrap();
    let mut check = |viewer: &mut TestViewer, count: usize| -> Vec<Received> {
        (0..count)
            .map(|_| {
                let frame = viewer.frame().unwrap();
                viewer.ack(frame.header.seq);
                let db = quality(&mut decoder, &frame);
                assert!(db > 30.0, "frame {} psnr {db:.1} dB", frame.header.seq);
                frame
            })
            .collect()
    };
    let before = check(&mut viewer, 10);
    // Stopped: it takes and acks nothing for 3 s while the sender goes on encoding.
    thread::sleep(Duration::from_secs(3));
    let after = check(&mut viewer, 20);
    let last_before = before[before.len() - 1].header.seq;
    let resumed = after
        .iter()
        .find(|f| f.header.seq > last_before + 2)
        .expect("frames from after the stop");
    assert!(
        resumed.header.keyframe,
        "frame {} after the gap is no keyframe",
        resumed.header.seq
    );
}

/// A viewer that takes about 8 frames a second of a 30 fps stream, for `seconds`.
fn watch_slowly(addr: std::net::SocketAddr, seconds: u64) {
    let mut viewer = TestViewer::connect(addr);
    let until = Instant::now() + Duration::from_secs(seconds);
    while Instant::now() < until {
        let frame = viewer.frame().unwrap();
        thread::sleep(Duration::from_millis(125));
        viewer.ack(frame.header.seq);
    }
}

#[test]
fn the_auto_bit_rate_comes_down_to_what_a_slow_viewer_takes_and_a_fixed_one_stays() {
    let auto = start_sender(config("test:640x480", Codec::H264));
    let start_kbps = config("test:640x480", Codec::H264).bitrate_kbps(640, 480);
    watch_slowly(auto.addr, 4);
    let report = auto.finish();
    let chosen = report.bitrate_kbps.unwrap();
    assert!(
        chosen < start_kbps / 2,
        "{chosen} kbit/s, started at {start_kbps}"
    );
    assert!(report.frames_skipped > 30, "{report:?}");

    let fixed = start_sender(SenderConfig {
        bitrate: Bitrate::Fixed(700),
        ..config("test:640x480", Codec::H264)
    });
    watch_slowly(fixed.addr, 2);
    assert_eq!(fixed.finish().bitrate_kbps, Some(700));
}

#[test]
fn the_receiver_records_h264_as_it_came_into_a_file_that_plays() {
    let dir = TempDir::new("record-h264");
    let recording = dir.0.join("out.mp4");
    let sender = start_sender(SenderConfig {
        frames: Some(30),
        ..config("test:320x240", Codec::H264)
    });
    let mut receiver_config = receiver_config(sender.addr, 1000);
    receiver_config.record = Some(recording.clone());
    let mut stats = ReceiverStats::default();
    receiver::run(&receiver_config, &Stop::default(), &mut stats).unwrap();
    let shown = stats.report().frames;
    assert!(shown >= 10, "{shown} frames shown");
    // Every frame shown is in the file (which starts at a keyframe), and decodes to the pattern.
    let played = source_frames(&recording);
    assert_eq!(played.len() as u64, shown);
    for (at, picture) in played.iter().enumerate() {
        // Frames skipped while waiting for a keyframe push the numbers past 30.
        let best = (0..60)
            .map(|seq| psnr(picture, &pattern_frame(WIDTH, HEIGHT, seq)))
            .fold(0.0, f64::max);
        assert!(best > 30.0, "recorded frame {at}: {best:.1} dB");
    }
    sender.join();
}

#[test]
fn a_viewer_that_asks_for_a_keyframe_gets_one_within_a_second_and_nothing_broken_before() {
    let sender = h264_sender(10.0);
    let mut viewer = TestViewer::connect(sender.addr);
    for _ in 0..10 {
        let seq = viewer.frame().unwrap().header.seq;
        viewer.ack(seq);
    }
    // Past the first keyframe; the next regular one is 10 s away.
    let asked = Instant::now();
    let seq = viewer.frame().unwrap().header.seq;
    viewer.ack_wanting_keyframe(seq);
    // One frame may already be on its way; after it, only a keyframe.
    let mut after = Vec::new();
    loop {
        let frame = viewer.frame().unwrap();
        viewer.ack(frame.header.seq);
        assert!(frame.header.seq > seq);
        after.push(frame.header.keyframe);
        if frame.header.keyframe {
            break;
        }
    }
    let waited = asked.elapsed();
    assert!(after.len() <= 2, "frames until the keyframe: {after:?}");
    assert!(
        waited < Duration::from_millis(1500),
        "keyframe after {waited:?}"
    );
}

/// What the receiver acknowledged: each frame's number, and whether it wanted a keyframe.
fn acks_of(stream: &std::net::TcpStream, count: usize) -> Vec<(u64, bool)> {
    let mut reader = MessageReader::new(stream);
    (0..count)
        .map(|_| {
            let payload = reader.read_payload(protocol::MAX_ACK_LEN).unwrap().unwrap();
            let ack = protocol::decode_ack(payload).unwrap();
            (ack.seq, ack.keyframe_wanted)
        })
        .collect()
}

#[test]
fn a_receiver_skips_a_damaged_frame_to_the_next_keyframe_and_asks_for_it() {
    // Twelve frames; frame 5 damaged on the way, the next keyframe at 8.
    let settings = EncoderSettings {
        width: WIDTH,
        height: HEIGHT,
        quality: 80,
        fps: 30.0,
        keyframe_interval: 10.0,
        bitrate_kbps: 800,
        encoder: Default::default(),
    };
    let mut encoder = codec::format(Codec::H264).encoder(&settings).unwrap();
    let frames: Vec<(FrameHeader, Vec<u8>)> = (0..12)
        .map(|seq| {
            let mut picture = pattern_frame(WIDTH, HEIGHT, seq);
            let mut data = Vec::new();
            let keyframe = encoder.encode(&mut picture, &mut data, seq == 8).unwrap();
            if seq == 5 {
                let len = data.len();
                for byte in &mut data[len / 3..len / 2] {
                    *byte = byte.wrapping_mul(7).wrapping_add(3);
                }
            }
            let header = FrameHeader {
                seq,
                capture_unix_us: camstream::wire::protocol::unix_micros(
                    std::time::SystemTime::now(),
                ),
                width: WIDTH,
                height: HEIGHT,
                pixel_format: protocol::PixelFormat::Bgr8,
                codec: Codec::H264,
                keyframe,
            };
            (header, data)
        })
        .collect();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let fake_sender = thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut reader = MessageReader::new(&stream);
        reader.read_payload(protocol::MAX_HELLO_LEN).unwrap();
        let mut writer = MessageWriter::new(&stream);
        let hello = StreamHello::new(WIDTH, HEIGHT, Codec::H264, 30.0);
        writer.write_message(&Message::StreamHello(hello)).unwrap();
        let clock = protocol::Clock {
            hello_sent_unix_us: 0,
            hello_read_unix_us: 0,
            sent_unix_us: 0,
        };
        writer.write_message(&Message::Clock(clock)).unwrap();
        // One frame at a time, each acked before the next, as a sender with one in flight.
        let mut acks = Vec::new();
        for (header, data) in &frames {
            writer.write_frame(header, data).unwrap();
            acks.extend(acks_of(&stream, 1));
        }
        acks
    });
    let mut stats = ReceiverStats::default();
    receiver::run(&receiver_config(addr, 100), &Stop::default(), &mut stats).unwrap();
    let acks = fake_sender.join().unwrap();
    let wanted: Vec<u64> = acks.iter().filter(|a| a.1).map(|a| a.0).collect();
    assert_eq!(acks.len(), 12, "every frame is acked");
    assert_eq!(wanted, [5], "the damaged frame asks for a keyframe, once");
    let report = stats.report();
    assert_eq!(report.frames, 9, "frames 0-4 and 8-11 shown");
    assert_eq!(report.damaged, 3, "frames 5, 6 and 7 not shown");
    assert_eq!(report.dropped, 0);
}

/// The sender's one error line when it runs with `args`, and that it came before it listened.
fn sender_error(args: &[&str]) -> String {
    let output = command(SENDER, args).output().unwrap();
    let log = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(1), "{log}");
    assert!(!log.contains("listening on"), "{log}");
    let errors: Vec<&str> = log.lines().filter(|l| l.contains("error:")).collect();
    assert_eq!(errors.len(), 1, "{log}");
    errors[0].to_owned()
}

#[test]
fn auto_takes_a_hardware_encoder_it_finds_or_libx264_and_says_why() {
    let (sender, addr) = spawn_sender(&["--codec", "h264", "--encoder", "auto"]);
    let chosen = sender.wait_for_line("sender: H.264 encoder: ");
    // On a machine without them (CI's), every hardware encoder is passed over with its reason.
    if chosen.starts_with("sender: H.264 encoder: libx264 (") {
        for name in ["h264_nvenc", "h264_qsv", "h264_vaapi", "h264_v4l2m2m"] {
            assert!(chosen.contains(&format!("not {name}: ")), "{chosen}");
        }
    }
    let receiver = [
        "--connect",
        &addr,
        "--headless",
        "--once",
        "--frames",
        "10",
        "--code",
        TEST_CODE,
    ];
    let output = command(RECEIVER, &receiver).output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    drop(sender);
}

#[test]
fn an_encoder_that_cannot_open_is_an_error_before_the_sender_listens() {
    let args = |encoder| {
        let mut args = TEST_SENDER_ARGS.to_vec();
        args.extend_from_slice(&["--codec", "h264", "--encoder", encoder]);
        args
    };
    let unknown = sender_error(&args("h264_nosuch"));
    assert!(
        unknown.starts_with(
            "sender: error: --encoder h264_nosuch: this FFmpeg has no such encoder; use auto or one of "
        ) && unknown.ends_with("libx264"),
        "{unknown}"
    );
    let vaapi = sender_error(&args("h264_vaapi"));
    assert!(
        vaapi.starts_with("sender: error: opening the H.264 encoder h264_vaapi: "),
        "{vaapi}"
    );
    if !std::path::Path::new("/dev/dri").exists() {
        assert!(vaapi.ends_with(": no /dev/dri/renderD* device"), "{vaapi}");
    }
}
