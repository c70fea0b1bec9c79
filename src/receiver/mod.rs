//! The receiver: a network thread reads messages into a small ring of reused buffers; the calling
//! thread (the one highgui needs) opens, checks, decodes, shows, records and measures each frame,
//! and acks it. A lost sender is waited for and reconnected, the window kept.
//!
//! - this file: `run`, one connection's show loop, and waiting for a lost sender;
//! - `network.rs`: connecting (then the handshake, `wire::handshake`), the thread that reads
//!   frames;
//! - `url.rs`: playing a URL (rtmp, rtsp, srt, http) instead of a camstream sender;
//! - `screen.rs`: the window and the waiting card; `outputs.rs`: `--record` and `--frame-log`.

mod network;
mod outputs;
mod screen;
mod url;

use crate::config::{Connect, Endpoint};
use crate::media::codec::{self, Decoder};
use crate::stats::ReceiverStats;
use crate::wire::handshake::refusal;
use crate::wire::protocol::unix_micros;
use crate::wire::protocol::{self, FrameHeader, Message, StreamHello};
use crate::wire::secure;
use crate::wire::secure::PairingMode;
use crate::wire::session::SenderSession;
use crate::{error_line, Stop, POLL};
use anyhow::{anyhow, bail, Context, Result};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
pub use network::Greeted;
use network::{connect_and_greet, read_frames, Incoming};
use outputs::Outputs;
use screen::Screen;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::thread;
use std::time::{Duration, SystemTime};

/// Title of the viewing window.
pub const WINDOW_TITLE: &str = "RECEIVING VIDEO";
/// Reconnection attempts start this long after a loss and back off, doubling, to the cap.
const RECONNECT_FIRST: Duration = Duration::from_millis(250);
const RECONNECT_MAX: Duration = Duration::from_secs(2);

/// Everything the receiver needs, already validated.
#[derive(Debug, Clone)]
pub struct ReceiverConfig {
    /// A camstream sender, or a URL to play.
    pub connect: Connect,
    /// Local address to connect from (a camstream sender only).
    pub bind: Option<SocketAddr>,
    pub window: bool,
    /// Where the window's top-left corner goes on the screen (`--window-at`).
    pub window_at: Option<(i32, i32)>,
    /// Exit after showing this many frames.
    pub frames: Option<u64>,
    pub record: Option<PathBuf>,
    /// One CSV line per frame shown.
    pub frame_log: Option<PathBuf>,
    /// End when the stream ends instead of waiting for the sender to come back.
    pub once: bool,
    /// The sender's pairing code, or `--insecure` (a URL has no pairing: it is not used).
    pub pairing: PairingMode,
}

/// How one connection's stream ended, when nothing on this side failed.
enum Ended {
    /// `q`, the window closed, Ctrl-C, or `--frames` reached: the program ends.
    ByUser,
    /// The sender closed the stream cleanly.
    BySender,
    /// The connection broke or the sender sent something wrong.
    Lost(anyhow::Error),
}

/// Connects, then shows (or just decodes) frames until `--frames` is reached, the window is
/// closed or `stop` is raised. A stream that ends or breaks is waited for and reconnected, the
/// window kept, unless `once` is set. The first connection to a sender must succeed: a wrong
/// address is the user's to fix; a URL's server may come later (`url.rs`). `stats` is filled in
/// however it ends.
pub fn run(config: &ReceiverConfig, stop: &Stop, stats: &mut ReceiverStats) -> Result<()> {
    run_from(config, None, stop, stats)
}

/// Connects to the sender `config` names and greets it (pairing, when it pairs): what
/// [`run_from`] starts from, for a caller that wants to see the first connection's failure
/// itself (a code typed at a prompt, asked again when it does not match).
pub fn connect(config: &ReceiverConfig, endpoint: &Endpoint) -> Result<Greeted> {
    connect_and_greet(config, endpoint)
}

/// [`run`], with the sender's first connection already made when `first` is given.
pub fn run_from(
    config: &ReceiverConfig,
    first: Option<Greeted>,
    stop: &Stop,
    stats: &mut ReceiverStats,
) -> Result<()> {
    match &config.connect {
        Connect::Sender(endpoint) => run_sender(config, endpoint, first, stop, stats),
        Connect::Url(stream) => {
            if let Some(local) = config.bind {
                bail!("--bind {local}: a URL is played from wherever the system connects it");
            }
            let mut viewer = Viewer::open(config)?;
            let result = url::play(&mut viewer, config, stream, stop, stats);
            viewer.finish(result)
        }
    }
}

fn run_sender(
    config: &ReceiverConfig,
    endpoint: &Endpoint,
    first: Option<Greeted>,
    stop: &Stop,
    stats: &mut ReceiverStats,
) -> Result<()> {
    let sender = endpoint.to_string();
    let greeter = |config: &ReceiverConfig| {
        let (config, endpoint) = (config.clone(), endpoint.clone());
        move || connect_and_greet(&config, &endpoint)
    };
    // A sender that refuses us for now (full, or a lockout) says for how long: unless `--once`,
    // that is waited out like a lost sender, not an error.
    let first = first.map_or_else(|| connect_and_greet(config, endpoint), Ok);
    let (mut viewer, mut connection) = match first {
        Ok(connection) => (Viewer::open(config)?, connection),
        Err(e) => match refusal(&e).filter(|_| !config.once) {
            Some(reason) => {
                let mut viewer = Viewer::open(config)?;
                let why = format!("waiting: {reason}");
                log::warn!("{why} (q to quit)");
                match viewer.wait_for(&sender, &why, stop, greeter(config), retry) {
                    Ok(Some(connection)) => (viewer, connection),
                    Ok(None) => return viewer.finish(Ok(())),
                    Err(e) => return viewer.finish(Err(e)),
                }
            }
            None => return Err(e),
        },
    };
    if !connection.session.is_paired() {
        log::warn!("the stream from {sender} is not encrypted (--insecure): anyone on the network path can watch it");
    }
    let result = loop {
        let hello = connection.session.hello;
        log::info!(
            "connected to {sender} in {:.1} ms ({}): {}x{} {}",
            connection.took.as_secs_f64() * 1e3,
            match connection.session.is_paired() {
                true => "paired, encrypted",
                false => "not encrypted",
            },
            hello.width,
            hello.height,
            hello.codec
        );
        stats.new_stream(connection.session.clock_offset_us);
        let ended = viewer
            .show_stream(connection, config.frames, stop, stats)
            .with_context(|| format!("receiving from {sender}"));
        let why = match ended {
            Ok(Ended::ByUser) => break Ok(()),
            Ok(Ended::BySender) if config.once => {
                log::info!("the sender ended the stream");
                break Ok(());
            }
            Ok(Ended::Lost(e)) if config.once => {
                break Err(e.context(format!("receiving from {sender}")))
            }
            Err(e) => break Err(e),
            Ok(Ended::BySender) => "the sender ended the stream".to_owned(),
            Ok(Ended::Lost(e)) => error_line(&e),
        };
        log::warn!("{why}; waiting for {sender} to come back (q to quit)");
        match viewer.wait_for(&sender, &why, stop, greeter(config), retry)? {
            Some(next) => connection = next,
            None => break Ok(()),
        }
        stats.reconnected();
    };
    viewer.finish(result)
}

/// Whether a failed connection is worth trying again. A sender with another code (restarted
/// without --code): trying the same code again would only get locked out, so the user decides.
fn retry(error: &anyhow::Error) -> bool {
    !secure::is_code_mismatch(error)
}

/// Where frames go, across connections.
struct Viewer {
    screen: Screen,
    outputs: Outputs,
}

/// One connection's frames, as the display thread handles them.
/// What became of a frame that arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// Decoded (and shown, and recorded).
    Shown,
    /// It did not decode: the sender is asked for a keyframe.
    Damaged,
    /// It depends on one that did not decode.
    Skipped,
}

struct Stream<'a> {
    hello: StreamHello,
    decoder: Box<dyn Decoder>,
    /// A frame did not decode: the ones after it are not shown until a keyframe.
    damaged: bool,
    frames: &'a Receiver<Incoming>,
    free: &'a Sender<Vec<u8>>,
}

impl Viewer {
    fn open(config: &ReceiverConfig) -> Result<Viewer> {
        // The frame log first: a bad path is an error before any window opens.
        let outputs = Outputs::open(config)?;
        Ok(Viewer {
            screen: Screen::open(config.window, config.window_at)?,
            outputs,
        })
    }

    /// Closes the window and finalises the files, whatever `result` the stream ended with.
    fn finish(mut self, result: Result<()>) -> Result<()> {
        self.screen.close();
        let finished = self.outputs.finish();
        result.and(finished)
    }

    /// Shows one connection's frames, acking each, until it ends. Errors here are this side's
    /// (a window, the recording): the network's are [`Ended::Lost`].
    fn show_stream(
        &mut self,
        connection: Greeted,
        frame_limit: Option<u64>,
        stop: &Stop,
        stats: &mut ReceiverStats,
    ) -> Result<Ended> {
        let mut session = connection.session;
        let hello = session.hello;
        self.outputs.start_stream(&hello)?;
        self.screen.start_stream(hello.width, hello.height);
        let (frames_tx, frames_rx) = crossbeam_channel::bounded(1);
        let (free_tx, free_rx) = crossbeam_channel::bounded(2);
        let (socket, reader) = session.frame_reader()?;
        let network =
            thread::spawn(move || read_frames(socket, reader, hello.fps, &frames_tx, &free_rx));
        let stream = Stream {
            hello,
            decoder: codec::format(hello.codec).decoder()?,
            damaged: false,
            frames: &frames_rx,
            free: &free_tx,
        };
        let ended = self.show_frames(stream, &mut session, frame_limit, stop, stats);
        // Unblock the network thread if it is waiting on the socket, then collect it.
        session.close();
        drop(frames_rx);
        let _ = network.join();
        ended
    }

    fn show_frames(
        &mut self,
        mut stream: Stream<'_>,
        session: &mut SenderSession,
        frame_limit: Option<u64>,
        stop: &Stop,
        stats: &mut ReceiverStats,
    ) -> Result<Ended> {
        let wait = self.screen.frame_wait();
        // An ack the sender's side reset: the read that follows may see only the end of the
        // stream (the socket's error went to the ack), and this says it was not a clean one.
        let mut reset = None;
        while !stop.is_raised() && frame_limit.is_none_or(|limit| stats.frames() < limit) {
            match stream.frames.recv_timeout(wait) {
                Ok(Incoming::Frame { buf, arrived }) => {
                    let bytes = session.wire_len(buf.len());
                    let (header, outcome) = match self.show_frame(&mut stream, &buf)? {
                        Ok(shown) => shown,
                        Err(e) => return Ok(Ended::Lost(e)),
                    };
                    // A sender that is gone shows up on the network thread, unless it reset the
                    // connection (a sender that dropped us as stalled): then here first.
                    if let Err(e) = session.ack(header.seq, outcome == Outcome::Damaged) {
                        reset = reset.or(Some(e).filter(crate::is_disconnect));
                    }
                    if outcome != Outcome::Shown {
                        stats.not_shown(&header);
                    } else {
                        // The capture time on our clock, so latency is right whatever the
                        // sender's.
                        let header = FrameHeader {
                            capture_unix_us: header
                                .capture_unix_us
                                .saturating_add_signed(session.clock_offset_us.saturating_neg()),
                            ..header
                        };
                        let shown = SystemTime::now();
                        stats.record(&header, bytes, shown);
                        let latency = unix_micros(shown).saturating_sub(header.capture_unix_us);
                        self.screen
                            .count_frame(Some(Duration::from_micros(latency)), stats.dropped());
                        if let Some(log) = self.outputs.frame_log() {
                            let capture = Some(header.capture_unix_us);
                            log.write(header.seq, capture, arrived, shown, bytes)?;
                        }
                    }
                    // A full ring means the buffer is simply freed.
                    let _ = stream.free.try_send(buf);
                }
                Ok(Incoming::End) => {
                    return Ok(reset.map_or(Ended::BySender, |e| {
                        Ended::Lost(e.context("the sender reset the connection"))
                    }))
                }
                Ok(Incoming::Failed(e)) => return Ok(Ended::Lost(e)),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    return Ok(Ended::Lost(anyhow!("the network thread stopped")))
                }
            }
            if self.screen.quit_asked(1)? {
                return Ok(Ended::ByUser);
            }
        }
        Ok(Ended::ByUser)
    }

    /// Checks, decodes, shows and records one frame message. The outer error is this side's;
    /// the inner one is the sender's fault (a frame that does not check),
    /// which ends the connection like a bad message. A frame that passes its checks and still
    /// does not decode is skipped, with the frames after it until a keyframe.
    fn show_frame(
        &mut self,
        stream: &mut Stream<'_>,
        payload: &[u8],
    ) -> Result<Result<(FrameHeader, Outcome)>> {
        let frame = match decode_and_check(&stream.hello, payload) {
            Ok(frame) => frame,
            Err(e) => return Ok(Err(e)),
        };
        let header = frame.header;
        if stream.damaged && !header.keyframe {
            return Ok(Ok((header, Outcome::Skipped)));
        }
        let picture = match stream.decoder.decode(&header, frame.data) {
            Ok(picture) => picture,
            Err(e) => {
                if !stream.damaged {
                    log::warn!(
                        "frame {}: {}; waiting for a keyframe",
                        header.seq,
                        error_line(&e)
                    );
                }
                stream.damaged = true;
                return Ok(Ok((header, Outcome::Damaged)));
            }
        };
        stream.damaged = false;
        if let Some(picture) = &picture {
            self.screen.show(picture)?;
        }
        self.outputs.record(&header, frame.data, picture.as_ref())?;
        Ok(Ok((header, Outcome::Shown)))
    }

    /// Shows "waiting for the sender" (`name`, with why and since when) while `connect` is
    /// tried again and again with backoff on another thread, until it works (what it made is
    /// returned), fails in a way `retry` says not to try again (that error), or the user quits
    /// (`None`).
    fn wait_for<T: Send + 'static>(
        &mut self,
        name: &str,
        why: &str,
        stop: &Stop,
        connect: impl FnMut() -> Result<T> + Send + 'static,
        retry: fn(&anyhow::Error) -> bool,
    ) -> Result<Option<T>> {
        // Dropping `cancel` stops the reconnecting thread, however this returns.
        let (cancel, cancelled) = crossbeam_channel::bounded::<()>(0);
        let (found_tx, found_rx) = crossbeam_channel::bounded(1);
        thread::spawn(move || reconnect(connect, retry, &cancelled, &found_tx));
        let lost_at = SystemTime::now();
        let waited = loop {
            if stop.is_raised() {
                break Ok(None);
            }
            self.screen.show_waiting(name, lost_at, why)?;
            match found_rx.recv_timeout(POLL) {
                Ok(connection) => break connection.map(Some),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => bail!("the reconnecting thread stopped"),
            }
            if self.screen.quit_asked(1)? {
                break Ok(None);
            }
        };
        drop(cancel);
        waited
    }
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

/// Tries `connect` again and again, waiting longer each time up to [`RECONNECT_MAX`], until it
/// works, fails in a way `retry` rules out, or `cancelled` is (its sender dropped).
fn reconnect<T>(
    mut connect: impl FnMut() -> Result<T>,
    retry: fn(&anyhow::Error) -> bool,
    cancelled: &Receiver<()>,
    found: &Sender<Result<T>>,
) {
    let mut delay = RECONNECT_FIRST;
    // What the sender last refused us for: said once, not at every try.
    let mut refused = None;
    loop {
        if cancelled.recv_timeout(delay) != Err(RecvTimeoutError::Timeout) {
            return;
        }
        match connect() {
            Err(e) if retry(&e) => match refusal(&e) {
                Some(reason) if refused != Some(reason) => {
                    log::info!("waiting: {reason}");
                    refused = Some(reason);
                }
                Some(_) => {}
                None => log::debug!("reconnecting: {}", error_line(&e)),
            },
            result => {
                // Nobody waiting any more: the connection is simply closed.
                let _ = found.send(result);
                return;
            }
        }
        delay = (delay * 2).min(RECONNECT_MAX);
    }
}
