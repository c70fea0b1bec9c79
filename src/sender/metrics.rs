//! `/metrics`: the sender's counters in Prometheus' text format, every name starting
//! `camstream_`.

use super::sinks::browser;
use super::{Counters, Shared};
use crate::lock;
use std::collections::VecDeque;
use std::fmt::Write;
use std::sync::atomic::Ordering;

/// Page latencies kept for the quantiles: the last minute or so at 30 fps.
const LATENCY_SAMPLES: usize = 2000;

/// The latencies the pages reported, newest last, with the count and sum of all.
#[derive(Default)]
pub(super) struct Latencies {
    recent: VecDeque<f64>,
    count: u64,
    sum_us: f64,
}

/// Counts what browsers and MJPEG clients were sent, and what pages measured.
pub(super) struct Tally<'a>(pub &'a Counters);

impl browser::Tally for Tally<'_> {
    fn frame_sent(&self, bytes: usize) {
        self.0.frames_sent.fetch_add(1, Ordering::Relaxed);
        self.0.bytes_sent.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    fn latency(&self, microseconds: f64) {
        let mut latencies = lock(&self.0.page_latencies);
        if latencies.recent.len() >= LATENCY_SAMPLES {
            latencies.recent.pop_front();
        }
        latencies.recent.push_back(microseconds);
        latencies.count += 1;
        latencies.sum_us += microseconds;
    }
}

/// The metrics as Prometheus text.
pub(super) fn render(shared: &Shared) -> String {
    let counters = &shared.counters;
    let load = |n: &std::sync::atomic::AtomicU64| n.load(Ordering::Relaxed);
    let mut text = String::new();
    let mut family = |name: &str, kind: &str, help: &str, samples: &[(String, f64)]| {
        let _ = writeln!(
            text,
            "# HELP camstream_{name} {help}\n# TYPE camstream_{name} {kind}"
        );
        for (labels, value) in samples {
            let _ = writeln!(text, "camstream_{name}{labels} {value}");
        }
    };
    let one = |value: u64| vec![(String::new(), value as f64)];
    family(
        "frames_captured_total",
        "counter",
        "Frames read from the source.",
        &one(load(&counters.frames_captured)),
    );
    let mut encoded = vec![(
        format!("{{codec=\"{}\",encode=\"stream\"}}", shared.stream.codec),
        load(&counters.frames_encoded) as f64,
    )];
    for side in &shared.feeds.sides {
        let labels = format!("{{codec=\"{}\",encode=\"side\"}}", side.codec);
        encoded.push((labels, load(&side.encoded) as f64));
    }
    family(
        "frames_encoded_total",
        "counter",
        "Frames encoded, once for every viewer of the codec.",
        &encoded,
    );
    family(
        "frames_sent_total",
        "counter",
        "Frames sent to viewers, each viewer counted.",
        &one(load(&counters.frames_sent)),
    );
    family(
        "bytes_sent_total",
        "counter",
        "Bytes of frames sent to viewers.",
        &one(load(&counters.bytes_sent)),
    );
    family(
        "frames_skipped_total",
        "counter",
        "Frames viewers that left never got, as they were busy.",
        &one(load(&counters.frames_skipped)),
    );
    let mut viewers: Vec<(String, f64)> = ["receiver", "browser", "mjpeg"]
        .iter()
        .map(|kind| (format!("{{kind=\"{kind}\"}}"), 0.0))
        .collect();
    let kinds = shared.feeds.registries().flat_map(|sinks| sinks.kinds());
    for (kind, n) in kinds {
        if let Some((_, count)) = viewers
            .iter_mut()
            .find(|(labels, _)| labels.contains(&format!("\"{kind}\"")))
        {
            *count += n as f64;
        }
    }
    family(
        "viewers",
        "gauge",
        "Viewers watching now, by kind.",
        &viewers,
    );
    let bitrate = load(&counters.bitrate_kbps);
    if bitrate > 0 {
        family(
            "bitrate_bits_per_second",
            "gauge",
            "The bit rate the encoder aims at.",
            &one(bitrate * 1000),
        );
    }
    if !shared.publishers.is_empty() {
        let reports: Vec<_> = shared.publishers.iter().map(|(t, s)| s.report(t)).collect();
        let per = |value: fn(&crate::stats::PublisherReport) -> f64| -> Vec<(String, f64)> {
            reports
                .iter()
                .map(|r| (format!("{{server=\"{}\"}}", r.server), value(r)))
                .collect()
        };
        type Value = fn(&crate::stats::PublisherReport) -> f64;
        let families: [(&str, &str, &str, Value); 5] = [
            (
                "publisher_up",
                "gauge",
                "1 while the publisher is publishing to its server.",
                |r| f64::from(u8::from(r.state == "publishing")),
            ),
            (
                "publisher_frames_total",
                "counter",
                "Frames sent to the server.",
                |r| r.frames as f64,
            ),
            (
                "publisher_bytes_total",
                "counter",
                "Bytes of frames sent to the server.",
                |r| r.bytes as f64,
            ),
            (
                "publisher_frames_skipped_total",
                "counter",
                "Frames not sent, as the server was slow or gone.",
                |r| r.skipped as f64,
            ),
            (
                "publisher_connects_total",
                "counter",
                "Times publishing started (1 + reconnections).",
                |r| r.connects as f64,
            ),
        ];
        for (name, kind, help, value) in families {
            family(name, kind, help, &per(value));
        }
    }
    let latencies = lock(&counters.page_latencies);
    let mut sorted: Vec<f64> = latencies.recent.iter().copied().collect();
    sorted.sort_by(f64::total_cmp);
    let mut samples: Vec<(String, f64)> = [0.5, 0.99]
        .iter()
        .filter(|_| !sorted.is_empty())
        .map(|q| {
            let at = ((sorted.len() - 1) as f64 * q).round() as usize;
            (format!("{{quantile=\"{q}\"}}"), sorted[at] / 1e6)
        })
        .collect();
    samples.push(("_sum".to_owned(), latencies.sum_us / 1e6));
    samples.push(("_count".to_owned(), latencies.count as f64));
    drop(latencies);
    // A summary's _sum and _count are samples of the family with a suffix, not labels.
    let _ = writeln!(
        text,
        "# HELP camstream_page_latency_seconds Capture to shown, as the pages measured it.\n\
         # TYPE camstream_page_latency_seconds summary"
    );
    for (labels, value) in samples {
        match labels.strip_prefix('_') {
            Some(suffix) => {
                let _ = writeln!(text, "camstream_page_latency_seconds_{suffix} {value}");
            }
            None => {
                let _ = writeln!(text, "camstream_page_latency_seconds{labels} {value}");
            }
        }
    }
    text
}
