//! The frames a viewer has been sent and not yet acknowledged: what lets a writer send only when
//! the viewer has room (at most [`FRAMES_IN_FLIGHT`]), and tells, from when each ack came, how
//! long the viewer's link was busy with our frames. Shared by every kind of viewer that acks.

use crate::lock;
use anyhow::{bail, Result};
use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Frames a viewer may hold unacknowledged. Two keep the link busy (one on the wire while the
/// viewer shows the other) without letting a queue of old frames build anywhere.
pub const FRAMES_IN_FLIGHT: u64 = 2;

/// The frames a viewer has been sent and not yet acknowledged, shared by its writer and its
/// ack reader.
#[derive(Default)]
pub struct Flight {
    state: Mutex<FlightState>,
    changed: Condvar,
}

#[derive(Default)]
pub struct FlightState {
    /// Sequence number and bytes of each frame, oldest first.
    frames: VecDeque<(u64, usize)>,
    /// Since when the link has been busy with our frames, not yet counted.
    busy_from: Option<Instant>,
    reader_done: bool,
}

impl Flight {
    fn lock(&self) -> MutexGuard<'_, FlightState> {
        lock(&self.state)
    }

    /// Waits until fewer than [`FRAMES_IN_FLIGHT`] frames are unacknowledged; false if the
    /// reader is done (the viewer is gone).
    pub fn wait_for_room(&self) -> bool {
        let mut state = self.lock();
        while state.frames.len() as u64 >= FRAMES_IN_FLIGHT && !state.reader_done {
            state = self.changed.wait(state).unwrap_or_else(|e| e.into_inner());
        }
        !state.reader_done
    }

    pub fn sending(&self, seq: u64, bytes: usize) {
        let mut state = self.lock();
        if state.frames.is_empty() {
            state.busy_from = Some(Instant::now());
        }
        state.frames.push_back((seq, bytes));
    }

    /// Frame `seq` was acknowledged: the oldest in flight, as a viewer acks in order. Returns
    /// its bytes, and how long the link was busy with our frames since last counted.
    pub fn acked(&self, seq: u64) -> Result<(usize, Duration)> {
        let now = Instant::now();
        let mut state = self.lock();
        if state.frames.back().is_none_or(|(last, _)| seq > *last) {
            bail!("it acknowledged frame {seq} before it was sent");
        }
        let (_, bytes) = state.frames.pop_front().unwrap_or_default();
        let busy = state
            .busy_from
            .map_or(Duration::ZERO, |from| now.saturating_duration_since(from));
        state.busy_from = (!state.frames.is_empty()).then_some(now);
        drop(state);
        self.changed.notify_all();
        Ok((bytes, busy))
    }

    pub fn reader_done(&self) {
        self.lock().reader_done = true;
        self.changed.notify_all();
    }

    pub fn is_reader_done(&self) -> bool {
        self.lock().reader_done
    }
}
