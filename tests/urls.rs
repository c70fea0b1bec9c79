//! `receiver --connect URL`: the receiver playing streams that are not a camstream sender's,
//! from real servers on 127.0.0.1: the sender's own `/stream.mjpg` (http and https), Debian's
//! nginx with its RTMP module, and a GStreamer RTSP server (`tools/rtsp_server.py`). Every
//! server is a [`Program`], killed with its process group however the test ends.
//!
//! Without nginx, ffmpeg or GStreamer's RTSP server the tests that need them say so and pass,
//! except under CI (`CI` set), where `scripts/setup.sh --test` installs them.

use crate::common::{self, free_port, missing_tool, Program, TempDir};
use camstream::wire::protocol::Codec;
use std::net::TcpListener;
use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

const RECEIVER: &str = env!("CARGO_BIN_EXE_receiver");
const FFMPEG: &str = "/usr/bin/ffmpeg";
/// Debian's python, which has `gi` (a pyenv one on the PATH may not).
const PYTHON: &str = "/usr/bin/python3";
/// Longest a receiver run may take before the test fails.
const RUN_LIMIT: Duration = Duration::from_secs(40);

/// Whether every one of `paths` exists; if not, the test is skipped with a message, or fails
/// under CI.
fn have(paths: &[&str], why: &str) -> bool {
    let missing: Vec<&str> = paths
        .iter()
        .copied()
        .filter(|path| !Path::new(path).exists())
        .collect();
    if missing.is_empty() {
        return true;
    }
    missing_tool(&format!(
        "{why} needs {} (scripts/setup.sh --test)",
        missing.join(", ")
    ));
    false
}

fn have_rtsp_server() -> bool {
    if !have(&[PYTHON], "the rtsp:// test") {
        return false;
    }
    // The server's library, and the elements its pipeline is made of.
    let probe = std::process::Command::new(PYTHON)
        .args([
            "-c",
            "import gi, sys; gi.require_version('Gst', '1.0'); \
             gi.require_version('GstRtspServer', '1.0'); \
             from gi.repository import Gst, GstRtspServer; Gst.init(None); \
             sys.exit(not all(Gst.ElementFactory.find(e) for e in \
             ('videotestsrc', 'x264enc', 'rtph264pay')))",
        ])
        .output();
    if probe.is_ok_and(|out| out.status.success()) {
        return true;
    }
    missing_tool(
        "the rtsp:// test needs python3-gi, gir1.2-gst-rtsp-server-1.0 and GStreamer's \
         x264enc, rtph264pay and videotestsrc (scripts/setup.sh --test)",
    );
    false
}

/// A receiver binary playing `url` with `args`, headless.
fn receiver(url: &str, args: &[&str]) -> Program {
    let mut all = vec!["--connect", url, "--headless"];
    all.extend_from_slice(args);
    Program::spawn(RECEIVER, &all)
}

/// Waits (at most [`RUN_LIMIT`]) for `program` to end, and returns what it wrote.
fn finish(mut program: Program) -> Output {
    let deadline = Instant::now() + RUN_LIMIT;
    while program.child().try_wait().unwrap().is_none() {
        assert!(
            Instant::now() < deadline,
            "the receiver did not finish:\n{}",
            program.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    program.wait_with_output()
}

/// The `--stats` line of a receiver that succeeded, and its log.
fn succeeded(output: &Output) -> (serde_json::Value, String) {
    let log = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "{log}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stats = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    (stats, log)
}

/// `frames` frames were shown, and latency is left out, saying why.
fn assert_played(stats: &serde_json::Value, frames: u64, scheme: &str) {
    assert_eq!(stats["frames"], frames, "{stats}");
    assert!(stats["latency_ms"].is_null(), "{stats}");
    assert_eq!(
        stats["latency_note"],
        format!("{scheme}:// streams carry no capture time"),
        "{stats}"
    );
}

#[test]
fn plays_a_senders_mjpeg_over_http_and_over_https_with_the_code_in_the_url() {
    let plain = common::start_sender(common::config("test:320x240", Codec::Jpeg));
    let url = format!("http://127.0.0.1:{}/stream.mjpg", plain.addr.port());
    let (stats, log) = succeeded(&finish(receiver(
        &url,
        &["--frames", "20", "--stats", "--once"],
    )));
    assert_played(&stats, 20, "http");
    assert!(log.contains(&format!("playing {url}: 320x240")), "{log}");
    assert!(!log.contains("pairing code"), "no code question: {log}");
    drop(plain);

    let paired = common::start_sender(camstream::sender::SenderConfig {
        pairing: common::paired(),
        ..common::config("test:320x240", Codec::H264)
    });
    let port = paired.addr.port();
    let url = format!(
        "https://:{}@127.0.0.1:{port}/stream.mjpg",
        common::TEST_CODE
    );
    let dir = TempDir::new("urls-https");
    let (record, frame_log) = (dir.0.join("out.mkv"), dir.0.join("frames.csv"));
    let (stats, log) = succeeded(&finish(receiver(
        &url,
        &[
            "--frames",
            "20",
            "--stats",
            "--once",
            // Given or not, a URL does not use it.
            "--code",
            common::TEST_CODE,
            "--record",
            record.to_str().unwrap(),
            "--frame-log",
            frame_log.to_str().unwrap(),
        ],
    )));
    assert_played(&stats, 20, "https");
    assert!(
        log.contains(&format!(
            "playing https://127.0.0.1:{port}/stream.mjpg: 320x240"
        )),
        "{log}"
    );
    assert!(
        !log.contains(common::TEST_CODE),
        "the code is not logged: {log}"
    );
    let recorded = common::source_frames(&record);
    assert_eq!(recorded.len(), 20);
    assert!(recorded.iter().all(|frame| frame.len() == 320 * 240 * 3));
    let lines = std::fs::read_to_string(&frame_log).unwrap();
    let rows: Vec<&str> = lines.lines().skip(1).collect();
    assert_eq!(rows.len(), 20, "{lines}");
    for (seq, row) in rows.iter().enumerate() {
        let fields: Vec<&str> = row.split(',').collect();
        // No capture time and no latency: empty, not a made-up number.
        assert_eq!(
            (fields[0], fields[1], fields[4]),
            (seq.to_string().as_str(), "", ""),
            "{row}"
        );
    }

    // A wrong code is the server's 401, in one line naming the URL (without the code).
    let wrong = format!("https://:wrong-code@127.0.0.1:{port}/stream.mjpg");
    let output = finish(receiver(&wrong, &["--frames", "5", "--once"]));
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{log}");
    let error = log
        .lines()
        .find(|l| l.contains("error:"))
        .unwrap_or_default();
    assert!(
        error.starts_with(&format!(
            "receiver: error: opening stream https://127.0.0.1:{port}/stream.mjpg: "
        )) && error.contains("401"),
        "{log}"
    );
}

/// ffmpeg publishing a 320x240 test picture, H.264 tuned for latency, to `url` over RTMP.
fn publish(url: &str) -> Program {
    publish_to(url, "flv")
}

/// ffmpeg sending a 320x240 test picture, H.264 tuned for latency, to `url` as `container`.
fn publish_to(url: &str, container: &str) -> Program {
    Program::spawn(
        FFMPEG,
        &[
            "-nostdin",
            "-loglevel",
            "error",
            "-re",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=320x240:rate=30",
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-tune",
            "zerolatency",
            "-g",
            "30",
            "-f",
            container,
            url,
        ],
    )
}

#[test]
fn plays_rtmp_from_nginx_waiting_for_it_to_come_up_and_to_come_back() {
    if !have(&[FFMPEG], "the rtmp:// test") {
        return;
    }
    // Made now for its port, started once the receiver waits.
    let Some(mut nginx) = common::Nginx::start("urls-nginx") else {
        return;
    };
    nginx.stop();
    let url = nginx.url("test");

    // Not up yet, with --once: one line naming the URL.
    let output = finish(receiver(&url, &["--frames", "5", "--once"]));
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{log}");
    let errors: Vec<&str> = log.lines().filter(|l| l.contains("error")).collect();
    assert_eq!(
        errors,
        [format!(
            "receiver: error: opening stream {url}: connection refused"
        )],
        "{log}"
    );

    // Not up yet, without --once: the receiver waits, plays once nginx and its publisher
    // come, waits again when the publisher stops, and plays the next one.
    let player = receiver(&url, &["--frames", "90", "--stats"]);
    player.wait_for_line(&format!("waiting for {url} to come up"));
    nginx.restart();
    let started = Instant::now();
    let first = publish(&url);
    player.wait_for_line(&format!("playing {url}: 320x240"));
    eprintln!(
        "rtmp: playing {:.2} s after the publisher started",
        started.elapsed().as_secs_f64()
    );
    // About 30 frames of the 90 from the first publisher; the rest need the second one.
    std::thread::sleep(Duration::from_secs(1));
    first.kill();
    player.wait_for_line("lost");
    let _second = publish(&url);
    let (stats, log) = succeeded(&finish(player));
    assert_played(&stats, 90, "rtmp");
    assert!(stats["reconnects"].as_u64() >= Some(1), "{stats}\n{log}");
    assert!(log.contains("is back"), "{log}");

    // The same stream as nginx's HLS (waited for until its first segments are written).
    let hls = nginx.hls_url("test");
    let (stats, log) = succeeded(&finish(receiver(&hls, &["--frames", "30", "--stats"])));
    assert_played(&stats, 30, "http");
    assert!(log.contains(&format!("playing {hls}: 320x240")), "{log}");
}

#[test]
fn plays_srt_from_an_ffmpeg_listener() {
    if !have(&[FFMPEG], "the srt:// test") {
        return;
    }
    let port = free_port();
    let url = format!("srt://127.0.0.1:{port}");
    // ffmpeg in listen mode is the server; the receiver calls it (waiting until it listens).
    let _server = publish_to(&format!("{url}?mode=listener"), "mpegts");
    let (stats, log) = succeeded(&finish(receiver(&url, &["--frames", "30", "--stats"])));
    assert_played(&stats, 30, "srt");
    assert!(log.contains(&format!("playing {url}: 320x240")), "{log}");
}

#[test]
fn plays_rtsp_from_a_gstreamer_server() {
    if !have_rtsp_server() {
        return;
    }
    let port = free_port();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tools/rtsp_server.py");
    let server = Program::spawn(PYTHON, &[script, &port.to_string(), "320x240"]);
    server.wait_for_line("serving rtsp://");
    let url = format!("rtsp://127.0.0.1:{port}/test");
    let started = Instant::now();
    let (stats, log) = succeeded(&finish(receiver(
        &url,
        &["--frames", "30", "--stats", "--once"],
    )));
    eprintln!(
        "rtsp: 30 frames in {:.2} s",
        started.elapsed().as_secs_f64()
    );
    assert_played(&stats, 30, "rtsp");
    assert!(log.contains(&format!("playing {url}: 320x240")), "{log}");
    drop(server);
}

#[test]
fn a_server_that_says_nothing_is_given_up_within_seconds() {
    // The kernel accepts connections into the backlog; nothing ever answers them.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    for url in [
        format!("http://127.0.0.1:{port}/stream.mjpg"),
        format!("rtmp://127.0.0.1:{port}/live/test"),
    ] {
        let started = Instant::now();
        let output = finish(receiver(&url, &["--frames", "5", "--once"]));
        let took = started.elapsed();
        let log = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{log}");
        assert!(
            log.contains(&format!(
                "receiver: error: opening stream {url}: connection timed out"
            )),
            "{log}"
        );
        assert!(took < Duration::from_secs(10), "{took:?}: {log}");
    }
    drop(silent);
}

#[test]
fn plays_what_a_sender_publishes_through_nginx() {
    let Some(nginx) = common::Nginx::start("urls-published") else {
        return;
    };
    let url = nginx.url("camera");
    let _sender = common::start_sender(camstream::sender::SenderConfig {
        publish: vec![url.parse().unwrap()],
        ..common::config("test:320x240", Codec::Jpeg)
    });
    // Without --once: the stream is there once the sender's publisher has connected.
    let started = Instant::now();
    let (stats, log) = succeeded(&finish(receiver(&url, &["--frames", "30", "--stats"])));
    eprintln!(
        "published rtmp: 30 frames {:.2} s after the sender started",
        started.elapsed().as_secs_f64()
    );
    assert_played(&stats, 30, "rtmp");
    assert!(log.contains(&format!("playing {url}: 320x240")), "{log}");
}
