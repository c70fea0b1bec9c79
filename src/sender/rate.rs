//! `--bitrate auto`: the encoder's bit rate fitted to what the viewers can take, from what the
//! sender already sees. Every viewer acks each frame it has shown; its window
//! ([`super::sinks::window`]) measures from those acks its link's delivery rate (bytes newly
//! acknowledged over the time between acks, the best of the last few round trips, as BBR
//! does) and how long frames waited for room in it. Its slot counts the frames that had to
//! queue, or were skipped, because it was still busy. Measuring between acks matters: bytes
//! over the time a frame was in flight would read a long round trip as a thin link, and the
//! rate would walk down to the floor on any path across the internet.
//!
//! The policy, every half second:
//! - if some viewers fell behind while their window was full, or a queue stands in their path
//!   (even their quickest frame of late took 50 ms longer than their round trip: the link, not
//!   the camera, set the pace), aim at 85% of the slowest one's delivery rate (rising by at most 15% and falling
//!   by at most half a period), leaving out any viewer far below the others (under a third of
//!   their median rate): that one keeps skipping to keyframes instead of dragging everyone down;
//! - if none has been behind for two seconds, raise the rate by 15% a period, to find out
//!   whether the links take more; by 4% once near what they took when last limited;
//! - always within bounds that fit the picture (a sixteenth to twice the fixed default: more
//!   costs the viewers' machines CPU that the picture hardly needs, and a page on a busy machine
//!   falls behind without its link or acks showing it).

use super::sinks::{Counters, Feedback, SinkId};
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// How often the rate is looked at.
const PERIOD: Duration = Duration::from_millis(500);
/// A rate is raised only after this long without a viewer skipping frames.
const CALM: Duration = Duration::from_secs(2);
/// The share of a limited viewer's delivery rate aimed at, leaving room for a larger frame.
const HEADROOM: f64 = 0.85;
/// The factor a calm rate is raised by each period.
const STEP_UP: f64 = 1.15;
/// The factor a calm rate is raised by each period once it is near what the links took when
/// last limited: going past it costs a burst of latency, so the rate feels its way there.
const PROBE_STEP: f64 = 1.04;
/// The most a rate falls in one period. A link that has just narrowed loses packets, and while
/// TCP recovers them (a retransmission timeout is 200 ms or more) the delivery rate looks far
/// lower than the link's: halving, and looking again, does not overshoot into the floor.
const STEP_DOWN: f64 = 0.5;
/// The share of a period frames must have waited for room in a viewer's window for its
/// delivery rate to measure its link: with room to spare, the camera set the pace, and the
/// rate measured is the stream's, not the link's.
const SATURATED: f64 = 0.75;
/// A queue standing this long in a viewer's path (even its quickest frame of late took this
/// much longer than its round trip) says the stream is more than its link takes, before any
/// frame has to wait for room: a window sized by the round trip leaves room for that much.
const STANDING_QUEUE: Duration = Duration::from_millis(40);
/// What the links took when limited is remembered this long: a rate climbs back towards it by
/// [`PROBE_STEP`], up to [`PROBE_CEILING`] of it, and no further until it is forgotten (then
/// by [`PROBE_STEP`] again). Each rise past what a link takes builds a queue that every frame
/// waits in until it is noticed, about a second later.
const TAKES_MEMORY: Duration = Duration::from_secs(10);
/// The share of what the links took that a calm rate climbs to while it is remembered.
const PROBE_CEILING: f64 = 0.95;
/// A viewer's first this long does not set the rate: its window starts at two frames and
/// grows as it measures the path (doubling each round trip), and until then what it takes is
/// the window's, not the link's.
const FINDING_PATH: Duration = Duration::from_secs(1);
/// A viewer that could not show this many of the frames it received in a period (a page
/// whose decoder fell behind: it acks frames as they arrive, so its window cannot say so)
/// was sent more than its machine plays. A frame or two is the browser's own hiccup.
const UNSHOWN_LIMIT: u64 = 3;
/// A viewer under this share of the others' median rate does not set the rate.
const FAR_BELOW: f64 = 1.0 / 3.0;

pub struct RateControl {
    min_kbps: u32,
    max_kbps: u32,
    current_kbps: u32,
    /// Each viewer's counters at the last look, and when it was first seen.
    last: HashMap<SinkId, (Counters, Instant)>,
    last_look: Instant,
    last_limited: Instant,
    /// What the links took in each limited period of the last [`TAKES_MEMORY`].
    takes_kbps: VecDeque<(Instant, f64)>,
    /// Some link was ever measured: past [`TAKES_MEMORY`] the rate still feels its way.
    measured: bool,
}

impl RateControl {
    /// Starts at `start_kbps`, the rate that fits the picture, and moves within a sixteenth to
    /// twice it.
    pub fn new(start_kbps: u32, now: Instant) -> Self {
        RateControl {
            min_kbps: (start_kbps / 16).max(100),
            max_kbps: start_kbps.saturating_mul(2),
            current_kbps: start_kbps,
            last: HashMap::new(),
            last_look: now,
            last_limited: now,
            takes_kbps: VecDeque::new(),
            measured: false,
        }
    }

    /// Looks at the viewers' counters (asked for only when a period is up: this runs for
    /// every frame); returns a new rate when it should change.
    pub fn update(
        &mut self,
        now: Instant,
        feedback: impl FnOnce() -> Vec<Feedback>,
    ) -> Option<u32> {
        let elapsed = now.saturating_duration_since(self.last_look);
        if elapsed < PERIOD {
            return None;
        }
        let feedback = feedback();
        self.last_look = now;
        let seconds = elapsed.as_secs_f64();
        // Each viewer's delivery rate this period (kbit/s), and whether it fell behind.
        let samples: Vec<Sample> = feedback
            .iter()
            .filter_map(|viewer| {
                let (before, seen) = *self.last.get(&viewer.id)?;
                if now.saturating_duration_since(seen) < FINDING_PATH {
                    return None;
                }
                let now = viewer.counters;
                if now.rate == 0 {
                    return None;
                }
                let full = now.full_us.saturating_sub(before.full_us) as f64 / 1e6;
                let skipped = now.skipped > before.skipped;
                let standing = now.standing_queue_us >= STANDING_QUEUE.as_micros() as u64;
                let unshown = now.unshown - before.unshown;
                log::trace!(
                    "rate: viewer {}: {} kbit/s, queue {} ms, full {:.0}%, queued {}, skipped {}, unshown {}",
                    viewer.id.0,
                    now.rate * 8 / 1000,
                    now.standing_queue_us / 1000,
                    full / seconds * 100.0,
                    now.queued - before.queued,
                    now.skipped - before.skipped,
                    unshown,
                );
                let unshown = unshown >= UNSHOWN_LIMIT;
                Some(Sample {
                    kbps: now.rate as f64 * 8.0 / 1000.0,
                    behind: skipped || standing || unshown || now.queued > before.queued,
                    skipped,
                    unshown,
                    standing,
                    full: full >= seconds * SATURATED,
                })
            })
            .collect();
        self.last = (feedback.iter())
            .map(|f| {
                let seen = self.last.get(&f.id).map_or(now, |(_, seen)| *seen);
                (f.id, (f.counters, seen))
            })
            .collect();
        let median = median(samples.iter().map(|s| s.kbps).collect())?;
        let behind: Vec<&Sample> = samples
            .iter()
            .filter(|s| s.behind && s.kbps >= median * FAR_BELOW)
            .collect();
        let current = f64::from(self.current_kbps);
        let next = match behind.is_empty() {
            false => {
                // No rise while some viewer falls behind.
                self.last_limited = now;
                // What the links take, from the slowest viewer with a queue standing in its path:
                // only that says its link set the pace (a full window alone may be a lost
                // packet's recovery holding up the acks).
                let slowest = behind
                    .iter()
                    .filter(|s| s.standing)
                    .map(|s| s.kbps)
                    .reduce(f64::min);
                let mut aim = current;
                if let Some(takes) = slowest {
                    self.takes_kbps.push_back((now, takes));
                    self.measured = true;
                    aim = takes * HEADROOM;
                }
                // Skipping (stuck behind for longer than a burst) where the link set the pace
                // brings the rate down at once: a link that has just narrowed loses packets,
                // and its delivery rate reads high until the best of the last second is gone.
                // Skipping on a link with room to spare is a lost packet's recovery: holding
                // the rate is what keeps it from walking down to the floor on a lossy path.
                if behind.iter().any(|s| s.skipped && s.full) {
                    aim = aim.min(current * HEADROOM);
                }
                // A machine that could not play what it received took less than this rate:
                // lower it, and climb back no closer than a probe while that is remembered.
                if behind.iter().any(|s| s.unshown) {
                    self.takes_kbps.push_back((now, current));
                    self.measured = true;
                    aim = aim.min(current * HEADROOM);
                }
                aim.clamp(current * STEP_DOWN, current * STEP_UP).round() as u32
            }
            true if now.saturating_duration_since(self.last_limited) >= CALM => {
                // Near what the links took lately, feel for more gently, and stop short of it;
                // once that is forgotten, feel for more again (a link may have widened). Only
                // before any link was measured (or far below what one took) climb quickly.
                self.takes_kbps
                    .retain(|(at, _)| now.saturating_duration_since(*at) < TAKES_MEMORY);
                let takes = (self.takes_kbps.iter())
                    .map(|(_, kbps)| *kbps)
                    .reduce(f64::max);
                match takes {
                    Some(takes) if current * STEP_UP > takes * HEADROOM => {
                        let ceiling = (takes * PROBE_CEILING).max(current);
                        (current * PROBE_STEP).min(ceiling).round() as u32
                    }
                    None if self.measured => (current * PROBE_STEP).round() as u32,
                    _ => (current * STEP_UP).round() as u32,
                }
            }
            true => return None,
        }
        .clamp(self.min_kbps, self.max_kbps);
        (next != self.current_kbps).then(|| {
            self.current_kbps = next;
            next
        })
    }
}

/// One viewer's period.
struct Sample {
    /// Its delivery rate, as its window measured it.
    kbps: f64,
    /// Frames queued for it, or were skipped.
    behind: bool,
    /// Frames were skipped: it was behind for longer than a burst.
    skipped: bool,
    /// A queue stands in its path: the stream is more than its link takes.
    standing: bool,
    /// It could not show some frames it received: more than its machine plays.
    unshown: bool,
    /// Frames waited for room in its window for much of the period: its link was too thin, or
    /// a lost packet held the acks up.
    full: bool,
}

fn median(mut values: Vec<f64>) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sender::sinks::Counters;

    /// One viewer's period: what it took, and how.
    #[derive(Clone, Copy)]
    struct Period {
        kbps: u64,
        skipped: u64,
        queued: u64,
        unshown: u64,
        /// Share of the period frames waited for room in its window.
        full: f64,
        /// The queue standing in its path, ms.
        queue_ms: u64,
    }

    const CALM_PERIOD: Period = Period {
        kbps: 600,
        skipped: 0,
        queued: 0,
        unshown: 0,
        full: 0.1,
        queue_ms: 5,
    };

    /// Frames queued for it behind a queue standing in its path: it takes `kbps`, and no more.
    fn behind(kbps: u64) -> Period {
        Period {
            kbps,
            skipped: 0,
            queued: 3,
            unshown: 0,
            full: 1.0,
            queue_ms: 80,
        }
    }

    /// A controller, a clock, and each viewer's counters so far.
    struct Run {
        control: RateControl,
        now: Instant,
        counters: Vec<Counters>,
    }

    impl Run {
        fn new(start_kbps: u32, viewers: usize) -> Run {
            let now = Instant::now();
            let mut run = Run {
                control: RateControl::new(start_kbps, now),
                now,
                counters: vec![Counters::default(); viewers],
            };
            // The first look takes note; the next is still within FINDING_PATH.
            for _ in 0..2 {
                assert_eq!(run.look(&vec![behind(100); viewers]), None);
            }
            run
        }

        /// The next period, as each viewer saw it; the controller's answer.
        fn look(&mut self, periods: &[Period]) -> Option<u32> {
            self.now += PERIOD;
            for (counters, period) in self.counters.iter_mut().zip(periods) {
                counters.rate = period.kbps * 1000 / 8;
                counters.skipped += period.skipped;
                counters.queued += period.queued;
                counters.unshown += period.unshown;
                counters.full_us += (PERIOD.as_micros() as f64 * period.full) as u64;
                counters.standing_queue_us = period.queue_ms * 1000;
            }
            let feedback: Vec<Feedback> = (self.counters.iter().enumerate())
                .map(|(id, counters)| Feedback {
                    id: SinkId(id as u64),
                    counters: *counters,
                })
                .collect();
            self.control.update(self.now, || feedback)
        }
    }

    #[test]
    fn a_viewer_behind_on_a_busy_link_brings_the_rate_just_under_what_it_takes() {
        let mut run = Run::new(2500, 1);
        // It takes 1000 kbit/s: aim at 850, falling by half a period at most.
        assert_eq!(run.look(&[behind(1000)]), Some(1250));
        assert_eq!(run.look(&[behind(1000)]), Some(850));
        assert_eq!(run.look(&[behind(1000)]), None);
    }

    #[test]
    fn a_viewer_behind_with_room_to_spare_holds_the_rate_and_skipping_on_a_full_link_lowers_it() {
        let mut run = Run::new(1000, 1);
        // Frames queued while its link was mostly idle (a hiccup of its own): its few bytes
        // say nothing of the link, so the rate holds, and does not rise 2 s on either.
        let hiccup = Period {
            kbps: 5000,
            queued: 2,
            ..CALM_PERIOD
        };
        assert_eq!(run.look(&[hiccup]), None);
        for _ in 0..3 {
            assert_eq!(run.look(&[CALM_PERIOD]), None);
        }
        // Skipping with room in its window is a lost packet's recovery: the rate holds.
        let recovering = Period {
            skipped: 4,
            ..hiccup
        };
        assert_eq!(run.look(&[recovering]), None);
        // Skipping with its window full lowers it at once, though its rate still reads high
        // (the best of the last second, from before its link narrowed).
        let narrowed = Period {
            full: 1.0,
            ..recovering
        };
        assert_eq!(run.look(&[narrowed]), Some(850));
    }

    #[test]
    fn a_calm_rate_climbs_after_two_seconds_gently_near_what_the_link_took() {
        let mut run = Run::new(1000, 1);
        assert_eq!(run.look(&[behind(800)]), Some(680));
        // (seconds since it was limited, new rate)
        let rates: Vec<(f64, u32)> = (1..=24)
            .filter_map(|n| Some((f64::from(n) / 2.0, run.look(&[CALM_PERIOD])?)))
            .collect();
        assert_eq!(
            rates[0],
            (2.0, 707),
            "2 s after: near the 800 it took, by 4%"
        );
        assert_eq!(rates[1..3], [(2.5, 735), (3.0, 760)], "up to 95% of it");
        // Once what it took is forgotten, it feels for more again: the link may have widened.
        assert_eq!(rates[3], (10.0, 790));
        // Far below what a link took (after a narrowing that cut it hard), it climbs by 15%.
        let mut run = Run::new(1000, 1);
        let skipping = Period {
            skipped: 4,
            kbps: 5000,
            full: 1.0,
            ..CALM_PERIOD
        };
        let cut: Vec<u32> = (0..4).filter_map(|_| run.look(&[skipping])).collect();
        assert_eq!(cut, [850, 723, 615, 523]);
        let rates: Vec<u32> = (0..40).filter_map(|_| run.look(&[CALM_PERIOD])).collect();
        assert_eq!(rates[0], 601, "15% up: far below the 5000 it took");
        assert_eq!(*rates.last().unwrap(), 2000, "up to twice the start");
    }

    #[test]
    fn a_full_window_without_a_standing_queue_is_a_loss_being_recovered() {
        let mut run = Run::new(4000, 1);
        // Frames waited for room most of the period, but even the quickest frame came back
        // at the path's round trip: acks held up by a lost packet, not a thin link. The rate
        // holds (however low the period's delivery rate) and does not rise for 2 s.
        let recovering = Period {
            kbps: 2000,
            queued: 6,
            full: 0.9,
            ..CALM_PERIOD
        };
        assert_eq!(run.look(&[recovering]), None);
        for _ in 0..3 {
            assert_eq!(run.look(&[CALM_PERIOD]), None);
        }
        // A queue standing in the path, though, is the link's limit.
        let thin = Period {
            queue_ms: 80,
            ..recovering
        };
        assert_eq!(run.look(&[thin]), Some(2000));
    }

    #[test]
    fn a_viewer_far_below_the_others_does_not_drag_them_down() {
        let mut run = Run::new(4000, 3);
        // Two take 3000 kbit/s at ease; one on a bad link takes 300 and skips.
        let easy = Period {
            kbps: 3000,
            ..CALM_PERIOD
        };
        let bad = Period {
            skipped: 7,
            ..behind(300)
        };
        assert_eq!(run.look(&[easy, easy, bad]), None);
        // One within reach of the others (2000 of 3000) does set the rate.
        assert_eq!(run.look(&[easy, behind(2000), bad]), Some(2000));
        assert_eq!(run.look(&[easy, behind(2000), bad]), Some(1700));
    }

    #[test]
    fn a_page_that_cannot_play_what_it_receives_brings_the_rate_down_and_caps_the_climb() {
        let mut run = Run::new(2500, 1);
        // A tab whose link is fast and idle, but whose decoder drops frames: its acks say
        // nothing is wrong, what it could not show does.
        let playing = Period {
            kbps: 100_000,
            ..CALM_PERIOD
        };
        // At ease, it climbs to twice the start.
        let rates: Vec<u32> = (0..20).filter_map(|_| run.look(&[playing])).collect();
        assert_eq!(rates.last(), Some(&5000));
        let dropping = Period {
            unshown: 5,
            ..playing
        };
        assert_eq!(
            run.look(&[dropping]),
            Some(4250),
            "15% below what it could not play"
        );
        // A frame or two is the browser's own hiccup.
        let hiccup = Period {
            unshown: 2,
            ..playing
        };
        assert_eq!(run.look(&[hiccup]), None);
        // It climbs back, gently, to no more than 95% of the rate it could not play.
        let rates: Vec<u32> = (0..12).filter_map(|_| run.look(&[playing])).collect();
        assert_eq!(rates, [4420, 4597, 4750]);
    }
}
