//! Pairing and encryption end to end: the right code streams, a wrong one fails on both sides,
//! nothing of a frame crosses the network in the clear, and a message altered, replayed or cut
//! on the way ends the connection before it reaches the decoder.

use crate::common::*;
use camstream::receiver::{self, ReceiverConfig};
use camstream::sender::SenderConfig;
use camstream::stats::ReceiverStats;
use camstream::wire::connection::{MessageReader, MessageWriter};
use camstream::wire::protocol::{
    self, Ack, Codec, Message, Pake, Security, ViewerHello, LENGTH_PREFIX_LEN, MAX_HELLO_LEN,
};
use camstream::wire::secure::PairingExchange;
use camstream::wire::secure::PairingMode;
use camstream::{error_line, Stop};
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

const WIDTH: u32 = 320;
const HEIGHT: u32 = 240;

fn paired_sender() -> RunningSender {
    start_sender(SenderConfig {
        pairing: paired(),
        ..config("test:320x240", Codec::Raw)
    })
}

fn receiver(addr: SocketAddr, pairing: PairingMode, frames: Option<u64>) -> ReceiverConfig {
    ReceiverConfig {
        frames,
        pairing,
        ..receiver_config(addr, 0)
    }
}

/// Runs a receiver to its end; returns how many frames it showed.
fn run_receiver(config: &ReceiverConfig) -> anyhow::Result<u64> {
    let mut stats = ReceiverStats::default();
    receiver::run(config, &Stop::default(), &mut stats).map(|()| stats.frames())
}

#[test]
fn the_right_code_streams_byte_identical_frames() {
    let sender = paired_sender();
    let mut viewer = TestViewer::connect_with(sender.addr, &paired());
    for _ in 0..10 {
        let frame = viewer.frame().unwrap();
        assert_eq!(
            frame.data,
            pattern_frame(WIDTH, HEIGHT, frame.header.seq),
            "frame {}",
            frame.header.seq
        );
        viewer.ack(frame.header.seq);
    }
    let shown = run_receiver(&receiver(sender.addr, paired(), Some(10))).unwrap();
    assert_eq!(shown, 10);
}

/// The handshake as the README documents it, written out message by message, independently of
/// `wire::handshake` (which the sender, the receiver and `TestViewer` all share): a change to the
/// order or the contents of the messages on both sides at once still fails here.
#[test]
fn a_viewer_written_from_the_documented_handshake_pairs_and_opens_frames() {
    let sender = paired_sender();
    let stream = TcpStream::connect(sender.addr).unwrap();
    let mut writer = MessageWriter::new(&stream);
    writer
        .write_message(&Message::ViewerHello(ViewerHello::new(Security::Paired)))
        .unwrap();
    let mut reader = MessageReader::new(&stream);
    let hello_payload = reader
        .read_payload(MAX_HELLO_LEN)
        .unwrap()
        .unwrap()
        .to_vec();
    let hello = protocol::decode_stream_hello(&hello_payload).unwrap();
    assert_eq!(hello.security, Security::Paired);
    let (exchange, ours) = PairingExchange::start(TEST_CODE);
    writer
        .write_message(&Message::Pake(Pake { message: &ours }))
        .unwrap();
    let theirs = reader.read_payload(MAX_HELLO_LEN).unwrap().unwrap();
    let mut keys = exchange
        .finish(protocol::decode_pake(theirs).unwrap(), &hello_payload)
        .unwrap();
    writer
        .write_sealed(&Message::Paired, &mut keys.to_sender)
        .unwrap();
    let sealed = reader
        .read_sealed(MAX_HELLO_LEN, &mut keys.to_receiver)
        .unwrap()
        .unwrap();
    let frame_key = protocol::decode_frame_key(sealed).unwrap().key;
    let clock = reader
        .read_sealed(MAX_HELLO_LEN, &mut keys.to_receiver)
        .unwrap()
        .unwrap();
    protocol::decode_clock(clock).unwrap();
    let sealed_frame = reader.read_payload(1 << 20).unwrap().unwrap().to_vec();
    let plain = open_as_documented(&frame_key, &sealed_frame);
    let Message::Frame(frame) = protocol::decode(&plain).unwrap() else {
        panic!("not a frame");
    };
    assert_eq!(frame.data, pattern_frame(WIDTH, HEIGHT, frame.header.seq));
    writer
        .write_sealed(
            &Message::Ack(Ack {
                seq: frame.header.seq,
                keyframe_wanted: false,
            }),
            &mut keys.to_sender,
        )
        .unwrap();
}

/// Opens a sealed frame message as the README lays it out, with AWS-LC's AES-256-GCM and
/// nothing of camstream's: the sequence number, then chunks of 64 KiB of ciphertext and a
/// 16-byte tag (the last shorter), each with the nonce seq (8 bytes), index (3), last (1).
fn open_as_documented(key: &[u8; 32], sealed: &[u8]) -> Vec<u8> {
    use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
    let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key).unwrap());
    let (seq, chunks) = sealed.split_at(8);
    let count = chunks.len().div_ceil(65536 + 16);
    let mut plain = Vec::new();
    for (index, chunk) in chunks.chunks(65536 + 16).enumerate() {
        let mut nonce = [0u8; 12];
        nonce[..8].copy_from_slice(seq);
        nonce[8..11].copy_from_slice(&(index as u32).to_le_bytes()[..3]);
        nonce[11] = u8::from(index + 1 == count);
        let mut chunk = chunk.to_vec();
        let opened = key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::empty(),
                &mut chunk,
            )
            .unwrap();
        plain.extend_from_slice(opened);
    }
    plain
}

#[test]
fn insecure_and_paired_sides_tell_each_other_clearly() {
    let sender = paired_sender();
    let err = run_receiver(&receiver(sender.addr, PairingMode::Insecure, Some(1))).unwrap_err();
    assert!(
        error_line(&err).ends_with("the sender pairs with a code (it was not started with --insecure); pass --code with the code it shows"),
        "{err:#}"
    );
    let insecure = start_sender(config("test:160x120", Codec::Raw));
    let err = run_receiver(&receiver(insecure.addr, paired(), Some(1))).unwrap_err();
    assert!(
        error_line(&err).ends_with("the sender streams without encryption (started with --insecure); pass --insecure to watch it anyway"),
        "{err:#}"
    );
    // And --insecure on both sides streams, as before.
    run_receiver(&receiver(insecure.addr, PairingMode::Insecure, Some(3))).unwrap();
}

#[test]
fn a_wrong_code_fails_on_both_sides_and_repeated_tries_are_slowed() {
    let sender = Program::spawn(env!("CARGO_BIN_EXE_sender"), &TEST_SENDER_ARGS);
    let line = sender.wait_for_line("listening on ");
    let addr = line.split(' ').nth(3).unwrap().to_owned();
    let try_code = |code: &str| {
        Command::new(env!("CARGO_BIN_EXE_receiver"))
            .args(["--connect", &addr, "--headless", "--once", "--code", code])
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    let wrong = try_code("7-crossover-clockworks");
    assert_eq!(wrong.status.code(), Some(1));
    let said = String::from_utf8_lossy(&wrong.stderr).into_owned();
    assert!(
        said.lines()
            .any(|l| l
                == format!("receiver: error: greeting sender {addr}: pairing code did not match")),
        "{said}"
    );
    sender.wait_for_line("pairing code did not match (1 in a row)");
    // At once again: the sender refuses before any pairing work.
    let again = try_code("7-crossover-clockworks");
    assert_eq!(again.status.code(), Some(1));
    sender.wait_for_line("too many wrong pairing codes; next try allowed in");
    sender.kill();
}

/// A man in the middle: forwards one connection, recording every byte both ways, and passes
/// each sender-to-receiver message (length prefix included) through `tamper`, which returns
/// what to forward in its place.
fn proxy(
    upstream: SocketAddr,
    mut tamper: impl FnMut(usize, Vec<u8>) -> Vec<Vec<u8>> + Send + 'static,
) -> (SocketAddr, Arc<Mutex<Vec<u8>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&seen);
    std::thread::spawn(move || {
        let (mut client, _) = listener.accept().unwrap();
        let mut server = TcpStream::connect(upstream).unwrap();
        let (mut client_in, mut server_out) =
            (client.try_clone().unwrap(), server.try_clone().unwrap());
        let upward = Arc::clone(&record);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = client_in.read(&mut buf) {
                upward.lock().unwrap().extend_from_slice(&buf[..n]);
                if server_out.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            let _ = server_out.shutdown(Shutdown::Write);
        });
        for index in 0.. {
            let mut prefix = [0u8; LENGTH_PREFIX_LEN];
            if server.read_exact(&mut prefix).is_err() {
                break;
            }
            let mut message = prefix.to_vec();
            message.resize(LENGTH_PREFIX_LEN + u64::from_le_bytes(prefix) as usize, 0);
            if server
                .read_exact(&mut message[LENGTH_PREFIX_LEN..])
                .is_err()
            {
                break;
            }
            for out in tamper(index, message) {
                record.lock().unwrap().extend_from_slice(&out);
                if client.write_all(&out).is_err() {
                    return;
                }
            }
        }
        let _ = client.shutdown(Shutdown::Write);
    });
    (addr, seen)
}

/// Messages from the sender: hello, pairing message, sealed frame key, sealed clock reading, then
/// frames.
const FIRST_FRAME: usize = 4;

#[test]
fn no_frame_bytes_cross_the_network_in_the_clear() {
    // A stretch of the test pattern that is in every frame (its colour bands).
    let known = pattern_frame(WIDTH, HEIGHT, 0)[(WIDTH * 3 * 100) as usize..][..96].to_vec();
    let contains = |haystack: &[u8]| haystack.windows(known.len()).any(|w| w == known);
    for (pairing, in_the_clear) in [(PairingMode::Insecure, true), (paired(), false)] {
        let sender = start_sender(SenderConfig {
            pairing: pairing.clone(),
            ..config("test:320x240", Codec::Raw)
        });
        let (addr, seen) = proxy(sender.addr, |_, message| vec![message]);
        let shown = run_receiver(&receiver(addr, pairing.clone(), Some(5))).unwrap();
        assert_eq!(shown, 5);
        let seen = seen.lock().unwrap();
        assert!(seen.len() > 5 * (WIDTH * HEIGHT * 3) as usize);
        assert_eq!(contains(&seen), in_the_clear, "{pairing:?}");
    }
}

/// Runs a paired receiver through a proxy that applies `tamper`, and returns its error line.
fn tampered(tamper: impl FnMut(usize, Vec<u8>) -> Vec<Vec<u8>> + Send + 'static) -> String {
    let sender = paired_sender();
    let (addr, _) = proxy(sender.addr, tamper);
    let err = run_receiver(&receiver(addr, paired(), None)).unwrap_err();
    error_line(&err)
}

#[test]
fn a_flipped_bit_is_refused() {
    let line = tampered(|index, mut message| {
        if index == FIRST_FRAME + 1 {
            let middle = message.len() / 2;
            message[middle] ^= 0x01;
        }
        vec![message]
    });
    assert!(line.contains("failed authentication"), "{line}");
}

#[test]
fn a_replayed_frame_is_refused() {
    let line = tampered(|index, message| match index == FIRST_FRAME {
        true => vec![message.clone(), message],
        false => vec![message],
    });
    assert!(line.contains("(replayed or reordered)"), "{line}");
}

#[test]
fn a_truncated_frame_is_refused() {
    let line = tampered(|index, mut message| {
        if index == FIRST_FRAME {
            message.pop();
            let len = (message.len() - LENGTH_PREFIX_LEN) as u64;
            message[..LENGTH_PREFIX_LEN].copy_from_slice(&len.to_le_bytes());
        }
        vec![message]
    });
    assert!(line.contains("failed authentication"), "{line}");
}

#[test]
fn a_frame_cut_after_a_whole_chunk_or_with_chunks_swapped_is_refused() {
    // Frames of 320x240 are sealed in four chunks: 8 bytes of sequence number, then 65,552 each.
    let chunk = 65536 + 16;
    let first = LENGTH_PREFIX_LEN + 8;
    let cut = tampered(move |index, mut message| {
        if index == FIRST_FRAME {
            message.truncate(first + 2 * chunk);
            let len = (message.len() - LENGTH_PREFIX_LEN) as u64;
            message[..LENGTH_PREFIX_LEN].copy_from_slice(&len.to_le_bytes());
        }
        vec![message]
    });
    assert!(cut.contains("failed authentication"), "{cut}");
    let swapped = tampered(move |index, message| {
        if index != FIRST_FRAME {
            return vec![message];
        }
        let (head, chunks) = message.split_at(first);
        let (one, rest) = chunks.split_at(chunk);
        let (two, rest) = rest.split_at(chunk);
        vec![[head, two, one, rest].concat()]
    });
    assert!(swapped.contains("failed authentication"), "{swapped}");
}

#[test]
fn an_altered_hello_ends_the_pairing() {
    // The hello is in the clear but bound into the keys: a changed frame rate is noticed.
    let line = tampered(|index, mut message| {
        if index == 0 {
            let fps_at = message.len() - 4 - 8;
            message[fps_at..fps_at + 8].copy_from_slice(&5f64.to_le_bytes());
        }
        vec![message]
    });
    assert!(line.ends_with("pairing code did not match"), "{line}");
}

#[test]
fn paired_stats_count_the_sealed_bytes_the_sender_sent() {
    // Frames of four chunks: the sequence number and every tag are on the wire too.
    let sender = start_sender(SenderConfig {
        pairing: paired(),
        frames: Some(6),
        ..config("test:320x240", Codec::Raw)
    });
    let mut stats = ReceiverStats::default();
    receiver::run(
        &receiver(sender.addr, paired(), Some(100)),
        &Stop::default(),
        &mut stats,
    )
    .unwrap();
    let sent = sender.join();
    let received = stats.report();
    assert_eq!(received.frames, 6);
    assert_eq!(received.bytes, sent.bytes_sent);
}
