//! The receiver: a network thread reads messages into a small ring of reused buffers; the calling
//! thread (the one highgui needs) decodes, shows, records and measures each frame.

use crate::config::Endpoint;
use crate::connection::{read_payload, MessageWriter};
use crate::protocol::{
    self, Ack, Codec, FrameHeader, Message, StreamHello, ViewerHello, MAX_HELLO_LEN,
};
use crate::stats::{FrameLog, ReceiverStats};
use crate::video::{self, Recorder, Window, WindowEvent};
use crate::Stop;
use anyhow::{anyhow, bail, Context, Result};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use opencv::core::{Mat, ToInputArray};
use socket2::{Domain, Socket, Type};
use std::io::Read;
use std::net::{Shutdown, SocketAddr, TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::thread;
use std::time::{Duration, SystemTime};

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
}

/// What the network thread hands over.
enum Incoming {
    /// A checked frame; its data is `buf[data_start..]`.
    Frame {
        header: FrameHeader,
        buf: Vec<u8>,
        data_start: usize,
        arrived: SystemTime,
    },
    /// The sender ended the stream cleanly.
    End,
    Failed(anyhow::Error),
}

/// Connects, then shows (or just decodes) frames until the stream ends, `--frames` is reached,
/// the window is closed or `stop` is raised. `stats` is filled in however it ends.
pub fn run(config: &ReceiverConfig, stop: &Stop, stats: &mut ReceiverStats) -> Result<()> {
    let stream = connect(&config.connect, config.bind)?;
    let sender = config.connect.to_string();
    let hello = handshake(&stream).with_context(|| format!("greeting sender {sender}"))?;
    log::info!(
        "connected to {sender}: {}x{} {}",
        hello.width,
        hello.height,
        hello.codec
    );
    let recorder = match &config.record {
        Some(path) => {
            let fps = if hello.fps > 0.0 {
                hello.fps
            } else {
                RECORD_FALLBACK_FPS
            };
            Some(Recorder::create(path, hello.width, hello.height, fps)?)
        }
        None => None,
    };
    let frame_log = config
        .frame_log
        .as_deref()
        .map(FrameLog::create)
        .transpose()?;
    let (frames_tx, frames_rx) = crossbeam_channel::bounded(1);
    let (free_tx, free_rx) = crossbeam_channel::bounded(2);
    let reader = stream.try_clone().context("setting up the connection")?;
    let acks = stream.try_clone().context("setting up the connection")?;
    let network = thread::spawn(move || read_frames(reader, hello, &frames_tx, &free_rx));
    let mut display = Display {
        window: match config.window {
            true => Some(Window::open(WINDOW_TITLE)?),
            false => None,
        },
        recorder,
        frame_log,
        acks: MessageWriter::new(acks),
        picture: Mat::default(),
    };
    let result = display
        .run(config.frames, &frames_rx, &free_tx, stop, stats)
        .with_context(|| format!("receiving from {sender}"));
    let finished = display.finish();
    // Unblock the network thread if it is waiting on the socket, then collect it.
    let _ = stream.shutdown(Shutdown::Both);
    drop(frames_rx);
    let _ = network.join();
    result.and(finished)
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

/// Says hello and reads the sender's, with a time limit so a silent peer cannot hang us.
fn handshake(stream: &TcpStream) -> Result<StreamHello> {
    MessageWriter::new(stream).write_message(&Message::ViewerHello(ViewerHello::default()))?;
    stream.set_read_timeout(Some(HANDSHAKE_TIMEOUT))?;
    let mut buf = Vec::new();
    let mut reader = stream;
    let refused = || {
        anyhow!("it closed the connection before saying hello (refused by its --allow or --max-viewers?)")
    };
    match read_payload(&mut reader, &mut buf, MAX_HELLO_LEN) {
        Ok(true) => {}
        Ok(false) => return Err(refused()),
        // A sender refusing us closes without reading our hello, which resets the connection.
        Err(e) if crate::is_disconnect(&e) => return Err(refused()),
        Err(e) => return Err(e),
    }
    let hello = protocol::decode_stream_hello(&buf)?;
    stream.set_read_timeout(None)?;
    Ok(hello)
}

/// The network thread: reads and checks frames, hands them over, gets the buffers back.
fn read_frames(
    stream: TcpStream,
    hello: StreamHello,
    frames: &Sender<Incoming>,
    free: &Receiver<Vec<u8>>,
) {
    let max_len = hello.max_message_len();
    let mut stream = LowWaterReader::new(stream);
    loop {
        let mut buf = free.try_recv().unwrap_or_default();
        let incoming = match read_payload(&mut stream, &mut buf, max_len) {
            Ok(false) => Incoming::End,
            Ok(true) => match check_frame(&hello, &buf) {
                Ok((header, data_start)) => Incoming::Frame {
                    header,
                    buf,
                    data_start,
                    arrived: SystemTime::now(),
                },
                Err(e) => Incoming::Failed(e),
            },
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

/// Where frames go, and the reused decode target.
struct Display {
    window: Option<Window>,
    recorder: Option<Recorder>,
    frame_log: Option<FrameLog>,
    /// Tells the sender each frame is done, which lets it send the next.
    acks: MessageWriter<TcpStream>,
    picture: Mat,
}

impl Display {
    fn run(
        &mut self,
        frame_limit: Option<u64>,
        frames: &Receiver<Incoming>,
        free: &Sender<Vec<u8>>,
        stop: &Stop,
        stats: &mut ReceiverStats,
    ) -> Result<()> {
        let wait = match self.window {
            Some(_) => Duration::from_millis(5),
            None => Duration::from_millis(50),
        };
        while !stop.is_raised() && frame_limit.is_none_or(|limit| stats.frames() < limit) {
            match frames.recv_timeout(wait) {
                Ok(Incoming::Frame {
                    header,
                    buf,
                    data_start,
                    arrived,
                }) => {
                    self.present(&header, &buf[data_start..])?;
                    let shown = SystemTime::now();
                    // A sender that is gone shows up on the network thread; nothing to do here.
                    let _ = self
                        .acks
                        .write_message(&Message::Ack(Ack { seq: header.seq }));
                    let bytes = buf.len() + protocol::LENGTH_PREFIX_LEN;
                    stats.record(&header, bytes, shown);
                    if let Some(log) = self.frame_log.as_mut() {
                        log.write(&header, arrived, shown, bytes)?;
                    }
                    // A full ring means the buffer is simply freed.
                    let _ = free.try_send(buf);
                }
                Ok(Incoming::End) => {
                    log::info!("the sender ended the stream");
                    return Ok(());
                }
                Ok(Incoming::Failed(e)) => return Err(e),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => bail!("the network thread stopped"),
            }
            if let Some(window) = &self.window {
                if window.poll(1)? == WindowEvent::Quit {
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// Decodes, shows and records one frame. Raw frames are shown from the read buffer itself.
    fn present(&mut self, header: &FrameHeader, data: &[u8]) -> Result<()> {
        let Display {
            window,
            recorder,
            picture,
            ..
        } = self;
        match header.codec {
            Codec::Jpeg => {
                video::decode_jpeg(data, header.width, header.height, picture)
                    .with_context(|| format!("frame {}", header.seq))?;
                output(window.as_ref(), recorder.as_mut(), picture)
            }
            Codec::Raw if window.is_none() && recorder.is_none() => Ok(()),
            Codec::Raw => {
                let view = video::bgr_view(header.width, header.height, data)?;
                output(window.as_ref(), recorder.as_mut(), &view)
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
