//! A program the tests start (the real `sender` and `receiver` binaries): its stderr is
//! collected line by line as it comes, so a test can wait for a log line and show the whole log
//! when something fails; its stdout is piped, for `--stats`.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long [`Program::wait_for_line`] waits before it fails the test.
pub const LINE_TIMEOUT: Duration = Duration::from_secs(20);

/// What a program wrote to stderr so far, and whether its stderr has ended.
#[derive(Default)]
struct Log {
    text: String,
    ended: bool,
}

pub struct Program {
    name: String,
    child: Child,
    log: Arc<(Mutex<Log>, Condvar)>,
    reader: Option<JoinHandle<()>>,
}

impl Program {
    /// Starts `program` with `args`, stdin closed.
    pub fn spawn(program: &str, args: &[&str]) -> Program {
        Program::start(Command::new(program).args(args).stdin(Stdio::null()))
    }

    /// Starts `command` with stdout and stderr piped; stdin and the environment are as the
    /// command sets them.
    pub fn start(command: &mut Command) -> Program {
        let name = command.get_program().to_string_lossy().into_owned();
        let name = match name.rsplit_once('/') {
            Some((_, file)) => file.to_owned(),
            None => name,
        };
        // Its own process group, so a wrapper's child (faketime's) goes with it on drop.
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        let log = Arc::new((Mutex::new(Log::default()), Condvar::new()));
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let sink = Arc::clone(&log);
        // Drains stderr to its end, so the program never blocks on a full pipe.
        let reader = std::thread::spawn(move || {
            let (log, changed) = &*sink;
            let mut line = Vec::new();
            loop {
                line.clear();
                let done = !matches!(stderr.read_until(b'\n', &mut line), Ok(1..));
                let mut log = log.lock().unwrap();
                log.text.push_str(&String::from_utf8_lossy(&line));
                log.ended = done;
                changed.notify_all();
                if done {
                    return;
                }
            }
        });
        Program {
            name,
            child,
            log,
            reader: Some(reader),
        }
    }

    /// Waits for a line of stderr containing `text` (searching the whole log so far) and
    /// returns it, without its line ending. Fails the test, showing the log, if the program's
    /// stderr ends without one or none comes within [`LINE_TIMEOUT`].
    pub fn wait_for_line(&self, text: &str) -> String {
        let deadline = Instant::now() + LINE_TIMEOUT;
        let (log, changed) = &*self.log;
        let mut log = log.lock().unwrap();
        loop {
            if let Some(line) = log.text.lines().find(|l| l.contains(text)) {
                return line.to_owned();
            }
            let now = Instant::now();
            if log.ended || now >= deadline {
                let why = match log.ended {
                    true => "ended its stderr",
                    false => "timed out",
                };
                let said = log.text.clone();
                // Unlocked first, so the log is not poisoned for whoever reads it next.
                drop(log);
                panic!("{} {why} with no {text:?} in:\n{said}", self.name);
            }
            log = changed.wait_timeout(log, deadline - now).unwrap().0;
        }
    }

    /// Everything the program has written to stderr so far.
    pub fn log(&self) -> String {
        self.log.0.lock().unwrap().text.clone()
    }

    /// The running program: its id, stdin (when the command piped it), `try_wait`.
    pub fn child(&mut self) -> &mut Child {
        &mut self.child
    }

    /// Kills the program and waits for it.
    /// Kills it, and whatever it started (a wrapper's child: faketime's).
    pub fn kill(mut self) {
        self.kill_group();
        self.child.wait().unwrap();
    }

    fn kill_group(&mut self) {
        // SAFETY: a signal to the process group the child leads (see `start`).
        unsafe { libc::kill(-(self.child.id() as i32), libc::SIGKILL) };
    }

    /// Closes its stdin, waits for it to exit and returns its status, all of its stdout, and
    /// all of its stderr (as [`Child::wait_with_output`] does).
    pub fn wait_with_output(mut self) -> Output {
        drop(self.child.stdin.take());
        let mut stdout = Vec::new();
        if let Some(mut out) = self.child.stdout.take() {
            out.read_to_end(&mut stdout).unwrap();
        }
        let status = self.child.wait().unwrap();
        if let Some(reader) = self.reader.take() {
            reader.join().unwrap();
        }
        Output {
            status,
            stdout,
            stderr: self.log().into_bytes(),
        }
    }
}

/// A failing test must not leave the program running.
impl Drop for Program {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.kill_group();
            let _ = self.child.wait();
        }
    }
}

pub const SENDER: &str = env!("CARGO_BIN_EXE_sender");
pub const RECEIVER: &str = env!("CARGO_BIN_EXE_receiver");

/// `program` with `args`, as a user without a display runs it: stdin closed, output piped.
pub fn command(program: &str, args: &[&str]) -> Command {
    let mut command = Command::new(program);
    command
        .args(args)
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

/// Starts a headless test-pattern sender on a free port and returns it with its address, read
/// from its "listening on" line.
pub fn spawn_sender(extra: &[&str]) -> (Program, String) {
    let mut args = super::TEST_SENDER_ARGS.to_vec();
    args.extend_from_slice(extra);
    started_sender(Program::start(&mut command(SENDER, &args)))
}

/// A sender that has been started, with the address its "listening on" line gives.
pub fn started_sender(sender: Program) -> (Program, String) {
    let line = sender.wait_for_line("sender: listening on ");
    let addr = line
        .strip_prefix("sender: listening on ")
        .expect("the line starts with it")
        .split(' ')
        .next()
        .unwrap()
        .to_owned();
    (sender, addr)
}
