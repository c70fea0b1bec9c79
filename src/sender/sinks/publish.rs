//! A media server as a sink (`--publish`): H.264 from one encode, muxed by libavformat
//! ([`crate::media::remux`]) and sent as it comes. A server has no acks, so its slot is a short
//! queue: a stalled server makes it skip to the next keyframe (counted), and slows nobody. A
//! server that goes away is said once in the log and published to again, with backoff, until
//! the stream ends.

use super::{Hooks, Policy, Sinks};
use crate::config::{Bitrate, PublishTarget};
use crate::error_line;
use crate::lock;
use crate::media::codec::Stored;
use crate::media::remux::Remuxer;
use crate::stats::PublisherReport;
use crate::wire::protocol::Codec;
use anyhow::Result;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What a media server is sent.
pub const CODEC: Codec = Codec::H264;

/// Whether publishers can take the stream's own encode (else one on the side): only at a fixed
/// rate, as a server sends no acks for `--bitrate auto` to fit the rate to.
pub fn takes_the_stream(stream: Codec, bitrate: Bitrate) -> bool {
    stream == CODEC && matches!(bitrate, Bitrate::Fixed(_))
}

/// Frames a publisher may hold while its server is slow: a second at 30 fps.
const QUEUE: usize = 30;
/// The first wait before publishing again, doubled each time up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(4);

/// What a publisher is doing, for `--stats` and `/metrics`.
pub struct PublisherStatus {
    state: Mutex<&'static str>,
    pub frames: AtomicU64,
    pub bytes: AtomicU64,
    pub skipped: AtomicU64,
    /// Times it started publishing.
    pub connects: AtomicU64,
}

impl Default for PublisherStatus {
    fn default() -> Self {
        PublisherStatus {
            state: Mutex::new("connecting"),
            frames: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
            connects: AtomicU64::new(0),
        }
    }
}

impl PublisherStatus {
    /// "connecting", "publishing", "retrying" or "ended".
    pub fn state(&self) -> &'static str {
        *lock(&self.state)
    }

    fn set(&self, state: &'static str) {
        *lock(&self.state) = state;
    }

    /// Its line in `--stats`.
    pub fn report(&self, target: &PublishTarget) -> PublisherReport {
        let load = |n: &AtomicU64| n.load(Ordering::Relaxed);
        PublisherReport {
            server: target.redacted(),
            state: self.state(),
            frames: load(&self.frames),
            bytes: load(&self.bytes),
            skipped: load(&self.skipped),
            connects: load(&self.connects),
        }
    }
}

/// What the stream is, for the server.
pub struct Track {
    pub stored: Stored,
    pub size: (u32, u32),
    pub fps: f64,
}

/// Publishes the frames of `sinks` to `target` until the stream ends.
pub fn run(target: &PublishTarget, track: &Track, sinks: &Sinks, status: &PublisherStatus) {
    let name = target.redacted();
    let mut backoff = FIRST_BACKOFF;
    let mut said_gone = false;
    while !sinks.is_closed() {
        status.set("connecting");
        let before = status.frames.load(Ordering::Relaxed);
        let published = publish(target, track, sinks, status);
        let sent = status.frames.load(Ordering::Relaxed) - before;
        match published {
            Ok(()) => break,
            Err(e) if sent > 0 || !said_gone => {
                log::warn!("{}; publishing again when it is back", error_line(&e));
                said_gone = true;
            }
            Err(_) => {}
        }
        if sent > 0 {
            backoff = FIRST_BACKOFF;
        }
        status.set("retrying");
        let until = Instant::now() + backoff;
        while Instant::now() < until && !sinks.is_closed() {
            std::thread::sleep(crate::POLL);
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
        if sent > 0 {
            said_gone = false;
        }
    }
    status.set("ended");
    log::info!(
        "stopped publishing to {name} after {} frames",
        status.frames.load(Ordering::Relaxed)
    );
}

/// One connection to the server: `Ok` when the stream ended.
fn publish(
    target: &PublishTarget,
    track: &Track,
    sinks: &Sinks,
    status: &PublisherStatus,
) -> Result<()> {
    let mut remuxer = Remuxer::publish(target, track.stored, track.size, track.fps)?;
    let member = sinks.member(
        Policy::Queue(QUEUE),
        Hooks {
            kind: "publisher",
            prepare: None,
            disconnect: Box::new(|| {}),
        },
    );
    sinks.activate(member.id);
    let mut started = false;
    // What the slot skipped, added to the status as it happens.
    let mut skipped = 0;
    let mut count_skipped = || {
        let now = member.slot.skipped();
        status.skipped.fetch_add(now - skipped, Ordering::Relaxed);
        skipped = now;
    };
    let result = (|| {
        while let Some(frame) = member.slot.next() {
            count_skipped();
            remuxer.write(&frame.header, &frame.data)?;
            if !started && frame.header.keyframe {
                started = true;
                status.set("publishing");
                status.connects.fetch_add(1, Ordering::Relaxed);
                log::info!(
                    "publishing to {} ({}x{} H.264): the pairing code does not protect the stream there; the server's own access control does",
                    target.redacted(),
                    track.size.0,
                    track.size.1
                );
            }
            status
                .frames
                .fetch_add(u64::from(started), Ordering::Relaxed);
            status.bytes.fetch_add(
                frame.data.len() as u64 * u64::from(started),
                Ordering::Relaxed,
            );
        }
        remuxer.finish().map(|_| ())
    })();
    count_skipped();
    result
}
