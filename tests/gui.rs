//! Real windows under Xvfb: both titles appear, `q` typed into each window ends its program with
//! exit 0, and the receiver's recording plays. Needs a display and xdotool, so it is ignored by a
//! plain `cargo test`; `scripts/test.sh` runs it under `xvfb-run`.

use crate::common::{self, Program};
use std::process::{Command, ExitStatus, Output};
use std::time::{Duration, Instant};

/// The tests look windows up by title, which the receivers share: one test on the display at a
/// time.
static DISPLAY: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The display, for this test alone until the guard is dropped.
fn take_display() -> std::sync::MutexGuard<'static, ()> {
    assert!(
        std::env::var_os("DISPLAY").is_some(),
        "run under xvfb-run (scripts/test.sh does)"
    );
    DISPLAY
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn find_window(title: &str, program: &Program) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let found = Command::new("xdotool")
            .args(["search", "--name", &format!("^{title}$")])
            .output()
            .expect("xdotool is needed: scripts/test.sh installs it");
        let ids = String::from_utf8_lossy(&found.stdout);
        if let Some(id) = ids.lines().next() {
            return id.to_owned();
        }
        if Instant::now() > deadline {
            panic!(
                "no window titled {title:?}; the program said:\n{}",
                program.log()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn press_q(window: &str) {
    let status = Command::new("xdotool")
        .args(["key", "--window", window, "q"])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Waits up to 5 s for xdotool to say `window`'s geometry contains `wanted` (highgui maps a
/// window first and moves or sizes it just after: on a loaded machine a first look can come in
/// between).
fn wait_for_geometry(window: &str, wanted: &str) {
    let geometry = || {
        let output = Command::new("xdotool")
            .args(["getwindowgeometry", window])
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut seen = geometry();
    while !seen.contains(wanted) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        seen = geometry();
    }
    assert!(seen.contains(wanted), "{seen}");
}

/// The whole screen to the file the environment variable `var` names, when it is set.
fn screenshot(var: &str) {
    if let Some(shot) = std::env::var_os(var) {
        let _ = Command::new("import")
            .args(["-window", "root"])
            .arg(shot)
            .status();
    }
}

/// Presses `q` in `window`, checks that `program` exits with 0 because of it, and returns its
/// output.
fn quit_with_q(window: &str, mut program: Program) -> Output {
    press_q(window);
    let status = wait_exit(&mut program, Duration::from_secs(10));
    assert!(status.success(), "exited with {status}:\n{}", program.log());
    program.wait_with_output()
}

fn wait_exit(program: &mut Program, within: Duration) -> ExitStatus {
    let child = program.child();
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("did not exit within {within:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
#[ignore = "needs a display: scripts/test.sh runs it under xvfb-run"]
fn windows_show_video_and_q_quits_each_program() {
    let _display = take_display();
    let dir = std::env::temp_dir().join(format!("camstream-gui-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let recording = dir.join("received.avi");
    let sender = Program::spawn(
        env!("CARGO_BIN_EXE_sender"),
        &[
            "--listen",
            "127.0.0.1:0",
            "--source",
            "test:320x240",
            "--stats",
        ],
    );
    // The default run: the sender makes a one-time code and prints it beside its address.
    let line = sender.wait_for_line("sender: listening on ");
    let rest = line
        .strip_prefix("sender: listening on ")
        .expect("the line starts with it");
    let (addr, code) = rest.split_once(" (pairing code ").expect("a pairing code");
    let (addr, code) = (addr.to_owned(), code.trim_end_matches(')').to_owned());
    let sender_window = find_window("TRANSMITTING VIDEO", &sender);
    let receiver = Program::spawn(
        env!("CARGO_BIN_EXE_receiver"),
        &[
            "--connect",
            &addr,
            "--record",
            recording.to_str().unwrap(),
            "--stats",
            "--code",
            &code,
            "--window-at",
            "330,0",
        ],
    );
    let receiver_window = find_window("RECEIVING VIDEO", &receiver);
    // Beside the sender's preview, not on top of it (Xvfb has no window manager to move it).
    wait_for_geometry(&receiver_window, "Position: 330,0");
    std::thread::sleep(Duration::from_secs(2));
    screenshot("CAMSTREAM_SCREENSHOT");
    let output = quit_with_q(&receiver_window, receiver);
    let stats: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let shown = stats["frames"].as_u64().unwrap();
    assert!(shown > 10, "only {shown} frames shown");

    quit_with_q(&sender_window, sender);

    // The recording was finalised: it opens and plays every frame that was shown.
    let played = common::source_frames(&recording);
    assert_eq!(played.len() as u64, shown);
    assert!(played.iter().all(|frame| frame.len() == 320 * 240 * 3));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
#[ignore = "needs a display: scripts/test.sh runs it under xvfb-run"]
fn several_senders_show_as_one_window_of_tiles_and_q_quits() {
    let _display = take_display();
    let senders: Vec<_> = (0..2).map(|_| common::spawn_sender(&[])).collect();
    let mut args = vec!["--code", common::TEST_CODE, "--stats"];
    for (_, addr) in &senders {
        args.extend(["--connect", addr.as_str()]);
    }
    let receiver = Program::spawn(env!("CARGO_BIN_EXE_receiver"), &args);
    let window = find_window("RECEIVING VIDEO", &receiver);
    // Two 640x480 tiles side by side, each sender's picture scaled up into its own.
    wait_for_geometry(&window, "Geometry: 1280x480");
    std::thread::sleep(Duration::from_secs(2));
    screenshot("CAMSTREAM_GRID_SCREENSHOT");
    let output = quit_with_q(&window, receiver);
    let lines = common::stats_lines(&output.stdout);
    assert_eq!(lines.len(), 2, "{lines:?}");
    for (stats, (_, addr)) in lines.iter().zip(&senders) {
        assert_eq!(stats["sender"], addr.as_str());
        assert!(stats["taken"].as_u64().unwrap() > 10, "{stats}");
    }
}
