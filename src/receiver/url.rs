//! The receiver playing a URL (`rtmp://`, `rtsp://`, `srt://`, `http(s)://` MJPEG or HLS)
//! instead of a camstream sender: the same window, recording, frame log and stats, and the same
//! waiting card while the stream is not there. The stream is read by `media::url` on its own
//! thread ([`Source`], as the sender reads a camera), which keeps the newest picture and reopens
//! a lost stream by itself every [`crate::media::live::REOPEN_INTERVAL`].
//!
//! Such a stream has no pairing, no acks, and no capture time on a clock we share: its latency
//! is left out of the stats, which say why.

use super::{ReceiverConfig, Viewer};
use crate::config::StreamUrl;
use crate::media::capture::{Next, Opener};
use crate::media::source::Source;
use crate::media::url::UrlCapture;
use crate::media::Picture;
use crate::stats::ReceiverStats;
use crate::wire::protocol::{Codec, StreamHello};
use crate::{error_line, Stop};
use anyhow::{anyhow, bail, Result};
use std::time::SystemTime;

/// Plays `url` until `--frames` is reached, the window is closed or `stop` is raised. A server
/// that is not up yet, or that goes away, is waited for unless `once` is set.
pub(super) fn play(
    viewer: &mut Viewer,
    config: &ReceiverConfig,
    url: &StreamUrl,
    stop: &Stop,
    stats: &mut ReceiverStats,
) -> Result<()> {
    let Some(mut source) = open(viewer, config, url, stop)? else {
        return Ok(());
    };
    let (width, height) = source.size();
    let fps = source.native_fps().unwrap_or(0.0);
    let rate = match fps {
        0.0 => "an unknown rate".to_owned(),
        fps => format!("{fps:.1} fps"),
    };
    log::info!("playing {url}: {width}x{height} at {rate} (no pairing: the server's own access control applies)");
    // The pictures come decoded: recorded, they are re-encoded as a raw stream's are.
    let stream = StreamHello::new(width, height, Codec::Raw, fps);
    viewer.outputs.start_stream(&stream)?;
    stats.new_untimed_stream(format!("{}:// streams carry no capture time", url.scheme()));
    let name = url.to_string();
    let mut picture = Vec::new();
    let mut lost = false;
    let wait = viewer.screen.frame_wait();
    while !stop.is_raised() && config.frames.is_none_or(|limit| stats.frames() < limit) {
        match source.next_into(&mut picture, wait)? {
            Next::Frame(arrived) => {
                if std::mem::take(&mut lost) {
                    stats.reconnected();
                }
                show(viewer, stats, &stream, &picture, arrived)?;
            }
            Next::Waiting => {}
            // Only a sender's source is opened to keep JPEG.
            Next::Jpeg(_) => bail!("{name} gave JPEG pictures where pixels were expected"),
            Next::Lost { why, .. } if config.once => {
                return Err(anyhow!(why).context(format!("receiving from {name}")));
            }
            Next::Lost { since, why } => {
                lost = true;
                viewer.screen.show_waiting(&name, since, &why)?;
            }
            // A live source does not end; were it to, it is a stream gone for good.
            Next::Ended => return Ok(()),
        }
        if viewer.screen.quit_asked(1)? {
            break;
        }
    }
    Ok(())
}

/// Opens `url`, waiting (with the card) for its server to come up unless `once` is set; `None`
/// if the user quit first.
fn open(
    viewer: &mut Viewer,
    config: &ReceiverConfig,
    url: &StreamUrl,
    stop: &Stop,
) -> Result<Option<Source>> {
    let capture = match UrlCapture::open(url) {
        Ok(capture) => capture,
        Err(e) if config.once => return Err(e),
        Err(e) => {
            let why = error_line(&e);
            log::warn!("{why}; waiting for {url} to come up (q to quit)");
            match viewer.wait_for(&url.to_string(), &why, stop, opener(url), |_| true)? {
                Some(capture) => capture,
                None => return Ok(None),
            }
        }
    };
    Ok(Some(Source::live_opened(capture, opener(url))))
}

fn opener(url: &StreamUrl) -> Opener {
    let url = url.clone();
    Box::new(move || UrlCapture::open(&url))
}

/// Shows, records, counts and logs one picture of `stream`, which arrived at `arrived`.
fn show(
    viewer: &mut Viewer,
    stats: &mut ReceiverStats,
    stream: &StreamHello,
    bgr: &[u8],
    arrived: SystemTime,
) -> Result<()> {
    let seq = stats.frames();
    // What the recorder and the stats take; its capture time is not used (no latency).
    let header = stream.frame_header(seq, 0);
    let picture = Picture::new(stream.width, stream.height, bgr);
    viewer.screen.show(&picture)?;
    viewer.outputs.record(&header, bgr, Some(&picture))?;
    let shown = SystemTime::now();
    // The compressed bytes stay inside FFmpeg: none are counted.
    stats.record(&header, 0, shown);
    viewer.screen.count_frame(None, stats.dropped());
    if let Some(log) = viewer.outputs.frame_log() {
        log.write(seq, None, arrived, shown, 0)?;
    }
    Ok(())
}
