//! `receiver`: connects to a camstream sender and shows its video.

use anyhow::{bail, Result};
use camstream::config::{self, Connect, Endpoint};
use camstream::prompt::Prompter;
use camstream::receiver::{self, GridView, ReceiverConfig};
use camstream::stats::ReceiverStats;
use camstream::wire::handshake::refusal;
use camstream::wire::protocol::RefusalReason;
use camstream::wire::secure;
use camstream::wire::secure::PairingMode;
use camstream::{cli, error_line, Hub, HubSender, Receiver};
use clap::Parser;
use std::io::{BufRead, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Show the video of a camstream sender in a window (or just receive it, with --headless), or
/// play a stream that a media server or IP camera serves.
///
/// Without --connect it asks for the sender's IP and port (from the terminal, or line by line
/// from piped standard input).
#[derive(Parser, Debug)]
#[command(name = "receiver", version)]
struct Args {
    /// The sender's address, HOST:PORT; or a stream's URL: rtmp://, rtsp://, srt://, http(s)://
    /// (MJPEG or HLS .m3u8), which needs no pairing code. Given again for more senders, they
    /// are shown together as a grid, each reconnected on its own
    #[arg(long, value_name = "HOST:PORT|URL")]
    connect: Vec<Connect>,
    /// Local address to connect from, IP[:PORT]
    #[arg(long, value_name = "IP[:PORT]", value_parser = config::parse_bind)]
    bind: Option<SocketAddr>,
    /// No window: receive and decode only (quit with q + Enter or Ctrl-C)
    #[arg(long)]
    headless: bool,
    /// Place the window's top-left corner at X,Y on the screen (beside the sender's preview)
    #[arg(long, value_name = "X,Y", value_parser = config::parse_position)]
    window_at: Option<(i32, i32)>,
    /// Exit after showing N frames (with several senders: N of each)
    #[arg(long, value_name = "N")]
    frames: Option<u64>,
    /// Record what arrives to a video file: .mkv (lossless FFV1), .avi (MJPG) or .mp4 (mp4v);
    /// JPEG and H.264 as they came. Several senders: one file each, numbered (cams-1.mkv, ...)
    #[arg(long, value_name = "PATH")]
    record: Option<PathBuf>,
    /// Write one CSV line per frame shown (seq, capture/arrival/display time, latency, bytes)
    #[arg(long, value_name = "PATH")]
    frame_log: Option<PathBuf>,
    /// Exit when the stream ends or breaks, instead of waiting for the sender to come back
    #[arg(long)]
    once: bool,
    #[command(flatten)]
    pairing: cli::PairingArgs,
    /// Print one JSON line of statistics to stdout at the end (with several senders, one line
    /// each, with its address)
    #[arg(long)]
    stats: bool,
}

fn main() -> ExitCode {
    let args = Args::parse();
    cli::init_logging("receiver");
    let mut stats = ReceiverStats::default();
    let mut senders = Vec::new();
    let result = match args.connect.len() {
        0 | 1 => run(&args, &mut stats),
        _ => run_grid(&args, &mut senders),
    };
    camstream::media::report_library_problems();
    if args.stats {
        let lines = match args.connect.len() {
            0 | 1 => vec![serde_json::to_string(&stats.report())],
            _ => senders.iter().map(serde_json::to_string).collect(),
        };
        for line in lines {
            match line {
                Ok(line) => println!("{line}"),
                Err(e) => eprintln!("receiver: error: writing stats: {e}"),
            }
        }
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("receiver: error: {}", error_line(&e));
            ExitCode::FAILURE
        }
    }
}

/// Times in all a code typed at the prompt is tried before the receiver gives up.
const CODE_TRIES: u32 = 3;

/// Waited beyond a lockout before trying again, as the sender's clock for it starts a little
/// after ours.
const LOCKOUT_MARGIN: Duration = Duration::from_millis(200);

fn run(args: &Args, stats: &mut ReceiverStats) -> Result<()> {
    // The prompter (and its lock on standard input) is gone before `q` + Enter is listened for.
    let mut prompter = Prompter::new(std::io::stdin().lock(), std::io::stderr());
    let given = args.pairing.given()?;
    let flags_decided = given.is_some();
    let (connect, pairing) = ask_missing(args, given, &mut prompter)?;
    let typed = !flags_decided && matches!(pairing, PairingMode::Code(_));
    let mut config = ReceiverConfig {
        connect,
        bind: args.bind,
        window: false,
        window_at: args.window_at,
        frames: args.frames,
        record: args.record.clone(),
        frame_log: args.frame_log.clone(),
        once: args.once,
        pairing,
    };
    let first = match (typed, &config.connect) {
        (true, Connect::Sender(endpoint)) => {
            let endpoint = endpoint.clone();
            pair_typed(&mut config, &endpoint, "", &mut prompter)?
        }
        _ => None,
    };
    drop(prompter);
    let (window, stop) = cli::start(!args.headless, "a window")?;
    config.window = window;
    receiver::run_from(&config, first, &stop, stats)
}

/// Several senders as one grid: each paired in turn (its code asked for when no flag gave it),
/// then shown together until the user quits. `senders` says how each went.
fn run_grid(args: &Args, senders: &mut Vec<HubSender>) -> Result<()> {
    if args.frame_log.is_some() {
        bail!("--frame-log logs one sender: give one --connect with it");
    }
    if let Some(local) = args.bind.filter(|local| local.port() != 0) {
        bail!(
            "--bind {local}: several senders cannot be connected from one port; give the IP alone"
        );
    }
    let mut prompter = Prompter::new(std::io::stdin().lock(), std::io::stderr());
    let pairings = args.pairing.given_for(args.connect.len())?;
    // Every missing code first: a sender paired while the next code is typed would wait
    // unread, and drop us as stalled.
    let mut wanted = Vec::new();
    for (index, (connect, given)) in args.connect.iter().zip(pairings).enumerate() {
        let Connect::Sender(endpoint) = connect else {
            bail!("{connect}: a grid shows camstream senders; play a URL with one --connect");
        };
        let pairing = match given.clone() {
            Some(pairing) => pairing,
            None => PairingMode::Code(ask_code(&mut prompter, &format!(" {endpoint}"))?),
        };
        let config = ReceiverConfig {
            connect: connect.clone(),
            bind: args.bind,
            window: false,
            window_at: None,
            frames: None,
            record: (args.record.as_deref()).map(|path| receiver::numbered(path, index)),
            frame_log: None,
            once: args.once,
            pairing,
        };
        wanted.push((endpoint.clone(), given.is_none(), config));
    }
    // The window is up before any sender is connected, and each is read from as soon as it
    // is: a sender left unread (while the window opens, or the next code is tried) drops
    // frames, and after 10 s drops us as stalled.
    let view = GridView {
        window: cli::window_available(!args.headless, "a window"),
        window_at: args.window_at,
        frames: args.frames,
    };
    let names = wanted.iter().map(|(endpoint, ..)| endpoint.to_string());
    let grid = receiver::Grid::open(names.collect(), &view)?;
    let mut hub = Hub::new();
    for (endpoint, typed, config) in wanted {
        match connect_for_grid(config, &endpoint, typed, &mut prompter) {
            Ok(receiver) => hub.add_receiver(receiver),
            Err(e) => {
                *senders = hub.close();
                return Err(e);
            }
        };
    }
    drop(prompter);
    let stop = cli::stop_on_user(view.window)?;
    grid.run(hub, &stop, senders)
}

/// One sender of a grid, paired (a code typed at the prompt asked again if wrong); one that
/// refuses us for now (full, a lockout) is waited for in its tile, unless --once.
fn connect_for_grid(
    mut config: ReceiverConfig,
    endpoint: &Endpoint,
    typed: bool,
    prompter: &mut Prompter<impl BufRead, impl Write>,
) -> Result<Receiver> {
    let of = format!(" {endpoint}");
    let first = match typed {
        true => pair_typed(&mut config, endpoint, &of, prompter)?,
        false => match receiver::connect(&config, endpoint) {
            Ok(connection) => Some(connection),
            Err(e) if refusal(&e).is_some() => None,
            Err(e) => return Err(e),
        },
    };
    if let Some(path) = &config.record {
        log::info!("recording {endpoint} to {}", path.display());
    }
    match first {
        Some(connection) => Receiver::from_connection(config, connection),
        // With --once the refusal is the error: asked once more, to say why.
        None if config.once => {
            let connection = receiver::connect(&config, endpoint)?;
            Receiver::from_connection(config, connection)
        }
        None => {
            log::warn!("{endpoint} refused us for now; its tile waits for it");
            Receiver::waiting(config, "the sender refused us for now".into())
        }
    }
}

/// Asks for what no flag gave: the sender's address, then its pairing code (a URL has none:
/// `--code` and `--insecure` are ignored for one).
fn ask_missing(
    args: &Args,
    given: Option<PairingMode>,
    prompter: &mut Prompter<impl BufRead, impl Write>,
) -> Result<(Connect, PairingMode)> {
    let connect = match args.connect.first() {
        Some(connect) => connect.clone(),
        None => Connect::Sender(ask_sender(prompter)?),
    };
    let pairing = match (given, &connect) {
        (Some(pairing), Connect::Sender(_)) => pairing,
        (given, Connect::Url(url)) => {
            if given.is_some() {
                log::info!(
                    "{url} is not a camstream sender: --code and --insecure do not apply to it"
                );
            }
            PairingMode::Insecure
        }
        (None, Connect::Sender(_)) => PairingMode::Code(ask_code(prompter, "")?),
    };
    Ok((connect, pairing))
}

/// Asks for the code shown by the sender (`of`: which one, when there are several).
fn ask_code(prompter: &mut Prompter<impl BufRead, impl Write>, of: &str) -> Result<String> {
    prompter.ask(
        &format!("pairing code shown by the sender{of}"),
        "",
        "required",
        "--code",
        config::parse_code,
    )
}

/// Pairs with the code the user typed, asking again when it does not match (a typo should not
/// mean starting over), up to [`CODE_TRIES`] times in all, each after the sender's lockout for
/// the wrong codes so far (`of` says which sender, when there are several). Returns the paired
/// connection, or `None` when the sender refused us for now: the caller waits for it (or, with
/// `--once`, fails) as for any code.
fn pair_typed(
    config: &mut ReceiverConfig,
    endpoint: &Endpoint,
    of: &str,
    prompter: &mut Prompter<impl BufRead, impl Write>,
) -> Result<Option<receiver::Greeted>> {
    let mut wrong = 0;
    let mut waited_out_lockout = false;
    loop {
        match receiver::connect(config, endpoint) {
            Ok(greeted) => return Ok(Some(greeted)),
            Err(e) if secure::is_code_mismatch(&e) && wrong + 1 < CODE_TRIES => {
                let failed = Instant::now();
                wrong += 1;
                let wait = secure::lockout_after(wrong);
                prompter.say(&format!("wrong code; try again in {} s", wait.as_secs()))?;
                config.pairing = PairingMode::Code(ask_code(prompter, of)?);
                waited_out_lockout = false;
                // A quick typist waits out the rest, so the sender does not refuse the try.
                std::thread::sleep((wait + LOCKOUT_MARGIN).saturating_sub(failed.elapsed()));
            }
            // The sender counted our wrong code a moment after we saw it fail, so its lockout
            // can outlast ours: the code just typed waits that out once, rather than being lost.
            Err(e) if wrong > 0 && !waited_out_lockout && lockout(&e).is_some() => {
                waited_out_lockout = true;
                std::thread::sleep(lockout(&e).unwrap_or_default() + LOCKOUT_MARGIN);
            }
            Err(e) if refusal(&e).is_some() => return Ok(None),
            Err(e) => return Err(e),
        }
    }
}

/// How long the sender said this address is locked out for, if that is why it refused.
fn lockout(error: &anyhow::Error) -> Option<Duration> {
    match refusal(error) {
        Some(RefusalReason::LockedOut { wait_s }) => Some(Duration::from_secs(wait_s.into())),
        _ => None,
    }
}

fn ask_sender(prompter: &mut Prompter<impl BufRead, impl Write>) -> Result<Endpoint> {
    let ip = prompter.ask(
        "sender IP",
        "127.0.0.1",
        "127.0.0.1",
        "--connect",
        config::parse_ip,
    )?;
    let port = prompter.ask(
        "sender port",
        "9999",
        "9999",
        "--connect",
        config::parse_port,
    )?;
    Ok(Endpoint {
        host: ip.to_string(),
        port,
    })
}
