//! The receiver's side of the network: connecting (from `--bind`, with a time limit), the
//! handshake, and the thread that reads frame messages into a small ring of reused buffers.

use super::ReceiverConfig;
use crate::config::Endpoint;
use crate::wire::connection::{is_timeout, AppendRead};
use crate::wire::handshake::greet_sender;
use crate::wire::session::{FrameReader, SenderSession};
use anyhow::{anyhow, Context, Result};
use crossbeam_channel::{Receiver, Sender};
use socket2::{Domain, Socket, Type};
use std::io::Read;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant, SystemTime};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The socket wakes the network thread only when this much of a message has arrived (or all of
/// the rest of it, when less is left): a 1080p raw frame then costs a few wake-ups instead of
/// dozens. Measured on loopback (raw 1920x1080): unset 586 fps, 256 KiB 921, 1 MiB 1011,
/// 4 MiB 639.
const RECV_LOW_WATER: usize = 1 << 20;
/// Messages shorter than this are read as their bytes come, with no low-water mark: on a link
/// that loses packets a mark the kernel waits for also holds back the ACKs the sender needs to
/// recover (seen: 5 s stalls on a 1.5 Mbit/s link, H.264 and JPEG alike; 0.6 s at most
/// without), and compressed frames are small enough that the wake-ups cost nothing.
const LOW_WATER_FROM: usize = 256 << 10;
/// A connection that carries nothing for this long (or three frame intervals, if longer) is
/// dead: a live sender sends frames, or "no signal" frames, far more often.
const SILENCE_LIMIT: Duration = Duration::from_secs(5);

/// A connection to a sender that has said hello (and, when paired, proved it holds the code).
pub struct Greeted {
    pub session: SenderSession,
    /// From connecting to the end of the handshake (and pairing).
    pub took: Duration,
}

/// What the network thread hands over.
pub enum Incoming {
    /// A frame message as it arrived (opened, when paired), not yet decoded or checked (that is
    /// the display thread's work, so that it overlaps reading the next).
    Frame {
        buf: Vec<u8>,
        arrived: SystemTime,
    },
    /// The sender ended the stream cleanly.
    End,
    Failed(anyhow::Error),
}

pub fn connect_and_greet(config: &ReceiverConfig, endpoint: &Endpoint) -> Result<Greeted> {
    let started = Instant::now();
    let stream = connect(endpoint, config.bind)?;
    let session = greet_sender(stream, &config.pairing)
        .with_context(|| format!("greeting sender {endpoint}"))?;
    Ok(Greeted {
        session,
        took: started.elapsed(),
    })
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

    /// Sets the mark for a read of `len` bytes.
    fn mark_for(&mut self, len: usize) -> std::io::Result<()> {
        let mark = match len {
            len if len >= LOW_WATER_FROM => len.min(RECV_LOW_WATER),
            _ => 1,
        };
        if mark != self.mark {
            crate::net::set_receive_low_water(&self.stream, mark)?;
            self.mark = mark;
        }
        Ok(())
    }
}

impl Read for LowWaterReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.mark_for(buf.len())?;
        self.stream.read(buf)
    }
}

impl AppendRead for LowWaterReader {
    fn read_appending(&mut self, buf: &mut Vec<u8>, max: usize) -> std::io::Result<usize> {
        self.mark_for(max)?;
        self.stream.read_appending(buf, max)
    }
}

/// The network thread: reads frame messages, hands them over, gets the buffers back. A stream
/// silent for longer than its frame rate allows is given up.
pub fn read_frames(
    stream: TcpStream,
    mut reader: FrameReader,
    fps: f64,
    frames: &Sender<Incoming>,
    free: &Receiver<Vec<u8>>,
) {
    let silence = match fps {
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
        let incoming = match reader.read(&mut stream, &mut buf) {
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
