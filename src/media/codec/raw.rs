//! Raw frames: the BGR pixels unchanged, lossless and large. Encoding hands over the picture's
//! buffer; decoding is a view of the frame's bytes.

use super::{Decoder, Encoder, EncoderSettings, Format};
use crate::media::Picture;
use crate::wire::protocol::{FrameHeader, ProtocolError};
use anyhow::Result;

pub struct Raw;

impl Format for Raw {
    /// A raw frame is exactly its pixels.
    fn check(&self, header: &FrameHeader, data: &[u8]) -> Result<(), ProtocolError> {
        // Saturating, like the hello's own size: a huge header must not wrap to a small size.
        let needed = (u64::from(header.width) * u64::from(header.height))
            .saturating_mul(header.pixel_format.bytes_per_pixel() as u64);
        if data.len() as u64 != needed {
            return Err(ProtocolError::Malformed(format!(
                "raw frame {} carries {} bytes, but {}x{} {} needs {needed}",
                header.seq,
                data.len(),
                header.width,
                header.height,
                header.pixel_format,
            )));
        }
        Ok(())
    }

    fn encoder(&self, _settings: &EncoderSettings) -> Result<Box<dyn Encoder>> {
        Ok(Box::new(RawEncoder))
    }

    fn decoder(&self) -> Result<Box<dyn Decoder>> {
        Ok(Box::new(RawDecoder))
    }
}

struct RawEncoder;

impl Encoder for RawEncoder {
    fn encode(&mut self, picture: &mut Vec<u8>, out: &mut Vec<u8>, _: bool) -> Result<bool> {
        std::mem::swap(picture, out);
        Ok(true)
    }
}

struct RawDecoder;

impl Decoder for RawDecoder {
    fn decode<'a>(
        &'a mut self,
        header: &FrameHeader,
        data: &'a [u8],
    ) -> Result<Option<Picture<'a>>> {
        Ok(Some(Picture::new(header.width, header.height, data)))
    }
}
