//! Cameras and pipelines as a user names them, without a camera: GStreamer's `videotestsrc`
//! stands in for one (Debian's OpenCV has the GStreamer backend), and what needs a real device
//! is tested through its errors and `--list-cameras`.

use crate::common::{command, config, start_sender, watch, SENDER};
use camstream::config::SourceSpec;
use camstream::error_line;
use camstream::media::source::Source;
use camstream::wire::protocol::Codec;

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
    let scaled = start_sender(camstream::sender::SenderConfig {
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
