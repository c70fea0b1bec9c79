//! Live sources (cameras, network streams) read on their own thread, so that the frame the
//! sender sends is always the newest one (OpenCV's internal buffer is drained at the camera's
//! rate), a read that fails or blocks is noticed within [`super::capture::SIGNAL_TIMEOUT`], and a lost source is
//! reopened every [`REOPEN_INTERVAL`] until it is back, while the sender keeps serving.

use super::capture::{Capture, Decoded, Next, Opener, Pixels, Scaled};
use crate::{error_line, lock};
use anyhow::anyhow;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

/// A lost source is tried again this often.
pub const REOPEN_INTERVAL: Duration = Duration::from_secs(2);

/// A live source: one reader thread keeps the newest frame; [`LiveSource::next_into`] takes it.
pub(crate) struct LiveSource {
    name: String,
    size: (u32, u32),
    shared: Arc<Shared>,
    opener: Arc<Mutex<Opener>>,
    /// Delivering nothing for this long is a loss (the capture's [`Capture::silence_limit`]).
    silence: Duration,
    /// Frames taken so far (the `count` of the last one).
    taken: u64,
    last_frame_at: Instant,
}

struct Shared {
    latest: Mutex<Latest>,
    /// Signalled on a new frame, a loss, and when readers are told to leave.
    fresh: Condvar,
}

struct Latest {
    frame: Vec<u8>,
    /// What the frame's bytes are.
    pixels: Pixels,
    captured_at: SystemTime,
    /// Frames delivered so far.
    count: u64,
    lost: Option<(SystemTime, String)>,
    /// Only the reader of this generation may deliver; a reader stuck in a read is replaced by
    /// moving it on, and leaves when its read returns. [`CLOSED`] tells every reader to leave.
    generation: u64,
    /// Reader threads still running (each with its capture open).
    readers: usize,
}

const CLOSED: u64 = u64::MAX;

/// How long a reader whose capture ended waits before calling it a loss.
const CLOSING_GRACE: Duration = Duration::from_millis(100);

/// How long closing a source waits for its readers to close their captures. Not forever: one
/// may be stuck in a read that never returns.
const READER_EXIT_WAIT: Duration = Duration::from_secs(1);

impl LiveSource {
    /// Starts reading `capture`, which `opener` opened (an error there was the user's to fix,
    /// like a camera that is not there); `opener` opens it again whenever it is lost.
    pub fn start(capture: Box<dyn Capture>, opener: Opener) -> LiveSource {
        let size = capture.size();
        let name = capture.name().to_owned();
        let silence = capture.silence_limit();
        let shared = Arc::new(Shared {
            latest: Mutex::new(Latest {
                frame: Vec::new(),
                pixels: Pixels::Bgr,
                captured_at: SystemTime::now(),
                count: 0,
                lost: None,
                generation: 0,
                readers: 0,
            }),
            fresh: Condvar::new(),
        });
        let source = LiveSource {
            name,
            size,
            shared,
            opener: Arc::new(Mutex::new(opener)),
            silence,
            taken: 0,
            last_frame_at: Instant::now(),
        };
        source.spawn_reader(0, Some(capture));
        source
    }

    /// A frame was asked of what makes them on demand: its silence counts from now, not from
    /// its last frame (nobody wanted one in between).
    pub fn frame_asked(&mut self) {
        self.last_frame_at = Instant::now();
    }

    /// Waits up to `wait` for a frame newer than the last one taken and moves it into `out`.
    pub fn next_into(&mut self, out: &mut Vec<u8>, wait: Duration) -> Next {
        let mut latest = self.shared.lock();
        let deadline = Instant::now() + wait;
        while latest.count == self.taken {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            latest = match self.shared.fresh.wait_timeout(latest, left) {
                Ok((guard, _)) => guard,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
        if latest.count != self.taken {
            self.taken = latest.count;
            self.last_frame_at = Instant::now();
            // Taken, not copied: the reader's next frame replaces whatever is left in its place.
            std::mem::swap(out, &mut latest.frame);
            return match latest.pixels {
                Pixels::Bgr => Next::Frame(latest.captured_at),
                Pixels::Jpeg => Next::Jpeg(latest.captured_at),
            };
        }
        if latest.lost.is_none() && self.last_frame_at.elapsed() > self.silence {
            // The read has not returned: leave that reader behind and start a fresh one.
            let why = format!(
                "it delivered nothing for {:.1} s",
                self.silence.as_secs_f64()
            );
            log::warn!("{} lost: {why}; reopening it", self.name);
            latest.lost = Some((SystemTime::now() - self.silence, why));
            latest.generation += 1;
            let generation = latest.generation;
            drop(latest);
            self.spawn_reader(generation, None);
            latest = self.shared.lock();
        }
        match &latest.lost {
            Some((since, why)) => Next::Lost {
                since: *since,
                why: why.clone(),
            },
            None => Next::Waiting,
        }
    }

    fn spawn_reader(&self, generation: u64, capture: Option<Box<dyn Capture>>) {
        let reader = Reader {
            name: self.name.clone(),
            size: self.size,
            shared: Arc::clone(&self.shared),
            opener: Arc::clone(&self.opener),
            generation,
        };
        self.shared.lock().readers += 1;
        thread::spawn(move || reader.run(capture));
    }
}

/// Readers leave at their next look at the generation (one waiting to reopen, at once), and
/// are waited for, briefly: a capture still open when the process exits can crash it, as
/// libsrt's exit-time destructors free what a reader in `srt://` is still using.
impl Drop for LiveSource {
    fn drop(&mut self) {
        let mut latest = self.shared.lock();
        latest.generation = CLOSED;
        self.shared.fresh.notify_all();
        let waited = self
            .shared
            .fresh
            .wait_timeout_while(latest, READER_EXIT_WAIT, |l| l.readers > 0);
        if let Ok((latest, timeout)) = waited {
            if timeout.timed_out() {
                log::debug!(
                    "{}: {} reader(s) still in a read",
                    self.name,
                    latest.readers
                );
            }
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Latest> {
        // A reader that panicked cannot leave the frame half-swapped; carry on with it.
        lock(&self.latest)
    }
}

/// One reader thread: reads into its own buffer and swaps it with the newest frame.
struct Reader {
    name: String,
    size: (u32, u32),
    shared: Arc<Shared>,
    opener: Arc<Mutex<Opener>>,
    generation: u64,
}

impl Reader {
    fn run(self, capture: Option<Box<dyn Capture>>) {
        // The capture is closed by the time `read` returns.
        self.read(capture);
        let mut latest = self.shared.lock();
        latest.readers -= 1;
        self.shared.fresh.notify_all();
    }

    fn read(&self, mut capture: Option<Box<dyn Capture>>) {
        let expected = self.size.0 as usize * self.size.1 as usize * 3;
        let mut frame = Vec::new();
        loop {
            let Some(source) = capture.as_mut() else {
                if !self.wait(REOPEN_INTERVAL) {
                    return;
                }
                capture = self.reopen();
                continue;
            };
            // A JPEG's size was checked against its own header by the capture.
            let pixels = source.pixels();
            let lost = match source.read_into(&mut frame) {
                Ok(true) if pixels == Pixels::Jpeg || frame.len() == expected => {
                    if !self.deliver(&mut frame, pixels) {
                        return;
                    }
                    continue;
                }
                Ok(true) => format!(
                    "it delivered a frame of {} bytes, not {expected}",
                    frame.len()
                ),
                Ok(false) => "it stopped delivering frames".to_owned(),
                Err(e) => error_line(&e),
            };
            capture = None;
            // A capture that ends because its source is being closed (a program's Sender
            // closing) is no loss: the closing gets a moment to say so first.
            if !self.wait(CLOSING_GRACE) || !self.mark_lost(lost) {
                return;
            }
        }
    }

    /// Swaps `frame` in as the newest. Returns false if this reader is no longer wanted.
    fn deliver(&self, frame: &mut Vec<u8>, pixels: Pixels) -> bool {
        let mut latest = self.shared.lock();
        if latest.generation != self.generation {
            return false;
        }
        std::mem::swap(&mut latest.frame, frame);
        latest.pixels = pixels;
        latest.captured_at = SystemTime::now();
        latest.count += 1;
        if latest.lost.take().is_some() {
            log::info!("{} is back", self.name);
        }
        self.shared.fresh.notify_all();
        true
    }

    fn mark_lost(&self, why: String) -> bool {
        let mut latest = self.shared.lock();
        if latest.generation != self.generation {
            return false;
        }
        if latest.lost.is_none() {
            log::warn!(
                "{} lost: {why}; trying again every {} s",
                self.name,
                REOPEN_INTERVAL.as_secs()
            );
            latest.lost = Some((SystemTime::now(), why));
        }
        self.shared.fresh.notify_all();
        true
    }

    /// Waits for `period` unless told to leave. Returns false if this reader is no longer wanted.
    fn wait(&self, period: Duration) -> bool {
        let latest = self.shared.lock();
        let waited = self
            .shared
            .fresh
            .wait_timeout_while(latest, period, |l| l.generation == self.generation);
        let latest = match waited {
            Ok((latest, _)) => latest,
            Err(poisoned) => poisoned.into_inner().0,
        };
        latest.generation == self.generation
    }

    fn reopen(&self) -> Option<Box<dyn Capture>> {
        let opened = match self.opener.lock() {
            Ok(mut open) => open(),
            Err(_) => Err(anyhow!("an earlier reopen failed badly")),
        };
        match opened {
            Ok(capture) if capture.size() == self.size => Some(capture),
            Ok(capture) => {
                // The stream keeps its hello: receivers and recordings need not follow a change.
                let (width, height) = capture.size();
                log::warn!(
                    "{} came back at {width}x{height}; scaling to the stream's {}x{}",
                    self.name,
                    self.size.0,
                    self.size.1
                );
                let capture: Box<dyn Capture> = match capture.pixels() {
                    Pixels::Jpeg => Box::new(Decoded::new(capture)),
                    Pixels::Bgr => capture,
                };
                Some(Box::new(Scaled::new(capture, self.size)))
            }
            Err(e) => {
                log::debug!("reopening {}: {}", self.name, error_line(&e));
                None
            }
        }
    }
}
