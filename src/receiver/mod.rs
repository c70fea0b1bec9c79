//! The receiver: a network thread reads messages into a small ring of reused buffers; the calling
//! thread (the one highgui needs) opens, checks, decodes, shows, records and measures each frame,
//! and acks it. A lost sender is waited for and reconnected, the window kept.
//!
//! - this file: `run`, one connection's show loop, and waiting for a lost sender;
//! - `frames.rs`: one connection's frames, taken one at a time: read on a network thread,
//!   then decoded, handed over, acked and counted on the caller's;
//! - `api.rs`: [`Receiver`], the same for a program's own code: frames copied out;
//! - `hub.rs`: [`Hub`], several senders' receivers, each on its own thread, newest frames
//!   taken in turn; `grid.rs`: the `receiver` program showing them as one window of tiles;
//! - `network.rs`: connecting (then the handshake, `wire::handshake`), the thread that reads
//!   frames;
//! - `url.rs`: playing a URL (rtmp, rtsp, srt, http) instead of a camstream sender;
//! - `screen.rs`: the window and the waiting card; `outputs.rs`: `--record` and `--frame-log`.

mod api;
mod frames;
mod grid;
mod hub;
mod network;
mod outputs;
mod screen;
mod url;

use crate::config::{Connect, Endpoint};
use crate::stats::ReceiverStats;
use crate::wire::handshake::refusal;
use crate::wire::secure;
use crate::wire::secure::PairingMode;
use crate::{error_line, Stop, POLL};
use anyhow::{bail, Context, Result};
pub use api::{Frame, Receiver, ReceiverOptions};
use crossbeam_channel::{self as channel, RecvTimeoutError};
use frames::{Frames, Step};
pub use grid::{numbered, Grid, GridView};
pub use hub::{Hub, HubSender};
use network::connect_and_greet;
pub use network::Greeted;
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
pub(super) fn retry(error: &anyhow::Error) -> bool {
    !secure::is_code_mismatch(error)
}

/// Where frames go, across connections.
struct Viewer {
    screen: Screen,
    outputs: Outputs,
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
        let mut frames = Frames::start(connection, stats)?;
        let hello = *frames.hello();
        self.outputs.start_stream(&hello)?;
        self.screen.start_stream(hello.width, hello.height);
        let wait = self.screen.frame_wait();
        while !stop.is_raised() && frame_limit.is_none_or(|limit| stats.frames() < limit) {
            let (screen, outputs) = (&mut self.screen, &mut self.outputs);
            let step = frames.next_with(wait, stats, |frame| {
                if let Some(picture) = &frame.picture {
                    screen.show(picture)?;
                }
                outputs.record(&frame.header, frame.data, frame.picture.as_ref())
            })?;
            match step {
                Step::Shown {
                    header,
                    arrived,
                    shown,
                    bytes,
                } => {
                    let latency = frames::latency(&header, shown);
                    self.screen.count_frame(Some(latency), stats.dropped());
                    if let Some(log) = self.outputs.frame_log() {
                        let capture = Some(header.capture_unix_us);
                        log.write(header.seq, capture, arrived, shown, bytes)?;
                    }
                }
                Step::NotShown | Step::Nothing => {}
                Step::Ended => return Ok(Ended::BySender),
                Step::Lost(e) => return Ok(Ended::Lost(e)),
            }
            if self.screen.quit_asked(1)? {
                return Ok(Ended::ByUser);
            }
        }
        Ok(Ended::ByUser)
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

/// Tries `connect` again and again, waiting longer each time up to [`RECONNECT_MAX`], until it
/// works, fails in a way `retry` rules out, or `cancelled` is (its sender dropped).
pub(super) fn reconnect<T>(
    mut connect: impl FnMut() -> Result<T>,
    retry: fn(&anyhow::Error) -> bool,
    cancelled: &channel::Receiver<()>,
    found: &channel::Sender<Result<T>>,
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
