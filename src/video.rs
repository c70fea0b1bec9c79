//! The only module that calls OpenCV: sources (camera, file, URL, test pattern), the JPEG codec,
//! windows and the recorder. Everything outside works on plain BGR byte buffers with a width and
//! height, so it can be tested without a camera or a display.

use crate::config::SourceSpec;
use crate::pattern::TestPattern;
use anyhow::{bail, Context, Result};
use opencv::boxed_ref::BoxedRef;
use opencv::core::{self, Mat, ToInputArray, Vec3b, Vector};
use opencv::prelude::*;
use opencv::{highgui, imgcodecs, imgproc, videoio};
use std::path::{Path, PathBuf};

/// OpenCV's own warnings (a missing camera backend, a codec probe) go to stderr and would bury
/// our one-line errors; we report what matters ourselves.
pub fn quiet_opencv_logs() {
    // Failing to change the log level leaves the default: noisier, not wrong.
    let _ = core::set_log_level(core::LogLevel::LOG_LEVEL_ERROR);
}

/// Unreadable frames stepped over in a row before a file is taken to have ended.
const MAX_SKIPPED_FRAMES: u32 = 10_000;

/// A zero-copy OpenCV view of a BGR buffer.
pub fn bgr_view(width: u32, height: u32, bgr: &[u8]) -> Result<BoxedRef<'_, Mat>> {
    Mat::new_rows_cols_with_bytes::<Vec3b>(height as i32, width as i32, bgr)
        .with_context(|| format!("wrapping {} bytes as a {width}x{height} picture", bgr.len()))
}

/// Where frames come from.
pub enum Source {
    Pattern {
        pattern: TestPattern,
    },
    Capture {
        capture: videoio::VideoCapture,
        frame: Mat,
        converted: Mat,
        /// The frame read while opening (to learn the size), handed out by the first read.
        first_pending: bool,
        is_file: bool,
        name: String,
        /// Learnt from the first frame; later frames must match it.
        width: u32,
        height: u32,
    },
}

impl Source {
    pub fn open(spec: &SourceSpec) -> Result<Source> {
        match spec {
            SourceSpec::TestPattern { width, height } => Ok(Source::Pattern {
                pattern: TestPattern::new(*width, *height),
            }),
            SourceSpec::Camera(index) => {
                let name = format!("camera {index}");
                let capture = videoio::VideoCapture::new(*index, videoio::CAP_ANY)
                    .with_context(|| format!("opening {name}"))?;
                Self::from_capture(capture, name, false)
            }
            SourceSpec::Location(location) => {
                let is_url = location.contains("://");
                let name = if is_url {
                    format!("stream {location}")
                } else {
                    format!("video file {location}")
                };
                if !is_url && !Path::new(location).exists() {
                    bail!("opening {name}: no such file");
                }
                let capture = videoio::VideoCapture::from_file(location, videoio::CAP_ANY)
                    .with_context(|| format!("opening {name}"))?;
                Self::from_capture(capture, name, !is_url)
            }
        }
    }

    fn from_capture(
        mut capture: videoio::VideoCapture,
        name: String,
        is_file: bool,
    ) -> Result<Source> {
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
        Ok(Source::Capture {
            width: frame.cols() as u32,
            height: frame.rows() as u32,
            capture,
            frame,
            converted: Mat::default(),
            first_pending: true,
            is_file,
            name,
        })
    }

    /// Frame size in pixels.
    pub fn size(&self) -> (u32, u32) {
        match self {
            Source::Pattern { pattern } => (pattern.width(), pattern.height()),
            Source::Capture { width, height, .. } => (*width, *height),
        }
    }

    /// The rate a file was made at, or a camera says it runs at.
    pub fn native_fps(&self) -> Option<f64> {
        match self {
            Source::Pattern { .. } => None,
            Source::Capture { capture, .. } => capture
                .get(videoio::CAP_PROP_FPS)
                .ok()
                .filter(|fps| fps.is_finite() && *fps > 0.0 && *fps < 1000.0),
        }
    }

    /// Files (not cameras, not network streams) wait for a viewer and can end.
    pub fn is_file(&self) -> bool {
        matches!(self, Source::Capture { is_file: true, .. })
    }

    pub fn name(&self) -> &str {
        match self {
            Source::Pattern { .. } => "test pattern",
            Source::Capture { name, .. } => name,
        }
    }

    /// Writes the next frame into `out` as BGR rows. `Ok(false)` is the end of a file or stream.
    pub fn read_into(&mut self, seq: u64, out: &mut Vec<u8>) -> Result<bool> {
        let (width, height) = self.size();
        match self {
            Source::Pattern { pattern } => {
                pattern.render(seq, out);
                Ok(true)
            }
            Source::Capture {
                capture,
                frame,
                converted,
                first_pending,
                is_file,
                name,
                ..
            } => {
                if !std::mem::take(first_pending)
                    && !read_past_damage(capture, frame, *is_file, name)
                {
                    return Ok(false);
                }
                if frame.cols() as u32 != width || frame.rows() as u32 != height {
                    bail!(
                        "{name} changed size from {width}x{height} to {}x{}",
                        frame.cols(),
                        frame.rows()
                    );
                }
                let bgr = to_bgr(frame, converted).with_context(|| format!("reading {name}"))?;
                out.clear();
                out.extend_from_slice(bgr.data_bytes()?);
                Ok(true)
            }
        }
    }
}

/// Reads the next frame. In a file, a stretch that does not decode is stepped over, frame by
/// frame (up to [`MAX_SKIPPED_FRAMES`]), while the file says it has frames left. Returns false
/// at the end.
fn read_past_damage(
    capture: &mut videoio::VideoCapture,
    frame: &mut Mat,
    is_file: bool,
    name: &str,
) -> bool {
    let mut skipped = 0;
    loop {
        if capture.read(frame).unwrap_or(false) && !frame.empty() {
            break;
        }
        let position = capture.get(videoio::CAP_PROP_POS_FRAMES).unwrap_or(0.0);
        let count = capture.get(videoio::CAP_PROP_FRAME_COUNT).unwrap_or(0.0);
        if !is_file || skipped >= MAX_SKIPPED_FRAMES || position + 1.0 >= count {
            return false;
        }
        if !capture
            .set(videoio::CAP_PROP_POS_FRAMES, position + 1.0)
            .unwrap_or(false)
        {
            return false;
        }
        skipped += 1;
    }
    if skipped > 0 {
        let frames = if skipped == 1 { "frame" } else { "frames" };
        log::warn!("{name}: skipped {skipped} {frames} that could not be read");
    }
    true
}

/// Cameras and network streams are read on their own thread by [`crate::live`].
impl crate::live::Capture for Source {
    fn name(&self) -> &str {
        Source::name(self)
    }

    fn size(&self) -> (u32, u32) {
        Source::size(self)
    }

    fn native_fps(&self) -> Option<f64> {
        Source::native_fps(self)
    }

    fn read_into(&mut self, out: &mut Vec<u8>) -> Result<bool> {
        Source::read_into(self, 0, out)
    }
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

/// Draws `lines` of text on a dark `width`x`height` picture: what a window shows instead of
/// video ("waiting for sender", "NO SIGNAL"). The first line is large, the rest smaller; each
/// is shrunk to fit the width.
pub fn draw_card(width: u32, height: u32, lines: &[String], card: &mut Mat) -> Result<()> {
    let size = core::Size::new(width as i32, height as i32);
    *card = Mat::new_size_with_default(
        size,
        core::CV_8UC3,
        core::Scalar::new(40.0, 32.0, 32.0, 0.0),
    )
    .context("drawing a card")?;
    let (w, h) = (f64::from(width), f64::from(height));
    let font = imgproc::FONT_HERSHEY_SIMPLEX;
    let mut y = h * 0.35;
    for (i, line) in lines.iter().enumerate() {
        let wanted = if i == 0 { w / 550.0 } else { w / 1100.0 };
        let mut baseline = 0;
        let unit =
            imgproc::get_text_size(line, font, 1.0, 1, &mut baseline).context("drawing a card")?;
        let scale = wanted.min(w * 0.88 / f64::from(unit.width.max(1)));
        let thickness = ((2.0 * scale).round() as i32).max(1);
        imgproc::put_text(
            card,
            line,
            core::Point::new((w * 0.06) as i32, y as i32),
            font,
            scale,
            core::Scalar::new(235.0, 235.0, 235.0, 0.0),
            thickness,
            imgproc::LINE_AA,
            false,
        )
        .context("drawing a card")?;
        y += f64::from(unit.height) * wanted * 2.2;
    }
    Ok(())
}

/// [`draw_card`] as BGR rows in `out`, the way sources deliver frames.
pub fn draw_card_bgr(width: u32, height: u32, lines: &[String], out: &mut Vec<u8>) -> Result<()> {
    let mut card = Mat::default();
    draw_card(width, height, lines, &mut card)?;
    out.clear();
    out.extend_from_slice(card.data_bytes()?);
    Ok(())
}

/// JPEG encoding with reused parameter and output buffers.
pub struct JpegEncoder {
    params: Vector<i32>,
    out: Vector<u8>,
}

impl JpegEncoder {
    pub fn new(quality: u8) -> Self {
        JpegEncoder {
            params: Vector::from_slice(&[imgcodecs::IMWRITE_JPEG_QUALITY, i32::from(quality)]),
            out: Vector::new(),
        }
    }

    pub fn encode(&mut self, width: u32, height: u32, bgr: &[u8]) -> Result<&[u8]> {
        let picture = bgr_view(width, height, bgr)?;
        let ok = imgcodecs::imencode(".jpg", &picture, &mut self.out, &self.params)
            .context("encoding jpeg")?;
        if !ok {
            bail!("encoding jpeg: OpenCV refused the picture");
        }
        Ok(self.out.as_slice())
    }
}

/// Decodes a JPEG into `into` (reusing its allocation) and checks it has the announced size.
pub fn decode_jpeg(data: &[u8], width: u32, height: u32, into: &mut Mat) -> Result<()> {
    let bytes = Mat::from_bytes::<u8>(data)?;
    imgcodecs::imdecode_to(&bytes, imgcodecs::IMREAD_COLOR, into).context("decoding jpeg")?;
    if into.empty() {
        bail!("decoding jpeg: the data is not a picture");
    }
    if into.cols() as u32 != width || into.rows() as u32 != height {
        bail!(
            "decoding jpeg: picture is {}x{}, but the frame says {width}x{height}",
            into.cols(),
            into.rows()
        );
    }
    Ok(())
}

/// Why a display cannot be used, or `None` when windows can be opened. Qt (Debian's highgui
/// backend) aborts the whole process when it cannot reach a display, so this is checked first.
pub fn display_unavailable() -> Option<String> {
    let Some(display) = std::env::var_os("DISPLAY").filter(|d| !d.is_empty()) else {
        return Some(if std::env::var_os("WAYLAND_DISPLAY").is_some() {
            "only a Wayland display was found and the windows need X11 (XWayland)".into()
        } else {
            "no display found (DISPLAY is not set)".into()
        });
    };
    let display = display.to_string_lossy().into_owned();
    match x11_reachable(&display) {
        Ok(()) => None,
        Err(why) => Some(format!(
            "display {display} cannot be reached: {}",
            crate::error_line(&why.into())
        )),
    }
}

/// Connects to the X server named by `display` (`[host]:N[.screen]`) the way Xlib would.
fn x11_reachable(display: &str) -> std::io::Result<()> {
    use std::time::Duration;
    let (host, rest) = display.rsplit_once(':').unwrap_or(("", display));
    let number: u16 = rest
        .split('.')
        .next()
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| std::io::Error::other("not a display name"))?;
    if host.is_empty() || host == "unix" {
        let socket = format!("/tmp/.X11-unix/X{number}");
        std::os::unix::net::UnixStream::connect(&socket).map(drop)
    } else {
        use std::net::ToSocketAddrs;
        let addr = (host, 6000 + number)
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| std::io::Error::other("no address"))?;
        std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).map(drop)
    }
}

/// What the person at a window asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowEvent {
    None,
    /// `q` was pressed or the window was closed.
    Quit,
}

/// A highgui window; destroyed when dropped.
pub struct Window {
    title: String,
}

impl Window {
    pub fn open(title: &str) -> Result<Window> {
        highgui::named_window(title, highgui::WINDOW_AUTOSIZE | highgui::WINDOW_GUI_NORMAL)
            .with_context(|| format!("opening window {title:?}"))?;
        Ok(Window {
            title: title.to_owned(),
        })
    }

    pub fn show(&self, picture: &impl ToInputArray) -> Result<()> {
        highgui::imshow(&self.title, picture).with_context(|| format!("showing {:?}", self.title))
    }

    /// Runs the window's events for up to `wait_ms` and reports a quit request.
    pub fn poll(&self, wait_ms: i32) -> Result<WindowEvent> {
        let key = highgui::wait_key(wait_ms.max(1))?;
        // highgui returns -1 or 255 for "no key", depending on the backend.
        if key > 0 && key != 255 && matches!(key & 0xff, 0x71 | 0x51) {
            return Ok(WindowEvent::Quit);
        }
        let visible =
            highgui::get_window_property(&self.title, highgui::WND_PROP_VISIBLE).unwrap_or(0.0);
        Ok(if visible < 1.0 {
            WindowEvent::Quit
        } else {
            WindowEvent::None
        })
    }
}

impl Drop for Window {
    fn drop(&mut self) {
        // Nothing useful can be done about a window that will not close at exit.
        let _ = highgui::destroy_window(&self.title);
        let _ = highgui::wait_key(1);
    }
}

/// Writes frames to a video file; the container and codec follow the file's extension.
pub struct Recorder {
    writer: videoio::VideoWriter,
    path: PathBuf,
    size: (u32, u32),
    frames: u64,
}

impl Recorder {
    /// `.mkv` is lossless FFV1, `.avi` MJPG, `.mp4` mp4v.
    pub fn create(path: &Path, width: u32, height: u32, fps: f64) -> Result<Recorder> {
        let extension = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        let code = match extension.as_deref() {
            Some("mkv") => *b"FFV1",
            Some("avi") => *b"MJPG",
            Some("mp4") => *b"mp4v",
            _ => bail!(
                "recording to {}: unknown extension (use .mkv, .avi or .mp4)",
                path.display()
            ),
        };
        let [a, b, c, d] = code.map(char::from);
        let fourcc = videoio::VideoWriter::fourcc(a, b, c, d)?;
        let size = core::Size::new(width as i32, height as i32);
        let name = path.to_string_lossy();
        let writer = videoio::VideoWriter::new_with_backend(
            name.as_ref(),
            videoio::CAP_FFMPEG,
            fourcc,
            fps,
            size,
            true,
        )
        .with_context(|| format!("recording to {}", path.display()))?;
        if !writer.is_opened().unwrap_or(false) {
            bail!(
                "recording to {}: OpenCV could not create the file (does its folder exist?)",
                path.display()
            );
        }
        Ok(Recorder {
            writer,
            path: path.to_owned(),
            size: (width, height),
            frames: 0,
        })
    }

    /// Picture size in pixels; every frame written must have it.
    pub fn size(&self) -> (u32, u32) {
        self.size
    }

    pub fn write(&mut self, picture: &impl ToInputArray) -> Result<()> {
        self.writer
            .write(picture)
            .with_context(|| format!("recording to {}", self.path.display()))?;
        self.frames += 1;
        Ok(())
    }

    /// Finalises the file (index, trailer); also done on drop, where errors cannot be reported.
    pub fn finish(mut self) -> Result<u64> {
        self.writer
            .release()
            .with_context(|| format!("finishing {}", self.path.display()))?;
        Ok(self.frames)
    }
}
