//! Helpers shared by the integration tests: an in-process sender on 127.0.0.1:0 and a minimal
//! hand-written viewer that checks every byte it is sent; [`Program`], a real binary started with
//! its log collected.

mod program;

use camstream::config::{Pairing, SourceSpec};
use camstream::connection::{MessageReader, MessageWriter};
use camstream::protocol::{self, Codec, FrameHeader, Message, StreamHello, ViewerHello};
use camstream::receiver::ReceiverConfig;
use camstream::secure::{self, Channel, FrameOpener};
use camstream::sender::{self, SenderConfig};
use camstream::stats::SenderReport;
use camstream::Stop;
use std::cell::RefCell;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread::JoinHandle;

pub use program::Program;

pub struct RunningSender {
    pub addr: SocketAddr,
    pub stop: Stop,
    handle: Option<JoinHandle<anyhow::Result<SenderReport>>>,
}

impl RunningSender {
    /// Stops the sender and returns its report.
    pub fn finish(self) -> SenderReport {
        self.stop.raise();
        self.join()
    }

    /// Waits for the sender to end by itself.
    pub fn join(mut self) -> SenderReport {
        let handle = self.handle.take().unwrap();
        handle.join().unwrap().unwrap()
    }
}

/// A failing test must not leave a sender thread inside OpenCV while the process exits.
impl Drop for RunningSender {
    fn drop(&mut self) {
        self.stop.raise();
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

pub fn config(source: &str, codec: Codec) -> SenderConfig {
    SenderConfig {
        source: source.parse().unwrap(),
        codec,
        quality: 90,
        fps: None,
        frames: None,
        looping: false,
        allow: None,
        max_viewers: sender::DEFAULT_MAX_VIEWERS.into(),
        preview: false,
        // The hand-written TestViewer speaks in the clear; tests/secure.rs pairs.
        pairing: Pairing::Insecure,
    }
}

/// The pairing code the paired tests use.
pub const TEST_CODE: &str = "7-crossover-clockwork";
/// A headless test-pattern sender binary on a free port, paired with [`TEST_CODE`].
pub const TEST_SENDER_ARGS: [&str; 7] = [
    "--listen",
    "127.0.0.1:0",
    "--source",
    "test:160x120",
    "--no-preview",
    "--code",
    TEST_CODE,
];

pub fn paired() -> Pairing {
    Pairing::Code(TEST_CODE.to_owned())
}

pub fn start_sender(config: SenderConfig) -> RunningSender {
    start_sender_on(config, TcpListener::bind("127.0.0.1:0").unwrap())
}

pub fn start_sender_on(config: SenderConfig, listener: TcpListener) -> RunningSender {
    let input = sender::Input::open(&config.source).unwrap();
    start_sender_with(config, input, listener)
}

pub fn start_sender_with(
    config: SenderConfig,
    input: sender::Input,
    listener: TcpListener,
) -> RunningSender {
    let addr = listener.local_addr().unwrap();
    let stop = Stop::default();
    let handle = {
        let stop = stop.clone();
        std::thread::spawn(move || sender::serve(&config, input, listener, &stop))
    };
    RunningSender {
        addr,
        stop,
        handle: Some(handle),
    }
}

/// A frame as a test viewer received it.
pub struct Received {
    pub header: FrameHeader,
    pub data: Vec<u8>,
}

/// A hand-written viewer that checks every byte it is sent and acks only when told to.
pub struct TestViewer {
    stream: TcpStream,
    reader: MessageReader<TcpStream>,
    pub hello: StreamHello,
    /// When paired: what frames are opened and acks sealed with.
    keys: Option<(FrameOpener, RefCell<Channel>)>,
    opened: Vec<u8>,
}

impl TestViewer {
    /// Connects and greets, in the clear.
    pub fn connect(addr: SocketAddr) -> Self {
        TestViewer::connect_with(addr, &Pairing::Insecure)
    }

    /// Connects, greets, and pairs when given a code: the handshake written out step by step.
    pub fn connect_with(addr: SocketAddr, pairing: &Pairing) -> Self {
        let stream = TcpStream::connect(addr).unwrap();
        let mut writer = MessageWriter::new(&stream);
        writer
            .write_message(&Message::ViewerHello(ViewerHello::new(pairing.security())))
            .unwrap();
        let mut reader = MessageReader::new(stream.try_clone().unwrap());
        let hello_payload = reader
            .read_payload(protocol::MAX_HELLO_LEN)
            .unwrap()
            .unwrap()
            .to_vec();
        let hello = protocol::decode_stream_hello(&hello_payload).unwrap();
        let keys = match pairing {
            Pairing::Insecure => None,
            Pairing::Code(code) => {
                let (pairing, ours) = secure::Pairing::start(code);
                writer
                    .write_message(&Message::Pake(protocol::Pake { message: &ours }))
                    .unwrap();
                let theirs = reader
                    .read_payload(protocol::MAX_HELLO_LEN)
                    .unwrap()
                    .unwrap();
                let mut session = pairing
                    .finish(protocol::decode_pake(theirs).unwrap(), &hello_payload)
                    .unwrap();
                writer
                    .write_sealed(&Message::Paired, &mut session.to_sender)
                    .unwrap();
                let sealed = reader
                    .read_sealed(protocol::MAX_HELLO_LEN, &mut session.to_receiver)
                    .unwrap()
                    .unwrap();
                let key = protocol::decode_frame_key(sealed).unwrap();
                Some((FrameOpener::new(&key.key), RefCell::new(session.to_sender)))
            }
        };
        TestViewer {
            stream,
            reader,
            hello,
            keys,
            opened: Vec::new(),
        }
    }

    /// The next frame, checked against the hello; `None` at the end of the stream.
    pub fn frame(&mut self) -> Option<Received> {
        let max_len = self.hello.max_message_len() + secure::FRAME_OVERHEAD;
        let payload = self.reader.read_payload(max_len).unwrap()?;
        let message = match self.keys.as_mut() {
            None => protocol::decode(payload),
            Some((opener, _)) => {
                self.opened.clear();
                self.opened.extend_from_slice(payload);
                let plain = opener.open(&mut self.opened).unwrap();
                protocol::decode(&self.opened[plain])
            }
        };
        match Some(message.unwrap()) {
            Some(Message::Frame(frame)) => {
                self.hello.check_frame(&frame).unwrap();
                Some(Received {
                    header: frame.header,
                    data: frame.data.to_vec(),
                })
            }
            Some(other) => panic!("unexpected {}", other.kind()),
            None => None,
        }
    }

    /// Tells the sender frame `seq` is done, as a receiver does after showing it.
    pub fn ack(&self, seq: u64) {
        let ack = Message::Ack(protocol::Ack { seq });
        let mut writer = MessageWriter::new(&self.stream);
        match &self.keys {
            Some((_, channel)) => writer.write_sealed(&ack, &mut channel.borrow_mut()),
            None => writer.write_message(&ack),
        }
        .unwrap();
    }

    /// Whether a frame arrives within `wait` (it is then read and dropped).
    pub fn frame_arrives_within(&mut self, wait: std::time::Duration) -> bool {
        self.stream.set_read_timeout(Some(wait)).unwrap();
        let arrived = self
            .reader
            .read_message(self.hello.max_message_len())
            .is_ok();
        self.stream.set_read_timeout(None).unwrap();
        arrived
    }
}

/// Connects, greets, and reads (and acks) up to `limit` frames or to the end of the stream.
/// Returns the hello, the frames, and whether the stream ended cleanly.
pub fn watch(addr: SocketAddr, limit: usize) -> (StreamHello, Vec<Received>, bool) {
    let mut viewer = TestViewer::connect(addr);
    let mut frames = Vec::new();
    while frames.len() < limit {
        let Some(frame) = viewer.frame() else {
            return (viewer.hello, frames, true);
        };
        viewer.ack(frame.header.seq);
        frames.push(frame);
    }
    (viewer.hello, frames, false)
}

/// The test pattern's frame `seq`, as the sender made it.
pub fn pattern_frame(width: u32, height: u32, seq: u64) -> Vec<u8> {
    let mut out = Vec::new();
    camstream::pattern::TestPattern::new(width, height).render(seq, &mut out);
    out
}

/// Peak signal-to-noise ratio in dB between two pictures of the same size.
pub fn psnr(a: &[u8], b: &[u8]) -> f64 {
    assert_eq!(a.len(), b.len());
    let mse = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2))
        .sum::<f64>()
        / a.len() as f64;
    if mse == 0.0 {
        f64::INFINITY
    } else {
        10.0 * (255.0f64 * 255.0 / mse).log10()
    }
}

/// A temporary directory removed at the end of the test.
pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    pub fn new(name: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("camstream-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Writes `frames` frames of the test pattern to a lossless `.mkv` at `fps`.
pub fn write_pattern_video(path: &std::path::Path, width: u32, height: u32, frames: u64, fps: f64) {
    let mut recorder = camstream::video::Recorder::create(path, width, height, fps).unwrap();
    for seq in 0..frames {
        let pixels = pattern_frame(width, height, seq);
        recorder
            .write(&camstream::video::bgr_view(width, height, &pixels).unwrap())
            .unwrap();
    }
    assert_eq!(recorder.finish().unwrap(), frames);
}

pub fn source_frames(path: &std::path::Path) -> Vec<Vec<u8>> {
    let spec = SourceSpec::Location(path.to_string_lossy().into_owned());
    let mut source = camstream::video::Source::open(&spec).unwrap();
    let mut frames = Vec::new();
    loop {
        let mut buf = Vec::new();
        if !source.read_into(frames.len() as u64, &mut buf).unwrap() {
            return frames;
        }
        frames.push(buf);
    }
}

/// A headless receiver of `frames` frames from `addr`, ending with its stream (`--once`).
pub fn receiver_config(addr: std::net::SocketAddr, frames: u64) -> ReceiverConfig {
    ReceiverConfig {
        connect: addr.to_string().parse().unwrap(),
        bind: None,
        window: false,
        frames: Some(frames),
        record: None,
        frame_log: None,
        once: true,
        pairing: Pairing::Insecure,
    }
}
