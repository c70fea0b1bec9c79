//! The real binaries as a user meets them: prompts on piped stdin, flags, one-line errors,
//! exit codes, and the `--stats` line on stdout.

use crate::common::{self, command, spawn_sender, started_sender, Program, RECEIVER, SENDER};
use std::io::Write;
use std::net::TcpListener;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn run_with_input(program: &str, args: &[&str], input: &str) -> Output {
    let mut child = command(program, args)
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn receiver_answers_prompts_from_piped_stdin_and_prints_stats() {
    let (sender, addr) = spawn_sender(&[]);
    let port = addr.rsplit(':').next().unwrap();
    let output = run_with_input(
        RECEIVER,
        &["--headless", "--frames", "5", "--stats"],
        &format!(
            "999.1.1.1\n127.0.0.1\nabc\n70000\n{port}\n\n{}\n",
            common::TEST_CODE
        ),
    );
    let log = stderr(&output);
    assert!(output.status.success(), "{log}");
    assert!(
        log.contains(
            "pairing code shown by the sender [required]: invalid pairing code: it is empty"
        ),
        "{log}"
    );
    assert!(log.contains("invalid IP address \"999.1.1.1\""), "{log}");
    assert!(
        log.contains("invalid port \"abc\": must be 1-65535"),
        "{log}"
    );
    assert!(
        log.contains("invalid port \"70000\": must be 1-65535"),
        "{log}"
    );
    let stdout = String::from_utf8(output.stdout).unwrap();
    let stats: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(stats["frames"], 5);
    assert!(stats["latency_ms"]["p99"].as_f64().unwrap() > 0.0);
    assert_eq!(stdout.lines().count(), 1, "stdout is only the stats line");
    sender.kill();
}

#[test]
fn a_missing_answer_names_the_flag() {
    let output = run_with_input(RECEIVER, &["--headless"], "127.0.0.1\n");
    assert_eq!(output.status.code(), Some(1));
    let log = stderr(&output);
    assert!(
        log.contains(
            "error: no answer for \"sender port\" on standard input; pass --connect instead"
        ),
        "{log}"
    );
    let output = run_with_input(SENDER, &["--no-preview"], "");
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("pass --listen instead"));
}

#[test]
fn sender_answers_prompts_and_ends_after_frames() {
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let mut sender = Program::start(
        command(
            SENDER,
            &[
                "--source",
                "test:160x120",
                "--no-preview",
                "--frames",
                "6",
                "--stats",
                "--code",
                common::TEST_CODE,
            ],
        )
        .stdin(Stdio::piped()),
    );
    // IP, port, and a blank answer: anyone may connect.
    writeln!(
        sender.child().stdin.as_mut().unwrap(),
        "127.0.0.1\n{port}\n"
    )
    .unwrap();
    let addr = format!("127.0.0.1:{port}");
    let receiver = loop {
        let output = command(
            RECEIVER,
            &[
                "--connect",
                &addr,
                "--headless",
                "--once",
                "--stats",
                "--code",
                common::TEST_CODE,
            ],
        )
        .output()
        .unwrap();
        if !stderr(&output).contains("connection refused") {
            break output;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert!(receiver.status.success(), "{}", stderr(&receiver));
    assert!(stderr(&receiver).contains("the sender ended the stream"));
    let stats: serde_json::Value = serde_json::from_slice(&receiver.stdout).unwrap();
    assert_eq!(stats["frames"], 6);
    drop(sender.child().stdin.take());
    let output = sender.wait_with_output();
    assert!(output.status.success(), "{}", stderr(&output));
    let stats: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(stats["frames_sent"], 6);
    let log = stderr(&output);
    assert!(
        log.contains(
            "IP to listen on [0.0.0.0]: port [9999]: receiver IP allowed to connect [anyone]:"
        ),
        "{log}"
    );
}

#[test]
fn q_and_enter_ends_a_headless_receiver_cleanly() {
    let (sender, addr) = spawn_sender(&[]);
    let mut receiver = Program::start(
        command(
            RECEIVER,
            &["--connect", &addr, "--stats", "--code", common::TEST_CODE],
        )
        .stdin(Stdio::piped()),
    );
    std::thread::sleep(std::time::Duration::from_millis(700));
    writeln!(receiver.child().stdin.as_mut().unwrap(), "q").unwrap();
    let output = receiver.wait_with_output();
    assert!(output.status.success(), "{}", stderr(&output));
    let log = stderr(&output);
    assert!(
        log.contains("no display found (DISPLAY is not set); running without a window"),
        "{log}"
    );
    let stats: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!(stats["frames"].as_u64().unwrap() > 0);
    sender.kill();
}

fn error_of(program: &str, args: &[&str]) -> String {
    let output = command(program, args).output().unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    let log = stderr(&output);
    let errors: Vec<&str> = log.lines().filter(|l| l.contains("error:")).collect();
    assert_eq!(errors.len(), 1, "{log}");
    errors[0].to_owned()
}

#[test]
fn bad_input_is_one_line_naming_the_cause() {
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    assert_eq!(
        error_of(
            RECEIVER,
            &[
                "--connect",
                &format!("127.0.0.1:{port}"),
                "--headless",
                "--insecure"
            ]
        ),
        format!("receiver: error: connecting to 127.0.0.1:{port}: connection refused")
    );
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = taken.local_addr().unwrap().to_string();
    assert_eq!(
        error_of(
            SENDER,
            &["--listen", &taken, "--source", "test", "--no-preview"]
        ),
        format!("sender: error: listening on {taken}: address already in use")
    );
    assert_eq!(
        error_of(
            SENDER,
            &[
                "--listen",
                "127.0.0.1:0",
                "--source",
                "/no/such/clip.mkv",
                "--no-preview"
            ]
        ),
        "sender: error: opening video file /no/such/clip.mkv: no such file"
    );
    let camera = error_of(
        SENDER,
        &["--listen", "127.0.0.1:0", "--source", "7", "--no-preview"],
    );
    assert!(
        camera.starts_with("sender: error: opening camera 7: "),
        "{camera}"
    );
    let not_video =
        std::env::temp_dir().join(format!("camstream-not-video-{}.txt", std::process::id()));
    std::fs::write(&not_video, "hello").unwrap();
    let text = error_of(
        SENDER,
        &[
            "--listen",
            "127.0.0.1:0",
            "--source",
            not_video.to_str().unwrap(),
            "--no-preview",
        ],
    );
    std::fs::remove_file(&not_video).unwrap();
    assert!(text.contains("OpenCV cannot read it"), "{text}");
}

#[test]
fn invalid_flags_are_refused_with_the_reason() {
    for (program, args, reason) in [
        (
            RECEIVER,
            vec!["--connect", "999.1.1.1:9999"],
            "invalid IP address \"999.1.1.1\"",
        ),
        (
            SENDER,
            vec!["--listen", "0.0.0.0:70000"],
            "invalid port \"70000\": must be 1-65535",
        ),
        (
            SENDER,
            vec!["--quality", "0"],
            "invalid quality \"0\": must be 1-100",
        ),
        (
            SENDER,
            vec!["--codec", "vp9"],
            "invalid codec \"vp9\": use raw, jpeg or h264",
        ),
        (
            RECEIVER,
            vec!["--code", " "],
            "invalid pairing code: it is empty",
        ),
        (
            SENDER,
            vec!["--code", "1-a-b", "--insecure"],
            "'--code <CODE>' cannot be used with '--insecure'",
        ),
    ] {
        let output = command(program, &args).output().unwrap();
        assert!(!output.status.success());
        assert!(stderr(&output).contains(reason), "{}", stderr(&output));
    }
    let help = command(SENDER, &["--help"]).output().unwrap();
    assert!(String::from_utf8_lossy(&help.stdout).contains("--allow <IP>"));
}

/// Sends `signal` and returns how long the program took to exit, and its output.
fn signal_and_wait(mut program: Program, signal: &str) -> (Duration, Output) {
    let sent = Instant::now();
    let status = Command::new("kill")
        .args([format!("-{signal}"), program.child().id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let output = program.wait_with_output();
    (sent.elapsed(), output)
}

#[test]
fn ctrl_c_and_sigterm_end_both_programs_cleanly_and_at_once() {
    let dir = common::TempDir::new("signals");
    for signal in ["INT", "TERM"] {
        let sender = Program::start(&mut command(
            SENDER,
            &[
                "--listen",
                "127.0.0.1:0",
                "--source",
                "test:640x480",
                "--codec",
                "raw",
                "--no-preview",
                "--insecure",
            ],
        ));
        let line = sender.wait_for_line("listening on ");
        let addr = line.split(' ').nth(3).unwrap().to_owned();
        // A viewer that says hello and then never reads: its writer is stuck on a full socket.
        let stalled = std::net::TcpStream::connect(&addr).unwrap();
        camstream::wire::connection::MessageWriter::new(&stalled)
            .write_message(&camstream::wire::protocol::Message::ViewerHello(
                camstream::wire::protocol::ViewerHello::new(
                    camstream::wire::protocol::Security::Insecure,
                ),
            ))
            .unwrap();
        let recording = dir.0.join(format!("cut-{signal}.mkv"));
        let receiver = Program::start(&mut command(
            RECEIVER,
            &[
                "--connect",
                &addr,
                "--headless",
                "--record",
                recording.to_str().unwrap(),
                "--stats",
                "--insecure",
            ],
        ));
        receiver.wait_for_line("connected to");
        std::thread::sleep(Duration::from_millis(500));

        let (took, output) = signal_and_wait(receiver, signal);
        let log = stderr(&output);
        assert!(output.status.success(), "SIG{signal}: {log}");
        eprintln!("receiver ended {took:?} after SIG{signal}");
        // Generous for a busy machine; the point is that it ends, and without a hang.
        assert!(
            took < Duration::from_secs(3),
            "receiver took {took:?} after SIG{signal}"
        );
        let stats: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        let shown = stats["frames"].as_u64().unwrap();
        assert!(shown > 0);
        let played = common::source_frames(&recording);
        assert_eq!(
            played.len() as u64,
            shown,
            "the recording plays to its last frame"
        );

        let (took, output) = signal_and_wait(sender, signal);
        let log = stderr(&output);
        assert!(output.status.success(), "SIG{signal}: {log}");
        eprintln!("sender ended {took:?} after SIG{signal}");
        assert!(
            took < Duration::from_secs(3),
            "sender took {took:?} after SIG{signal}"
        );
        drop(stalled);
    }
}

/// A sender whose clock is 5 s ahead or behind (faketime shifts what `SystemTime` says in that
/// process only): the receiver measures the offset in the handshake, reports it, and its latency
/// is still the true loopback latency, not 5000 ms or 0.
#[test]
fn latency_is_right_when_the_senders_clock_is_5_s_off() {
    for (shift, offset_ms) in [("+5s", 5000.0), ("-5s", -5000.0)] {
        let mut args = vec!["-f", shift, SENDER];
        args.extend_from_slice(&common::TEST_SENDER_ARGS);
        let mut shifted = command("faketime", &args);
        shifted.env("FAKETIME_DONT_FAKE_MONOTONIC", "1");
        let (sender, addr) = started_sender(Program::start(&mut shifted));
        let output = receive(&addr, 20, common::TEST_CODE);
        assert!(output.status.success(), "{}", stderr(&output));
        let stats: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
        let measured = stats["clock_offset_ms"].as_f64().unwrap();
        assert!(
            (measured - offset_ms).abs() < 100.0,
            "clock {shift}: offset {measured} ms"
        );
        let p50 = stats["latency_ms"]["p50"].as_f64().unwrap();
        assert!(
            (0.0..100.0).contains(&p50),
            "clock {shift}: latency p50 {p50} ms"
        );
        sender.kill();
    }
}

#[test]
fn a_code_typed_as_it_is_read_out_pairs() {
    let (_sender, addr) = spawn_sender(&[]);
    let typed = common::TEST_CODE
        .replacen('-', " ", 1)
        .replace('-', "_")
        .to_uppercase();
    let output = receive(&addr, 3, &typed);
    assert!(output.status.success(), "{typed}: {}", stderr(&output));
}

/// A receiver whose code is typed at its prompt, from piped stdin: `codes`, one a line.
fn receive_typing(addr: &str, codes: &[&str]) -> Output {
    let typed: String = codes.iter().map(|code| format!("{code}\n")).collect();
    run_with_input(RECEIVER, &receiving(addr, "3"), &typed)
}

#[test]
fn a_code_mistyped_at_the_prompt_is_asked_again_after_the_lockout() {
    let (sender, addr) = spawn_sender(&[]);
    let started = Instant::now();
    let output = receive_typing(&addr, &["1-wrong-code", "2-wrong-code", common::TEST_CODE]);
    let log = stderr(&output);
    assert!(output.status.success(), "{log}");
    let asked = "pairing code shown by the sender [required]: ";
    assert_eq!(log.matches(asked).count(), 3, "{log}");
    assert!(log.contains("wrong code; try again in 1 s"), "{log}");
    assert!(log.contains("wrong code; try again in 2 s"), "{log}");
    // Each try waited out the sender's lockout, so none was refused for it.
    assert!(started.elapsed() >= Duration::from_secs(3), "{log}");
    assert!(!log.contains("locked out"), "{log}");
    let stats: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(stats["frames"], 3);
    // The sender saw the wrong codes (logged once a minute per address).
    sender.wait_for_line("pairing code did not match (1 in a row)");
}

#[test]
fn three_wrong_codes_at_the_prompt_give_up_and_a_wrong_code_flag_fails_at_once() {
    let (_sender, addr) = spawn_sender(&[]);
    let output = receive_typing(
        &addr,
        &["1-wrong-code", "2-wrong-code", "3-wrong-code", "4-x"],
    );
    let log = stderr(&output);
    assert!(!output.status.success(), "{log}");
    assert_eq!(log.matches("wrong code; try again").count(), 2, "{log}");
    assert!(
        log.trim_end().ends_with(&format!(
            "receiver: error: greeting sender {addr}: pairing code did not match"
        )),
        "{log}"
    );
    // Given by --code, as a script would: no second try, and no waiting.
    let (_sender, addr) = spawn_sender(&[]);
    let started = Instant::now();
    let output = receive(&addr, 3, "1-wrong-code");
    let log = stderr(&output);
    assert!(!output.status.success(), "{log}");
    assert!(!log.contains("try again"), "{log}");
    assert!(started.elapsed() < Duration::from_secs(1), "{log}");
}

/// A headless receiver of `addr`, paired with `code`, that shows `frames` frames and exits,
/// printing its `--stats`.
fn receive(addr: &str, frames: u64, code: &str) -> Output {
    let frames = frames.to_string();
    let mut args = receiving(addr, &frames);
    args.extend(["--code", code]);
    command(RECEIVER, &args).output().unwrap()
}

/// The flags of a headless receiver of `addr` that shows `frames` frames, then exits printing
/// its `--stats`.
fn receiving<'a>(addr: &'a str, frames: &'a str) -> Vec<&'a str> {
    vec![
        "--connect",
        addr,
        "--headless",
        "--once",
        "--frames",
        frames,
        "--stats",
    ]
}

#[test]
fn a_code_from_a_file_or_the_environment_never_on_the_command_line() {
    let dir = common::TempDir::new("code-file");
    let file = dir.0.join("code");
    std::fs::write(&file, format!("{}\n", common::TEST_CODE)).unwrap();
    let set_mode = |mode| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    set_mode(0o600);
    let path = file.to_str().unwrap();
    let listen = [
        "--listen",
        "127.0.0.1:0",
        "--source",
        "test:160x120",
        "--no-preview",
    ];
    let mut args = listen.to_vec();
    args.extend(["--code-file", path]);
    let (sender, addr) = started_sender(Program::start(&mut command(SENDER, &args)));
    assert!(
        !sender.log().contains("can be read by others"),
        "{}",
        sender.log()
    );
    // Nor is it in the log (a service's journal), which says where it is, nor in the link.
    sender.wait_for_line("sender: watch in a browser: https://");
    assert!(
        sender.log().contains(&format!("(pairing code in {path})"))
            && !sender.log().contains(common::TEST_CODE),
        "{}",
        sender.log()
    );
    // The receiver takes it from CAMSTREAM_CODE.
    let output = command(RECEIVER, &receiving(&addr, "3"))
        .env("CAMSTREAM_CODE", common::TEST_CODE)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
    drop(sender);
    // A file others may read works, with a warning that says how to fix it.
    set_mode(0o644);
    let (sender, addr) = started_sender(Program::start(&mut command(SENDER, &args)));
    sender.wait_for_line(&format!(
        "sender: warn: code file {path} can be read by others (mode 644): chmod 600 {path}"
    ));
    assert!(receive(&addr, 3, common::TEST_CODE).status.success());
    drop(sender);
    // --help shows where the code may come from, never the value in the environment.
    let help = command(SENDER, &["--help"])
        .env("CAMSTREAM_CODE", "9-secret-value")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    assert!(
        help.contains("CAMSTREAM_CODE") && help.contains("--code-file"),
        "{help}"
    );
    assert!(!help.contains("secret"), "{help}");
    // A missing file is one line naming it.
    let mut missing = listen.to_vec();
    missing.extend(["--code-file", "/no/such/code"]);
    assert_eq!(
        error_of(SENDER, &missing),
        "sender: error: reading code file /no/such/code: no such file or directory"
    );
}
