//! Fragmented MP4 for a browser's Media Source Extensions: frames in, bytes out, no I/O. The
//! first keyframe starts it: its parameter sets become the init segment's codec header (`ftyp`
//! and a `moov` with no samples), and from then on every frame is one fragment (`moof`+`mdat`)
//! of its own, out as soon as the frame is in. Media time 0 is the first frame's capture time,
//! and every frame is timed by its capture time, as [`super::remux`] times a recording.
//!
//! FFmpeg's mov muxer writes it into memory: `frag_custom` leaves cutting fragments to us, and
//! we cut after every frame by flushing the muxer (`frag_every_frame` would give each fragment
//! only when the next frame arrives, a frame late). A fragment's frame lasts one frame interval
//! (its successor's time is not known yet), and each fragment starts at its frame's own time,
//! so a late or early frame leaves a small gap or overlap rather than moving every later frame.

use super::codec::Stored;
use super::remux::{packet, rescale, Timing, Track};
use crate::lock;
use crate::wire::protocol::FrameHeader;
use anyhow::{anyhow, bail, Context, Result};
use ffmpeg::{ffi, format, Dictionary};
use ffmpeg_next as ffmpeg;
use std::io::Write;
use std::sync::{Arc, Mutex};

/// Turns one stream's frames into an init segment and a fragment per frame.
pub struct Fragmenter {
    track: Track,
    /// Set once the first keyframe has started it.
    muxer: Option<Muxer>,
    /// The newest fragment; its allocation is reused.
    fragment: Vec<u8>,
}

struct Muxer {
    output: format::context::Output,
    /// What the muxer has written since it was last taken.
    written: Arc<Mutex<Vec<u8>>>,
    init: Vec<u8>,
    mime: String,
    timing: Timing,
    /// A frame's duration in the container's time base, as the frame rate says.
    interval: i64,
    frames: i64,
}

/// The muxer's output: bytes collected in memory, taken after each step (FFmpeg's custom I/O
/// owns its writer, so the buffer is shared with it).
struct Collect(Arc<Mutex<Vec<u8>>>);

impl Write for Collect {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        lock(&self.0).extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Fragmenter {
    /// A fragmenter for frames of `size` at `fps` (0: unpaced); it starts at the first keyframe.
    pub fn new(stored: Stored, size: (u32, u32), fps: f64) -> Result<Fragmenter> {
        super::init_ffmpeg()?;
        Ok(Fragmenter {
            track: Track { stored, size, fps },
            muxer: None,
            fragment: Vec::new(),
        })
    }

    /// Adds one frame and returns its fragment, which stays valid until the next push. Frames
    /// before the first keyframe give none (nothing could decode them).
    pub fn push(&mut self, header: &FrameHeader, data: &[u8]) -> Result<Option<&[u8]>> {
        if self.muxer.is_none() {
            if !header.keyframe {
                return Ok(None);
            }
            let muxer = Muxer::start(self.track, header, data)
                .context("starting the fragmented mp4 stream")?;
            self.muxer = Some(muxer);
        }
        let Some(muxer) = self.muxer.as_mut() else {
            return Ok(None);
        };
        muxer
            .fragment(header, data, &mut self.fragment)
            .with_context(|| format!("fragmenting frame {}", header.seq))?;
        Ok(Some(&self.fragment))
    }

    /// `ftyp` and `moov`: what a `SourceBuffer` must be given before any fragment.
    pub fn init_segment(&self) -> Option<&[u8]> {
        self.muxer.as_ref().map(|muxer| &muxer.init[..])
    }

    /// The capture time, microseconds since the Unix epoch, that media time 0 stands for.
    pub fn origin_us(&self) -> Option<u64> {
        self.muxer
            .as_ref()
            .map(|muxer| muxer.timing.first_capture_us)
    }

    /// The MIME type to ask `MediaSource.isTypeSupported` about, e.g.
    /// `video/mp4; codecs="avc1.64001f"`.
    pub fn mime(&self) -> Option<&str> {
        self.muxer.as_ref().map(|muxer| &muxer.mime[..])
    }
}

impl Muxer {
    /// Describes the stream from its first keyframe and writes the init segment.
    fn start(track: Track, header: &FrameHeader, keyframe: &[u8]) -> Result<Muxer> {
        let codecs = (track.stored.mp4_codecs)
            .and_then(|codecs| codecs(keyframe))
            .ok_or_else(|| anyhow!("keyframe {} names no codec profile", header.seq))?;
        let written = Arc::new(Mutex::new(Vec::new()));
        let io = format::context::StreamIo::from_write(Collect(Arc::clone(&written)))
            .context("setting up the muxer's output")?;
        let mut output = format::output_to_stream(io, None, Some("mp4"))
            .context("opening FFmpeg's mp4 muxer")?;
        track.add_to(&mut output, keyframe)?;
        let mut options = Dictionary::new();
        // A `moov` with no samples, fragments only when we cut them, each fragment's offsets
        // counted from its own `moof` (what MSE wants), and no index at the end of a stream
        // that never ends.
        options.set(
            "movflags",
            "+frag_custom+empty_moov+default_base_moof+skip_trailer",
        );
        output
            .write_header_with(options)
            .context("writing the init segment")?;
        let mut init = Vec::new();
        flush(&mut output, &written, &mut init)?;
        if init.is_empty() {
            bail!("FFmpeg's mp4 muxer wrote no init segment");
        }
        let timing = Timing::new(&output, header.capture_unix_us);
        let fps = match track.fps {
            fps if fps > 0.0 => fps,
            // An unpaced stream's frames come as fast as they are made; a guess is all a
            // duration can be until the next frame says.
            _ => 30.0,
        };
        let interval = rescale((1e6 / fps).round() as u64, timing.time_base).max(1);
        Ok(Muxer {
            output,
            written,
            init,
            mime: format!("video/mp4; codecs=\"{codecs}\""),
            timing,
            interval,
            frames: 0,
        })
    }

    /// Writes one frame as a fragment of its own into `out`.
    fn fragment(&mut self, header: &FrameHeader, data: &[u8], out: &mut Vec<u8>) -> Result<()> {
        let time = self.timing.next(header.capture_unix_us);
        // The muxer starts each fragment where the one before it ended, by that one's duration:
        // a guess (the next frame's time is not known yet) whose errors would add up. So it is
        // given frames exactly an interval apart, which it takes without complaint, and the
        // fragment's start is then set to the frame's own time.
        let mut packet = packet(header, data, self.frames * self.interval);
        packet.set_duration(self.interval);
        packet.write(&mut self.output)?;
        self.frames += 1;
        // SAFETY: the context is ours and open; a null packet asks a muxer that buffers
        // (mov's fragments) to write out what it holds.
        let flushed =
            unsafe { ffi::av_write_frame(self.output.as_mut_ptr(), std::ptr::null_mut()) };
        if flushed < 0 {
            return Err(anyhow!(ffmpeg::Error::from(flushed)).context("cutting the fragment"));
        }
        flush(&mut self.output, &self.written, out)?;
        set_decode_time(out, time)
    }
}

/// Sets a one-track fragment's start (`moof`/`traf`/`tfdt`'s base media decode time).
fn set_decode_time(fragment: &mut [u8], time: i64) -> Result<()> {
    let tfdt = [b"moof", b"traf", b"tfdt"]
        .iter()
        .try_fold(fragment, |within, name| find_box(within, name))
        .ok_or_else(|| anyhow!("the muxer wrote a fragment with no decode time"))?;
    let time = u64::try_from(time).context("a negative decode time")?;
    match tfdt {
        [1, _, _, _, base @ ..] if base.len() >= 8 => {
            base[..8].copy_from_slice(&time.to_be_bytes());
        }
        [0, _, _, _, base @ ..] if base.len() >= 4 => {
            let time = u32::try_from(time).context("a decode time beyond 32 bits")?;
            base[..4].copy_from_slice(&time.to_be_bytes());
        }
        _ => bail!("the muxer wrote a decode time box we do not know"),
    }
    Ok(())
}

/// The body of the first box of type `name` in a sequence of boxes.
fn find_box<'a>(mut boxes: &'a mut [u8], name: &[u8; 4]) -> Option<&'a mut [u8]> {
    while boxes.len() >= 8 {
        let size = u32::from_be_bytes([boxes[0], boxes[1], boxes[2], boxes[3]]) as usize;
        if size < 8 || size > boxes.len() {
            return None;
        }
        let (this, rest) = boxes.split_at_mut(size);
        if &this[4..8] == name {
            return Some(&mut this[8..]);
        }
        boxes = rest;
    }
    None
}

/// Pushes what the muxer's I/O buffer holds to our output and takes it into `out` (replacing
/// what was there; the two buffers swap, so neither is reallocated once grown).
fn flush(
    output: &mut format::context::Output,
    written: &Mutex<Vec<u8>>,
    out: &mut Vec<u8>,
) -> Result<()> {
    // SAFETY: the context is ours and open, and its I/O context is the one we gave it.
    unsafe {
        let pb = (*output.as_mut_ptr()).pb;
        ffi::avio_flush(pb);
        let error = (*pb).error;
        if error < 0 {
            return Err(anyhow!(ffmpeg::Error::from(error)).context("writing the mp4 bytes"));
        }
    }
    let mut written = lock(written);
    out.clear();
    std::mem::swap(&mut *written, out);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::codec::{self, annex_b_units, h264_test_stream};
    use crate::wire::protocol::Codec;
    use ffmpeg::media;

    fn h264() -> Stored {
        codec::format(Codec::H264).stored().unwrap()
    }

    /// The types of the boxes `bytes` is a sequence of, checking that their sizes add up.
    fn boxes(mut bytes: &[u8]) -> Vec<String> {
        let mut types = Vec::new();
        while !bytes.is_empty() {
            let size = u32::from_be_bytes(bytes[..4].try_into().unwrap()) as usize;
            types.push(String::from_utf8_lossy(&bytes[4..8]).into_owned());
            bytes = &bytes[size..];
        }
        types
    }

    /// The body of the first box of type `name` anywhere in `bytes` (found by its type alone,
    /// which is enough for the few boxes these tests look into).
    fn find<'a>(bytes: &'a [u8], name: &[u8; 4]) -> Option<&'a [u8]> {
        let at = bytes.windows(4).position(|w| w == name)?;
        let size = u32::from_be_bytes(bytes[at - 4..at].try_into().unwrap()) as usize;
        Some(&bytes[at + 4..at - 4 + size])
    }

    /// A frame's size once MP4 holds it: each NAL unit behind a 4-byte length.
    fn length_prefixed_len(data: &[u8]) -> usize {
        annex_b_units(data).iter().map(|unit| 4 + unit.len()).sum()
    }

    #[test]
    fn an_init_segment_then_one_fragment_a_frame_from_the_first_keyframe() {
        // Keyframes at 0 and 12; joined at 5.
        let frames = h264_test_stream(30, 12);
        let mut fragmenter = Fragmenter::new(h264(), (160, 120), 30.0).unwrap();
        for (header, data) in &frames[5..12] {
            assert!(fragmenter.push(header, data).unwrap().is_none());
        }
        assert!(fragmenter.init_segment().is_none());
        assert!(fragmenter.origin_us().is_none());
        assert!(fragmenter.mime().is_none());
        for (header, data) in &frames[12..] {
            let fragment = fragmenter.push(header, data).unwrap().unwrap();
            assert_eq!(boxes(fragment), ["moof", "mdat"], "frame {}", header.seq);
            let tfhd = find(fragment, b"tfhd").unwrap();
            let flags = u32::from_be_bytes(tfhd[..4].try_into().unwrap()) & 0xff_ffff;
            assert_ne!(flags & 0x02_0000, 0, "default-base-is-moof");
            let trun = find(fragment, b"trun").unwrap();
            let samples = u32::from_be_bytes(trun[4..8].try_into().unwrap());
            assert_eq!(samples, 1, "frame {}", header.seq);
            let overhead = fragment.len() - length_prefixed_len(data);
            assert!(overhead < 150, "frame {}: {overhead} bytes", header.seq);
        }
        let init = fragmenter.init_segment().unwrap();
        assert_eq!(boxes(init), ["ftyp", "moov"]);
        for name in [b"avcC", b"mvex", b"trex"] {
            assert!(
                find(init, name).is_some(),
                "{}",
                String::from_utf8_lossy(name)
            );
        }
        assert_eq!(fragmenter.origin_us(), Some(frames[12].0.capture_unix_us));
    }

    #[test]
    fn the_fragments_play_back_as_the_frames_were_captured() {
        let mut frames = h264_test_stream(20, 30);
        // Irregular capture times, and one clock step back (frame 9 before frame 8).
        for (header, _) in &mut frames {
            header.capture_unix_us += (header.seq % 3) * 7_000;
        }
        frames[9].0.capture_unix_us = frames[8].0.capture_unix_us - 5_000;
        let mut fragmenter = Fragmenter::new(h264(), (160, 120), 30.0).unwrap();
        let mut fragments = Vec::new();
        for (header, data) in &frames {
            fragments.extend_from_slice(fragmenter.push(header, data).unwrap().unwrap());
        }
        let origin = fragmenter.origin_us().unwrap();
        let mut stream = fragmenter.init_segment().unwrap().to_vec();
        stream.extend_from_slice(&fragments);
        let path = std::env::temp_dir().join(format!("camstream-fmp4-{}.mp4", std::process::id()));
        std::fs::write(&path, &stream).unwrap();

        let mut input = format::input(&path).unwrap();
        let video = input.streams().best(media::Type::Video).unwrap();
        let (index, time_base) = (video.index(), video.time_base());
        assert_eq!(video.parameters().id(), ffmpeg::codec::Id::H264);
        let packets: Vec<(usize, bool, i64)> = input
            .packets()
            .filter(|(stream, _)| stream.index() == index)
            .map(|(_, packet)| {
                let pts = packet.pts().unwrap();
                let us = pts * 1_000_000 * i64::from(time_base.0) / i64::from(time_base.1);
                (packet.size(), packet.is_key(), us)
            })
            .collect();
        std::fs::remove_file(&path).unwrap();

        assert_eq!(packets.len(), frames.len());
        let mut last = -1;
        for ((header, data), (size, key, us)) in frames.iter().zip(&packets) {
            assert_eq!(*size, length_prefixed_len(data), "frame {}", header.seq);
            assert_eq!(*key, header.keyframe, "frame {}", header.seq);
            // As captured, except that time never goes back.
            let captured = (header.capture_unix_us - origin) as i64;
            assert_eq!(*us, captured.max(last + 1), "frame {}", header.seq);
            last = *us;
        }
    }

    #[test]
    fn the_mime_type_names_the_profile_and_level_x264_chose() {
        let frames = h264_test_stream(1, 0);
        let mut fragmenter = Fragmenter::new(h264(), (160, 120), 30.0).unwrap();
        let (header, data) = &frames[0];
        fragmenter.push(header, data).unwrap();
        // High profile (100 = 0x64), no constraint flags, level 1.3 (13 = 0x0d).
        assert_eq!(fragmenter.mime(), Some("video/mp4; codecs=\"avc1.64000d\""));
    }
}
