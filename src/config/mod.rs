//! Typed option values and their parsers, shared by flags and prompts so both accept the same
//! text and reject it with the same one-line reason. Addresses, URLs and `--publish` targets
//! are `address.rs`.

mod address;

use crate::wire::protocol::Codec;
pub use address::{
    parse_bind, parse_ip, parse_listen, parse_port, Connect, Endpoint, PublishTarget, StreamUrl,
    URL_SCHEMES,
};
use std::fmt;
use std::str::FromStr;

/// Where frames come from, as the user names it in `--source`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceSpec {
    /// A camera: a V4L2 index or device.
    Camera(CameraId),
    /// The built-in moving pattern.
    TestPattern { width: u32, height: u32 },
    /// A GStreamer pipeline ending in `appsink` (`gst:...`, or any source with ` ! `).
    Pipeline(String),
    /// A file path or URL for OpenCV's VideoCapture.
    Location(String),
    /// Frames the program sends itself ([`crate::Sender::send`]): nothing to open.
    Program,
}

/// A camera as the user names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CameraId {
    /// `0`: `/dev/video0`.
    Index(i32),
    /// `/dev/video2`, `/dev/v4l/by-id/usb-...-video-index0`: stays the same camera when
    /// others are plugged in.
    Device(String),
}

impl fmt::Display for CameraId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CameraId::Index(index) => write!(f, "camera {index}"),
            CameraId::Device(path) => write!(f, "camera {path}"),
        }
    }
}

impl SourceSpec {
    /// Cameras, pipelines and network streams run by themselves and can be lost and come
    /// back; files and the test pattern are read when a frame is due.
    pub fn is_live(&self) -> bool {
        match self {
            SourceSpec::Camera(_) | SourceSpec::Pipeline(_) | SourceSpec::Program => true,
            SourceSpec::TestPattern { .. } => false,
            SourceSpec::Location(location) => location.contains("://"),
        }
    }
}

/// How a camera is asked to send its pictures (`--camera-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CameraFormat {
    /// MJPEG above 640x480, where USB webcams give full rate only compressed; else the
    /// driver's choice.
    #[default]
    Auto,
    Mjpeg,
    Yuyv,
}

impl FromStr for CameraFormat {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text.to_ascii_lowercase().as_str() {
            "auto" => Ok(CameraFormat::Auto),
            "mjpeg" | "mjpg" => Ok(CameraFormat::Mjpeg),
            "yuyv" | "yuy2" => Ok(CameraFormat::Yuyv),
            _ => Err(format!(
                "invalid camera format \"{text}\": use auto, mjpeg or yuyv"
            )),
        }
    }
}

/// `--size WIDTHxHEIGHT` (and `test:WIDTHxHEIGHT`): each side 1 to 4096.
pub fn parse_size(text: &str) -> Result<(u32, u32), String> {
    let invalid =
        || format!("invalid size \"{text}\": use WIDTHxHEIGHT, each 1-{MAX_SIDE}, like 1280x720");
    let (w, h) = text.split_once(['x', 'X']).ok_or_else(invalid)?;
    let side = |s: &str| s.parse::<u32>().ok().filter(|v| (1..=MAX_SIDE).contains(v));
    match (side(w), side(h)) {
        (Some(width), Some(height)) => Ok((width, height)),
        _ => Err(invalid()),
    }
}

/// Size of `--source test` when none is given.
pub const DEFAULT_PATTERN_SIZE: (u32, u32) = (640, 480);
/// Largest picture side (the test pattern, --size): a raw frame must fit in a message.
const MAX_SIDE: u32 = 4096;

impl FromStr for SourceSpec {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        if text.is_empty() {
            return Err("empty source: give a camera index, test, or a file path".into());
        }
        if let Ok(index) = text.parse::<i32>() {
            if index < 0 {
                return Err(format!(
                    "invalid camera index \"{text}\": must be 0 or more"
                ));
            }
            return Ok(SourceSpec::Camera(CameraId::Index(index)));
        }
        if text.starts_with("/dev/video") || text.starts_with("/dev/v4l/") {
            return Ok(SourceSpec::Camera(CameraId::Device(text.to_owned())));
        }
        if let Some(pipeline) = text.strip_prefix("gst:") {
            if pipeline.trim().is_empty() {
                return Err("empty GStreamer pipeline after gst:".into());
            }
            return Ok(SourceSpec::Pipeline(pipeline.trim().to_owned()));
        }
        if text.contains(" ! ") {
            return Ok(SourceSpec::Pipeline(text.trim().to_owned()));
        }
        if text == "test" {
            let (width, height) = DEFAULT_PATTERN_SIZE;
            return Ok(SourceSpec::TestPattern { width, height });
        }
        if let Some(size) = text.strip_prefix("test:") {
            let (width, height) =
                parse_size(size).map_err(|e| format!("test pattern: {e}, like test:1280x720"))?;
            return Ok(SourceSpec::TestPattern { width, height });
        }
        Ok(SourceSpec::Location(text.to_owned()))
    }
}

/// A window's place on the screen, `X,Y`: its top-left corner in pixels.
pub fn parse_position(text: &str) -> Result<(i32, i32), String> {
    let parsed = text
        .split_once(',')
        .and_then(|(x, y)| Some((x.trim().parse().ok()?, y.trim().parse().ok()?)));
    parsed.ok_or_else(|| format!("invalid position \"{text}\": expected X,Y in pixels, like 660,0"))
}

/// JPEG quality, 1-100.
pub fn parse_quality(text: &str) -> Result<u8, String> {
    match text.parse::<u8>() {
        Ok(q @ 1..=100) => Ok(q),
        _ => Err(format!("invalid quality \"{text}\": must be 1-100")),
    }
}

/// `raw`, `jpeg` or `h264`.
pub fn parse_codec(text: &str) -> Result<Codec, String> {
    match text.to_ascii_lowercase().as_str() {
        "raw" => Ok(Codec::Raw),
        "jpeg" | "jpg" => Ok(Codec::Jpeg),
        "h264" | "h.264" | "avc" => Ok(Codec::H264),
        _ => Err(format!("invalid codec \"{text}\": use raw, jpeg or h264")),
    }
}

/// Seconds between keyframes: 0.1 to 3600.
pub fn parse_keyframe_interval(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(seconds) if seconds.is_finite() && (0.1..=3600.0).contains(&seconds) => Ok(seconds),
        _ => Err(format!(
            "invalid keyframe interval \"{text}\": must be 0.1-3600 seconds"
        )),
    }
}

/// The bit rate of a codec with rate control.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bitrate {
    /// Fitted to what the viewers can take, from their acks.
    Auto,
    /// Kilobits per second.
    Fixed(u32),
}

/// `auto`, or kilobits per second: 50 to 100000.
pub fn parse_bitrate(text: &str) -> Result<Bitrate, String> {
    if text.eq_ignore_ascii_case("auto") {
        return Ok(Bitrate::Auto);
    }
    match text.parse::<u32>() {
        Ok(kbps @ 50..=100_000) => Ok(Bitrate::Fixed(kbps)),
        _ => Err(format!(
            "invalid bit rate \"{text}\": use auto or 50-100000 kbit/s"
        )),
    }
}

/// Frames per second; 0 means as fast as possible.
pub fn parse_fps(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(fps) if fps.is_finite() && (0.0..=1000.0).contains(&fps) => Ok(fps),
        _ => Err(format!(
            "invalid frame rate \"{text}\": must be 0-1000 (0 = as fast as possible)"
        )),
    }
}

/// A pairing code as typed: letters lower-cased, and the words joined by one hyphen whatever
/// separates them (codes are read out loud, "34 droll crow", and typed on phones: spaces,
/// underscores and hyphens are the same); never empty.
pub fn parse_code(text: &str) -> Result<String, String> {
    let lower = text.to_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| c.is_whitespace() || c == '-' || c == '_')
        .filter(|word| !word.is_empty())
        .collect();
    match words.is_empty() {
        true => Err("invalid pairing code: it is empty".to_owned()),
        false => Ok(words.join("-")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_urls() {
        let rtmp: PublishTarget = "rtmp://user:pw@media.local:1935/live/secret-key?x=1"
            .parse()
            .unwrap();
        assert_eq!(rtmp.container, "flv");
        assert_eq!(rtmp.redacted(), "rtmp://media.local:1935/live/…");
        let srt: PublishTarget = "srt://127.0.0.1:9000?streamid=k".parse().unwrap();
        assert_eq!(
            (srt.container, srt.redacted().as_str()),
            ("mpegts", "srt://127.0.0.1:9000")
        );
        assert_eq!(
            "rtsp://h/cam".parse::<PublishTarget>().unwrap().container,
            "rtsp"
        );
        assert!("http://h/x"
            .parse::<PublishTarget>()
            .unwrap_err()
            .contains("rtmp://"));
        assert!("rtmp:///x"
            .parse::<PublishTarget>()
            .unwrap_err()
            .contains("server is missing"));
    }

    #[test]
    fn codes() {
        for typed in [
            " 7-Crossover-Clockwork\n",
            "7 crossover clockwork",
            "7_CROSSOVER_clockwork",
            "  7 -- crossover\tclockwork ",
        ] {
            assert_eq!(
                parse_code(typed).unwrap(),
                "7-crossover-clockwork",
                "{typed:?}"
            );
        }
        assert!(parse_code("  ").unwrap_err().contains("empty"));
        assert!(parse_code(" - _ ").unwrap_err().contains("empty"));
    }

    #[test]
    fn sources() {
        assert_eq!("0".parse(), Ok(SourceSpec::Camera(CameraId::Index(0))));
        assert_eq!("2".parse(), Ok(SourceSpec::Camera(CameraId::Index(2))));
        assert_eq!(
            "/dev/video2".parse(),
            Ok(SourceSpec::Camera(CameraId::Device("/dev/video2".into())))
        );
        let by_id = "/dev/v4l/by-id/usb-046d_C920-video-index0";
        assert_eq!(
            by_id.parse(),
            Ok(SourceSpec::Camera(CameraId::Device(by_id.into())))
        );
        let pipeline = "videotestsrc ! videoconvert ! appsink";
        assert_eq!(
            format!("gst:{pipeline}").parse(),
            Ok(SourceSpec::Pipeline(pipeline.into()))
        );
        assert_eq!(pipeline.parse(), Ok(SourceSpec::Pipeline(pipeline.into())));
        assert!("gst: ".parse::<SourceSpec>().unwrap_err().contains("empty"));
        assert!(SourceSpec::Pipeline(pipeline.into()).is_live());
        assert_eq!(
            "test".parse(),
            Ok(SourceSpec::TestPattern {
                width: 640,
                height: 480
            })
        );
        assert_eq!(
            "test:1920x1080".parse(),
            Ok(SourceSpec::TestPattern {
                width: 1920,
                height: 1080
            })
        );
        assert_eq!(
            "clip.mkv".parse(),
            Ok(SourceSpec::Location("clip.mkv".into()))
        );
        assert!("test:0x10".parse::<SourceSpec>().is_err());
        assert!("test:big"
            .parse::<SourceSpec>()
            .unwrap_err()
            .contains("WIDTHxHEIGHT"));
        assert!("-1".parse::<SourceSpec>().is_err());
    }

    #[test]
    fn sizes_and_camera_formats() {
        assert_eq!(parse_size("1280x720"), Ok((1280, 720)));
        assert_eq!(parse_size("640X480"), Ok((640, 480)));
        for bad in ["1280", "0x720", "1280x", "x", "5000x10", "axb"] {
            assert!(
                parse_size(bad).unwrap_err().contains("WIDTHxHEIGHT"),
                "{bad}"
            );
        }
        assert_eq!("MJPEG".parse(), Ok(CameraFormat::Mjpeg));
        assert_eq!("yuyv".parse(), Ok(CameraFormat::Yuyv));
        assert_eq!("auto".parse(), Ok(CameraFormat::Auto));
        assert!("h264"
            .parse::<CameraFormat>()
            .unwrap_err()
            .contains("auto, mjpeg or yuyv"));
    }

    #[test]
    fn addresses() {
        assert_eq!(
            "127.0.0.1:9999".parse(),
            Ok(Endpoint {
                host: "127.0.0.1".into(),
                port: 9999
            })
        );
        assert_eq!(
            "[::1]:80".parse::<Endpoint>().unwrap().to_string(),
            "[::1]:80"
        );
        assert_eq!("localhost:9".parse::<Endpoint>().unwrap().host, "localhost");
        assert_eq!(
            "999.1.1.1:9999".parse::<Endpoint>().unwrap_err(),
            "invalid IP address \"999.1.1.1\": use four numbers 0-255, like 192.168.1.20"
        );
        assert_eq!(
            "1.2.3.4:70000".parse::<Endpoint>().unwrap_err(),
            "invalid port \"70000\": must be 1-65535"
        );
        assert!("1.2.3.4".parse::<Endpoint>().is_err());
        assert!("a b:1".parse::<Endpoint>().is_err());
        assert_eq!(parse_listen("0.0.0.0:0"), Ok("0.0.0.0:0".parse().unwrap()));
        assert!(parse_listen("localhost:9").is_err());
        assert_eq!(parse_bind("127.0.0.2"), Ok("127.0.0.2:0".parse().unwrap()));
        assert_eq!(
            parse_bind("127.0.0.2:5000"),
            Ok("127.0.0.2:5000".parse().unwrap())
        );
        assert_eq!(
            parse_port("abc").unwrap_err(),
            "invalid port \"abc\": must be 1-65535"
        );
        assert!(parse_port("0").is_err());
        assert!(parse_ip("abc").is_err());
    }

    #[test]
    fn connect_takes_an_address_or_a_url() {
        assert_eq!(
            "127.0.0.1:9999".parse(),
            Ok(Connect::Sender(Endpoint {
                host: "127.0.0.1".into(),
                port: 9999
            }))
        );
        let Ok(Connect::Url(url)) = "RTMP://media.lan/live/cam".parse() else {
            panic!("not a URL");
        };
        assert_eq!(url.scheme(), "rtmp");
        assert_eq!(url.as_str(), "RTMP://media.lan/live/cam");
        assert!(!url.is_hls());
        let secret: StreamUrl = "https://:7-crossover-clockwork@127.0.0.1:9999/stream.mjpg"
            .parse()
            .unwrap();
        assert_eq!(secret.to_string(), "https://127.0.0.1:9999/stream.mjpg");
        assert!(!format!("{secret:?}").contains("crossover"));
        assert!("http://[::1]:8080/live/cam.m3u8?token=1"
            .parse::<StreamUrl>()
            .unwrap()
            .is_hls());
        assert_eq!(
            "ftp://user:pw@host/x".parse::<Connect>().unwrap_err(),
            "unsupported URL \"ftp://host/x\": use rtmp://, rtsp://, srt://, http:// or https://"
        );
        assert_eq!(
            "rtsp:///cam".parse::<Connect>().unwrap_err(),
            "invalid URL \"rtsp:///cam\": the host is missing"
        );
        assert!("rtsp://user@:554/x".parse::<Connect>().is_err());
        assert!("rtsp://cam/a b".parse::<Connect>().is_err());
        assert!("1.2.3.4"
            .parse::<Connect>()
            .unwrap_err()
            .contains("or a URL"));
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_position("660,0"), Ok((660, 0)));
        assert_eq!(parse_position("-5, 20"), Ok((-5, 20)));
        assert!(parse_position("660").is_err());
        assert!(parse_position("a,b").is_err());
        assert_eq!(parse_quality("80"), Ok(80));
        assert!(parse_quality("0").is_err());
        assert!(parse_quality("101").is_err());
        assert_eq!(parse_codec("RAW"), Ok(Codec::Raw));
        assert_eq!(parse_codec("H264"), Ok(Codec::H264));
        assert!(parse_codec("vp9").is_err());
        assert!(parse_keyframe_interval("0").is_err());
        assert_eq!(parse_bitrate("2500"), Ok(Bitrate::Fixed(2500)));
        assert_eq!(parse_bitrate("Auto"), Ok(Bitrate::Auto));
        assert!(parse_bitrate("10").is_err());
        assert_eq!(parse_fps("0"), Ok(0.0));
        assert_eq!(parse_fps("29.97"), Ok(29.97));
        assert!(parse_fps("-1").is_err());
        assert!(parse_fps("nan").is_err());
    }
}
