//! The encodes frames go out from: the stream's own, and side ones in another codec for the
//! kinds of sink that take another (JPEG for MJPEG clients, snapshots and pages that cannot play
//! the stream; H.264 at a fixed rate for publishers), each encoded once per frame and only while
//! one of its sinks is there; and, for an H.264 stream, its fragmented MP4 for pages.

use super::sinks::browser::Fragments;
use super::sinks::{self, Sinks};
use super::SenderConfig;
use crate::media::codec;
use crate::wire::protocol::{Codec, StreamHello};
use anyhow::Result;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

pub(super) struct Feeds {
    /// The sinks of the stream's own encode.
    pub sinks: Sinks,
    /// The side encodes.
    pub sides: Vec<SideFeed>,
    /// Where JPEG frames come from: `None` for the stream itself.
    jpeg_side: Option<usize>,
    /// Where publishers' H.264 comes from: `None` for the stream itself.
    publish_side: Option<usize>,
    /// For an H.264 stream: its fragmented MP4 for pages.
    pub fragments: Option<Arc<Fragments>>,
}

/// Sinks that want another codec than the stream's.
pub(super) struct SideFeed {
    pub codec: Codec,
    pub sinks: Sinks,
    /// Frames encoded for them.
    pub encoded: AtomicU64,
}

impl Feeds {
    /// The stream's feed, and a side one for each kind of sink that takes another codec than
    /// the stream's (each kind says which; the stream's own encode serves it when it can).
    pub fn new(config: &SenderConfig, hello: &StreamHello) -> Result<Feeds> {
        let sinks = Sinks::default();
        let fragments = match codec::format(config.codec).stored() {
            Some(stored) if stored.mp4_codecs.is_some() => Some(Arc::new(Fragments::new(
                stored,
                (hello.width, hello.height),
                hello.fps,
            )?)),
            _ => None,
        };
        let mut sides = Vec::new();
        let mut side = |codec: Codec| {
            sides.push(SideFeed {
                codec,
                sinks: sinks.sharing_demand(),
                encoded: AtomicU64::new(0),
            });
            Some(sides.len() - 1)
        };
        let jpeg_side = match config.codec == sinks::mjpeg::CODEC {
            true => None,
            false => side(sinks::mjpeg::CODEC),
        };
        let publish_side = match config.publish.is_empty()
            || sinks::publish::takes_the_stream(config.codec, config.bitrate)
        {
            true => None,
            false => side(sinks::publish::CODEC),
        };
        Ok(Feeds {
            sinks,
            sides,
            jpeg_side,
            publish_side,
            fragments,
        })
    }

    fn feed(&self, side: Option<usize>) -> &Sinks {
        side.and_then(|i| self.sides.get(i))
            .map_or(&self.sinks, |side| &side.sinks)
    }

    /// The sinks that get JPEG frames.
    pub fn jpeg_sinks(&self) -> &Sinks {
        self.feed(self.jpeg_side)
    }

    /// The sinks that get H.264 at a fixed rate, for publishers.
    pub fn publish_sinks(&self) -> &Sinks {
        self.feed(self.publish_side)
    }

    /// Waits up to `timeout` for a sink of any feed to be ready for a frame; true if one is
    /// (they all share one demand signal).
    pub fn wait_for_demand(&self, timeout: Duration) -> bool {
        let any = || {
            self.registries()
                .any(|sinks| sinks.wait_for_demand(Duration::ZERO))
        };
        any() || (self.sinks.wait_for_demand(timeout) || any())
    }

    /// Every registry of sinks: the stream's and the side ones.
    pub fn registries(&self) -> impl Iterator<Item = &Sinks> {
        std::iter::once(&self.sinks).chain(self.sides.iter().map(|side| &side.sinks))
    }
}
