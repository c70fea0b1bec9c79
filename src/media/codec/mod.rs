//! The codec seam. A codec is one file here with a [`Format`] (what its frames must hold, checked
//! on bytes before any decoder sees them), an [`Encoder`] and a [`Decoder`]; [`format()`] is the
//! one place a codec is chosen, for the sender's encoder and the receiver's decoder alike.
//! Nothing else in the program names a codec beyond the wire format and the option parsing.

mod h264;
mod h264_encoders;
#[cfg(test)]
pub(crate) use h264::tests::{annex_b_units, test_stream as h264_test_stream};
pub use h264_encoders::EncoderChoice;
mod jpeg;
pub use jpeg::picture_size as jpeg_picture_size;
mod raw;

use super::Picture;
use crate::wire::protocol::{Codec, Frame, FrameHeader, ProtocolError, StreamHello};
use anyhow::Result;

/// How the sender wants its frames encoded; each codec takes what applies to it.
#[derive(Debug, Clone, PartialEq)]
pub struct EncoderSettings {
    pub width: u32,
    pub height: u32,
    /// JPEG quality, 1-100.
    pub quality: u8,
    /// Frames per second the stream is paced at (0: unpaced), for rate control.
    pub fps: f64,
    /// Seconds between regular keyframes.
    pub keyframe_interval: f64,
    /// Kilobits per second of the stream as it is paced.
    pub bitrate_kbps: u32,
    /// Which H.264 encoder encodes.
    pub encoder: EncoderChoice,
}

/// Turns pictures into frames of one codec, once per frame for every viewer.
pub trait Encoder {
    /// Encodes `picture` (BGR rows of the stream's size) into `out`, reusing its allocation, as
    /// a keyframe if `keyframe` asks for one. An encoder whose frames are the picture itself
    /// (raw) swaps the two buffers instead of copying. Returns whether the frame is a keyframe:
    /// one a viewer can start from or skip to.
    fn encode(&mut self, picture: &mut Vec<u8>, out: &mut Vec<u8>, keyframe: bool) -> Result<bool>;

    /// The bit rate it aims at, kbit/s, for a codec with rate control.
    fn bitrate_kbps(&self) -> Option<u32> {
        None
    }

    /// Aims at `kbps` from the next frame on (a codec without rate control ignores it).
    fn set_bitrate(&mut self, _kbps: u32) {}
}

/// Turns frames back into pictures.
pub trait Decoder: Send {
    /// Decodes a frame that passed [`check_frame`]: zero or one picture (a codec that predicts
    /// from other frames may need more than one frame before it shows anything).
    fn decode<'a>(
        &'a mut self,
        header: &FrameHeader,
        data: &'a [u8],
    ) -> Result<Option<Picture<'a>>>;
}

/// What a codec is: the checks its frames must pass, and how to make its encoder and decoder.
pub trait Format: Sync {
    /// Checks a frame's bytes against its header (which matches the stream) before anything
    /// decodes them: bytes only, so it is fuzzed with the rest of the wire format.
    fn check(&self, header: &FrameHeader, data: &[u8]) -> Result<(), ProtocolError>;
    /// An encoder for pictures as `settings` say.
    fn encoder(&self, settings: &EncoderSettings) -> Result<Box<dyn Encoder>>;
    fn decoder(&self) -> Result<Box<dyn Decoder>>;
    /// How a file can hold its frames as they are, if it can; otherwise a recording re-encodes
    /// the decoded pictures.
    fn stored(&self) -> Option<Stored> {
        None
    }
}

/// How a container holds a codec's frames without re-encoding them.
#[derive(Clone, Copy)]
pub struct Stored {
    /// FFmpeg's name for the codec.
    pub codec: ffmpeg_next::codec::Id,
    /// The codec header a container needs (H.264's parameter sets), taken from a keyframe.
    pub global_header: fn(&[u8]) -> Vec<u8>,
    /// The RFC 6381 `codecs` parameter of an MP4 holding these frames (`avc1.64001f`), from a
    /// keyframe: what a browser is asked whether it can play. `None`: browsers' Media Source
    /// Extensions do not play this codec.
    pub mp4_codecs: Option<Mp4Codecs>,
}

/// Reads the RFC 6381 `codecs` parameter off a keyframe.
pub type Mp4Codecs = fn(&[u8]) -> Option<String>;

/// The one place a codec is chosen.
pub fn format(codec: Codec) -> &'static dyn Format {
    match codec {
        Codec::Raw => &raw::Raw,
        Codec::Jpeg => &jpeg::Jpeg,
        Codec::H264 => &h264::H264,
    }
}

/// Every check made on a frame before its bytes reach a decoder: it belongs to the stream (the
/// wire format's check), and its bytes hold what its header says (its codec's check).
pub fn check_frame(hello: &StreamHello, frame: &Frame<'_>) -> Result<(), ProtocolError> {
    hello.check_frame(frame)?;
    format(frame.header.codec).check(&frame.header, frame.data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::protocol::tests::sample_header;
    use crate::wire::protocol::{FRAME_OVERHEAD, MAX_MESSAGE_LEN};

    #[test]
    fn hello_limits_frames() {
        let hello = StreamHello::new(2, 1, Codec::Raw, 30.0);
        assert_eq!(hello.max_message_len(), 6 + FRAME_OVERHEAD);
        let good = Frame {
            header: sample_header(),
            data: &[0; 6],
        };
        assert!(check_frame(&hello, &good).is_ok());
        let short = Frame {
            data: &[0; 5],
            ..good
        };
        assert!(check_frame(&hello, &short)
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
        assert!(check_frame(&hello, &wrong_size).is_err());
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
        assert!(check_frame(
            &hello,
            &Frame {
                header,
                data: &fits
            }
        )
        .is_ok());
        let huge = jpeg_start(40_000, 40_000);
        assert_eq!(
            check_frame(
                &hello,
                &Frame {
                    header,
                    data: &huge
                }
            )
            .unwrap_err()
            .to_string(),
            "malformed message: jpeg frame 7 holds a 40000x40000 picture, but the frame says 2x1"
        );
        let png = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR\0\0\0\x02\0\0\0\x01";
        for data in [&png[..], &[0xFF, 0xD8, 0xFF], &[]] {
            let err = check_frame(&hello, &Frame { header, data }).unwrap_err();
            assert!(err.to_string().contains("is not a JPEG picture"), "{err}");
        }
    }
}
