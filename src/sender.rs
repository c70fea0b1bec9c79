//! The sender: one capture loop (source → one encode → every viewer's slot → preview) on the
//! calling thread, which highgui needs, plus an accept thread and one writer thread per viewer.

use crate::config::{Pairing, SourceSpec};
use crate::connection::{MessageReader, MessageWriter};
use crate::live::{self, LiveSource, Next, Opener};
use crate::protocol::{
    self, Codec, FrameHeader, FrameKey, Message, PixelFormat, Security, StreamHello, MAX_ACK_LEN,
    MAX_HELLO_LEN,
};
use crate::secure::{self, Channel, FrameSealer};
use crate::stats::{clock_time, unix_micros, SenderReport};
use crate::video::{self, JpegEncoder, Source, Window, WindowEvent};
use crate::viewers::{BufferPool, Slot, Viewers};
use crate::{error_line, is_disconnect, Stop};
use anyhow::{anyhow, bail, Context, Result};
use std::collections::HashMap;
use std::io::{ErrorKind, Read};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

/// Title of the preview window.
pub const PREVIEW_TITLE: &str = "TRANSMITTING VIDEO";
/// Rate of the test pattern when `--fps` is not given.
pub const PATTERN_FPS: f64 = 30.0;
/// A peer has this long to say hello before it is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// At the end of a stream, viewers have this long to take their last frame before being cut
/// off; when the user quits (q, Ctrl-C, SIGTERM), only this long, so the program ends at once.
const CLOSE_GRACE: Duration = Duration::from_secs(2);
const QUIT_GRACE: Duration = Duration::from_millis(300);
/// The same refusal of the same address is logged at most once in this long.
const COMPLAINT_PERIOD: Duration = Duration::from_secs(60);
/// Addresses whose refusals are remembered at once; bounds the memory a flood can take.
const MAX_REMEMBERED_COMPLAINTS: usize = 1024;
/// The longest an address that keeps giving wrong pairing codes is locked out.
const MAX_LOCKOUT: Duration = Duration::from_secs(60);
/// A lost source is shown to viewers as a "NO SIGNAL" picture this often.
const NO_SIGNAL_INTERVAL: Duration = Duration::from_millis(500);
/// How often idle loops look at the listener, the window and the stop signal.
const POLL: Duration = Duration::from_millis(20);
/// Frame buffers kept for reuse: in flight to viewers plus the one being filled.
const POOLED_BUFFERS: usize = 16;
/// Frames a viewer may hold unacknowledged. Two keep the link busy (one on the wire while the
/// viewer shows the other) without letting a queue of old frames build anywhere.
pub const FRAMES_IN_FLIGHT: u64 = 2;
/// Name of each viewer's writer thread (what `top -H` and /proc show).
pub const WRITER_THREAD: &str = "viewer-writer";
/// Viewers served at once when `--max-viewers` is not given.
pub const DEFAULT_MAX_VIEWERS: u16 = 8;

/// Everything the sender needs, already validated.
#[derive(Debug, Clone)]
pub struct SenderConfig {
    pub source: SourceSpec,
    pub codec: Codec,
    pub quality: u8,
    /// Frames per second to pace the source at; `None` uses the source's own rate, 0 is unpaced.
    pub fps: Option<f64>,
    /// End the stream after this many frames have gone out to viewers.
    pub frames: Option<u64>,
    /// Play a file again from the start when it ends.
    pub looping: bool,
    /// Only this address may connect.
    pub allow: Option<IpAddr>,
    /// Connections beyond this many are refused.
    pub max_viewers: usize,
    pub preview: bool,
    /// The code viewers must pair with, or `--insecure`.
    pub pairing: Pairing,
}

/// What the accept and writer threads share with the capture loop.
struct Shared {
    /// The hello exactly as sent: pairing binds the keys to it.
    hello_payload: Vec<u8>,
    pairing: Pairing,
    /// Seals each frame once for every paired viewer; `None` with `--insecure`.
    frame_sealer: Option<FrameSealer>,
    wrong_codes: Mutex<WrongCodes>,
    allow: Option<IpAddr>,
    max_viewers: usize,
    viewers: Viewers,
    frames_sent: AtomicU64,
    bytes_sent: AtomicU64,
    frames_skipped: AtomicU64,
    viewers_served: AtomicU64,
    complaints: Mutex<Complaints>,
}

/// Where the sender's frames come from.
pub enum Input {
    /// The test pattern or a file, read when a frame is due.
    Direct(Source),
    /// A camera or network stream, read on its own thread; it can be lost and come back.
    Live(LiveSource),
}

impl Input {
    pub fn open(spec: &SourceSpec) -> Result<Input> {
        if !spec.is_live() {
            return Ok(Input::Direct(Source::open(spec)?));
        }
        let spec = spec.clone();
        let opener: Opener = Box::new(move || Ok(Box::new(Source::open(&spec)?)));
        Ok(Input::Live(LiveSource::start(opener)?))
    }

    fn name(&self) -> &str {
        match self {
            Input::Direct(source) => source.name(),
            Input::Live(live) => live.name(),
        }
    }

    fn size(&self) -> (u32, u32) {
        match self {
            Input::Direct(source) => source.size(),
            Input::Live(live) => live.size(),
        }
    }

    fn native_fps(&self) -> Option<f64> {
        match self {
            Input::Direct(source) => source.native_fps(),
            Input::Live(live) => live.native_fps(),
        }
    }

    fn is_file(&self) -> bool {
        matches!(self, Input::Direct(source) if source.is_file())
    }

    /// The next frame into `out`, or `None` at the end of a file.
    fn next_into(&mut self, seq: u64, out: &mut Vec<u8>) -> Result<Option<Next>> {
        match self {
            Input::Direct(source) => {
                let captured_at = SystemTime::now();
                Ok(source
                    .read_into(seq, out)?
                    .then_some(Next::Frame(captured_at)))
            }
            Input::Live(live) => Ok(Some(live.next_into(out, POLL))),
        }
    }
}

/// Streams from `config.source` to every viewer that connects to `listener` until the source
/// ends, `--frames` is reached, the preview window is closed or `stop` is raised.
pub fn run(config: &SenderConfig, listener: TcpListener, stop: &Stop) -> Result<SenderReport> {
    serve(config, Input::open(&config.source)?, listener, stop)
}

/// [`run`] with the input already open (a test can bring its own camera).
pub fn serve(
    config: &SenderConfig,
    mut source: Input,
    listener: TcpListener,
    stop: &Stop,
) -> Result<SenderReport> {
    let started = Instant::now();
    let (width, height) = source.size();
    let fps = match (config.fps, &config.source) {
        (Some(fps), _) => Some(fps),
        (None, SourceSpec::TestPattern { .. }) => Some(PATTERN_FPS),
        (None, _) => source.native_fps(),
    };
    let hello = StreamHello {
        security: config.pairing.security(),
        ..StreamHello::new(width, height, config.codec, fps.unwrap_or(0.0))
    };
    hello
        .check()
        .with_context(|| format!("streaming {}", source.name()))?;
    let mut hello_payload = Vec::new();
    protocol::encode_into(&Message::StreamHello(hello), &mut hello_payload)?;
    let frame_sealer = match config.pairing {
        Pairing::Code(_) => Some(FrameSealer::generate()?),
        Pairing::Insecure => None,
    };
    log::info!(
        "streaming {} ({width}x{height} {}, {})",
        source.name(),
        config.codec,
        match fps {
            Some(fps) if fps > 0.0 => format!("{fps} fps"),
            _ => "as fast as possible".into(),
        }
    );
    listener
        .set_nonblocking(true)
        .context("setting up the listener")?;
    let shared = Arc::new(Shared {
        hello_payload,
        pairing: config.pairing.clone(),
        frame_sealer,
        wrong_codes: Mutex::default(),
        allow: config.allow,
        max_viewers: config.max_viewers,
        viewers: Viewers::default(),
        frames_sent: AtomicU64::new(0),
        bytes_sent: AtomicU64::new(0),
        frames_skipped: AtomicU64::new(0),
        viewers_served: AtomicU64::new(0),
        complaints: Mutex::default(),
    });
    let accepting = Stop::default();
    let acceptor = {
        let (shared, accepting, quitting) = (Arc::clone(&shared), accepting.clone(), stop.clone());
        thread::spawn(move || accept_loop(&listener, &shared, &accepting, &quitting))
    };
    let mut report = SenderReport::default();
    // A live source keeps its own time; only an explicit --fps slows it down.
    let pace = match source {
        Input::Live(_) => config.fps,
        Input::Direct(_) => fps,
    }
    .filter(|f| *f > 0.0)
    .map(|f| Duration::from_secs_f64(1.0 / f));
    let result = capture_loop(config, &mut source, pace, &shared, stop, &mut report);
    accepting.raise();
    if acceptor.join().is_err() {
        log::error!("the accept thread failed");
    }
    report.frames_sent = shared.frames_sent.load(Ordering::Relaxed);
    report.bytes_sent = shared.bytes_sent.load(Ordering::Relaxed);
    report.frames_skipped = shared.frames_skipped.load(Ordering::Relaxed);
    report.viewers = shared.viewers_served.load(Ordering::Relaxed);
    result.map(|()| report.finish(started))
}

fn capture_loop(
    config: &SenderConfig,
    source: &mut Input,
    pace: Option<Duration>,
    shared: &Shared,
    stop: &Stop,
    report: &mut SenderReport,
) -> Result<()> {
    let window = match config.preview {
        true => Some(Window::open(PREVIEW_TITLE)?),
        false => None,
    };
    let (width, height) = source.size();
    let pool = BufferPool::new(POOLED_BUFFERS);
    let sealed_pool = BufferPool::new(POOLED_BUFFERS);
    let mut frame_prefix = Vec::new();
    let mut jpeg = (config.codec == Codec::Jpeg).then(|| JpegEncoder::new(config.quality));
    let mut captured = Vec::new();
    let mut counted = 0u64;
    let mut next_at = Instant::now();
    let mut told_waiting = false;
    let mut last_card: Option<Instant> = None;
    let live = matches!(source, Input::Live(_));
    let mut seq = 0u64;
    loop {
        // A file waits for its first viewer, so that viewer sees it from the start.
        while seq == 0 && source.is_file() && shared.viewers.active() == 0 {
            if !std::mem::replace(&mut told_waiting, true) {
                log::info!("waiting for a receiver before playing {}", source.name());
            }
            if wait_until(Instant::now() + POLL, window.as_ref(), stop)? {
                return Ok(());
            }
            next_at = Instant::now();
        }
        if let Some(interval) = pace {
            if wait_until(next_at, window.as_ref(), stop)? {
                return Ok(());
            }
            // Late by more than a frame: start afresh rather than rush to catch up.
            next_at = (next_at + interval).max(Instant::now() - interval);
        } else if !live && wait_for_demand(shared, window.as_ref(), stop)? {
            return Ok(());
        }
        let mut data = pool.buffer();
        let pixels = if jpeg.is_some() {
            &mut captured
        } else {
            &mut data
        };
        let captured_at = match source.next_into(seq, pixels)? {
            Some(Next::Frame(at)) => at,
            None if config.looping => {
                log::info!("{} ended; playing it again (--loop)", source.name());
                *source = Input::open(&config.source)?;
                continue;
            }
            None => {
                log::info!("{} ended; ending the stream", source.name());
                return Ok(());
            }
            Some(Next::Lost { since, why })
                if last_card.is_none_or(|at| at.elapsed() >= NO_SIGNAL_INTERVAL) =>
            {
                last_card = Some(Instant::now());
                let lines = [
                    "NO SIGNAL".to_owned(),
                    format!("{} lost at {}", source.name(), clock_time(since)),
                    why,
                    format!("trying again every {} s", live::REOPEN_INTERVAL.as_secs()),
                ];
                video::draw_card_bgr(width, height, &lines, pixels)?;
                SystemTime::now()
            }
            Some(Next::Waiting | Next::Lost { .. }) => {
                if quit_asked(window.as_ref(), stop)? {
                    return Ok(());
                }
                continue;
            }
        };
        report.frames_captured += 1;
        // Encoding for nobody is wasted work; the preview needs only the pixels.
        let watched = shared.viewers.active() > 0;
        if let (Some(encoder), true) = (jpeg.as_mut(), watched) {
            data.clear();
            data.extend_from_slice(encoder.encode(width, height, &captured)?);
        }
        report.frames_encoded += u64::from(watched);
        if let Some(window) = &window {
            let pixels = if jpeg.is_some() { &captured } else { &data };
            window.show(&video::bgr_view(width, height, pixels)?)?;
            if quit_asked(Some(window), stop)? {
                return Ok(());
            }
        }
        let header = FrameHeader {
            seq,
            capture_unix_us: unix_micros(captured_at),
            width,
            height,
            pixel_format: PixelFormat::Bgr8,
            codec: config.codec,
        };
        let frame = match (&shared.frame_sealer, watched) {
            (Some(sealer), true) => {
                // Sealed once here, for every viewer; the pixels go straight back to the source.
                frame_prefix.clear();
                protocol::encode_frame_prefix(&header, data.len(), &mut frame_prefix)?;
                let mut sealed = sealed_pool.buffer();
                sealer.seal(seq, &frame_prefix, &data, &mut sealed)?;
                pool.recycle(data);
                sealed_pool.frame(header, sealed, true)
            }
            _ => pool.frame(header, data, false),
        };
        if watched && shared.viewers.publish(&frame) > 0 {
            counted += 1;
            if config.frames == Some(counted) {
                log::info!("sent {counted} frames (--frames); ending the stream");
                return Ok(());
            }
        }
        seq += 1;
    }
}

/// Waits until `deadline`, keeping the window responsive. Returns true if the user asked to quit
/// (`q` raises `stop`).
fn wait_until(deadline: Instant, window: Option<&Window>, stop: &Stop) -> Result<bool> {
    loop {
        if stop.is_raised() {
            return Ok(true);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(false);
        }
        let step = left.min(POLL);
        match window {
            Some(window) => {
                if window.poll(step.as_millis().max(1) as i32)? == WindowEvent::Quit {
                    stop.raise();
                    return Ok(true);
                }
            }
            None => thread::sleep(step),
        }
    }
}

/// Unpaced: waits until a viewer is ready for a frame. Returns true if the user asked to quit.
fn wait_for_demand(shared: &Shared, window: Option<&Window>, stop: &Stop) -> Result<bool> {
    loop {
        if stop.is_raised() {
            return Ok(true);
        }
        if shared.viewers.wait_for_demand(POLL) {
            return Ok(false);
        }
        if quit_asked(window, stop)? {
            return Ok(true);
        }
    }
}

/// Runs the window's events once. Returns true if the user asked to quit; `q` in the window
/// raises `stop` like Ctrl-C does, so everything after knows the user is waiting.
fn quit_asked(window: Option<&Window>, stop: &Stop) -> Result<bool> {
    if stop.is_raised() {
        return Ok(true);
    }
    let quit = match window {
        Some(window) => window.poll(1)? == WindowEvent::Quit,
        None => false,
    };
    if quit {
        stop.raise();
    }
    Ok(quit)
}

/// Admits viewers until `accepting` is raised, then closes every viewer's stream, giving them
/// [`CLOSE_GRACE`] to finish, or [`QUIT_GRACE`] when `quitting` says the user asked to quit.
fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>, accepting: &Stop, quitting: &Stop) {
    let mut writers: Vec<thread::JoinHandle<()>> = Vec::new();
    while !accepting.is_raised() {
        match listener.accept() {
            Ok((stream, peer)) => {
                if let Some(writer) = admit(stream, peer, shared) {
                    writers.push(writer);
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => thread::sleep(POLL),
            Err(e) => {
                // Out of file descriptors and the like: wait, then try again.
                log::warn!("accepting a connection: {e}");
                thread::sleep(POLL);
            }
        }
        writers.retain(|w| !w.is_finished());
    }
    shared.viewers.close_all();
    let grace = match quitting.is_raised() {
        true => QUIT_GRACE,
        false => CLOSE_GRACE,
    };
    let deadline = Instant::now() + grace;
    while shared.viewers.connections() > 0 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(5));
    }
    shared.viewers.disconnect_all();
    for writer in writers {
        // A writer that panicked has already lost its viewer; nothing more to do.
        let _ = writer.join();
    }
}

/// Checks a new connection and starts its writer thread.
fn admit(
    stream: TcpStream,
    peer: SocketAddr,
    shared: &Arc<Shared>,
) -> Option<thread::JoinHandle<()>> {
    if let Some(allowed) = shared.allow {
        if canonical(peer.ip()) != canonical(allowed) {
            shared.complain(peer, "--allow", || {
                format!("refused connection from {peer}: only {allowed} may connect (--allow)")
            });
            return None;
        }
    }
    if let Some(wait) =
        lock_or_default(&shared.wrong_codes).lockout(canonical(peer.ip()), Instant::now())
    {
        shared.complain(peer, "pairing lockout", || {
            format!(
                "refused connection from {peer}: too many wrong pairing codes; next try allowed in {} s",
                wait.as_secs_f64().ceil()
            )
        });
        return None;
    }
    if shared.viewers.connections() >= shared.max_viewers {
        shared.complain(peer, "--max-viewers", || {
            format!(
                "refused connection from {peer}: already serving {} viewers (--max-viewers)",
                shared.max_viewers
            )
        });
        return None;
    }
    let registered = stream
        .set_nonblocking(false)
        .and_then(|()| stream.try_clone());
    let handle = match registered {
        Ok(handle) => handle,
        Err(e) => {
            log::warn!("viewer {peer}: {e}");
            return None;
        }
    };
    let slot = shared.viewers.join(peer, handle);
    let shared = Arc::clone(shared);
    let spawned = thread::Builder::new()
        .name(WRITER_THREAD.to_owned())
        .spawn(move || {
            let mut sent = 0u64;
            match serve_viewer(&stream, peer, &shared, &slot, &mut sent) {
                Ok(Ending::StreamEnded) => {
                    log::info!("viewer {peer}: stream ended after {sent} frames")
                }
                Ok(Ending::ViewerLeft) => log::info!("viewer {peer} left after {sent} frames"),
                Err(e) if is_disconnect(&e) => {
                    log::info!("viewer {peer} disconnected after {sent} frames")
                }
                Err(e) if secure::is_code_mismatch(&e) => {
                    let failures = lock_or_default(&shared.wrong_codes)
                        .failed(canonical(peer.ip()), Instant::now());
                    shared.complain(peer, "pairing", || {
                        format!("refused viewer {peer}: pairing code did not match ({failures} in a row)")
                    })
                }
                Err(e) if e.is::<NotAViewer>() => shared.complain(peer, "handshake", || {
                    format!("refused connection from {peer}: {}", error_line(&e))
                }),
                Err(e) => log::warn!(
                    "viewer {peer} dropped after {sent} frames: {}",
                    error_line(&e)
                ),
            }
            shared
                .frames_skipped
                .fetch_add(slot.skipped(), Ordering::Relaxed);
            shared.viewers.leave(peer);
        });
    match spawned {
        Ok(writer) => Some(writer),
        Err(e) => {
            log::warn!("viewer {peer}: starting its writer: {e}");
            None
        }
    }
}

impl Shared {
    /// Logs a refusal, unless the same complaint about the same address was logged in the last
    /// [`COMPLAINT_PERIOD`]: then it is only counted, and the next message says how many.
    fn complain(&self, peer: SocketAddr, about: &'static str, message: impl FnOnce() -> String) {
        let unsaid = match self.complaints.lock() {
            Ok(mut complaints) => complaints.note(canonical(peer.ip()), about, Instant::now()),
            Err(_) => Some(0),
        };
        match unsaid {
            Some(0) => log::warn!("{}", message()),
            Some(n) => log::warn!(
                "{} (and {n} more like it since the last such message)",
                message()
            ),
            None => {}
        }
    }
}

/// The sender's memory of recent complaints, per address and kind: a flood of connections
/// becomes one log line per period, with a count.
#[derive(Default)]
struct Complaints {
    /// When each was last logged, and how many have been left unsaid since.
    seen: HashMap<(IpAddr, &'static str), (Instant, u64)>,
}

impl Complaints {
    /// Returns how many were left unsaid when this one should be logged, or `None` to stay quiet.
    fn note(&mut self, ip: IpAddr, about: &'static str, now: Instant) -> Option<u64> {
        // Many addresses: forget the ones that have been quiet for a period (bounded memory).
        if self.seen.len() >= MAX_REMEMBERED_COMPLAINTS {
            self.seen
                .retain(|_, (logged, _)| now.duration_since(*logged) < COMPLAINT_PERIOD);
        }
        let full = self.seen.len() >= MAX_REMEMBERED_COMPLAINTS;
        match self.seen.get_mut(&(ip, about)) {
            Some((logged, unsaid)) if now.duration_since(*logged) < COMPLAINT_PERIOD => {
                *unsaid += 1;
                None
            }
            Some((logged, unsaid)) => {
                *logged = now;
                Some(std::mem::take(unsaid))
            }
            None if !full => {
                self.seen.insert((ip, about), (now, 0));
                Some(0)
            }
            // Still full of fresh complaints: a flood from many addresses; stay quiet.
            None => None,
        }
    }
}

/// IPv4 peers of a dual-stack listener arrive as IPv4-mapped IPv6 addresses.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn serve_viewer(
    stream: &TcpStream,
    peer: SocketAddr,
    shared: &Shared,
    slot: &Slot,
    sent: &mut u64,
) -> Result<Ending> {
    stream.set_nodelay(true)?;
    let mut writer = MessageWriter::new(stream);
    writer
        .write_payload(&shared.hello_payload)
        .context("sending hello")?;
    let pairing = writer.start_pairing(&shared.pairing)?;
    stream.set_read_timeout(Some(HANDSHAKE_TIMEOUT))?;
    let mut reader = MessageReader::new(stream);
    let hello = read_handshake(
        &mut reader,
        "waiting for its hello",
        "it closed the connection before saying hello",
    )
    .context(NotAViewer)?;
    let hello = protocol::decode_viewer_hello(hello)
        .context("reading its hello")
        .context(NotAViewer)?;
    let mut acks = match (pairing, hello.security) {
        (Some(pairing), Security::Paired) => Some(pair(&mut reader, &mut writer, pairing, shared)?),
        (None, Security::Insecure) => None,
        (Some(_), Security::Insecure) => {
            return Err(anyhow!(
            "it does not pair (started with --insecure), and this sender needs its pairing code"
        )
            .context(NotAViewer))
        }
        (None, Security::Paired) => {
            return Err(anyhow!(
                "it expects a pairing code, and this sender was started with --insecure"
            )
            .context(NotAViewer))
        }
    };
    // From here the viewer only acks; it may pause for as long as it likes.
    stream.set_read_timeout(None)?;
    shared.viewers.activate(peer);
    shared.viewers_served.fetch_add(1, Ordering::Relaxed);
    log::info!("viewer {peer} connected");
    let mut in_flight = 0;
    let mut last_seq = None;
    loop {
        // Credit first, then the frame: what is sent is the newest when the viewer can take it.
        while in_flight >= FRAMES_IN_FLIGHT {
            let payload = match acks.as_mut() {
                Some(channel) => reader.read_sealed(MAX_ACK_LEN, channel),
                None => reader.read_payload(MAX_ACK_LEN),
            };
            let Some(payload) = payload.context("waiting for its ack")? else {
                return Ok(Ending::ViewerLeft);
            };
            let ack = protocol::decode_ack(payload).context("reading its ack")?;
            if last_seq.is_none_or(|last| ack.seq > last) {
                bail!("it acknowledged frame {} before it was sent", ack.seq);
            }
            in_flight -= 1;
        }
        let Some(frame) = slot.next() else { break };
        let bytes = match frame.sealed {
            true => writer.write_payload(&frame.data)?,
            false => writer.write_frame(&frame.header, &frame.data)?,
        };
        in_flight += 1;
        last_seq = Some(frame.header.seq);
        *sent += 1;
        shared.frames_sent.fetch_add(1, Ordering::Relaxed);
        shared.bytes_sent.fetch_add(bytes as u64, Ordering::Relaxed);
    }
    close_gracefully(stream);
    Ok(Ending::StreamEnded)
}

/// Finishes pairing with a viewer: its SPAKE2 message, our sealed frame key, its sealed
/// confirmation. Returns the channel its acks come sealed in.
fn pair(
    reader: &mut MessageReader<&TcpStream>,
    writer: &mut MessageWriter<&TcpStream>,
    pairing: secure::Pairing,
    shared: &Shared,
) -> Result<Channel> {
    let theirs = read_handshake(
        reader,
        "waiting for its pairing message",
        "it closed the connection before pairing",
    )
    .context(NotAViewer)?;
    let theirs = protocol::decode_pake(theirs).context(NotAViewer)?;
    let mut session = pairing
        .finish(theirs, &shared.hello_payload)
        .context(NotAViewer)?;
    let key = shared
        .frame_sealer
        .as_ref()
        .map(FrameSealer::key_bytes)
        .ok_or_else(|| anyhow!("pairing without a frame key"))?;
    writer.write_sealed(
        &Message::FrameKey(FrameKey { key }),
        &mut session.to_receiver,
    )?;
    let confirmation = read_handshake(
        reader,
        "waiting for it to confirm pairing",
        "it closed the connection while pairing",
    )?;
    let mut confirmation = confirmation.to_vec();
    let opened = session.to_sender.open_first(&mut confirmation)?;
    protocol::decode_paired(opened).context(NotAViewer)?;
    Ok(session.to_sender)
}

/// Reads a handshake message the viewer owes us; `waiting` names it in a read error, `closed` says
/// what a close before it means.
fn read_handshake<'r>(
    reader: &'r mut MessageReader<&TcpStream>,
    waiting: &'static str,
    closed: &'static str,
) -> Result<&'r [u8]> {
    reader
        .read_payload(MAX_HELLO_LEN)
        .context(waiting)?
        .ok_or_else(|| anyhow!(closed))
}

fn lock_or_default<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// Addresses that gave wrong pairing codes: each failure in a row locks the address out for
/// twice as long as the last (1 s, 2 s, 4 s … up to a minute), so guessing a code costs time
/// while a person who mistyped it is barely slowed.
#[derive(Default)]
struct WrongCodes {
    failures: HashMap<IpAddr, (u32, Instant)>,
}

impl WrongCodes {
    /// Counts a failure from `ip`; returns how many in a row.
    fn failed(&mut self, ip: IpAddr, now: Instant) -> u32 {
        if self.failures.len() >= MAX_REMEMBERED_COMPLAINTS {
            self.failures
                .retain(|_, (_, last)| now.duration_since(*last) < MAX_LOCKOUT);
        }
        let entry = self.failures.entry(ip).or_insert((0, now));
        *entry = (entry.0.saturating_add(1), now);
        entry.0
    }

    /// How long `ip` must still wait before it may try again, if at all.
    fn lockout(&self, ip: IpAddr, now: Instant) -> Option<Duration> {
        let (failures, last) = self.failures.get(&ip)?;
        let lockout = Duration::from_secs(1u64 << (failures - 1).min(6)).min(MAX_LOCKOUT);
        (*last + lockout)
            .checked_duration_since(now)
            .filter(|d| !d.is_zero())
    }
}

/// The peer failed the handshake: a port scanner, a browser, garbage, or silence.
#[derive(Debug, thiserror::Error)]
#[error("not a camstream viewer")]
struct NotAViewer;

/// How a viewer's stream ended, when nothing went wrong.
enum Ending {
    StreamEnded,
    ViewerLeft,
}

/// Ends our side and waits briefly for the viewer to close its own, so the last frame is not
/// lost to a reset from unread data.
fn close_gracefully(stream: &TcpStream) {
    if stream.shutdown(Shutdown::Write).is_err() {
        return;
    }
    let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
    let mut sink = [0u8; 256];
    let mut reader = stream;
    while matches!(reader.read(&mut sink), Ok(n) if n > 0) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_complaint_is_logged_once_per_period_with_a_count() {
        let mut complaints = Complaints::default();
        let ip: IpAddr = [192, 0, 2, 7].into();
        let other: IpAddr = [192, 0, 2, 8].into();
        let start = Instant::now();
        assert_eq!(complaints.note(ip, "--allow", start), Some(0));
        for _ in 0..300 {
            assert_eq!(complaints.note(ip, "--allow", start), None);
        }
        // Another address, or another complaint, is news.
        assert_eq!(complaints.note(other, "--allow", start), Some(0));
        assert_eq!(complaints.note(ip, "handshake", start), Some(0));
        let later = start + COMPLAINT_PERIOD;
        assert_eq!(complaints.note(ip, "--allow", later), Some(300));
        assert_eq!(complaints.note(ip, "--allow", later), None);
    }

    #[test]
    fn complaints_from_a_flood_of_addresses_take_bounded_memory() {
        let mut complaints = Complaints::default();
        let now = Instant::now();
        for n in 0..5000u32 {
            complaints.note(IpAddr::from(n.to_be_bytes()), "handshake", now);
        }
        assert_eq!(complaints.seen.len(), MAX_REMEMBERED_COMPLAINTS);
    }
}
