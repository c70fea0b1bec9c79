//! JPEG: one picture per frame, OpenCV's `imencode`/`imdecode` (libjpeg-turbo). Every frame is a
//! keyframe. A frame's own SOF header must give the frame's size before the decoder sees it.

use super::{Decoder, Encoder, EncoderSettings, Format, Stored};
use crate::media::Picture;
use crate::wire::protocol::{FrameHeader, ProtocolError};
use anyhow::{bail, Context, Result};
use opencv::core::{Mat, Vector};
use opencv::imgcodecs;
use opencv::prelude::*;

pub struct Jpeg;

impl Format for Jpeg {
    /// A JPEG's own header (its SOF marker) must give the frame's size, so a picture that would
    /// decode to something else, or to something huge, never reaches the decoder.
    fn check(&self, header: &FrameHeader, data: &[u8]) -> Result<(), ProtocolError> {
        match picture_size(data) {
            Some(size) if size == (header.width, header.height) => Ok(()),
            Some((width, height)) => Err(ProtocolError::Malformed(format!(
                "jpeg frame {} holds a {width}x{height} picture, but the frame says {}x{}",
                header.seq, header.width, header.height
            ))),
            None => Err(ProtocolError::Malformed(format!(
                "jpeg frame {} is not a JPEG picture ({} bytes)",
                header.seq,
                data.len()
            ))),
        }
    }

    fn encoder(&self, settings: &EncoderSettings) -> Result<Box<dyn Encoder>> {
        let quality = i32::from(settings.quality);
        Ok(Box::new(JpegEncoder {
            width: settings.width,
            height: settings.height,
            params: Vector::from_slice(&[imgcodecs::IMWRITE_JPEG_QUALITY, quality]),
            encoded: Vector::new(),
        }))
    }

    fn decoder(&self) -> Result<Box<dyn Decoder>> {
        Ok(Box::new(JpegDecoder {
            picture: Mat::default(),
        }))
    }

    /// Matroska and AVI hold JPEG pictures as they are (MJPEG); each is its own keyframe and
    /// needs no codec header.
    fn stored(&self) -> Option<Stored> {
        Some(Stored {
            codec: ffmpeg_next::codec::Id::MJPEG,
            global_header: |_| Vec::new(),
            mp4_codecs: None,
        })
    }
}

/// The size a JPEG's own header (its SOF marker) gives, if `data` starts as a JPEG picture.
pub fn picture_size(data: &[u8]) -> Option<(u32, u32)> {
    let is_jpeg = matches!(imagesize::image_type(data), Ok(imagesize::ImageType::Jpeg));
    let size = imagesize::blob_size(data).ok().filter(|_| is_jpeg)?;
    Some((
        u32::try_from(size.width).ok()?,
        u32::try_from(size.height).ok()?,
    ))
}

/// Encodes with reused parameter and output buffers.
struct JpegEncoder {
    width: u32,
    height: u32,
    params: Vector<i32>,
    encoded: Vector<u8>,
}

impl Encoder for JpegEncoder {
    fn encode(&mut self, picture: &mut Vec<u8>, out: &mut Vec<u8>, _: bool) -> Result<bool> {
        let picture = Picture::new(self.width, self.height, picture).as_mat()?;
        let ok = imgcodecs::imencode(".jpg", &picture, &mut self.encoded, &self.params)
            .context("encoding jpeg")?;
        if !ok {
            bail!("encoding jpeg: OpenCV refused the picture");
        }
        out.clear();
        out.extend_from_slice(self.encoded.as_slice());
        Ok(true)
    }
}

/// Decodes into one reused picture.
struct JpegDecoder {
    picture: Mat,
}

impl Decoder for JpegDecoder {
    fn decode<'a>(
        &'a mut self,
        header: &FrameHeader,
        data: &'a [u8],
    ) -> Result<Option<Picture<'a>>> {
        let (width, height) = (header.width, header.height);
        let bytes = Mat::from_bytes::<u8>(data)?;
        imgcodecs::imdecode_to(&bytes, imgcodecs::IMREAD_COLOR, &mut self.picture)
            .context("decoding jpeg")?;
        if self.picture.empty() {
            bail!("decoding jpeg: the data is not a picture");
        }
        if self.picture.cols() as u32 != width || self.picture.rows() as u32 != height {
            bail!(
                "decoding jpeg: picture is {}x{}, but the frame says {width}x{height}",
                self.picture.cols(),
                self.picture.rows()
            );
        }
        let bgr = self.picture.data_bytes().context("decoding jpeg")?;
        Ok(Some(Picture::new(width, height, bgr)))
    }
}
