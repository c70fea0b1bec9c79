//! One connection's frames, taken one at a time by the caller's thread: read on a network
//! thread into a small ring of reused buffers, then opened, checked, decoded, handed to the
//! caller (the program shows and records them; the API copies them out, or keeps a raw
//! frame's buffer: [`Frames::take_last_buffer`]), acked and counted.
//! The ack goes after the caller is done with the frame, so a slow caller is sent the newest
//! frame when it is ready, not a queue.

use super::network::{read_frames, Greeted, Incoming};
use crate::error_line;
use crate::media::codec::{self, Decoder};
use crate::media::Picture;
use crate::stats::ReceiverStats;
use crate::wire::protocol::{self, unix_micros, FrameHeader, Message, StreamHello};
use crate::wire::session::SenderSession;
use anyhow::{anyhow, bail, Result};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use std::thread::{self, JoinHandle};
use std::time::{Duration, SystemTime};

/// A frame as the caller gets it: decoded, with its header's capture time on our clock.
pub struct FrameView<'a> {
    pub header: FrameHeader,
    /// `None` while a codec that predicts from other frames has not shown a picture yet.
    pub picture: Option<Picture<'a>>,
    /// The frame's encoded bytes, as they arrived (opened, when paired).
    pub data: &'a [u8],
}

/// What one [`Frames::next_with`] came to.
pub enum Step {
    /// A frame was handed over and shown at `shown`.
    Shown {
        header: FrameHeader,
        arrived: SystemTime,
        shown: SystemTime,
        /// Its size on the wire.
        bytes: usize,
    },
    /// A frame came that was not shown: damaged, or depending on one that was.
    NotShown,
    /// Nothing came in the time given.
    Nothing,
    /// The sender closed the stream cleanly.
    Ended,
    /// The connection broke, or the sender sent something wrong.
    Lost(anyhow::Error),
}

/// What became of a frame that arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Shown,
    /// It did not decode: the sender is asked for a keyframe.
    Damaged,
    /// It depends on one that did not decode.
    Skipped,
}

/// A connected stream's frames.
pub struct Frames {
    session: SenderSession,
    hello: StreamHello,
    decoder: Box<dyn Decoder>,
    /// A frame did not decode: the ones after it are not shown until a keyframe.
    damaged: bool,
    incoming: Receiver<Incoming>,
    free: Sender<Vec<u8>>,
    /// The buffer the last frame handed over arrived in: back to the network thread at the
    /// next step, unless the caller took it ([`Frames::take_last_buffer`]).
    last: Option<Vec<u8>>,
    network: Option<JoinHandle<()>>,
    /// An ack the sender's side reset: the read that follows may see only the end of the
    /// stream (the socket's error went to the ack), and this says it was not a clean one.
    reset: Option<anyhow::Error>,
}

impl Frames {
    /// Starts reading `connection`'s frames; `stats` counts a new stream.
    pub fn start(connection: Greeted, stats: &mut ReceiverStats) -> Result<Frames> {
        let mut session = connection.session;
        let hello = session.hello;
        let (frames_tx, incoming) = crossbeam_channel::bounded(1);
        let (free, free_rx) = crossbeam_channel::bounded(2);
        let (socket, reader) = session.frame_reader()?;
        let network =
            thread::spawn(move || read_frames(socket, reader, hello.fps, &frames_tx, &free_rx));
        stats.new_stream(session.clock_offset_us);
        Ok(Frames {
            decoder: codec::format(hello.codec).decoder()?,
            session,
            hello,
            damaged: false,
            incoming,
            free,
            last: None,
            network: Some(network),
            reset: None,
        })
    }

    pub fn hello(&self) -> &StreamHello {
        &self.hello
    }

    /// Waits up to `wait` for a frame; a frame that decodes goes to `take` (which shows,
    /// records or copies it), then is acked and counted in `stats`. An error from `take` is
    /// returned as it is; the network's and the sender's are [`Step::Lost`].
    pub fn next_with(
        &mut self,
        wait: Duration,
        stats: &mut ReceiverStats,
        take: impl FnOnce(&FrameView<'_>) -> Result<()>,
    ) -> Result<Step> {
        if let Some(buf) = self.last.take() {
            // A full ring means the buffer is simply freed.
            let _ = self.free.try_send(buf);
        }
        let (buf, arrived) = match self.incoming.recv_timeout(wait) {
            Ok(Incoming::Frame { buf, arrived }) => (buf, arrived),
            Ok(Incoming::End) => {
                return Ok(match self.reset.take() {
                    None => Step::Ended,
                    Some(e) => Step::Lost(e.context("the sender reset the connection")),
                })
            }
            Ok(Incoming::Failed(e)) => return Ok(Step::Lost(e)),
            Err(RecvTimeoutError::Timeout) => return Ok(Step::Nothing),
            Err(RecvTimeoutError::Disconnected) => {
                return Ok(Step::Lost(anyhow!("the network thread stopped")))
            }
        };
        let step = self.take_frame(&buf, arrived, stats, take);
        self.last = Some(buf);
        step
    }

    /// The buffer the frame just handed over arrived in (opened, when paired), for a caller
    /// that keeps its bytes rather than copy them; the network thread reads into a new one.
    pub fn take_last_buffer(&mut self) -> Option<Vec<u8>> {
        self.last.take()
    }

    fn take_frame(
        &mut self,
        buf: &[u8],
        arrived: SystemTime,
        stats: &mut ReceiverStats,
        take: impl FnOnce(&FrameView<'_>) -> Result<()>,
    ) -> Result<Step> {
        let bytes = self.session.wire_len(buf.len());
        let frame = match decode_and_check(&self.hello, buf) {
            Ok(frame) => frame,
            Err(e) => return Ok(Step::Lost(e)),
        };
        // The capture time on our clock, so latency is right whatever the sender's.
        let header = FrameHeader {
            capture_unix_us: (frame.header.capture_unix_us)
                .saturating_add_signed(self.session.clock_offset_us.saturating_neg()),
            ..frame.header
        };
        let outcome = match self.decode(&header, frame.data) {
            (Outcome::Shown, picture) => {
                take(&FrameView {
                    header,
                    picture,
                    data: frame.data,
                })?;
                Outcome::Shown
            }
            (outcome, _) => outcome,
        };
        // A sender that is gone shows up on the network thread, unless it reset the connection
        // (a sender that dropped us as stalled): then here first.
        if let Err(e) = self.session.ack(header.seq, outcome == Outcome::Damaged) {
            self.reset = self.reset.take().or(Some(e).filter(crate::is_disconnect));
        }
        if outcome != Outcome::Shown {
            stats.not_shown(&header);
            return Ok(Step::NotShown);
        }
        let shown = SystemTime::now();
        stats.record(&header, bytes, shown);
        Ok(Step::Shown {
            header,
            arrived,
            shown,
            bytes,
        })
    }

    /// Decodes a frame that passed its checks, unless it follows a damaged one and is no
    /// keyframe. One that does not decode marks the stream damaged until a keyframe.
    fn decode<'a>(
        &'a mut self,
        header: &FrameHeader,
        data: &'a [u8],
    ) -> (Outcome, Option<Picture<'a>>) {
        if self.damaged && !header.keyframe {
            return (Outcome::Skipped, None);
        }
        match self.decoder.decode(header, data) {
            Ok(picture) => {
                self.damaged = false;
                (Outcome::Shown, picture)
            }
            Err(e) => {
                if !self.damaged {
                    log::warn!(
                        "frame {}: {}; waiting for a keyframe",
                        header.seq,
                        error_line(&e)
                    );
                }
                self.damaged = true;
                (Outcome::Damaged, None)
            }
        }
    }
}

impl Drop for Frames {
    /// Unblocks the network thread if it is waiting on the socket, then collects it.
    fn drop(&mut self) {
        self.session.close();
        let (_, closed) = crossbeam_channel::bounded(0);
        self.incoming = closed;
        if let Some(network) = self.network.take() {
            let _ = network.join();
        }
    }
}

/// How far `capture_unix_us` (on our clock) was before `shown`.
pub fn latency(header: &FrameHeader, shown: SystemTime) -> Duration {
    Duration::from_micros(unix_micros(shown).saturating_sub(header.capture_unix_us))
}

/// A frame message (opened, when paired) decoded, and checked against its stream and its
/// codec before any decoder sees it.
fn decode_and_check<'b>(hello: &StreamHello, payload: &'b [u8]) -> Result<protocol::Frame<'b>> {
    match protocol::decode(payload)? {
        Message::Frame(frame) => {
            codec::check_frame(hello, &frame)?;
            Ok(frame)
        }
        other => bail!("expected a frame, got {}", other.kind()),
    }
}
