//! Real windows under Xvfb: both titles appear, `q` typed into each window ends its program with
//! exit 0, and the receiver's recording plays. Needs a display and xdotool, so it is ignored by a
//! plain `cargo test`; `scripts/test.sh` runs it under `xvfb-run`.

use crate::common::{self, Program};
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

/// The tests look windows up by title, which the receivers share: one test on the display at a
/// time.
static DISPLAY: std::sync::Mutex<()> = std::sync::Mutex::new(());

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
    assert!(
        std::env::var_os("DISPLAY").is_some(),
        "run under xvfb-run (scripts/test.sh does)"
    );
    let _display = DISPLAY
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let dir = std::env::temp_dir().join(format!("camstream-gui-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let recording = dir.join("received.avi");
    let mut sender = Program::spawn(
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
    let mut receiver = Program::spawn(
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
    // highgui maps the window first and moves it just after: on a loaded machine the first look
    // can come in between.
    let geometry = || {
        let output = Command::new("xdotool")
            .args(["getwindowgeometry", &receiver_window])
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout).into_owned()
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let mut seen = geometry();
    while !seen.contains("Position: 330,0") && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        seen = geometry();
    }
    assert!(seen.contains("Position: 330,0"), "{seen}");
    std::thread::sleep(Duration::from_secs(2));
    if let Some(shot) = std::env::var_os("CAMSTREAM_SCREENSHOT") {
        let _ = Command::new("import")
            .args(["-window", "root"])
            .arg(shot)
            .status();
    }

    press_q(&receiver_window);
    let status = wait_exit(&mut receiver, Duration::from_secs(10));
    assert!(status.success(), "receiver exited with {status}");
    let output = receiver.wait_with_output();
    let stats: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let shown = stats["frames"].as_u64().unwrap();
    assert!(shown > 10, "only {shown} frames shown");

    press_q(&sender_window);
    let status = wait_exit(&mut sender, Duration::from_secs(10));
    assert!(status.success(), "sender exited with {status}");

    // The recording was finalised: it opens and plays every frame that was shown.
    let played = common::source_frames(&recording);
    assert_eq!(played.len() as u64, shown);
    assert!(played.iter().all(|frame| frame.len() == 320 * 240 * 3));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
#[ignore = "needs a display: scripts/test.sh runs it under xvfb-run"]
fn several_senders_show_as_one_window_of_tiles_and_q_quits() {
    assert!(
        std::env::var_os("DISPLAY").is_some(),
        "run under xvfb-run (scripts/test.sh does)"
    );
    let _display = DISPLAY
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let senders: Vec<_> = (0..2).map(|_| common::spawn_sender(&[])).collect();
    let mut args = vec!["--code", common::TEST_CODE, "--stats"];
    for (_, addr) in &senders {
        args.extend(["--connect", addr.as_str()]);
    }
    let mut receiver = Program::spawn(env!("CARGO_BIN_EXE_receiver"), &args);
    let window = find_window("RECEIVING VIDEO", &receiver);
    // Two 640x480 tiles side by side, each sender's picture scaled up into its own.
    let deadline = Instant::now() + Duration::from_secs(10);
    let geometry = loop {
        let output = Command::new("xdotool")
            .args(["getwindowgeometry", &window])
            .output()
            .unwrap();
        let geometry = String::from_utf8_lossy(&output.stdout).into_owned();
        if geometry.contains("Geometry: 1280x480") || Instant::now() > deadline {
            break geometry;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(geometry.contains("Geometry: 1280x480"), "{geometry}");
    std::thread::sleep(Duration::from_secs(2));
    if let Some(shot) = std::env::var_os("CAMSTREAM_GRID_SCREENSHOT") {
        let _ = Command::new("import")
            .args(["-window", "root"])
            .arg(shot)
            .status();
    }
    press_q(&window);
    let status = wait_exit(&mut receiver, Duration::from_secs(10));
    assert!(status.success(), "receiver exited with {status}");
    let output = receiver.wait_with_output();
    let stdout = String::from_utf8(output.stdout).unwrap();
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    for (stats, (_, addr)) in lines.iter().zip(&senders) {
        assert_eq!(stats["sender"], addr.as_str());
        assert!(stats["taken"].as_u64().unwrap() > 10, "{stats}");
    }
}
