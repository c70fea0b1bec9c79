//! Streams that media servers and IP cameras serve (`rtmp://`, `rtsp://`, `srt://`, and
//! `http(s)://` MJPEG or HLS), demuxed by FFmpeg's libavformat and decoded by its libavcodec,
//! as a [`Capture`]: [`super::live`] reads it on its own thread, keeps the newest picture, and
//! reopens it when it is lost, exactly as it does a camera.
//!
//! FFmpeg directly rather than OpenCV's `VideoCapture` (which wraps the same libraries): the
//! options go with each open instead of through a process-wide environment variable, and the
//! decoder runs on one thread with low delay, where OpenCV's frame threads hold a picture back
//! per thread.
//!
//! These streams carry no capture time the receiver could trust (an RTMP or RTSP timestamp
//! counts from the stream's start, not on a clock we share), so their latency is not measured.

use super::capture::Capture;
use super::convert::ToBgr;
use super::{init_ffmpeg, low_delay_decoder};
use crate::config::StreamUrl;
use anyhow::{anyhow, bail, Context, Result};
use ffmpeg::{codec, decoder, format, frame, media, Dictionary, Packet};
use ffmpeg_next as ffmpeg;
use std::time::Duration;

/// A server that sends nothing for this long, while opening or reading, is taken to be gone:
/// FFmpeg's reads give up, so a reader never hangs for longer.
const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// How much of the stream FFmpeg may read to learn what it holds before the first picture.
/// Live servers send the codec header first (RTMP's sequence header, RTSP's SDP, a transport
/// stream's tables), and the decoder learns the rest from the pictures, so a short look will
/// do: measured against nginx-rtmp, the first picture came 2.7 s after opening at 1 s, 1.2 s at
/// 0.3 s and 0.5 s at 0.1 s (FFmpeg's default, 5 s, makes it 6 s).
const ANALYZE: Duration = Duration::from_millis(100);
/// HLS arrives a segment at a time, seconds apart, so a pause between pictures is no loss
/// until it is longer than a segment or two.
const HLS_SILENCE: Duration = Duration::from_secs(12);
/// Packets in a row that do not decode before the stream is given up (and reopened).
const MAX_BAD_PACKETS: u32 = 300;

/// A stream's pictures, decoded.
pub struct UrlCapture {
    name: String,
    input: format::context::Input,
    /// The video stream's index in `input`.
    video: usize,
    decoder: decoder::Video,
    decoded: frame::Video,
    to_bgr: ToBgr,
    size: (u32, u32),
    fps: Option<f64>,
    silence: Duration,
    /// The picture decoded while opening (to learn the size), handed out by the first read.
    first: Option<Vec<u8>>,
}

impl UrlCapture {
    /// Connects to `url` and decodes its first picture. Fails within about 5 s (`IO_TIMEOUT`) when
    /// the server is not there or sends nothing.
    pub fn open(url: &StreamUrl) -> Result<Box<dyn Capture>> {
        let name = format!("stream {url}");
        init_ffmpeg()?;
        let input = format::input_with_dictionary(url.as_str(), options(url))
            .with_context(|| format!("opening {name}"))?;
        let stream = input
            .streams()
            .best(media::Type::Video)
            .ok_or_else(|| anyhow!("opening {name}: it carries no video"))?;
        let video = stream.index();
        let fps = Some(f64::from(stream.avg_frame_rate()))
            .filter(|fps| fps.is_finite() && *fps > 0.0 && *fps < 1000.0);
        let context = codec::context::Context::from_parameters(stream.parameters())
            .with_context(|| format!("opening {name}: reading its codec parameters"))?;
        let decoder = low_delay_decoder(context)
            .with_context(|| format!("opening {name}: no decoder for its video"))?;
        let mut capture = UrlCapture {
            name,
            input,
            video,
            decoder,
            decoded: frame::Video::empty(),
            to_bgr: ToBgr::default(),
            size: (0, 0),
            fps,
            silence: match url.is_hls() {
                true => HLS_SILENCE,
                false => super::capture::SIGNAL_TIMEOUT,
            },
            first: None,
        };
        let mut first = Vec::new();
        if !capture.decode_next(&mut first)? {
            bail!(
                "reading from {}: it ended before its first picture",
                capture.name
            );
        }
        capture.first = Some(first);
        Ok(Box::new(capture))
    }

    /// Reads packets until the decoder has a picture, and converts it into `out`. Returns
    /// false when the stream ends.
    fn decode_next(&mut self, out: &mut Vec<u8>) -> Result<bool> {
        let mut bad_packets = 0;
        loop {
            match self.decoder.receive_frame(&mut self.decoded) {
                Ok(()) => {
                    let picture = self.to_bgr.convert(&self.decoded)?;
                    let size = (picture.width, picture.height);
                    if self.size == (0, 0) {
                        self.size = size;
                    } else if size != self.size {
                        bail!(
                            "{} changed size from {}x{} to {}x{}",
                            self.name,
                            self.size.0,
                            self.size.1,
                            size.0,
                            size.1
                        );
                    }
                    out.clear();
                    out.extend_from_slice(picture.bgr);
                    return Ok(true);
                }
                Err(ffmpeg::Error::Other { errno }) if errno == ffmpeg::util::error::EAGAIN => {}
                Err(ffmpeg::Error::Eof) => return Ok(false),
                Err(e) => return Err(anyhow!(e).context(format!("decoding {}", self.name))),
            }
            let mut packet = Packet::empty();
            match packet.read(&mut self.input) {
                Ok(()) if packet.stream() != self.video => {}
                // A packet that does not decode (a stream joined between keyframes) is skipped:
                // the decoder starts showing at the next keyframe.
                Ok(()) => match self.decoder.send_packet(&packet) {
                    Ok(()) => bad_packets = 0,
                    Err(e) => {
                        bad_packets += 1;
                        if bad_packets >= MAX_BAD_PACKETS {
                            return Err(anyhow!(e).context(format!(
                                "decoding {}: {bad_packets} packets in a row did not decode",
                                self.name
                            )));
                        }
                    }
                },
                Err(ffmpeg::Error::Eof) => return Ok(false),
                Err(e) => return Err(anyhow!(e).context(format!("reading {}", self.name))),
            }
        }
    }
}

/// FFmpeg's options for opening `url`: start with the newest data and buffer none, give up on
/// a silent server within [`IO_TIMEOUT`], and learn the stream quickly.
fn options(url: &StreamUrl) -> Dictionary<'static> {
    let micros = |d: Duration| d.as_micros().to_string();
    let mut options = Dictionary::new();
    options.set("fflags", "nobuffer");
    options.set("analyzeduration", &micros(ANALYZE));
    // Any protocol: a read that gets nothing for this long fails.
    options.set("rw_timeout", &micros(IO_TIMEOUT));
    match url.scheme() {
        // Interleaved in the RTSP connection: no UDP ports to open, nothing lost on the way.
        "rtsp" => {
            options.set("rtsp_transport", "tcp");
            options.set("timeout", &micros(IO_TIMEOUT));
        }
        // The socket's own timeout. (Not for rtmp://, where `timeout` means listening.)
        "http" | "https" | "srt" => options.set("timeout", &micros(IO_TIMEOUT)),
        _ => {}
    }
    if url.is_hls() {
        // The newest segment, not three back as a player that wants no stalls starts.
        options.set("live_start_index", "-1");
    }
    options
}

impl Capture for UrlCapture {
    fn name(&self) -> &str {
        &self.name
    }

    fn size(&self) -> (u32, u32) {
        self.size
    }

    fn native_fps(&self) -> Option<f64> {
        self.fps
    }

    fn silence_limit(&self) -> Duration {
        self.silence
    }

    fn read_into(&mut self, out: &mut Vec<u8>) -> Result<bool> {
        if let Some(first) = self.first.take() {
            *out = first;
            return Ok(true);
        }
        self.decode_next(out)
    }
}
