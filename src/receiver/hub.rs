//! [`Hub`]: several senders' frames in one place, as imagezmq's hub and camera dashboards
//! gather them. Each sender has its own [`Receiver`] on its own thread (pairing, decoding,
//! recording, reconnecting on its own); the hub keeps each one's newest frame and hands them
//! over in turn, so a slow caller sees every sender's newest frame, the ones it missed counted.

use super::api::{Frame, Receiver, ReceiverOptions};
use crate::stats::ReceiverReport;
use crate::wire::secure::PairingMode;
use crate::POLL;
use anyhow::{bail, Result};
use serde::Serialize;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime};

/// How often a sender's thread refreshes what [`Hub::senders`] says of it (and at once when
/// the sender is lost or back).
const STATE_PERIOD: Duration = Duration::from_millis(250);

/// Several senders' newest frames, taken one at a time: `(sender, frame)`, where `sender` is the
/// number [`Hub::add`] gave it.
///
/// ```no_run
/// use camstream::{Hub, PairingMode};
///
/// let mut hub = Hub::new();
/// let door = hub.add("192.168.1.20:9999", PairingMode::Code("37-noble-otter".into()))?;
/// let bench = hub.add("192.168.1.21:9999", PairingMode::Code("12-brave-heron".into()))?;
/// for taken in hub.by_ref().take(100) {
///     let (sender, frame) = taken?;
///     let name = if sender == door { "door" } else { "bench" };
///     println!("{name}: frame {} {}x{}", frame.seq, frame.width, frame.height);
/// }
/// # let _ = bench;
/// # Ok::<(), anyhow::Error>(())
/// ```
pub struct Hub {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
    /// The sender looked at first next time, so that none is always served first.
    next: usize,
}

/// What the hub knows of one sender, refreshed by its thread a few times a second.
#[derive(Debug, Clone, Serialize)]
pub struct HubSender {
    /// Its address, as given.
    pub sender: String,
    /// Frames handed over by the hub.
    pub taken: u64,
    /// Frames that came and were replaced by a newer one before they were taken.
    pub skipped: u64,
    /// Since when the sender is away and why, while it is reconnected.
    #[serde(skip)]
    pub lost: Option<(SystemTime, String)>,
    /// Its stream has ended (it is not reconnected, or it came back with another code).
    #[serde(skip)]
    pub ended: bool,
    /// Its receiver's statistics, as the `receiver` program's `--stats` counts them.
    #[serde(flatten)]
    pub receiver: Option<ReceiverReport>,
}

struct Shared {
    slots: Mutex<Vec<Slot>>,
    arrived: Condvar,
    closing: AtomicBool,
}

struct Slot {
    frame: Option<Frame>,
    /// Why its stream broke, handed over once.
    error: Option<anyhow::Error>,
    state: HubSender,
}

impl Default for Hub {
    fn default() -> Hub {
        Hub::new()
    }
}

impl Hub {
    /// A hub with no senders yet.
    pub fn new() -> Hub {
        Hub {
            shared: Arc::new(Shared {
                slots: Mutex::new(Vec::new()),
                arrived: Condvar::new(),
                closing: AtomicBool::new(false),
            }),
            threads: Vec::new(),
            next: 0,
        }
    }

    /// Connects to one more sender ([`Receiver::connect`]) and returns its number, counted from
    /// 0 in the order they were added. Fails at once, as `connect` does.
    pub fn add(&mut self, address: &str, pairing: PairingMode) -> Result<usize> {
        self.add_with(address, pairing, ReceiverOptions::default())
    }

    /// [`Hub::add`], with options: each sender's own (`record`, `reconnect`).
    pub fn add_with(
        &mut self,
        address: &str,
        pairing: PairingMode,
        options: ReceiverOptions,
    ) -> Result<usize> {
        let receiver = Receiver::connect_with(address, pairing, options)?;
        Ok(self.add_receiver(receiver))
    }

    /// Takes a receiver already connected, and returns its number.
    pub fn add_receiver(&mut self, receiver: Receiver) -> usize {
        let mut slots = crate::lock(&self.shared.slots);
        let index = slots.len();
        slots.push(Slot {
            frame: None,
            error: None,
            state: HubSender {
                sender: receiver.sender(),
                taken: 0,
                skipped: 0,
                lost: None,
                ended: false,
                receiver: None,
            },
        });
        drop(slots);
        let shared = self.shared.clone();
        self.threads
            .push(thread::spawn(move || receive(receiver, index, &shared)));
        index
    }

    /// Waits for the next frame from any sender. An error is one sender's stream that ended or
    /// broke (see [`Hub::recv_timeout`]); once every sender's has, an error says so.
    pub fn recv(&mut self) -> Result<(usize, Frame)> {
        loop {
            if let Some(taken) = self.recv_timeout(Duration::from_secs(1))? {
                return Ok(taken);
            }
        }
    }

    /// Waits up to `timeout` for a frame from any sender, taking them in turn: `None` if none
    /// came. An error names the sender whose stream broke without being reconnected
    /// ([`ReceiverOptions::reconnect`]), or that came back with another code; the others go on
    /// (a stream that ends cleanly is only [`HubSender::ended`]). Once every stream has ended,
    /// an error says so.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<Option<(usize, Frame)>> {
        match self.next_timeout(timeout) {
            Some(taken) => taken,
            None => match self.threads.len() {
                0 => bail!("the hub has no senders"),
                _ => bail!("every sender's stream has ended"),
            },
        }
    }

    /// [`Hub::recv_timeout`], but `None` once every sender's stream has ended and all they
    /// sent has been taken.
    pub fn next_timeout(&mut self, timeout: Duration) -> Option<Result<Option<(usize, Frame)>>> {
        let deadline = Instant::now() + timeout;
        let mut slots = crate::lock(&self.shared.slots);
        loop {
            let count = slots.len();
            for i in (0..count).map(|i| (self.next + i) % count) {
                let slot = &mut slots[i];
                if let Some(error) = slot.error.take() {
                    return Some(Err(error.context(format!("sender {}", slot.state.sender))));
                }
                if let Some(frame) = slot.frame.take() {
                    slot.state.taken += 1;
                    self.next = i + 1;
                    return Some(Ok(Some((i, frame))));
                }
            }
            if slots.iter().all(|slot| slot.state.ended) {
                return None;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Some(Ok(None));
            }
            slots = match self.shared.arrived.wait_timeout(slots, left) {
                Ok((slots, _)) => slots,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
    }

    /// Each sender as last seen: numbered as [`Hub::add`] numbered them.
    pub fn senders(&self) -> Vec<HubSender> {
        let slots = crate::lock(&self.shared.slots);
        slots.iter().map(|slot| slot.state.clone()).collect()
    }

    /// Disconnects every sender, finishes their recordings, and says how each went.
    pub fn close(mut self) -> Vec<HubSender> {
        self.stop();
        self.senders()
    }

    fn stop(&mut self) {
        self.shared.closing.store(true, Ordering::SeqCst);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Frames until every sender's stream has ended (never, while they reconnect): an error for
/// each that broke.
impl Iterator for Hub {
    type Item = Result<(usize, Frame)>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            match self.next_timeout(Duration::from_secs(1))? {
                Ok(Some(taken)) => return Some(Ok(taken)),
                Ok(None) => {}
                Err(e) => return Some(Err(e)),
            }
        }
    }
}

/// One sender's thread: its receiver's frames into its slot, the newest replacing one not yet
/// taken, until the hub closes or the stream ends.
fn receive(mut receiver: Receiver, index: usize, shared: &Shared) {
    let mut refreshed = Instant::now();
    let mut ended = false;
    while !ended && !shared.closing.load(Ordering::SeqCst) {
        let step = receiver.next_timeout(POLL);
        let mut slots = crate::lock(&shared.slots);
        let slot = &mut slots[index];
        match step {
            Some(Ok(Some(frame))) => {
                if slot.frame.replace(frame).is_some() {
                    slot.state.skipped += 1;
                }
                shared.arrived.notify_all();
            }
            Some(Ok(None)) => {}
            Some(Err(e)) => {
                slot.error = Some(e);
                shared.arrived.notify_all();
            }
            None => ended = true,
        }
        // At once when the sender is lost or back, so a grid's tile says so.
        let lost_changed = slot.state.lost.is_some() != receiver.lost().is_some();
        if ended || lost_changed || refreshed.elapsed() >= STATE_PERIOD {
            refresh(&mut slot.state, &receiver);
            refreshed = Instant::now();
        }
    }
    let report = receiver.stats();
    let name = receiver.sender();
    if let Err(e) = receiver.close() {
        log::warn!("{name}: {}", crate::error_line(&e));
    }
    let mut slots = crate::lock(&shared.slots);
    let state = &mut slots[index].state;
    (state.lost, state.ended, state.receiver) = (None, true, Some(report));
    shared.arrived.notify_all();
}

fn refresh(state: &mut HubSender, receiver: &Receiver) {
    state.lost = receiver.lost().map(|(at, why)| (at, why.to_owned()));
    state.receiver = Some(receiver.stats());
}
