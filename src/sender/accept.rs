//! The accept loop: each new connection checked against the admission policy
//! (`admission.rs`), then served on a thread of its own, which tells a receiver from a browser
//! by its first byte and hands it on: a receiver to its seat (or told why it is refused), a
//! browser to the web side (`web/`). At the stream's end, every viewer is given a moment to
//! take its last frame.

use super::sinks::flight::{log_stalled, stalled};
use super::sinks::tcp::{Ending, TcpViewer};
use super::sinks::window::frame_interval;
use super::sinks::Sinks;
use super::{web, Shared, WRITER_THREAD};
use crate::wire::handshake::{refuse, NotAViewer, HANDSHAKE_TIMEOUT};
use crate::wire::secure;
use crate::wire::sniff::{self, Peer};
use crate::{error_line, is_disconnect, net, Stop};
use anyhow::{anyhow, Context};
use std::io::{ErrorKind, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// At the end of a stream, viewers have this long to take their last frame before being cut
/// off; when the user quits (q, Ctrl-C, SIGTERM), only this long, so the program ends at once.
const CLOSE_GRACE: Duration = Duration::from_secs(2);
const QUIT_GRACE: Duration = Duration::from_millis(300);
/// After a failed accept (out of file descriptors and the like), wait this long and try again.
const ACCEPT_RETRY: Duration = Duration::from_millis(20);
/// A connection being served: one of the connection places, held by the connection's thread
/// with the state it serves from, and given back when the thread (or its failed start) drops
/// it.
struct Connection(Arc<Shared>);

impl Connection {
    /// Takes a place for a connection from `peer`, if `--allow` and the bound on connections
    /// let it in (counted on the accept thread, so a flood cannot start threads without bound).
    fn take(shared: &Arc<Shared>, peer: SocketAddr) -> Option<Connection> {
        shared
            .admission
            .admits(peer)
            .then(|| Connection(Arc::clone(shared)))
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.0.admission.connection_done();
    }
}

/// Wakes [`accept_loop`] when the stream ends: it blocks in `poll` on the listener and this.
pub(super) struct AcceptWaker {
    wake: UnixStream,
    woken: UnixStream,
}

impl AcceptWaker {
    pub(super) fn new() -> std::io::Result<Self> {
        let (wake, woken) = UnixStream::pair()?;
        Ok(AcceptWaker { wake, woken })
    }

    /// Wakes the loop for good: the byte is never read, so every later `poll` returns at once;
    /// call it only once `accepting` is raised.
    pub(super) fn wake(&self) {
        // The loop only needs a byte to be readable; a full buffer is as good.
        let _ = (&self.wake).write(&[1]);
    }

    /// Blocks until the listener has a connection or the waker was woken.
    fn wait(&self, listener: &TcpListener) {
        net::wait_readable(&[listener.as_fd(), self.woken.as_fd()], None);
    }
}

/// Admits viewers until `accepting` is raised (and the waker woken), then closes every viewer's
/// stream, giving them [`CLOSE_GRACE`] to finish, or [`QUIT_GRACE`] when `quitting` says the
/// user asked to quit.
pub(super) fn accept_loop(
    listener: &TcpListener,
    shared: &Arc<Shared>,
    waker: &AcceptWaker,
    accepting: &Stop,
    quitting: &Stop,
) {
    let mut writers: Vec<thread::JoinHandle<()>> = Vec::new();
    while !accepting.is_raised() {
        match listener.accept() {
            Ok((stream, peer)) => {
                if let Some(writer) = admit(stream, peer, shared) {
                    writers.push(writer);
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => waker.wait(listener),
            Err(e) => {
                log::warn!("accepting a connection: {e}");
                thread::sleep(ACCEPT_RETRY);
            }
        }
        writers.retain(|w| !w.is_finished());
    }
    let registries = || shared.feeds.registries();
    registries().for_each(Sinks::close_all);
    let grace = match quitting.is_raised() {
        true => QUIT_GRACE,
        false => CLOSE_GRACE,
    };
    let deadline = Instant::now() + grace;
    registries().for_each(|sinks| sinks.wait_until_empty(deadline));
    registries().for_each(Sinks::disconnect_all);
    for writer in writers {
        // A writer that panicked has already lost its viewer; nothing more to do.
        let _ = writer.join();
    }
}

/// Checks a new connection and starts its thread, which tells what it is and serves it.
fn admit(
    stream: TcpStream,
    peer: SocketAddr,
    shared: &Arc<Shared>,
) -> Option<thread::JoinHandle<()>> {
    let connection = Connection::take(shared, peer)?;
    let spawned = thread::Builder::new()
        .name(WRITER_THREAD.to_owned())
        .spawn(move || {
            let shared = &connection.0;
            if let Err(e) = net::tune_viewer(&stream) {
                log::debug!("connection from {peer}: setting its socket options: {e}");
            }
            // The one place a connection is told apart: a receiver, or a browser.
            match kind(&stream) {
                Ok(Peer::Camstream) => match shared.admission.seat_for_receiver(peer) {
                    Ok(_seat) => serve_receiver(stream, peer, shared),
                    Err(reason) => {
                        if let Err(e) = refuse(&stream, &shared.greeting, reason) {
                            log::debug!("refusing {peer}: {}", error_line(&e));
                        }
                    }
                },
                Ok(Peer::Http) => {
                    web::log_served(&web::serve(stream, peer, false, shared), peer, shared)
                }
                Ok(Peer::Tls) => {
                    web::log_served(&web::serve(stream, peer, true, shared), peer, shared)
                }
                Err(e) => shared.admission.complain(peer, "handshake", || {
                    format!("refused connection from {peer}: {}", error_line(&e))
                }),
            }
        });
    match spawned {
        Ok(writer) => Some(writer),
        Err(e) => {
            // The place went back with the thread's closure.
            log::warn!("viewer {peer}: starting its thread: {e}");
            None
        }
    }
}

/// What the peer is, from the first byte it sends (it sends first: a receiver its hello, a
/// browser its request); a peer that says nothing for the handshake's time is no viewer.
fn kind(stream: &TcpStream) -> anyhow::Result<Peer> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(HANDSHAKE_TIMEOUT))?;
    let mut first = [0u8; 1];
    match stream.peek(&mut first) {
        Ok(0) => Err(anyhow!("it closed the connection before saying hello")),
        Ok(_) => Ok(sniff::classify(first[0])),
        Err(e) => Err(anyhow!(e).context("waiting for its hello")),
    }
    .context(NotAViewer)
}

/// Registers a receiver as a sink, serves it, and counts what it missed.
fn serve_receiver(stream: TcpStream, peer: SocketAddr, shared: &Shared) {
    let viewer = match TcpViewer::join(stream, &shared.feeds.sinks) {
        Ok(viewer) => viewer,
        Err(e) => {
            log::warn!("viewer {peer}: {e}");
            return;
        }
    };
    serve_and_log(&viewer, peer, shared);
    shared
        .counters
        .frames_skipped
        .fetch_add(viewer.skipped(), Ordering::Relaxed);
    shared.feeds.sinks.leave(viewer.id());
}

/// Serves one viewer and says how it ended.
fn serve_and_log(viewer: &TcpViewer, peer: SocketAddr, shared: &Shared) {
    let counters = &shared.counters;
    let mut sent = 0u64;
    let connected = || {
        counters.viewers_served.fetch_add(1, Ordering::Relaxed);
        log::info!("viewer {peer} connected");
    };
    let count_frame = |bytes: usize| {
        sent += 1;
        counters.frames_sent.fetch_add(1, Ordering::Relaxed);
        counters
            .bytes_sent
            .fetch_add(bytes as u64, Ordering::Relaxed);
    };
    let served = viewer.serve(
        &shared.greeting,
        &shared.feeds.sinks,
        shared.viewer_timeout,
        frame_interval(shared.stream.fps),
        connected,
        count_frame,
    );
    let admission = &shared.admission;
    match served {
        Ok(Ending::StreamEnded) => log::info!("viewer {peer}: stream ended after {sent} frames"),
        Ok(Ending::ViewerLeft) => log::info!("viewer {peer} left after {sent} frames"),
        Err(e) if stalled(&e).is_some() => log_stalled("viewer", peer, &e),
        Err(e) if is_disconnect(&e) => {
            log::info!("viewer {peer} disconnected after {sent} frames")
        }
        Err(e) if secure::is_code_mismatch(&e) => {
            let failures = admission.wrong_code(peer);
            admission.complain(peer, "pairing", || {
                format!("refused viewer {peer}: pairing code did not match ({failures} in a row)")
            })
        }
        Err(e) if e.is::<NotAViewer>() => admission.complain(peer, "handshake", || {
            format!("refused connection from {peer}: {}", error_line(&e))
        }),
        Err(e) => log::warn!(
            "viewer {peer} dropped after {sent} frames: {}",
            error_line(&e)
        ),
    }
}
