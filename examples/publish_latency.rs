//! The publishing row of `scripts/bench.sh`: how much later a frame reaches a reader through a
//! media server than a camstream viewer of the same sender. Both read the very same H.264 (the
//! sender has a fixed `--bitrate`, so its publishers share the stream's encode); frames are
//! matched by their last NAL unit, and each one's latency is its arrival less its capture time
//! (one machine, one clock).
//!
//! Usage: cargo run --release --example publish_latency -- SENDER_ADDR SERVER_URL SECONDS
//! (the sender runs `--insecure --codec h264 --bitrate N --publish SERVER_URL`). Prints one
//! JSON line: {"direct_p50_ms","direct_p99_ms","server_p50_ms","server_p99_ms","matched",...}.

use anyhow::{bail, Context, Result};
use camstream::wire::handshake::greet_sender;
use camstream::wire::protocol::unix_micros;
use camstream::wire::protocol::{self, Message};
use camstream::wire::secure::PairingMode;
use ffmpeg_next as ffmpeg;
use std::collections::HashMap;
use std::net::TcpStream;
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

/// Microseconds of the server reader's start left out of its latency.
const SETTLE_US: u64 = 2_000_000;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [sender, url, seconds] = args.as_slice() else {
        bail!("usage: publish_latency SENDER_ADDR SERVER_URL SECONDS");
    };
    let budget = Duration::from_secs_f64(seconds.parse()?);
    let (tx, rx) = mpsc::channel();
    let reader_url = url.clone();
    std::thread::spawn(move || {
        if let Err(e) = read_server(&reader_url, budget + Duration::from_secs(3), &tx) {
            eprintln!("publish_latency: reading {reader_url}: {e:#}");
        }
    });
    // Capture time of each frame the direct viewer got, by its last NAL unit.
    let mut captured: HashMap<Vec<u8>, u64> = HashMap::new();
    let mut direct = Vec::new();
    let stream = TcpStream::connect(sender.as_str()).context("connecting to the sender")?;
    let mut session = greet_sender(stream, &PairingMode::Insecure)?;
    let (mut socket, mut frames) = session.frame_reader()?;
    let mut buf = Vec::new();
    let started = Instant::now();
    while started.elapsed() < budget {
        if !frames.read(&mut socket, &mut buf)? {
            break;
        }
        let arrived = unix_micros(SystemTime::now());
        let Message::Frame(frame) = protocol::decode(&buf)? else {
            continue;
        };
        let capture = frame.header.capture_unix_us;
        direct.push(arrived.saturating_sub(capture) as f64 / 1000.0);
        if let Some(unit) = last_unit(frame.data, annex_b_units) {
            captured.insert(unit.to_vec(), capture);
        }
        session.ack(frame.header.seq, false)?;
    }
    std::thread::sleep(Duration::from_secs(2));
    let mut server = Vec::new();
    let mut server_frames = 0;
    let mut first_arrival = None;
    for (unit, arrived) in rx.try_iter() {
        server_frames += 1;
        // The reader's first two seconds are its start (the server's burst from the last
        // keyframe, FFmpeg probing the stream), not the steady delay.
        let first = *first_arrival.get_or_insert(arrived);
        if arrived < first + SETTLE_US {
            continue;
        }
        if let Some(capture) = captured.get(&unit) {
            server.push(arrived.saturating_sub(*capture) as f64 / 1000.0);
            if std::env::var_os("PUBLISH_LATENCY_TRACE").is_some() {
                eprintln!(
                    "{} {:.1}",
                    (arrived - first) / 1000,
                    server[server.len() - 1]
                );
            }
        }
    }
    println!(
        "{{\"direct_p50_ms\":{:.1},\"direct_p99_ms\":{:.1},\"server_p50_ms\":{:.1},\"server_p99_ms\":{:.1},\"matched\":{},\"server_frames\":{server_frames},\"direct_frames\":{}}}",
        quantile(&mut direct, 0.5),
        quantile(&mut direct, 0.99),
        quantile(&mut server, 0.5),
        quantile(&mut server, 0.99),
        server.len(),
        direct.len()
    );
    Ok(())
}

/// Reads the server's stream for `budget`, sending each video packet's last NAL unit and when
/// it arrived.
fn read_server(url: &str, budget: Duration, tx: &mpsc::Sender<(Vec<u8>, u64)>) -> Result<()> {
    ffmpeg::init()?;
    let mut options = ffmpeg::Dictionary::new();
    options.set("fflags", "nobuffer");
    options.set("analyzeduration", "500000");
    let mut input = ffmpeg::format::input_with_dictionary(&url, options)?;
    let started = Instant::now();
    for (stream, packet) in input.packets() {
        let arrived = unix_micros(SystemTime::now());
        if started.elapsed() > budget {
            break;
        }
        if stream.parameters().medium() != ffmpeg::media::Type::Video {
            continue;
        }
        let Some(data) = packet.data() else { continue };
        if let Some(unit) = last_unit(data, length_prefixed_units) {
            let _ = tx.send((unit.to_vec(), arrived));
        }
    }
    Ok(())
}

fn last_unit<'a>(data: &'a [u8], units: fn(&'a [u8]) -> Vec<&'a [u8]>) -> Option<&'a [u8]> {
    units(data).into_iter().rfind(|unit| !unit.is_empty())
}

/// NAL units of an Annex B access unit (start codes 00 00 01 or 00 00 00 01).
fn annex_b_units(data: &[u8]) -> Vec<&[u8]> {
    let mut starts = Vec::new();
    let mut i = 0;
    while i + 3 <= data.len() {
        if data[i..i + 3] == [0, 0, 1] {
            starts.push(i + 3);
            i += 3;
        } else {
            i += 1;
        }
    }
    let mut units = Vec::new();
    for (n, start) in starts.iter().enumerate() {
        let mut end = starts.get(n + 1).map_or(data.len(), |next| next - 3);
        while end > *start && data[end - 1] == 0 {
            end -= 1;
        }
        units.push(&data[*start..end]);
    }
    units
}

/// NAL units of an MP4/FLV sample (each behind a 4-byte big-endian length).
fn length_prefixed_units(mut data: &[u8]) -> Vec<&[u8]> {
    let mut units = Vec::new();
    while let Some((length, rest)) = data.split_first_chunk::<4>() {
        let length = u32::from_be_bytes(*length) as usize;
        if length > rest.len() {
            break;
        }
        units.push(&rest[..length]);
        data = &rest[length..];
    }
    units
}

fn quantile(values: &mut [f64], q: f64) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    values[((values.len() - 1) as f64 * q).round() as usize]
}
