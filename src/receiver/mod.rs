//! The receiver: a network thread reads messages into a small ring of reused buffers; the calling
//! thread (the one highgui needs) opens, checks, decodes, shows, records and measures each frame,
//! and acks it. A lost sender is waited for and reconnected, the window kept.
//!
//! - this file: `run`: a sender's frames through a [`Receiver`] into the window (or a card
//!   while it is away), or a URL's; waiting for a lost URL;
//! - `frames.rs`: one connection's frames, taken one at a time: read on a network thread,
//!   then decoded, handed over, acked and counted on the caller's;
//! - `api.rs`: [`Receiver`]: one sender's frames, across reconnections, recorded and counted:
//!   what the program shows (each frame before it is acked) and a program's own code gets
//!   (decoded frames copied out, a raw frame's pixels kept in the buffer they arrived in);
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
use anyhow::{bail, Result};
pub use api::{Frame, Pixels, Receiver, ReceiverOptions};
use crossbeam_channel::{self as channel, RecvTimeoutError};
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
    // A sender that refuses us for now (full, or a lockout) says for how long: unless `--once`,
    // that is waited out like a lost sender, not an error.
    let first = first.map_or_else(|| connect_and_greet(config, endpoint), Ok);
    let mut receiver = match first {
        Ok(connection) => Receiver::from_connection(config.clone(), connection)?,
        Err(e) => match refusal(&e).filter(|_| !config.once) {
            Some(reason) => {
                log::warn!("waiting: {reason} (q to quit)");
                Receiver::waiting(config.clone(), format!("waiting: {reason}"))?
            }
            None => return Err(e),
        },
    };
    // The window after the files: a bad path is an error before any window opens.
    let mut screen = Screen::open(config.window, config.window_at)?;
    // The receiver's errors name the sender already.
    let shown = show(&mut receiver, &mut screen, config.frames, stop);
    screen.close();
    let (finished, counted) = receiver.finish();
    *stats = counted;
    shown.and(finished)
}

/// Shows the frames `receiver` takes (or a card while its sender is away) until `limit` frames
/// were shown, the stream ended (`--once`), the user quit, or `stop` is raised.
fn show(
    receiver: &mut Receiver,
    screen: &mut Screen,
    limit: Option<u64>,
    stop: &Stop,
) -> Result<()> {
    while !stop.is_raised() && limit.is_none_or(|limit| receiver.counted().frames() < limit) {
        if receiver.has_ended() {
            break;
        }
        let wait = match receiver.lost() {
            Some((since, why)) => {
                screen.show_waiting(&receiver.sender(), since, why)?;
                POLL
            }
            None => screen.frame_wait(),
        };
        let shown = receiver.step(wait, |frame| match &frame.picture {
            Some(picture) => screen.show(picture),
            None => Ok(()),
        })?;
        if let Some(latency) = shown {
            screen.count_frame(Some(latency), receiver.counted().dropped());
        }
        if screen.quit_asked(1)? {
            break;
        }
    }
    Ok(())
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
