//! Cameras: opening one in the mode asked for (`--size`, `--fps`, `--camera-format`) through
//! OpenCV's V4L2 backend, and `sender --list-cameras`, which asks each V4L2 device itself (its
//! formats, sizes and rates, through the `v4l` crate's ioctls) so the user can see what to ask.

use super::capture::Capture;
use super::opencv_capture::OpenCvCapture;
use super::source::SourceRequest;
use crate::config::{CameraFormat, CameraId};
use anyhow::{bail, Context, Result};
use opencv::prelude::*;
use opencv::videoio;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The pixel format to ask for. USB webcams give sizes above 640x480 at full rate only as
/// MJPEG (in YUYV most give 5-10 fps at 1080p: USB 2.0 cannot carry more).
fn fourcc(mode: &SourceRequest) -> Option<&'static str> {
    match mode.camera_format {
        CameraFormat::Mjpeg => Some("MJPG"),
        CameraFormat::Yuyv => Some("YUYV"),
        CameraFormat::Auto => (mode.size)
            .filter(|(w, h)| u64::from(*w) * u64::from(*h) > 640 * 480)
            .map(|_| "MJPG"),
    }
}

/// Opens `camera` and asks it for `mode`, logging what it gave.
pub fn open(camera: &CameraId, mode: &SourceRequest) -> Result<Box<dyn Capture>> {
    let name = camera.to_string();
    let mut capture = match camera {
        CameraId::Index(index) => videoio::VideoCapture::new(*index, videoio::CAP_V4L2),
        CameraId::Device(path) => {
            if !Path::new(path).exists() {
                bail!(
                    "opening {name}: no such device (sender --list-cameras lists the cameras here)"
                );
            }
            videoio::VideoCapture::from_file(path, videoio::CAP_V4L2)
        }
    }
    .with_context(|| format!("opening {name}"))?;
    if !capture.is_opened().unwrap_or(false) {
        bail!(
            "opening {name}: it could not be opened (is it connected, free, and yours to read? \
             sender --list-cameras lists the cameras here)"
        );
    }
    // The order V4L2 needs: the pixel format, then the size it comes in, then the rate.
    let mut asked = Vec::new();
    if let Some(fourcc) = fourcc(mode) {
        let code = fourcc_code(fourcc)?;
        capture
            .set(videoio::CAP_PROP_FOURCC, f64::from(code))
            .with_context(|| format!("asking {name} for {fourcc}"))?;
        asked.push(fourcc.to_owned());
    }
    if let Some((width, height)) = mode.size {
        capture.set(videoio::CAP_PROP_FRAME_WIDTH, f64::from(width))?;
        capture.set(videoio::CAP_PROP_FRAME_HEIGHT, f64::from(height))?;
        asked.push(format!("{width}x{height}"));
    }
    if let Some(fps) = mode.fps.filter(|fps| *fps > 0.0) {
        capture.set(videoio::CAP_PROP_FPS, fps)?;
        asked.push(format!("{fps} fps"));
    }
    let fourcc = capture
        .get(videoio::CAP_PROP_FOURCC)
        .map(|code| fourcc_name(code as u32))
        .unwrap_or_default();
    // Without conversion, OpenCV hands over the camera's own JPEG (one row of bytes).
    if mode.keep_jpeg && matches!(fourcc.as_str(), "MJPG" | "JPEG") {
        capture
            .set(videoio::CAP_PROP_CONVERT_RGB, 0.0)
            .with_context(|| format!("asking {name} for its JPEG as it comes"))?;
    }
    let opened = OpenCvCapture::new(capture, name.clone(), false)?;
    let (width, height) = opened.size();
    let gave = format!(
        "{width}x{height} {fourcc} at {}",
        opened
            .native_fps()
            .map_or("the driver's rate".to_owned(), |fps| format!("{fps} fps"))
    );
    match mode.size {
        Some(size) if size != (width, height) => log::warn!(
            "{name} gave {gave}, not the {}x{} asked for (sender --list-cameras shows its modes)",
            size.0,
            size.1
        ),
        _ if asked.is_empty() => log::info!("{name}: {gave}"),
        _ => log::info!("{name}: {gave} (asked for {})", asked.join(", ")),
    }
    Ok(Box::new(opened))
}

fn fourcc_code(fourcc: &str) -> Result<i32> {
    let c: Vec<char> = fourcc.chars().collect();
    Ok(videoio::VideoWriter::fourcc(c[0], c[1], c[2], c[3])?)
}

fn fourcc_name(code: u32) -> String {
    let text: String = code
        .to_le_bytes()
        .iter()
        .map(|&b| if b.is_ascii_graphic() { b as char } else { '?' })
        .collect();
    text.trim_end_matches('?').to_owned()
}

/// One V4L2 capture device, as its driver describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct CameraInfo {
    pub path: PathBuf,
    /// The driver's name for it ("HD Pro Webcam C920"), the driver and the bus.
    pub card: String,
    pub driver: String,
    pub bus: String,
    /// Names that stay with the camera (`/dev/v4l/by-id/...`).
    pub stable_paths: Vec<PathBuf>,
    pub formats: Vec<FormatInfo>,
}

/// A pixel format and the sizes (each with its rates) it comes in.
#[derive(Debug, Clone, PartialEq)]
pub struct FormatInfo {
    pub fourcc: String,
    pub description: String,
    pub sizes: Vec<SizeInfo>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum SizeInfo {
    /// A size and the frame rates the driver lists for it.
    Discrete {
        width: u32,
        height: u32,
        fps: Vec<f64>,
    },
    /// Any size in a range (with steps).
    Range { min: (u32, u32), max: (u32, u32) },
}

/// Every V4L2 video capture device here, by number (metadata nodes, which UVC cameras also
/// make, are left out).
pub fn list() -> Vec<CameraInfo> {
    let stable = stable_paths();
    video_devices()
        .into_iter()
        .filter_map(|path| describe(&path, &stable))
        .collect()
}

/// The V4L2 memory-to-memory devices here (a board's hardware encoders and decoders).
pub fn memory_to_memory_devices() -> Vec<PathBuf> {
    use v4l::capability::Flags;
    let is_m2m = |path: &PathBuf| {
        let caps = v4l::Device::with_path(path).and_then(|device| device.query_caps());
        caps.is_ok_and(|caps| {
            caps.capabilities
                .intersects(Flags::VIDEO_M2M | Flags::VIDEO_M2M_MPLANE)
        })
    };
    video_devices().into_iter().filter(is_m2m).collect()
}

/// `/dev/video*`, by number.
fn video_devices() -> Vec<PathBuf> {
    let mut devices: Vec<(u32, PathBuf)> = std::fs::read_dir("/dev")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name();
            let number = name.to_str()?.strip_prefix("video")?.parse().ok()?;
            Some((number, entry.path()))
        })
        .collect();
    devices.sort();
    devices.into_iter().map(|(_, path)| path).collect()
}

/// `/dev/v4l/by-id` and `by-path` links, with the device each points to.
fn stable_paths() -> Vec<(PathBuf, PathBuf)> {
    ["/dev/v4l/by-id", "/dev/v4l/by-path"]
        .iter()
        .filter_map(|dir| std::fs::read_dir(dir).ok())
        .flatten()
        .flatten()
        .filter_map(|entry| Some((entry.path().canonicalize().ok()?, entry.path())))
        .collect()
}

fn describe(path: &Path, stable: &[(PathBuf, PathBuf)]) -> Option<CameraInfo> {
    use v4l::capability::Flags;
    use v4l::video::Capture as _;
    let device = v4l::Device::with_path(path).ok()?;
    let caps = device.query_caps().ok()?;
    if !caps.capabilities.contains(Flags::VIDEO_CAPTURE) {
        return None;
    }
    let formats = (device.enum_formats().unwrap_or_default().into_iter())
        .map(|format| FormatInfo {
            fourcc: format.fourcc.to_string().trim().to_owned(),
            sizes: sizes(&device, format.fourcc),
            description: format.description,
        })
        .collect();
    let canonical = path.canonicalize().ok()?;
    Some(CameraInfo {
        path: path.to_owned(),
        card: caps.card,
        driver: caps.driver,
        bus: caps.bus,
        stable_paths: (stable.iter())
            .filter(|(target, _)| *target == canonical)
            .map(|(_, link)| link.clone())
            .collect(),
        formats,
    })
}

/// The sizes `device` gives in `fourcc`, each with its rates.
fn sizes(device: &v4l::Device, fourcc: v4l::FourCC) -> Vec<SizeInfo> {
    use v4l::framesize::FrameSizeEnum;
    use v4l::video::Capture as _;
    (device
        .enum_framesizes(fourcc)
        .unwrap_or_default()
        .into_iter())
    .map(|size| match size.size {
        FrameSizeEnum::Discrete(d) => SizeInfo::Discrete {
            width: d.width,
            height: d.height,
            fps: rates(device, fourcc, d.width, d.height),
        },
        FrameSizeEnum::Stepwise(s) => SizeInfo::Range {
            min: (s.min_width, s.min_height),
            max: (s.max_width, s.max_height),
        },
    })
    .collect()
}

/// The frame rates `device` lists for a size (a range of intervals lists none).
fn rates(device: &v4l::Device, fourcc: v4l::FourCC, width: u32, height: u32) -> Vec<f64> {
    use v4l::frameinterval::FrameIntervalEnum;
    use v4l::video::Capture as _;
    (device
        .enum_frameintervals(fourcc, width, height)
        .unwrap_or_default()
        .into_iter())
    .filter_map(|interval| match interval.interval {
        FrameIntervalEnum::Discrete(f) if f.numerator > 0 => {
            Some(f64::from(f.denominator) / f64::from(f.numerator))
        }
        _ => None,
    })
    .collect()
}

/// What `sender --list-cameras` prints.
pub fn describe_all(cameras: &[CameraInfo]) -> String {
    if cameras.is_empty() {
        return "no cameras found (no V4L2 capture device in /dev)\n".to_owned();
    }
    let mut out = String::new();
    for camera in cameras {
        let _ = writeln!(
            out,
            "{}: {} ({}, {})",
            camera.path.display(),
            camera.card,
            camera.driver,
            camera.bus
        );
        for link in &camera.stable_paths {
            let _ = writeln!(out, "  also {}", link.display());
        }
        for format in &camera.formats {
            let sizes: Vec<String> = format.sizes.iter().map(describe_size).collect();
            let _ = writeln!(
                out,
                "  {} ({}): {}",
                format.fourcc,
                format.description,
                sizes.join("; ")
            );
        }
    }
    out
}

fn describe_size(size: &SizeInfo) -> String {
    match size {
        SizeInfo::Discrete { width, height, fps } if fps.is_empty() => format!("{width}x{height}"),
        SizeInfo::Discrete { width, height, fps } => {
            let rates: Vec<String> = fps.iter().map(|f| format!("{f}")).collect();
            format!("{width}x{height} at {} fps", rates.join("/"))
        }
        SizeInfo::Range { min, max } => {
            format!("{}x{} to {}x{}", min.0, min.1, max.0, max.1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_asks_for_mjpeg_above_640x480_only() {
        let asked = |size, camera_format| {
            fourcc(&SourceRequest {
                size,
                camera_format,
                ..Default::default()
            })
        };
        assert_eq!(asked(None, CameraFormat::Auto), None);
        assert_eq!(asked(Some((640, 480)), CameraFormat::Auto), None);
        assert_eq!(asked(Some((1280, 720)), CameraFormat::Auto), Some("MJPG"));
        assert_eq!(asked(Some((1920, 1080)), CameraFormat::Yuyv), Some("YUYV"));
        assert_eq!(asked(None, CameraFormat::Mjpeg), Some("MJPG"));
        assert_eq!(fourcc_name(fourcc_code("MJPG").unwrap() as u32), "MJPG");
    }

    #[test]
    fn a_camera_is_listed_with_its_modes() {
        let camera = CameraInfo {
            path: "/dev/video0".into(),
            card: "HD Pro Webcam C920".into(),
            driver: "uvcvideo".into(),
            bus: "usb-0000:00:14.0-1".into(),
            stable_paths: vec!["/dev/v4l/by-id/usb-046d_C920-video-index0".into()],
            formats: vec![
                FormatInfo {
                    fourcc: "MJPG".into(),
                    description: "Motion-JPEG".into(),
                    sizes: vec![
                        SizeInfo::Discrete {
                            width: 1920,
                            height: 1080,
                            fps: vec![30.0, 15.0],
                        },
                        SizeInfo::Discrete {
                            width: 640,
                            height: 480,
                            fps: vec![30.0],
                        },
                    ],
                },
                FormatInfo {
                    fourcc: "YUYV".into(),
                    description: "YUYV 4:2:2".into(),
                    sizes: vec![SizeInfo::Range {
                        min: (32, 32),
                        max: (2592, 1944),
                    }],
                },
            ],
        };
        assert_eq!(
            describe_all(&[camera]),
            "/dev/video0: HD Pro Webcam C920 (uvcvideo, usb-0000:00:14.0-1)\n\
             \x20 also /dev/v4l/by-id/usb-046d_C920-video-index0\n\
             \x20 MJPG (Motion-JPEG): 1920x1080 at 30/15 fps; 640x480 at 30 fps\n\
             \x20 YUYV (YUYV 4:2:2): 32x32 to 2592x1944\n"
        );
        assert!(describe_all(&[]).starts_with("no cameras found"));
    }
}
