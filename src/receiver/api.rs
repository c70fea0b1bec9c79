//! [`Receiver`]: a sender's frames in your own program, as the `receiver` program gets them
//! (the same connection, pairing, checks, decoding, acks, reconnection, recording and stats),
//! without a window: each [`Frame`] with its sequence number, capture time, latency and BGR
//! pixels.

use super::frames::{self, FrameView, Frames, Step};
use super::network::{connect_and_greet, Greeted};
use super::outputs::Outputs;
use super::{reconnect, retry, ReceiverConfig};
use crate::config::{Connect, Endpoint};
use crate::stats::{ReceiverReport, ReceiverStats};
use crate::wire::protocol::Codec;
use crate::wire::secure::PairingMode;
use anyhow::{anyhow, bail, Context, Result};
use crossbeam_channel::RecvTimeoutError;
use std::net::SocketAddr;
use std::ops::{Deref, Range};
use std::path::PathBuf;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// One frame, decoded, owned by the caller.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    /// The sender's sequence number: a gap is frames this receiver was not sent (it was
    /// slower than the camera) or could not show.
    pub seq: u64,
    /// When the sender captured it, on this machine's clock (the sender's clock offset, measured
    /// when connecting, taken out).
    pub capture_time: SystemTime,
    /// From capture until it was handed over here.
    pub latency: Duration,
    pub width: u32,
    pub height: u32,
    /// `height` rows of `width` pixels, 3 bytes each, blue, green, red.
    pub bgr: Pixels,
    pub codec: Codec,
    /// The frame as it was encoded, unless it is raw (then it is `bgr`): [`Frame::encoded`].
    compressed: Vec<u8>,
}

impl Frame {
    /// The frame as it was encoded (`codec`), for a program that stores or forwards it: for a
    /// raw stream, the pixels themselves (not copied twice).
    pub fn encoded(&self) -> &[u8] {
        match self.codec {
            Codec::Raw => &self.bgr,
            _ => &self.compressed,
        }
    }
}

/// A frame's pixels (a slice of bytes), kept in the buffer they arrived in rather than copied
/// out of it when they can be: a raw frame's are the network buffer itself.
#[derive(Clone)]
pub struct Pixels {
    buffer: Vec<u8>,
    at: Range<usize>,
}

impl Pixels {
    fn copied(bytes: &[u8]) -> Pixels {
        Pixels {
            buffer: bytes.to_vec(),
            at: 0..bytes.len(),
        }
    }

    /// The pixels at `pixels` (a slice that was read from `buffer`, which has since moved
    /// here whole), kept where they are; `None` if they are not in it.
    fn kept(buffer: Vec<u8>, pixels: (usize, usize)) -> Option<Pixels> {
        let (address, len) = pixels;
        let start = address.checked_sub(buffer.as_ptr() as usize)?;
        let at = start..start.checked_add(len)?;
        (at.end <= buffer.len()).then_some(Pixels { buffer, at })
    }

    /// The buffer the pixels are in, and where: to hand them on without a copy.
    pub fn into_parts(self) -> (Vec<u8>, Range<usize>) {
        (self.buffer, self.at)
    }
}

impl Deref for Pixels {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.buffer[self.at.clone()]
    }
}

impl PartialEq for Pixels {
    fn eq(&self, other: &Pixels) -> bool {
        **self == **other
    }
}

impl PartialEq<Vec<u8>> for Pixels {
    fn eq(&self, other: &Vec<u8>) -> bool {
        **self == **other
    }
}

impl std::fmt::Debug for Pixels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Pixels({} bytes)", self.len())
    }
}

/// How a [`Receiver`] connects.
#[derive(Debug, Clone)]
pub struct ReceiverOptions {
    /// Connect again, with backoff, to a sender that goes away or ends its stream, as the
    /// `receiver` program does (default). Without it, the stream's end ends the receiver.
    pub reconnect: bool,
    /// The local address to connect from.
    pub bind: Option<SocketAddr>,
    /// Record the frames handed over to this file, as the `receiver` program's `--record`
    /// does (JPEG and H.264 as they came; raw re-encoded by the file's kind), finished when the
    /// receiver is closed or dropped.
    pub record: Option<PathBuf>,
}

impl Default for ReceiverOptions {
    fn default() -> ReceiverOptions {
        ReceiverOptions {
            reconnect: true,
            bind: None,
            record: None,
        }
    }
}

/// A connection to a camstream sender that yields its newest frames.
///
/// ```no_run
/// use camstream::{PairingMode, Receiver};
///
/// let code = PairingMode::Code("37-noble-otter".into());
/// let mut receiver = Receiver::connect("192.168.1.20:9999", code)?;
/// for frame in receiver.by_ref().take(100) {
///     let frame = frame?;
///     println!("frame {}: {}x{}, {:?} old", frame.seq, frame.width, frame.height, frame.latency);
/// }
/// println!("{:?}", receiver.stats());
/// # Ok::<(), anyhow::Error>(())
/// ```
pub struct Receiver {
    config: ReceiverConfig,
    endpoint: Endpoint,
    frames: Option<Frames>,
    /// While the sender is lost: the thread connecting again, and its result.
    reconnecting: Option<Reconnecting>,
    /// The stream ended (and is not reconnected): iteration is over.
    ended: bool,
    /// Since when, and why, the sender is away (while reconnecting).
    lost: Option<(SystemTime, String)>,
    /// It was connected once: a connection after a loss is a reconnection (one that refused
    /// us at first and then let us in is not).
    was_connected: bool,
    outputs: Outputs,
    stats: ReceiverStats,
}

struct Reconnecting {
    /// Dropped to stop the thread.
    _cancel: crossbeam_channel::Sender<()>,
    found: crossbeam_channel::Receiver<Result<Greeted>>,
}

impl Receiver {
    /// Connects to the sender at `address` (`HOST:PORT`) and pairs with its code (or expects
    /// an `--insecure` sender). Fails at once if it cannot: a wrong address, a wrong code.
    pub fn connect(address: &str, pairing: PairingMode) -> Result<Receiver> {
        Receiver::connect_with(address, pairing, ReceiverOptions::default())
    }

    /// [`Receiver::connect`], with options.
    pub fn connect_with(
        address: &str,
        pairing: PairingMode,
        options: ReceiverOptions,
    ) -> Result<Receiver> {
        let endpoint: Endpoint = address.parse().map_err(|e: String| anyhow!(e))?;
        let config = ReceiverConfig {
            connect: Connect::Sender(endpoint.clone()),
            bind: options.bind,
            window: false,
            window_at: None,
            frames: None,
            record: options.record,
            frame_log: None,
            once: !options.reconnect,
            pairing,
        };
        let connection = connect_and_greet(&config, &endpoint)?;
        Receiver::from_connection(config, connection)
    }

    /// A receiver of `connection`, already made as `config` says: the `receiver` program pairs
    /// first, asking again for a mistyped code ([`super::connect`]).
    pub fn from_connection(config: ReceiverConfig, connection: Greeted) -> Result<Receiver> {
        let Connect::Sender(endpoint) = config.connect.clone() else {
            bail!(
                "{}: a URL is played by the receiver program",
                config.connect
            );
        };
        let mut stats = ReceiverStats::default();
        let mut outputs = Outputs::open(&config)?;
        log_connected(&endpoint, &connection, false);
        let frames = Frames::start(connection, &mut stats)?;
        outputs.start_stream(frames.hello())?;
        Ok(Receiver {
            config,
            endpoint,
            frames: Some(frames),
            reconnecting: None,
            ended: false,
            lost: None,
            was_connected: true,
            outputs,
            stats,
        })
    }

    /// A receiver of the sender `config` names, which refused it for now (`why`: full, or a
    /// lockout): it connects when it can, as it does when a sender is lost.
    pub fn waiting(config: ReceiverConfig, why: String) -> Result<Receiver> {
        let Connect::Sender(endpoint) = config.connect.clone() else {
            bail!(
                "{}: a URL is played by the receiver program",
                config.connect
            );
        };
        let mut receiver = Receiver {
            outputs: Outputs::open(&config)?,
            config,
            endpoint,
            frames: None,
            reconnecting: None,
            ended: false,
            lost: None,
            was_connected: false,
            stats: ReceiverStats::default(),
        };
        receiver.wait_for_sender_from(why);
        Ok(receiver)
    }

    /// The sender's address, as given.
    pub fn sender(&self) -> String {
        self.endpoint.to_string()
    }

    /// While the sender is away and being reconnected: since when, and why.
    pub fn lost(&self) -> Option<(SystemTime, &str)> {
        self.lost.as_ref().map(|(at, why)| (*at, why.as_str()))
    }

    /// Closes the connection and finishes the recording, saying whether that went well.
    pub fn close(self) -> Result<()> {
        self.finish().0
    }

    /// [`Receiver::close`], and what was counted (for the `receiver` program's `--stats`).
    pub(super) fn finish(mut self) -> (Result<()>, ReceiverStats) {
        self.frames = None;
        (self.outputs.finish(), std::mem::take(&mut self.stats))
    }

    /// What was counted so far.
    pub(super) fn counted(&self) -> &ReceiverStats {
        &self.stats
    }

    /// The stream ended and is not reconnected (`once`): no frame will come.
    pub(super) fn has_ended(&self) -> bool {
        self.ended
    }

    /// Waits for the next frame, however long the sender is away.
    pub fn recv(&mut self) -> Result<Frame> {
        loop {
            if let Some(frame) = self.recv_timeout(Duration::from_secs(1))? {
                return Ok(frame);
            }
        }
    }

    /// Waits up to `timeout` for the next frame; `None` if none came. An error is a stream that
    /// ended or broke (without [`ReceiverOptions::reconnect`]), or a sender that came back with
    /// another code.
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<Option<Frame>> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if let Some(frame) = self.next_frame(left)? {
                return Ok(Some(frame));
            }
            if left.is_zero() {
                return Ok(None);
            }
        }
    }

    /// Waits up to `wait` for the next frame: `Some(Ok(None))` if none came, `None` once the
    /// stream has ended (without [`ReceiverOptions::reconnect`]), after an error if it broke.
    pub fn next_timeout(&mut self, wait: Duration) -> Option<Result<Option<Frame>>> {
        match self.ended {
            true => None,
            false => Some(self.next_frame(wait)),
        }
    }

    /// What was counted so far, across reconnections: the `receiver` program's `--stats`.
    pub fn stats(&self) -> ReceiverReport {
        self.stats.report()
    }

    /// One step: a frame, or a loss handled, or nothing within `wait`.
    fn next_frame(&mut self, wait: Duration) -> Result<Option<Frame>> {
        let codec = (self.frames.as_ref()).map_or(Codec::Raw, |frames| frames.hello().codec);
        let mut taken = None;
        // A raw frame's pixels: where they are in the buffer it arrived in, kept below.
        let mut raw = None;
        let shown = self.step(wait, |frame| {
            if let Some(picture) = &frame.picture {
                let bgr = match codec {
                    Codec::Raw => {
                        raw = Some((picture.bgr.as_ptr() as usize, picture.bgr.len()));
                        Pixels::copied(&[]) // the buffer itself, once the step is done
                    }
                    _ => Pixels::copied(picture.bgr),
                };
                taken = Some(Frame {
                    seq: frame.header.seq,
                    capture_time: UNIX_EPOCH + Duration::from_micros(frame.header.capture_unix_us),
                    latency: Duration::ZERO,
                    width: picture.width,
                    height: picture.height,
                    bgr,
                    codec,
                    compressed: match codec {
                        Codec::Raw => Vec::new(),
                        _ => frame.data.to_vec(),
                    },
                });
            }
            Ok(())
        })?;
        let Some((latency, mut frame)) = shown.zip(taken) else {
            return Ok(None);
        };
        frame.latency = latency;
        if let Some(pixels) = raw {
            let buffer = (self.frames.as_mut()).and_then(Frames::take_last_buffer);
            frame.bgr = (buffer.and_then(|buffer| Pixels::kept(buffer, pixels)))
                .ok_or_else(|| anyhow!("a raw frame's pixels were not in its buffer"))?;
        }
        Ok(Some(frame))
    }

    /// One step, for the `receiver` program as for [`Receiver::recv`]: a frame that decoded
    /// goes to `take` (to be shown or copied out) before it is recorded, logged and acked, and
    /// is returned with its latency; or a loss is handled; or nothing came within `wait`.
    pub(super) fn step(
        &mut self,
        wait: Duration,
        take: impl FnOnce(&FrameView<'_>) -> Result<()>,
    ) -> Result<Option<Duration>> {
        if self.ended {
            bail!("the stream from {} has ended", self.endpoint);
        }
        let Some(frames) = &mut self.frames else {
            return self.wait_for_sender(wait).map(|()| None);
        };
        let mut unrecorded = None;
        let outputs = &mut self.outputs;
        let step = frames.next_with(wait, &mut self.stats, |frame| {
            take(frame)?;
            // A recording that fails stops, said once; the frames go on (and are acked).
            let recorded = outputs.record(&frame.header, frame.data, frame.picture.as_ref());
            unrecorded = recorded.err();
            Ok(())
        })?;
        if let Some(e) = unrecorded {
            self.outputs.stop_recording();
            return Err(e.context("recording stopped"));
        }
        let why = match step {
            Step::Shown {
                header,
                arrived,
                shown,
                bytes,
            } => {
                if let Some(log) = self.outputs.frame_log() {
                    let capture = Some(header.capture_unix_us);
                    log.write(header.seq, capture, arrived, shown, bytes)?;
                }
                return Ok(Some(frames::latency(&header, shown)));
            }
            Step::NotShown | Step::Nothing => return Ok(None),
            Step::Ended => "the sender ended the stream".to_owned(),
            Step::Lost(e) if self.config.once => {
                self.frames = None;
                self.ended = true;
                return Err(e.context(format!("receiving from {}", self.endpoint)));
            }
            Step::Lost(e) => crate::error_line(&e),
        };
        self.frames = None;
        if self.config.once {
            log::info!("{why}");
            self.ended = true;
            return Ok(None);
        }
        log::warn!("{why}; waiting for {} to come back", self.endpoint);
        self.wait_for_sender_from(why);
        Ok(None)
    }

    /// Connects again on another thread, with backoff, the sender being away for `why`.
    fn wait_for_sender_from(&mut self, why: String) {
        self.lost = Some((SystemTime::now(), why));
        let (config, endpoint) = (self.config.clone(), self.endpoint.clone());
        let (cancel, cancelled) = crossbeam_channel::bounded(0);
        let (found_tx, found) = crossbeam_channel::bounded(1);
        thread::spawn(move || {
            let connect = || connect_and_greet(&config, &endpoint);
            reconnect(connect, retry, &cancelled, &found_tx);
        });
        self.reconnecting = Some(Reconnecting {
            _cancel: cancel,
            found,
        });
    }

    /// Waits up to `wait` for the sender to be back; an error if it came back with another code.
    fn wait_for_sender(&mut self, wait: Duration) -> Result<()> {
        let Some(reconnecting) = &self.reconnecting else {
            bail!("the stream from {} has ended", self.endpoint);
        };
        let connection = match reconnecting.found.recv_timeout(wait) {
            Ok(connection) => connection,
            Err(RecvTimeoutError::Timeout) => return Ok(()),
            Err(RecvTimeoutError::Disconnected) => Err(anyhow!("the reconnecting thread stopped")),
        };
        self.reconnecting = None;
        let connection = connection.with_context(|| format!("reconnecting to {}", self.endpoint));
        let again = self.was_connected;
        let frames = connection.and_then(|connection| {
            log_connected(&self.endpoint, &connection, again);
            Frames::start(connection, &mut self.stats)
        });
        let frames = frames.inspect_err(|_| self.ended = true)?;
        if std::mem::replace(&mut self.was_connected, true) {
            self.stats.reconnected();
        }
        self.outputs.start_stream(frames.hello())?;
        self.frames = Some(frames);
        self.lost = None;
        Ok(())
    }
}

/// Says how long connecting to `endpoint` took, whether the stream is encrypted (warning when
/// not, the first time), and what it is.
fn log_connected(endpoint: &Endpoint, connection: &Greeted, again: bool) {
    let (session, hello) = (&connection.session, connection.session.hello);
    if !session.is_paired() && !again {
        log::warn!("the stream from {endpoint} is not encrypted (--insecure): anyone on the network path can watch it");
    }
    log::info!(
        "connected to {endpoint}{} in {:.1} ms ({}): {}x{} {}",
        if again { " again" } else { "" },
        connection.took.as_secs_f64() * 1e3,
        match session.is_paired() {
            true => "paired, encrypted",
            false => "not encrypted",
        },
        hello.width,
        hello.height,
        hello.codec
    );
}

impl Drop for Receiver {
    /// Finishes the recording; [`Receiver::close`] says whether that went well.
    fn drop(&mut self) {
        self.frames = None;
        if let Err(e) = self.outputs.finish() {
            log::warn!("{}", crate::error_line(&e));
        }
    }
}

/// Frames until the stream ends (without [`ReceiverOptions::reconnect`]; with it, never): an
/// error when it broke, then `None`.
impl Iterator for Receiver {
    type Item = Result<Frame>;

    fn next(&mut self) -> Option<Result<Frame>> {
        loop {
            match self.next_timeout(Duration::from_secs(1))? {
                Ok(Some(frame)) => return Some(Ok(frame)),
                Ok(None) => {}
                Err(e) => return Some(Err(e)),
            }
        }
    }
}
