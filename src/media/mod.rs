//! Everything that touches OpenCV and FFmpeg: where pictures come from, how they are
//! encoded and decoded, and where they are shown and recorded. Outside this folder the program
//! works on plain BGR bytes with a width and a height ([`Picture`]), so it can be tested
//! without a camera or a display.
//!
//! - [`source`]: the one way the sender reads pictures: cameras ([`camera`]: modes, and the
//!   list of what is plugged in), GStreamer pipelines, files, URLs and the test pattern
//!   ([`pattern`]); cameras, pipelines and streams are read on their own thread by [`live`].
//!   Both build on [`capture`]: what every source is read through, and the captures that
//!   decode or scale another; OpenCV's `VideoCapture` is `opencv_capture`.
//! - [`url`]: the receiver's other streams (rtmp, rtsp, srt, http MJPEG and HLS), played
//!   through FFmpeg as a live source.
//! - [`codec`]: one encoder and one decoder per codec, chosen in one place (H.264's encoder:
//!   libx264 or a hardware one, `--encoder`); `convert` turns FFmpeg's decoded pictures into
//!   BGR for it and for [`url`].
//! - [`window`]: highgui windows and the cards shown instead of video; [`mosaic`]: several
//!   pictures scaled into one grid of labelled tiles (the receiver showing several senders).
//! - [`recorder`]: `--record`, the frames as they arrived when a container can hold them
//!   (`remux`, FFmpeg's libavformat), otherwise the pictures re-encoded by OpenCV.
//! - `logs`: FFmpeg's and OpenCV's own log lines, counted and quieted.
//! - [`fmp4`]: the frames as fragmented MP4 for a browser's Media Source Extensions (bytes
//!   only): an init segment, then one fragment per frame.

pub mod camera;
pub mod capture;
pub mod codec;
mod convert;
pub mod fmp4;
pub mod live;
pub(crate) mod logs;
pub mod mosaic;
mod opencv_capture;
pub mod pattern;
pub mod recorder;
pub mod remux;
pub mod source;
pub mod url;
pub mod window;

use anyhow::{anyhow, Context, Result};
use opencv::boxed_ref::BoxedRef;
use opencv::core::{Mat, Vec3b};
use std::sync::OnceLock;

pub use logs::{quiet_library_logs, report_library_problems};

/// A picture as 8-bit blue, green, red rows with no padding (OpenCV's `CV_8UC3`).
#[derive(Debug, Clone, Copy)]
pub struct Picture<'a> {
    pub width: u32,
    pub height: u32,
    pub bgr: &'a [u8],
}

impl<'a> Picture<'a> {
    pub fn new(width: u32, height: u32, bgr: &'a [u8]) -> Self {
        Picture { width, height, bgr }
    }

    /// A zero-copy OpenCV view of the picture.
    fn as_mat(&self) -> Result<BoxedRef<'a, Mat>> {
        Mat::new_rows_cols_with_bytes::<Vec3b>(self.height as i32, self.width as i32, self.bgr)
            .with_context(|| {
                format!(
                    "wrapping {} bytes as a {}x{} picture",
                    self.bgr.len(),
                    self.width,
                    self.height
                )
            })
    }

    /// The picture scaled to `to` (width, height) into `scaled`, whose buffer is reused:
    /// averaging the pixels a smaller picture drops keeps it sharp without aliasing; growing,
    /// interpolating between them is enough.
    pub fn scale_into(&self, to: (u32, u32), scaled: &mut Mat) -> Result<()> {
        let shrinking =
            u64::from(to.0) * u64::from(to.1) < u64::from(self.width) * u64::from(self.height);
        let interpolation = match shrinking {
            true => opencv::imgproc::INTER_AREA,
            false => opencv::imgproc::INTER_LINEAR,
        };
        let size = opencv::core::Size::new(to.0 as i32, to.1 as i32);
        opencv::imgproc::resize(&self.as_mat()?, scaled, size, 0.0, 0.0, interpolation)
            .with_context(|| {
                format!(
                    "scaling a picture from {}x{} to {}x{}",
                    self.width, self.height, to.0, to.1
                )
            })
    }
}

/// Peak signal-to-noise ratio in dB between two pictures of the same size (their common
/// length is compared): how close a decoded picture is to its source, as quality is measured.
pub fn psnr(a: &[u8], b: &[u8]) -> f64 {
    let len = a.len().min(b.len());
    let squared: f64 = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2))
        .sum();
    match squared {
        0.0 => f64::INFINITY,
        _ => 10.0 * (255.0f64 * 255.0 * len as f64 / squared).log10(),
    }
}

/// An FFmpeg video decoder for `context` that gives each picture out as soon as its packet is
/// in: one thread and no frame reordering (frame threads would hold pictures back).
pub(crate) fn low_delay_decoder(
    mut context: ffmpeg_next::codec::context::Context,
) -> Result<ffmpeg_next::decoder::Video> {
    context.set_threading(ffmpeg_next::codec::threading::Config::count(1));
    context.set_flags(ffmpeg_next::codec::Flags::LOW_DELAY);
    Ok(context.decoder().video()?)
}

/// FFmpeg's global setup, once; its own log lines stay quiet (errors come back as values).
pub(crate) fn init_ffmpeg() -> Result<()> {
    static INIT: OnceLock<Result<(), String>> = OnceLock::new();
    let result = INIT.get_or_init(|| {
        ffmpeg_next::util::log::set_level(ffmpeg_next::util::log::Level::Fatal);
        quiet_library_logs();
        ffmpeg_next::init().map_err(|e| e.to_string())
    });
    result.clone().map_err(|e| anyhow!("starting FFmpeg: {e}"))
}
