//! The fields of each message of the wire format, as types: what [`super::protocol`] encodes
//! (with the byte layout the README documents) and checks. No encoding here, no I/O.

use super::protocol::{MAGIC, VERSION};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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
    /// H.264 in Annex B byte-stream form (start codes), one access unit per frame, with the
    /// parameter sets in front of every keyframe.
    H264,
}

impl Codec {
    /// Its name, as `--codec` takes it.
    pub fn name(self) -> &'static str {
        match self {
            Codec::Raw => "raw",
            Codec::Jpeg => "jpeg",
            Codec::H264 => "h264",
        }
    }
}

impl fmt::Display for Codec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
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
    /// When the receiver sent it, microseconds since the Unix epoch on the receiver's clock: the
    /// first of the four timestamps that give the two clocks' offset (see [`Clock`]).
    pub sent_unix_us: u64,
}

impl ViewerHello {
    pub fn new(security: Security) -> Self {
        ViewerHello {
            magic: MAGIC,
            version: VERSION,
            security,
            sent_unix_us: 0,
        }
    }
}

/// Microseconds since the Unix epoch: the clock frames are stamped with.
pub fn unix_micros(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_micros() as u64
}

/// The sender's answer to the viewer's hello, NTP-style: with the viewer's own time of arrival
/// it gives the offset between the two clocks, so latency is right across machines whose clocks
/// differ. Sent in the clear with `--insecure`, sealed right after the frame key when paired.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct Clock {
    /// The viewer hello's `sent_unix_us`, echoed.
    pub hello_sent_unix_us: u64,
    /// When the sender read the viewer's hello, on the sender's clock.
    pub hello_read_unix_us: u64,
    /// When the sender sent this, on the sender's clock.
    pub sent_unix_us: u64,
}

impl Clock {
    /// The sender's clock minus the receiver's, in microseconds, given when this arrived on the
    /// receiver's clock: the mean of the two one-way differences, so a symmetric network delay
    /// cancels out (NTP's offset).
    pub fn offset_us(&self, arrived_unix_us: u64) -> i64 {
        let (t1, t2, t3, t4) = (
            i128::from(self.hello_sent_unix_us),
            i128::from(self.hello_read_unix_us),
            i128::from(self.sent_unix_us),
            i128::from(arrived_unix_us),
        );
        let offset = ((t2 - t1) + (t3 - t4)) / 2;
        offset.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
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
    /// A decoder can start from this frame (every JPEG and raw frame is one).
    pub keyframe: bool,
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
    /// The frame did not decode: send nothing more until a keyframe, and make one soon.
    pub keyframe_wanted: bool,
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

/// The sender's first message instead of its [`StreamHello`] when it will not serve this
/// receiver now: it starts like a hello (magic and version), so a stray or newer peer is told
/// apart the same way, and says why and for how long, so the receiver can wait and retry
/// instead of guessing at a bare close.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    pub magic: [u8; 4],
    pub version: u32,
    pub reason: RefusalReason,
}

impl Refusal {
    pub fn new(reason: RefusalReason) -> Self {
        Refusal {
            magic: MAGIC,
            version: VERSION,
            reason,
        }
    }
}

/// Why a sender refused a receiver.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalReason {
    /// `viewers` of its `max` seats (`--max-viewers`) are taken.
    Full { viewers: u32, max: u32 },
    /// This address gave wrong pairing codes: it may try again in `wait_s` seconds.
    LockedOut { wait_s: u32 },
    /// Too many wrong pairing codes from anywhere lately: nobody may pair for `wait_s` seconds.
    Busy { wait_s: u32 },
}

impl fmt::Display for RefusalReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RefusalReason::Full { viewers, max } => {
                write!(f, "sender is full, {viewers} of {max} viewers")
            }
            RefusalReason::LockedOut { wait_s } => {
                write!(f, "locked out after wrong pairing codes, try in {wait_s} s")
            }
            RefusalReason::Busy { wait_s } => {
                write!(f, "busy: too many wrong codes lately, try in {wait_s} s")
            }
        }
    }
}
