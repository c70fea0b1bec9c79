//! H.264 through FFmpeg's libavcodec (bound by `ffmpeg-next`): libx264 encodes, tuned for
//! latency (no B-frames, no lookahead, sliced threads: one frame in, one frame out), or a
//! hardware encoder ([`super::h264_encoders`]), with the parameter sets in front of every
//! keyframe so a viewer can start at any of them; FFmpeg's own
//! decoder decodes, one thread, low delay. swscale converts between BGR and YUV 4:2:0. A frame
//! is one access unit in Annex B form. Before any decoder sees a frame, every sequence
//! parameter set in it must give the stream's size, and a keyframe must carry one.

use super::h264_encoders::{self, GpuFrames, Kind};
use super::{Decoder, Encoder, EncoderSettings, Format, Stored};
use crate::media::convert::ToBgr;
use crate::media::{init_ffmpeg, low_delay_decoder, Picture};
use crate::wire::protocol::{FrameHeader, ProtocolError};
use anyhow::{anyhow, bail, Context, Result};
use ffmpeg::format::Pixel;
use ffmpeg::software::scaling;
use ffmpeg::{codec, frame, picture, Packet, Rational};
use ffmpeg_next as ffmpeg;
use h264_reader::nal::sps::SeqParameterSet;
use h264_reader::rbsp::{decode_nal, BitReader};

/// The encoder's VBV buffer, in frames: how far a frame (a keyframe) may overshoot the average.
/// Five frames' worth keeps a keyframe's burst short enough for a thin link's router queue (half
/// a second's worth lost packets there and stalled TCP), while a smaller buffer starves
/// keyframes of bits.
const VBV_FRAMES: i64 = 5;
/// Types of the NAL units that are a sequence and a picture parameter set.
const NAL_SPS: u8 = 7;
const NAL_PPS: u8 = 8;

pub struct H264;

impl Format for H264 {
    fn check(&self, header: &FrameHeader, data: &[u8]) -> Result<(), ProtocolError> {
        let mut parameter_sets = 0;
        for nal in nal_units(data).filter(|nal| nal.first().map(|b| b & 0x1f) == Some(NAL_SPS)) {
            parameter_sets += 1;
            let Some((width, height)) = picture_size(nal) else {
                return Err(ProtocolError::Malformed(format!(
                    "h264 frame {} carries a sequence parameter set that does not parse",
                    header.seq
                )));
            };
            if (width, height) != (header.width, header.height) {
                return Err(ProtocolError::Malformed(format!(
                    "h264 frame {} holds a {width}x{height} picture, but the frame says {}x{}",
                    header.seq, header.width, header.height
                )));
            }
        }
        if header.keyframe && parameter_sets == 0 {
            return Err(ProtocolError::Malformed(format!(
                "h264 keyframe {} carries no sequence parameter set",
                header.seq
            )));
        }
        Ok(())
    }

    fn encoder(&self, settings: &EncoderSettings) -> Result<Box<dyn Encoder>> {
        Ok(Box::new(H264Encoder::open(settings)?))
    }

    fn decoder(&self) -> Result<Box<dyn Decoder>> {
        Ok(Box::new(H264Decoder::open()?))
    }

    fn stored(&self) -> Option<Stored> {
        Some(Stored {
            codec: codec::Id::H264,
            global_header: parameter_sets,
            mp4_codecs: Some(mp4_codecs),
        })
    }
}

/// The sequence and picture parameter sets of a keyframe, each behind a start code: what MP4's
/// and Matroska's muxers turn into their codec header.
fn parameter_sets(keyframe: &[u8]) -> Vec<u8> {
    nal_units(keyframe)
        .filter(|nal| is_parameter_set(nal))
        .flat_map(|nal| [&[0, 0, 0, 1][..], nal].concat())
        .collect()
}

/// Whether a NAL unit is a sequence or a picture parameter set.
fn is_parameter_set(nal: &[u8]) -> bool {
    matches!(nal.first().map(|b| b & 0x1f), Some(NAL_SPS | NAL_PPS))
}

/// `avc1.PPCCLL`: the profile, constraint flags and level of a keyframe's sequence parameter
/// set, its three bytes after the NAL header in hex, as RFC 6381 (and every browser) reads them.
fn mp4_codecs(keyframe: &[u8]) -> Option<String> {
    let sps = nal_units(keyframe).find(|nal| nal.first().map(|b| b & 0x1f) == Some(NAL_SPS))?;
    let [profile, constraints, level] = sps.get(1..4)? else {
        return None;
    };
    Some(format!("avc1.{profile:02x}{constraints:02x}{level:02x}"))
}

/// The NAL units of an Annex B byte stream: what follows each `00 00 01` start code.
fn nal_units(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let starts: Vec<usize> = data
        .windows(3)
        .enumerate()
        .filter(|(_, w)| *w == [0, 0, 1])
        .map(|(at, _)| at + 3)
        .collect();
    let ends: Vec<usize> = starts
        .iter()
        .skip(1)
        .map(|next| next - 3)
        .chain(std::iter::once(data.len()))
        .collect();
    starts
        .into_iter()
        .zip(ends)
        .map(move |(start, end)| {
            // The zero in front of a 4-byte start code (and any trailing_zero_8bits) belongs
            // to no unit.
            let unit = &data[start..end];
            let len = unit
                .iter()
                .rposition(|&b| b != 0)
                .map_or(0, |last| last + 1);
            &unit[..len]
        })
        .filter(|unit| !unit.is_empty())
}

/// The picture size a sequence parameter set gives (cropping included).
fn picture_size(nal: &[u8]) -> Option<(u32, u32)> {
    let rbsp = decode_nal(nal).ok()?;
    let sps = SeqParameterSet::from_bits(BitReader::new(&rbsp[..])).ok()?;
    sps.pixel_dimensions().ok()
}

struct H264Encoder {
    encoder: ffmpeg::encoder::Video,
    kind: &'static Kind,
    /// The frames a hardware encoder takes its pictures in, when it takes them on the GPU.
    gpu: Option<GpuFrames>,
    /// The last keyframe's parameter sets, for a keyframe that comes without them.
    parameter_sets: Vec<u8>,
    bitrate_kbps: u32,
    /// Frames a second, as rate control counts them.
    fps: i32,
    to_yuv: scaling::Context,
    bgr: frame::Video,
    yuv: frame::Video,
    packet: Packet,
    pts: i64,
}

impl H264Encoder {
    fn open(settings: &EncoderSettings) -> Result<H264Encoder> {
        init_ffmpeg()?;
        let (width, height) = (settings.width, settings.height);
        // Rate control needs a frame rate; an unpaced stream is taken as 30 fps.
        let fps = match settings.fps {
            fps if fps >= 1.0 => fps.round() as i32,
            _ => 30,
        };
        let configure = |video: &mut ffmpeg::encoder::video::Video| {
            video.set_width(width);
            video.set_height(height);
            video.set_time_base(Rational::new(1, fps));
            video.set_frame_rate(Some(Rational::new(fps, 1)));
            set_rate(video, settings.bitrate_kbps, fps);
            video.set_gop(
                (settings.keyframe_interval * f64::from(fps))
                    .round()
                    .max(1.0) as u32,
            );
            video.set_max_b_frames(0);
        };
        let opened = h264_encoders::open(&settings.encoder, &configure)?;
        let input = opened.kind.input;
        let to_yuv = scaling::Context::get(
            Pixel::BGR24,
            width,
            height,
            input,
            width,
            height,
            to_yuv_flags(),
        )
        .context("setting up the BGR to YUV conversion")?;
        Ok(H264Encoder {
            encoder: opened.encoder,
            kind: opened.kind,
            gpu: opened.gpu,
            parameter_sets: Vec::new(),
            bitrate_kbps: settings.bitrate_kbps,
            fps,
            to_yuv,
            bgr: frame::Video::new(Pixel::BGR24, width, height),
            yuv: frame::Video::new(input, width, height),
            packet: Packet::empty(),
            pts: 0,
        })
    }

    /// Receives the packet of the picture just sent, remembering the parameter sets of one
    /// that holds only those (some hardware encoders send them alone, first).
    fn receive_picture(&mut self) -> Result<()> {
        loop {
            self.encoder
                .receive_packet(&mut self.packet)
                .with_context(|| {
                    format!("encoding h264: {} held the frame back", self.kind.name)
                })?;
            let data = self.packet.data().unwrap_or_default();
            if data.is_empty() || !nal_units(data).all(is_parameter_set) {
                return Ok(());
            }
            self.parameter_sets = parameter_sets(data);
        }
    }
}

impl Encoder for H264Encoder {
    fn encode(&mut self, picture: &mut Vec<u8>, out: &mut Vec<u8>, keyframe: bool) -> Result<bool> {
        copy_rows(picture, &mut self.bgr);
        self.to_yuv
            .run(&self.bgr, &mut self.yuv)
            .context("converting BGR to YUV")?;
        self.yuv.set_pts(Some(self.pts));
        self.pts += 1;
        self.yuv.set_kind(match keyframe {
            true => picture::Type::I,
            false => picture::Type::None,
        });
        let name = self.kind.name;
        let picture = match &mut self.gpu {
            Some(gpu) => gpu.upload(&self.yuv)?,
            None => &self.yuv,
        };
        self.encoder
            .send_frame(picture)
            .with_context(|| format!("encoding h264 with {name}"))?;
        self.receive_picture()?;
        let data = (self.packet.data())
            .ok_or_else(|| anyhow!("encoding h264: {name} gave an empty frame"))?;
        let key = self.packet.is_key();
        frame_from_packet(data, key, &mut self.parameter_sets, out);
        Ok(key)
    }

    fn bitrate_kbps(&self) -> Option<u32> {
        Some(self.bitrate_kbps)
    }

    fn set_bitrate(&mut self, kbps: u32) {
        if !self.kind.retunes {
            return;
        }
        self.bitrate_kbps = kbps;
        // FFmpeg's libx264 and NVENC wrappers compare these with their own before every frame
        // and reconfigure the encoder when they changed.
        set_rate(&mut self.encoder, kbps, self.fps);
    }
}

/// Copies an encoder's packet into `out` as a frame: a keyframe's parameter sets are
/// remembered, and one that comes without them (some hardware encoders send them once) gets
/// the last ones, so a viewer can start at any keyframe.
fn frame_from_packet(packet: &[u8], key: bool, remembered: &mut Vec<u8>, out: &mut Vec<u8>) {
    out.clear();
    if key {
        match parameter_sets(packet) {
            sets if sets.is_empty() => out.extend_from_slice(remembered),
            sets => *remembered = sets,
        }
    }
    out.extend_from_slice(packet);
}

/// Sets the encoder's average and peak rate to `kbps`, with a VBV buffer of
/// [`VBV_FRAMES`] frames' worth of bits at `fps`.
fn set_rate(context: &mut codec::context::Context, kbps: u32, fps: i32) {
    let bits = i64::from(kbps) * 1000;
    // SAFETY: the context is valid for as long as we hold it; these are plain integer fields.
    unsafe {
        let context = context.as_mut_ptr();
        (*context).bit_rate = bits;
        (*context).rc_max_rate = bits;
        (*context).rc_buffer_size = (bits * VBV_FRAMES / i64::from(fps.max(1))) as i32;
    }
}

/// How swscale turns BGR into YUV 4:2:0 (and back, in `media::convert`), chosen by measuring PSNR as a viewer sees
/// it, BGR against BGR (see the README): exact rounding, bicubic chroma, and full chroma
/// interpolation into YUV. Against plain bilinear they add 0.8–1.0 dB on vtest.avi, for about
/// 1.1 ms more to convert a 720p frame on the sender and 1.4 ms on the receiver.
fn to_yuv_flags() -> scaling::Flags {
    scaling::Flags::BICUBIC | scaling::Flags::ACCURATE_RND | scaling::Flags::FULL_CHR_H_INT
}

/// Copies tightly packed BGR rows into a frame whose rows may be padded.
fn copy_rows(rows: &[u8], frame: &mut frame::Video) {
    let row = frame.width() as usize * 3;
    let stride = frame.stride(0);
    let data = frame.data_mut(0);
    for (y, source) in rows.chunks_exact(row).enumerate() {
        data[y * stride..y * stride + row].copy_from_slice(source);
    }
}

/// Decodes into one reused picture.
struct H264Decoder {
    decoder: ffmpeg::decoder::Video,
    yuv: frame::Video,
    to_bgr: ToBgr,
}

impl H264Decoder {
    fn open() -> Result<H264Decoder> {
        init_ffmpeg()?;
        let codec = ffmpeg::decoder::find(codec::Id::H264)
            .ok_or_else(|| anyhow!("this FFmpeg has no h264 decoder"))?;
        let context = codec::context::Context::new_with_codec(codec);
        Ok(H264Decoder {
            decoder: low_delay_decoder(context).context("opening the h264 decoder")?,
            yuv: frame::Video::empty(),
            to_bgr: ToBgr::default(),
        })
    }
}

impl Decoder for H264Decoder {
    fn decode<'a>(
        &'a mut self,
        header: &FrameHeader,
        data: &'a [u8],
    ) -> Result<Option<Picture<'a>>> {
        self.decoder
            .send_packet(&Packet::copy(data))
            .context("decoding h264")?;
        match self.decoder.receive_frame(&mut self.yuv) {
            Ok(()) => {}
            Err(ffmpeg::Error::Other { errno }) if errno == ffmpeg::util::error::EAGAIN => {
                return Ok(None)
            }
            Err(e) => return Err(anyhow!(e).context("decoding h264")),
        }
        // FFmpeg conceals what it could not decode; shown, that is a smeared picture.
        if !self.yuv.decode_error_flags().is_empty() {
            bail!("decoding h264: the picture is damaged");
        }
        let (width, height) = (self.yuv.width(), self.yuv.height());
        if (width, height) != (header.width, header.height) {
            bail!(
                "decoding h264: picture is {width}x{height}, but the frame says {}x{}",
                header.width,
                header.height
            );
        }
        self.to_bgr.convert(&self.yuv).map(Some)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::media::codec::check_frame;
    use crate::media::pattern::TestPattern;
    use crate::media::psnr;
    use crate::wire::protocol::tests::sample_header;
    use crate::wire::protocol::{Codec, Frame, StreamHello};

    const WIDTH: u32 = 160;
    const HEIGHT: u32 = 120;

    fn settings() -> EncoderSettings {
        EncoderSettings {
            width: WIDTH,
            height: HEIGHT,
            quality: 80,
            fps: 30.0,
            keyframe_interval: 10.0,
            bitrate_kbps: 500,
            encoder: h264_encoders::EncoderChoice::Auto,
        }
    }

    fn header(seq: u64, keyframe: bool) -> FrameHeader {
        FrameHeader {
            seq,
            capture_unix_us: sample_header().capture_unix_us + seq * 33_333,
            width: WIDTH,
            height: HEIGHT,
            codec: Codec::H264,
            keyframe,
            ..sample_header()
        }
    }

    /// The NAL units of an Annex B frame, each copied out.
    pub(crate) fn annex_b_units(data: &[u8]) -> Vec<Vec<u8>> {
        nal_units(data).map(<[u8]>::to_vec).collect()
    }

    /// `count` frames of a 160x120 test pattern stream at 30 fps, keyframes where asked.
    pub(crate) fn test_stream(count: u64, keyframe_at: u64) -> Vec<(FrameHeader, Vec<u8>)> {
        let pattern = TestPattern::new(WIDTH, HEIGHT);
        let mut encoder = H264.encoder(&settings()).unwrap();
        (0..count)
            .map(|seq| {
                let mut picture = Vec::new();
                pattern.render(seq, &mut picture);
                let mut data = Vec::new();
                let keyframe = encoder
                    .encode(&mut picture, &mut data, seq == keyframe_at)
                    .unwrap();
                (header(seq, keyframe), data)
            })
            .collect()
    }

    #[test]
    fn frames_round_trip_close_and_keyframes_come_when_asked() {
        let pattern = TestPattern::new(WIDTH, HEIGHT);
        let mut encoder = H264.encoder(&settings()).unwrap();
        let mut decoder = H264.decoder().unwrap();
        let hello = StreamHello::new(WIDTH, HEIGHT, Codec::H264, 30.0);
        let mut keyframes = Vec::new();
        for seq in 0..20 {
            let mut picture = Vec::new();
            pattern.render(seq, &mut picture);
            let source = picture.clone();
            let mut data = Vec::new();
            let keyframe = encoder.encode(&mut picture, &mut data, seq == 12).unwrap();
            if keyframe {
                keyframes.push(seq);
            }
            let header = header(seq, keyframe);
            check_frame(
                &hello,
                &Frame {
                    header,
                    data: &data,
                },
            )
            .unwrap();
            let shown = decoder
                .decode(&header, &data)
                .unwrap()
                .expect("one picture a frame");
            let quality = psnr(shown.bgr, &source);
            assert!(quality > 30.0, "frame {seq}: {quality:.1} dB");
        }
        assert_eq!(keyframes, [0, 12], "the first frame, and the one asked for");
    }

    #[test]
    fn a_damaged_frame_is_an_error_not_a_smeared_picture() {
        let pattern = TestPattern::new(WIDTH, HEIGHT);
        let mut encoder = H264.encoder(&settings()).unwrap();
        let mut decoder = H264.decoder().unwrap();
        for seq in 0..8 {
            let mut picture = Vec::new();
            pattern.render(seq, &mut picture);
            let mut data = Vec::new();
            let keyframe = encoder.encode(&mut picture, &mut data, false).unwrap();
            if seq == 5 {
                let len = data.len();
                for byte in &mut data[len / 3..len / 2] {
                    *byte = byte.wrapping_mul(7).wrapping_add(3);
                }
            }
            let decoded = decoder.decode(&header(seq, keyframe), &data);
            match seq {
                5 => assert_eq!(
                    decoded.err().map(|e| e.to_string()).as_deref(),
                    Some("decoding h264: the picture is damaged")
                ),
                _ => assert!(decoded.unwrap().is_some(), "frame {seq}"),
            }
        }
    }

    #[test]
    fn a_frame_must_hold_parameter_sets_of_its_size() {
        let mut encoder = H264.encoder(&settings()).unwrap();
        let mut picture = Vec::new();
        TestPattern::new(WIDTH, HEIGHT).render(0, &mut picture);
        let mut data = Vec::new();
        assert!(encoder.encode(&mut picture, &mut data, true).unwrap());
        let small = FrameHeader {
            width: 80,
            height: 60,
            ..header(0, true)
        };
        assert_eq!(
            H264.check(&small, &data).unwrap_err().to_string(),
            "malformed message: h264 frame 0 holds a 160x120 picture, but the frame says 80x60"
        );
        // The same bytes without their parameter sets are no keyframe.
        let slices: Vec<u8> = nal_units(&data)
            .filter(|nal| nal[0] & 0x1f != NAL_SPS)
            .flat_map(|nal| [&[0, 0, 1][..], nal].concat())
            .collect();
        assert!(H264
            .check(&header(0, true), &slices)
            .unwrap_err()
            .to_string()
            .contains("carries no sequence parameter set"));
        assert!(H264.check(&header(1, false), &slices).is_ok());
    }

    #[test]
    fn a_keyframe_sent_without_parameter_sets_gets_the_last_ones_and_decodes() {
        let stream = test_stream(3, 2);
        let without_sets = |data: &[u8]| -> Vec<u8> {
            nal_units(data)
                .filter(|nal| !is_parameter_set(nal))
                .flat_map(|nal| [&[0, 0, 0, 1][..], nal].concat())
                .collect()
        };
        // As a hardware encoder that sends them only with its first keyframe.
        let mut remembered = Vec::new();
        let mut decoder = H264.decoder().unwrap();
        for (header, data) in &stream {
            let packet = match header.seq {
                0 => data.clone(),
                _ => without_sets(data),
            };
            let mut frame = Vec::new();
            frame_from_packet(&packet, header.keyframe, &mut remembered, &mut frame);
            H264.check(header, &frame).unwrap();
            let picture = decoder.decode(header, &frame).unwrap().unwrap();
            let mut expected = Vec::new();
            TestPattern::new(WIDTH, HEIGHT).render(header.seq, &mut expected);
            assert!(psnr(picture.bgr, &expected) > 30.0, "frame {}", header.seq);
        }
        assert!(stream[2].0.keyframe);
    }
}
