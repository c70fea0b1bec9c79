//! What both programs do around `run`: logging to stderr, Ctrl-C and SIGTERM, `q` + Enter on
//! standard input, and the one-line error. The binaries call these; the library never prints.

use crate::Stop;
use anyhow::Result;
use std::io::{BufRead, Write};
use std::sync::atomic::{AtomicBool, Ordering};

/// Logs go to stderr as `program: message`, so stdout carries only the `--stats` line.
pub fn init_logging(program: &'static str) {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format(move |out, record| match record.level() {
            log::Level::Info => writeln!(out, "{program}: {}", record.args()),
            level => writeln!(
                out,
                "{program}: {}: {}",
                level.as_str().to_ascii_lowercase(),
                record.args()
            ),
        })
        .init();
}

/// The first Ctrl-C or SIGTERM raises `stop` (a clean end: windows closed, files finalised);
/// a second one exits at once.
pub fn stop_on_signals(stop: &Stop) -> Result<()> {
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
pub fn stop_on_q_line(stop: &Stop) {
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

/// Whether answers should be read from a person at a terminal (prompts shown as usual) or a pipe.
pub fn stdin_is_terminal() -> bool {
    use std::io::IsTerminal;
    std::io::stdin().is_terminal()
}
