//! `--record`: files of the video as it arrived; the container follows the file's extension.
//! A codec a container can hold (H.264, JPEG) is written as it came, not re-encoded (`remux`);
//! the pictures of any other (raw) are re-encoded by OpenCV.

use super::codec;
use super::remux::Remuxer;
use super::Picture;
use crate::wire::protocol::{Codec, FrameHeader, StreamHello};
use anyhow::{bail, Context, Result};
use opencv::core;
use opencv::prelude::*;
use opencv::videoio;
use std::path::{Path, PathBuf};

/// A recording of one stream's frames.
pub struct Recorder {
    codec: Codec,
    kind: Kind,
}

enum Kind {
    /// The frames as they arrived.
    Frames(Remuxer),
    /// The decoded pictures, re-encoded.
    Pictures(PictureWriter),
}

impl Recorder {
    /// A recording of `hello`'s stream in `path`, at `fps` frames a second.
    pub fn create(path: &Path, hello: &StreamHello, fps: f64) -> Result<Recorder> {
        let size = (hello.width, hello.height);
        let kind = match codec::format(hello.codec).stored() {
            Some(stored) => {
                extension(path)?;
                Kind::Frames(Remuxer::create(path, stored, size, fps)?)
            }
            None => Kind::Pictures(PictureWriter::create(path, size.0, size.1, fps)?),
        };
        Ok(Recorder {
            codec: hello.codec,
            kind,
        })
    }

    /// Whether frames of `hello`'s stream fit this recording: a later stream (after a
    /// reconnection) must have its size, and its codec when the frames are kept as they are.
    pub fn accepts(&self, hello: &StreamHello) -> bool {
        let size = match &self.kind {
            Kind::Frames(remuxer) => {
                if hello.codec != self.codec {
                    return false;
                }
                remuxer.size()
            }
            Kind::Pictures(writer) => writer.size,
        };
        size == (hello.width, hello.height)
    }

    /// Adds a frame: its bytes, or its decoded picture (none when the decoder had none yet).
    pub fn write(
        &mut self,
        header: &FrameHeader,
        data: &[u8],
        picture: Option<&Picture<'_>>,
    ) -> Result<()> {
        match (&mut self.kind, picture) {
            (Kind::Frames(remuxer), _) => remuxer.write(header, data),
            (Kind::Pictures(writer), Some(picture)) => writer.write(picture),
            (Kind::Pictures(_), None) => Ok(()),
        }
    }

    /// Finalises the file (index, trailer); returns the frames it holds.
    pub fn finish(self) -> Result<u64> {
        match self.kind {
            Kind::Frames(remuxer) => remuxer.finish(),
            Kind::Pictures(writer) => writer.finish(),
        }
    }
}

/// The recording's extension, lower case: one of those camstream documents.
fn extension(path: &Path) -> Result<String> {
    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match extension {
        Some(extension) if ["mkv", "avi", "mp4"].contains(&extension.as_str()) => Ok(extension),
        _ => bail!(
            "recording to {}: unknown extension (use .mkv, .avi or .mp4)",
            path.display()
        ),
    }
}

/// Writes pictures to a video file through OpenCV; the codec follows the file's extension.
struct PictureWriter {
    writer: videoio::VideoWriter,
    path: PathBuf,
    size: (u32, u32),
    frames: u64,
}

impl PictureWriter {
    /// `.mkv` is lossless FFV1, `.avi` MJPG, `.mp4` mp4v.
    fn create(path: &Path, width: u32, height: u32, fps: f64) -> Result<PictureWriter> {
        let code = match extension(path)?.as_str() {
            "mkv" => *b"FFV1",
            "avi" => *b"MJPG",
            _ => *b"mp4v",
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
        Ok(PictureWriter {
            writer,
            path: path.to_owned(),
            size: (width, height),
            frames: 0,
        })
    }

    fn write(&mut self, picture: &Picture<'_>) -> Result<()> {
        self.writer
            .write(&picture.as_mat()?)
            .with_context(|| format!("recording to {}", self.path.display()))?;
        self.frames += 1;
        Ok(())
    }

    /// Finalises the file (index, trailer); also done on drop, where errors cannot be reported.
    fn finish(mut self) -> Result<u64> {
        self.writer
            .release()
            .with_context(|| format!("finishing {}", self.path.display()))?;
        Ok(self.frames)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ffmpeg_next as ffmpeg;

    fn length_prefixed_units(mut data: &[u8]) -> Vec<Vec<u8>> {
        let mut units = Vec::new();
        while data.len() >= 4 {
            let len = u32::from_be_bytes([data[0], data[1], data[2], data[3]]) as usize;
            units.push(data[4..4 + len].to_vec());
            data = &data[4 + len..];
        }
        units
    }

    /// Each packet in the file of `codec`: its keyframe flag, time in seconds, and bytes.
    fn packets_in(path: &Path, codec: ffmpeg::codec::Id) -> Vec<(bool, f64, Vec<u8>)> {
        let mut input = ffmpeg::format::input(path).unwrap();
        let stream = input.streams().best(ffmpeg::media::Type::Video).unwrap();
        assert_eq!(stream.parameters().id(), codec);
        let base = f64::from(stream.time_base());
        input
            .packets()
            .map(|(_, packet)| {
                let at = packet.pts().or(packet.dts()).unwrap_or(0) as f64 * base;
                (packet.is_key(), at, packet.data().unwrap().to_vec())
            })
            .collect()
    }

    /// Each packet in the file, as NAL units, with its keyframe flag.
    fn stored_packets(path: &Path) -> Vec<(bool, Vec<Vec<u8>>)> {
        packets_in(path, ffmpeg::codec::Id::H264)
            .into_iter()
            .map(|(key, _, data)| (key, length_prefixed_units(&data)))
            .collect()
    }

    #[test]
    fn jpeg_is_recorded_as_it_came_at_its_capture_times() {
        let (width, height) = (64, 48);
        let mut encoder = codec::format(Codec::Jpeg)
            .encoder(&codec::EncoderSettings {
                width,
                height,
                quality: 80,
                fps: 30.0,
                keyframe_interval: 2.0,
                bitrate_kbps: 0,
                encoder: codec::EncoderChoice::Auto,
            })
            .unwrap();
        // Uneven gaps: the file keeps when each picture was taken, not a nominal rate.
        let gaps_us = [0u64, 33_000, 40_000, 30_000, 100_000, 33_000];
        let mut at = 1_700_000_000_000_000u64;
        let frames: Vec<(FrameHeader, Vec<u8>)> = (0..gaps_us.len())
            .map(|i| {
                let mut picture: Vec<u8> = (0..width * height * 3)
                    .map(|p| (p as usize * 7 + i * 40) as u8)
                    .collect();
                let mut data = Vec::new();
                encoder.encode(&mut picture, &mut data, false).unwrap();
                at += gaps_us[i];
                let header = FrameHeader {
                    seq: i as u64,
                    capture_unix_us: at,
                    width,
                    height,
                    pixel_format: crate::wire::protocol::PixelFormat::Bgr8,
                    codec: Codec::Jpeg,
                    keyframe: true,
                };
                (header, data)
            })
            .collect();
        let dir = std::env::temp_dir().join(format!("camstream-jpeg-rec-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for name in ["out.mkv", "out.avi", "out.mp4"] {
            let path = dir.join(name);
            let hello = StreamHello::new(width, height, Codec::Jpeg, 30.0);
            let mut recorder = Recorder::create(&path, &hello, 30.0).unwrap();
            for (header, data) in &frames {
                recorder.write(header, data, None).unwrap();
            }
            assert_eq!(recorder.finish().unwrap(), frames.len() as u64, "{name}");
            let stored = packets_in(&path, ffmpeg::codec::Id::MJPEG);
            assert_eq!(stored.len(), frames.len(), "{name}");
            let first = frames[0].0.capture_unix_us;
            for ((key, time, data), (header, sent)) in stored.iter().zip(&frames) {
                assert!(
                    data == sent,
                    "{name}: frame {} was not stored as it came",
                    header.seq
                );
                assert!(key, "{name}: frame {} is its own keyframe", header.seq);
                // AVI has a frame rate, not times; Matroska (to 1 ms) and MP4 keep uneven gaps.
                if !name.ends_with(".avi") {
                    let want = (header.capture_unix_us - first) as f64 / 1e6;
                    assert!(
                        (time - want).abs() < 0.0015,
                        "{name}: frame {} at {time}",
                        header.seq
                    );
                }
            }
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn h264_is_recorded_as_it_came_from_the_first_keyframe_on() {
        // Thirty frames, keyframes at 0 and 12.
        let frames = codec::h264_test_stream(30, 12);
        let dir = std::env::temp_dir().join(format!("camstream-remux-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for name in ["out.mp4", "out.mkv"] {
            let path = dir.join(name);
            let hello = StreamHello::new(160, 120, Codec::H264, 30.0);
            let mut recorder = Recorder::create(&path, &hello, 30.0).unwrap();
            // Joined mid-stream: frames 5 to 11 depend on a keyframe the file never got.
            for (header, data) in &frames[5..] {
                recorder.write(header, data, None).unwrap();
            }
            assert_eq!(recorder.finish().unwrap(), 18, "{name}");
            let stored = stored_packets(&path);
            let sent: Vec<(bool, Vec<Vec<u8>>)> = frames[12..]
                .iter()
                .map(|(header, data)| (header.keyframe, codec::annex_b_units(data)))
                .collect();
            assert_eq!(stored.len(), sent.len(), "{name}");
            for (seq, (stored, sent)) in (12..).zip(stored.iter().zip(&sent)) {
                assert!(
                    stored == sent,
                    "{name}: frame {seq} was not stored as it came"
                );
            }
            assert!(stored[0].0, "{name} starts at a keyframe");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
