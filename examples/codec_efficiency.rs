//! How many bytes each codec needs for the same quality, on a real clip: every frame of the file
//! is encoded and decoded through camstream's own codec seam (so the BGR to YUV conversion and
//! back counts), and its PSNR taken against the source picture, as a viewer would see it.
//!
//! Usage: cargo run --release --example codec_efficiency -- CLIP QUALITY KBIT [KBIT ...]
//!        [--source-bgr PATH]
//! Prints one JSON line per setting: {"codec", "setting", "bytes_per_frame", "psnr_db"}.
//! `--source-bgr` also writes the source pictures, as camstream read them, to PATH as raw BGR
//! (the first line printed then gives their size and rate), so a reference encoder can be fed
//! exactly the same pictures (`bench/ffmpeg_reference.py`).
//! The bench uses `vtest.avi` from Debian's opencv-doc package (768x576, 10 fps, a street
//! filmed from a fixed camera).

use anyhow::{bail, Result};
use camstream::config::SourceSpec;
use camstream::media::capture::Next;
use camstream::media::codec::{self, EncoderChoice, EncoderSettings};
use camstream::media::psnr;
use camstream::media::source::Source;
use camstream::wire::protocol::{Codec, FrameHeader, PixelFormat};
use std::time::Duration;

fn main() -> Result<()> {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let dump = match args.iter().position(|a| a == "--source-bgr") {
        Some(at) if at + 1 < args.len() => Some(args.drain(at..at + 2).nth(1).unwrap_or_default()),
        Some(_) => bail!("--source-bgr needs a path"),
        None => None,
    };
    let [clip, quality, rates @ ..] = args.as_slice() else {
        bail!("usage: codec_efficiency CLIP QUALITY KBIT [KBIT ...] [--source-bgr PATH]");
    };
    let mut source = Source::open(&SourceSpec::Location(clip.clone()), &Default::default())?;
    let (width, height) = source.size();
    let fps = source.native_fps().unwrap_or(30.0);
    let mut pictures = Vec::new();
    loop {
        let mut picture = Vec::new();
        if source.next_into(&mut picture, Duration::ZERO)? == Next::Ended {
            break;
        }
        pictures.push(picture);
    }
    if let Some(path) = dump {
        std::fs::write(&path, pictures.concat())?;
        println!("{{\"source_bgr\":{path:?},\"width\":{width},\"height\":{height},\"fps\":{fps}}}");
    }
    let settings = EncoderSettings {
        width,
        height,
        quality: quality.parse()?,
        fps,
        keyframe_interval: 2.0,
        bitrate_kbps: 0,
        // x264 itself, as the ffmpeg CLI it is compared with uses.
        encoder: EncoderChoice::Named("libx264".to_owned()),
    };
    measure(Codec::Jpeg, &settings, &pictures, quality)?;
    for rate in rates {
        let settings = EncoderSettings {
            bitrate_kbps: rate.parse()?,
            ..settings.clone()
        };
        measure(Codec::H264, &settings, &pictures, rate)?;
    }
    Ok(())
}

/// Encodes and decodes every picture; prints the mean bytes a frame and the mean PSNR.
fn measure(
    codec: Codec,
    settings: &EncoderSettings,
    pictures: &[Vec<u8>],
    setting: &str,
) -> Result<()> {
    let format = codec::format(codec);
    let mut encoder = format.encoder(settings)?;
    let mut decoder = format.decoder()?;
    let (mut bytes, mut quality) = (0usize, 0.0);
    for (seq, source) in pictures.iter().enumerate() {
        let mut picture = source.clone();
        let mut data = Vec::new();
        let keyframe = encoder.encode(&mut picture, &mut data, false)?;
        let header = FrameHeader {
            seq: seq as u64,
            capture_unix_us: 0,
            width: settings.width,
            height: settings.height,
            pixel_format: PixelFormat::Bgr8,
            codec,
            keyframe,
        };
        let Some(shown) = decoder.decode(&header, &data)? else {
            bail!("frame {seq} gave no picture");
        };
        quality += psnr(shown.bgr, source).min(99.0);
        bytes += data.len();
    }
    let frames = pictures.len().max(1) as f64;
    println!(
        "{{\"codec\":\"{codec}\",\"setting\":\"{setting}\",\"bytes_per_frame\":{:.0},\"psnr_db\":{:.2}}}",
        bytes as f64 / frames,
        quality / frames
    );
    Ok(())
}
