//! Where the sender's pictures come from: a camera ([`super::camera`]), a GStreamer pipeline,
//! a video file, a URL, or the built-in test pattern, all behind one [`Source`]. Files and the
//! pattern are read when a frame is due; cameras and streams run by themselves, so they are read
//! on their own thread ([`super::live`]) and can be lost and come back.
//!
//! A source that already gives JPEG (a camera in MJPEG mode, a pipeline ending in `image/jpeg`,
//! an MJPEG file) hands its pictures over as they came when the stream can take them so
//! ([`SourceRequest::keep_jpeg`]): no decode, no encode. Otherwise they are decoded here, and
//! everything after sees BGR.

use super::codec::{self, Decoder};
use super::live::LiveSource;
use super::logs::Tally;
use super::pattern::TestPattern;
use super::window::draw_label;
use crate::config::{CameraFormat, SourceSpec};
use crate::stats::clock_time_ms;
use crate::wire::protocol::{Codec, FrameHeader, PixelFormat};
use anyhow::{bail, Context, Result};
use opencv::core::{self, Mat};
use opencv::prelude::*;
use opencv::{imgproc, videoio};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

/// Something pictures are read from, one after another: an OpenCV capture, the test pattern, or
/// a test's fake camera.
pub trait Capture: Send {
    /// What the user calls it: "camera 0", "video file clip.mkv", "test pattern".
    fn name(&self) -> &str;
    /// Picture size in pixels; every picture has it.
    fn size(&self) -> (u32, u32);
    /// The rate the source says it runs at, if it says.
    fn native_fps(&self) -> Option<f64>;
    /// How long it may deliver nothing before it counts as lost (a stream that comes in
    /// bursts, like HLS, needs longer than a camera).
    fn silence_limit(&self) -> Duration {
        super::live::SIGNAL_TIMEOUT
    }
    /// What its reads give.
    fn pixels(&self) -> Pixels {
        Pixels::Bgr
    }
    /// Reads the next picture into `out`, as [`Capture::pixels`] says. `Ok(false)`: the source
    /// ended or stopped.
    fn read_into(&mut self, out: &mut Vec<u8>) -> Result<bool>;
}

/// What a picture's bytes are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pixels {
    /// BGR rows of the picture's size.
    Bgr,
    /// One JPEG picture of that size, as the camera, pipeline or file made it.
    Jpeg,
}

/// What the user asked of the pictures besides their source: `--size` and `--fps` are asked
/// of a camera (with `--camera-format`); other sources are scaled to `--size`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SourceRequest {
    pub size: Option<(u32, u32)>,
    pub fps: Option<f64>,
    pub camera_format: CameraFormat,
    /// The stream is JPEG and may carry the source's own: a source that gives JPEG at the size
    /// asked hands it over as it came ([`Next::Jpeg`]) instead of decoding it.
    pub keep_jpeg: bool,
}

/// Opens (and later reopens) the capture behind a live source.
pub type Opener = Box<dyn FnMut() -> Result<Box<dyn Capture>> + Send>;

/// What [`Source::next_into`] found.
#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    /// A new picture (BGR), captured at this time, is in the buffer.
    Frame(SystemTime),
    /// A new JPEG picture, as the source made it, is in the buffer: only from a source opened
    /// with [`SourceRequest::keep_jpeg`].
    Jpeg(SystemTime),
    /// No new picture yet; the source is fine.
    Waiting,
    /// A live source is lost: since when, and why.
    Lost { since: SystemTime, why: String },
    /// A file (or the pattern, never) reached its end.
    Ended,
}

/// The sender's source of pictures.
pub struct Source {
    name: String,
    size: (u32, u32),
    native_fps: Option<f64>,
    is_file: bool,
    reading: Reading,
    /// The test pattern, which can show its capture time.
    is_pattern: bool,
    /// Each picture shows its capture time ([`Source::show_capture_time`]).
    shows_time: bool,
}

enum Reading {
    /// Read when a frame is due: files and the test pattern.
    OnDemand(Box<dyn Capture>),
    /// Read on its own thread, newest picture kept: cameras and streams.
    Live(LiveSource),
}

impl Source {
    /// Opens what `--source` names, as `request` asks; an error here is the user's to fix.
    pub fn open(spec: &SourceSpec, request: &SourceRequest) -> Result<Source> {
        let request = *request;
        let fitted = move |capture| fit(capture, &request);
        match spec {
            SourceSpec::TestPattern { width, height } => {
                let (width, height) = request.size.unwrap_or((*width, *height));
                Ok(Source {
                    is_pattern: true,
                    ..Self::on_demand(
                        Box::new(PatternCapture {
                            pattern: TestPattern::new(width, height),
                            seq: 0,
                        }),
                        false,
                    )
                })
            }
            SourceSpec::Camera(camera) => {
                let camera = camera.clone();
                // A camera is asked for its size, not scaled to it.
                let as_it_comes = SourceRequest {
                    size: None,
                    ..request
                };
                Self::live(Box::new(move || {
                    super::camera::open(&camera, &request).map(|c| fit(c, &as_it_comes))
                }))
            }
            SourceSpec::Pipeline(pipeline) => {
                let pipeline = pipeline.clone();
                Self::live(Box::new(move || {
                    OpenCvCapture::pipeline(&pipeline).map(fitted)
                }))
            }
            SourceSpec::Location(location) if spec.is_live() => {
                let location = location.clone();
                Self::live(Box::new(move || {
                    OpenCvCapture::stream(&location).map(fitted)
                }))
            }
            SourceSpec::Location(location) => {
                let capture = OpenCvCapture::file(location, request.keep_jpeg)?;
                Ok(Self::on_demand(fitted(capture), true))
            }
        }
    }

    /// A source that reads `capture` as `reading` says.
    fn new(
        capture: Box<dyn Capture>,
        is_file: bool,
        reading: impl FnOnce(Box<dyn Capture>) -> Reading,
    ) -> Source {
        Source {
            name: capture.name().to_owned(),
            size: capture.size(),
            native_fps: capture.native_fps(),
            is_file,
            reading: reading(capture),
            is_pattern: false,
            shows_time: false,
        }
    }

    fn on_demand(capture: Box<dyn Capture>, is_file: bool) -> Source {
        Self::new(capture, is_file, Reading::OnDemand)
    }

    /// A source read on its own thread from what `opener` opens, reopened whenever it is lost.
    /// Opening it the first time must work.
    pub fn live(mut opener: Opener) -> Result<Source> {
        let capture = opener()?;
        Ok(Self::live_opened(capture, opener))
    }

    /// A source read on its own thread from `capture`, which `opener` opened and opens again
    /// whenever it is lost.
    pub fn live_opened(capture: Box<dyn Capture>, opener: Opener) -> Source {
        Self::new(capture, false, |capture| {
            Reading::Live(LiveSource::start(capture, opener))
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Picture size in pixels.
    pub fn size(&self) -> (u32, u32) {
        self.size
    }

    /// The rate a file was made at, or a camera says it runs at.
    pub fn native_fps(&self) -> Option<f64> {
        self.native_fps
    }

    /// Files (not cameras, not streams) wait for a viewer and can end.
    pub fn is_file(&self) -> bool {
        self.is_file
    }

    /// Cameras and streams keep their own time; the others are paced by the sender.
    pub fn is_live(&self) -> bool {
        matches!(self.reading, Reading::Live(_))
    }

    /// Has the test pattern (no other source) draw each picture's capture time on it, in large
    /// digits (local time, `HH:MM:SS.mmm`): a photo of the sender's preview beside a receiver's
    /// window then shows the latency between them. Frames are then no longer a function of
    /// their number alone, so this is for people, not for the tests that rebuild frames.
    pub fn show_capture_time(&mut self) {
        self.shows_time = self.is_pattern;
    }

    /// The next picture into `out`. A live source waits up to `wait` for one.
    pub fn next_into(&mut self, out: &mut Vec<u8>, wait: Duration) -> Result<Next> {
        match &mut self.reading {
            Reading::OnDemand(capture) => {
                let captured_at = SystemTime::now();
                if !capture.read_into(out)? {
                    return Ok(Next::Ended);
                }
                if capture.pixels() == Pixels::Jpeg {
                    return Ok(Next::Jpeg(captured_at));
                }
                if self.shows_time {
                    let time = clock_time_ms(captured_at);
                    draw_label(self.size, out, &time, CAPTURE_TIME_HEIGHT, false)?;
                }
                Ok(Next::Frame(captured_at))
            }
            Reading::Live(live) => Ok(live.next_into(out, wait)),
        }
    }
}

/// The capture time on the test pattern is this share of the picture's height: large enough to
/// read in a photo of a screen.
const CAPTURE_TIME_HEIGHT: f64 = 0.09;

/// The test pattern as a capture: frame `n` is the pattern's frame `n`, so a test can rebuild
/// every frame from its sequence number.
struct PatternCapture {
    pattern: TestPattern,
    seq: u64,
}

impl Capture for PatternCapture {
    fn name(&self) -> &str {
        "test pattern"
    }

    fn size(&self) -> (u32, u32) {
        (self.pattern.width(), self.pattern.height())
    }

    fn native_fps(&self) -> Option<f64> {
        None
    }

    fn read_into(&mut self, out: &mut Vec<u8>) -> Result<bool> {
        self.pattern.render(self.seq, out);
        self.seq += 1;
        Ok(true)
    }
}

/// `capture` as `request` wants it: its JPEG kept only when the stream may carry it as it came
/// (at the size asked), else decoded; scaled to the size asked.
fn fit(capture: Box<dyn Capture>, request: &SourceRequest) -> Box<dyn Capture> {
    let size = request.size.unwrap_or(capture.size());
    let capture: Box<dyn Capture> = match capture.pixels() {
        Pixels::Jpeg if request.keep_jpeg && size == capture.size() => {
            log::info!(
                "{} gives JPEG: passing it on as it came (no decode, no encode; --quality would \
                 re-encode it)",
                capture.name()
            );
            capture
        }
        Pixels::Jpeg => Box::new(Decoded::new(capture)),
        Pixels::Bgr => capture,
    };
    match size == capture.size() {
        true => capture,
        false => Box::new(Scaled::new(capture, size)),
    }
}

/// Turns a source's JPEG pictures into BGR, for what needs pixels: the preview, another codec,
/// scaling.
pub struct JpegPictures {
    decoder: Box<dyn Decoder>,
}

impl JpegPictures {
    pub fn new() -> Result<JpegPictures> {
        Ok(JpegPictures {
            decoder: codec::format(Codec::Jpeg).decoder()?,
        })
    }

    /// Decodes `jpeg`, which must be a `size` picture, into BGR rows in `out`.
    pub fn decode_into(&mut self, jpeg: &[u8], size: (u32, u32), out: &mut Vec<u8>) -> Result<()> {
        let header = FrameHeader {
            seq: 0,
            capture_unix_us: 0,
            width: size.0,
            height: size.1,
            pixel_format: PixelFormat::Bgr8,
            codec: Codec::Jpeg,
            keyframe: true,
        };
        let Some(picture) = self.decoder.decode(&header, jpeg)? else {
            bail!("decoding jpeg: no picture came out");
        };
        out.clear();
        out.extend_from_slice(picture.bgr);
        Ok(())
    }
}

/// A JPEG capture whose pictures are decoded as they are read.
pub(crate) struct Decoded {
    inner: Box<dyn Capture>,
    jpeg: Vec<u8>,
    pictures: Option<JpegPictures>,
}

impl Decoded {
    pub(crate) fn new(inner: Box<dyn Capture>) -> Decoded {
        Decoded {
            inner,
            jpeg: Vec::new(),
            pictures: None,
        }
    }
}

impl Capture for Decoded {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn size(&self) -> (u32, u32) {
        self.inner.size()
    }

    fn native_fps(&self) -> Option<f64> {
        self.inner.native_fps()
    }

    fn silence_limit(&self) -> Duration {
        self.inner.silence_limit()
    }

    fn read_into(&mut self, out: &mut Vec<u8>) -> Result<bool> {
        if !self.inner.read_into(&mut self.jpeg)? {
            return Ok(false);
        }
        let pictures = match &mut self.pictures {
            Some(pictures) => pictures,
            empty => empty.insert(JpegPictures::new()?),
        };
        let (size, name) = (self.inner.size(), self.inner.name());
        pictures
            .decode_into(&self.jpeg, size, out)
            .with_context(|| format!("reading {name}"))?;
        Ok(true)
    }
}

/// A capture whose pictures are scaled to another size: a camera that came back at another
/// size than the stream it feeds.
pub(crate) struct Scaled {
    inner: Box<dyn Capture>,
    size: (u32, u32),
    /// The picture as the capture delivered it.
    read: Vec<u8>,
    scaled: Mat,
}

impl Scaled {
    pub(crate) fn new(inner: Box<dyn Capture>, size: (u32, u32)) -> Scaled {
        Scaled {
            inner,
            size,
            read: Vec::new(),
            scaled: Mat::default(),
        }
    }
}

impl Capture for Scaled {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn size(&self) -> (u32, u32) {
        self.size
    }

    fn native_fps(&self) -> Option<f64> {
        self.inner.native_fps()
    }

    fn silence_limit(&self) -> Duration {
        self.inner.silence_limit()
    }

    fn read_into(&mut self, out: &mut Vec<u8>) -> Result<bool> {
        if !self.inner.read_into(&mut self.read)? {
            return Ok(false);
        }
        let (from, to) = (self.inner.size(), self.size);
        let name = self.inner.name();
        let picture = super::Picture::new(from.0, from.1, &self.read);
        // Averaging the pixels a smaller picture drops keeps it sharp without aliasing;
        // growing, interpolating between them is enough.
        let shrinking = u64::from(to.0) * u64::from(to.1) < u64::from(from.0) * u64::from(from.1);
        let interpolation = match shrinking {
            true => imgproc::INTER_AREA,
            false => imgproc::INTER_LINEAR,
        };
        imgproc::resize(
            &picture.as_mat()?,
            &mut self.scaled,
            core::Size::new(to.0 as i32, to.1 as i32),
            0.0,
            0.0,
            interpolation,
        )
        .with_context(|| {
            format!(
                "scaling {name} from {}x{} to {}x{}",
                from.0, from.1, to.0, to.1
            )
        })?;
        out.clear();
        out.extend_from_slice(self.scaled.data_bytes()?);
        Ok(true)
    }
}

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
    fn pipeline(pipeline: &str) -> Result<Box<dyn Capture>> {
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
    fn file(location: &str, keep_jpeg: bool) -> Result<Box<dyn Capture>> {
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

    fn stream(location: &str) -> Result<Box<dyn Capture>> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pattern_shows_its_capture_time_at_its_foot_and_nowhere_else() {
        let (width, height) = (320u32, 240u32);
        let pattern = SourceSpec::TestPattern { width, height };
        let mut source = Source::open(&pattern, &SourceRequest::default()).unwrap();
        source.show_capture_time();
        let row = width as usize * 3;
        let mut frame = Vec::new();
        for seq in 0..3 {
            std::thread::sleep(Duration::from_millis(3));
            let Next::Frame(at) = source.next_into(&mut frame, Duration::ZERO).unwrap() else {
                panic!("the pattern always has a frame");
            };
            let mut plain = Vec::new();
            TestPattern::new(width, height).render(seq, &mut plain);
            let changed: Vec<usize> = (0..height as usize)
                .filter(|y| frame[y * row..][..row] != plain[y * row..][..row])
                .collect();
            assert!(!changed.is_empty(), "frame {seq} shows no time");
            assert!(changed.iter().all(|&y| y >= 180), "rows {changed:?}");
            // Drawn afresh on the frame: the reused buffer keeps nothing of the last time.
            let time = clock_time_ms(at);
            draw_label(
                (width, height),
                &mut plain,
                &time,
                CAPTURE_TIME_HEIGHT,
                false,
            )
            .unwrap();
            assert!(frame == plain, "frame {seq}");
        }
    }
}
