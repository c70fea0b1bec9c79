//! The JPEG reference for `scripts/bench.sh`: how many test-pattern frames per second OpenCV's
//! own `imencode` and `imdecode` manage on one core, with nothing else in the way. camstream's
//! JPEG rate as fast as possible is judged against the slower of the two.
//!
//! Usage: cargo run --release --example codec_rate -- WIDTH HEIGHT QUALITY SECONDS
//! Prints one JSON line: {"encode_fps":..,"decode_fps":..,"jpeg_bytes":..}.

use anyhow::{Context, Result};
use camstream::media::pattern::TestPattern;
use opencv::core::{self, Mat, Vector};
use opencv::imgcodecs;
use opencv::prelude::*;
use std::time::{Duration, Instant};

/// Distinct frames to cycle through, so the codec sees motion as it does in a stream.
const FRAMES: u64 = 30;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [width, height, quality, seconds] = args.as_slice() else {
        anyhow::bail!("usage: codec_rate WIDTH HEIGHT QUALITY SECONDS");
    };
    let (width, height): (u32, u32) = (width.parse()?, height.parse()?);
    let quality: i32 = quality.parse()?;
    let budget = Duration::from_secs_f64(seconds.parse()?);
    core::set_num_threads(1)?;

    let pattern = TestPattern::new(width, height);
    let pictures: Vec<Mat> = (0..FRAMES)
        .map(|seq| {
            let mut pixels = Vec::new();
            pattern.render(seq, &mut pixels);
            let flat = Mat::from_slice(&pixels)?;
            Ok(flat.reshape(3, height as i32)?.try_clone()?)
        })
        .collect::<Result<_>>()?;
    let params = Vector::from_slice(&[imgcodecs::IMWRITE_JPEG_QUALITY, quality]);

    let mut encoded: Vec<Vector<u8>> = Vec::new();
    let mut out = Vector::<u8>::new();
    let encode_fps = rate(budget, |i| {
        imgcodecs::imencode(".jpg", &pictures[i % pictures.len()], &mut out, &params)
            .context("encoding")?;
        if encoded.len() < pictures.len() {
            encoded.push(out.clone());
        }
        Ok(())
    })?;
    let mut decoded = Mat::default();
    let decode_fps = rate(budget, |i| {
        let bytes = Mat::from_slice(encoded[i % encoded.len()].as_slice())?;
        imgcodecs::imdecode_to(&bytes, imgcodecs::IMREAD_COLOR, &mut decoded)
            .context("decoding")?;
        Ok(())
    })?;
    let jpeg_bytes = encoded.iter().map(|e| e.len()).sum::<usize>() / encoded.len();
    println!(
        "{{\"encode_fps\":{encode_fps:.1},\"decode_fps\":{decode_fps:.1},\"jpeg_bytes\":{jpeg_bytes}}}"
    );
    Ok(())
}

/// Calls `step` with 0, 1, 2… for `budget` and returns calls per second.
fn rate(budget: Duration, mut step: impl FnMut(usize) -> Result<()>) -> Result<f64> {
    let started = Instant::now();
    let mut calls = 0;
    while calls < FRAMES as usize || started.elapsed() < budget {
        step(calls)?;
        calls += 1;
    }
    Ok(calls as f64 / started.elapsed().as_secs_f64())
}
