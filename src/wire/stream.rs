//! What a stream's hello promises about its frames: the picture fits in a message, and every
//! frame's header matches the stream. Bytes only, like the rest of the wire format.

use super::protocol::{
    Codec, Frame, FrameHeader, PixelFormat, ProtocolError, Security, StreamHello, COMPRESSED_SLACK,
    FRAME_OVERHEAD, MAGIC, MAX_MESSAGE_LEN, VERSION,
};

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

    /// The header of frame `seq` of this stream, captured at `capture_unix_us`: a keyframe, as
    /// every raw and JPEG frame is (an encoder that predicts says otherwise).
    pub fn frame_header(&self, seq: u64, capture_unix_us: u64) -> FrameHeader {
        FrameHeader {
            seq,
            capture_unix_us,
            width: self.width,
            height: self.height,
            pixel_format: self.pixel_format,
            codec: self.codec,
            keyframe: true,
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
            Codec::Jpeg | Codec::H264 => raw.saturating_mul(COMPRESSED_SLACK),
        };
        data.saturating_add(FRAME_OVERHEAD).min(MAX_MESSAGE_LEN)
    }

    /// A frame's header must match the stream it belongs to. What its bytes must hold is the
    /// codec's to check (`media::codec::check_frame` does both).
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
        Ok(())
    }
}
