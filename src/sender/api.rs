//! [`Sender`]: frames a program makes (an annotated picture, a depth map turned to BGR, a
//! simulation) served exactly as the `sender` program serves a camera: encoded once, to
//! receivers, browser tabs and `/stream.mjpg`, paired and encrypted. [`Sender::send`] never
//! blocks: it leaves the frame as the newest, and the sender's own thread takes it from there.

use super::{certificate::TlsSource, DEFAULT_VIEWER_TIMEOUT};
use super::{serve, SenderConfig, DEFAULT_KEYFRAME_INTERVAL, DEFAULT_MAX_VIEWERS};
use crate::config::{Bitrate, SourceSpec};
use crate::media::capture::{Capture, Opener};
use crate::media::source::{FrameMaker, Source};
use crate::stats::SenderReport;
use crate::wire::protocol::Codec;
use crate::wire::secure::{self, PairingMode};
use crate::{lock, Stop};
use anyhow::{anyhow, bail, Context, Result};
use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// A program that sends nothing for this long shows viewers NO SIGNAL until it sends again.
const SILENCE_LIMIT: Duration = Duration::from_secs(5);

/// How a [`Sender`] serves its frames.
#[derive(Debug, Clone)]
pub struct SenderOptions {
    pub codec: Codec,
    /// JPEG quality, 1-100.
    pub quality: u8,
    /// The code viewers must pair with; `None`: a new one ([`Sender::code`] says it), or
    /// [`PairingMode::Insecure`] for none at all.
    pub pairing: Option<PairingMode>,
    /// H.264's bit rate.
    pub bitrate: Bitrate,
    /// The rate the program sends at, if it keeps one: frames are taken at most this often,
    /// and viewers' rate control counts on it (`None`: as they come).
    pub fps: Option<f64>,
    pub max_viewers: usize,
    /// Media servers to publish to as well, as the `sender` program's `--publish`: `rtmp://`,
    /// `rtsp://` or `srt://` URLs (H.264).
    pub publish: Vec<String>,
}

impl Default for SenderOptions {
    fn default() -> SenderOptions {
        SenderOptions {
            codec: Codec::Jpeg,
            quality: super::DEFAULT_QUALITY,
            pairing: None,
            bitrate: Bitrate::Auto,
            fps: None,
            max_viewers: DEFAULT_MAX_VIEWERS.into(),
            publish: Vec::new(),
        }
    }
}

/// Serves the frames a program sends (and publishes them, with [`SenderOptions::publish`]).
///
/// ```no_run
/// use camstream::{Sender, SenderOptions};
///
/// let mut sender = Sender::bind("0.0.0.0:9999", SenderOptions::default())?;
/// println!("pairing code {}", sender.code().unwrap_or("none"));
/// let (width, height) = (640, 480);
/// for shade in 0..=255u8 {
///     sender.send(&vec![shade; width * height * 3], width as u32, height as u32)?;
///     std::thread::sleep(std::time::Duration::from_millis(33));
/// }
/// # Ok::<(), anyhow::Error>(())
/// ```
pub struct Sender {
    config: SenderConfig,
    local_addr: SocketAddr,
    /// Until the first frame, which gives the stream its size.
    listener: Option<TcpListener>,
    frames: Option<Arc<Pushed>>,
    /// The buffer the next frame is copied into before it is swapped into the slot: the copy
    /// is made without the lock, so the sender's reader never waits for it.
    spare: Vec<u8>,
    stop: Stop,
    serving: Option<JoinHandle<Result<SenderReport>>>,
}

impl Sender {
    /// Listens on `address` (`IP:PORT`; port 0 picks a free one, [`Sender::local_addr`]).
    /// Viewers are served from the first [`Sender::send`] on, which sets the stream's size.
    pub fn bind(address: &str, options: SenderOptions) -> Result<Sender> {
        let listener =
            TcpListener::bind(address).with_context(|| format!("listening on {address}"))?;
        let publish = (options.publish.iter())
            .map(|url| url.parse().map_err(|e: String| anyhow!(e)))
            .collect::<Result<_>>()?;
        let pairing = match options.pairing {
            Some(pairing) => pairing,
            None => PairingMode::Code(secure::new_code()?),
        };
        let config = SenderConfig {
            source: SourceSpec::Program,
            codec: options.codec,
            quality: Some(options.quality),
            fps: options.fps,
            size: None,
            camera_format: Default::default(),
            frames: None,
            looping: false,
            allow: None,
            max_viewers: options.max_viewers,
            viewer_timeout: Duration::from_secs(DEFAULT_VIEWER_TIMEOUT),
            preview: false,
            pairing,
            keyframe_interval: DEFAULT_KEYFRAME_INTERVAL,
            encoder: Default::default(),
            bitrate: options.bitrate,
            tls: TlsSource::SelfSigned {
                folder: TlsSource::default_folder(),
            },
            publish,
            congestion_control: None,
        };
        Ok(Sender {
            config,
            local_addr: listener.local_addr()?,
            listener: Some(listener),
            frames: None,
            spare: Vec::new(),
            stop: Stop::default(),
            serving: None,
        })
    }

    /// The pairing code viewers must give; `None` when insecure.
    pub fn code(&self) -> Option<&str> {
        self.config.pairing.code()
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The stream's size, once the first frame has set it.
    pub fn size(&self) -> Option<(u32, u32)> {
        self.frames.as_ref().map(|frames| frames.size)
    }

    /// Leaves `bgr` (`height` rows of `width` pixels, blue, green, red) as the newest frame and
    /// returns at once. Every frame must have the first one's size. An error is a frame of the
    /// wrong size, or a sender that stopped (its cause).
    pub fn send(&mut self, bgr: &[u8], width: u32, height: u32) -> Result<()> {
        self.check_frame(bgr.len(), width, height)?;
        let frames = match &self.frames {
            Some(frames) => Arc::clone(frames),
            None => self.start((width, height))?,
        };
        if self.serving.as_ref().is_some_and(JoinHandle::is_finished) {
            return Err(self
                .finish()
                .err()
                .unwrap_or_else(|| anyhow!("the sender stopped")));
        }
        self.spare.clear();
        self.spare.extend_from_slice(bgr);
        let mut slot = lock(&frames.slot);
        std::mem::swap(&mut slot.frame, &mut self.spare);
        slot.count += 1;
        frames.fresh.notify_all();
        Ok(())
    }

    /// Waits up to `timeout` until a viewer is ready for a frame newer than the last one sent:
    /// for a program that makes frames as fast as it can, to make only those that will be
    /// sent, as the `sender` program's `--fps 0` does. True when one is (and at once before the
    /// first frame, or with [`SenderOptions::fps`], where frames are taken at that rate);
    /// false after `timeout` (nobody watching, or nobody ready yet).
    ///
    /// From the first call on, the sender takes the program's frames only when a viewer is
    /// ready for one (without it, it takes each as it comes, and a viewer's missed frames are
    /// counted as dropped).
    pub fn wait_wanted(&self, timeout: Duration) -> bool {
        let Some(frames) = self.frames.as_ref().filter(|frames| frames.fps.is_none()) else {
            return true;
        };
        frames.on_demand.store(true, Ordering::Relaxed);
        let slot = lock(&frames.slot);
        let (slot, _) = frames
            .fresh
            .wait_timeout_while(slot, timeout, |slot| !slot.is_wanted() && !slot.closed)
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        slot.is_wanted()
    }

    /// Whether a frame of `len` bytes at `width` x `height` is one [`Sender::send`] takes: BGR
    /// of that size, and the first frame's size.
    pub fn check_frame(&self, len: usize, width: u32, height: u32) -> Result<()> {
        let expected = width as usize * height as usize * 3;
        if len != expected || width == 0 || height == 0 {
            bail!("a {width}x{height} BGR frame is {expected} bytes, not {len}");
        }
        match self.size() {
            Some((w, h)) if (w, h) != (width, height) => bail!(
                "this stream's frames are {w}x{h} (the first one's size), not {width}x{height}"
            ),
            _ => Ok(()),
        }
    }

    /// Stops serving and says what was sent.
    pub fn close(mut self) -> Result<SenderReport> {
        self.finish()
    }

    fn start(&mut self, size: (u32, u32)) -> Result<Arc<Pushed>> {
        let listener = (self.listener.take()).ok_or_else(|| anyhow!("the sender has stopped"))?;
        let frames = Arc::new(Pushed {
            size,
            fps: self.config.fps,
            slot: Mutex::new(Slot::default()),
            fresh: Condvar::new(),
            on_demand: AtomicBool::new(false),
        });
        let opener: Opener = {
            let frames = Arc::clone(&frames);
            Box::new(move || Ok(PushedCapture::boxed(&frames, false)))
        };
        let source = Source::live_opened(PushedCapture::boxed(&frames, true), opener)
            .made_by(Box::new(Arc::clone(&frames)));
        let (config, stop) = (self.config.clone(), self.stop.clone());
        self.serving = Some(thread::spawn(move || {
            serve(&config, source, listener, &stop)
        }));
        self.frames = Some(Arc::clone(&frames));
        Ok(frames)
    }

    fn finish(&mut self) -> Result<SenderReport> {
        self.stop.raise();
        if let Some(frames) = &self.frames {
            lock(&frames.slot).closed = true;
            frames.fresh.notify_all();
        }
        match self.serving.take() {
            Some(serving) => serving
                .join()
                .map_err(|_| anyhow!("the sender's thread failed"))?,
            None => Ok(SenderReport::default()),
        }
    }
}

impl Drop for Sender {
    fn drop(&mut self) {
        let _ = self.finish();
    }
}

/// The newest frame the program sent, shared with the sender's reader.
struct Pushed {
    size: (u32, u32),
    fps: Option<f64>,
    slot: Mutex<Slot>,
    fresh: Condvar,
    /// The program asked to make frames on demand ([`Sender::wait_wanted`]).
    on_demand: AtomicBool,
}

/// The program makes its frames on demand once it waits for them to be wanted.
impl FrameMaker for Arc<Pushed> {
    fn on_demand(&self) -> bool {
        self.on_demand.load(Ordering::Relaxed)
    }

    fn wanted(&self) {
        let mut slot = lock(&self.slot);
        slot.wanted_after = Some(slot.count);
        self.fresh.notify_all();
    }
}

impl Slot {
    /// Whether a viewer is ready for a frame newer than the last one sent.
    fn is_wanted(&self) -> bool {
        self.wanted_after == Some(self.count)
    }
}

#[derive(Default)]
struct Slot {
    frame: Vec<u8>,
    /// Frames sent so far.
    count: u64,
    /// A viewer is ready for a frame after this many were sent (a sender without `fps`): once
    /// `count` is past it, the frame that wish was for has been sent.
    wanted_after: Option<u64>,
    closed: bool,
}

/// The program's frames as a capture: a read waits for a frame newer than the last one read,
/// and takes it.
struct PushedCapture {
    frames: Arc<Pushed>,
    taken: u64,
}

impl PushedCapture {
    /// The first reader starts with the first frame, already in the slot; one that replaces a
    /// reader (after a silence) waits for the next.
    fn boxed(frames: &Arc<Pushed>, first: bool) -> Box<dyn Capture> {
        let count = lock(&frames.slot).count;
        Box::new(PushedCapture {
            frames: Arc::clone(frames),
            taken: count - u64::from(first && count > 0),
        })
    }
}

impl Capture for PushedCapture {
    fn name(&self) -> &str {
        "the program's frames"
    }

    fn size(&self) -> (u32, u32) {
        self.frames.size
    }

    fn native_fps(&self) -> Option<f64> {
        self.frames.fps
    }

    fn silence_limit(&self) -> Duration {
        SILENCE_LIMIT
    }

    fn read_into(&mut self, out: &mut Vec<u8>) -> Result<bool> {
        let slot = lock(&self.frames.slot);
        let mut slot = self
            .frames
            .fresh
            .wait_while(slot, |slot| slot.count == self.taken && !slot.closed)
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if slot.closed {
            return Ok(false);
        }
        self.taken = slot.count;
        // Taken, not copied: the slot keeps the reader's old buffer, which the next send
        // swaps out again as its spare.
        std::mem::swap(out, &mut slot.frame);
        Ok(true)
    }
}
