//! What both programs do around `run`: logging to stderr, Ctrl-C and SIGTERM, `q` + Enter on
//! standard input, and the one-line error. The binaries call these; the library never prints.

use crate::wire::secure::PairingMode;
use crate::Stop;
use anyhow::{anyhow, bail, Context, Result};
use std::io::{BufRead, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

/// Logs go to stderr as `program: message`, so stdout carries only the `--stats` line.
/// `RUST_LOG` adds to the default of `info` rather than replacing it, so asking for
/// `camstream=trace` keeps the program's own lines (its address, its code).
pub fn init_logging(program: &'static str) {
    init_logging_at(program, log::LevelFilter::Info);
}

/// [`init_logging`] from `default` up: what a program that embeds camstream (the Python
/// module) wants to hear, its warnings. Leaves a logger already set in place.
pub fn init_logging_at(program: &'static str, default: log::LevelFilter) {
    let _already_set = env_logger::Builder::new()
        .filter_level(default)
        .parse_env(env_logger::Env::default())
        .format(move |out, record| match record.level() {
            log::Level::Info => writeln!(out, "{program}: {}", record.args()),
            level => writeln!(
                out,
                "{program}: {}: {}",
                level.as_str().to_ascii_lowercase(),
                record.args()
            ),
        })
        .try_init();
}

/// What both programs do before streaming: [`window_available`], then [`stop_on_user`].
/// Returns whether to open `window_name`, and the stop signal.
pub fn start(window_wanted: bool, window_name: &str) -> Result<(bool, Stop)> {
    let window = window_available(window_wanted, window_name);
    Ok((window, stop_on_user(window)?))
}

/// Whether `window_name` can open when it is wanted (saying why not); quiets OpenCV's and
/// FFmpeg's own logging first.
pub fn window_available(window_wanted: bool, window_name: &str) -> bool {
    crate::media::quiet_library_logs();
    window_wanted
        && match crate::media::window::display_unavailable() {
            None => true,
            Some(why) => {
                log::info!("{why}; running without {window_name}");
                false
            }
        }
}

/// Wires Ctrl-C, SIGTERM and `q` + Enter (which reads stdin from now on: no more prompts) to
/// the returned stop signal, saying how to quit when there is no `window` to press `q` in.
pub fn stop_on_user(window: bool) -> Result<Stop> {
    if !window {
        log::info!("press q and Enter, or Ctrl-C, to quit");
    }
    let stop = Stop::default();
    stop_on_signals(&stop)?;
    stop_on_q_line(&stop);
    Ok(stop)
}

/// The first Ctrl-C or SIGTERM raises `stop` (a clean end: windows closed, files finalised);
/// a second one exits at once.
fn stop_on_signals(stop: &Stop) -> Result<()> {
    let stop = stop.clone();
    let asked = AtomicBool::new(false);
    ctrlc::set_handler(move || {
        if asked.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        stop.raise();
    })?;
    Ok(())
}

/// Raises `stop` when a line reading `q` arrives on standard input; the way to quit without a
/// window. Ends quietly at the end of input.
fn stop_on_q_line(stop: &Stop) {
    let stop = stop.clone();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            match line {
                Ok(line) if line.trim().eq_ignore_ascii_case("q") => {
                    stop.raise();
                    return;
                }
                Ok(_) => {}
                Err(_) => return,
            }
        }
    });
}

/// `--code`, `--code-file` and `--insecure`, the same on both programs.
#[derive(clap::Args, Debug)]
pub struct PairingArgs {
    /// The pairing code, also read from CAMSTREAM_CODE [sender: default a new one-time code,
    /// printed at start; receiver: asked for; several senders: one --code for all, or one for
    /// each --connect in its order]. On the command line every local user can read it in `ps`:
    /// a service gives --code-file or CAMSTREAM_CODE
    #[arg(long, value_name = "CODE", env = "CAMSTREAM_CODE", hide_env_values = true,
          value_parser = crate::config::parse_code)]
    pub code: Vec<String>,
    /// A file holding the pairing code (readable by its owner only: chmod 600)
    #[arg(long, value_name = "PATH", conflicts_with = "code")]
    pub code_file: Option<PathBuf>,
    /// No pairing, no encryption, on both sides: anyone who can reach the sender can watch
    #[arg(long, conflicts_with_all = ["code", "code_file"])]
    pub insecure: bool,
}

impl PairingArgs {
    /// What the flags (and CAMSTREAM_CODE) decided, or `None` when the code is still to be made
    /// or asked for.
    pub fn given(&self) -> Result<Option<PairingMode>> {
        if self.code.len() > 1 {
            bail!(
                "--code given {} times: a sender has one code",
                self.code.len()
            );
        }
        Ok(self.given_for(1)?.pop().flatten())
    }

    /// [`PairingArgs::given`] for each of `senders`: one `--code` is all of theirs, or there is
    /// one for each, in order.
    pub fn given_for(&self, senders: usize) -> Result<Vec<Option<PairingMode>>> {
        let all = |pairing: PairingMode| vec![Some(pairing); senders];
        if self.insecure {
            return Ok(all(PairingMode::Insecure));
        }
        if let Some(path) = &self.code_file {
            return read_code_file(path).map(|code| all(PairingMode::Code(code)));
        }
        match self.code.as_slice() {
            [] => Ok(vec![None; senders]),
            [code] => Ok(all(PairingMode::Code(code.clone()))),
            codes if codes.len() == senders => Ok(codes
                .iter()
                .map(|c| Some(PairingMode::Code(c.clone())))
                .collect()),
            codes => bail!(
                "--code given {} times for {senders} senders: give one for all of them, or one \
                 for each --connect, in the same order",
                codes.len()
            ),
        }
    }
}

/// The code in `path`, warning when others may read it.
fn read_code_file(path: &Path) -> Result<String> {
    let name = path.display();
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading code file {name}"))?;
    let mode = std::fs::metadata(path)
        .with_context(|| format!("reading code file {name}"))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        log::warn!(
            "code file {name} can be read by others (mode {:o}): chmod 600 {name}",
            mode & 0o777
        );
    }
    crate::config::parse_code(&text).map_err(|e| anyhow!("code file {name}: {e}"))
}

/// This machine's addresses a phone on the same network could reach: up, IPv4, not loopback or
/// link-local, private (RFC 1918) ones first. Read from the interfaces (getifaddrs), which sends
/// nothing on any network.
pub fn lan_addresses() -> Vec<std::net::IpAddr> {
    let interfaces = if_addrs::get_if_addrs().unwrap_or_default();
    let mut addresses: Vec<std::net::Ipv4Addr> = interfaces
        .iter()
        .filter(|i| !i.is_loopback() && !i.is_link_local())
        .filter_map(|i| match i.ip() {
            std::net::IpAddr::V4(v4) => Some(v4),
            std::net::IpAddr::V6(_) => None,
        })
        .collect();
    addresses.sort_by_key(|ip| !ip.is_private());
    addresses.dedup();
    addresses.into_iter().map(Into::into).collect()
}

/// The page's link for a sender listening on `listen`: on its LAN address when it listens on
/// every interface, with the pairing code in the fragment (which never leaves the browser)
/// when `with_code`.
pub fn page_link(listen: std::net::SocketAddr, pairing: &PairingMode, with_code: bool) -> String {
    let host = match listen.ip() {
        ip if ip.is_unspecified() => lan_addresses()
            .first()
            .copied()
            .unwrap_or(std::net::Ipv4Addr::LOCALHOST.into()),
        ip => ip,
    };
    let address = std::net::SocketAddr::new(host, listen.port());
    match pairing.code() {
        Some(code) if with_code => format!("https://{address}/#code={code}"),
        Some(_) => format!("https://{address}/"),
        None => format!("http://{address}/"),
    }
}

/// `text` as a QR code drawn with Unicode half blocks, light on dark, for a terminal.
pub fn qr_code(text: &str) -> Result<String> {
    use qrcode::render::unicode::Dense1x2;
    let code = qrcode::QrCode::new(text.as_bytes())?;
    Ok(code
        .render::<Dense1x2>()
        .dark_color(Dense1x2::Light)
        .light_color(Dense1x2::Dark)
        .quiet_zone(true)
        .build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_link_carries_the_code_and_draws_as_a_qr_code() {
        let listen = "127.0.0.1:9999".parse().unwrap();
        let code = PairingMode::Code("37-noble-otter".into());
        let link = page_link(listen, &code, true);
        assert_eq!(link, "https://127.0.0.1:9999/#code=37-noble-otter");
        assert_eq!(page_link(listen, &code, false), "https://127.0.0.1:9999/");
        assert_eq!(
            page_link(listen, &PairingMode::Insecure, true),
            "http://127.0.0.1:9999/"
        );
        let every = page_link("0.0.0.0:9999".parse().unwrap(), &code, true);
        assert!(!every.contains("0.0.0.0"), "{every}");
        let qr = qr_code(&link).unwrap();
        let rows: Vec<&str> = qr.lines().collect();
        // Two modules a character high: a version 3 code (29 modules) plus the quiet zones.
        assert!(rows.len() >= 15, "{qr}");
        assert!(rows
            .iter()
            .all(|r| r.chars().count() == rows[0].chars().count()));
        assert!(qr.contains('▀') || qr.contains('▄'));
    }
}
