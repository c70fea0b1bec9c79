//! Live sources (cameras, network streams) read on their own thread, so that the frame the
//! sender sends is always the newest one (OpenCV's internal buffer is drained at the camera's
//! rate), a read that fails or blocks is noticed within [`SIGNAL_TIMEOUT`], and a lost source is
//! reopened every [`REOPEN_INTERVAL`] until it is back, while the sender keeps serving.

use crate::error_line;
use anyhow::{anyhow, Result};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

/// A source that has delivered nothing for this long is lost, even if its read never returns.
pub const SIGNAL_TIMEOUT: Duration = Duration::from_millis(1500);
/// A lost source is tried again this often.
pub const REOPEN_INTERVAL: Duration = Duration::from_secs(2);
/// How often a reader waiting to reopen looks whether it is still wanted.
const POLL: Duration = Duration::from_millis(50);

/// Something a live source reads from: a camera, a stream, or a test's fake camera.
pub trait Capture: Send {
    /// What the user calls it: "camera 0", "stream rtsp://...".
    fn name(&self) -> &str;
    /// Frame size in pixels; every frame has it.
    fn size(&self) -> (u32, u32);
    /// The rate the source says it runs at, if it says.
    fn native_fps(&self) -> Option<f64>;
    /// Reads the next frame as BGR rows into `out`. `Ok(false)`: the source stopped.
    fn read_into(&mut self, out: &mut Vec<u8>) -> Result<bool>;
}

/// Opens (and later reopens) the capture behind a live source.
pub type Opener = Box<dyn FnMut() -> Result<Box<dyn Capture>> + Send>;

/// What [`LiveSource::next_into`] found.
#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    /// A new frame, captured at this time, is in the buffer.
    Frame(SystemTime),
    /// No new frame yet; the source is fine.
    Waiting,
    /// The source is lost: since when, and why.
    Lost { since: SystemTime, why: String },
}

/// A live source: one reader thread keeps the newest frame; [`LiveSource::next_into`] takes it.
pub struct LiveSource {
    name: String,
    size: (u32, u32),
    native_fps: Option<f64>,
    shared: Arc<Shared>,
    opener: Arc<Mutex<Opener>>,
    /// Frames taken so far (the `count` of the last one).
    taken: u64,
    last_frame_at: Instant,
}

struct Shared {
    latest: Mutex<Latest>,
    fresh: Condvar,
}

struct Latest {
    frame: Vec<u8>,
    captured_at: SystemTime,
    /// Frames delivered so far.
    count: u64,
    lost: Option<(SystemTime, String)>,
    /// Only the reader of this generation may deliver; a reader stuck in a read is replaced by
    /// moving it on, and leaves when its read returns. [`CLOSED`] tells every reader to leave.
    generation: u64,
}

const CLOSED: u64 = u64::MAX;

impl LiveSource {
    /// Opens the source once (an error here is the user's to fix, like a camera that is not
    /// there) and starts reading it.
    pub fn start(mut opener: Opener) -> Result<LiveSource> {
        let capture = opener()?;
        let size = capture.size();
        let name = capture.name().to_owned();
        let shared = Arc::new(Shared {
            latest: Mutex::new(Latest {
                frame: Vec::new(),
                captured_at: SystemTime::now(),
                count: 0,
                lost: None,
                generation: 0,
            }),
            fresh: Condvar::new(),
        });
        let source = LiveSource {
            name,
            size,
            native_fps: capture.native_fps(),
            shared,
            opener: Arc::new(Mutex::new(opener)),
            taken: 0,
            last_frame_at: Instant::now(),
        };
        source.spawn_reader(0, Some(capture));
        Ok(source)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn size(&self) -> (u32, u32) {
        self.size
    }

    pub fn native_fps(&self) -> Option<f64> {
        self.native_fps
    }

    /// Waits up to `wait` for a frame newer than the last one taken and copies it into `out`.
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
            out.clear();
            out.extend_from_slice(&latest.frame);
            return Next::Frame(latest.captured_at);
        }
        if latest.lost.is_none() && self.last_frame_at.elapsed() > SIGNAL_TIMEOUT {
            // The read has not returned: leave that reader behind and start a fresh one.
            let why = format!(
                "it delivered nothing for {:.1} s",
                SIGNAL_TIMEOUT.as_secs_f64()
            );
            log::warn!("{} lost: {why}; reopening it", self.name);
            latest.lost = Some((SystemTime::now() - SIGNAL_TIMEOUT, why));
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
        thread::spawn(move || reader.run(capture));
    }
}

/// Readers are not joined: one may be stuck in a read that never returns. They leave at their
/// next look at the generation.
impl Drop for LiveSource {
    fn drop(&mut self) {
        self.shared.lock().generation = CLOSED;
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Latest> {
        // A reader that panicked cannot leave the frame half-swapped; carry on with it.
        self.latest
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
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
    fn run(self, mut capture: Option<Box<dyn Capture>>) {
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
            let lost = match source.read_into(&mut frame) {
                Ok(true) if frame.len() == expected => {
                    if !self.deliver(&mut frame) {
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
            if !self.mark_lost(lost) {
                return;
            }
        }
    }

    /// Swaps `frame` in as the newest. Returns false if this reader is no longer wanted.
    fn deliver(&self, frame: &mut Vec<u8>) -> bool {
        let mut latest = self.shared.lock();
        if latest.generation != self.generation {
            return false;
        }
        std::mem::swap(&mut latest.frame, frame);
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

    /// Sleeps for `period` unless told to leave. Returns false if this reader is no longer wanted.
    fn wait(&self, period: Duration) -> bool {
        let deadline = Instant::now() + period;
        while Instant::now() < deadline {
            if self.shared.lock().generation != self.generation {
                return false;
            }
            thread::sleep(POLL);
        }
        self.shared.lock().generation == self.generation
    }

    fn reopen(&self) -> Option<Box<dyn Capture>> {
        let opened = match self.opener.lock() {
            Ok(mut open) => open(),
            Err(_) => Err(anyhow!("an earlier reopen failed badly")),
        };
        match opened {
            Ok(capture) if capture.size() == self.size => Some(capture),
            Ok(capture) => {
                let (width, height) = capture.size();
                log::warn!(
                    "{} came back at {width}x{height}, but the stream is {}x{}; trying again",
                    self.name,
                    self.size.0,
                    self.size.1
                );
                None
            }
            Err(e) => {
                log::debug!("reopening {}: {}", self.name, error_line(&e));
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU8, Ordering};

    const WORKING: u8 = 0;
    const UNPLUGGED: u8 = 1;
    const FROZEN: u8 = 2;

    /// Frames of one byte value that counts up; fails or blocks as `mode` says.
    struct Fake {
        mode: Arc<AtomicU8>,
        value: u8,
    }

    impl Capture for Fake {
        fn name(&self) -> &str {
            "fake camera"
        }
        fn size(&self) -> (u32, u32) {
            (2, 2)
        }
        fn native_fps(&self) -> Option<f64> {
            None
        }
        fn read_into(&mut self, out: &mut Vec<u8>) -> Result<bool> {
            thread::sleep(Duration::from_millis(5));
            while self.mode.load(Ordering::SeqCst) == FROZEN {
                thread::sleep(Duration::from_millis(5));
            }
            if self.mode.load(Ordering::SeqCst) == UNPLUGGED {
                return Ok(false);
            }
            self.value = self.value.wrapping_add(1);
            out.clear();
            out.resize(12, self.value);
            Ok(true)
        }
    }

    fn fake_source() -> (LiveSource, Arc<AtomicU8>) {
        let mode = Arc::new(AtomicU8::new(WORKING));
        let opener_mode = Arc::clone(&mode);
        let opener: Opener = Box::new(move || match opener_mode.load(Ordering::SeqCst) {
            WORKING => Ok(Box::new(Fake {
                mode: Arc::clone(&opener_mode),
                value: 0,
            })),
            _ => Err(anyhow!("no such device")),
        });
        (LiveSource::start(opener).unwrap(), mode)
    }

    /// Takes frames until `until` says stop or 10 s pass; returns what the last call said.
    fn take_until(source: &mut LiveSource, until: impl Fn(&Next) -> bool) -> Next {
        let mut out = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let next = source.next_into(&mut out, Duration::from_millis(20));
            if until(&next) || Instant::now() > deadline {
                return next;
            }
        }
    }

    #[test]
    fn frames_taken_are_the_newest_and_never_repeated() {
        let (mut source, _mode) = fake_source();
        let mut out = Vec::new();
        let mut last = 0;
        for _ in 0..5 {
            thread::sleep(Duration::from_millis(30));
            assert!(matches!(
                source.next_into(&mut out, Duration::from_secs(1)),
                Next::Frame(_)
            ));
            // Several frames were read meanwhile; the one taken is the latest, not the next.
            assert!(out[0] > last.max(1), "{} after {last}", out[0]);
            last = out[0];
        }
    }

    #[test]
    fn an_unplugged_source_is_lost_then_reopened() {
        let (mut source, mode) = fake_source();
        take_until(&mut source, |n| matches!(n, Next::Frame(_)));
        mode.store(UNPLUGGED, Ordering::SeqCst);
        let lost = take_until(&mut source, |n| matches!(n, Next::Lost { .. }));
        assert!(
            matches!(&lost, Next::Lost { why, .. } if why == "it stopped delivering frames"),
            "{lost:?}"
        );
        mode.store(WORKING, Ordering::SeqCst);
        let back = take_until(&mut source, |n| matches!(n, Next::Frame(_)));
        assert!(matches!(back, Next::Frame(_)), "{back:?}");
    }

    #[test]
    fn a_read_that_blocks_is_noticed_and_replaced() {
        let (mut source, mode) = fake_source();
        take_until(&mut source, |n| matches!(n, Next::Frame(_)));
        mode.store(FROZEN, Ordering::SeqCst);
        let started = Instant::now();
        let lost = take_until(&mut source, |n| matches!(n, Next::Lost { .. }));
        assert!(
            matches!(&lost, Next::Lost { why, .. } if why.starts_with("it delivered nothing")),
            "{lost:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(5));
        mode.store(WORKING, Ordering::SeqCst);
        let back = take_until(&mut source, |n| matches!(n, Next::Frame(_)));
        assert!(matches!(back, Next::Frame(_)), "{back:?}");
    }
}
