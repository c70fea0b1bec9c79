//! FFmpeg's decoded pictures (YUV or any other pixel format, rows padded) as our [`Picture`]s:
//! BGR rows without padding. Shared by the H.264 decoder and the URL player, which get their
//! pictures from libavcodec alike.

use super::Picture;
use anyhow::{Context, Result};
use ffmpeg::format::Pixel;
use ffmpeg::frame;
use ffmpeg::software::scaling;
use ffmpeg_next as ffmpeg;

/// Exact rounding and bicubic chroma: what the receiver's side of the quality measurements in
/// the README was taken with.
fn to_bgr_flags() -> scaling::Flags {
    scaling::Flags::BICUBIC | scaling::Flags::ACCURATE_RND
}

/// Converts into one reused picture.
#[derive(Default)]
pub(crate) struct ToBgr {
    /// Made for the first picture's format and size, and again if they change.
    conversion: Option<(scaling::Context, frame::Video)>,
    /// The picture's rows without padding, when the converted frame's rows are padded.
    rows: Vec<u8>,
}

// SAFETY: an swscale context has no tie to the thread that made it; it is only ever used by
// whoever owns this `ToBgr`, one thread at a time (ffmpeg-next leaves `Send` off it, as it does
// not for its resampling context, by omission).
unsafe impl Send for ToBgr {}

impl ToBgr {
    pub(crate) fn convert<'a>(&'a mut self, decoded: &frame::Video) -> Result<Picture<'a>> {
        let (format, width, height) = (decoded.format(), decoded.width(), decoded.height());
        let fits = |(context, _): &(scaling::Context, frame::Video)| {
            let input = context.input();
            (input.format, input.width, input.height) == (format, width, height)
        };
        let conversion = match self.conversion.take().filter(fits) {
            Some(conversion) => conversion,
            None => (
                scaling::Context::get(
                    format,
                    width,
                    height,
                    Pixel::BGR24,
                    width,
                    height,
                    to_bgr_flags(),
                )
                .with_context(|| format!("setting up the {format:?} to BGR conversion"))?,
                frame::Video::new(Pixel::BGR24, width, height),
            ),
        };
        let (to_bgr, bgr) = self.conversion.insert(conversion);
        to_bgr
            .run(decoded, bgr)
            .with_context(|| format!("converting {format:?} to BGR"))?;
        let (row, stride) = (width as usize * 3, bgr.stride(0));
        let rows = &bgr.data(0)[..stride * height as usize];
        if stride == row {
            return Ok(Picture::new(width, height, rows));
        }
        self.rows.clear();
        for padded in rows.chunks_exact(stride) {
            self.rows.extend_from_slice(&padded[..row]);
        }
        Ok(Picture::new(width, height, &self.rows))
    }
}
