//! The receiver: a network thread reads messages into a small ring of reused buffers; the calling
//! thread (the one highgui needs) decodes, shows, records and measures each frame.

use crate::config::{Endpoint, Pairing};
use crate::connection::{is_timeout, read_payload, MessageWriter};
use crate::protocol::{
    self, Ack, Codec, FrameHeader, Message, Security, StreamHello, ViewerHello, MAX_HELLO_LEN,
};
use crate::secure::{self, Channel, FrameOpener};
use crate::stats::{FrameLog, ReceiverStats};
use crate::video::{self, Recorder, Window, WindowEvent};
use crate::{error_line, Stop};
use anyhow::{anyhow, bail, Context, Result};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use opencv::core::{Mat, ToInputArray};
use socket2::{Domain, Socket, Type};
use std::io::Read;
use std::net::{Shutdown, SocketAddr, TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::thread;
use std::time::{Duration, Instant, SystemTime};

/// Title of the viewing window.
pub const WINDOW_TITLE: &str = "RECEIVING VIDEO";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);
/// The socket wakes the network thread only when this much of a message has arrived (or all of
/// the rest of it, when less is left): a 1080p raw frame then costs a few wake-ups instead of
/// dozens. Measured on loopback (raw 1920x1080): unset 586 fps, 256 KiB 921, 1 MiB 1011,
/// 4 MiB 639.
const RECV_LOW_WATER: usize = 1 << 20;
/// Frame rate written into a recording when the sender does not know its own.
const RECORD_FALLBACK_FPS: f64 = 30.0;
/// Reconnection attempts start this long after a loss and back off, doubling, to the cap.
const RECONNECT_FIRST: Duration = Duration::from_millis(250);
const RECONNECT_MAX: Duration = Duration::from_secs(2);
/// A connection that carries nothing for this long (or three frame intervals, if longer) is
/// dead: a live sender sends frames, or "no signal" frames, far more often.
const SILENCE_LIMIT: Duration = Duration::from_secs(5);
/// How often waiting loops look at the window, the stop signal and the reconnection.
const POLL: Duration = Duration::from_millis(20);
/// The picture shown while waiting, when no stream has said its size yet.
const WAITING_SIZE: (u32, u32) = (640, 360);

/// Everything the receiver needs, already validated.
#[derive(Debug, Clone)]
pub struct ReceiverConfig {
    pub connect: Endpoint,
    /// Local address to connect from.
    pub bind: Option<SocketAddr>,
    pub window: bool,
    /// Exit after showing this many frames.
    pub frames: Option<u64>,
    pub record: Option<PathBuf>,
    /// One CSV line per frame shown.
    pub frame_log: Option<PathBuf>,
    /// End when the stream ends instead of waiting for the sender to come back.
    pub once: bool,
    /// The sender's pairing code, or `--insecure`.
    pub pairing: Pairing,
}

/// A connection to a sender that has said hello (and, when paired, proved it holds the code).
pub struct Greeted {
    stream: TcpStream,
    hello: StreamHello,
    keys: Option<Keys>,
    /// From connecting to the end of the handshake (and pairing).
    took: Duration,
}

/// What a paired connection opens frames and seals acks with.
struct Keys {
    frames: FrameOpener,
    acks: Channel,
}

/// What the network thread hands over.
enum Incoming {
    /// A frame message as it arrived, not yet opened or checked (that is the display thread's
    /// work, so that opening one frame overlaps reading the next).
    Frame {
        buf: Vec<u8>,
        arrived: SystemTime,
    },
    /// The sender ended the stream cleanly.
    End,
    Failed(anyhow::Error),
}

/// Connects, then shows (or just decodes) frames until `--frames` is reached, the window is
/// closed or `stop` is raised. A stream that ends or breaks is waited for and reconnected, the
/// window kept, unless `once` is set. The first connection must succeed: a wrong address is the
/// user's to fix. `stats` is filled in however it ends.
pub fn run(config: &ReceiverConfig, stop: &Stop, stats: &mut ReceiverStats) -> Result<()> {
    let sender = config.connect.to_string();
    let mut connection = connect_and_greet(config)?;
    if connection.keys.is_none() {
        log::warn!("the stream from {sender} is not encrypted (--insecure): anyone on the network path can watch it");
    }
    let mut display = Display::open(config)?;
    let result = loop {
        let hello = connection.hello;
        log::info!(
            "connected to {sender} in {:.1} ms ({}): {}x{} {}",
            connection.took.as_secs_f64() * 1e3,
            match connection.keys {
                Some(_) => "paired, encrypted",
                None => "not encrypted",
            },
            hello.width,
            hello.height,
            hello.codec
        );
        stats.new_stream();
        let ended = display
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
        match display.wait_for_sender(config, &why, stop)? {
            Some(next) => connection = next,
            None => break Ok(()),
        }
        stats.reconnected();
    };
    let finished = display.finish();
    result.and(finished)
}

/// The display thread's side of one connection: opens and checks each frame, acks it.
struct Link {
    hello: StreamHello,
    /// Paired: what frames are opened and acks sealed with.
    opener: Option<FrameOpener>,
    ack_channel: Option<Channel>,
    acks: MessageWriter<TcpStream>,
}

impl Link {
    /// Opens a sealed frame in place (the buffer then ends where its plaintext does) and checks
    /// it; returns its header and where its data starts.
    fn open_and_check(&mut self, buf: &mut Vec<u8>) -> Result<(FrameHeader, usize)> {
        let Some(opener) = self.opener.as_mut() else {
            return check_frame(&self.hello, buf);
        };
        let plain = opener.open(buf)?;
        buf.truncate(plain.end);
        let (header, data_start) = check_frame(&self.hello, &buf[plain.start..])?;
        Ok((header, plain.start + data_start))
    }

    fn ack(&mut self, seq: u64) -> Result<usize> {
        let ack = Message::Ack(Ack { seq });
        match self.ack_channel.as_mut() {
            Some(channel) => self.acks.write_sealed(&ack, channel),
            None => self.acks.write_message(&ack),
        }
    }
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

fn connect_and_greet(config: &ReceiverConfig) -> Result<Greeted> {
    let started = Instant::now();
    let stream = connect(&config.connect, config.bind)?;
    let (hello, keys) = handshake(&stream, &config.pairing)
        .with_context(|| format!("greeting sender {}", config.connect))?;
    Ok(Greeted {
        stream,
        hello,
        keys,
        took: started.elapsed(),
    })
}

/// Tries to connect again and again, waiting longer each time up to [`RECONNECT_MAX`], until a
/// sender answers at the address or `cancel` is raised.
fn reconnect(config: &ReceiverConfig, cancel: &Stop, found: &Sender<Result<Greeted>>) {
    let mut delay = RECONNECT_FIRST;
    loop {
        let deadline = Instant::now() + delay;
        while Instant::now() < deadline {
            if cancel.is_raised() {
                return;
            }
            thread::sleep(POLL);
        }
        match connect_and_greet(config) {
            Err(e) if !secure::is_code_mismatch(&e) => {
                log::debug!("reconnecting: {}", error_line(&e))
            }
            // A sender found, or one with another code (restarted without --code): trying the
            // same code again would only get locked out, so the user decides.
            result => {
                // Nobody waiting any more: the connection is simply closed.
                let _ = found.send(result);
                return;
            }
        }
        delay = (delay * 2).min(RECONNECT_MAX);
    }
}

fn connect(endpoint: &Endpoint, bind: Option<SocketAddr>) -> Result<TcpStream> {
    let addrs: Vec<SocketAddr> = (endpoint.host.as_str(), endpoint.port)
        .to_socket_addrs()
        .with_context(|| format!("resolving {}", endpoint.host))?
        .collect();
    let mut last_error = anyhow!("{} has no address", endpoint.host);
    for addr in addrs {
        match connect_one(addr, bind) {
            Ok(stream) => return Ok(stream),
            Err(e) => last_error = e,
        }
    }
    Err(last_error)
}

fn connect_one(addr: SocketAddr, bind: Option<SocketAddr>) -> Result<TcpStream> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)
        .with_context(|| format!("connecting to {addr}"))?;
    if let Some(local) = bind {
        socket
            .bind(&local.into())
            .with_context(|| format!("binding to {local}"))?;
    }
    socket
        .connect_timeout(&addr.into(), CONNECT_TIMEOUT)
        .with_context(|| format!("connecting to {addr}"))?;
    let stream: TcpStream = socket.into();
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Reads through a socket whose low-water mark follows each read: the kernel wakes a blocked
/// reader only once the mark is reached, whatever the read asked for, so the mark must never
/// exceed what is still to come of the message being read.
struct LowWaterReader {
    stream: TcpStream,
    mark: usize,
}

impl LowWaterReader {
    fn new(stream: TcpStream) -> Self {
        LowWaterReader { stream, mark: 1 }
    }

    /// SO_RCVLOWAT, which socket2 does not wrap.
    fn set_mark(&mut self, bytes: usize) -> std::io::Result<()> {
        use std::os::fd::AsRawFd;
        let value = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
        // SAFETY: a valid socket descriptor and a pointer to an int that outlives the call.
        let result = unsafe {
            libc::setsockopt(
                self.stream.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVLOWAT,
                std::ptr::from_ref(&value).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if result != 0 {
            return Err(std::io::Error::last_os_error());
        }
        self.mark = bytes;
        Ok(())
    }
}

impl Read for LowWaterReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let mark = buf.len().clamp(1, RECV_LOW_WATER);
        if mark != self.mark {
            self.set_mark(mark)?;
        }
        self.stream.read(buf)
    }
}

/// Says hello and reads the sender's, with a time limit so a silent peer cannot hang us; when
/// pairing, runs SPAKE2 on the code and checks that the sender used the same one.
fn handshake(stream: &TcpStream, pairing: &Pairing) -> Result<(StreamHello, Option<Keys>)> {
    let mut writer = MessageWriter::new(stream);
    writer.write_message(&Message::ViewerHello(ViewerHello::new(pairing.security())))?;
    let pairing = writer.start_pairing(pairing)?;
    stream.set_read_timeout(Some(HANDSHAKE_TIMEOUT))?;
    let mut buf = Vec::new();
    let mut reader = stream;
    let refused = || {
        anyhow!("it closed the connection before saying hello (refused by its --allow or --max-viewers, or locked out after wrong pairing codes?)")
    };
    match read_payload(&mut reader, &mut buf, MAX_HELLO_LEN) {
        Ok(true) => {}
        Ok(false) => return Err(refused()),
        // A sender refusing us closes without reading our hello, which resets the connection.
        Err(e) if crate::is_disconnect(&e) => return Err(refused()),
        Err(e) => return Err(e),
    }
    let hello = protocol::decode_stream_hello(&buf)?;
    let keys = match (pairing, hello.security) {
        (None, Security::Insecure) => None,
        (Some(_), Security::Insecure) => bail!(
            "the sender streams without encryption (started with --insecure); pass --insecure to watch it anyway"
        ),
        (None, Security::Paired) => bail!(
            "the sender pairs with a code (it was not started with --insecure); pass --code with the code it shows"
        ),
        (Some(pairing), Security::Paired) => {
            let hello_payload = buf.clone();
            let mut next = |buf: &mut Vec<u8>| -> Result<()> {
                match read_payload(&mut reader, buf, MAX_HELLO_LEN)? {
                    true => Ok(()),
                    false => bail!("it closed the connection while pairing"),
                }
            };
            next(&mut buf)?;
            let mut session = pairing.finish(protocol::decode_pake(&buf)?, &hello_payload)?;
            writer.write_sealed(&Message::Paired, &mut session.to_sender)?;
            next(&mut buf)?;
            let key = protocol::decode_frame_key(session.to_receiver.open_first(&mut buf)?)?;
            Some(Keys {
                frames: FrameOpener::new(&key.key),
                acks: session.to_sender,
            })
        }
    };
    stream.set_read_timeout(None)?;
    Ok((hello, keys))
}

/// The network thread: reads and checks frames, hands them over, gets the buffers back.
fn read_frames(
    stream: TcpStream,
    hello: StreamHello,
    max_len: usize,
    frames: &Sender<Incoming>,
    free: &Receiver<Vec<u8>>,
) {
    let silence = match hello.fps {
        fps if fps > 0.0 => SILENCE_LIMIT.max(Duration::from_secs_f64(3.0 / fps)),
        _ => SILENCE_LIMIT,
    };
    if let Err(e) = stream.set_read_timeout(Some(silence)) {
        let _ = frames.send(Incoming::Failed(e.into()));
        return;
    }
    let mut stream = LowWaterReader::new(stream);
    loop {
        let mut buf = free.try_recv().unwrap_or_default();
        let incoming = match read_payload(&mut stream, &mut buf, max_len) {
            Ok(false) => Incoming::End,
            Ok(true) => Incoming::Frame {
                buf,
                arrived: SystemTime::now(),
            },
            Err(e) if is_timeout(&e) => Incoming::Failed(anyhow!(
                "nothing came from the sender for {} s",
                silence.as_secs()
            )),
            Err(e) => Incoming::Failed(e),
        };
        let last = !matches!(incoming, Incoming::Frame { .. });
        if frames.send(incoming).is_err() || last {
            return;
        }
    }
}

fn check_frame(hello: &StreamHello, payload: &[u8]) -> Result<(FrameHeader, usize)> {
    match protocol::decode(payload)? {
        Message::Frame(frame) => {
            hello.check_frame(&frame)?;
            Ok((frame.header, payload.len() - frame.data.len()))
        }
        other => bail!("expected a frame, got {}", other.kind()),
    }
}

fn output(
    window: Option<&Window>,
    recorder: Option<&mut Recorder>,
    picture: &impl ToInputArray,
) -> Result<()> {
    if let Some(window) = window {
        window.show(picture)?;
    }
    if let Some(recorder) = recorder {
        recorder.write(picture)?;
    }
    Ok(())
}

/// Where frames go, across connections, and the reused decode target.
struct Display {
    window: Option<Window>,
    record: Option<PathBuf>,
    recorder: Option<Recorder>,
    frame_log: Option<FrameLog>,
    picture: Mat,
    /// The last stream's picture size: what the "waiting" picture and the recording use.
    size: Option<(u32, u32)>,
}

impl Display {
    fn open(config: &ReceiverConfig) -> Result<Display> {
        let frame_log = config
            .frame_log
            .as_deref()
            .map(FrameLog::create)
            .transpose()?;
        Ok(Display {
            window: match config.window {
                true => Some(Window::open(WINDOW_TITLE)?),
                false => None,
            },
            record: config.record.clone(),
            recorder: None,
            frame_log,
            picture: Mat::default(),
            size: None,
        })
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
        let Greeted {
            stream,
            hello,
            keys,
            ..
        } = connection;
        let (opener, ack_channel) = keys.map(|k| (k.frames, k.acks)).unzip();
        let max_len = match opener {
            Some(_) => hello.max_message_len() + secure::FRAME_OVERHEAD,
            None => hello.max_message_len(),
        };
        self.start_recording(&hello)?;
        self.size = Some((hello.width, hello.height));
        let (frames_tx, frames_rx) = crossbeam_channel::bounded(1);
        let (free_tx, free_rx) = crossbeam_channel::bounded(2);
        let reader = stream.try_clone().context("setting up the connection")?;
        let acks = stream.try_clone().context("setting up the connection")?;
        let network =
            thread::spawn(move || read_frames(reader, hello, max_len, &frames_tx, &free_rx));
        let ended = self.show_frames(
            &frames_rx,
            &free_tx,
            &mut Link {
                hello,
                opener,
                ack_channel,
                acks: MessageWriter::new(acks),
            },
            frame_limit,
            stop,
            stats,
        );
        // Unblock the network thread if it is waiting on the socket, then collect it.
        let _ = stream.shutdown(Shutdown::Both);
        drop(frames_rx);
        let _ = network.join();
        ended
    }

    /// The recording starts with the first stream and keeps its size; frames of a later stream
    /// of another size are left out of it (with a warning) rather than scaled.
    fn start_recording(&mut self, hello: &StreamHello) -> Result<()> {
        match (&self.record, &self.recorder, self.size) {
            (Some(path), None, _) => {
                let fps = if hello.fps > 0.0 {
                    hello.fps
                } else {
                    RECORD_FALLBACK_FPS
                };
                self.recorder = Some(Recorder::create(path, hello.width, hello.height, fps)?);
            }
            (Some(path), Some(_), Some((width, height)))
                if (width, height) != (hello.width, hello.height) =>
            {
                log::warn!(
                    "the stream is now {}x{}; {} stays {width}x{height} and leaves it out",
                    hello.width,
                    hello.height,
                    path.display()
                );
                return Ok(());
            }
            _ => {}
        }
        Ok(())
    }

    fn show_frames(
        &mut self,
        frames: &Receiver<Incoming>,
        free: &Sender<Vec<u8>>,
        link: &mut Link,
        frame_limit: Option<u64>,
        stop: &Stop,
        stats: &mut ReceiverStats,
    ) -> Result<Ended> {
        let wait = match self.window {
            Some(_) => Duration::from_millis(5),
            None => Duration::from_millis(50),
        };
        while !stop.is_raised() && frame_limit.is_none_or(|limit| stats.frames() < limit) {
            match frames.recv_timeout(wait) {
                Ok(Incoming::Frame { mut buf, arrived }) => {
                    let bytes = buf.len() + protocol::LENGTH_PREFIX_LEN;
                    let (header, data_start) = match link.open_and_check(&mut buf) {
                        Ok(checked) => checked,
                        Err(e) => return Ok(Ended::Lost(e)),
                    };
                    let data = &buf[data_start..];
                    // A picture that does not decode is the sender's fault, like a bad message.
                    if header.codec == Codec::Jpeg {
                        let decoded = video::decode_jpeg(
                            data,
                            header.width,
                            header.height,
                            &mut self.picture,
                        );
                        if let Err(e) = decoded {
                            return Ok(Ended::Lost(e.context(format!("frame {}", header.seq))));
                        }
                    }
                    self.present(&header, data)?;
                    let shown = SystemTime::now();
                    // A sender that is gone shows up on the network thread; nothing to do here.
                    let _ = link.ack(header.seq);
                    stats.record(&header, bytes, shown);
                    if let Some(log) = self.frame_log.as_mut() {
                        log.write(&header, arrived, shown, bytes)?;
                    }
                    // A full ring means the buffer is simply freed.
                    let _ = free.try_send(buf);
                }
                Ok(Incoming::End) => return Ok(Ended::BySender),
                Ok(Incoming::Failed(e)) => return Ok(Ended::Lost(e)),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    return Ok(Ended::Lost(anyhow!("the network thread stopped")))
                }
            }
            if self.quit_asked(1)? {
                return Ok(Ended::ByUser);
            }
        }
        Ok(Ended::ByUser)
    }

    /// Whether the person at the window asked to quit, after running its events for `wait_ms`.
    fn quit_asked(&self, wait_ms: i32) -> Result<bool> {
        match &self.window {
            Some(window) => Ok(window.poll(wait_ms)? == WindowEvent::Quit),
            None => Ok(false),
        }
    }

    /// Shows "waiting for sender" (with why and since when) until a sender answers, which is
    /// returned, or the user quits (`None`).
    fn wait_for_sender(
        &mut self,
        config: &ReceiverConfig,
        why: &str,
        stop: &Stop,
    ) -> Result<Option<Greeted>> {
        let cancel = Stop::default();
        let (found_tx, found_rx) = crossbeam_channel::bounded(1);
        {
            let (config, cancel) = (config.clone(), cancel.clone());
            thread::spawn(move || reconnect(&config, &cancel, &found_tx));
        }
        let waited = self.watch_for_sender(config, why, stop, &found_rx);
        cancel.raise();
        waited
    }

    fn watch_for_sender(
        &mut self,
        config: &ReceiverConfig,
        why: &str,
        stop: &Stop,
        found: &Receiver<Result<Greeted>>,
    ) -> Result<Option<Greeted>> {
        let lost_at = Instant::now();
        let mut shown_seconds = None;
        loop {
            if stop.is_raised() {
                return Ok(None);
            }
            let seconds = lost_at.elapsed().as_secs();
            if let Some(window) = self
                .window
                .as_ref()
                .filter(|_| shown_seconds != Some(seconds))
            {
                let (width, height) = self.size.unwrap_or(WAITING_SIZE);
                let lines = [
                    "waiting for the sender".to_owned(),
                    format!("{} - lost {seconds} s ago", config.connect),
                    why.to_owned(),
                    "reconnecting by itself; q quits".to_owned(),
                ];
                video::draw_card(width, height, &lines, &mut self.picture)?;
                window.show(&self.picture)?;
                shown_seconds = Some(seconds);
            }
            match found.recv_timeout(POLL) {
                Ok(connection) => return connection.map(Some),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => bail!("the reconnecting thread stopped"),
            }
            if self.quit_asked(1)? {
                return Ok(None);
            }
        }
    }

    /// Shows and records one frame (JPEG frames are already decoded into `picture`). Raw
    /// frames are shown from the read buffer itself.
    fn present(&mut self, header: &FrameHeader, data: &[u8]) -> Result<()> {
        let Display {
            window,
            recorder,
            picture,
            ..
        } = self;
        let recorder = recorder
            .as_mut()
            .filter(|r| r.size() == (header.width, header.height));
        match header.codec {
            Codec::Jpeg => output(window.as_ref(), recorder, picture),
            Codec::Raw if window.is_none() && recorder.is_none() => Ok(()),
            Codec::Raw => {
                let view = video::bgr_view(header.width, header.height, data)?;
                output(window.as_ref(), recorder, &view)
            }
        }
    }

    /// Closes the window and finalises the recording, whatever ended the stream.
    fn finish(&mut self) -> Result<()> {
        self.window = None;
        if let Some(log) = self.frame_log.take() {
            log.finish()?;
        }
        if let Some(recorder) = self.recorder.take() {
            let frames = recorder.finish()?;
            log::info!("recorded {frames} frames");
        }
        Ok(())
    }
}
