//! How many frames one viewer may have in flight, sized by time, not by count: the frames a
//! viewer has been sent and not yet acknowledged, and what its path takes, measured from its
//! acks alone, as BBR does (Cardwell et al., ACM Queue 2016; Linux `tcp_rate.c`):
//! - the **round trip** is the shortest time from sending a frame to its ack over the last
//!   [`RTT_MEMORY`] (a windowed minimum: queues only ever lengthen it);
//! - the **delivery rate** is the bytes newly acknowledged over the time between acks, not over
//!   the time a frame was in flight (which would read a long path as a thin one), kept as the
//!   best over the last few round trips (a windowed maximum: a loss that holds acks back, then
//!   releases them in a burst, neither halves it nor inflates it);
//! - frames in flight may cover [`WINDOW_GAIN`] times one round trip plus one frame interval at
//!   that rate, and never fewer than [`MIN_FRAMES_IN_FLIGHT`] (what a LAN needs and always had),
//!   nor more than the stream makes in that many round trips (on a fast link the rate alone
//!   would allow frames that a viewer that freezes would only show late).
//!
//! A frame that would wait behind more than that waits in the viewer's slot instead, where it
//! can be skipped: latency stays bounded by the window, not by kernel buffers.
//!
//! No I/O and no clock: each call takes `now`, so a 100 ms round trip is a unit test.
//! [`super::flight::Flight`] wraps it for the threads that send and read acks.

use anyhow::{bail, Result};
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// Frames a viewer may always hold unacknowledged, whatever its path measures: one on the wire
/// while the viewer shows the other.
pub const MIN_FRAMES_IN_FLIGHT: usize = 2;
/// Frames a viewer may never exceed in flight, however long its path.
const MAX_FRAMES_IN_FLIGHT: usize = 32;
/// The window is this many times the path's round trip plus one frame interval at its rate
/// (BBR's cwnd gain is 2): room for the jitter of the round trip, a keyframe, and the ack of
/// a frame the viewer is still showing, without a standing queue of more than about a round trip.
pub const WINDOW_GAIN: f64 = 1.5;
/// The round trip is the least seen over this long (BBR's `min_rtt` window).
pub const RTT_MEMORY: Duration = Duration::from_secs(10);
/// The least round trip over this long, against the least over [`RTT_MEMORY`], is the queue
/// standing in the path: the stream is more than the link takes. Long enough to hold some
/// frames that no loss held up (a loss delays a few frames behind it by a round trip or so).
const RECENT: Duration = Duration::from_millis(500);
/// The delivery rate is the best seen over this many round trips (BBR keeps 10)...
const RATE_MEMORY_ROUNDS: u32 = 10;
/// ... and over at least this long, so that on a LAN it spans more than a few frames.
const RATE_MEMORY_AT_LEAST: Duration = Duration::from_secs(1);

/// The time between frames of a stream at `fps`; zero for an unpaced one.
pub fn frame_interval(fps: f64) -> Duration {
    match fps.is_finite() && fps > 0.0 {
        true => Duration::from_secs_f64(1.0 / fps),
        false => Duration::ZERO,
    }
}

/// One frame in flight, with what was known when it was sent (`tcp_rate.c`'s per-skb state).
#[derive(Debug, Clone, Copy)]
struct Sent {
    seq: u64,
    bytes: usize,
    sent_at: Instant,
    /// Bytes acknowledged before it was sent, and when the last of them was.
    delivered: u64,
    delivered_at: Instant,
    /// When the frame acknowledged last before it was sent had been sent.
    first_sent_at: Instant,
}

/// What one ack told.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Acked {
    /// The acknowledged frame's bytes.
    pub bytes: usize,
    /// The viewer's delivery rate by now, bytes per second, once measured.
    pub rate: Option<f64>,
    /// How long, in all, a frame has waited for room: the link, not the source, set the pace.
    pub full: Duration,
    /// How much longer than the path's round trip even the quickest frame of late took: a
    /// queue standing at the path's narrowest link.
    pub standing_queue: Duration,
    /// The path's round trip ([`Window::round_trip`]).
    pub round_trip: Duration,
}

/// The frames in flight to one viewer and what its path takes.
#[derive(Debug)]
pub struct Window {
    frames: VecDeque<Sent>,
    bytes_in_flight: usize,
    /// Time between frames of the stream; zero for an unpaced one.
    frame_interval: Duration,
    /// Bytes acknowledged so far, and when the last ack came (or the link restarted from idle).
    delivered: u64,
    delivered_at: Instant,
    /// When the frame acknowledged last had been sent.
    first_sent_at: Instant,
    round_trip: Windowed<Duration>,
    /// The least round trip over the last [`RECENT`].
    recent_round_trip: Windowed<Duration>,
    /// Bytes per second.
    rate: Windowed<f64>,
    /// Since when a frame has waited for room, and how long frames waited before that.
    full_since: Option<Instant>,
    full: Duration,
}

impl Window {
    pub fn new(frame_interval: Duration, now: Instant) -> Window {
        Window {
            frames: VecDeque::new(),
            bytes_in_flight: 0,
            frame_interval,
            delivered: 0,
            delivered_at: now,
            first_sent_at: now,
            round_trip: Windowed::new(Keep::Least),
            recent_round_trip: Windowed::new(Keep::Least),
            rate: Windowed::new(Keep::Most),
            full_since: None,
            full: Duration::ZERO,
        }
    }

    /// Whether another frame may go at `now`; if not, a frame waits for room from `now` on,
    /// until an ack makes some.
    pub fn room_at(&mut self, now: Instant) -> bool {
        let room = self.has_room();
        if !room {
            self.full_since.get_or_insert(now);
        }
        room
    }

    /// Whether another frame may go now.
    pub fn has_room(&self) -> bool {
        let frames = self.frames.len();
        frames < MIN_FRAMES_IN_FLIGHT
            || (frames < self.frame_limit()
                && (self.bytes_in_flight as f64) < self.window_bytes().unwrap_or(0.0))
    }

    /// The most frames that may be in flight: the two a LAN needs, and as many more as the
    /// stream makes in a round trip, with the gain. A fast link's rate would allow far more
    /// bytes than the stream makes in a round trip; they would only be frames a viewer that
    /// freezes shows late when it wakes.
    fn frame_limit(&self) -> usize {
        let Some(round_trip) = self.round_trip.best() else {
            return MIN_FRAMES_IN_FLIGHT;
        };
        if self.frame_interval.is_zero() {
            return MAX_FRAMES_IN_FLIGHT;
        }
        let more = WINDOW_GAIN * round_trip.as_secs_f64() / self.frame_interval.as_secs_f64();
        (MIN_FRAMES_IN_FLIGHT + more as usize).min(MAX_FRAMES_IN_FLIGHT)
    }

    /// The bytes that may be in flight: the rate times one round trip plus one frame interval,
    /// with the gain; `None` until both are measured.
    pub fn window_bytes(&self) -> Option<f64> {
        let round_trip = self.round_trip.best()?;
        let rate = self.rate.best()?;
        Some(WINDOW_GAIN * rate * (round_trip + self.frame_interval).as_secs_f64())
    }

    /// Frame `seq` of `bytes` is being sent at `now`.
    pub fn sent(&mut self, seq: u64, bytes: usize, now: Instant) {
        if self.frames.is_empty() {
            // The link was idle: the time before this frame says nothing of it (tcp_rate.c
            // restarts its clocks the same way).
            self.delivered_at = now;
            self.first_sent_at = now;
        }
        self.frames.push_back(Sent {
            seq,
            bytes,
            sent_at: now,
            delivered: self.delivered,
            delivered_at: self.delivered_at,
            first_sent_at: self.first_sent_at,
        });
        self.bytes_in_flight += bytes;
    }

    /// Frame `seq` was acknowledged at `now`: the oldest in flight, as a viewer acks in order.
    pub fn acked(&mut self, seq: u64, now: Instant) -> Result<Acked> {
        if self.frames.back().is_none_or(|last| seq > last.seq) {
            bail!("it acknowledged frame {seq} before it was sent");
        }
        let Some(frame) = self.frames.pop_front() else {
            bail!("it acknowledged frame {seq} twice");
        };
        self.bytes_in_flight -= frame.bytes;
        self.delivered += frame.bytes as u64;
        self.delivered_at = now;
        self.first_sent_at = frame.sent_at;
        let round_trip = now.saturating_duration_since(frame.sent_at);
        self.round_trip.add(now, round_trip, RTT_MEMORY);
        self.recent_round_trip.add(now, round_trip, RECENT);
        // Over the longer of the sending and the acking phases: a burst of acks after a loss
        // was recovered cannot read faster than the frames went out (tcp_rate.c).
        let interval = now
            .saturating_duration_since(frame.delivered_at)
            .max(frame.sent_at.saturating_duration_since(frame.first_sent_at));
        // Shorter than a round trip, the acks were bunched somewhere: no sample (tcp_rate.c).
        let least = self.round_trip.best().unwrap_or(round_trip);
        if interval >= least && !interval.is_zero() {
            let bytes = self.delivered - frame.delivered;
            let memory = (least * RATE_MEMORY_ROUNDS).max(RATE_MEMORY_AT_LEAST);
            self.rate
                .add(now, bytes as f64 / interval.as_secs_f64(), memory);
        }
        if self.has_room() {
            if let Some(since) = self.full_since.take() {
                self.full += now.saturating_duration_since(since);
            }
        }
        let standing_queue = (self.recent_round_trip.best().unwrap_or(round_trip))
            .saturating_sub(self.round_trip.best().unwrap_or(round_trip));
        Ok(Acked {
            bytes: frame.bytes,
            rate: self.rate.best(),
            full: self.full,
            standing_queue,
            round_trip: self.round_trip.best().unwrap_or(round_trip),
        })
    }
}

#[derive(Debug, Clone, Copy)]
enum Keep {
    Least,
    Most,
}

/// The least or the most of the values seen over a recent span of time: a deque of candidates
/// in time order, each better than all after it, so the best is at the front.
#[derive(Debug)]
struct Windowed<T> {
    keep: Keep,
    candidates: VecDeque<(Instant, T)>,
}

impl<T: Copy + PartialOrd> Windowed<T> {
    fn new(keep: Keep) -> Self {
        Windowed {
            keep,
            candidates: VecDeque::new(),
        }
    }

    /// Adds `value` seen at `now`, forgetting what is older than `memory`.
    fn add(&mut self, now: Instant, value: T, memory: Duration) {
        let beaten = |old: &T| match self.keep {
            Keep::Least => value <= *old,
            Keep::Most => value >= *old,
        };
        while self.candidates.back().is_some_and(|(_, old)| beaten(old)) {
            self.candidates.pop_back();
        }
        self.candidates.push_back((now, value));
        while self
            .candidates
            .front()
            .is_some_and(|(at, _)| now.saturating_duration_since(*at) > memory)
        {
            self.candidates.pop_front();
        }
    }

    fn best(&self) -> Option<T> {
        self.candidates.front().map(|(_, value)| *value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// A path: a bottleneck of `rate` bytes per second with a queue before it, then `one_way`
    /// of delay each way; a frame is acked when its last byte has crossed and the ack come back.
    struct Path {
        rate: f64,
        one_way: Duration,
        /// When the bottleneck is free.
        free_at: Instant,
    }

    impl Path {
        fn ack_time(&mut self, bytes: usize, sent_at: Instant) -> Instant {
            let start = self.free_at.max(sent_at);
            self.free_at = start + Duration::from_secs_f64(bytes as f64 / self.rate);
            self.free_at + 2 * self.one_way
        }
    }

    /// What a stream through a path made of: frames sent, frames skipped, the worst time a
    /// frame took from being made to being acked, and the window's rate at the end.
    struct Outcome {
        sent: u64,
        skipped: u64,
        worst: Duration,
        rate: f64,
        rates: Vec<(Instant, f64)>,
        /// How long frames waited for room.
        full: Duration,
        /// The standing queue by the last ack.
        standing_queue: Duration,
    }

    /// A camera making a frame of `bytes` every `interval` for `seconds` into a newest-only
    /// slot; the window says when one goes; `hold` delays the acks due in a span of time (a
    /// loss being recovered).
    fn stream(
        path: &mut Path,
        bytes: usize,
        interval: Duration,
        seconds: u64,
        hold: Option<(Instant, Instant)>,
        start: Instant,
    ) -> Outcome {
        let mut window = Window::new(interval, start);
        // (ack at, seq), in order.
        let mut acks: VecDeque<(Instant, u64)> = VecDeque::new();
        let mut waiting: Option<Instant> = None;
        let mut outcome = Outcome {
            sent: 0,
            skipped: 0,
            worst: Duration::ZERO,
            rate: 0.0,
            rates: Vec::new(),
            full: Duration::ZERO,
            standing_queue: Duration::ZERO,
        };
        let mut seq = 0;
        let mut next_frame = start;
        let end = start + Duration::from_secs(seconds);
        let mut now = start;
        while now < end {
            if now >= next_frame {
                if waiting.replace(now).is_some() {
                    outcome.skipped += 1;
                }
                next_frame += interval;
            }
            while acks.front().is_some_and(|(at, _)| *at <= now) {
                let (_, acked) = acks.pop_front().unwrap();
                let acked = window.acked(acked, now).unwrap();
                outcome.rates.push((now, acked.rate.unwrap_or(0.0)));
                outcome.full = acked.full;
                outcome.standing_queue = acked.standing_queue;
            }
            if let Some(made) = waiting.filter(|_| window.room_at(now)) {
                window.sent(seq, bytes, now);
                let mut ack_at = path.ack_time(bytes, now);
                if let Some((from, to)) = hold {
                    if (from..to).contains(&ack_at) {
                        ack_at = to;
                    }
                }
                let ack_at = ack_at.max(acks.back().map_or(ack_at, |(at, _)| *at));
                outcome.worst = outcome.worst.max(ack_at - made);
                acks.push_back((ack_at, seq));
                seq += 1;
                outcome.sent += 1;
                waiting = None;
            }
            now += MS;
        }
        outcome.rate = window.rate.best().unwrap_or(0.0);
        outcome
    }

    fn path(mbit: f64, round_trip_ms: u64, start: Instant) -> Path {
        Path {
            rate: mbit * 1e6 / 8.0,
            one_way: MS * (round_trip_ms as u32) / 2,
            free_at: start,
        }
    }

    #[test]
    fn a_long_round_trip_does_not_read_as_a_thin_link() {
        let start = Instant::now();
        // 4 Mbit/s, 100 ms round trip; 14 KB JPEG frames at 30 fps (3.4 Mbit/s, 84% of it).
        let mut path = path(4.0, 100, start);
        let out = stream(&mut path, 14_000, MS * 33, 10, None, start);
        // Two frames in flight would carry at most 2 per round trip: 15 fps.
        assert!(out.sent >= 290, "sent {} of 303", out.sent);
        assert!(
            out.rate >= 0.8 * 14_000.0 * 30.0,
            "a 100 ms path read as {} kbit/s",
            out.rate * 8.0 / 1000.0
        );
        assert!(out.worst < MS * 250, "worst {:?}", out.worst);
        // The camera, not the link, set the pace, and no queue stands in the path.
        assert!(out.standing_queue < MS * 20, "{:?}", out.standing_queue);
        assert!(
            out.full < MS * 1000,
            "frames waited {:?} for room",
            out.full
        );
    }

    #[test]
    fn a_link_thinner_than_the_stream_reads_as_what_it_takes_and_latency_stays_bounded() {
        let start = Instant::now();
        // 2 Mbit/s, 50 ms round trip; 14 KB frames at 30 fps would need 3.4.
        let mut path = path(2.0, 50, start);
        let out = stream(&mut path, 14_000, MS * 33, 10, None, start);
        let takes = 2e6 / 8.0;
        assert!(
            (0.85 * takes..=1.05 * takes).contains(&out.rate),
            "{} kbit/s",
            out.rate * 8.0 / 1000.0
        );
        // It carries what the link takes (17.9 fps), skipping the rest...
        assert!(out.sent >= 170, "sent {}", out.sent);
        assert!(out.skipped > 100, "skipped {}", out.skipped);
        // ... and no frame waits behind more than the window: a round trip and a frame
        // interval, twice, at the rate, and its own transfer.
        assert!(out.worst < MS * 400, "worst {:?}", out.worst);
        // The link set the pace, and a queue stands before it.
        assert!(out.standing_queue > MS * 50, "{:?}", out.standing_queue);
        assert!(
            out.full > MS * 5000,
            "frames waited {:?} for room",
            out.full
        );
    }

    #[test]
    fn a_loss_burst_does_not_halve_the_rate() {
        let start = Instant::now();
        // 4 Mbit/s, 50 ms round trip, fully used (16 KB frames at 30 fps = 3.9 Mbit/s); from
        // 3 s on, the acks due for 300 ms are held (a lost packet retransmitted after a
        // timeout), then all come at once.
        let mut path = path(4.0, 50, start);
        let hold = (start + MS * 3000, start + MS * 3300);
        let out = stream(&mut path, 16_000, MS * 33, 8, Some(hold), start);
        let settled: Vec<f64> = (out.rates.iter())
            .filter(|(at, _)| *at >= start + MS * 2000)
            .map(|(_, rate)| *rate)
            .collect();
        let before = settled[0];
        assert!(before >= 0.7 * 4e6 / 8.0, "{before}");
        let worst = settled.iter().copied().fold(f64::MAX, f64::min);
        let best = settled.iter().copied().fold(0.0, f64::max);
        assert!(worst >= before / 2.0, "fell to {worst} from {before}");
        // Nor does the burst of acks after it read as a faster link.
        assert!(best <= 1.1 * 4e6 / 8.0, "rose to {best}");
    }

    #[test]
    fn a_lan_keeps_two_frames_in_flight() {
        let start = Instant::now();
        let mut window = Window::new(Duration::ZERO, start);
        assert!(window.has_room());
        window.sent(0, 6_000_000, start);
        assert!(window.has_room());
        window.sent(1, 6_000_000, start);
        assert!(!window.has_room(), "nothing measured: two frames");
        // A 6 MB frame acked 10 ms later, back to back: the window is still about two frames.
        let acked = window.acked(0, start + MS * 10).unwrap();
        assert_eq!(acked.bytes, 6_000_000);
        window.sent(2, 6_000_000, start + MS * 10);
        window.acked(1, start + MS * 20).unwrap();
        window.sent(3, 6_000_000, start + MS * 20);
        assert!(!window.has_room());
        let frames = window.window_bytes().unwrap() / 6e6;
        assert!((1.5..=4.5).contains(&frames), "{frames} frames");
    }

    #[test]
    fn acks_must_follow_what_was_sent() {
        let start = Instant::now();
        let mut window = Window::new(MS * 33, start);
        let err = window.acked(0, start).unwrap_err();
        assert!(err.to_string().contains("before it was sent"), "{err}");
        window.sent(5, 100, start);
        assert!(window.acked(6, start).is_err());
        assert_eq!(window.acked(5, start + MS).unwrap().bytes, 100);
        assert!(window.frames.is_empty());
    }

    #[test]
    fn windowed_values_are_forgotten_after_their_time() {
        let start = Instant::now();
        let mut most = Windowed::new(Keep::Most);
        most.add(start, 10.0, MS * 100);
        most.add(start + MS * 50, 5.0, MS * 100);
        assert_eq!(most.best(), Some(10.0));
        most.add(start + MS * 120, 1.0, MS * 100);
        assert_eq!(most.best(), Some(5.0));
        let mut least = Windowed::new(Keep::Least);
        least.add(start, MS * 40, RTT_MEMORY);
        least.add(start + MS, MS * 90, RTT_MEMORY);
        assert_eq!(least.best(), Some(MS * 40));
    }
}
