//! Whole streams over loopback between an in-process sender and a viewer.

use crate::common::*;
use camstream::receiver;
use camstream::stats::ReceiverStats;
use camstream::wire::protocol::{self, Codec, MAX_HELLO_LEN};
use camstream::Stop;
use std::io::{Read, Write};
use std::net::TcpStream;

#[test]
fn raw_frames_arrive_byte_identical_in_order_and_the_stream_ends_cleanly() {
    let mut config = config("test:320x240", Codec::Raw);
    config.fps = Some(60.0);
    config.frames = Some(20);
    let sender = start_sender(config);
    let (hello, frames, ended) = watch(sender.addr, usize::MAX);
    assert!(ended, "the stream did not end with a clean close");
    assert_eq!(
        (hello.width, hello.height, hello.codec),
        (320, 240, Codec::Raw)
    );
    assert_eq!(frames.len(), 20);
    for pair in frames.windows(2) {
        assert!(pair[1].header.seq > pair[0].header.seq);
    }
    for frame in &frames {
        assert!(
            frame.data == pattern_frame(320, 240, frame.header.seq),
            "frame {} differs",
            frame.header.seq
        );
    }
    let report = sender.join();
    assert_eq!(report.frames_sent, 20);
    assert_eq!(report.viewers, 1);
}

#[test]
fn jpeg_frames_arrive_close_to_the_original() {
    let mut config = config("test:320x240", Codec::Jpeg);
    config.frames = Some(10);
    let sender = start_sender(config);
    let (_, frames, ended) = watch(sender.addr, usize::MAX);
    assert!(ended);
    assert_eq!(frames.len(), 10);
    let mut decoder = camstream::media::codec::format(Codec::Jpeg)
        .decoder()
        .unwrap();
    for frame in &frames {
        let picture = decoder.decode(&frame.header, &frame.data).unwrap();
        let decoded = picture.unwrap().bgr;
        let quality = psnr(decoded, &pattern_frame(320, 240, frame.header.seq));
        assert!(
            quality > 30.0,
            "frame {} psnr {quality:.1} dB",
            frame.header.seq
        );
    }
    sender.join();
}

#[test]
fn a_video_file_plays_from_its_first_frame_losslessly_at_its_own_rate() {
    let dir = TempDir::new("file");
    let clip = dir.0.join("clip.mkv");
    write_pattern_video(&clip, 160, 120, 12, 25.0);
    let originals = source_frames(&clip);
    assert_eq!(originals.len(), 12);
    let sender = start_sender(config(clip.to_str().unwrap(), Codec::Raw));
    let (hello, frames, ended) = watch(sender.addr, usize::MAX);
    assert!(ended, "the end of the file must end the stream cleanly");
    assert_eq!(hello.fps, 25.0);
    let seqs: Vec<u64> = frames.iter().map(|f| f.header.seq).collect();
    assert_eq!(seqs, (0..12).collect::<Vec<_>>());
    for frame in &frames {
        assert!(frame.data == originals[frame.header.seq as usize]);
        // FFV1 is lossless: what arrives is the pattern that was written.
        assert!(frame.data == pattern_frame(160, 120, frame.header.seq));
    }
    sender.join();
}

#[test]
fn the_receiver_records_a_playable_file_and_counts_frames() {
    let dir = TempDir::new("record");
    let recording = dir.0.join("out.mkv");
    let mut config = config("test:160x120", Codec::Raw);
    config.frames = Some(15);
    let sender = start_sender(config);
    let mut receiver_config = receiver_config(sender.addr, 1000);
    receiver_config.record = Some(recording.clone());
    let mut stats = ReceiverStats::default();
    receiver::run(&receiver_config, &Stop::default(), &mut stats).unwrap();
    let report = stats.report();
    assert_eq!(report.frames, 15);
    assert_eq!(report.dropped, 0);
    assert!(report.latency_ms.unwrap().max > 0.0);
    let recorded = source_frames(&recording);
    assert_eq!(recorded.len(), 15);
    sender.join();
}

#[test]
fn a_second_receiver_is_served_after_the_first_leaves() {
    let sender = start_sender(config("test:160x120", Codec::Jpeg));
    for _ in 0..2 {
        let mut stats = ReceiverStats::default();
        receiver::run(
            &receiver_config(sender.addr, 5),
            &Stop::default(),
            &mut stats,
        )
        .unwrap();
        assert_eq!(stats.frames(), 5);
    }
    let report = sender.finish();
    assert_eq!(report.viewers, 2);
}

#[test]
fn a_receiver_killed_mid_frame_costs_the_sender_nothing() {
    let sender = start_sender(config("test:640x480", Codec::Raw));
    {
        // Greet, read half a frame, vanish.
        let mut stream = TcpStream::connect(sender.addr).unwrap();
        let hello = [
            &24u64.to_le_bytes()[..],
            &1u32.to_le_bytes(),
            b"CAMS",
            &protocol::VERSION.to_le_bytes(),
            &0u32.to_le_bytes(), // in the clear
            &0u64.to_le_bytes(), // sent at
        ]
        .concat();
        stream.write_all(&hello).unwrap();
        let mut part = vec![0u8; MAX_HELLO_LEN + 100_000];
        let mut got = 0;
        while got < 100_000 {
            let n = stream.read(&mut part[got..]).unwrap();
            assert!(n > 0, "the sender closed after {got} bytes");
            got += n;
        }
    }
    let (_, frames, _) = watch(sender.addr, 5);
    assert_eq!(frames.len(), 5);
    let report = sender.finish();
    assert_eq!(report.viewers, 2);
}

#[test]
fn stats_count_everything_the_sender_sent() {
    let mut config = config("test:160x120", Codec::Jpeg);
    config.frames = Some(8);
    let sender = start_sender(config);
    let mut stats = ReceiverStats::default();
    receiver::run(
        &receiver_config(sender.addr, 100),
        &Stop::default(),
        &mut stats,
    )
    .unwrap();
    let sent = sender.join();
    let received = stats.report();
    assert_eq!(received.frames, 8);
    assert_eq!(sent.frames_sent, 8);
    assert_eq!(received.bytes, sent.bytes_sent);
}
