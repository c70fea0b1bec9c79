//! What each program reports in its `--stats` line: counts, rates, latency and loss, measured
//! from the sequence number and capture time that every frame carries.

use crate::wire::protocol::{unix_micros, FrameHeader};
use anyhow::{Context, Result};
use hdrhistogram::Histogram;
use serde::Serialize;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The local time of day, `HH:MM:SS`, for messages a person reads.
pub fn clock_time(at: SystemTime) -> String {
    let (time, zone) = time_of_day(at);
    format!("{time}{zone}")
}

/// The local time of day to the millisecond, `HH:MM:SS.mmm`: what the test pattern shows.
pub fn clock_time_ms(at: SystemTime) -> String {
    let (time, zone) = time_of_day(at);
    let millis = at
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .subsec_millis();
    format!("{time}.{millis:03}{zone}")
}

/// `HH:MM:SS` in local time, or in UTC when the local time cannot be had, with " UTC" to say so.
fn time_of_day(at: SystemTime) -> (String, &'static str) {
    let seconds = at
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs();
    let seconds = libc::time_t::try_from(seconds).unwrap_or(libc::time_t::MAX);
    // SAFETY: localtime_r only writes the `tm` it is given; an all-zero `tm` is a valid value.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let converted = unsafe { !libc::localtime_r(&seconds, &mut tm).is_null() };
    if !converted {
        let of_day = seconds.rem_euclid(86_400);
        let time = format!(
            "{:02}:{:02}:{:02}",
            of_day / 3600,
            of_day / 60 % 60,
            of_day % 60
        );
        return (time, " UTC");
    }
    let time = format!("{:02}:{:02}:{:02}", tm.tm_hour, tm.tm_min, tm.tm_sec);
    (time, "")
}

/// Latencies are kept in a histogram (1 µs to 1 h, 3 significant digits): fixed memory however
/// long the stream runs.
fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("constant histogram bounds are valid")
}

pub struct ReceiverStats {
    frames: u64,
    bytes: u64,
    dropped: u64,
    damaged: u64,
    last_seq: Option<u64>,
    reconnects: u64,
    clock_offset_us: i64,
    started: Instant,
    first_frame: Option<Instant>,
    last_frame: Option<Instant>,
    latency_us: Histogram<u64>,
    /// Why latency is not measured: the stream carries no capture time we can trust.
    latency_note: Option<String>,
}

impl Default for ReceiverStats {
    fn default() -> Self {
        ReceiverStats {
            frames: 0,
            bytes: 0,
            dropped: 0,
            damaged: 0,
            last_seq: None,
            reconnects: 0,
            clock_offset_us: 0,
            started: Instant::now(),
            first_frame: None,
            last_frame: None,
            latency_us: latency_histogram(),
            latency_note: None,
        }
    }
}

#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct LatencyReport {
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub max: f64,
}

/// The receiver's `--stats` line.
#[derive(Serialize, Debug, Clone, PartialEq)]
pub struct ReceiverReport {
    pub frames: u64,
    pub bytes: u64,
    pub seconds: f64,
    pub fps: f64,
    /// `null` when the stream carries no capture time (see `latency_note`).
    pub latency_ms: Option<LatencyReport>,
    /// Why latency is left out, when it is; absent for a camstream sender.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_note: Option<String>,
    pub dropped: u64,
    /// Frames that arrived and were not shown: one that did not decode, and those that depend
    /// on it, until a keyframe.
    pub damaged: u64,
    /// Times the receiver lost its sender and connected again.
    pub reconnects: u64,
    /// The sender's clock minus the receiver's (the last connection's), which every latency
    /// above is corrected by.
    pub clock_offset_ms: f64,
    /// CPU time the whole process used so far (user + system), to compare runs.
    pub cpu_seconds: f64,
}

impl ReceiverStats {
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Frames that never arrived, so far.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// A new connection numbers its frames from 0 again: no gap to the last stream's frames.
    /// `clock_offset_us` is its sender's clock minus ours.
    pub fn new_stream(&mut self, clock_offset_us: i64) {
        self.last_seq = None;
        self.clock_offset_us = clock_offset_us;
    }

    /// A stream whose frames carry no capture time: latency is left out, and `note` says why.
    pub fn new_untimed_stream(&mut self, note: String) {
        self.last_seq = None;
        self.latency_note = Some(note);
    }

    pub fn reconnected(&mut self) {
        self.reconnects += 1;
    }

    /// Counts a frame shown (or decoded) at `shown_at`, carried in a message of `bytes` bytes.
    pub fn record(&mut self, header: &FrameHeader, bytes: usize, shown_at: SystemTime) {
        let now = Instant::now();
        self.frames += 1;
        self.bytes += bytes as u64;
        if let Some(last) = self.last_seq {
            self.dropped += header.seq.saturating_sub(last + 1);
        }
        self.last_seq = Some(header.seq);
        self.first_frame.get_or_insert(now);
        self.last_frame = Some(now);
        if self.latency_note.is_none() {
            let latency = unix_micros(shown_at).saturating_sub(header.capture_unix_us);
            self.latency_us.saturating_record(latency.max(1));
        }
    }

    /// Counts a frame that arrived and was not shown (it, or one it depends on, did not decode).
    pub fn not_shown(&mut self, header: &FrameHeader) {
        self.damaged += 1;
        self.last_seq = Some(header.seq);
    }

    pub fn report(&self) -> ReceiverReport {
        let ms = |us: u64| (us as f64 / 1000.0 * 100.0).round() / 100.0;
        let stream_seconds = match (self.first_frame, self.last_frame) {
            (Some(first), Some(last)) => (last - first).as_secs_f64(),
            _ => 0.0,
        };
        let fps = if stream_seconds > 0.0 {
            (self.frames - 1) as f64 / stream_seconds
        } else {
            0.0
        };
        let quantile = |q: f64| match self.frames {
            0 => 0.0,
            _ => ms(self.latency_us.value_at_quantile(q)),
        };
        ReceiverReport {
            frames: self.frames,
            bytes: self.bytes,
            seconds: round3(self.started.elapsed().as_secs_f64()),
            fps: round3(fps),
            latency_ms: match self.latency_note {
                Some(_) => None,
                None => Some(LatencyReport {
                    p50: quantile(0.5),
                    p90: quantile(0.9),
                    p99: quantile(0.99),
                    max: quantile(1.0),
                }),
            },
            latency_note: self.latency_note.clone(),
            dropped: self.dropped,
            damaged: self.damaged,
            reconnects: self.reconnects,
            clock_offset_ms: (self.clock_offset_us as f64 / 10.0).round() / 100.0,
            cpu_seconds: round3(process_cpu_seconds()),
        }
    }
}

/// The receiver's `--frame-log`: one CSV line per frame shown, for plotting latency and drops.
pub struct FrameLog {
    path: PathBuf,
    out: BufWriter<File>,
}

impl FrameLog {
    pub const HEADER: &'static str =
        "seq,capture_unix_us,arrival_unix_us,display_unix_us,latency_ms,bytes";

    pub fn create(path: &Path) -> Result<Self> {
        let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
        let mut log = FrameLog {
            path: path.to_owned(),
            out: BufWriter::new(file),
        };
        log.line(format_args!("{}", Self::HEADER))?;
        Ok(log)
    }

    /// Logs frame `seq`, captured at `capture_unix_us` (left empty, with its latency, when the
    /// stream does not say), which arrived complete at `arrived` and was shown at `shown`.
    pub fn write(
        &mut self,
        seq: u64,
        capture_unix_us: Option<u64>,
        arrived: SystemTime,
        shown: SystemTime,
        bytes: usize,
    ) -> Result<()> {
        let shown_us = unix_micros(shown);
        let (capture, latency) = match capture_unix_us {
            Some(capture) => (
                capture.to_string(),
                format!("{:.3}", shown_us.saturating_sub(capture) as f64 / 1000.0),
            ),
            None => (String::new(), String::new()),
        };
        self.line(format_args!(
            "{seq},{capture},{},{shown_us},{latency},{bytes}",
            unix_micros(arrived),
        ))
    }

    fn line(&mut self, line: std::fmt::Arguments<'_>) -> Result<()> {
        writeln!(self.out, "{line}").with_context(|| format!("writing {}", self.path.display()))
    }

    pub fn finish(mut self) -> Result<()> {
        self.out
            .flush()
            .with_context(|| format!("writing {}", self.path.display()))
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// The sender's `--stats` line.
#[derive(Serialize, Debug, Default, PartialEq)]
pub struct SenderReport {
    /// Frames read from the source.
    pub frames_captured: u64,
    /// Frames encoded: once each, however many viewers got it.
    pub frames_encoded: u64,
    /// Frame messages written, summed over viewers.
    pub frames_sent: u64,
    /// Bytes written, summed over viewers.
    pub bytes_sent: u64,
    /// Frames a viewer never got because a newer one replaced it while it was busy.
    pub frames_skipped: u64,
    /// Viewers that completed the handshake.
    pub viewers: u64,
    /// The bit rate the encoder aims at, kbit/s (H.264; `null` for JPEG and raw).
    pub bitrate_kbps: Option<u32>,
    pub seconds: f64,
    /// CPU time the whole process used (user + system), to compare runs.
    pub cpu_seconds: f64,
    /// Each `--publish` server.
    pub publishers: Vec<PublisherReport>,
}

/// What one publisher did.
#[derive(Serialize, Debug, Default, PartialEq)]
pub struct PublisherReport {
    /// The URL without its secrets (user, password, stream key).
    pub server: String,
    /// "publishing", "retrying", "ended"…
    pub state: &'static str,
    pub frames: u64,
    pub bytes: u64,
    /// Frames it never sent, as the server was slow or gone.
    pub skipped: u64,
    /// Times it started publishing (1 + reconnections).
    pub connects: u64,
}

impl SenderReport {
    pub fn finish(mut self, started: Instant) -> Self {
        self.seconds = round3(started.elapsed().as_secs_f64());
        self.cpu_seconds = round3(process_cpu_seconds());
        self
    }
}

/// User plus system CPU time of this process so far; 0 if the kernel will not say.
pub fn process_cpu_seconds() -> f64 {
    // SAFETY: getrusage only writes into the zeroed struct we own.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return 0.0;
    }
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::protocol::tests::sample_header;

    fn header(seq: u64, capture_unix_us: u64) -> FrameHeader {
        FrameHeader {
            seq,
            capture_unix_us,
            ..sample_header()
        }
    }

    #[test]
    fn gaps_count_as_dropped_and_latency_is_measured() {
        let mut stats = ReceiverStats::default();
        let t0 = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let base = unix_micros(t0);
        for (seq, latency_ms) in [(5, 10), (6, 20), (9, 30), (10, 40)] {
            stats.record(
                &header(seq, base),
                100,
                t0 + Duration::from_millis(latency_ms),
            );
        }
        let report = stats.report();
        assert_eq!(report.frames, 4);
        assert_eq!(report.bytes, 400);
        assert_eq!(report.dropped, 2);
        let latency = report.latency_ms.as_ref().unwrap();
        assert!((latency.max - 40.0).abs() < 0.1, "{report:?}");
        assert!((latency.p50 - 20.0).abs() < 0.1, "{report:?}");
        let json = serde_json::to_string(&report).unwrap();
        assert!(
            json.starts_with("{\"frames\":4,\"bytes\":400,\"seconds\":"),
            "{json}"
        );
        assert!(json.contains("\"latency_ms\":{\"p50\":"), "{json}");
        assert!(!json.contains("latency_note"), "{json}");
    }

    #[test]
    fn a_stream_without_capture_times_reports_no_latency_and_why() {
        let mut stats = ReceiverStats::default();
        stats.new_untimed_stream("rtmp:// streams carry no capture time".into());
        stats.record(&header(0, 0), 100, SystemTime::now());
        let json = serde_json::to_string(&stats.report()).unwrap();
        assert!(
            json.contains(
                "\"latency_ms\":null,\"latency_note\":\"rtmp:// streams carry no capture time\""
            ),
            "{json}"
        );
    }

    #[test]
    fn the_frame_log_has_a_header_and_a_line_per_frame() {
        let path = std::env::temp_dir().join(format!("camstream-log-{}.csv", std::process::id()));
        let mut log = FrameLog::create(&path).unwrap();
        let t0 = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        log.write(
            42,
            Some(unix_micros(t0)),
            t0 + Duration::from_micros(2_500),
            t0 + Duration::from_micros(12_345),
            999,
        )
        .unwrap();
        log.write(43, None, t0, t0 + Duration::from_micros(1), 7)
            .unwrap();
        log.finish().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(
            text,
            "seq,capture_unix_us,arrival_unix_us,display_unix_us,latency_ms,bytes\n\
             42,1700000000000000,1700000000002500,1700000000012345,12.345,999\n\
             43,,1700000000000000,1700000000000001,,7\n"
        );
    }

    #[test]
    fn an_empty_stream_reports_zeros() {
        let report = ReceiverStats::default().report();
        assert_eq!(report.frames, 0);
        assert_eq!(report.fps, 0.0);
        assert_eq!(report.latency_ms.unwrap().max, 0.0);
    }
}
