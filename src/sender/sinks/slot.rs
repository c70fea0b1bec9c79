//! A sink's slot: the frames waiting for one consumer, and what happens when it falls behind.

use super::window::Acked;
use super::EncodedFrame;
use crate::lock;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How long frames that depend on others may queue for a `Live` consumer: enough to carry it
/// through a keyframe's burst, short enough that it stays live; plus its path's round trip
/// (at most [`MAX_ROUND_TRIP`]), about what TCP takes to recover a lost packet on it, which
/// costs less than skipping to a keyframe and waiting for it.
const MAX_BACKLOG: Duration = Duration::from_millis(200);
/// The most of a consumer's round trip added to [`MAX_BACKLOG`].
const MAX_ROUND_TRIP: Duration = Duration::from_millis(500);

/// What a slot does with a frame its consumer is not ready for.
///
/// A frame that another depends on (not a keyframe) is never dropped alone: whatever policy
/// drops one then waits for the next keyframe, so a consumer never gets a frame it cannot
/// decode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Policy {
    /// For viewers, who want to be live. A keyframe replaces everything waiting. A frame that
    /// depends on others queues behind them while the oldest has waited less than 200 ms and
    /// the consumer's round trip (`MAX_BACKLOG`: a keyframe's burst or a lost packet's
    /// recovery passes without a break); past that, what waits is
    /// dropped and the consumer skips to the next keyframe. With JPEG and raw every frame is a
    /// keyframe, so this is plain newest-only.
    Live,
    /// Up to this many frames wait, in order. When full, a new frame is dropped and the slot
    /// then waits for the next keyframe, which replaces all that waits: a publisher gets every
    /// frame it can, and one that stays behind skips ahead.
    Queue(usize),
}

#[derive(Default)]
struct SlotState {
    /// Frames not yet taken, and when each was offered.
    waiting: VecDeque<(Arc<EncodedFrame>, Instant)>,
    /// A frame was dropped (or none taken yet): only a keyframe may come next.
    needs_keyframe: bool,
    closing: bool,
}

/// A slot's counters, each growing from 0 since it joined, and its consumer's delivery rate.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Frames its consumer never got.
    pub skipped: u64,
    /// Frames that queued behind another.
    pub queued: u64,
    /// Frames its consumer received but could not show (a page's decoder fell behind).
    pub unshown: u64,
    /// Its link's delivery rate by its acks (bytes per second); 0 until measured.
    pub rate: u64,
    /// Microseconds frames waited for room in its window: its link set the pace.
    pub full_us: u64,
    /// Microseconds of queue standing in its path, by its last ack.
    pub standing_queue_us: u64,
}

/// One consumer's mailbox.
pub struct Slot {
    policy: Policy,
    state: Mutex<SlotState>,
    ready: Condvar,
    skipped: AtomicU64,
    /// Frames that had to queue behind another: its consumer was busy.
    queued: AtomicU64,
    unshown: AtomicU64,
    /// Its link's delivery rate by its acks.
    rate: AtomicU64,
    full_us: AtomicU64,
    standing_queue_us: AtomicU64,
    /// Its path's round trip, as its window measured it.
    round_trip_us: AtomicU64,
    demand: Arc<Demand>,
}

impl Slot {
    pub(super) fn new(policy: Policy, demand: Arc<Demand>) -> Self {
        Slot {
            policy,
            state: Mutex::new(SlotState {
                needs_keyframe: true,
                ..SlotState::default()
            }),
            ready: Condvar::new(),
            skipped: AtomicU64::new(0),
            queued: AtomicU64::new(0),
            unshown: AtomicU64::new(0),
            rate: AtomicU64::new(0),
            full_us: AtomicU64::new(0),
            standing_queue_us: AtomicU64::new(0),
            round_trip_us: AtomicU64::new(0),
            demand,
        }
    }

    fn lock(&self) -> MutexGuard<'_, SlotState> {
        lock(&self.state)
    }

    /// Takes `frame` as the policy says; never blocks.
    pub(super) fn offer(&self, frame: Arc<EncodedFrame>) {
        let now = Instant::now();
        let mut state = self.lock();
        let mut dropped = 0;
        let mut queued = 0;
        if frame.header.keyframe {
            // A keyframe needs nothing before it: the newest live picture, and where to restart.
            let full = match self.policy {
                Policy::Live => !state.waiting.is_empty(),
                Policy::Queue(capacity) => state.waiting.len() >= capacity,
            };
            if full {
                dropped += state.waiting.len();
                state.waiting.clear();
            }
            state.needs_keyframe = false;
        } else if !state.needs_keyframe {
            let room = match (self.policy, state.waiting.front()) {
                (_, None) => true,
                (Policy::Live, Some((_, since))) => {
                    now.duration_since(*since) < MAX_BACKLOG + self.round_trip()
                }
                (Policy::Queue(capacity), Some(_)) => state.waiting.len() < capacity,
            };
            if !room {
                // What follows needs this frame, so the consumer skips to the next keyframe: a
                // live one drops its stale backlog too, a queue still sends what it holds.
                if self.policy == Policy::Live {
                    dropped += state.waiting.len();
                    state.waiting.clear();
                }
                state.needs_keyframe = true;
            }
        }
        if state.needs_keyframe {
            dropped += 1;
        } else {
            queued += usize::from(!state.waiting.is_empty());
            state.waiting.push_back((frame, now));
            self.ready.notify_one();
        }
        drop(state);
        self.skipped.fetch_add(dropped as u64, Ordering::Relaxed);
        self.queued.fetch_add(queued as u64, Ordering::Relaxed);
    }

    pub(super) fn close(&self) {
        self.lock().closing = true;
        self.ready.notify_one();
    }

    /// The next frame to send; `None` once the stream is closing and nothing is left.
    pub fn next(&self) -> Option<Arc<EncodedFrame>> {
        self.next_within(None)
    }

    /// [`Slot::next`], giving up (`None`) after `timeout` if one is given.
    pub fn next_within(&self, timeout: Option<Duration>) -> Option<Arc<EncodedFrame>> {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut state = self.lock();
        loop {
            if let Some((frame, _)) = state.waiting.pop_front() {
                drop(state);
                self.demand.signal();
                return Some(frame);
            }
            if state.closing {
                return None;
            }
            state = match deadline {
                None => self.ready.wait(state).unwrap_or_else(|e| e.into_inner()),
                Some(deadline) => {
                    let left = deadline.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        return None;
                    }
                    let waited = self.ready.wait_timeout(state, left);
                    waited.map_or_else(|e| e.into_inner().0, |(state, _)| state)
                }
            };
        }
    }

    /// Its consumer could not decode a frame: what waits (unless a keyframe) is dropped, and it
    /// gets nothing more until the next keyframe, which the capture loop is then asked for.
    pub fn restart_at_keyframe(&self) {
        let mut state = self.lock();
        let dropped = match state.waiting.front() {
            Some((first, _)) if first.header.keyframe => 0,
            _ => {
                state.needs_keyframe = true;
                std::mem::take(&mut state.waiting).len()
            }
        };
        drop(state);
        self.skipped.fetch_add(dropped as u64, Ordering::Relaxed);
        self.demand.signal();
    }

    /// Waiting for a keyframe: it joined, or had to drop a frame others depend on.
    pub(super) fn wants_keyframe(&self) -> bool {
        let state = self.lock();
        state.needs_keyframe && !state.closing
    }

    pub(super) fn wants_frame(&self) -> bool {
        let state = self.lock();
        state.waiting.is_empty() && !state.closing
    }

    /// Frames this consumer never got.
    pub fn skipped(&self) -> u64 {
        self.skipped.load(Ordering::Relaxed)
    }

    /// Notes frames the consumer received but could not show.
    pub fn unshown(&self, frames: u64) {
        self.unshown.fetch_add(frames, Ordering::Relaxed);
    }

    /// Notes what the consumer's ack of a frame measured of its link.
    pub fn delivered(&self, acked: Acked) {
        if let Some(rate) = acked.rate {
            self.rate.store(rate as u64, Ordering::Relaxed);
        }
        self.full_us
            .store(acked.full.as_micros() as u64, Ordering::Relaxed);
        self.standing_queue_us
            .store(acked.standing_queue.as_micros() as u64, Ordering::Relaxed);
        self.round_trip_us
            .store(acked.round_trip.as_micros() as u64, Ordering::Relaxed);
    }

    /// Its consumer's round trip, as far as it adds to [`MAX_BACKLOG`].
    fn round_trip(&self) -> Duration {
        Duration::from_micros(self.round_trip_us.load(Ordering::Relaxed)).min(MAX_ROUND_TRIP)
    }

    /// What its counters say so far.
    pub(super) fn counters(&self) -> Counters {
        Counters {
            skipped: self.skipped(),
            queued: self.queued.load(Ordering::Relaxed),
            unshown: self.unshown.load(Ordering::Relaxed),
            rate: self.rate.load(Ordering::Relaxed),
            full_us: self.full_us.load(Ordering::Relaxed),
            standing_queue_us: self.standing_queue_us.load(Ordering::Relaxed),
        }
    }
}

/// Wakes the capture loop when a consumer takes a frame. A counter, not a flag, so a wake-up
/// between the capture loop's look at the slots and its wait is not lost.
#[derive(Default)]
pub(super) struct Demand {
    generation: Mutex<u64>,
    changed: Condvar,
}

impl Demand {
    pub(super) fn generation(&self) -> u64 {
        *lock(&self.generation)
    }

    pub(super) fn signal(&self) {
        *lock(&self.generation) += 1;
        self.changed.notify_all();
    }

    /// Waits until the generation moves past `seen`, or `timeout`.
    pub(super) fn wait_past(&self, seen: u64, timeout: Duration) {
        let guard = lock(&self.generation);
        // A timeout or a poisoned lock both just mean: look at the slots again.
        let _ = self
            .changed
            .wait_timeout_while(guard, timeout, |generation| *generation == seen);
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::frame;
    use super::*;

    fn slot(policy: Policy) -> Slot {
        Slot::new(policy, Arc::default())
    }

    fn taken(slot: &Slot) -> Vec<u64> {
        slot.close();
        std::iter::from_fn(|| slot.next().map(|f| f.header.seq)).collect()
    }

    #[test]
    fn live_keeps_the_newest_keyframe() {
        let slot = slot(Policy::Live);
        for seq in 0..5 {
            slot.offer(frame(seq, true));
        }
        assert_eq!(taken(&slot), [4]);
        assert_eq!(slot.skipped(), 4);
    }

    #[test]
    fn live_queues_a_burst_briefly_and_never_hands_out_a_frame_whose_reference_was_dropped() {
        let slot = slot(Policy::Live);
        // A newcomer waits for a keyframe.
        slot.offer(frame(0, false));
        slot.offer(frame(1, true));
        assert_eq!(slot.next().unwrap().header.seq, 1);
        // A busy consumer: 3 and 4 queue behind 2, in order.
        slot.offer(frame(2, false));
        slot.offer(frame(3, false));
        slot.offer(frame(4, false));
        assert_eq!(slot.next().unwrap().header.seq, 2);
        assert_eq!(slot.counters().queued, 2);
        // Still busy past the backlog's limit: what waits is stale and goes, with 5, and 6
        // (which needs 5): 7 is the next keyframe.
        std::thread::sleep(MAX_BACKLOG);
        slot.offer(frame(5, false));
        slot.offer(frame(6, false));
        assert!(slot.wants_keyframe());
        slot.offer(frame(7, true));
        slot.offer(frame(8, false));
        assert_eq!(taken(&slot), [7, 8]);
        // 0; 3, 4, 5 and 6.
        assert_eq!(slot.skipped(), 5);
    }

    #[test]
    fn a_consumer_that_could_not_decode_restarts_at_the_next_keyframe() {
        let slot = slot(Policy::Live);
        slot.offer(frame(0, true));
        assert_eq!(slot.next().unwrap().header.seq, 0);
        slot.offer(frame(1, false));
        slot.restart_at_keyframe();
        assert!(slot.wants_keyframe());
        slot.offer(frame(2, false));
        slot.offer(frame(3, true));
        assert_eq!(taken(&slot), [3]);
        assert_eq!(slot.skipped(), 2);
    }

    #[test]
    fn a_queue_keeps_order_and_skips_to_a_keyframe_when_full() {
        let slot = slot(Policy::Queue(3));
        slot.offer(frame(0, true));
        slot.offer(frame(1, false));
        slot.offer(frame(2, false));
        assert_eq!(slot.next().unwrap().header.seq, 0);
        slot.offer(frame(3, false));
        // Full (1, 2, 3): 4 is dropped, and 5 (which needs 4); what waits still goes out.
        slot.offer(frame(4, false));
        assert_eq!(slot.next().unwrap().header.seq, 1);
        slot.offer(frame(5, false));
        slot.offer(frame(6, true));
        assert_eq!(slot.next().unwrap().header.seq, 2);
        slot.offer(frame(7, false));
        // Full (3, 6, 7) again: 8 is dropped; keyframe 9 replaces everything waiting.
        slot.offer(frame(8, false));
        slot.offer(frame(9, true));
        slot.offer(frame(10, false));
        assert_eq!(taken(&slot), [9, 10]);
        assert_eq!(slot.skipped(), 6);
    }
}
