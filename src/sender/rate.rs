//! `--bitrate auto`: the encoder's bit rate fitted to what the viewers can take, from what the
//! sender already sees. Every viewer acks each frame it has shown, and its slot counts the
//! frames it had to skip because it was still busy with one: bytes acked over time are its
//! delivery rate, and a viewer that skipped frames in a period was limited by its link (or its
//! machine) at that rate.
//!
//! The policy, every half second:
//! - if some viewers skipped frames, aim at 85% of the slowest of them, leaving out any viewer
//!   far below the others (under a third of their median rate): that one keeps skipping to
//!   keyframes instead of dragging everyone down;
//! - if none has skipped for two seconds, raise the rate by 15%, to find out whether the links
//!   take more;
//! - always within bounds that fit the picture (a sixteenth to twice the fixed default).

use super::sinks::{Feedback, SinkId};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How often the rate is looked at.
const PERIOD: Duration = Duration::from_millis(500);
/// A rate is raised only after this long without a viewer skipping frames.
const CALM: Duration = Duration::from_secs(2);
/// The share of a limited viewer's delivery rate aimed at, leaving room for a larger frame.
const HEADROOM: f64 = 0.85;
/// The factor a calm rate is raised by each period.
const STEP_UP: f64 = 1.15;
/// A viewer under this share of the others' median rate does not set the rate.
const FAR_BELOW: f64 = 1.0 / 3.0;

pub struct RateControl {
    min_kbps: u32,
    max_kbps: u32,
    current_kbps: u32,
    /// Each viewer's counters at the last look.
    last: HashMap<SinkId, Feedback>,
    last_look: Instant,
    last_limited: Instant,
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
        // Each viewer's delivery rate this period (kbit/s), and whether it skipped frames.
        let samples: Vec<(f64, bool)> = feedback
            .iter()
            .filter_map(|now| {
                let before = self.last.get(&now.id)?;
                let bytes = now.delivered.saturating_sub(before.delivered);
                let kbps = bytes as f64 * 8.0 / 1000.0 / seconds;
                Some((kbps, now.skipped > before.skipped))
            })
            .collect();
        self.last = feedback.iter().map(|f| (f.id, *f)).collect();
        let wanted = match median(samples.iter().map(|(kbps, _)| *kbps).collect()) {
            Some(median) => samples
                .iter()
                .filter(|(kbps, skipped)| *skipped && *kbps >= median * FAR_BELOW)
                .map(|(kbps, _)| kbps * HEADROOM)
                .reduce(f64::min),
            None => None,
        };
        let next = match wanted {
            Some(kbps) => {
                self.last_limited = now;
                kbps.round() as u32
            }
            None if now.saturating_duration_since(self.last_limited) >= CALM => {
                (f64::from(self.current_kbps) * STEP_UP).round() as u32
            }
            None => return None,
        }
        .clamp(self.min_kbps, self.max_kbps);
        (next != self.current_kbps).then(|| {
            self.current_kbps = next;
            next
        })
    }
}

fn median(mut values: Vec<f64>) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A controller and a clock; `look` feeds it each viewer's (skipped, delivered bytes) so far.
    struct Run {
        control: RateControl,
        now: Instant,
    }

    impl Run {
        fn new(start_kbps: u32) -> Run {
            let now = Instant::now();
            Run {
                control: RateControl::new(start_kbps, now),
                now,
            }
        }

        fn look(&mut self, viewers: &[(u64, u64)]) -> Option<u32> {
            self.now += PERIOD;
            let feedback: Vec<Feedback> = viewers
                .iter()
                .enumerate()
                .map(|(id, &(skipped, delivered))| Feedback {
                    id: SinkId(id as u64),
                    skipped,
                    delivered,
                })
                .collect();
            self.control.update(self.now, || feedback)
        }
    }

    /// Bytes delivered in one period at `kbps`.
    fn period_bytes(kbps: u64) -> u64 {
        kbps * 1000 / 8 / 2
    }

    #[test]
    fn a_limited_viewer_sets_the_rate_just_under_what_it_takes() {
        let mut run = Run::new(2500);
        assert_eq!(run.look(&[(0, 0)]), None, "the first look only takes note");
        // It took 1000 kbit/s and skipped frames: aim at 850.
        assert_eq!(run.look(&[(5, period_bytes(1000))]), Some(850));
        // Below the bound: a sixteenth of the start.
        let delivered = period_bytes(1000) + period_bytes(50);
        assert_eq!(run.look(&[(9, delivered)]), Some(156));
    }

    #[test]
    fn a_calm_rate_climbs_after_two_seconds_up_to_twice_the_start() {
        let mut run = Run::new(1000);
        run.look(&[(0, 0)]);
        assert_eq!(run.look(&[(1, period_bytes(800))]), Some(680));
        let mut delivered = period_bytes(800);
        let mut rates = Vec::new();
        for _ in 0..20 {
            delivered += period_bytes(600);
            if let Some(kbps) = run.look(&[(1, delivered)]) {
                rates.push(kbps);
            }
        }
        assert_eq!(rates[0], 782, "the first rise, 2 s after the last skip");
        assert!(rates.windows(2).all(|w| w[1] > w[0]), "{rates:?}");
        assert_eq!(rates[rates.len() - 1], 2000);
    }

    #[test]
    fn a_viewer_far_below_the_others_does_not_drag_them_down() {
        let mut run = Run::new(4000);
        run.look(&[(0, 0), (0, 0), (0, 0)]);
        // Two take 3000 kbit/s without skipping; one on a bad link takes 300 and skips.
        let seen = [
            (0, period_bytes(3000)),
            (0, period_bytes(3000)),
            (7, period_bytes(300)),
        ];
        assert_eq!(run.look(&seen), None);
        // One within reach of the others (2000 of 3000) does set the rate.
        let seen = [
            (0, 2 * period_bytes(3000)),
            (3, period_bytes(3000) + period_bytes(2000)),
            (9, 2 * period_bytes(300)),
        ];
        assert_eq!(run.look(&seen), Some(1700));
    }
}
