//! The sender's web side as HTTP clients see it: curl and FFmpeg (real clients, through
//! `Command`) against a sender in this process. The page in a real browser is tests/browser.rs.

use crate::common::*;
use camstream::wire::protocol::Codec;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::Duration;

/// A paired sender of the test pattern.
fn paired_sender(codec: Codec) -> RunningSender {
    start_sender(camstream::sender::SenderConfig {
        pairing: paired(),
        ..config("test:320x240", codec)
    })
}

/// What curl got: status, headers, body.
struct Fetched {
    status: u16,
    head: String,
    body: Vec<u8>,
}

/// Fetches `path` from `addr` with curl (`-k`: the sender's certificate is self-signed), with
/// extra arguments.
fn curl(addr: SocketAddr, scheme: &str, path: &str, args: &[&str]) -> Fetched {
    let output = Command::new("curl")
        .args(["-s", "-k", "--max-time", "10", "-D", "/dev/stderr"])
        .args(args)
        .arg(format!("{scheme}://{addr}{path}"))
        .output()
        .expect("curl is installed (scripts/setup.sh --test)");
    let head = String::from_utf8_lossy(&output.stderr).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Fetched {
        status,
        head,
        body: output.stdout,
    }
}

fn https(addr: SocketAddr, path: &str, args: &[&str]) -> Fetched {
    curl(addr, "https", path, args)
}

#[test]
fn the_page_loads_without_the_code_and_the_data_asks_for_it() {
    let sender = paired_sender(Codec::Jpeg);
    let page = https(sender.addr, "/", &[]);
    assert_eq!(page.status, 200, "{}", page.head);
    assert!(String::from_utf8_lossy(&page.body).contains("page.js"));
    for asset in ["/page.js", "/page.css"] {
        assert_eq!(https(sender.addr, asset, &[]).status, 200, "{asset}");
    }
    for data in ["/snapshot.jpg", "/stream.mjpg", "/metrics", "/ws"] {
        let refused = https(sender.addr, data, &[]);
        assert_eq!(refused.status, 401, "{data}");
        assert!(
            refused
                .head
                .contains("WWW-Authenticate: Basic realm=\"camstream\""),
            "{data}: {}",
            refused.head
        );
    }
    // The same port, in the clear: sent to HTTPS.
    let plain = curl(sender.addr, "http", "/snapshot.jpg", &[]);
    assert_eq!(plain.status, 308);
    assert!(plain
        .head
        .contains(&format!("Location: https://{}/snapshot.jpg", sender.addr)));
    // A receiver on the same port still pairs and watches.
    let mut viewer = TestViewer::connect_with(sender.addr, &paired());
    assert!(viewer.frame().is_some());
    drop(viewer);
    sender.finish();
}

#[test]
fn a_snapshot_with_the_code_is_a_jpeg_of_the_streams_size() {
    for codec in [Codec::Jpeg, Codec::H264, Codec::Raw] {
        let sender = paired_sender(codec);
        let code = format!(":{TEST_CODE}");
        let snapshot = https(sender.addr, "/snapshot.jpg", &["-u", &code]);
        assert_eq!(snapshot.status, 200, "{codec}: {}", snapshot.head);
        assert!(snapshot.head.contains("Content-Type: image/jpeg"));
        let size = imagesize::blob_size(&snapshot.body).expect("a JPEG");
        assert_eq!((size.width, size.height), (320, 240), "{codec}");
        // Codes are typed as they are read out.
        let spoken = format!(":{}", TEST_CODE.replace('-', " ").to_uppercase());
        assert_eq!(
            https(sender.addr, "/snapshot.jpg", &["-u", &spoken]).status,
            200
        );
        sender.finish();
    }
}

#[test]
fn ffmpeg_reads_the_mjpeg_stream_with_the_code() {
    let sender = paired_sender(Codec::H264);
    let output = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-i"])
        .arg(format!("https://:{TEST_CODE}@{}/stream.mjpg", sender.addr))
        .args(["-frames:v", "10", "-f", "framemd5", "-"])
        .output()
        .expect("ffmpeg is installed (scripts/setup.sh --test)");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let frames = String::from_utf8_lossy(&output.stdout);
    let sums: Vec<&str> = frames
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit(',').next())
        .collect();
    assert_eq!(sums.len(), 10, "{frames}");
    assert!(sums.windows(2).any(|w| w[0] != w[1]), "the picture moves");
    sender.finish();
}

#[test]
fn metrics_parse_as_prometheus_text() {
    let sender = paired_sender(Codec::H264);
    let mut viewer = TestViewer::connect_with(sender.addr, &paired());
    for _ in 0..5 {
        let frame = viewer.frame().unwrap();
        viewer.ack(frame.header.seq);
    }
    let code = format!(":{TEST_CODE}");
    let metrics = https(sender.addr, "/metrics", &["-u", &code]);
    assert_eq!(metrics.status, 200);
    assert!(metrics.head.contains("text/plain; version=0.0.4"));
    let text = String::from_utf8(metrics.body).unwrap();
    let samples = check_prometheus_text(&text);
    let value = |name: &str| samples.iter().find(|(n, _)| n == name).map(|(_, v)| *v);
    assert!(
        value("camstream_frames_encoded_total{codec=\"h264\",encode=\"stream\"}").unwrap() >= 5.0
    );
    assert_eq!(value("camstream_viewers{kind=\"receiver\"}"), Some(1.0));
    assert!(value("camstream_bitrate_bits_per_second").unwrap() > 100_000.0);
    // No viewer wants JPEG: the side encode has not run.
    assert_eq!(
        value("camstream_frames_encoded_total{codec=\"jpeg\",encode=\"side\"}"),
        Some(0.0)
    );
    assert_eq!(
        https(sender.addr, "/snapshot.jpg", &["-u", &code]).status,
        200
    );
    let text = String::from_utf8(https(sender.addr, "/metrics", &["-u", &code]).body).unwrap();
    let jpeg = check_prometheus_text(&text)
        .into_iter()
        .find(|(n, _)| n == "camstream_frames_encoded_total{codec=\"jpeg\",encode=\"side\"}")
        .unwrap()
        .1;
    assert!(
        (1.0..5.0).contains(&jpeg),
        "{jpeg} JPEG frames for one snapshot"
    );
    drop(viewer);
    sender.finish();
}

/// Checks Prometheus' text format (names, a TYPE before its samples, `_total` on counters,
/// numbers) and returns each sample's name with labels, and value.
fn check_prometheus_text(text: &str) -> Vec<(String, f64)> {
    let mut types: Vec<(String, String)> = Vec::new();
    let mut samples = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert!(["counter", "gauge", "summary"].contains(&kind), "{line}");
            assert!(!kind.eq("counter") || name.ends_with("_total"), "{line}");
            types.push((name.to_owned(), kind.to_owned()));
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').unwrap();
        let name = series.split('{').next().unwrap();
        assert!(
            name.starts_with("camstream_")
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "{line}"
        );
        let family = ["_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .filter(|f| types.iter().any(|(n, k)| n == f && k == "summary"))
            .unwrap_or(name);
        assert!(
            types.iter().any(|(n, _)| n == family),
            "{line}: no TYPE before it"
        );
        samples.push((series.to_owned(), value.parse::<f64>().unwrap()));
    }
    assert!(!samples.is_empty());
    samples
}

#[test]
fn logging_in_gives_a_session_and_wrong_codes_lock_out() {
    let sender = paired_sender(Codec::Jpeg);
    let login = |code: &str| {
        https(
            sender.addr,
            "/login",
            &[
                "-X",
                "POST",
                "--data-binary",
                code,
                "-H",
                "Content-Type: text/plain",
            ],
        )
    };
    let right = login(TEST_CODE);
    assert_eq!(right.status, 204, "{}", right.head);
    let cookie = right
        .head
        .lines()
        .find_map(|l| l.strip_prefix("Set-Cookie: "))
        .unwrap()
        .to_owned();
    for attribute in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attribute), "{cookie}");
    }
    let session = cookie.split(';').next().unwrap();
    let snapshot = https(
        sender.addr,
        "/snapshot.jpg",
        &["-H", &format!("Cookie: {session}")],
    );
    assert_eq!(snapshot.status, 200);
    let forged = https(
        sender.addr,
        "/snapshot.jpg",
        &["-H", "Cookie: camstream=00ff"],
    );
    assert_eq!(forged.status, 401);
    // A wrong code at the page: refused without the browser's own login box.
    let wrong = login("1-wrong-code");
    assert_eq!(wrong.status, 403);
    assert!(!wrong.head.contains("WWW-Authenticate"));
    // The address is locked out now, for the page and for basic auth, even with the right code.
    let locked = login(TEST_CODE);
    assert_eq!(locked.status, 429, "{}", locked.head);
    assert!(locked.head.contains("Retry-After: "));
    let code = format!(":{TEST_CODE}");
    assert_eq!(https(sender.addr, "/metrics", &["-u", &code]).status, 429);
    // And so is a receiver from it: one lockout for every way in.
    let mut stream = TcpStream::connect(sender.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut answer = Vec::new();
    let _ = stream.write_all(&[0x18; 8]);
    let _ = stream.read_to_end(&mut answer);
    assert!(answer.is_empty());
    sender.finish();
}

#[test]
fn an_insecure_sender_serves_its_page_and_data_in_the_clear_to_anyone() {
    let sender = start_sender(config("test:160x120", Codec::Jpeg));
    let snapshot = curl(sender.addr, "http", "/snapshot.jpg", &[]);
    assert_eq!(snapshot.status, 200, "{}", snapshot.head);
    assert_eq!(imagesize::blob_size(&snapshot.body).unwrap().width, 160);
    let login = curl(sender.addr, "http", "/login", &["-X", "POST", "-d", "x"]);
    assert_eq!(login.status, 204);
    // No certificate to offer: a TLS client is closed.
    assert_eq!(https(sender.addr, "/", &[]).status, 0);
    sender.finish();
}

#[test]
fn a_stalled_tab_does_not_slow_a_receiver() {
    let sender = start_sender(config("test:320x240", Codec::Jpeg));
    // A page that asks for JPEG frames, then neither reads nor acks: a frozen tab.
    let (mut tab, _) = tungstenite::client(
        format!("ws://{}/ws", sender.addr),
        TcpStream::connect(sender.addr).unwrap(),
    )
    .unwrap();
    let stream = tab.read().unwrap();
    assert!(stream
        .to_text()
        .unwrap()
        .starts_with(r#"{"stream":{"codec":"jpeg""#));
    tab.send(tungstenite::Message::text(r#"{"start":{"mse":false}}"#))
        .unwrap();
    let mut viewer = TestViewer::connect(sender.addr);
    let first = viewer.frame().unwrap().header.seq;
    viewer.ack(first);
    let started = std::time::Instant::now();
    let mut last = first;
    for _ in 0..30 {
        last = viewer.frame().unwrap().header.seq;
        viewer.ack(last);
    }
    // 30 frames of a 30 fps stream, none skipped, in about a second.
    assert_eq!(last - first, 30);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let metrics = String::from_utf8(curl(sender.addr, "http", "/metrics", &[]).body).unwrap();
    assert!(
        metrics.contains("camstream_viewers{kind=\"browser\"} 1"),
        "{metrics}"
    );
    drop(tab);
    drop(viewer);
    sender.finish();
}

#[test]
fn wrong_codes_from_many_addresses_share_one_budget() {
    use camstream::receiver::{self, ReceiverConfig};
    use camstream::stats::ReceiverStats;
    use camstream::wire::secure::PairingMode;
    use camstream::{error_line, Stop};
    let sender = paired_sender(Codec::Jpeg);
    let from = |n: u8, code: &str, once: bool| ReceiverConfig {
        bind: Some(SocketAddr::from(([127, 0, 0, n], 0))),
        pairing: PairingMode::Code(code.to_owned()),
        once,
        ..receiver_config(sender.addr, 3)
    };
    let run = |config: &ReceiverConfig, stats: &mut ReceiverStats| {
        receiver::run(config, &Stop::default(), stats)
    };
    // Four wrong codes from four addresses, and a fifth as a basic-auth password from another:
    // each address is locked out only on its own, and all five spend the burst.
    for n in 2..=5 {
        let err = run(
            &from(n, "1-wrong-code", true),
            &mut ReceiverStats::default(),
        )
        .unwrap_err();
        assert!(
            error_line(&err).ends_with("pairing code did not match"),
            "{}",
            error_line(&err)
        );
    }
    let guessed = https(
        sender.addr,
        "/metrics",
        &["--interface", "127.0.0.6", "-u", ":1-wrong-code"],
    );
    assert_eq!(guessed.status, 401, "{}", guessed.head);
    // The sender has counted the last one by the time it answered; now nobody may pair for a
    // while, not even with the right code, and a receiver is told why.
    let err = run(&from(7, TEST_CODE, true), &mut ReceiverStats::default()).unwrap_err();
    let line = error_line(&err);
    let wait: u32 = line
        .strip_suffix(" s")
        .and_then(|rest| rest.rsplit_once("busy: too many wrong codes lately, try in "))
        .and_then(|(_, seconds)| seconds.parse().ok())
        .unwrap_or_else(|| panic!("{line}"));
    assert!((1..=6).contains(&wait), "{line}");
    // A login from yet another address waits too.
    let code = format!(":{TEST_CODE}");
    let login = https(
        sender.addr,
        "/metrics",
        &["--interface", "127.0.0.8", "-u", &code],
    );
    assert_eq!(login.status, 429, "{}", login.head);
    // Without --once a receiver waits it out (a guess every 6 s for everyone) and is served.
    let started = std::time::Instant::now();
    let mut stats = ReceiverStats::default();
    run(&from(9, TEST_CODE, false), &mut stats).unwrap();
    assert_eq!(stats.report().frames, 3);
    assert!(
        started.elapsed() >= Duration::from_secs(u64::from(wait) - 1),
        "served after {:?}, {wait} s early",
        started.elapsed()
    );
}

#[test]
fn an_unpaced_h264_stream_makes_frames_for_a_snapshot_alone() {
    // --fps 0 makes a frame only when some viewer wants one: a snapshot (JPEG, encoded on the
    // side of an H.264 stream) is such a viewer, with no receiver watching.
    let sender = start_sender(camstream::sender::SenderConfig {
        fps: Some(0.0),
        ..config("test:160x120", Codec::H264)
    });
    let snapshot = curl(sender.addr, "http", "/snapshot.jpg", &[]);
    assert_eq!(snapshot.status, 200, "{}", snapshot.head);
    assert_eq!(&snapshot.body[..2], [0xff, 0xd8]);
}
