//! Cameras, pipelines, files and streams read through OpenCV's `VideoCapture`: the first frame
//! read to learn the size, grey and BGRA frames turned to BGR, a JPEG frame (OpenCV hands a
//! camera's, a pipeline's or a file's own JPEG over as one row of bytes) kept as it came, and a
//! file's damage stepped over.

use super::capture::{Capture, Pixels};
use super::codec;
use super::logs::Tally;
use anyhow::{bail, Context, Result};
use opencv::core::{self, Mat};
use opencv::prelude::*;
use opencv::{imgproc, videoio};
use std::path::Path;
use std::time::{Duration, Instant};

/// Unreadable frames stepped over in a row before a file is taken to have ended.
const MAX_SKIPPED_FRAMES: u64 = 10_000;
/// The longest a file's damage is stepped over before the file counts as ended.
const MAX_SKIP_TIME: Duration = Duration::from_secs(5);

/// The longest a GStreamer pipeline may take to start: a network camera's can take seconds.
const PIPELINE_START_LIMIT: Duration = Duration::from_secs(10);

/// A camera, pipeline, file or stream read through OpenCV's `VideoCapture`.
pub(super) struct OpenCvCapture {
    capture: videoio::VideoCapture,
    frame: Mat,
    converted: Mat,
    /// The frame read while opening (to learn the size), handed out by the first read.
    first_pending: bool,
    is_file: bool,
    /// How far a file's damage was stepped over.
    damage: Damage,
    name: String,
    /// Learnt from the first frame; later frames must match it.
    width: u32,
    height: u32,
    pixels: Pixels,
}

impl OpenCvCapture {
    /// A GStreamer pipeline through OpenCV's GStreamer backend. One without an `appsink` gets
    /// one that hands OpenCV BGR (`gst:libcamerasrc` is enough for a Pi camera), or, after
    /// `image/jpeg` caps, the JPEG pictures as they are.
    pub(super) fn pipeline(pipeline: &str) -> Result<Box<dyn Capture>> {
        let name = format!("GStreamer pipeline \"{pipeline}\"");
        let last = pipeline.rsplit('!').next().unwrap_or_default().trim();
        let full = match pipeline.contains("appsink") {
            true => pipeline.to_owned(),
            false if last.starts_with("image/jpeg") => format!("{pipeline} ! appsink"),
            false => format!("{pipeline} ! videoconvert ! video/x-raw,format=BGR ! appsink"),
        };
        // OpenCV waits for a pipeline that cannot start (a misspelt element) forever: wait on
        // another thread, which is left behind if GStreamer never answers.
        let (opened, open) = std::sync::mpsc::channel();
        let launch = full.clone();
        std::thread::spawn(move || {
            let _ = opened.send(videoio::VideoCapture::from_file(
                &launch,
                videoio::CAP_GSTREAMER,
            ));
        });
        let hint = format!("`gst-launch-1.0 {full}` shows GStreamer's own error");
        let capture = match open.recv_timeout(PIPELINE_START_LIMIT) {
            Ok(capture) => capture.with_context(|| format!("opening {name}"))?,
            Err(_) => bail!(
                "opening {name}: GStreamer did not start it within {} s ({hint})",
                PIPELINE_START_LIMIT.as_secs()
            ),
        };
        if !capture.is_opened().unwrap_or(false) {
            bail!("opening {name}: GStreamer could not start it ({hint})");
        }
        Ok(Box::new(Self::new(capture, name, false)?))
    }

    /// A video file; with `keep_jpeg`, an MJPEG one gives its pictures as they are stored
    /// (OpenCV's FFmpeg backend hands over packets, not pictures, when its format is -1).
    pub(super) fn file(location: &str, keep_jpeg: bool) -> Result<Box<dyn Capture>> {
        let name = format!("video file {location}");
        if !Path::new(location).exists() {
            bail!("opening {name}: no such file");
        }
        let open = || {
            videoio::VideoCapture::from_file(location, videoio::CAP_ANY)
                .with_context(|| format!("opening {name}"))
        };
        if keep_jpeg {
            let mut packets = open()?;
            if packets.set(videoio::CAP_PROP_FORMAT, -1.0).unwrap_or(false) {
                let capture = Self::new(packets, name.clone(), true)?;
                if capture.pixels == Pixels::Jpeg {
                    return Ok(Box::new(capture));
                }
            }
        }
        Ok(Box::new(Self::new(open()?, name, true)?))
    }

    pub(super) fn stream(location: &str) -> Result<Box<dyn Capture>> {
        let name = format!("stream {location}");
        let capture = videoio::VideoCapture::from_file(location, videoio::CAP_ANY)
            .with_context(|| format!("opening {name}"))?;
        Ok(Box::new(Self::new(capture, name, false)?))
    }

    pub(super) fn new(
        mut capture: videoio::VideoCapture,
        name: String,
        is_file: bool,
    ) -> Result<Self> {
        if !capture.is_opened().unwrap_or(false) {
            if is_file {
                bail!(
                    "opening {name}: OpenCV cannot read it (not a video, or an unsupported format)"
                );
            }
            bail!("opening {name}: it could not be opened (is it connected, and free?)");
        }
        let mut frame = Mat::default();
        if !capture.read(&mut frame).unwrap_or(false) || frame.empty() {
            bail!("reading from {name}: it delivered no frame");
        }
        let (pixels, (width, height)) = match jpeg_in(&frame) {
            Some(size) => (Pixels::Jpeg, size),
            None => (Pixels::Bgr, (frame.cols() as u32, frame.rows() as u32)),
        };
        Ok(OpenCvCapture {
            width,
            height,
            pixels,
            capture,
            frame,
            converted: Mat::default(),
            first_pending: true,
            is_file,
            damage: Damage::default(),
            name,
        })
    }
}

impl Capture for OpenCvCapture {
    fn name(&self) -> &str {
        &self.name
    }

    fn size(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    fn native_fps(&self) -> Option<f64> {
        self.capture
            .get(videoio::CAP_PROP_FPS)
            .ok()
            .filter(|fps| fps.is_finite() && *fps > 0.0 && *fps < 1000.0)
    }

    fn pixels(&self) -> Pixels {
        self.pixels
    }

    fn read_into(&mut self, out: &mut Vec<u8>) -> Result<bool> {
        let (width, height, name) = (self.width, self.height, &self.name);
        // A file's packet that is not a JPEG picture is damage, stepped over like a picture
        // that does not decode.
        let pixels = self.pixels;
        let usable = |frame: &Mat| pixels == Pixels::Bgr || jpeg_in(frame).is_some();
        if !std::mem::take(&mut self.first_pending)
            && !read_past_damage(
                &mut self.capture,
                &mut self.frame,
                self.is_file.then_some(&mut self.damage),
                &usable,
                name,
            )
        {
            return Ok(false);
        }
        let frame = &self.frame;
        let size = match self.pixels {
            Pixels::Jpeg => jpeg_in(frame)
                .with_context(|| format!("{name} gave a frame that is not a JPEG picture"))?,
            Pixels::Bgr => (frame.cols() as u32, frame.rows() as u32),
        };
        if size != (width, height) {
            bail!(
                "{name} changed size from {width}x{height} to {}x{}",
                size.0,
                size.1
            );
        }
        if self.pixels == Pixels::Jpeg {
            out.clear();
            out.extend_from_slice(frame.data_bytes()?);
            return Ok(true);
        }
        let bgr = to_bgr(frame, &mut self.converted).with_context(|| format!("reading {name}"))?;
        out.clear();
        out.extend_from_slice(bgr.data_bytes()?);
        Ok(true)
    }
}

/// The size of the JPEG picture `frame` holds, if it holds one: OpenCV hands over a camera's,
/// a pipeline's or a file's own JPEG as one row of bytes.
fn jpeg_in(frame: &Mat) -> Option<(u32, u32)> {
    if frame.rows() != 1 || frame.typ() != core::CV_8UC1 {
        return None;
    }
    codec::jpeg_picture_size(frame.data_bytes().ok()?)
}

/// Where a file's damage has been stepped over to, so that stepping never goes back.
#[derive(Default)]
struct Damage {
    /// The furthest frame a step over damage reached. A seek in a damaged file may land before
    /// the damage (at the keyframe before it), and the next step must not land there again, or
    /// the file would replay the same stretch forever.
    furthest: f64,
    /// Frames stepped over, reported at most once a minute: a file damaged all through would
    /// otherwise log a line for every stretch.
    skipped: Tally,
}

/// Reads the next frame. In a file (`damage` is its record), a stretch that does not decode (or
/// is not `usable`) is stepped over frame by frame, always forward, while the file says it has frames left, for at
/// most [`MAX_SKIPPED_FRAMES`] frames and [`MAX_SKIP_TIME`]. Returns false at the end, having
/// reported the frames skipped since the last report.
fn read_past_damage(
    capture: &mut videoio::VideoCapture,
    frame: &mut Mat,
    mut damage: Option<&mut Damage>,
    usable: &dyn Fn(&Mat) -> bool,
    name: &str,
) -> bool {
    let (read, skipped) = step_past_damage(capture, frame, damage.as_deref_mut(), usable, name);
    let Some(damage) = damage else {
        return read;
    };
    let report = match read {
        true if skipped > 0 => damage.skipped.count(skipped),
        true => None,
        false => Some(damage.skipped.rest() + skipped).filter(|&count| count > 0),
    };
    if let Some(count) = report {
        let frames = if count == 1 { "frame" } else { "frames" };
        log::warn!("{name}: skipped {count} {frames} that could not be read (reported at most once a minute)");
    }
    read
}

/// [`read_past_damage`]'s stepping; returns whether a frame was read, and how many were skipped.
fn step_past_damage(
    capture: &mut videoio::VideoCapture,
    frame: &mut Mat,
    mut damage: Option<&mut Damage>,
    usable: &dyn Fn(&Mat) -> bool,
    name: &str,
) -> (bool, u64) {
    let started = Instant::now();
    let mut skipped = 0;
    loop {
        if capture.read(frame).unwrap_or(false) && !frame.empty() && usable(frame) {
            break;
        }
        let Some(damage) = damage.as_deref_mut() else {
            return (false, skipped);
        };
        let position = capture.get(videoio::CAP_PROP_POS_FRAMES).unwrap_or(0.0);
        let count = capture.get(videoio::CAP_PROP_FRAME_COUNT).unwrap_or(0.0);
        let next = position.max(damage.furthest) + 1.0;
        if skipped >= MAX_SKIPPED_FRAMES || next >= count {
            return (false, skipped);
        }
        if started.elapsed() > MAX_SKIP_TIME {
            log::warn!(
                "{name}: nothing decoded for {} s after frame {position}; treating it as the end",
                MAX_SKIP_TIME.as_secs()
            );
            return (false, skipped);
        }
        if !capture
            .set(videoio::CAP_PROP_POS_FRAMES, next)
            .unwrap_or(false)
        {
            return (false, skipped);
        }
        damage.furthest = next;
        skipped += 1;
    }
    (true, skipped)
}

/// Cameras may deliver grey or BGRA frames; everything past here is 8-bit BGR.
fn to_bgr<'a>(frame: &'a Mat, converted: &'a mut Mat) -> Result<&'a Mat> {
    let code = match frame.typ() {
        core::CV_8UC3 if frame.is_continuous() => return Ok(frame),
        core::CV_8UC3 => {
            frame.copy_to(converted)?;
            return Ok(converted);
        }
        core::CV_8UC1 => imgproc::COLOR_GRAY2BGR,
        core::CV_8UC4 => imgproc::COLOR_BGRA2BGR,
        other => bail!("unsupported pixel type {other}"),
    };
    imgproc::cvt_color_def(frame, converted, code)?;
    Ok(converted)
}
