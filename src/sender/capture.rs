//! The capture loop: reads the source at its pace (or, unpaced, when a viewer is ready for a
//! frame), encodes each frame once for every sink, shows the preview, and while a live source is
//! lost sends a "NO SIGNAL" card instead. Runs on the calling thread, which highgui needs.
//!
//! A source's own JPEG goes out as it came in a JPEG stream; it is decoded only for what needs
//! pixels (the preview, a side feed of another codec).

use super::rate::RateControl;
use super::sinks::{BufferPool, Sinks};
use super::{SenderConfig, Shared, PREVIEW_TITLE};
use crate::config::Bitrate;
use crate::media::capture::{Next, Pixels, SourcePicture};
use crate::media::codec::{self, Encoder, EncoderSettings};
use crate::media::live::REOPEN_INTERVAL;
use crate::media::source::Source;
use crate::media::window::{draw_card, Window, WindowEvent};
use crate::media::Picture;
use crate::stats::{clock_time, SenderReport};
use crate::wire::protocol::unix_micros;
use crate::wire::protocol::{Codec, FrameHeader, PixelFormat};
use crate::{Stop, POLL};
use anyhow::Result;
use std::sync::atomic::Ordering;
use std::thread;
use std::time::{Duration, Instant, SystemTime};

/// A lost source is shown to viewers as a "NO SIGNAL" picture this often.
const NO_SIGNAL_INTERVAL: Duration = Duration::from_millis(500);
/// Frame buffers kept for reuse: in flight to viewers plus the one being filled.
const POOLED_BUFFERS: usize = 16;
/// Keyframes asked for by viewers (one joined, or skipped a frame) are made at most this often,
/// whatever the number of viewers; a request inside it waits, it is not dropped.
const KEYFRAME_REQUEST_INTERVAL: Duration = Duration::from_secs(1);

/// Streams from `source` to the shared sinks until it ends, `--frames` is reached or the user quits.
/// `timing` is the interval frames are read at (`None`: the source's own pace, or unpaced) and
/// the stream's frame rate as its hello says (0: unknown).
pub(super) fn run(
    config: &SenderConfig,
    source: &mut Source,
    (pace, stream_fps): (Option<Duration>, f64),
    shared: &Shared,
    stop: &Stop,
    report: &mut SenderReport,
) -> Result<()> {
    let window = match config.preview {
        true => Some(Window::open(PREVIEW_TITLE)?),
        false => None,
    };
    if window.is_some() {
        // A preview to photograph beside a receiver's window: the latency can be read off.
        source.show_capture_time();
    }
    let settings = encoder_settings(config, source.size(), stream_fps);
    let mut capture = CaptureLoop {
        config,
        sinks: &shared.feeds.sinks,
        shared,
        pace,
        preview: Preview {
            window: window.as_ref(),
            stop,
        },
        encoder: codec::format(config.codec).encoder(&settings)?,
        side_encoders: shared.feeds.sides.iter().map(|_| None).collect(),
        settings,
        rate: None,
        pool: BufferPool::new(POOLED_BUFFERS),
        picture: SourcePicture::new(source.size()),
        next_at: Instant::now(),
        last_card: None,
        last_forced_keyframe: None,
        told_waiting: false,
        frame_asked: false,
        seq: 0,
        counted: 0,
    };
    if capture.encoder.bitrate_kbps().is_some() && config.bitrate == Bitrate::Auto {
        capture.rate = Some(RateControl::new(
            capture.settings.bitrate_kbps,
            Instant::now(),
        ));
    }
    if let Some(kbps) = capture.encoder.bitrate_kbps() {
        shared
            .counters
            .bitrate_kbps
            .store(kbps.into(), Ordering::Relaxed);
    }
    while capture.turn(source)? == Turn::Again {}
    report.bitrate_kbps = capture.encoder.bitrate_kbps();
    Ok(())
}

/// How the stream's frames are encoded, at `(width, height)` paced at `fps`.
pub(super) fn encoder_settings(
    config: &SenderConfig,
    (width, height): (u32, u32),
    fps: f64,
) -> EncoderSettings {
    EncoderSettings {
        width,
        height,
        quality: config.quality.unwrap_or(super::DEFAULT_QUALITY),
        fps,
        keyframe_interval: config.keyframe_interval,
        bitrate_kbps: config.bitrate_kbps(width, height),
        encoder: config.encoder.clone(),
    }
}

/// What the capture loop does after one turn.
#[derive(PartialEq)]
enum Turn {
    Again,
    Done,
}

struct CaptureLoop<'a> {
    config: &'a SenderConfig,
    /// The stream's own sinks.
    sinks: &'a Sinks,
    shared: &'a Shared,
    pace: Option<Duration>,
    preview: Preview<'a>,
    encoder: Box<dyn Encoder>,
    /// One for each side feed ([`Shared`]'s `sides`), made when first wanted.
    side_encoders: Vec<Option<Box<dyn Encoder>>>,
    settings: EncoderSettings,
    /// `--bitrate auto` with a codec that has a bit rate.
    rate: Option<RateControl>,
    pool: BufferPool,
    /// The source's newest picture (for the preview, and the encoder's input).
    picture: SourcePicture,
    next_at: Instant,
    last_card: Option<Instant>,
    last_forced_keyframe: Option<Instant>,
    /// "waiting for a receiver" was logged.
    told_waiting: bool,
    /// A source made on demand was asked for a frame, not yet read: asked once, not again
    /// each time the wait for it runs out.
    frame_asked: bool,
    seq: u64,
    /// Frames that went out to viewers, for `--frames`.
    counted: u64,
}

impl CaptureLoop<'_> {
    /// Waits for the next frame to be due, reads it, and sends it.
    fn turn(&mut self, source: &mut Source) -> Result<Turn> {
        if self.wait_for_due(source)? {
            return Ok(Turn::Done);
        }
        let next = source.next_into(&mut self.picture.bytes, POLL)?;
        // Asked again once the frame came, or the source was lost (its frame went with it).
        if matches!(next, Next::Frame(_) | Next::Jpeg(_) | Next::Lost { .. }) {
            self.frame_asked = false;
        }
        let captured_at = match next {
            Next::Frame(at) => self.picture.is(Pixels::Bgr, at),
            Next::Jpeg(at) => self.picture.is(Pixels::Jpeg, at),
            Next::Ended if self.config.looping => {
                log::info!("{} ended; playing it again (--loop)", source.name());
                *source = Source::open(&self.config.source, &self.config.source_request())?;
                return Ok(Turn::Again);
            }
            Next::Ended => {
                log::info!("{} ended; ending the stream", source.name());
                return Ok(Turn::Done);
            }
            // A source lost because the sender is stopping (a program's own frames closed) is
            // no loss to show.
            Next::Lost { .. } if self.preview.stop.is_raised() => return Ok(Turn::Done),
            Next::Lost { since, why } if self.card_due() => {
                self.draw_no_signal(source, since, why)?;
                self.picture.is(Pixels::Bgr, SystemTime::now())
            }
            Next::Waiting | Next::Lost { .. } => {
                return Ok(match self.preview.quit_asked()? {
                    true => Turn::Done,
                    false => Turn::Again,
                });
            }
        };
        let counters = &self.shared.counters;
        counters.frames_captured.fetch_add(1, Ordering::Relaxed);
        if let Some(window) = self.preview.window {
            let (width, height) = source.size();
            if let Some(bgr) = self.picture.bgr()? {
                window.show(&Picture::new(width, height, bgr))?;
            }
            if self.preview.quit_asked()? {
                return Ok(Turn::Done);
            }
        }
        // Encoding for nobody is wasted work; the preview needs only the pixels.
        if self.send(source, captured_at)? == Turn::Done {
            return Ok(Turn::Done);
        }
        self.seq += 1;
        Ok(Turn::Again)
    }

    /// Waits until the next frame is due. Returns true if the user asked to quit.
    fn wait_for_due(&mut self, source: &mut Source) -> Result<bool> {
        // A file waits for its first viewer, so that viewer sees it from the start.
        while self.seq == 0 && source.is_file() && !self.anyone_watches() {
            if !std::mem::replace(&mut self.told_waiting, true) {
                log::info!("waiting for a receiver before playing {}", source.name());
            }
            if self.preview.wait_until(Instant::now() + POLL)? {
                return Ok(true);
            }
            self.next_at = Instant::now();
        }
        match self.pace {
            Some(interval) => {
                if self.preview.wait_until(self.next_at)? {
                    return Ok(true);
                }
                // Late by more than a frame: start afresh rather than rush to catch up.
                self.next_at = (self.next_at + interval).max(Instant::now() - interval);
                Ok(false)
            }
            None if !source.is_live() || source.is_made_on_demand() => {
                let Some(waited) = self.wait_for_demand()? else {
                    return Ok(true);
                };
                // Asked once per frame; again when a viewer is ready after none was (the
                // silence of a source made on demand counts from the asking).
                if waited || !self.frame_asked {
                    self.frame_asked = true;
                    source.frame_wanted();
                }
                Ok(false)
            }
            None => Ok(false),
        }
    }

    /// Unpaced: waits until a viewer is ready for a frame (of the stream's codec or a side
    /// one's). `None` if the user asked to quit; else whether it had to wait (nobody was ready).
    fn wait_for_demand(&self) -> Result<Option<bool>> {
        let mut waited = false;
        loop {
            if self.preview.stop.is_raised() {
                return Ok(None);
            }
            if self.shared.feeds.wait_for_demand(POLL) {
                return Ok(Some(waited));
            }
            waited = true;
            if self.preview.quit_asked()? {
                return Ok(None);
            }
        }
    }

    fn card_due(&self) -> bool {
        self.last_card
            .is_none_or(|at| at.elapsed() >= NO_SIGNAL_INTERVAL)
    }

    fn draw_no_signal(&mut self, source: &Source, since: SystemTime, why: String) -> Result<()> {
        self.last_card = Some(Instant::now());
        let lines = [
            "NO SIGNAL".to_owned(),
            format!("{} lost at {}", source.name(), clock_time(since)),
            why,
            format!("trying again every {} s", REOPEN_INTERVAL.as_secs()),
        ];
        let (width, height) = source.size();
        draw_card(width, height, &lines, &mut self.picture.bytes)
    }

    /// Whether some sink, of the stream or a side feed, is receiving frames.
    fn anyone_watches(&self) -> bool {
        self.shared
            .feeds
            .registries()
            .any(|sinks| sinks.active() > 0)
    }

    /// Encodes the picture once for each codec some sink wants and offers it to those sinks.
    fn send(&mut self, source: &Source, captured_at: SystemTime) -> Result<Turn> {
        let (width, height) = source.size();
        let header = FrameHeader {
            seq: self.seq,
            capture_unix_us: unix_micros(captured_at),
            width,
            height,
            pixel_format: PixelFormat::Bgr8,
            codec: self.config.codec,
            keyframe: true,
        };
        // First, as the raw encoder takes the picture.
        let mut side_offered = 0;
        for side in 0..self.shared.feeds.sides.len() {
            side_offered += self.send_side(side, header)?;
        }
        if self.sinks.active() == 0 {
            return Ok(self.count(side_offered));
        }
        let counters = &self.shared.counters;
        counters.frames_encoded.fetch_add(1, Ordering::Relaxed);
        let sinks = self.sinks;
        if let Some(kbps) = self
            .rate
            .as_mut()
            .and_then(|rate| rate.update(Instant::now(), || sinks.feedback()))
        {
            self.encoder.set_bitrate(kbps);
            // An encoder that cannot change its rate mid-stream keeps the one it opened with.
            let kbps = self.encoder.bitrate_kbps().unwrap_or(kbps);
            log::debug!("bit rate now {kbps} kbit/s");
            counters.bitrate_kbps.store(kbps.into(), Ordering::Relaxed);
        }
        let mut data = self.pool.buffer();
        let force = self.sinks.wants_keyframe()
            && self
                .last_forced_keyframe
                .is_none_or(|at| at.elapsed() >= KEYFRAME_REQUEST_INTERVAL);
        if force {
            self.last_forced_keyframe = Some(Instant::now());
        }
        let keyframe = match (self.picture.pixels, self.config.codec) {
            (Pixels::Jpeg, Codec::Jpeg) => {
                // As it came: the buffer becomes the frame, as raw pictures do.
                std::mem::swap(&mut self.picture.bytes, &mut data);
                true
            }
            _ => match self.picture.bgr()? {
                Some(bgr) => self.encoder.encode(bgr, &mut data, force)?,
                None => return Ok(self.count(side_offered)),
            },
        };
        let frame = self.pool.frame(FrameHeader { keyframe, ..header }, data);
        let offered = self.sinks.publish(&frame)?;
        Ok(self.count(side_offered + offered))
    }

    /// Encodes the picture for side feed `side`, if any of its sinks is receiving frames;
    /// returns how many were offered it.
    fn send_side(&mut self, side: usize, header: FrameHeader) -> Result<usize> {
        let (Some(feed), Some(encoder)) = (
            self.shared.feeds.sides.get(side),
            self.side_encoders.get_mut(side),
        ) else {
            return Ok(0);
        };
        if feed.sinks.active() == 0 {
            return Ok(0);
        }
        let encoder = match encoder {
            Some(encoder) => encoder,
            empty => empty.insert(codec::format(feed.codec).encoder(&self.settings)?),
        };
        let Some(bgr) = self.picture.bgr()? else {
            return Ok(0);
        };
        let mut data = self.pool.buffer();
        let keyframe = encoder.encode(bgr, &mut data, feed.sinks.wants_keyframe())?;
        feed.encoded.fetch_add(1, Ordering::Relaxed);
        let header = FrameHeader {
            codec: feed.codec,
            keyframe,
            ..header
        };
        feed.sinks.publish(&self.pool.frame(header, data))
    }

    /// Counts a frame that went out to `offered` sinks towards `--frames`.
    fn count(&mut self, offered: usize) -> Turn {
        if offered > 0 {
            self.counted += 1;
            if self.config.frames == Some(self.counted) {
                log::info!("sent {} frames (--frames); ending the stream", self.counted);
                return Turn::Done;
            }
        }
        Turn::Again
    }
}

/// The preview window (if any) and the stop signal: what every wait keeps an eye on.
struct Preview<'a> {
    window: Option<&'a Window>,
    stop: &'a Stop,
}

impl Preview<'_> {
    /// Waits until `deadline`, keeping the window responsive. Returns true if the user asked to
    /// quit (`q` raises `stop`).
    fn wait_until(&self, deadline: Instant) -> Result<bool> {
        loop {
            if self.stop.is_raised() {
                return Ok(true);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(false);
            }
            let step = left.min(POLL);
            match self.window {
                Some(window) => {
                    if window.poll(step.as_millis().max(1) as i32)? == WindowEvent::Quit {
                        self.stop.raise();
                        return Ok(true);
                    }
                }
                None => thread::sleep(step),
            }
        }
    }

    /// Runs the window's events once. Returns true if the user asked to quit; `q` in the window
    /// raises `stop` like Ctrl-C does, so everything after knows the user is waiting.
    fn quit_asked(&self) -> Result<bool> {
        if self.stop.is_raised() {
            return Ok(true);
        }
        let quit = match self.window {
            Some(window) => window.poll(1)? == WindowEvent::Quit,
            None => false,
        };
        if quit {
            self.stop.raise();
        }
        Ok(quit)
    }
}
