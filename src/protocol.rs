//! The wire format as bytes: messages, their bincode encoding and every check made on them.
//!
//! Nothing here touches a socket or OpenCV, so each edge case (a truncated message, a bogus
//! length, another protocol version, garbage) is a plain unit test on a byte slice. The framing
//! (`u64` little-endian length, then that many bytes) is read and written by `connection`; this
//! module turns one payload into a [`Message`] and back.
//!
//! Encoding is bincode 2 with fixed-width little-endian integers, so every field sits at a fixed
//! offset and the README can document the format byte by byte. bincode is marked unmaintained
//! (RUSTSEC-2025-0141); it is used only in this file so it can be swapped without touching the rest.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The protocol version this build speaks. Bump it on any change to the encoding.
pub const VERSION: u32 = 3;
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
const FRAME_OVERHEAD: usize = 64;
/// A compressed frame may, for noise at high quality, be larger than its pixels.
const COMPRESSED_SLACK: usize = 2;

const TAG_STREAM_HELLO: u32 = 0;
const TAG_VIEWER_HELLO: u32 = 1;
const TAG_FRAME: u32 = 2;
/// Bytes of an encoded [`Ack`] message.
pub const ACK_LEN: usize = 12;
/// An ack is the only message a viewer sends after its hello.
pub const MAX_ACK_LEN: usize = ACK_LEN;

/// Layout of pixels in a frame before encoding (and after decoding).
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum PixelFormat {
    /// 8-bit blue, green, red, row after row with no padding: OpenCV's `CV_8UC3`.
    Bgr8,
}

impl PixelFormat {
    pub fn bytes_per_pixel(self) -> usize {
        match self {
            PixelFormat::Bgr8 => 3,
        }
    }
}

impl fmt::Display for PixelFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PixelFormat::Bgr8 => "bgr8",
        })
    }
}

/// How a frame's pixels are carried.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Codec {
    /// The pixels unchanged: lossless and large.
    Raw,
    /// One JPEG image per frame.
    Jpeg,
}

impl fmt::Display for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Codec::Raw => "raw",
            Codec::Jpeg => "jpeg",
        })
    }
}

/// Whether a connection is paired and encrypted. Both hellos carry it, so a side that expects a
/// code and a side started with `--insecure` tell each other so instead of exchanging garbage.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Security {
    /// Everything in the clear (`--insecure`).
    Insecure,
    /// SPAKE2 on a pairing code, then every message sealed with AES-256-GCM (see `secure`).
    Paired,
}

/// The sender's first message: who it is and what the stream looks like.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq)]
pub struct StreamHello {
    pub magic: [u8; 4],
    pub version: u32,
    pub width: u32,
    pub height: u32,
    pub pixel_format: PixelFormat,
    pub codec: Codec,
    /// Frames per second the source aims for; 0 when unknown or unpaced.
    pub fps: f64,
    pub security: Security,
}

/// The receiver's first message.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct ViewerHello {
    pub magic: [u8; 4],
    pub version: u32,
    pub security: Security,
}

impl ViewerHello {
    pub fn new(security: Security) -> Self {
        ViewerHello {
            magic: MAGIC,
            version: VERSION,
            security,
        }
    }
}

/// Everything about a frame but its bytes.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// Counts captured frames from 0; a gap at the receiver is a frame it never got.
    pub seq: u64,
    /// Capture time, microseconds since the Unix epoch on the sender's clock.
    pub capture_unix_us: u64,
    pub width: u32,
    pub height: u32,
    pub pixel_format: PixelFormat,
    pub codec: Codec,
}

/// A frame as it travels: the header, then the encoded bytes (borrowed from the read buffer).
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    pub header: FrameHeader,
    #[serde(borrow, with = "serde_bytes")]
    pub data: &'a [u8],
}

/// The viewer is done with frame `seq` (shown, or decoded when headless): the sender may send
/// it another. The sender keeps at most a couple of frames unacknowledged per viewer, so no
/// queue (its own or the kernel's socket buffers) can hold old frames for a slow viewer.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ack {
    pub seq: u64,
}

/// Each side's SPAKE2 message, sent in the clear right after its hello when pairing.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pake<'a> {
    #[serde(borrow, with = "serde_bytes")]
    pub message: &'a [u8],
}

/// The sender's first sealed message: the key its frames are sealed with. That it opens at all
/// shows the receiver that both used the same code.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameKey {
    pub key: [u8; 32],
}

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

/// A hello's magic and version are read before the rest, so that a peer of another version gets
/// told which versions we speak even if the rest of its hello no longer decodes.
fn check_hello_prefix(payload: &[u8]) -> Result<(), ProtocolError> {
    let Some(tag) = payload.get(0..4) else {
        return Ok(());
    };
    let tag = u32::from_le_bytes([tag[0], tag[1], tag[2], tag[3]]);
    if tag != TAG_STREAM_HELLO && tag != TAG_VIEWER_HELLO {
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

impl StreamHello {
    pub fn new(width: u32, height: u32, codec: Codec, fps: f64) -> Self {
        StreamHello {
            magic: MAGIC,
            version: VERSION,
            width,
            height,
            pixel_format: PixelFormat::Bgr8,
            codec,
            fps,
            security: Security::Insecure,
        }
    }

    /// Bytes of one decoded frame. Saturates: a peer's 4294967295x4294967295 hello must not
    /// wrap around to a small size that passes [`StreamHello::check`].
    pub fn frame_bytes(&self) -> u64 {
        let pixels = u64::from(self.width) * u64::from(self.height);
        pixels.saturating_mul(self.pixel_format.bytes_per_pixel() as u64)
    }

    /// The picture must be non-empty and its raw frames must fit in a message.
    pub fn check(&self) -> Result<(), ProtocolError> {
        let limit = (MAX_MESSAGE_LEN - FRAME_OVERHEAD) as u64;
        if self.width == 0 || self.height == 0 || self.frame_bytes() > limit {
            return Err(ProtocolError::Malformed(format!(
                "stream of {}x{} {} is empty or over the {} MiB frame limit",
                self.width,
                self.height,
                self.pixel_format,
                MAX_MESSAGE_LEN >> 20
            )));
        }
        if !self.fps.is_finite() || self.fps < 0.0 {
            return Err(ProtocolError::Malformed(format!(
                "stream frame rate {} is not a rate",
                self.fps
            )));
        }
        Ok(())
    }

    /// The longest frame message this stream can send; a longer length prefix is an error.
    pub fn max_message_len(&self) -> usize {
        let raw = self.frame_bytes() as usize;
        let data = match self.codec {
            Codec::Raw => raw,
            Codec::Jpeg => raw.saturating_mul(COMPRESSED_SLACK),
        };
        data.saturating_add(FRAME_OVERHEAD).min(MAX_MESSAGE_LEN)
    }

    /// A frame must match the stream it belongs to, and raw data must be exactly its pixels.
    pub fn check_frame(&self, frame: &Frame<'_>) -> Result<(), ProtocolError> {
        let h = &frame.header;
        if h.width != self.width
            || h.height != self.height
            || h.pixel_format != self.pixel_format
            || h.codec != self.codec
        {
            return Err(ProtocolError::Malformed(format!(
                "frame {} is {}x{} {} {}, but the stream is {}x{} {} {}",
                h.seq,
                h.width,
                h.height,
                h.pixel_format,
                h.codec,
                self.width,
                self.height,
                self.pixel_format,
                self.codec
            )));
        }
        if h.codec == Codec::Jpeg {
            check_jpeg_size(h, frame.data)?;
        }
        if h.codec == Codec::Raw && frame.data.len() as u64 != self.frame_bytes() {
            return Err(ProtocolError::Malformed(format!(
                "raw frame {} carries {} bytes, but {}x{} {} needs {}",
                h.seq,
                frame.data.len(),
                h.width,
                h.height,
                h.pixel_format,
                self.frame_bytes()
            )));
        }
        Ok(())
    }
}

/// A JPEG's own header (its SOF marker) must give the frame's size, so a picture that would
/// decode to something else, or to something huge, never reaches the decoder.
fn check_jpeg_size(header: &FrameHeader, data: &[u8]) -> Result<(), ProtocolError> {
    let is_jpeg = matches!(imagesize::image_type(data), Ok(imagesize::ImageType::Jpeg));
    let size = imagesize::blob_size(data).ok().filter(|_| is_jpeg);
    match size {
        Some(size)
            if (size.width, size.height) == (header.width as usize, header.height as usize) =>
        {
            Ok(())
        }
        Some(size) => Err(ProtocolError::Malformed(format!(
            "jpeg frame {} holds a {}x{} picture, but the frame says {}x{}",
            header.seq, size.width, size.height, header.width, header.height
        ))),
        None => Err(ProtocolError::Malformed(format!(
            "jpeg frame {} is not a JPEG picture ({} bytes)",
            header.seq,
            data.len()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(message: &Message<'_>) -> Vec<u8> {
        let mut out = Vec::new();
        encode_into(message, &mut out).unwrap();
        out
    }

    fn sample_header() -> FrameHeader {
        FrameHeader {
            seq: 7,
            capture_unix_us: 1_700_000_000_000_000,
            width: 2,
            height: 1,
            pixel_format: PixelFormat::Bgr8,
            codec: Codec::Raw,
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
        expected.extend_from_slice(&3u32.to_le_bytes()); // version
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
                &3u32.to_le_bytes(),
                &0u32.to_le_bytes()
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
        let ack = encoded(&Message::Ack(Ack { seq: 5 }));
        assert_eq!(ack, [&3u32.to_le_bytes()[..], &5u64.to_le_bytes()].concat());
        assert_eq!(ack.len(), ACK_LEN);
        assert_eq!(decode_ack(&ack), Ok(Ack { seq: 5 }));
        assert_eq!(
            decode_ack(&viewer).unwrap_err().to_string(),
            "expected an ack, got a viewer hello"
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
            "peer speaks camstream protocol version 1; this program speaks version 3"
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
    fn wrong_message_kind_is_named() {
        let bytes = encoded(&Message::ViewerHello(ViewerHello::new(Security::Insecure)));
        assert_eq!(
            decode_stream_hello(&bytes).unwrap_err().to_string(),
            "expected a stream hello, got a viewer hello"
        );
    }

    #[test]
    fn hello_limits_frames() {
        let hello = StreamHello::new(2, 1, Codec::Raw, 30.0);
        assert_eq!(hello.max_message_len(), 6 + FRAME_OVERHEAD);
        let good = Frame {
            header: sample_header(),
            data: &[0; 6],
        };
        assert!(hello.check_frame(&good).is_ok());
        let short = Frame {
            data: &[0; 5],
            ..good
        };
        assert!(hello
            .check_frame(&short)
            .unwrap_err()
            .to_string()
            .contains("carries 5 bytes"));
        let wrong_size = Frame {
            header: FrameHeader {
                width: 3,
                ..sample_header()
            },
            ..good
        };
        assert!(hello.check_frame(&wrong_size).is_err());
        assert!(StreamHello::new(0, 10, Codec::Raw, 0.0).check().is_err());
        assert!(StreamHello::new(65535, 65535, Codec::Jpeg, 0.0)
            .check()
            .is_err());
        assert!(StreamHello::new(3840, 2160, Codec::Jpeg, f64::NAN)
            .check()
            .is_err());
        assert_eq!(
            StreamHello::new(4096, 4096, Codec::Jpeg, 0.0).max_message_len(),
            MAX_MESSAGE_LEN
        );
    }

    /// The start of a baseline JPEG: SOI, then a SOF0 marker giving its height and width.
    fn jpeg_start(width: u16, height: u16) -> Vec<u8> {
        let mut bytes = vec![0xFF, 0xD8, 0xFF, 0xC0, 0x00, 0x11, 0x08];
        bytes.extend_from_slice(&height.to_be_bytes());
        bytes.extend_from_slice(&width.to_be_bytes());
        bytes.resize(32, 0);
        bytes
    }

    #[test]
    fn jpeg_frames_must_hold_a_picture_of_their_size() {
        let hello = StreamHello::new(2, 1, Codec::Jpeg, 30.0);
        let header = FrameHeader {
            codec: Codec::Jpeg,
            ..sample_header()
        };
        let fits = jpeg_start(2, 1);
        assert!(hello
            .check_frame(&Frame {
                header,
                data: &fits
            })
            .is_ok());
        let huge = jpeg_start(40_000, 40_000);
        assert_eq!(
            hello
                .check_frame(&Frame {
                    header,
                    data: &huge
                })
                .unwrap_err()
                .to_string(),
            "malformed message: jpeg frame 7 holds a 40000x40000 picture, but the frame says 2x1"
        );
        let png = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR\0\0\0\x02\0\0\0\x01";
        for data in [&png[..], &[0xFF, 0xD8, 0xFF], &[]] {
            let err = hello.check_frame(&Frame { header, data }).unwrap_err();
            assert!(err.to_string().contains("is not a JPEG picture"), "{err}");
        }
    }
}
