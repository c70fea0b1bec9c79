//! The frames a viewer has been sent and not yet acknowledged, shared by its writer and its ack
//! reader: the writer sends only when the viewer's [`Window`] has room (sized by its path's
//! round trip and delivery rate), and each ack measures that path. Shared by every kind of
//! viewer that acks.
//!
//! It is also what notices a viewer that has stalled (a laptop gone to sleep, a frozen process,
//! a peer that pairs and then reads nothing): frames in flight and, for the viewer's timeout,
//! neither an ack nor a write that went through. Such a viewer gives its seat back.

use super::window::{Acked, Window};
use crate::lock;
use anyhow::Result;
use std::io::ErrorKind;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The viewer had frames in flight and took nothing for this long: no ack, and no bytes
/// accepted by its socket.
#[derive(Debug, thiserror::Error)]
#[error("it took nothing for {} s", .0.as_secs_f64().ceil())]
pub struct Stalled(pub Duration);

/// Whether `error` is a viewer that stalled, and for how long it was given.
pub fn stalled(error: &anyhow::Error) -> Option<Duration> {
    // A context is found by the error's own downcast, a cause by the chain's.
    error
        .downcast_ref::<Stalled>()
        .or_else(|| error.chain().find_map(|cause| cause.downcast_ref()))
        .map(|stalled| stalled.0)
}

/// Logs that a viewer (`what`: "viewer", "browser") stalled and was dropped, giving its seat
/// back: not a refusal, so not rate-limited (a viewer can only stall once).
pub fn log_stalled(what: &str, peer: std::net::SocketAddr, error: &anyhow::Error) {
    let seconds = stalled(error).map_or(0.0, |d| d.as_secs_f64());
    log::warn!("{what} {peer} stalled for {seconds} s; dropped");
}

/// The frames a viewer has been sent and not yet acknowledged, shared by its writer and its
/// ack reader.
pub struct Flight {
    state: Mutex<FlightState>,
    changed: Condvar,
    /// A viewer that takes nothing for this long, with frames in flight, has stalled.
    stall: Duration,
}

pub struct FlightState {
    window: Window,
    /// When the viewer last took something: an ack, or a write its socket accepted.
    progress: Instant,
    reader_done: bool,
}

impl Flight {
    /// A viewer's flight for a stream with `frame_interval` between frames (zero when
    /// unpaced); it has stalled when it takes nothing for `stall` with frames in flight.
    pub fn new(stall: Duration, frame_interval: Duration) -> Flight {
        Flight::with_window(stall, Window::new(frame_interval, Instant::now()))
    }

    fn with_window(stall: Duration, window: Window) -> Flight {
        let now = Instant::now();
        Flight {
            state: Mutex::new(FlightState {
                window,
                progress: now,
                reader_done: false,
            }),
            changed: Condvar::new(),
            stall,
        }
    }

    fn lock(&self) -> MutexGuard<'_, FlightState> {
        lock(&self.state)
    }

    /// Waits until the viewer's window has room for another frame; false if the
    /// reader is done (the viewer is gone), [`Stalled`] if the viewer took nothing meanwhile
    /// for the stall time. Only a viewer with frames in flight can stall: one waiting for a
    /// keyframe owes us nothing.
    pub fn wait_for_room(&self) -> Result<bool> {
        let mut state = self.lock();
        while !state.window.room_at(Instant::now()) && !state.reader_done {
            let idle = state.progress.elapsed();
            let Some(left) = self.stall.checked_sub(idle).filter(|d| !d.is_zero()) else {
                return Err(Stalled(self.stall).into());
            };
            state = self
                .changed
                .wait_timeout(state, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        Ok(!state.reader_done)
    }

    /// Sends frame `seq` of `bytes` with `write`, counting it in flight from before the write
    /// (its ack may come before the write returns). The socket's write timeout is the stall
    /// time, so a write that blocks that long with no byte accepted is [`Stalled`] too.
    pub fn send<T>(&self, seq: u64, bytes: usize, write: impl FnOnce() -> Result<T>) -> Result<T> {
        self.lock().window.sent(seq, bytes, Instant::now());
        let written = write().map_err(|e| match timed_out(&e) {
            true => e.context(Stalled(self.stall)),
            false => e,
        })?;
        self.lock().progress = Instant::now();
        Ok(written)
    }

    /// Frame `seq` was acknowledged: the oldest in flight, as a viewer acks in order. Returns
    /// its bytes and the viewer's delivery rate by now.
    pub fn acked(&self, seq: u64) -> Result<Acked> {
        let now = Instant::now();
        let mut state = self.lock();
        let acked = state.window.acked(seq, now)?;
        state.progress = now;
        drop(state);
        self.changed.notify_all();
        Ok(acked)
    }

    pub fn reader_done(&self) {
        self.lock().reader_done = true;
        self.changed.notify_all();
    }

    pub fn is_reader_done(&self) -> bool {
        self.lock().reader_done
    }
}

/// Whether a write failed for its socket's write timeout (`SO_SNDTIMEO`: `EAGAIN`).
fn timed_out(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut))
    })
}

#[cfg(test)]
mod tests {
    use super::super::window::MIN_FRAMES_IN_FLIGHT;
    use super::*;

    #[test]
    fn a_viewer_with_frames_in_flight_that_takes_nothing_stalls() {
        let flight = Flight::new(Duration::from_millis(100), Duration::from_millis(33));
        // Room for the first frames, however long it waits: nothing is owed yet.
        std::thread::sleep(Duration::from_millis(150));
        for seq in 0..MIN_FRAMES_IN_FLIGHT as u64 {
            assert!(flight.wait_for_room().unwrap());
            flight.send(seq, 10, || Ok(())).unwrap();
        }
        let started = Instant::now();
        let err = flight.wait_for_room().unwrap_err();
        assert_eq!(stalled(&err), Some(Duration::from_millis(100)));
        assert!(started.elapsed() >= Duration::from_millis(90));
        // An ack is progress: room again, and the clock starts over.
        flight.acked(0).unwrap();
        assert!(flight.wait_for_room().unwrap());
    }

    #[test]
    fn a_write_that_times_out_is_a_stall() {
        let flight = Flight::new(Duration::from_secs(10), Duration::ZERO);
        let err = flight
            .send(0, 10, || -> Result<()> {
                Err(std::io::Error::from(ErrorKind::WouldBlock).into())
            })
            .unwrap_err();
        assert_eq!(stalled(&err), Some(Duration::from_secs(10)));
        let other = flight
            .send(1, 10, || -> Result<()> {
                Err(std::io::Error::from(ErrorKind::BrokenPipe).into())
            })
            .unwrap_err();
        assert_eq!(stalled(&other), None);
    }
}
