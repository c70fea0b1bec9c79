//! Properties of the wire format over generated messages and bytes: whatever a peer sends,
//! decoding either gives back exactly what was encoded or a clean error, never a panic.
//! The fuzz target in `fuzz/` pushes the same decoder much further; these run on every test.

use camstream::media::codec::check_frame;
use camstream::wire::connection::{MessageReader, MessageWriter};
use camstream::wire::protocol::{
    self, Ack, Clock, Codec, Frame, FrameHeader, Message, PixelFormat, ProtocolError, Refusal,
    RefusalReason, Security, SenderGreeting, StreamHello, ViewerHello, LENGTH_PREFIX_LEN,
    MAX_MESSAGE_LEN,
};
use proptest::prelude::*;

/// A message's fields, owned, so a strategy can produce it; `as_message` borrows it.
#[derive(Debug, Clone)]
enum Owned {
    StreamHello(StreamHello),
    ViewerHello(u64),
    Frame(FrameHeader, Vec<u8>),
    Ack(u64, bool),
    Clock(u64, u64, u64),
    Refusal(RefusalReason),
}

impl Owned {
    fn as_message(&self) -> Message<'_> {
        match self {
            Owned::StreamHello(hello) => Message::StreamHello(*hello),
            Owned::ViewerHello(sent_unix_us) => Message::ViewerHello(ViewerHello {
                sent_unix_us: *sent_unix_us,
                ..ViewerHello::new(Security::Paired)
            }),
            Owned::Frame(header, data) => Message::Frame(Frame {
                header: *header,
                data,
            }),
            Owned::Ack(seq, keyframe_wanted) => Message::Ack(Ack {
                seq: *seq,
                keyframe_wanted: *keyframe_wanted,
            }),
            Owned::Clock(t1, t2, t3) => Message::Clock(Clock {
                hello_sent_unix_us: *t1,
                hello_read_unix_us: *t2,
                sent_unix_us: *t3,
            }),
            Owned::Refusal(reason) => Message::Refusal(Refusal::new(*reason)),
        }
    }
}

fn codec() -> impl Strategy<Value = Codec> {
    prop_oneof![Just(Codec::Raw), Just(Codec::Jpeg), Just(Codec::H264)]
}

fn header() -> impl Strategy<Value = FrameHeader> {
    (
        any::<u64>(),
        any::<u64>(),
        any::<u32>(),
        any::<u32>(),
        codec(),
        any::<bool>(),
    )
        .prop_map(
            |(seq, capture_unix_us, width, height, codec, keyframe)| FrameHeader {
                seq,
                capture_unix_us,
                width,
                height,
                pixel_format: PixelFormat::Bgr8,
                codec,
                keyframe,
            },
        )
}

fn message() -> impl Strategy<Value = Owned> {
    prop_oneof![
        (any::<u32>(), any::<u32>(), codec(), any::<f64>()).prop_map(|(w, h, codec, fps)| {
            Owned::StreamHello(StreamHello::new(w, h, codec, fps))
        }),
        any::<u64>().prop_map(Owned::ViewerHello),
        (header(), proptest::collection::vec(any::<u8>(), 0..2048))
            .prop_map(|(header, data)| Owned::Frame(header, data)),
        (any::<u64>(), any::<bool>()).prop_map(|(seq, wanted)| Owned::Ack(seq, wanted)),
        (any::<u64>(), any::<u64>(), any::<u64>()).prop_map(|(a, b, c)| Owned::Clock(a, b, c)),
        refusal().prop_map(Owned::Refusal),
    ]
}

fn refusal() -> impl Strategy<Value = RefusalReason> {
    prop_oneof![
        (any::<u32>(), any::<u32>())
            .prop_map(|(viewers, max)| RefusalReason::Full { viewers, max }),
        any::<u32>().prop_map(|wait_s| RefusalReason::LockedOut { wait_s }),
        any::<u32>().prop_map(|wait_s| RefusalReason::Busy { wait_s }),
    ]
}

fn encoded(message: &Message<'_>) -> Vec<u8> {
    let mut out = Vec::new();
    protocol::encode_into(message, &mut out).unwrap();
    out
}

proptest! {
    #[test]
    fn every_message_decodes_to_the_same_bytes(owned in message()) {
        let bytes = encoded(&owned.as_message());
        let decoded = protocol::decode(&bytes).unwrap();
        // Compared as bytes, so a NaN frame rate counts as equal to itself.
        prop_assert_eq!(encoded(&decoded), bytes);
    }

    #[test]
    fn a_frame_prefix_and_its_data_are_the_whole_message(
        header in header(),
        data in proptest::collection::vec(any::<u8>(), 0..2048),
    ) {
        let mut bytes = Vec::new();
        protocol::encode_frame_prefix(&header, data.len(), &mut bytes).unwrap();
        bytes.extend_from_slice(&data);
        prop_assert_eq!(bytes, encoded(&Message::Frame(Frame { header, data: &data })));
    }

    #[test]
    fn every_truncation_is_an_error(owned in message(), cut in any::<prop::sample::Index>()) {
        let bytes = encoded(&owned.as_message());
        let cut = cut.index(bytes.len());
        prop_assert!(protocol::decode(&bytes[..cut]).is_err());
    }

    #[test]
    fn arbitrary_bytes_decode_only_to_what_encodes_back_to_them(
        bytes in proptest::collection::vec(any::<u8>(), 0..256),
    ) {
        if let Ok(message) = protocol::decode(&bytes) {
            prop_assert_eq!(encoded(&message), bytes);
        }
    }

    #[test]
    fn bytes_behind_a_valid_tag_never_panic(
        tag in 0u32..10,
        hello_like in any::<bool>(),
        tail in proptest::collection::vec(any::<u8>(), 0..128),
    ) {
        // Half of them with a hello's magic and version, so what follows is decoded too.
        let head: &[u8] = match hello_like {
            true => &[b'C', b'A', b'M', b'S', 5, 0, 0, 0],
            false => &[],
        };
        let bytes = [&tag.to_le_bytes()[..], head, &tail].concat();
        let _ = protocol::decode(&bytes);
        let _ = protocol::decode_stream_hello(&bytes);
        let _ = protocol::decode_sender_greeting(&bytes);
        let _ = protocol::decode_viewer_hello(&bytes);
        let _ = protocol::decode_ack(&bytes);
    }

    #[test]
    fn a_length_is_accepted_only_up_to_its_cap(len in any::<u64>(), max in 0..=MAX_MESSAGE_LEN) {
        let checked = protocol::check_length(len.to_le_bytes(), max);
        if len <= max as u64 {
            prop_assert_eq!(checked, Ok(len as usize));
        } else {
            prop_assert_eq!(checked, Err(ProtocolError::TooLarge { len, max }));
        }
    }

    #[test]
    fn a_hello_passes_only_if_its_frames_fit_in_a_message(
        width in prop_oneof![0u32..4096, any::<u32>()],
        height in prop_oneof![0u32..4096, any::<u32>()],
        codec in codec(),
    ) {
        let hello = StreamHello::new(width, height, codec, 30.0);
        // Exact arithmetic, so no overflow can make a giant picture look small.
        let bytes = u128::from(width) * u128::from(height) * 3;
        let fits = width > 0 && height > 0 && bytes <= (MAX_MESSAGE_LEN - 64) as u128;
        prop_assert_eq!(hello.check().is_ok(), fits);
        prop_assert!(hello.max_message_len() <= MAX_MESSAGE_LEN);
    }

    #[test]
    fn a_raw_frame_must_match_its_stream_exactly(
        width in 1u32..64,
        height in 1u32..64,
        header in header(),
        extra in -3i64..3,
    ) {
        let hello = StreamHello::new(width, height, Codec::Raw, 30.0);
        let len = (hello.frame_bytes() as i64 + extra).max(0) as usize;
        let data = vec![0u8; len];
        let frame = Frame { header: FrameHeader { codec: Codec::Raw, ..header }, data: &data };
        let fits = header.width == width && header.height == height && extra == 0;
        match check_frame(&hello, &frame) {
            Ok(()) => prop_assert!(fits),
            Err(e) => {
                prop_assert!(!fits);
                let text = e.to_string();
                prop_assert!(text.contains(&format!("frame {}", header.seq)), "{}", text);
            }
        }
    }

    #[test]
    fn a_stream_cut_anywhere_ends_cleanly_or_with_an_error(
        messages in proptest::collection::vec(message(), 1..6),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut stream = Vec::new();
        let mut boundaries = vec![0];
        {
            let mut writer = MessageWriter::new(&mut stream);
            for owned in &messages {
                writer.write_message(&owned.as_message()).unwrap();
            }
        }
        let mut at = 0;
        for owned in &messages {
            at += LENGTH_PREFIX_LEN + encoded(&owned.as_message()).len();
            boundaries.push(at);
        }
        let cut = cut.index(stream.len() + 1);
        let mut reader = MessageReader::new(&stream[..cut]);
        let mut read = 0;
        let ended = loop {
            match reader.read_message(MAX_MESSAGE_LEN) {
                Ok(Some(message)) => {
                    prop_assert_eq!(encoded(&message), encoded(&messages[read].as_message()));
                    read += 1;
                }
                Ok(None) => break Ok(()),
                Err(e) => break Err(e),
            }
        };
        // Whole messages before the cut arrive intact; the close is clean only at a boundary.
        prop_assert_eq!(ended.is_ok(), boundaries.contains(&cut));
        prop_assert_eq!(boundaries[read] <= cut, true);
    }
}

/// Whether a seed file's bytes are what its name says.
type SeedCheck = fn(&[u8]) -> bool;

/// The fuzz target's seeds (`fuzz/corpus/decode_message/seed-*`) are real encodings and real
/// attacks: each still decodes, or fails, as its name says.
#[test]
fn the_fuzz_seeds_are_what_their_names_say() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/decode_message");
    let expected: &[(&str, SeedCheck)] = &[
        ("seed-ack", |b| {
            protocol::decode_ack(b).is_ok_and(|a| a.seq == 42 && a.keyframe_wanted)
        }),
        ("seed-pake", |b| {
            protocol::decode_pake(b).is_ok_and(|m| m.len() == 33)
        }),
        ("seed-frame-key", |b| protocol::decode_frame_key(b).is_ok()),
        ("seed-clock", |b| {
            protocol::decode_clock(b).is_ok_and(|c| c.offset_us(1_700_000_000_000_200) == 4_999_950)
        }),
        ("seed-paired", |b| protocol::decode_paired(b).is_ok()),
        ("seed-stream-hello-paired", |b| {
            protocol::decode_stream_hello(b).is_ok_and(|h| h.security == Security::Paired)
        }),
        ("seed-refusal-full", |b| {
            protocol::decode_sender_greeting(b)
                == Ok(SenderGreeting::Refused(RefusalReason::Full {
                    viewers: 8,
                    max: 8,
                }))
        }),
        ("seed-refusal-locked-out", |b| {
            protocol::decode_sender_greeting(b)
                == Ok(SenderGreeting::Refused(RefusalReason::LockedOut {
                    wait_s: 4,
                }))
        }),
        ("seed-refusal-busy", |b| {
            protocol::decode_sender_greeting(b)
                == Ok(SenderGreeting::Refused(RefusalReason::Busy { wait_s: 6 }))
        }),
        ("seed-viewer-hello", |b| {
            protocol::decode_viewer_hello(b).is_ok()
        }),
        ("seed-stream-hello-raw", |b| {
            protocol::decode_stream_hello(b).is_ok()
        }),
        ("seed-stream-hello-jpeg", |b| {
            protocol::decode_stream_hello(b).is_ok()
        }),
        (
            "seed-frame-raw-2x1",
            |b| matches!(protocol::decode(b), Ok(Message::Frame(f)) if f.data.len() == 6),
        ),
        ("seed-frame-jpeg-64x48", |b| {
            // A JPEG from OpenCV's encoder, so the SOF check is tried on the real thing.
            let stream = StreamHello::new(64, 48, Codec::Jpeg, 30.0);
            matches!(protocol::decode(b), Ok(Message::Frame(f)) if check_frame(&stream, &f).is_ok())
        }),
        ("seed-frame-h264-keyframe-64x48", |b| {
            // A keyframe from libx264, so the SPS check is tried on the real thing.
            let stream = StreamHello::new(64, 48, Codec::H264, 30.0);
            matches!(protocol::decode(b), Ok(Message::Frame(f))
                if f.header.keyframe && check_frame(&stream, &f).is_ok())
        }),
        ("seed-frame-raw-truncated", |b| {
            protocol::decode(b) == Err(ProtocolError::Incomplete)
        }),
        ("seed-stream-hello-version-7", |b| {
            protocol::decode(b) == Err(ProtocolError::BadVersion { theirs: 7 })
        }),
        (
            "seed-stream-hello-overflowing-size",
            |b| matches!(protocol::decode(b), Ok(Message::StreamHello(h)) if h.check().is_err()),
        ),
        ("seed-http-response", |b| protocol::decode(b).is_err()),
        ("seed-http-request-with-credentials", |b| {
            matches!(camstream::wire::http::parse_request(b), Ok(Some((r, _)))
                if r.basic_password.as_deref() == Some("7-crossover-clockwork")
                    && r.session.as_deref() == Some("00ff"))
        }),
        ("seed-page-ack", |b| {
            std::str::from_utf8(b).is_ok_and(|t| {
                camstream::wire::web::PageMessage::parse(t).is_ok_and(|m| {
                    m == camstream::wire::web::PageMessage::Ack {
                        seq: 7,
                        latency_us: Some(1500.5),
                    }
                })
            })
        }),
        ("seed-length-prefix-2-to-the-63", |b| {
            let prefix = b
                .first_chunk::<LENGTH_PREFIX_LEN>()
                .copied()
                .unwrap_or_default();
            protocol::check_length(prefix, MAX_MESSAGE_LEN).is_err()
        }),
    ];
    let mut found: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("seed-"))
        .collect();
    found.sort();
    let mut named: Vec<String> = expected.iter().map(|(name, _)| name.to_string()).collect();
    named.sort();
    assert_eq!(
        found, named,
        "every seed is checked here, and only seeds that exist"
    );
    for (name, holds) in expected {
        let bytes = std::fs::read(dir.join(name)).unwrap();
        assert!(holds(&bytes), "{name}");
    }
}
