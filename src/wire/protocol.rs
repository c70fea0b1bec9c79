//! The wire format as bytes: messages, their bincode encoding and every check made on them.
//!
//! Nothing here touches a socket or OpenCV, so each edge case (a truncated message, a bogus
//! length, another protocol version, garbage) is a plain unit test on a byte slice. The framing
//! (`u64` little-endian length, then that many bytes) is read and written by `connection`; this
//! module turns one payload into a [`Message`] and back. Each message's fields are types in
//! [`super::messages`], re-exported here.
//!
//! Encoding is bincode 2 with fixed-width little-endian integers, so every field sits at a fixed
//! offset and the README can document the format byte by byte. bincode is marked unmaintained
//! (RUSTSEC-2025-0141); it is used only in this file so it can be swapped without touching the rest.

pub use super::messages::*;
use serde::{Deserialize, Serialize};

/// The protocol version this build speaks. Bump it on any change to the encoding.
pub const VERSION: u32 = 5;
/// Versions this build can talk to, for the error that names them.
pub const SUPPORTED_VERSIONS: &[u32] = &[VERSION];
/// First four bytes of every hello, so a stray peer is told apart from an old camstream.
pub const MAGIC: [u8; 4] = *b"CAMS";
/// Bytes of the length prefix in front of every message.
pub const LENGTH_PREFIX_LEN: usize = 8;
/// No message is ever longer than this, whatever a peer claims.
pub const MAX_MESSAGE_LEN: usize = 64 << 20;
/// Hellos are tiny; a peer that announces more before its hello is not speaking camstream.
pub const MAX_HELLO_LEN: usize = 4 << 10;
/// Room for a frame message's fields in front of its pixels.
pub(crate) const FRAME_OVERHEAD: usize = 64;
/// A compressed frame may, for noise at high quality, be larger than its pixels.
pub(crate) const COMPRESSED_SLACK: usize = 2;

const TAG_STREAM_HELLO: u32 = 0;
const TAG_VIEWER_HELLO: u32 = 1;
const TAG_FRAME: u32 = 2;
const TAG_REFUSAL: u32 = 8;
/// Bytes of an encoded [`Ack`] message.
pub const ACK_LEN: usize = 13;
/// An ack is the only message a viewer sends after its hello.
pub const MAX_ACK_LEN: usize = ACK_LEN;

/// One message of the protocol.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq)]
pub enum Message<'a> {
    StreamHello(StreamHello),
    ViewerHello(ViewerHello),
    #[serde(borrow)]
    Frame(Frame<'a>),
    Ack(Ack),
    #[serde(borrow)]
    Pake(Pake<'a>),
    FrameKey(FrameKey),
    /// The receiver's first sealed message: it shows the sender that both used the same code.
    Paired,
    Clock(Clock),
    Refusal(Refusal),
}

/// What can be wrong with bytes from a peer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    #[error(
        "message of {len} bytes is over the {max}-byte limit (is the peer a camstream program?)"
    )]
    TooLarge { len: u64, max: usize },
    #[error("message ends early (truncated)")]
    Incomplete,
    #[error("peer is not a camstream program (its hello starts with {found:02x?})")]
    BadMagic { found: Vec<u8> },
    #[error("peer speaks camstream protocol version {theirs}; this program speaks version {ours}", ours = versions_list())]
    BadVersion { theirs: u32 },
    #[error("malformed message: {0}")]
    Malformed(String),
    #[error("expected {expected}, got {got}")]
    Unexpected {
        expected: &'static str,
        got: &'static str,
    },
}

fn versions_list() -> String {
    let names: Vec<String> = SUPPORTED_VERSIONS.iter().map(u32::to_string).collect();
    names.join(", ")
}

fn config() -> impl bincode::config::Config {
    bincode::config::standard()
        .with_little_endian()
        .with_fixed_int_encoding()
}

/// Checks a length prefix before anything is allocated for it.
pub fn check_length(prefix: [u8; LENGTH_PREFIX_LEN], max: usize) -> Result<usize, ProtocolError> {
    let len = u64::from_le_bytes(prefix);
    match usize::try_from(len) {
        Ok(n) if n <= max => Ok(n),
        _ => Err(ProtocolError::TooLarge { len, max }),
    }
}

/// Appends the bincode encoding of `message` to `out`.
pub fn encode_into(message: &Message<'_>, out: &mut Vec<u8>) -> Result<(), ProtocolError> {
    bincode::serde::encode_into_std_write(message, out, config())
        .map(drop)
        .map_err(|e| ProtocolError::Malformed(e.to_string()))
}

/// Appends everything of a frame message that comes before its `data_len` bytes of data, so a
/// writer can send the data from where it already is instead of copying it behind the header.
/// The result followed by the data is exactly `encode_into(Message::Frame(..))`.
pub fn encode_frame_prefix(
    header: &FrameHeader,
    data_len: usize,
    out: &mut Vec<u8>,
) -> Result<(), ProtocolError> {
    // bincode writes an enum variant as its u32 index and a byte slice as its u64 length and bytes.
    bincode::serde::encode_into_std_write((TAG_FRAME, header, data_len as u64), out, config())
        .map(drop)
        .map_err(|e| ProtocolError::Malformed(e.to_string()))
}

/// Decodes one whole payload (the bytes after a length prefix). Frame data borrows from it.
pub fn decode(payload: &[u8]) -> Result<Message<'_>, ProtocolError> {
    check_hello_prefix(payload)?;
    let (message, used): (Message<'_>, usize) =
        bincode::serde::borrow_decode_from_slice(payload, config()).map_err(|e| match e {
            bincode::error::DecodeError::UnexpectedEnd { .. } => ProtocolError::Incomplete,
            other => ProtocolError::Malformed(other.to_string()),
        })?;
    if used != payload.len() {
        return Err(ProtocolError::Malformed(format!(
            "{} bytes left over after the message",
            payload.len() - used
        )));
    }
    Ok(message)
}

/// A hello's (or a refusal's) magic and version are read before the rest, so that a peer of
/// another version gets told which versions we speak even if the rest no longer decodes.
fn check_hello_prefix(payload: &[u8]) -> Result<(), ProtocolError> {
    let Some(tag) = payload.get(0..4) else {
        return Ok(());
    };
    let tag = u32::from_le_bytes([tag[0], tag[1], tag[2], tag[3]]);
    if ![TAG_STREAM_HELLO, TAG_VIEWER_HELLO, TAG_REFUSAL].contains(&tag) {
        return Ok(());
    }
    let magic = &payload[4..payload.len().min(8)];
    if magic != &MAGIC[..magic.len()] {
        return Err(ProtocolError::BadMagic {
            found: magic.to_vec(),
        });
    }
    if let Some(version) = payload.get(8..12) {
        let theirs = u32::from_le_bytes([version[0], version[1], version[2], version[3]]);
        if !SUPPORTED_VERSIONS.contains(&theirs) {
            return Err(ProtocolError::BadVersion { theirs });
        }
    }
    Ok(())
}

impl Message<'_> {
    pub fn kind(&self) -> &'static str {
        match self {
            Message::StreamHello(_) => "a stream hello",
            Message::ViewerHello(_) => "a viewer hello",
            Message::Frame(_) => "a frame",
            Message::Ack(_) => "an ack",
            Message::Pake(_) => "a pairing message",
            Message::FrameKey(_) => "a frame key",
            Message::Paired => "a pairing confirmation",
            Message::Clock(_) => "a clock reading",
            Message::Refusal(_) => "a refusal",
        }
    }
}

/// Decodes a payload that must be one kind of message; `pick` takes it out of the [`Message`].
fn decode_as<'a, T>(
    payload: &'a [u8],
    expected: &'static str,
    pick: impl FnOnce(Message<'a>) -> Option<T>,
) -> Result<T, ProtocolError> {
    let message = decode(payload)?;
    pick(message).ok_or(ProtocolError::Unexpected {
        expected,
        got: message.kind(),
    })
}

/// Decodes the sender's hello and checks that the stream it announces is one we can carry.
pub fn decode_stream_hello(payload: &[u8]) -> Result<StreamHello, ProtocolError> {
    let hello = decode_as(payload, "a stream hello", |m| match m {
        Message::StreamHello(hello) => Some(hello),
        _ => None,
    })?;
    hello.check()?;
    Ok(hello)
}

/// The sender's first message: its hello, or why it will not serve us now.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SenderGreeting {
    Hello(StreamHello),
    Refused(RefusalReason),
}

/// Decodes the sender's first message, checking a hello's stream as
/// [`decode_stream_hello`] does.
pub fn decode_sender_greeting(payload: &[u8]) -> Result<SenderGreeting, ProtocolError> {
    let greeting = decode_as(payload, "a stream hello", |m| match m {
        Message::StreamHello(hello) => Some(SenderGreeting::Hello(hello)),
        Message::Refusal(refusal) => Some(SenderGreeting::Refused(refusal.reason)),
        _ => None,
    })?;
    if let SenderGreeting::Hello(hello) = greeting {
        hello.check()?;
    }
    Ok(greeting)
}

/// Decodes what a viewer sends while it watches.
pub fn decode_ack(payload: &[u8]) -> Result<Ack, ProtocolError> {
    decode_as(payload, "an ack", |m| match m {
        Message::Ack(ack) => Some(ack),
        _ => None,
    })
}

/// Decodes the receiver's hello.
pub fn decode_viewer_hello(payload: &[u8]) -> Result<ViewerHello, ProtocolError> {
    decode_as(payload, "a viewer hello", |m| match m {
        Message::ViewerHello(hello) => Some(hello),
        _ => None,
    })
}

/// Decodes the other side's SPAKE2 message.
pub fn decode_pake(payload: &[u8]) -> Result<&[u8], ProtocolError> {
    decode_as(payload, "a pairing message", |m| match m {
        Message::Pake(pake) => Some(pake.message),
        _ => None,
    })
}

/// Decodes the sender's first sealed message (once opened).
pub fn decode_frame_key(payload: &[u8]) -> Result<FrameKey, ProtocolError> {
    decode_as(payload, "a frame key", |m| match m {
        Message::FrameKey(key) => Some(key),
        _ => None,
    })
}

/// Decodes the receiver's first sealed message (once opened).
pub fn decode_paired(payload: &[u8]) -> Result<(), ProtocolError> {
    decode_as(payload, "a pairing confirmation", |m| match m {
        Message::Paired => Some(()),
        _ => None,
    })
}

/// Decodes the sender's answer to the viewer's hello.
pub fn decode_clock(payload: &[u8]) -> Result<Clock, ProtocolError> {
    decode_as(payload, "a clock reading", |m| match m {
        Message::Clock(clock) => Some(clock),
        _ => None,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn encoded(message: &Message<'_>) -> Vec<u8> {
        let mut out = Vec::new();
        encode_into(message, &mut out).unwrap();
        out
    }

    /// A 2x1 raw frame header, for tests here and of the frame checks.
    pub(crate) fn sample_header() -> FrameHeader {
        FrameHeader {
            seq: 7,
            capture_unix_us: 1_700_000_000_000_000,
            width: 2,
            height: 1,
            pixel_format: PixelFormat::Bgr8,
            codec: Codec::Raw,
            keyframe: true,
        }
    }

    #[test]
    fn frame_round_trips_and_borrows_its_data() {
        let data = [1u8, 2, 3, 4, 5, 6];
        let message = Message::Frame(Frame {
            header: sample_header(),
            data: &data,
        });
        let bytes = encoded(&message);
        let decoded = decode(&bytes).unwrap();
        assert_eq!(decoded, message);
        let Message::Frame(frame) = decoded else {
            panic!("not a frame")
        };
        // The data is a view into the payload, not a copy.
        assert_eq!(
            frame.data.as_ptr() as usize - bytes.as_ptr() as usize,
            bytes.len() - 6
        );
    }

    #[test]
    fn frame_layout_is_the_documented_one() {
        let data = [9u8, 8, 7, 6, 5, 4];
        let bytes = encoded(&Message::Frame(Frame {
            header: sample_header(),
            data: &data,
        }));
        let mut expected = Vec::new();
        expected.extend_from_slice(&2u32.to_le_bytes()); // variant: Frame
        expected.extend_from_slice(&7u64.to_le_bytes()); // seq
        expected.extend_from_slice(&1_700_000_000_000_000u64.to_le_bytes());
        expected.extend_from_slice(&2u32.to_le_bytes()); // width
        expected.extend_from_slice(&1u32.to_le_bytes()); // height
        expected.extend_from_slice(&0u32.to_le_bytes()); // Bgr8
        expected.extend_from_slice(&0u32.to_le_bytes()); // Raw
        expected.push(1); // keyframe
        expected.extend_from_slice(&6u64.to_le_bytes()); // data length
        expected.extend_from_slice(&data);
        assert_eq!(bytes, expected);
    }

    #[test]
    fn stream_hello_layout_is_the_documented_one() {
        let bytes = encoded(&Message::StreamHello(StreamHello {
            security: Security::Paired,
            ..StreamHello::new(640, 480, Codec::Jpeg, 30.0)
        }));
        let mut expected = Vec::new();
        expected.extend_from_slice(&0u32.to_le_bytes());
        expected.extend_from_slice(b"CAMS");
        expected.extend_from_slice(&5u32.to_le_bytes()); // version
        expected.extend_from_slice(&640u32.to_le_bytes());
        expected.extend_from_slice(&480u32.to_le_bytes());
        expected.extend_from_slice(&0u32.to_le_bytes());
        expected.extend_from_slice(&1u32.to_le_bytes());
        expected.extend_from_slice(&30f64.to_le_bytes());
        expected.extend_from_slice(&1u32.to_le_bytes()); // Paired
        assert_eq!(bytes, expected);
        let viewer = encoded(&Message::ViewerHello(ViewerHello::new(Security::Insecure)));
        assert_eq!(
            viewer,
            [
                &1u32.to_le_bytes()[..],
                b"CAMS",
                &5u32.to_le_bytes(),
                &0u32.to_le_bytes(),
                &0u64.to_le_bytes() // sent_unix_us
            ]
            .concat()
        );
        let pake = encoded(&Message::Pake(Pake { message: &[9; 33] }));
        assert_eq!(
            pake,
            [&4u32.to_le_bytes()[..], &33u64.to_le_bytes(), &[9; 33]].concat()
        );
        let key = encoded(&Message::FrameKey(FrameKey { key: [7; 32] }));
        assert_eq!(key, [&5u32.to_le_bytes()[..], &[7; 32]].concat());
        assert_eq!(encoded(&Message::Paired), 6u32.to_le_bytes());
        let clock = encoded(&Message::Clock(Clock {
            hello_sent_unix_us: 1,
            hello_read_unix_us: 2,
            sent_unix_us: 3,
        }));
        assert_eq!(
            clock,
            [
                &7u32.to_le_bytes()[..],
                &1u64.to_le_bytes(),
                &2u64.to_le_bytes(),
                &3u64.to_le_bytes()
            ]
            .concat()
        );
        let ack = Ack {
            seq: 5,
            keyframe_wanted: true,
        };
        let ack_bytes = encoded(&Message::Ack(ack));
        assert_eq!(
            ack_bytes,
            [&3u32.to_le_bytes()[..], &5u64.to_le_bytes(), &[1]].concat()
        );
        assert_eq!(ack_bytes.len(), ACK_LEN);
        assert_eq!(decode_ack(&ack_bytes), Ok(ack));
        assert_eq!(
            decode_ack(&viewer).unwrap_err().to_string(),
            "expected an ack, got a viewer hello"
        );
    }

    #[test]
    fn refusal_layout_is_the_documented_one() {
        let head = [&8u32.to_le_bytes()[..], b"CAMS", &5u32.to_le_bytes()].concat();
        let cases = [
            (
                RefusalReason::Full { viewers: 8, max: 8 },
                [
                    &0u32.to_le_bytes()[..],
                    &8u32.to_le_bytes(),
                    &8u32.to_le_bytes(),
                ]
                .concat(),
                "sender is full, 8 of 8 viewers",
            ),
            (
                RefusalReason::LockedOut { wait_s: 4 },
                [&1u32.to_le_bytes()[..], &4u32.to_le_bytes()].concat(),
                "locked out after wrong pairing codes, try in 4 s",
            ),
            (
                RefusalReason::Busy { wait_s: 6 },
                [&2u32.to_le_bytes()[..], &6u32.to_le_bytes()].concat(),
                "busy: too many wrong codes lately, try in 6 s",
            ),
        ];
        for (reason, rest, said) in cases {
            let bytes = encoded(&Message::Refusal(Refusal::new(reason)));
            assert_eq!(bytes, [&head[..], &rest].concat());
            assert_eq!(
                decode_sender_greeting(&bytes),
                Ok(SenderGreeting::Refused(reason))
            );
            assert_eq!(reason.to_string(), said);
        }
        // A refusal from another version is that version's, whatever follows.
        let mut newer = encoded(&Message::Refusal(Refusal::new(RefusalReason::Busy {
            wait_s: 1,
        })));
        newer[8..12].copy_from_slice(&6u32.to_le_bytes());
        newer.truncate(13);
        assert_eq!(
            decode_sender_greeting(&newer),
            Err(ProtocolError::BadVersion { theirs: 6 })
        );
        let hello = StreamHello::new(4, 4, Codec::Raw, 0.0);
        assert_eq!(
            decode_sender_greeting(&encoded(&Message::StreamHello(hello))),
            Ok(SenderGreeting::Hello(hello))
        );
    }

    #[test]
    fn frame_prefix_plus_data_equals_the_whole_message() {
        let data: Vec<u8> = (0..=255).collect();
        let header = FrameHeader {
            codec: Codec::Jpeg,
            ..sample_header()
        };
        let mut split = Vec::new();
        encode_frame_prefix(&header, data.len(), &mut split).unwrap();
        split.extend_from_slice(&data);
        assert_eq!(
            split,
            encoded(&Message::Frame(Frame {
                header,
                data: &data
            }))
        );
    }

    #[test]
    fn hellos_round_trip() {
        let hello = StreamHello::new(1920, 1080, Codec::Raw, 29.97);
        assert_eq!(
            decode_stream_hello(&encoded(&Message::StreamHello(hello))).unwrap(),
            hello
        );
        let viewer = ViewerHello::new(Security::Insecure);
        assert_eq!(
            decode_viewer_hello(&encoded(&Message::ViewerHello(viewer))).unwrap(),
            viewer
        );
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let data = [1u8; 6];
        let messages = [
            encoded(&Message::StreamHello(StreamHello::new(
                4,
                4,
                Codec::Raw,
                0.0,
            ))),
            encoded(&Message::ViewerHello(ViewerHello::new(Security::Insecure))),
            encoded(&Message::Frame(Frame {
                header: sample_header(),
                data: &data,
            })),
        ];
        for bytes in &messages {
            for cut in 0..bytes.len() {
                let err = decode(&bytes[..cut]).unwrap_err();
                assert_eq!(err, ProtocolError::Incomplete, "cut at {cut}");
            }
        }
    }

    #[test]
    fn oversized_length_is_refused_before_allocation() {
        assert_eq!(check_length(100u64.to_le_bytes(), 100), Ok(100));
        let err = check_length((1u64 << 63).to_le_bytes(), MAX_MESSAGE_LEN).unwrap_err();
        assert_eq!(
            err,
            ProtocolError::TooLarge {
                len: 1 << 63,
                max: MAX_MESSAGE_LEN
            }
        );
        assert!(err.to_string().contains("9223372036854775808 bytes"));
        // An HTTP request read as a length prefix.
        assert!(check_length(*b"GET / HT", MAX_HELLO_LEN).is_err());
    }

    #[test]
    fn another_version_is_named() {
        let mut bytes = encoded(&Message::StreamHello(StreamHello::new(
            4,
            4,
            Codec::Raw,
            0.0,
        )));
        bytes[8..12].copy_from_slice(&1u32.to_le_bytes());
        // Even a hello whose remaining fields changed shape reports the version, not garbage.
        bytes.truncate(14);
        let err = decode(&bytes).unwrap_err();
        assert_eq!(err, ProtocolError::BadVersion { theirs: 1 });
        assert_eq!(
            err.to_string(),
            "peer speaks camstream protocol version 1; this program speaks version 5"
        );
    }

    #[test]
    fn garbage_is_an_error() {
        let cases: [&[u8]; 5] = [
            b"",
            b"\x07\x00\x00\x00",
            b"\x00\x00\x00\x00HTTP/1.1 200 OK",
            b"SSH-2.0-OpenSSH_9.2p1 Debian",
            &[0xff; 64],
        ];
        for bytes in cases {
            assert!(decode(bytes).is_err(), "{bytes:?} decoded");
        }
        assert!(matches!(
            decode(b"\x00\x00\x00\x00HTTP/1.1 200 OK"),
            Err(ProtocolError::BadMagic { .. })
        ));
        // A valid message followed by junk is not silently accepted.
        let mut bytes = encoded(&Message::ViewerHello(ViewerHello::new(Security::Insecure)));
        bytes.push(0);
        assert!(matches!(decode(&bytes), Err(ProtocolError::Malformed(_))));
    }

    #[test]
    fn a_clock_reading_gives_the_offset_whatever_the_delay() {
        // The sender's clock is 5 s ahead; 3 ms each way, 1 ms between reading and answering.
        let clock = Clock {
            hello_sent_unix_us: 1_000_000,
            hello_read_unix_us: 6_003_000,
            sent_unix_us: 6_004_000,
        };
        assert_eq!(clock.offset_us(1_007_000), 5_000_000);
        // Behind, and a zero hello (a peer that sent no time) cannot overflow.
        let behind = Clock {
            hello_sent_unix_us: 10_000_000,
            hello_read_unix_us: 5_001_000,
            sent_unix_us: 5_001_000,
        };
        assert_eq!(behind.offset_us(10_002_000), -5_000_000);
        let hostile = Clock {
            hello_sent_unix_us: 0,
            hello_read_unix_us: u64::MAX,
            sent_unix_us: u64::MAX,
        };
        assert_eq!(hostile.offset_us(0), i64::MAX);
    }

    #[test]
    fn wrong_message_kind_is_named() {
        let bytes = encoded(&Message::ViewerHello(ViewerHello::new(Security::Insecure)));
        assert_eq!(
            decode_stream_hello(&bytes).unwrap_err().to_string(),
            "expected a stream hello, got a viewer hello"
        );
    }
}
