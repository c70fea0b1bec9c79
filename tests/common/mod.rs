//! Helpers shared by the integration tests: an in-process sender on 127.0.0.1:0 and a minimal
//! hand-written viewer that checks every byte it is sent; [`Program`], a real binary started with
//! its log collected.

mod program;
pub mod webdriver;

use camstream::config::SourceSpec;
use camstream::media::capture::{Capture, Next, Opener};
use camstream::media::codec::check_frame;
use camstream::media::pattern::TestPattern;
use camstream::media::recorder::Recorder;
use camstream::media::source::Source;
use camstream::media::Picture;
use camstream::receiver::ReceiverConfig;
use camstream::sender::{self, SenderConfig};
use camstream::stats::SenderReport;
use camstream::wire::secure::PairingMode;

use camstream::wire::handshake::greet_sender;
use camstream::wire::protocol::{self, Codec, FrameHeader, Message, StreamHello};
use camstream::wire::session::{FrameReader, SenderSession};
use camstream::Stop;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

pub use program::{command, spawn_sender, started_sender, Program, RECEIVER, SENDER};

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
        quality: Some(90),
        fps: None,
        frames: None,
        looping: false,
        allow: None,
        max_viewers: sender::DEFAULT_MAX_VIEWERS.into(),
        viewer_timeout: Duration::from_secs(sender::DEFAULT_VIEWER_TIMEOUT),
        preview: false,
        // The hand-written TestViewer speaks in the clear; tests/secure.rs pairs.
        pairing: PairingMode::Insecure,
        keyframe_interval: sender::DEFAULT_KEYFRAME_INTERVAL,
        encoder: Default::default(),
        bitrate: camstream::config::Bitrate::Auto,
        // A new certificate each start, kept nowhere.
        tls: camstream::sender::certificate::TlsSource::SelfSigned { folder: None },
        publish: Vec::new(),
        congestion_control: None,
        size: None,
        camera_format: Default::default(),
    }
}

/// A sender of ten raw 160x120 frames of the test pattern, which then ends its stream.
pub fn ten_raw_frames() -> SenderConfig {
    SenderConfig {
        frames: Some(10),
        ..config("test:160x120", Codec::Raw)
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

pub fn paired() -> PairingMode {
    PairingMode::Code(TEST_CODE.to_owned())
}

pub fn start_sender(config: SenderConfig) -> RunningSender {
    start_sender_on(config, TcpListener::bind("127.0.0.1:0").unwrap())
}

pub fn start_sender_on(config: SenderConfig, listener: TcpListener) -> RunningSender {
    let input = Source::open(&config.source, &config.source_request()).unwrap();
    start_sender_with(config, input, listener)
}

pub fn start_sender_with(
    config: SenderConfig,
    input: Source,
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

/// A viewer that checks every byte it is sent and acks only when told to: the library's own
/// handshake and session, without the receiver's threads, window or reconnection.
pub struct TestViewer {
    stream: TcpStream,
    frames: FrameReader,
    session: SenderSession,
    pub hello: StreamHello,
    buf: Vec<u8>,
}

impl TestViewer {
    /// Connects and greets, in the clear.
    pub fn connect(addr: SocketAddr) -> Self {
        TestViewer::connect_with(addr, &PairingMode::Insecure)
    }

    /// Connects, greets, and pairs when given a code.
    pub fn connect_with(addr: SocketAddr, pairing: &PairingMode) -> Self {
        let mut session = greet_sender(TcpStream::connect(addr).unwrap(), pairing).unwrap();
        let (stream, frames) = session.frame_reader().unwrap();
        TestViewer {
            stream,
            frames,
            hello: session.hello,
            session,
            buf: Vec::new(),
        }
    }

    /// The next frame, checked against the hello; `None` at the end of the stream.
    pub fn frame(&mut self) -> Option<Received> {
        if !self.frames.read(&mut self.stream, &mut self.buf).unwrap() {
            return None;
        }
        match protocol::decode(&self.buf).unwrap() {
            Message::Frame(frame) => {
                check_frame(&self.hello, &frame).unwrap();
                Some(Received {
                    header: frame.header,
                    data: frame.data.to_vec(),
                })
            }
            other => panic!("unexpected {}", other.kind()),
        }
    }

    /// Tells the sender frame `seq` is done, as a receiver does after showing it.
    pub fn ack(&mut self, seq: u64) {
        self.session.ack(seq, false).unwrap();
    }

    /// Tells the sender frame `seq` did not decode, as a receiver does: a keyframe is wanted.
    pub fn ack_wanting_keyframe(&mut self, seq: u64) {
        self.session.ack(seq, true).unwrap();
    }

    /// Whether a frame arrives within `wait` (it is then read and dropped).
    pub fn frame_arrives_within(&mut self, wait: Duration) -> bool {
        self.stream.set_read_timeout(Some(wait)).unwrap();
        let arrived = self.frames.read(&mut self.stream, &mut self.buf).is_ok();
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
    TestPattern::new(width, height).render(seq, &mut out);
    out
}

/// Peak signal-to-noise ratio in dB between two pictures of the same size.
pub fn psnr(a: &[u8], b: &[u8]) -> f64 {
    assert_eq!(a.len(), b.len());
    camstream::media::psnr(a, b)
}

/// The address a started `sender` binary listens on, read from its "listening on" line.
pub fn listening_addr(sender: &Program) -> String {
    let line = sender.wait_for_line("sender: listening on ");
    line.strip_prefix("sender: listening on ")
        .expect("the line starts with it")
        .split(' ')
        .next()
        .unwrap()
        .to_owned()
}

/// The receiver's `--stats` lines (one per sender) on `stdout`.
pub fn stats_lines(stdout: &[u8]) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
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
    let hello = StreamHello::new(width, height, Codec::Raw, fps);
    let mut recorder = Recorder::create(path, &hello, fps).unwrap();
    for seq in 0..frames {
        let pixels = pattern_frame(width, height, seq);
        let header = FrameHeader {
            seq,
            capture_unix_us: 0,
            width,
            height,
            pixel_format: protocol::PixelFormat::Bgr8,
            codec: Codec::Raw,
            keyframe: true,
        };
        let picture = Picture::new(width, height, &pixels);
        recorder.write(&header, &pixels, Some(&picture)).unwrap();
    }
    assert_eq!(recorder.finish().unwrap(), frames);
}

pub fn source_frames(path: &std::path::Path) -> Vec<Vec<u8>> {
    let spec = SourceSpec::Location(path.to_string_lossy().into_owned());
    let mut source = Source::open(&spec, &Default::default()).unwrap();
    let mut frames = Vec::new();
    loop {
        let mut buf = Vec::new();
        if source.next_into(&mut buf, Duration::ZERO).unwrap() == Next::Ended {
            return frames;
        }
        frames.push(buf);
    }
}

/// A headless receiver of `frames` frames from `addr`, ending with its stream (`--once`).
pub fn receiver_config(addr: std::net::SocketAddr, frames: u64) -> ReceiverConfig {
    ReceiverConfig {
        connect: camstream::config::Connect::Sender(addr.to_string().parse().unwrap()),
        bind: None,
        window: false,
        window_at: None,
        frames: Some(frames),
        record: None,
        frame_log: None,
        once: true,
        pairing: PairingMode::Insecure,
    }
}

/// What a [`FakeCamera`] does when read.
pub const WORKING: u8 = 0;
/// Reads end and opening fails.
pub const UNPLUGGED: u8 = 1;
/// Reads block.
pub const FROZEN: u8 = 2;
/// Works, but opens at 320x240: a camera that comes back at another size.
pub const BIGGER: u8 = 3;

/// A camera that shows the test pattern (160x120, or 320x240 when opened [`BIGGER`], frames
/// numbered from 1), one frame every `interval`, and is unplugged or frozen on cue.
pub struct FakeCamera {
    pattern: TestPattern,
    seq: u64,
    interval: Duration,
    mode: Arc<AtomicU8>,
}

impl Capture for FakeCamera {
    fn name(&self) -> &str {
        "fake camera"
    }
    fn size(&self) -> (u32, u32) {
        (self.pattern.width(), self.pattern.height())
    }
    fn native_fps(&self) -> Option<f64> {
        Some(1.0 / self.interval.as_secs_f64())
    }
    fn read_into(&mut self, out: &mut Vec<u8>) -> anyhow::Result<bool> {
        std::thread::sleep(self.interval);
        while self.mode.load(Ordering::SeqCst) == FROZEN {
            std::thread::sleep(Duration::from_millis(5));
        }
        if self.mode.load(Ordering::SeqCst) == UNPLUGGED {
            return Ok(false);
        }
        self.seq += 1;
        self.pattern.render(self.seq, out);
        Ok(true)
    }
}

/// Opens a [`FakeCamera`] while the returned switch says [`WORKING`].
pub fn fake_camera(interval: Duration) -> (Opener, Arc<AtomicU8>) {
    let mode = Arc::new(AtomicU8::new(WORKING));
    let switch = Arc::clone(&mode);
    let opener: Opener = Box::new(move || {
        let (width, height) = match switch.load(Ordering::SeqCst) {
            WORKING => (160, 120),
            BIGGER => (320, 240),
            _ => anyhow::bail!("no such device"),
        };
        Ok(Box::new(FakeCamera {
            pattern: TestPattern::new(width, height),
            seq: 0,
            interval,
            mode: Arc::clone(&switch),
        }))
    });
    (opener, mode)
}

/// A port on 127.0.0.1 that nothing listens on now (the listener is closed again at once).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A tool a test needs is missing: under CI (`CI` set) the test fails with `message`; elsewhere
/// it says so and is skipped (the caller returns).
pub fn missing_tool(message: &str) {
    if std::env::var_os("CI").is_some() {
        panic!("{message}");
    }
    eprintln!("SKIPPED: {message}");
}

/// A real media server for the tests: Debian's nginx with its RTMP module, as a plain
/// foreground process on 127.0.0.1 from a config written here; killed when dropped. What is
/// published is also served as HLS, over HTTP on `http_port` (for the receiver's tests).
pub struct Nginx {
    pub port: u16,
    pub http_port: u16,
    dir: TempDir,
    program: Option<Program>,
}

impl Nginx {
    /// Starts it on a free port, or returns `None` (saying why) when it is not installed and
    /// the tests do not run under CI.
    pub fn start(name: &str) -> Option<Nginx> {
        const MODULE: &str = "/usr/lib/nginx/modules/ngx_rtmp_module.so";
        if !std::path::Path::new(MODULE).exists() {
            missing_tool(&format!(
                "the publishing tests need nginx and libnginx-mod-rtmp: no {MODULE} (scripts/setup.sh --test)"
            ));
            return None;
        }
        let mut nginx = Nginx {
            port: free_port(),
            http_port: free_port(),
            dir: TempDir::new(name),
            program: None,
        };
        nginx.restart();
        Some(nginx)
    }

    /// The URL of stream `name` in its `live` application.
    pub fn url(&self, name: &str) -> String {
        format!("rtmp://127.0.0.1:{}/live/{name}", self.port)
    }

    /// The URL of stream `name` as HLS.
    pub fn hls_url(&self, name: &str) -> String {
        format!("http://127.0.0.1:{}/hls/{name}.m3u8", self.http_port)
    }

    /// Kills it; a publisher then loses its server.
    pub fn stop(&mut self) {
        if let Some(program) = self.program.take() {
            program.kill();
        }
    }

    /// Starts it (again) on its port, and waits until it accepts connections.
    pub fn restart(&mut self) {
        self.stop();
        let dir = &self.dir.0;
        let config = format!(
            "load_module /usr/lib/nginx/modules/ngx_rtmp_module.so;\n\
             daemon off;\nmaster_process off;\nerror_log {0}/error.log;\npid {0}/nginx.pid;\n\
             events {{}}\n\
             rtmp {{ server {{ listen 127.0.0.1:{1}; application live {{ live on; \
                 hls on; hls_path {0}/hls; hls_fragment 1s; hls_playlist_length 4s; }} }} }}\n\
             http {{ access_log off; server {{ listen 127.0.0.1:{2}; location /hls {{ \
                 types {{ application/vnd.apple.mpegurl m3u8; video/mp2t ts; }} root {0}; }} }} }}\n",
            dir.display(),
            self.port,
            self.http_port
        );
        std::fs::write(dir.join("nginx.conf"), config).unwrap();
        let prefix = format!("{}/", dir.display());
        let conf = dir.join("nginx.conf");
        self.program = Some(Program::start(
            std::process::Command::new("nginx")
                .args(["-p", &prefix, "-c"])
                .arg(&conf)
                .args(["-e", &format!("{prefix}error.log")])
                .stdin(std::process::Stdio::null()),
        ));
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(std::time::Instant::now() < deadline, "nginx did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        self.stop();
    }
}

/// What `ffprobe` says of the first video stream at `url`: codec, width, height; `None` if it
/// found none within its timeout.
pub fn probe(url: &str) -> Option<(String, u32, u32)> {
    let output = std::process::Command::new("timeout")
        .args(["10", "ffprobe", "-v", "error", "-select_streams", "v:0"])
        .args([
            "-show_entries",
            "stream=codec_name,width,height",
            "-of",
            "csv=p=0",
        ])
        .arg(url)
        .output()
        .expect("ffprobe is installed (scripts/setup.sh --test)");
    let text = String::from_utf8_lossy(&output.stdout);
    // MPEG-TS lists its streams again under its programs: the first line is enough.
    let mut fields = text
        .lines()
        .find(|l| !l.trim().is_empty())?
        .trim()
        .split(',');
    let codec = fields.next()?.to_owned();
    let width = fields.next()?.parse().ok()?;
    let height = fields.next()?.parse().ok()?;
    Some((codec, width, height))
}
