//! The sender: one capture loop (source → preview → one encode → every sink's slot) on the
//! calling thread, which highgui needs, plus an accept thread and one writer thread per viewer.
//!
//! - `capture.rs`: reading the source at its pace, the one encode, the "NO SIGNAL" card;
//!   `feeds.rs`: the encodes frames go out from (the stream's, and side ones for the kinds of
//!   sink that take another codec), each with its sinks.
//! - `accept.rs`: the accept loop, and each connection told apart by its first byte and served
//!   on its own thread; `admission.rs`: the policy it asks, who may connect (`--allow`, seats,
//!   lockouts after wrong codes), and refusals logged sparingly.
//! - [`sinks`]: the slots every consumer of encoded frames takes them from; [`sinks::tcp`] is
//!   the per-viewer protocol.
//! - `web/`: the web side on the same port (each connection is told apart by its first byte,
//!   [`crate::wire::sniff`]): the page, its login, `/stream.mjpg`, `/snapshot.jpg`, `/metrics`
//!   (`metrics.rs`), over HTTPS with the certificate [`certificate`] keeps.
//!   [`sinks::browser`] and [`sinks::mjpeg`] are its viewers.

mod accept;
mod admission;
mod api;
mod capture;
pub mod certificate;
mod feeds;
mod metrics;
mod rate;
pub mod sinks;
mod web;

pub use api::{Sender, SenderOptions};

pub use admission::SPARE_CONNECTIONS;
pub use sinks::window::MIN_FRAMES_IN_FLIGHT;

use crate::config::{Bitrate, CameraFormat, PublishTarget, SourceSpec};
use crate::media::codec::{self, EncoderChoice};
use crate::media::source::{Source, SourceRequest};
use crate::stats::SenderReport;
use crate::wire::handshake::Greeting;
use crate::wire::protocol::{Codec, StreamHello};
use crate::wire::secure::PairingMode;
use crate::Stop;
use accept::{accept_loop, AcceptWaker};
use admission::Admission;
use anyhow::{Context, Result};
use certificate::{TlsSource, WebKeys};
use feeds::Feeds;
use metrics::Latencies;
use sinks::browser::StreamFacts;
use sinks::publish::PublisherStatus;
use std::net::{IpAddr, TcpListener};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// Title of the preview window.
pub const PREVIEW_TITLE: &str = "TRANSMITTING VIDEO";
/// Rate of the test pattern when `--fps` is not given.
pub const PATTERN_FPS: f64 = 30.0;
/// Name of each viewer's writer thread (what `top -H` and /proc show).
pub const WRITER_THREAD: &str = "viewer-writer";
/// Viewers served at once when `--max-viewers` is not given.
pub const DEFAULT_MAX_VIEWERS: u16 = 8;
/// Seconds a viewer may take nothing before it is dropped, when `--viewer-timeout` is not
/// given: long enough for a congested link or a busy laptop, short enough that a viewer gone to
/// sleep does not hold its seat for long.
pub const DEFAULT_VIEWER_TIMEOUT: u64 = 10;

/// Everything the sender needs, already validated.
#[derive(Debug, Clone)]
pub struct SenderConfig {
    pub source: SourceSpec,
    pub codec: Codec,
    /// JPEG quality (1-100) of the pictures the sender encodes. `None`: [`DEFAULT_QUALITY`], and
    /// a source's own JPEG goes out as it came in a JPEG stream.
    pub quality: Option<u8>,
    /// Frames per second to pace the source at (and to ask a camera for); `None` uses the
    /// source's own rate, 0 is unpaced.
    pub fps: Option<f64>,
    /// The picture size to ask a camera for, or to scale other sources to (`--size`).
    pub size: Option<(u32, u32)>,
    /// The pixel format to ask a camera for.
    pub camera_format: CameraFormat,
    /// End the stream after this many frames have gone out to viewers.
    pub frames: Option<u64>,
    /// Play a file again from the start when it ends.
    pub looping: bool,
    /// Only this address may connect.
    pub allow: Option<IpAddr>,
    /// Connections beyond this many are refused.
    pub max_viewers: usize,
    /// A viewer with frames in flight that takes nothing (no ack, no bytes into its socket)
    /// for this long is dropped, giving its seat back.
    pub viewer_timeout: Duration,
    pub preview: bool,
    /// The code viewers must pair with, or `--insecure`.
    pub pairing: PairingMode,
    /// Seconds between regular keyframes (H.264).
    pub keyframe_interval: f64,
    /// Which H.264 encoder encodes (`--encoder`).
    pub encoder: EncoderChoice,
    /// H.264's bit rate: fixed, or fitted to the viewers (`auto`, starting from one that fits
    /// the picture).
    pub bitrate: Bitrate,
    /// Where the web side's TLS certificate comes from (unused with `--insecure`).
    pub tls: TlsSource,
    /// Media servers to publish to.
    pub publish: Vec<PublishTarget>,
    /// TCP congestion control for viewers' connections (`--tcp-congestion`); `None`: the
    /// system's.
    pub congestion_control: Option<String>,
}

/// JPEG quality when `--quality` is not given.
pub const DEFAULT_QUALITY: u8 = 80;

/// Seconds between regular keyframes when `--keyframe-interval` is not given.
pub const DEFAULT_KEYFRAME_INTERVAL: f64 = 2.0;

impl SenderConfig {
    /// What the source is asked for besides itself.
    pub fn source_request(&self) -> SourceRequest {
        SourceRequest {
            size: self.size,
            fps: self.fps,
            camera_format: self.camera_format,
            keep_jpeg: self.codec == Codec::Jpeg && self.quality.is_none(),
        }
    }

    /// The bit rate to start at: a fixed `--bitrate`, or about 0.09 bits per pixel per frame
    /// at 30 fps (2.5 Mbit/s for 1280x720, 5.6 for 1920x1080), which x264 turns into good
    /// quality for a camera's scene.
    pub fn bitrate_kbps(&self, width: u32, height: u32) -> u32 {
        match self.bitrate {
            Bitrate::Fixed(kbps) => kbps,
            Bitrate::Auto => {
                let bits = f64::from(width) * f64::from(height) * 30.0 * 0.09;
                ((bits / 1000.0).round() as u32).max(200)
            }
        }
    }
}

/// What the accept and writer threads share with the capture loop.
struct Shared {
    greeting: Greeting,
    admission: Admission,
    /// `--viewer-timeout`.
    viewer_timeout: Duration,
    /// The encodes frames go out from, and their sinks.
    feeds: Feeds,
    /// The web side's TLS and sessions; `None` with `--insecure` (plain HTTP, open).
    web: Option<WebKeys>,
    stream: StreamFacts,
    counters: Counters,
    /// Each `--publish` target and what its publisher is doing.
    publishers: Vec<(PublishTarget, PublisherStatus)>,
}

/// The counts the capture loop and the viewers' threads keep, for `--stats` and `/metrics`.
#[derive(Default)]
struct Counters {
    frames_captured: AtomicU64,
    frames_encoded: AtomicU64,
    frames_sent: AtomicU64,
    bytes_sent: AtomicU64,
    frames_skipped: AtomicU64,
    viewers_served: AtomicU64,
    /// The encoder's bit rate now, kbit/s (0: none).
    bitrate_kbps: AtomicU64,
    page_latencies: std::sync::Mutex<Latencies>,
}

/// Opens the stream's encoder once, so that one that cannot open (a hardware encoder without
/// its device) is an error before anything is served, as a camera's is.
pub fn check_encoder(config: &SenderConfig, source: &Source) -> Result<()> {
    let fps = config.fps.unwrap_or(PATTERN_FPS);
    let settings = capture::encoder_settings(config, source.size(), fps);
    codec::format(config.codec).encoder(&settings).map(drop)
}

/// Streams from `source` (opened from `config.source` with [`SenderConfig::source_request`],
/// or a test's own camera) to every viewer that connects to `listener` until the source ends,
/// `--frames` is reached, the preview window is closed or `stop` is raised.
pub fn serve(
    config: &SenderConfig,
    mut source: Source,
    listener: TcpListener,
    stop: &Stop,
) -> Result<SenderReport> {
    let started = Instant::now();
    let (hello, fps) = stream_hello(config, &source)?;
    listener
        .set_nonblocking(true)
        .context("setting up the listener")?;
    tune_listener(config, &listener)?;
    let shared = Arc::new(Shared {
        greeting: Greeting::new(&hello, &config.pairing)?,
        admission: Admission::new(config.allow, config.max_viewers),
        viewer_timeout: config.viewer_timeout,
        feeds: Feeds::new(config, &hello)?,
        web: web_keys(config)?,
        stream: StreamFacts {
            codec: config.codec.name(),
            width: hello.width,
            height: hello.height,
            fps: hello.fps,
        },
        counters: Counters::default(),
        publishers: config
            .publish
            .iter()
            .map(|target| (target.clone(), PublisherStatus::default()))
            .collect(),
    });
    let publishers = start_publishers(config, &shared, &hello)?;
    let waker = Arc::new(AcceptWaker::new().context("setting up the accept loop's waker")?);
    let accepting = Stop::default();
    let acceptor = {
        let (shared, waker) = (Arc::clone(&shared), Arc::clone(&waker));
        let (accepting, quitting) = (accepting.clone(), stop.clone());
        thread::spawn(move || accept_loop(&listener, &shared, &waker, &accepting, &quitting))
    };
    let mut report = SenderReport::default();
    // A live source keeps its own time; only an explicit --fps slows it down.
    let pace = match source.is_live() {
        true => config.fps,
        false => fps,
    }
    .filter(|f| *f > 0.0)
    .map(|f| Duration::from_secs_f64(1.0 / f));
    let result = capture::run(
        config,
        &mut source,
        (pace, hello.fps),
        &shared,
        stop,
        &mut report,
    );
    // The camera (or the program's frames) is let go at once, before the viewers are.
    drop(source);
    accepting.raise();
    waker.wake();
    if acceptor.join().is_err() {
        log::error!("the accept thread failed");
    }
    for publisher in publishers {
        if publisher.join().is_err() {
            log::error!("a publisher failed");
        }
    }
    let counters = &shared.counters;
    report.frames_captured = counters.frames_captured.load(Ordering::Relaxed);
    report.frames_encoded = counters.frames_encoded.load(Ordering::Relaxed);
    report.frames_sent = counters.frames_sent.load(Ordering::Relaxed);
    report.bytes_sent = counters.bytes_sent.load(Ordering::Relaxed);
    report.frames_skipped = counters.frames_skipped.load(Ordering::Relaxed);
    report.viewers = counters.viewers_served.load(Ordering::Relaxed);
    report.publishers = shared
        .publishers
        .iter()
        .map(|(target, status)| status.report(target))
        .collect();
    result.map(|()| report.finish(started))
}

/// The listener's options, which connections inherit: `--tcp-congestion`.
fn tune_listener(config: &SenderConfig, listener: &TcpListener) -> Result<()> {
    if let Some(name) = &config.congestion_control {
        crate::net::set_congestion_control(listener, name).with_context(|| {
            format!(
                "setting TCP congestion control {name:?} (available: {}; without root, only \
                 those in net.ipv4.tcp_allowed_congestion_control)",
                crate::net::available_congestion_controls()
            )
        })?;
    }
    Ok(())
}

/// The web side's certificate and sessions, when the stream is paired.
fn web_keys(config: &SenderConfig) -> Result<Option<WebKeys>> {
    Ok(match config.pairing.code() {
        Some(code) => {
            let keys = certificate::load(&config.tls, code).context("setting up HTTPS")?;
            log::info!(
                "web page certificate SHA-256 fingerprint {}",
                keys.fingerprint
            );
            Some(keys)
        }
        None => None,
    })
}

/// A thread for each `--publish` server, publishing from the feed publishers take.
fn start_publishers(
    config: &SenderConfig,
    shared: &Arc<Shared>,
    hello: &StreamHello,
) -> Result<Vec<thread::JoinHandle<()>>> {
    (0..config.publish.len())
        .map(|index| {
            let shared = Arc::clone(shared);
            let track = sinks::publish::Track {
                stored: codec::format(sinks::publish::CODEC)
                    .stored()
                    .context("H.264 cannot be published")?,
                size: (hello.width, hello.height),
                fps: hello.fps,
            };
            thread::Builder::new()
                .name("publisher".into())
                .spawn(move || {
                    let (target, status) = &shared.publishers[index];
                    sinks::publish::run(target, &track, shared.feeds.publish_sinks(), status);
                })
                .context("starting a publisher")
        })
        .collect()
}

/// What the stream will be (its hello) and the rate the source is read at, logged once.
fn stream_hello(config: &SenderConfig, source: &Source) -> Result<(StreamHello, Option<f64>)> {
    let (width, height) = source.size();
    let fps = match (config.fps, &config.source) {
        (Some(fps), _) => Some(fps),
        (None, SourceSpec::TestPattern { .. }) => Some(PATTERN_FPS),
        (None, _) => source.native_fps(),
    };
    let hello = StreamHello {
        security: config.pairing.security(),
        ..StreamHello::new(width, height, config.codec, fps.unwrap_or(0.0))
    };
    hello
        .check()
        .with_context(|| format!("streaming {}", source.name()))?;
    log::info!(
        "streaming {} ({width}x{height} {}, {})",
        source.name(),
        config.codec,
        match fps {
            Some(fps) if fps > 0.0 => format!("{fps} fps"),
            _ => "as fast as possible".into(),
        }
    );
    Ok((hello, fps))
}
