//! Cameras and pipelines as a user names them, without a camera: GStreamer's `videotestsrc`
//! stands in for one (Debian's OpenCV has the GStreamer backend), and what needs a real device
//! is tested through its errors and `--list-cameras`.

use crate::common::{
    command, config, pattern_frame, receiver_config, start_sender, watch, TempDir, SENDER,
};
use camstream::config::SourceSpec;
use camstream::error_line;
use camstream::media::codec::{self, EncoderSettings};
use camstream::media::recorder::Recorder;
use camstream::media::source::Source;
use camstream::receiver::{self, ReceiverConfig};
use camstream::sender::SenderConfig;
use camstream::stats::ReceiverStats;
use camstream::wire::protocol::{Codec, FrameHeader, PixelFormat, StreamHello};
use camstream::Stop;
use std::path::Path;

/// A moving ball, 320x240 at 30 fps, with no appsink: the sender adds one.
const BALL: &str =
    "gst:videotestsrc pattern=ball ! video/x-raw,width=320,height=240,framerate=30/1";

#[test]
fn a_gstreamer_pipeline_is_a_live_source_at_its_own_size_or_scaled() {
    let sender = start_sender(config(BALL, Codec::Raw));
    let (hello, frames, ended) = watch(sender.addr, 20);
    sender.finish();
    assert!(!ended);
    assert_eq!((hello.width, hello.height), (320, 240));
    assert_eq!(frames.len(), 20);
    assert!(frames.iter().all(|f| f.data.len() == 320 * 240 * 3));
    assert_ne!(frames[0].data, frames[19].data, "the ball moves");
    // `--size` scales a source that is not a camera; the same pipeline written with ` ! ` only.
    let scaled = start_sender(SenderConfig {
        size: Some((160, 120)),
        ..config(
            "videotestsrc ! video/x-raw,width=320,height=240 ! videoconvert ! appsink",
            Codec::Raw,
        )
    });
    let (hello, frames, _) = watch(scaled.addr, 5);
    scaled.finish();
    assert_eq!((hello.width, hello.height), (160, 120));
    assert!(frames.iter().all(|f| f.data.len() == 160 * 120 * 3));
}

#[test]
fn a_pipeline_gstreamer_cannot_start_says_so() {
    let spec: SourceSpec = "gst:nosuchelement".parse().unwrap();
    let Err(e) = Source::open(&spec, &Default::default()) else {
        panic!("a pipeline of an element that does not exist opened");
    };
    // OpenCV 4.6 waits for such a pipeline forever; a later one may refuse it at once.
    let line = error_line(&e);
    let start = "opening GStreamer pipeline \"nosuchelement\": GStreamer ";
    assert!(
        line.starts_with(&format!("{start}did not start it within 10 s"))
            || line.starts_with(&format!("{start}could not start it")),
        "{line}"
    );
    assert!(line.contains("gst-launch-1.0"), "{line}");
}

#[test]
fn a_missing_camera_device_fails_before_the_address_is_printed() {
    let output = command(
        SENDER,
        &[
            "--listen",
            "127.0.0.1:0",
            "--source",
            "/dev/video97",
            "--no-preview",
        ],
    )
    .output()
    .unwrap();
    let log = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{log}");
    assert!(
        log.contains(
            "sender: error: opening camera /dev/video97: no such device (sender --list-cameras lists the cameras here)"
        ),
        "{log}"
    );
    assert!(!log.contains("listening on"), "{log}");
}

#[test]
fn list_cameras_lists_what_is_here_and_exits() {
    let output = command(SENDER, &["--list-cameras"]).output().unwrap();
    assert_eq!(output.status.code(), Some(0));
    let listed = String::from_utf8_lossy(&output.stdout);
    // This machine has no camera; one that has lists each by its device.
    assert!(
        listed == "no cameras found (no V4L2 capture device in /dev)\n"
            || listed.starts_with("/dev/video"),
        "{listed}"
    );
}

/// Writes `count` pictures of the test pattern to `path` as an MJPEG file (the recorder keeps
/// JPEG as it is); returns each picture's JPEG.
fn write_mjpeg_video(path: &Path, (width, height): (u32, u32), count: u64) -> Vec<Vec<u8>> {
    let settings = EncoderSettings {
        width,
        height,
        quality: 90,
        fps: 30.0,
        keyframe_interval: 2.0,
        bitrate_kbps: 0,
        encoder: Default::default(),
    };
    let mut encoder = codec::format(Codec::Jpeg).encoder(&settings).unwrap();
    let hello = StreamHello::new(width, height, Codec::Jpeg, 30.0);
    let mut recorder = Recorder::create(path, &hello, 30.0).unwrap();
    let jpegs: Vec<Vec<u8>> = (0..count)
        .map(|seq| {
            let mut jpeg = Vec::new();
            let mut picture = pattern_frame(width, height, seq);
            encoder.encode(&mut picture, &mut jpeg, true).unwrap();
            let header = FrameHeader {
                seq,
                capture_unix_us: 1_000_000 + seq * 33_333,
                width,
                height,
                pixel_format: PixelFormat::Bgr8,
                codec: Codec::Jpeg,
                keyframe: true,
            };
            recorder.write(&header, &jpeg, None).unwrap();
            jpeg
        })
        .collect();
    assert_eq!(recorder.finish().unwrap(), count);
    jpegs
}

/// The JPEG pictures an MJPEG file holds, as libavformat reads them.
fn mjpeg_packets(path: &Path) -> Vec<Vec<u8>> {
    ffmpeg_next::init().unwrap();
    let mut input = ffmpeg_next::format::input(path).unwrap();
    let video = input
        .streams()
        .best(ffmpeg_next::media::Type::Video)
        .unwrap();
    assert_eq!(video.parameters().id(), ffmpeg_next::codec::Id::MJPEG);
    input
        .packets()
        .map(|(_, packet)| packet.data().unwrap_or_default().to_vec())
        .collect()
}

#[test]
fn an_mjpeg_files_pictures_go_out_as_they_came_unless_quality_asks_otherwise() {
    let dir = TempDir::new("mjpeg-file");
    for name in ["clip.avi", "clip.mkv"] {
        let path = dir.0.join(name);
        let jpegs = write_mjpeg_video(&path, (320, 240), 12);
        let passed = start_sender(SenderConfig {
            quality: None,
            ..config(path.to_str().unwrap(), Codec::Jpeg)
        });
        let (hello, frames, ended) = watch(passed.addr, 100);
        passed.finish();
        assert!(
            ended,
            "{name}: the file ends, and so does the stream ({} frames)",
            frames.len()
        );
        assert_eq!((hello.width, hello.height), (320, 240));
        assert_eq!(frames.len(), jpegs.len(), "{name}");
        for (frame, jpeg) in frames.iter().zip(&jpegs) {
            assert!(
                frame.data == *jpeg,
                "{name}: frame {} is not the file's own JPEG",
                frame.header.seq
            );
        }
        // A receiver recording it keeps the same bytes: file to file, nothing re-encoded.
        let again = start_sender(SenderConfig {
            quality: None,
            ..config(path.to_str().unwrap(), Codec::Jpeg)
        });
        let recording = dir.0.join(format!("received-{name}"));
        let receiving = ReceiverConfig {
            frames: None,
            record: Some(recording.clone()),
            ..receiver_config(again.addr, 0)
        };
        receiver::run(&receiving, &Stop::default(), &mut ReceiverStats::default()).unwrap();
        again.join();
        assert!(
            mjpeg_packets(&recording) == jpegs,
            "{name}: recorded as it came"
        );
        // --quality asks for the sender's own encoding: decoded and encoded again.
        let encoded = start_sender(config(path.to_str().unwrap(), Codec::Jpeg));
        let (_, frames, _) = watch(encoded.addr, 3);
        encoded.finish();
        assert_eq!(frames.len(), 3);
        assert!(
            frames[0].data != jpegs[0],
            "{name}: re-encoded at quality 90"
        );
    }
}

#[test]
fn a_pipeline_ending_in_jpeg_passes_it_on_or_is_decoded_for_other_codecs_and_sizes() {
    // No appsink: the sender adds one that takes the JPEG as it is.
    let pipeline = "gst:videotestsrc pattern=ball ! video/x-raw,width=320,height=240,framerate=30/1 ! jpegenc ! image/jpeg";
    let passed = start_sender(SenderConfig {
        quality: None,
        ..config(pipeline, Codec::Jpeg)
    });
    let (hello, frames, _) = watch(passed.addr, 5);
    passed.finish();
    assert_eq!((hello.width, hello.height), (320, 240));
    assert_eq!(frames.len(), 5);
    // gstreamer's jpegenc writes a JFIF APP0 marker after SOI; OpenCV's imencode writes its own:
    // both do, so compare what matters, that these are whole JPEGs of the stream's size.
    assert!(frames
        .iter()
        .all(|f| f.data.starts_with(&[0xFF, 0xD8]) && f.data.ends_with(&[0xFF, 0xD9])));
    // Raw and scaled to 160x120: decoded, then scaled.
    let decoded = start_sender(SenderConfig {
        size: Some((160, 120)),
        quality: None,
        ..config(pipeline, Codec::Raw)
    });
    let (hello, frames, _) = watch(decoded.addr, 5);
    decoded.finish();
    assert_eq!((hello.width, hello.height), (160, 120));
    assert!(frames.iter().all(|f| f.data.len() == 160 * 120 * 3));
    assert_ne!(frames[0].data, frames[4].data, "the ball moves");
}
