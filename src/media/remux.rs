//! Files that hold the frames as they arrived, not re-encoded: FFmpeg's libavformat muxes each
//! frame into the container the file's extension names (`.mp4`, `.mkv`, `.avi`), timed by its
//! capture time. The file starts at a keyframe, whose parameter sets become the container's
//! codec header. An `.mp4` is fragmented at each keyframe, so a recording cut short (a crash, a
//! pulled plug) still plays up to its last fragment.
//!
//! A media server (`--publish`) is written the same way: FLV over RTMP, RTSP, MPEG-TS over SRT,
//! sent a frame at a time as it comes.

use super::codec::Stored;
use crate::config::PublishTarget;
use crate::wire::protocol::FrameHeader;
use anyhow::{anyhow, Context, Result};
use ffmpeg::{codec, ffi, format, media, Dictionary, Packet, Rational};
use ffmpeg_next as ffmpeg;
use std::path::Path;

/// Capture times are in microseconds.
const MICROSECONDS: Rational = Rational(1, 1_000_000);

/// How long a server may take a write before it counts as gone (µs, FFmpeg's `rw_timeout`).
const SERVER_TIMEOUT_US: &str = "5000000";

/// A file, or a server, being written with encoded frames as they are.
pub struct Remuxer {
    /// "recording to PATH", "publishing to URL": what its errors say.
    what: String,
    output: format::context::Output,
    /// Options for the container's header.
    header_options: Vec<(&'static str, &'static str)>,
    track: Track,
    /// Set once the first keyframe has started the file.
    timing: Option<Timing>,
    frames: u64,
}

/// The one video stream a muxer holds: what [`Remuxer`] and [`super::fmp4`] tell libavformat.
#[derive(Clone, Copy)]
pub(super) struct Track {
    pub stored: Stored,
    pub size: (u32, u32),
    /// Frames per second (0: unpaced, no rate to declare).
    pub fps: f64,
}

/// Capture times as the container's timestamps.
pub(super) struct Timing {
    /// The container's, chosen by its muxer.
    pub time_base: Rational,
    pub first_capture_us: u64,
    /// The container numbers frames rather than timing them (AVI).
    numbered: bool,
    last_timestamp: i64,
}

/// Whether `output` numbers its frames at a fixed rate rather than timing each (AVI).
fn numbers_frames(output: &format::context::Output) -> bool {
    output.format().name() == "avi"
}

impl Remuxer {
    /// Creates the file; what it holds starts at the first keyframe.
    pub fn create(path: &Path, stored: Stored, size: (u32, u32), fps: f64) -> Result<Remuxer> {
        super::init_ffmpeg()?;
        let output = format::output(path).with_context(|| {
            format!(
                "recording to {}: FFmpeg could not create it (does its folder exist?)",
                path.display()
            )
        })?;
        Ok(Remuxer {
            what: format!("recording to {}", path.display()),
            output,
            header_options: vec![("movflags", "+frag_keyframe+empty_moov+default_base_moof")],
            track: Track { stored, size, fps },
            timing: None,
            frames: 0,
        })
    }

    /// Connects to a media server; what it is sent starts at the first keyframe.
    pub fn publish(
        target: &PublishTarget,
        stored: Stored,
        size: (u32, u32),
        fps: f64,
    ) -> Result<Remuxer> {
        super::init_ffmpeg()?;
        let what = format!("publishing to {}", target.redacted());
        let mut options = Dictionary::new();
        options.set("rw_timeout", SERVER_TIMEOUT_US);
        if target.container == "mpegts" {
            // SRT carries whole TS packets: seven to a datagram.
            options.set("pkt_size", "1316");
        }
        let output = open_url(&target.url, target.container, options).context(what.clone())?;
        Ok(Remuxer {
            what,
            output,
            header_options: vec![("rtsp_transport", "tcp")],
            track: Track { stored, size, fps },
            timing: None,
            frames: 0,
        })
    }

    pub fn size(&self) -> (u32, u32) {
        self.track.size
    }

    /// Adds one frame; frames before the first keyframe are left out (nothing could decode them).
    pub fn write(&mut self, header: &FrameHeader, data: &[u8]) -> Result<()> {
        if self.timing.is_none() {
            if !header.keyframe {
                return Ok(());
            }
            let timing = self
                .start(header, data)
                .with_context(|| self.what.clone())?;
            self.timing = Some(timing);
        }
        let Some(timing) = self.timing.as_mut() else {
            return Ok(());
        };
        packet(header, data, timing.next(header.capture_unix_us))
            .write(&mut self.output)
            .with_context(|| self.what.clone())?;
        self.frames += 1;
        Ok(())
    }

    /// Describes the stream to the container, from its first keyframe, and writes its header.
    fn start(&mut self, header: &FrameHeader, keyframe: &[u8]) -> Result<Timing> {
        self.track.add_to(&mut self.output, keyframe)?;
        let mut options = Dictionary::new();
        for (key, value) in &self.header_options {
            options.set(key, value);
        }
        self.output.write_header_with(options)?;
        Ok(Timing::new(&self.output, header.capture_unix_us))
    }

    /// Writes the container's index and trailer; returns the frames recorded.
    pub fn finish(mut self) -> Result<u64> {
        if self.timing.is_some() {
            self.output
                .write_trailer()
                .with_context(|| format!("finishing {}", self.what))?;
        }
        Ok(self.frames)
    }
}

/// Opens `url` for the `container` muxer. Unlike ffmpeg-next's `output_as_with`, a muxer that
/// makes its own connections (RTSP's) is not opened as a file first.
fn open_url(url: &str, container: &str, options: Dictionary) -> Result<format::context::Output> {
    let url = std::ffi::CString::new(url).context("a URL with a zero byte")?;
    let container = std::ffi::CString::new(container).context("a container with a zero byte")?;
    // SAFETY: FFmpeg's documented way to open an output: allocate the context for the muxer,
    // then, unless the muxer opens its own connections (AVFMT_NOFILE), open its I/O. The
    // context is handed to `Output`, which frees it (and closes its I/O) when dropped.
    unsafe {
        let mut context = std::ptr::null_mut();
        let allocated = ffi::avformat_alloc_output_context2(
            &mut context,
            std::ptr::null_mut(),
            container.as_ptr(),
            url.as_ptr(),
        );
        if allocated < 0 || context.is_null() {
            return Err(anyhow!(ffmpeg::Error::from(allocated)));
        }
        let output = format::context::Output::wrap(context);
        if (*(*context).oformat).flags & ffi::AVFMT_NOFILE == 0 {
            let mut options = options.disown();
            let opened = ffi::avio_open2(
                &mut (*context).pb,
                url.as_ptr(),
                ffi::AVIO_FLAG_WRITE,
                std::ptr::null(),
                &mut options,
            );
            ffi::av_dict_free(&mut options);
            if opened < 0 {
                return Err(anyhow!(ffmpeg::Error::from(opened)));
            }
        }
        Ok(output)
    }
}

impl Track {
    /// Adds the stream to `output`, its codec header taken from `keyframe`; the header is not
    /// written yet.
    pub fn add_to(&self, output: &mut format::context::Output, keyframe: &[u8]) -> Result<()> {
        let mut parameters = codec::Parameters::new();
        parameters.set_medium(media::Type::Video);
        parameters.set_id(self.stored.codec);
        let extradata = (self.stored.global_header)(keyframe);
        // SAFETY: the parameters are ours; FFmpeg frees `extradata` with them, so FFmpeg
        // allocates it, with the zeroed padding its parsers may read past the end.
        unsafe {
            let raw = parameters.as_mut_ptr();
            (*raw).width = self.size.0 as i32;
            (*raw).height = self.size.1 as i32;
            let buffer =
                ffi::av_mallocz(extradata.len() + ffi::AV_INPUT_BUFFER_PADDING_SIZE as usize);
            if buffer.is_null() {
                return Err(anyhow!("out of memory for the codec header"));
            }
            std::ptr::copy_nonoverlapping(extradata.as_ptr(), buffer.cast(), extradata.len());
            (*raw).extradata = buffer.cast();
            (*raw).extradata_size = extradata.len() as i32;
        }
        // AVI holds a frame rate, not times: its frames are numbered at the stream's rate (30
        // for an unpaced one), or the gaps between capture times would be filled with empty
        // frames.
        let time_base = match (numbers_frames(output), self.fps) {
            (true, fps) if fps > 0.0 => Rational(1, fps.round().clamp(1.0, 1000.0) as i32),
            (true, _) => Rational(1, 30),
            (false, _) => MICROSECONDS,
        };
        let mut stream = output
            .add_stream(ffmpeg::encoder::find(codec::Id::None))
            .context("adding the video stream")?;
        stream.set_parameters(parameters);
        stream.set_time_base(time_base);
        if self.fps > 0.0 {
            stream.set_rate(Rational::from(self.fps));
            stream.set_avg_frame_rate(Rational::from(self.fps));
        }
        Ok(())
    }
}

impl Timing {
    /// Times frames from `first_capture_us` on, in the time base the muxer chose for stream 0
    /// when it wrote its header.
    pub fn new(output: &format::context::Output, first_capture_us: u64) -> Timing {
        let time_base = output
            .stream(0)
            .map(|stream| stream.time_base())
            .unwrap_or(MICROSECONDS);
        Timing {
            time_base,
            first_capture_us,
            numbered: numbers_frames(output),
            // So the first frame, at 0, is after it.
            last_timestamp: -1,
        }
    }

    /// A frame's timestamp: its capture time in the container's time base, strictly increasing
    /// (a sender that restarted, or a clock that stepped back, must not reorder the frames).
    pub fn next(&mut self, capture_unix_us: u64) -> i64 {
        let since_first = capture_unix_us.saturating_sub(self.first_capture_us);
        let timestamp = match self.numbered {
            true => self.last_timestamp + 1,
            false => rescale(since_first, self.time_base).max(self.last_timestamp + 1),
        };
        self.last_timestamp = timestamp;
        timestamp
    }
}

/// A frame as a packet of stream 0 at `timestamp`.
pub(super) fn packet(header: &FrameHeader, data: &[u8], timestamp: i64) -> Packet {
    let mut packet = Packet::copy(data);
    packet.set_pts(Some(timestamp));
    packet.set_dts(Some(timestamp));
    packet.set_stream(0);
    if header.keyframe {
        packet.set_flags(codec::packet::Flags::KEY);
    }
    packet
}

/// Microseconds in `time_base` units, rounded to the nearest.
pub(super) fn rescale(microseconds: u64, time_base: Rational) -> i64 {
    let microseconds = i64::try_from(microseconds).unwrap_or(i64::MAX);
    // SAFETY: arithmetic only.
    unsafe { ffi::av_rescale_q(microseconds, MICROSECONDS.into(), time_base.into()) }
}
