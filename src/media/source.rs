//! Where the sender's pictures come from: a camera ([`super::camera`]), a GStreamer pipeline,
//! a video file, a URL, or the built-in test pattern, all behind one [`Source`]. Files and the
//! pattern are read when a frame is due; cameras and streams run by themselves, so they are read
//! on their own thread ([`super::live`]) and can be lost and come back.
//!
//! A source that already gives JPEG (a camera in MJPEG mode, a pipeline ending in `image/jpeg`,
//! an MJPEG file) hands its pictures over as they came when the stream can take them so
//! ([`SourceRequest::keep_jpeg`]): no decode, no encode. Otherwise they are decoded here, and
//! everything after sees BGR.

use super::capture::{Capture, Decoded, Next, Opener, Pixels, Scaled};
use super::live::LiveSource;
use super::opencv_capture::OpenCvCapture;
use super::pattern::TestPattern;
use super::window::draw_label;
use crate::config::{CameraFormat, SourceSpec};
use crate::stats::clock_time_ms;
use anyhow::{bail, Result};
use std::time::{Duration, SystemTime};

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
    /// What makes its frames, when it can make them on demand.
    maker: Option<Box<dyn FrameMaker>>,
}

/// What makes a source's frames (a program), when it can make them as viewers want them.
pub trait FrameMaker: Send {
    /// Whether it makes them on demand now: the sender then reads one only when a viewer is
    /// ready, and says so first ([`FrameMaker::wanted`]).
    fn on_demand(&self) -> bool;
    /// A viewer is ready for a frame.
    fn wanted(&self);
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
            SourceSpec::Program => bail!("a program's own frames come through Sender::send"),
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
            maker: None,
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

    /// A live source whose frames `maker` makes, and may make as viewers want them (a
    /// program's own, made as fast as they are taken).
    pub fn made_by(mut self, maker: Box<dyn FrameMaker>) -> Source {
        self.maker = Some(maker);
        self
    }

    /// Whether its frames are made on demand now: read only when a viewer is ready.
    pub fn is_made_on_demand(&self) -> bool {
        self.maker.as_ref().is_some_and(|maker| maker.on_demand())
    }

    /// Says a viewer is ready for a frame, to what makes them on demand; the source's silence
    /// counts from now.
    pub fn frame_wanted(&mut self) {
        if let Some(maker) = &self.maker {
            maker.wanted();
            if let Reading::Live(live) = &mut self.reading {
                live.frame_asked();
            }
        }
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
