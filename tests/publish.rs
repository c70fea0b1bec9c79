//! `--publish`: the sender feeds real media servers (nginx-rtmp; FFmpeg listening as an RTSP
//! and an SRT server), keeps publishing when the server restarts, and its direct viewers do not
//! notice.

use crate::common::*;
use camstream::config::Bitrate;
use camstream::sender::SenderConfig;
use camstream::wire::protocol::Codec;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn publishing(codec: Codec, urls: &[String]) -> SenderConfig {
    SenderConfig {
        publish: urls.iter().map(|url| url.parse().unwrap()).collect(),
        ..config("test:320x240", codec)
    }
}

/// Waits up to `wait` for ffprobe to find the stream at `url`.
fn probe_within(url: &str, wait: Duration) -> Option<(String, u32, u32)> {
    let deadline = Instant::now() + wait;
    loop {
        if let Some(found) = probe(url) {
            return Some(found);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_jpeg_sender_publishes_h264_of_its_size_to_nginx_rtmp() {
    let Some(nginx) = Nginx::start("publish-rtmp") else {
        return;
    };
    let url = nginx.url("camera");
    let sender = start_sender(publishing(Codec::Jpeg, std::slice::from_ref(&url)));
    let found = probe_within(&url, Duration::from_secs(15));
    assert_eq!(found, Some(("h264".to_owned(), 320, 240)));
    let metrics = Command::new("curl")
        .args(["-s", "--max-time", "5"])
        .arg(format!("http://{}/metrics", sender.addr))
        .output()
        .unwrap();
    let metrics = String::from_utf8_lossy(&metrics.stdout);
    let server = format!("{{server=\"rtmp://127.0.0.1:{}/live/…\"}}", nginx.port);
    assert!(
        metrics.contains(&format!("camstream_publisher_up{server} 1")),
        "{metrics}"
    );
    // The receivers still get JPEG.
    let (hello, frames, _) = watch(sender.addr, 3);
    assert_eq!((hello.codec, frames.len()), (Codec::Jpeg, 3));
    let report = sender.finish();
    let publisher = &report.publishers[0];
    assert_eq!(
        publisher.server,
        format!("rtmp://127.0.0.1:{}/live/…", nginx.port)
    );
    assert!(
        publisher.frames > 10 && publisher.bytes > 10_000,
        "{publisher:?}"
    );
    assert_eq!(publisher.connects, 1);
}

#[test]
fn a_restarted_server_is_published_to_again_and_viewers_never_notice() {
    let Some(mut nginx) = Nginx::start("publish-restart") else {
        return;
    };
    let url = nginx.url("camera");
    let sender = start_sender(SenderConfig {
        bitrate: Bitrate::Fixed(800),
        ..publishing(Codec::H264, std::slice::from_ref(&url))
    });
    assert!(probe_within(&url, Duration::from_secs(15)).is_some());
    // A direct viewer, reading and acking all along on its own thread.
    let mut viewer = TestViewer::connect(sender.addr);
    let watching = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let reader = {
        let watching = std::sync::Arc::clone(&watching);
        std::thread::spawn(move || {
            let mut seqs = Vec::new();
            while watching.load(std::sync::atomic::Ordering::SeqCst) {
                let frame = viewer.frame().unwrap();
                viewer.ack(frame.header.seq);
                seqs.push(frame.header.seq);
            }
            seqs
        })
    };
    std::thread::sleep(Duration::from_secs(1));
    nginx.stop();
    std::thread::sleep(Duration::from_secs(2));
    nginx.restart();
    let back = Instant::now();
    let found = probe_within(&url, Duration::from_secs(10));
    let republished = back.elapsed();
    std::thread::sleep(Duration::from_secs(1));
    watching.store(false, std::sync::atomic::Ordering::SeqCst);
    let seqs = reader.join().unwrap();
    assert_eq!(found, Some(("h264".to_owned(), 320, 240)));
    assert!(republished < Duration::from_secs(10), "{republished:?}");
    // The direct viewer got at least 90% of the frames all along.
    let span = seqs.last().unwrap() - seqs.first().unwrap() + 1;
    assert!(
        seqs.len() as u64 * 10 >= span * 9,
        "{} of {span} frames",
        seqs.len()
    );
    let report = sender.finish();
    assert!(
        report.publishers[0].connects >= 2,
        "{:?}",
        report.publishers
    );
}

/// FFmpeg listening as a server for `url` (RTSP or SRT), keeping what it is sent in `file`.
fn ffmpeg_server(listen: &[&str], url: &str, file: &std::path::Path) -> Program {
    Program::start(
        Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "warning", "-y"])
            .args(listen)
            .args(["-i", url, "-frames:v", "30", "-c", "copy"])
            .arg(file)
            .stdin(Stdio::null()),
    )
}

#[test]
fn rtsp_and_srt_servers_get_the_stream() {
    if Nginx::start("publish-tools").is_none() {
        return;
    }
    let dir = TempDir::new("publish-ffmpeg");
    let rtsp = format!("rtsp://127.0.0.1:{}/live", free_port());
    let srt = format!("srt://127.0.0.1:{}", free_port());
    let rtsp_file = dir.0.join("rtsp.mkv");
    let srt_file = dir.0.join("srt.ts");
    let mut rtsp_server = ffmpeg_server(&["-rtsp_flags", "listen"], &rtsp, &rtsp_file);
    let mut srt_server = ffmpeg_server(&[], &format!("{srt}?mode=listener"), &srt_file);
    std::thread::sleep(Duration::from_millis(500));
    let sender = start_sender(publishing(Codec::Jpeg, &[rtsp.clone(), srt.clone()]));
    for (server, file) in [(&mut rtsp_server, &rtsp_file), (&mut srt_server, &srt_file)] {
        let deadline = Instant::now() + Duration::from_secs(20);
        while server.child().try_wait().unwrap().is_none() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        let status = server.child().try_wait().unwrap();
        let found = probe(file.to_str().unwrap());
        assert_eq!(
            found,
            Some(("h264".to_owned(), 320, 240)),
            "{} ({status:?}, {:?} bytes): {}",
            file.display(),
            std::fs::metadata(file).map(|m| m.len()),
            server.log()
        );
    }
    sender.finish();
}

#[test]
fn a_programs_own_frames_are_published_too() {
    let Some(nginx) = Nginx::start("publish-api") else {
        return;
    };
    let url = nginx.url("program");
    let options = camstream::SenderOptions {
        pairing: Some(camstream::PairingMode::Insecure),
        publish: vec![url.clone()],
        ..camstream::SenderOptions::default()
    };
    let bad = camstream::SenderOptions {
        publish: vec!["ftp://server/x".into()],
        ..options.clone()
    };
    let error = camstream::Sender::bind("127.0.0.1:0", bad).err().unwrap();
    assert!(
        error
            .to_string()
            .starts_with("invalid --publish URL \"ftp://server/x\""),
        "{error}"
    );
    let mut sender = camstream::Sender::bind("127.0.0.1:0", options).unwrap();
    let stop = camstream::Stop::default();
    let probing = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let found = probe_within(&url, Duration::from_secs(15));
            stop.raise();
            found
        })
    };
    for k in 0.. {
        if stop.is_raised() || k > 600 {
            break;
        }
        sender.send(&pattern_frame(320, 240, k), 320, 240).unwrap();
        std::thread::sleep(Duration::from_millis(33));
    }
    assert_eq!(probing.join().unwrap(), Some(("h264".to_owned(), 320, 240)));
    let report = sender.close().unwrap();
    assert!(report.publishers[0].frames > 0, "{:?}", report.publishers);
}
