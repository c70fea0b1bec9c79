//! Peers that do not speak camstream, or stop in the middle: every case is a one-line error
//! naming the cause, never a panic, a hang or a huge allocation.

use crate::common::*;
use camstream::receiver::{self, ReceiverConfig};
use camstream::stats::ReceiverStats;
use camstream::wire::connection::MessageWriter;
use camstream::wire::protocol::{
    Clock, Codec, FrameHeader, Message, PixelFormat, StreamHello, MAX_MESSAGE_LEN,
};
use camstream::{error_line, Stop};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

/// Runs a fake sender that does `behave` with the receiver's connection, and returns the
/// receiver's error line.
fn receiver_error(behave: impl FnOnce(TcpStream) + Send + 'static) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let fake = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        behave(stream);
    });
    let config = ReceiverConfig {
        frames: None,
        ..receiver_config(addr, 0)
    };
    let err = receiver::run(&config, &Stop::default(), &mut ReceiverStats::default()).unwrap_err();
    fake.join().unwrap();
    let line = error_line(&err);
    assert!(!line.contains('\n'), "{line}");
    line
}

/// Reads the receiver's hello like a real sender, sends `bytes`, then closes its side and reads
/// what the receiver still says (its acks), so the close arrives as a close and not a reset.
fn send_and_linger(bytes: Vec<u8>) -> impl FnOnce(TcpStream) + Send + 'static {
    move |mut stream| {
        let mut hello = [0u8; 20];
        let _ = stream.read_exact(&mut hello);
        let _ = stream.write_all(&bytes);
        let _ = stream.shutdown(std::net::Shutdown::Write);
        let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
        let _ = std::io::copy(&mut stream, &mut std::io::sink());
    }
}

#[test]
fn an_http_server_is_not_a_sender() {
    let line = receiver_error(send_and_linger(
        b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n".to_vec(),
    ));
    assert!(
        line.contains("over the 4096-byte limit (is the peer a camstream program?)"),
        "{line}"
    );
    assert!(line.starts_with("greeting sender 127.0.0.1:"), "{line}");
}

#[test]
fn a_length_of_two_to_the_63_is_refused() {
    let line = receiver_error(send_and_linger((1u64 << 63).to_le_bytes().to_vec()));
    assert!(
        line.contains("message of 9223372036854775808 bytes is over"),
        "{line}"
    );
}

#[test]
fn random_bytes_are_refused() {
    // A fixed pseudo-random sequence, so a failure can be reproduced.
    let mut x = 0x2545_f491_4f6c_dd1du64;
    let bytes: Vec<u8> = (0..4096)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let line = receiver_error(send_and_linger(bytes));
    assert!(line.contains("is the peer a camstream program?"), "{line}");
}

#[test]
fn a_silent_peer_times_out() {
    let started = Instant::now();
    let line = receiver_error(|stream| {
        let mut sink = [0u8; 64];
        let _ = (&stream).read(&mut sink);
        std::thread::sleep(Duration::from_secs(6));
    });
    assert!(line.contains("timed out"), "{line}");
    assert!(started.elapsed() < Duration::from_secs(30));
}

#[test]
fn another_protocol_version_is_named() {
    let mut hello = Vec::new();
    MessageWriter::new(&mut hello)
        .write_message(&Message::StreamHello(StreamHello::new(
            4,
            4,
            Codec::Raw,
            0.0,
        )))
        .unwrap();
    hello[8 + 8..8 + 12].copy_from_slice(&7u32.to_le_bytes());
    let line = receiver_error(send_and_linger(hello));
    assert!(
        line.ends_with("peer speaks camstream protocol version 7; this program speaks version 5"),
        "{line}"
    );
}

/// A stream hello, a clock reading, then `frames` frames that each carry `data`.
fn stream_of(width: u32, height: u32, codec: Codec, data: &[u8], frames: usize) -> Vec<u8> {
    let mut bytes = Vec::new();
    let mut writer = MessageWriter::new(&mut bytes);
    writer
        .write_message(&Message::StreamHello(StreamHello::new(
            width, height, codec, 0.0,
        )))
        .unwrap();
    writer
        .write_message(&Message::Clock(Clock {
            hello_sent_unix_us: 0,
            hello_read_unix_us: 0,
            sent_unix_us: 0,
        }))
        .unwrap();
    for seq in 0..frames as u64 {
        let header = FrameHeader {
            seq,
            capture_unix_us: 0,
            width,
            height,
            pixel_format: PixelFormat::Bgr8,
            codec,
            keyframe: true,
        };
        writer.write_frame(&header, data).unwrap();
    }
    bytes
}

fn hello_and_frames(width: u32, height: u32, frames: usize) -> Vec<u8> {
    let pixels = vec![7u8; (width * height * 3) as usize];
    stream_of(width, height, Codec::Raw, &pixels, frames)
}

#[test]
fn a_stream_cut_mid_frame_is_an_error() {
    let mut bytes = hello_and_frames(8, 8, 3);
    bytes.truncate(bytes.len() - 10);
    let line = receiver_error(send_and_linger(bytes));
    assert!(
        line.contains("connection closed in the middle of a message"),
        "{line}"
    );
    assert!(line.starts_with("receiving from 127.0.0.1:"), "{line}");
}

#[test]
fn a_frame_that_disagrees_with_its_size_is_refused() {
    let mut bytes = hello_and_frames(8, 8, 1);
    // Claim the frame is 9 pixels wide: the header no longer matches the stream or its bytes.
    // Behind the width: height, pixel format, codec (4 bytes each), keyframe (1), data length (8).
    let width_at = bytes.len() - 8 * 8 * 3 - 8 - 1 - 4 - 4 - 4 - 4;
    bytes[width_at..width_at + 4].copy_from_slice(&9u32.to_le_bytes());
    let line = receiver_error(send_and_linger(bytes));
    assert!(
        line.contains("frame 0 is 9x8 bgr8 raw, but the stream is 8x8 bgr8 raw"),
        "{line}"
    );
}

#[test]
fn a_jpeg_that_would_decode_to_a_giant_picture_never_reaches_the_decoder() {
    // Just a JPEG's start: SOI, then SOF0 claiming 40000x40000 (4.8 GB once decoded).
    let mut bomb = vec![
        0xFF, 0xD8, 0xFF, 0xC0, 0x00, 0x11, 0x08, 0x9C, 0x40, 0x9C, 0x40,
    ];
    bomb.resize(64, 0);
    let line = receiver_error(send_and_linger(stream_of(8, 8, Codec::Jpeg, &bomb, 1)));
    assert!(
        line.contains("jpeg frame 0 holds a 40000x40000 picture, but the frame says 8x8"),
        "{line}"
    );
}

#[test]
fn a_hello_announcing_a_giant_picture_is_refused() {
    let mut hello = Vec::new();
    MessageWriter::new(&mut hello)
        .write_message(&Message::StreamHello(StreamHello::new(
            65535,
            65535,
            Codec::Raw,
            0.0,
        )))
        .unwrap();
    let line = receiver_error(send_and_linger(hello));
    assert!(
        line.contains(&format!(
            "over the {} MiB frame limit",
            MAX_MESSAGE_LEN >> 20
        )),
        "{line}"
    );
}

#[test]
fn connecting_to_a_closed_port_names_the_address() {
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let config = receiver_config(format!("127.0.0.1:{port}").parse().unwrap(), 1);
    let err = receiver::run(&config, &Stop::default(), &mut ReceiverStats::default()).unwrap_err();
    assert_eq!(
        error_line(&err),
        format!("connecting to 127.0.0.1:{port}: connection refused")
    );
}

#[test]
fn the_sender_shrugs_off_bad_peers_and_keeps_serving() {
    let sender = start_sender(config("test:160x120", Codec::Jpeg));
    // An HTTP client, a peer sending garbage, a peer claiming 2^63 bytes, and one that says nothing.
    let mut peers = Vec::new();
    for bytes in [
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        vec![0xAB; 1000],
        (1u64 << 63).to_le_bytes().to_vec(),
        Vec::new(),
    ] {
        let mut stream = TcpStream::connect(sender.addr).unwrap();
        stream.write_all(&bytes).unwrap();
        peers.push(stream);
    }
    // Meanwhile a real viewer is served.
    let (_, frames, _) = watch(sender.addr, 10);
    assert_eq!(frames.len(), 10);
    // The talkers were dropped: their connections end.
    for mut stream in peers.drain(..3) {
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut sink = Vec::new();
        let _ = stream.read_to_end(&mut sink);
    }
    let report = sender.finish();
    assert_eq!(report.viewers, 1);
}

#[test]
fn only_the_allowed_address_may_connect() {
    let mut config = config("test:160x120", Codec::Jpeg);
    config.allow = Some("127.0.0.2".parse().unwrap());
    let sender = start_sender(config);
    let mut receiver_config = receiver_config(sender.addr, 3);
    let err = receiver::run(
        &receiver_config,
        &Stop::default(),
        &mut ReceiverStats::default(),
    )
    .unwrap_err();
    assert!(error_line(&err).contains("closed the connection before saying hello"));
    receiver_config.bind = Some("127.0.0.2:0".parse().unwrap());
    let mut stats = ReceiverStats::default();
    receiver::run(&receiver_config, &Stop::default(), &mut stats).unwrap();
    assert_eq!(stats.frames(), 3);
    sender.finish();
}

#[test]
fn a_sender_that_goes_quiet_mid_stream_is_given_up() {
    let line = receiver_error(|mut stream| {
        let mut hello = [0u8; 20];
        let _ = stream.read_exact(&mut hello);
        let _ = stream.write_all(&hello_and_frames(64, 48, 2));
        // Connected, but nothing more: a sender whose machine froze or whose cable was pulled.
        std::thread::sleep(Duration::from_secs(7));
    });
    assert!(
        line.contains("nothing came from the sender for 5 s"),
        "{line}"
    );
}
