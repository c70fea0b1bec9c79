//! `sender`: serves a camera, a video file or a test pattern to camstream receivers.

use anyhow::{Context, Result};
use camstream::config::{self, Bitrate, SourceSpec};
use camstream::media::camera;
use camstream::media::codec::EncoderChoice;
use camstream::media::source::Source;
use camstream::prompt::Prompter;
use camstream::sender::certificate::TlsSource;
use camstream::sender::{self, SenderConfig};
use camstream::wire::protocol::Codec;
use camstream::wire::secure;
use camstream::wire::secure::PairingMode;
use camstream::{cli, error_line, service};
use clap::Parser;
use std::io::IsTerminal;
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::process::ExitCode;
use std::time::Duration;

/// Stream a camera, a video file or a test pattern to camstream receivers over TCP.
///
/// Without --listen it asks for the address to listen on and the receiver allowed to connect
/// (from the terminal, or line by line from piped standard input).
#[derive(Parser, Debug)]
#[command(name = "sender", version)]
struct Args {
    /// Address to listen on, IP:PORT (0.0.0.0 = every interface; port 0 picks a free one)
    #[arg(long, value_name = "IP:PORT", value_parser = config::parse_listen)]
    listen: Option<SocketAddr>,
    /// Only this receiver IP may connect; others are refused with a log line [default: anyone]
    #[arg(long, value_name = "IP", value_parser = config::parse_ip)]
    allow: Option<IpAddr>,
    /// Camera index or device (`/dev/video0`, `/dev/v4l/by-id/...`), `gst:PIPELINE` (or any
    /// source with ` ! `), `test` / `test:WIDTHxHEIGHT` for a moving test pattern, or a video
    /// file or URL
    #[arg(long, default_value = "0")]
    source: SourceSpec,
    /// Picture size, WIDTHxHEIGHT: asked of a camera (what it gave is logged); other sources
    /// are scaled to it
    #[arg(long, value_name = "WIDTHxHEIGHT", value_parser = config::parse_size)]
    size: Option<(u32, u32)>,
    /// What a camera sends: `mjpeg` (full rate at large sizes on USB), `yuyv`, or `auto`
    /// (MJPEG above 640x480)
    #[arg(long, value_name = "auto|mjpeg|yuyv", default_value = "auto")]
    camera_format: config::CameraFormat,
    /// List the cameras here (each V4L2 device's formats, sizes and rates) and exit
    #[arg(long)]
    list_cameras: bool,
    /// `jpeg` (compressed once per frame), `h264` (a fraction of JPEG's bytes, for thin links)
    /// or `raw` (BGR pixels, lossless, large)
    #[arg(long, default_value = "jpeg", value_parser = config::parse_codec)]
    codec: Codec,
    /// JPEG quality, 1-100 [default: 80]. A source that gives JPEG (an MJPEG camera, file or
    /// pipeline) is passed on as it came unless this is given
    #[arg(long, value_parser = config::parse_quality)]
    quality: Option<u8>,
    /// H.264: seconds between keyframes (a viewer that joins or falls behind gets one sooner)
    #[arg(long, value_name = "SECONDS", default_value_t = sender::DEFAULT_KEYFRAME_INTERVAL,
          value_parser = config::parse_keyframe_interval)]
    keyframe_interval: f64,
    /// H.264: kilobits per second, or `auto`: fitted to what the receivers can take, starting
    /// from a rate that fits the picture (2500 for 1280x720)
    #[arg(long, value_name = "KBIT|auto", default_value = "auto", value_parser = config::parse_bitrate)]
    bitrate: Bitrate,
    /// H.264 encoder: `auto` (a hardware encoder FFmpeg has and finds a device for, else
    /// libx264), `libx264`, or an FFmpeg encoder: h264_v4l2m2m (Raspberry Pi 4), h264_vaapi,
    /// h264_nvenc, h264_qsv
    #[arg(long, value_name = "auto|libx264|NAME", default_value = "auto")]
    encoder: EncoderChoice,
    /// TCP congestion control for viewers' connections, e.g. bbr (steadier across lossy
    /// internet paths than cubic; see the README's "On the internet") [default: the system's]
    #[arg(long, value_name = "NAME")]
    tcp_congestion: Option<String>,
    /// Frames per second to send; 0 = as fast as possible [default: the file's own rate, 30 for
    /// the test pattern, the camera's pace]
    #[arg(long, value_parser = config::parse_fps)]
    fps: Option<f64>,
    /// Play a video file again from the start each time it ends, forever
    #[arg(long = "loop")]
    looping: bool,
    /// End the stream after N frames have gone out to receivers
    #[arg(long, value_name = "N")]
    frames: Option<u64>,
    /// Viewers served at once (receivers and browsers); a receiver beyond it is told the sender
    /// is full, and waits
    #[arg(long, value_name = "N", default_value_t = sender::DEFAULT_MAX_VIEWERS,
          value_parser = clap::value_parser!(u16).range(1..))]
    max_viewers: u16,
    /// Drop a viewer that has taken nothing (no ack, no bytes) for this many seconds, giving its
    /// seat back; its receiver reconnects when it wakes
    #[arg(long, value_name = "SECONDS", default_value_t = sender::DEFAULT_VIEWER_TIMEOUT,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    viewer_timeout: u64,
    /// Do not open the preview window (quit with q + Enter or Ctrl-C)
    #[arg(long)]
    no_preview: bool,
    #[command(flatten)]
    pairing: cli::PairingArgs,
    /// The web page's TLS certificate (PEM, with its chain) [default: a self-signed one, made
    /// at the first start and kept in ~/.config/camstream]
    #[arg(long, value_name = "PATH", requires = "tls_key")]
    tls_cert: Option<std::path::PathBuf>,
    /// The private key of --tls-cert (PEM)
    #[arg(long, value_name = "PATH", requires = "tls_cert")]
    tls_key: Option<std::path::PathBuf>,
    /// Also publish the stream (H.264) to a media server: rtmp://HOST/APP/KEY (nginx-rtmp,
    /// MediaMTX, a CDN's ingest), rtsp://HOST:PORT/PATH or srt://HOST:PORT; repeatable
    #[arg(long, value_name = "URL")]
    publish: Vec<config::PublishTarget>,
    /// Do not print the page's link as a QR code
    #[arg(long)]
    no_qr: bool,
    /// Print one JSON line of statistics to stdout at the end
    #[arg(long)]
    stats: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    cli::init_logging("sender");
    let result = run(args);
    camstream::media::report_library_problems();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sender: error: {}", error_line(&e));
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<()> {
    if args.list_cameras {
        print!("{}", camera::describe_all(&camera::list()));
        return Ok(());
    }
    let (listen, allow) = match args.listen {
        Some(listen) => (listen, args.allow),
        None => ask_address(args.allow)?,
    };
    let (preview, stop) = cli::start(!args.no_preview, "a preview window")?;
    let pairing = match args.pairing.given()? {
        Some(pairing) => pairing,
        None => PairingMode::Code(secure::new_code()?),
    };
    let tls = match (args.tls_cert, args.tls_key) {
        (Some(certificate), Some(key)) => TlsSource::Files { certificate, key },
        _ => TlsSource::SelfSigned {
            folder: TlsSource::default_folder(),
        },
    };
    let config = SenderConfig {
        source: args.source,
        codec: args.codec,
        quality: args.quality,
        fps: args.fps,
        size: args.size,
        camera_format: args.camera_format,
        frames: args.frames,
        looping: args.looping,
        allow,
        max_viewers: usize::from(args.max_viewers),
        viewer_timeout: Duration::from_secs(args.viewer_timeout),
        preview,
        pairing,
        keyframe_interval: args.keyframe_interval,
        encoder: args.encoder.clone(),
        bitrate: args.bitrate,
        tls,
        publish: args.publish,
        congestion_control: args.tcp_congestion,
    };
    // A camera that cannot be opened says so before any address is printed.
    let source = Source::open(&config.source, &config.source_request())?;
    sender::check_encoder(&config, &source)?;
    let listener = TcpListener::bind(listen).with_context(|| format!("listening on {listen}"))?;
    // A code read from a file stays out of the log: a service's log (the journal) has more
    // readers than the file.
    let code_file = args.pairing.code_file.as_deref();
    log::info!(
        "listening on {}{} ({})",
        listener.local_addr()?,
        allow.map_or(String::new(), |ip| format!(" for {ip} only")),
        match (&config.pairing, code_file) {
            (PairingMode::Code(_), Some(file)) => format!("pairing code in {}", file.display()),
            (PairingMode::Code(code), None) => format!("pairing code {code}"),
            (PairingMode::Insecure, _) =>
                "NOT encrypted, --insecure: anyone who can reach it can watch".into(),
        }
    );
    // Not the code: `systemctl status` shows the status line to every local user.
    let ready = format!("READY=1\nSTATUS=listening on {}", listener.local_addr()?);
    if let Err(e) = service::notify(&ready) {
        log::warn!("{}", error_line(&e));
    }
    let link = cli::page_link(listener.local_addr()?, &config.pairing, code_file.is_none());
    log::info!("watch in a browser: {link}");
    if !args.no_qr && std::io::stderr().is_terminal() {
        match cli::qr_code(&link) {
            Ok(qr) => eprintln!("{qr}"),
            Err(e) => log::warn!("drawing the link as a QR code: {e}"),
        }
    }
    let report = sender::serve(&config, source, listener, &stop)?;
    if args.stats {
        println!("{}", serde_json::to_string(&report)?);
    }
    Ok(())
}

/// The questions the tutorial asked, one line each, with defaults in brackets.
fn ask_address(allow: Option<IpAddr>) -> Result<(SocketAddr, Option<IpAddr>)> {
    let mut prompter = Prompter::new(std::io::stdin().lock(), std::io::stderr());
    let ip = prompter.ask(
        "IP to listen on",
        "0.0.0.0",
        "0.0.0.0",
        "--listen",
        config::parse_ip,
    )?;
    let port = prompter.ask("port", "9999", "9999", "--listen", config::parse_port)?;
    let allow = match allow {
        Some(ip) => Some(ip),
        None => prompter.ask(
            "receiver IP allowed to connect",
            "",
            "anyone",
            "--allow",
            |text| match text {
                "" => Ok(None),
                ip => config::parse_ip(ip).map(Some),
            },
        )?,
    };
    Ok((SocketAddr::new(ip, port), allow))
}
