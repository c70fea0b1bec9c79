//! Files that hold the frames as they arrived, not re-encoded: FFmpeg's libavformat muxes each
//! frame into the container the file's extension names (`.mp4`, `.mkv`, `.avi`), timed by its
//! capture time. The file starts at a keyframe, whose parameter sets become the container's
//! codec header. An `.mp4` is fragmented at each keyframe, so a recording cut short (a crash, a
//! pulled plug) still plays up to its last fragment.

use super::codec::Stored;
use crate::wire::protocol::FrameHeader;
use anyhow::{anyhow, Context, Result};
use ffmpeg::{codec, ffi, format, media, Dictionary, Packet, Rational};
use ffmpeg_next as ffmpeg;
use std::path::{Path, PathBuf};

/// Capture times are in microseconds.
const MICROSECONDS: Rational = Rational(1, 1_000_000);

/// A file being written with encoded frames as they are.
pub struct Remuxer {
    path: PathBuf,
    output: format::context::Output,
    stored: Stored,
    size: (u32, u32),
    fps: f64,
    /// Set once the first keyframe has started the file.
    timing: Option<Timing>,
    frames: u64,
}

struct Timing {
    /// The container's, chosen by its muxer.
    time_base: Rational,
    first_capture_us: u64,
    last_timestamp: i64,
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
            path: path.to_owned(),
            output,
            stored,
            size,
            fps,
            timing: None,
            frames: 0,
        })
    }

    pub fn size(&self) -> (u32, u32) {
        self.size
    }

    /// Adds one frame; frames before the first keyframe are left out (nothing could decode them).
    pub fn write(&mut self, header: &FrameHeader, data: &[u8]) -> Result<()> {
        if self.timing.is_none() {
            if !header.keyframe {
                return Ok(());
            }
            let timing = self
                .start(header, data)
                .with_context(|| format!("recording to {}", self.path.display()))?;
            self.timing = Some(timing);
        }
        let Some(timing) = self.timing.as_mut() else {
            return Ok(());
        };
        // Capture times in the container's time base, strictly increasing: a sender that
        // restarted, or a clock that stepped back, must not reorder the file.
        let since_first = header
            .capture_unix_us
            .saturating_sub(timing.first_capture_us);
        let timestamp = rescale(since_first, timing.time_base).max(timing.last_timestamp + 1);
        timing.last_timestamp = timestamp;
        let mut packet = Packet::copy(data);
        packet.set_pts(Some(timestamp));
        packet.set_dts(Some(timestamp));
        packet.set_stream(0);
        if header.keyframe {
            packet.set_flags(codec::packet::Flags::KEY);
        }
        packet
            .write(&mut self.output)
            .with_context(|| format!("recording to {}", self.path.display()))?;
        self.frames += 1;
        Ok(())
    }

    /// Describes the stream to the container, from its first keyframe, and writes its header.
    fn start(&mut self, header: &FrameHeader, keyframe: &[u8]) -> Result<Timing> {
        let mut parameters = codec::Parameters::new();
        parameters.set_medium(media::Type::Video);
        parameters.set_id(self.stored.codec);
        let extradata = (self.stored.global_header)(keyframe);
        // SAFETY: the parameters are ours; FFmpeg frees `extradata` with them, so FFmpeg
        // allocates it, with the zeroed padding its parsers may read past the end.
        unsafe {
            let raw = parameters.as_mut_ptr();
            (*raw).width = header.width as i32;
            (*raw).height = header.height as i32;
            let buffer =
                ffi::av_mallocz(extradata.len() + ffi::AV_INPUT_BUFFER_PADDING_SIZE as usize);
            if buffer.is_null() {
                return Err(anyhow!("out of memory for the codec header"));
            }
            std::ptr::copy_nonoverlapping(extradata.as_ptr(), buffer.cast(), extradata.len());
            (*raw).extradata = buffer.cast();
            (*raw).extradata_size = extradata.len() as i32;
        }
        {
            let mut stream = self
                .output
                .add_stream(ffmpeg::encoder::find(codec::Id::None))?;
            stream.set_parameters(parameters);
            stream.set_time_base(MICROSECONDS);
            if self.fps > 0.0 {
                stream.set_rate(Rational::from(self.fps));
                stream.set_avg_frame_rate(Rational::from(self.fps));
            }
        }
        let mut options = Dictionary::new();
        options.set("movflags", "+frag_keyframe+empty_moov+default_base_moof");
        self.output.write_header_with(options)?;
        let time_base = self
            .output
            .stream(0)
            .map(|stream| stream.time_base())
            .unwrap_or(MICROSECONDS);
        Ok(Timing {
            time_base,
            first_capture_us: header.capture_unix_us,
            // So the first frame, at 0, is after it.
            last_timestamp: -1,
        })
    }

    /// Writes the container's index and trailer; returns the frames recorded.
    pub fn finish(mut self) -> Result<u64> {
        if self.timing.is_some() {
            self.output
                .write_trailer()
                .with_context(|| format!("finishing {}", self.path.display()))?;
        }
        Ok(self.frames)
    }
}

/// Microseconds in `time_base` units, rounded to the nearest.
fn rescale(microseconds: u64, time_base: Rational) -> i64 {
    let microseconds = i64::try_from(microseconds).unwrap_or(i64::MAX);
    // SAFETY: arithmetic only.
    unsafe { ffi::av_rescale_q(microseconds, MICROSECONDS.into(), time_base.into()) }
}
